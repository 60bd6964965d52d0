//! The C ABI: the exported plugin table and its entry points.
//!
//! # Safety
//!
//! With `shim` (the outgoing log call), the only module of the plugin with `unsafe` code. It trusts disklib for what the
//! interface promises and nothing more: pointers are either NULL or valid for the duration of
//! the call, strings are NUL-terminated, `common.result` points to the result type that
//! `primitiveID` implies, and callbacks are callable. Every NULL is checked, every entry point
//! catches panics, and no pointer given by disklib is kept beyond the call that gave it.
#![allow(unsafe_code)]

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Once;

use openvaai_abi::{
    plugin_type, prim, vix, CloneFileParams, CommonParams, DataStoreParams, LogFunc, PrimitiveId,
    ProgressRecord, ResvSpaceParams, SessionId, SessionParams, StatXParams, StatXResult,
    VixDiskLibNasPlugin, VixDiskLibPlugin, VixError, NASPLUGIN_MAJOR_VERSION,
    NASPLUGIN_MINOR_VERSION,
};

use openvaai_client::RawDataStore;

use crate::primitive::{Outcome, Progress, Request};
use crate::session;

/// The plugin table, in a wrapper that lets it live in a `static` (it holds raw pointers,
/// which are `!Sync`; the table is read-only, so sharing it between threads is sound).
#[repr(transparent)]
struct Table(VixDiskLibNasPlugin);
// SAFETY: the table is immutable and points only to static data and functions.
unsafe impl Sync for Table {}

#[repr(transparent)]
struct List([*const VixDiskLibPlugin; 2]);
// SAFETY: immutable; points to the immutable static table.
unsafe impl Sync for List {}

#[repr(transparent)]
pub struct EntryPoint(*const *const VixDiskLibPlugin);
// SAFETY: immutable; points to the immutable static list.
unsafe impl Sync for EntryPoint {}

const NAME: &CStr = c"openvaai";

static NAS_PLUGIN: Table = Table(VixDiskLibNasPlugin {
    base: VixDiskLibPlugin {
        major_version: NASPLUGIN_MAJOR_VERSION,
        minor_version: NASPLUGIN_MINOR_VERSION,
        plugin_type: plugin_type::NAS,
        name: NAME.as_ptr(),
        init: Some(init),
        done: Some(done),
    },
    start_session: Some(start_session),
    end_session: Some(end_session),
    exec_primitive: Some(exec_primitive),
    support_status: Some(support_status),
});

static PLUGINS: List = List([
    &NAS_PLUGIN.0 as *const VixDiskLibNasPlugin as *const VixDiskLibPlugin,
    ptr::null(),
]);

/// `VixDiskLibPlugin **VixDiskLibPlugin_EntryPoint`: the one symbol disklib looks up. It
/// points to a NULL-terminated array of pointers to plugin tables; ours holds one NAS table.
#[no_mangle]
#[used]
pub static VixDiskLibPlugin_EntryPoint: EntryPoint =
    EntryPoint(&PLUGINS.0 as *const [*const VixDiskLibPlugin; 2] as *const *const VixDiskLibPlugin);

static PANIC_HOOK: Once = Once::new();

/// Runs `f`, turning a panic into `on_panic`. The first call replaces the default panic hook
/// (which writes to stderr) by one that writes to disklib's log.
fn guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    PANIC_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::log::try_emit(
                crate::log::Level::Warning,
                format_args!("internal error, call abandoned: {info}"),
            )
        }))
    });
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// The bytes of a C string, `None` for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL, and NUL-terminated by the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

/// # Safety
/// `p` is NULL or a valid `DataStoreParams` whose strings outlive `'a`.
unsafe fn raw_datastore<'a>(p: *const DataStoreParams) -> Option<RawDataStore<'a>> {
    // SAFETY: NULL or valid, by the caller's contract.
    let ds = unsafe { p.as_ref() }?;
    // SAFETY: the interface makes each member NULL or a NUL-terminated string.
    unsafe {
        Some(RawDataStore {
            fs_type: bytes(ds.fs_type),
            fs_version: ds.fs_version,
            remote_ip: bytes(ds.remote_ip),
            remote_mount_point: bytes(ds.remote_mount_point),
            local_mount_point: bytes(ds.local_mount_point),
        })
    }
}

unsafe extern "C" fn init(
    log: Option<LogFunc>,
    warn: Option<LogFunc>,
    _panic: Option<LogFunc>,
) -> VixError {
    guard(vix::E_FAIL, || {
        crate::log::init(log, warn);
        crate::info!(
            "NAS plugin {} loaded (interface {}.{})",
            env!("CARGO_PKG_VERSION"),
            NASPLUGIN_MAJOR_VERSION,
            NASPLUGIN_MINOR_VERSION
        );
        vix::OK
    })
}

unsafe extern "C" fn done() {
    guard((), || {
        // The last Done closes what disklib left open, then forgets the log functions.
        if crate::log::release() {
            let open = session::end_all();
            if open > 0 {
                crate::info!("unloading: closed {open} session(s) left open");
            }
            crate::log::clear();
        }
    })
}

unsafe extern "C" fn start_session(
    config: *const DataStoreParams,
    params: *const SessionParams,
    session_id: *mut SessionId,
) -> VixError {
    guard(vix::E_FAIL, || {
        if session_id.is_null() {
            return vix::E_INVALID_ARG;
        }
        // SAFETY: `config` is NULL or valid for this call (interface contract).
        let Some(raw) = (unsafe { raw_datastore(config) }) else {
            return vix::E_INVALID_ARG;
        };
        // SAFETY: `params` may be NULL; otherwise valid for this call.
        let timeout_ms = unsafe { params.as_ref() }.map(|p| p.timeout_ms);
        match session::start(&raw, timeout_ms) {
            Ok(id) => {
                // SAFETY: checked non-NULL above; disklib gives a writable SessionID.
                unsafe { session_id.write(id) };
                vix::OK
            }
            Err(err) => err,
        }
    })
}

unsafe extern "C" fn end_session(id: SessionId) -> VixError {
    guard(vix::E_FAIL, || session::end(id))
}

unsafe extern "C" fn support_status(id: SessionId, primitive: PrimitiveId) -> VixError {
    guard(vix::E_FAIL, || session::support_status(id, primitive))
}

/// disklib's progress record, for the duration of one ExecPrimitive.
struct CProgress(*mut ProgressRecord);

impl Progress for CProgress {
    fn update_bytes(&self) -> u64 {
        // SAFETY: NULL or valid for the whole ExecPrimitive call.
        unsafe { self.0.as_ref() }.map_or(0, |r| r.update_bytes)
    }

    fn report(&mut self, delta: u64) -> bool {
        // SAFETY: NULL or valid and ours to update for the whole ExecPrimitive call.
        let Some(rec) = (unsafe { self.0.as_mut() }) else {
            return true;
        };
        let Some(callback) = rec.callback else {
            return true;
        };
        rec.progress_bytes = delta;
        // SAFETY: disklib's callback, called with its own record as the interface requires.
        unsafe { callback(self.0) != 0 }
    }
}

unsafe extern "C" fn exec_primitive(id: SessionId, params: *const CommonParams) {
    guard((), || {
        // SAFETY: NULL or valid for this call.
        let Some(common) = (unsafe { params.as_ref() }) else {
            crate::warning!("ExecPrimitive called without parameters");
            return;
        };
        let result = common.result;
        if result.is_null() {
            crate::warning!("ExecPrimitive called without a result to fill");
            return;
        }
        // SAFETY: `result` is non-NULL and writable for this call. Written first, so that a
        // panic below still leaves a failure for disklib to see.
        unsafe { (*result).status = vix::E_FAIL };
        let primitive = common.primitive_id;
        // SAFETY: `params` points to the parameter struct that `primitive` names.
        let request = unsafe { request(primitive, params) };
        let outcome = match request {
            Some(request) => {
                let mut progress = CProgress(common.progress_record);
                session::exec(id, &request, &mut progress)
            }
            None => Outcome::status(vix::E_INVALID_ARG),
        };
        if let (prim::STATX, Some(figures)) = (primitive, outcome.statx) {
            // SAFETY: for STATX, `result` points to a StatXResult (interface contract).
            let r = unsafe { &mut *(result as *mut StatXResult) };
            r.total_bytes = figures.total_bytes;
            r.alloced_bytes = figures.alloced_bytes;
            r.unique_bytes = figures.unique_bytes;
            r.alloc_type = figures.alloc_type;
        }
        // SAFETY: as above.
        unsafe { (*result).status = outcome.status };
    })
}

/// Reads the primitive's parameters; `None` when a required string is NULL or the primitive
/// is unknown.
///
/// # Safety
/// `params` is valid and points to the struct `primitive` names, with `common` first.
unsafe fn request<'a>(primitive: PrimitiveId, params: *const CommonParams) -> Option<Request<'a>> {
    // SAFETY (all three arms): the interface puts `common` first in each parameter struct
    // and passes the struct that matches `primitiveID`; its strings live for the call.
    unsafe {
        match primitive {
            prim::CLONEFILE => {
                let p = &*(params as *const CloneFileParams);
                Some(Request::Clone {
                    src: bytes(p.src_file_name)?,
                    dst: bytes(p.dst_file_name)?,
                    flags: p.clone_flags,
                    src_datastore: raw_datastore(p.src_data_store_info),
                })
            }
            prim::RESVSPACE => {
                let p = &*(params as *const ResvSpaceParams);
                Some(Request::Reserve {
                    file: bytes(p.file_name)?,
                })
            }
            prim::STATX => {
                let p = &*(params as *const StatXParams);
                Some(Request::Statx {
                    file: bytes(p.file_name)?,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_point_lists_one_nas_table_then_null() {
        // SAFETY: reading our own static table.
        unsafe {
            let list = VixDiskLibPlugin_EntryPoint.0;
            let first = &**list;
            assert_eq!(first.plugin_type, plugin_type::NAS);
            assert_eq!((first.major_version, first.minor_version), (1, 2));
            assert_eq!(CStr::from_ptr(first.name), NAME);
            assert!((*list.add(1)).is_null());
        }
    }
}
