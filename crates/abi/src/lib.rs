//! The disklib NAS plugin interface (plugin interface 1.0, NAS interface 1.2) as `#[repr(C)]`
//! Rust types and constants, mirroring `include/openvaai_nas_plugin.h` member for member.
//!
//! This crate only describes memory layouts; it calls nothing. The plugin (`libopenvaai.so`)
//! fills these structures, the `openvaai` CLI reads them from a loaded plugin. Values that come
//! from C (primitive IDs, flags, allocation types, error codes) are plain integers with named
//! constants, never Rust enums: an unknown value from the other side must be representable.
#![deny(unsafe_code)]
#![no_std]

use core::ffi::{c_char, c_int, c_void};

/// The C header this crate mirrors, for hosts written in C.
pub const HEADER: &str = include_str!("../include/openvaai_nas_plugin.h");

/// `VixError`: 64 bits, the low 16 of which are the code.
pub type VixError = u64;
/// `Bool`: a C `char`, 0 is FALSE.
pub type Bool = c_char;
pub const TRUE: Bool = 1;
pub const FALSE: Bool = 0;

/// The code part of a [`VixError`] (`VIX_ERROR_CODE`).
pub const fn vix_error_code(err: VixError) -> u16 {
    (err & 0xFFFF) as u16
}

/// `VixError` codes used by the NAS interface.
pub mod vix {
    use super::VixError;
    pub const OK: VixError = 0;
    pub const E_FAIL: VixError = 1;
    pub const E_OUT_OF_MEMORY: VixError = 2;
    pub const E_INVALID_ARG: VixError = 3;
    pub const E_FILE_NOT_FOUND: VixError = 4;
    pub const E_OBJECT_IS_BUSY: VixError = 5;
    pub const E_NOT_SUPPORTED: VixError = 6;
    pub const E_FILE_ERROR: VixError = 7;
    pub const E_DISK_FULL: VixError = 8;
    pub const E_INCORRECT_FILE_TYPE: VixError = 9;
    pub const E_CANCELLED: VixError = 10;
    pub const E_FILE_READ_ONLY: VixError = 11;
    pub const E_FILE_ALREADY_EXISTS: VixError = 12;
    pub const E_FILE_ACCESS_ERROR: VixError = 13;
    pub const E_NOT_SUPPORTED_ON_REMOTE_OBJECT: VixError = 20;
    pub const E_FILE_TOO_BIG: VixError = 21;
    pub const E_FILE_NAME_INVALID: VixError = 22;
    pub const E_OBJECT_NOT_FOUND: VixError = 25;
    pub const E_HOST_NOT_CONNECTED: VixError = 26;
    pub const E_AUTHENTICATION_FAIL: VixError = 35;
    pub const E_HOST_CONNECTION_LOST: VixError = 36;

    /// Every code above with its `VIX_*` name, for diagnostics.
    pub const NAMES: &[(VixError, &str)] = &[
        (OK, "VIX_OK"),
        (E_FAIL, "VIX_E_FAIL"),
        (E_OUT_OF_MEMORY, "VIX_E_OUT_OF_MEMORY"),
        (E_INVALID_ARG, "VIX_E_INVALID_ARG"),
        (E_FILE_NOT_FOUND, "VIX_E_FILE_NOT_FOUND"),
        (E_OBJECT_IS_BUSY, "VIX_E_OBJECT_IS_BUSY"),
        (E_NOT_SUPPORTED, "VIX_E_NOT_SUPPORTED"),
        (E_FILE_ERROR, "VIX_E_FILE_ERROR"),
        (E_DISK_FULL, "VIX_E_DISK_FULL"),
        (E_INCORRECT_FILE_TYPE, "VIX_E_INCORRECT_FILE_TYPE"),
        (E_CANCELLED, "VIX_E_CANCELLED"),
        (E_FILE_READ_ONLY, "VIX_E_FILE_READ_ONLY"),
        (E_FILE_ALREADY_EXISTS, "VIX_E_FILE_ALREADY_EXISTS"),
        (E_FILE_ACCESS_ERROR, "VIX_E_FILE_ACCESS_ERROR"),
        (
            E_NOT_SUPPORTED_ON_REMOTE_OBJECT,
            "VIX_E_NOT_SUPPORTED_ON_REMOTE_OBJECT",
        ),
        (E_FILE_TOO_BIG, "VIX_E_FILE_TOO_BIG"),
        (E_FILE_NAME_INVALID, "VIX_E_FILE_NAME_INVALID"),
        (E_OBJECT_NOT_FOUND, "VIX_E_OBJECT_NOT_FOUND"),
        (E_HOST_NOT_CONNECTED, "VIX_E_HOST_NOT_CONNECTED"),
        (E_AUTHENTICATION_FAIL, "VIX_E_AUTHENTICATION_FAIL"),
        (E_HOST_CONNECTION_LOST, "VIX_E_HOST_CONNECTION_LOST"),
    ];

    /// The `VIX_*` name of an error's code, if it is one the NAS interface uses.
    pub fn name(err: VixError) -> Option<&'static str> {
        let code = VixError::from(super::vix_error_code(err));
        NAMES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
    }
}

/// `VixDiskLibGenericLogFunc`: `void (const char *fmt, va_list args)`. On x86_64 a `va_list`
/// argument is passed as a pointer to its `__va_list_tag`; Rust never calls these directly
/// (its `VaList` is unstable) but through the plugin's C shim.
pub type LogFunc = unsafe extern "C" fn(fmt: *const c_char, args: *mut c_void);

/// `VixDiskLibPluginType` values.
pub mod plugin_type {
    use core::ffi::c_int;
    pub const TRANSPORT: c_int = 0;
    pub const NAS: c_int = 1;
    pub const TRANSPORT_NO_UNLOAD: c_int = 2;
}

pub const PLUGIN_MAJOR_VERSION: c_int = 1;
pub const PLUGIN_MINOR_VERSION: c_int = 0;
pub const NASPLUGIN_MAJOR_VERSION: c_int = 1;
pub const NASPLUGIN_MINOR_VERSION: c_int = 2;
/// The name of the one data symbol a plugin library exports.
pub const ENTRYPOINT_NAME: &str = "VixDiskLibPlugin_EntryPoint";

pub const FSTYPE_NFS: &str = "NFS";
pub const FSTYPE_NFS41: &str = "NFS41";

pub type InitFn = unsafe extern "C" fn(
    log: Option<LogFunc>,
    warn: Option<LogFunc>,
    panic: Option<LogFunc>,
) -> VixError;
pub type DoneFn = unsafe extern "C" fn();

/// `VixDiskLibPlugin`: the base table every plugin starts with.
#[repr(C)]
#[derive(Debug)]
pub struct VixDiskLibPlugin {
    pub major_version: c_int,
    pub minor_version: c_int,
    /// A [`plugin_type`] value.
    pub plugin_type: c_int,
    pub name: *const c_char,
    pub init: Option<InitFn>,
    pub done: Option<DoneFn>,
}

/// `VixDiskLibNasPluginDataStoreParams`.
#[repr(C)]
#[derive(Debug)]
pub struct DataStoreParams {
    pub fs_type: *const c_char,
    pub fs_version: u32,
    pub remote_ip: *const c_char,
    pub remote_mount_point: *const c_char,
    pub local_mount_point: *const c_char,
}

/// `VixDiskLibNasPluginSessionParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SessionParams {
    /// Network timeout per exchange in milliseconds; 0: the plugin chooses.
    pub timeout_ms: u64,
}

/// `VixDiskLibNasPluginSessionID`: opaque; 0 is invalid.
pub type SessionId = u64;
pub const INVALID_SESSION_ID: SessionId = 0;

/// `VixDiskLibNasPluginPrimitiveID` (a C enum, so an `int`).
pub type PrimitiveId = c_int;
pub mod prim {
    use super::PrimitiveId;
    pub const INVALID: PrimitiveId =
        ((b'N' as i32) << 24) | ((b'A' as i32) << 16) | ((b'S' as i32) << 8) | b'0' as i32;
    pub const CLONEFILE: PrimitiveId = INVALID + 1;
    pub const RESVSPACE: PrimitiveId = INVALID + 2;
    pub const STATX: PrimitiveId = INVALID + 3;

    /// The primitive's name without prefix, for diagnostics.
    pub fn name(id: PrimitiveId) -> Option<&'static str> {
        match id {
            CLONEFILE => Some("CLONEFILE"),
            RESVSPACE => Some("RESVSPACE"),
            STATX => Some("STATX"),
            INVALID => Some("INVALID"),
            _ => None,
        }
    }
}

/// `VixDiskLibNasPluginPeriodicCallback`: returns FALSE when the user aborts.
pub type PeriodicCallback = unsafe extern "C" fn(rec: *mut ProgressRecord) -> Bool;

/// `VixDiskLibNasPluginProgressRecord`.
#[repr(C)]
#[derive(Debug)]
pub struct ProgressRecord {
    /// disklib's own; a plugin never touches it.
    pub private: *mut c_void,
    /// Call the callback for every `update_bytes` bytes done.
    pub update_bytes: u64,
    /// Bytes done since the last call (a delta), set by the plugin before each call.
    pub progress_bytes: u64,
    pub callback: Option<PeriodicCallback>,
}

/// `VixDiskLibNasPluginResultCommon`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ResultCommon {
    pub status: VixError,
}

/// `VixDiskLibNasPluginAllocType` (a C enum).
pub type AllocType = c_int;
pub mod alloc {
    use super::AllocType;
    pub const EZT: AllocType = 0;
    pub const LZT: AllocType = 1;
    pub const THIN: AllocType = 2;
    pub const UNKNOWN: AllocType = -1;
}

/// `VixDiskLibNasPluginStatXResult`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StatXResult {
    pub common: ResultCommon,
    pub total_bytes: u64,
    pub alloced_bytes: u64,
    pub unique_bytes: u64,
    /// An [`alloc`] value.
    pub alloc_type: AllocType,
}

/// `VixDiskLibNasPluginCommonParams`.
#[repr(C)]
#[derive(Debug)]
pub struct CommonParams {
    pub primitive_id: PrimitiveId,
    pub progress_record: *mut ProgressRecord,
    /// For STATX this points to a [`StatXResult`].
    pub result: *mut ResultCommon,
}

/// `VixDiskLibNasPluginCloneFileFlags` (a C enum, so an `int`).
pub type CloneFlags = c_int;
pub mod clone_flag {
    use super::CloneFlags;
    pub const GUARDED: CloneFlags = 1 << 0;
    pub const LAZY: CloneFlags = 1 << 1;
    pub const SRCDATASTORE_VALID: CloneFlags = 1 << 2;
    pub const DRYRUN: CloneFlags = 1 << 3;
    pub const SKIPZEROES: CloneFlags = 1 << 4;
    /// Every flag the interface defines.
    pub const ALL: CloneFlags = GUARDED | LAZY | SRCDATASTORE_VALID | DRYRUN | SKIPZEROES;
}

/// `VixDiskLibNasPluginCloneFileParams`.
#[repr(C)]
#[derive(Debug)]
pub struct CloneFileParams {
    pub common: CommonParams,
    pub src_file_name: *const c_char,
    pub dst_file_name: *const c_char,
    pub clone_flags: CloneFlags,
    pub src_data_store_info: *const DataStoreParams,
}

/// `VixDiskLibNasPluginResvSpaceParams`.
#[repr(C)]
#[derive(Debug)]
pub struct ResvSpaceParams {
    pub common: CommonParams,
    pub file_name: *const c_char,
}

/// `VixDiskLibNasPluginStatXParams`.
#[repr(C)]
#[derive(Debug)]
pub struct StatXParams {
    pub common: CommonParams,
    pub file_name: *const c_char,
}

pub type StartSessionFn = unsafe extern "C" fn(
    config: *const DataStoreParams,
    params: *const SessionParams,
    session_id: *mut SessionId,
) -> VixError;
pub type EndSessionFn = unsafe extern "C" fn(session_id: SessionId) -> VixError;
pub type ExecPrimitiveFn = unsafe extern "C" fn(session_id: SessionId, params: *const CommonParams);
pub type SupportStatusFn =
    unsafe extern "C" fn(session_id: SessionId, primitive_id: PrimitiveId) -> VixError;

/// `VixDiskLibNasPlugin`: the base table followed by the four NAS entry points.
#[repr(C)]
#[derive(Debug)]
pub struct VixDiskLibNasPlugin {
    pub base: VixDiskLibPlugin,
    pub start_session: Option<StartSessionFn>,
    pub end_session: Option<EndSessionFn>,
    pub exec_primitive: Option<ExecPrimitiveFn>,
    pub support_status: Option<SupportStatusFn>,
}

/// `(type, member, offset)` of every member, and `(type, size)` of every struct, as Rust lays
/// them out; the layout test compares these with what a C compiler makes of the header.
pub fn layout() -> [(&'static str, usize); 48] {
    use core::mem::{offset_of, size_of};
    macro_rules! l {
        ($($name:literal => $e:expr),* $(,)?) => { [$(($name, $e)),*] };
    }
    l! {
        "VixDiskLibPlugin" => size_of::<VixDiskLibPlugin>(),
        "VixDiskLibPlugin.majorVersion" => offset_of!(VixDiskLibPlugin, major_version),
        "VixDiskLibPlugin.minorVersion" => offset_of!(VixDiskLibPlugin, minor_version),
        "VixDiskLibPlugin.type" => offset_of!(VixDiskLibPlugin, plugin_type),
        "VixDiskLibPlugin.name" => offset_of!(VixDiskLibPlugin, name),
        "VixDiskLibPlugin.Init" => offset_of!(VixDiskLibPlugin, init),
        "VixDiskLibPlugin.Done" => offset_of!(VixDiskLibPlugin, done),
        "VixDiskLibNasPlugin" => size_of::<VixDiskLibNasPlugin>(),
        "VixDiskLibNasPlugin.StartSession" => offset_of!(VixDiskLibNasPlugin, start_session),
        "VixDiskLibNasPlugin.EndSession" => offset_of!(VixDiskLibNasPlugin, end_session),
        "VixDiskLibNasPlugin.ExecPrimitive" => offset_of!(VixDiskLibNasPlugin, exec_primitive),
        "VixDiskLibNasPlugin.SupportStatus" => offset_of!(VixDiskLibNasPlugin, support_status),
        "DataStoreParams" => size_of::<DataStoreParams>(),
        "DataStoreParams.fsType" => offset_of!(DataStoreParams, fs_type),
        "DataStoreParams.fsVersion" => offset_of!(DataStoreParams, fs_version),
        "DataStoreParams.remoteIP" => offset_of!(DataStoreParams, remote_ip),
        "DataStoreParams.remoteMountPoint" => offset_of!(DataStoreParams, remote_mount_point),
        "DataStoreParams.localMountPoint" => offset_of!(DataStoreParams, local_mount_point),
        "SessionParams" => size_of::<SessionParams>(),
        "SessionParams.timeoutMS" => offset_of!(SessionParams, timeout_ms),
        "ProgressRecord" => size_of::<ProgressRecord>(),
        "ProgressRecord.private" => offset_of!(ProgressRecord, private),
        "ProgressRecord.updateBytes" => offset_of!(ProgressRecord, update_bytes),
        "ProgressRecord.progressBytes" => offset_of!(ProgressRecord, progress_bytes),
        "ProgressRecord.callback" => offset_of!(ProgressRecord, callback),
        "ResultCommon" => size_of::<ResultCommon>(),
        "StatXResult" => size_of::<StatXResult>(),
        "StatXResult.totalBytes" => offset_of!(StatXResult, total_bytes),
        "StatXResult.allocedBytes" => offset_of!(StatXResult, alloced_bytes),
        "StatXResult.uniqueBytes" => offset_of!(StatXResult, unique_bytes),
        "StatXResult.allocType" => offset_of!(StatXResult, alloc_type),
        "CommonParams" => size_of::<CommonParams>(),
        "CommonParams.primitiveID" => offset_of!(CommonParams, primitive_id),
        "CommonParams.progressRecord" => offset_of!(CommonParams, progress_record),
        "CommonParams.result" => offset_of!(CommonParams, result),
        "CloneFileParams" => size_of::<CloneFileParams>(),
        "CloneFileParams.srcFileName" => offset_of!(CloneFileParams, src_file_name),
        "CloneFileParams.dstFileName" => offset_of!(CloneFileParams, dst_file_name),
        "CloneFileParams.cloneFlags" => offset_of!(CloneFileParams, clone_flags),
        "CloneFileParams.srcDataStoreInfo" => offset_of!(CloneFileParams, src_data_store_info),
        "ResvSpaceParams" => size_of::<ResvSpaceParams>(),
        "ResvSpaceParams.fileName" => offset_of!(ResvSpaceParams, file_name),
        "StatXParams" => size_of::<StatXParams>(),
        "StatXParams.fileName" => offset_of!(StatXParams, file_name),
        "PrimitiveID.INVALID" => prim::INVALID as usize,
        "PrimitiveID.STATX" => prim::STATX as usize,
        "CloneFlags.SKIPZEROES" => clone_flag::SKIPZEROES as usize,
        "AllocType" => size_of::<AllocType>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_ids_spell_nas0() {
        assert_eq!(prim::INVALID, 0x4E41_5330);
        assert_eq!(prim::CLONEFILE, 0x4E41_5331);
        assert_eq!(prim::RESVSPACE, 0x4E41_5332);
        assert_eq!(prim::STATX, 0x4E41_5333);
    }

    #[test]
    fn error_names_cover_the_low_16_bits_only() {
        assert_eq!(vix::name(vix::E_DISK_FULL), Some("VIX_E_DISK_FULL"));
        assert_eq!(
            vix::name(0xABCD_0000_0000_0000 | vix::E_CANCELLED),
            Some("VIX_E_CANCELLED")
        );
        assert_eq!(vix::name(14), None);
    }
}
