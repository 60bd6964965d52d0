//! A disklib stand-in: loads a NAS plugin exactly as disklib does (`dlopen`, the
//! `VixDiskLibPlugin_EntryPoint` data symbol, its NULL-terminated list of tables, `Init` with
//! three `va_list` log functions) and drives its NAS entry points with the structures disklib
//! passes. The `openvaai` CLI and the end-to-end tests use it, so what they see is what ESXi
//! gets.
//!
//! # Safety
//!
//! This crate is all `unsafe` glue, kept in one place. Calling into a plugin means trusting that the
//! library honours the interface; what can be checked first is checked: the symbol exists,
//! the list is NULL-terminated within [`MAX_TABLES`], a table claims type NAS and version 1.x
//! before its NAS members are read, and every function pointer is non-NULL before a call.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use openvaai_abi::{
    plugin_type, prim, vix, Bool, CloneFileParams, CloneFlags, CommonParams, LogFunc, PrimitiveId,
    ProgressRecord, ResultCommon, ResvSpaceParams, SessionId, SessionParams, StatXParams,
    StatXResult, VixDiskLibNasPlugin, VixDiskLibPlugin, VixError, ENTRYPOINT_NAME, FALSE, TRUE,
};

/// A plugin list longer than this is taken for a missing NULL terminator.
pub const MAX_TABLES: usize = 64;

extern "C" {
    fn openvaai_host_log(fmt: *const c_char, args: *mut std::ffi::c_void);
    fn openvaai_host_warn(fmt: *const c_char, args: *mut std::ffi::c_void);
    fn openvaai_host_panic(fmt: *const c_char, args: *mut std::ffi::c_void);
}

/// A line a plugin logged: 0 log, 1 warning, 2 panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: u8,
    pub text: String,
}

static LOG: Mutex<Vec<LogLine>> = Mutex::new(Vec::new());
/// Lines kept at most; older ones are dropped.
const LOG_KEEP: usize = 10_000;

/// Called by csrc/host_log.c with each formatted line.
#[no_mangle]
extern "C" fn openvaai_host_log_line(level: c_int, line: *const c_char) {
    let _ = std::panic::catch_unwind(|| {
        if line.is_null() {
            return;
        }
        // SAFETY: the C side passes a NUL-terminated buffer valid for this call.
        let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
        let mut log = LOG.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= LOG_KEEP {
            log.remove(0);
        }
        log.push(LogLine {
            level: level.clamp(0, 2) as u8,
            text: text.trim_end().to_owned(),
        });
    });
}

/// Takes the lines the plugin has logged since the last call.
pub fn take_log() -> Vec<LogLine> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

/// One table of a plugin library's list, as read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableInfo {
    pub index: usize,
    pub name: Option<String>,
    pub plugin_type: i32,
    pub type_name: &'static str,
    pub major_version: i32,
    pub minor_version: i32,
    pub init: bool,
    pub done: bool,
    /// The four NAS entry points, when the table is a NAS table.
    pub start_session: Option<bool>,
    pub end_session: Option<bool>,
    pub exec_primitive: Option<bool>,
    pub support_status: Option<bool>,
}

fn type_name(t: c_int) -> &'static str {
    match t {
        plugin_type::TRANSPORT => "TRANSPORT",
        plugin_type::NAS => "NAS",
        plugin_type::TRANSPORT_NO_UNLOAD => "TRANSPORT_NO_UNLOAD",
        _ => "unknown",
    }
}

/// A loaded plugin library and its NAS table.
pub struct Plugin {
    path: PathBuf,
    tables: Vec<TableInfo>,
    nas: *const VixDiskLibNasPlugin,
    initialised: bool,
    // Declared last: dropped (dlclose) after everything that points into it.
    _lib: libloading::Library,
}

// SAFETY: the table is read-only once loaded, and the NAS interface lets disklib call a
// plugin's entry points from any thread, concurrently: sharing a loaded plugin between
// threads is what disklib itself does.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

impl Plugin {
    /// `dlopen`s the library and reads its plugin list. Fails when the list has no NAS table
    /// of interface version 1.x.
    pub fn load(path: &Path) -> Result<Plugin> {
        // SAFETY: loading a library runs its initialisers; that is what loading a plugin is.
        let lib = unsafe { libloading::os::unix::Library::open(Some(path), libc_rtld()) }
            .with_context(|| format!("cannot load {}", path.display()))?;
        let lib = libloading::Library::from(lib);
        // SAFETY: the interface declares the symbol as `VixDiskLibPlugin **`; dlsym gives its
        // address, a `VixDiskLibPlugin ***`.
        let entry: libloading::Symbol<'_, *const *const *const VixDiskLibPlugin> =
            unsafe { lib.get(ENTRYPOINT_NAME.as_bytes()) }
                .with_context(|| format!("{} exports no {ENTRYPOINT_NAME}", path.display()))?;
        let entry = *entry;
        if entry.is_null() {
            bail!("{ENTRYPOINT_NAME} is at address 0");
        }
        // SAFETY: `entry` is the symbol's address, readable.
        let list = unsafe { *entry };
        if list.is_null() {
            bail!("{ENTRYPOINT_NAME} is NULL: the library lists no plugin");
        }
        let mut tables = Vec::new();
        let mut nas: *const VixDiskLibNasPlugin = std::ptr::null();
        for index in 0..=MAX_TABLES {
            if index == MAX_TABLES {
                bail!("the plugin list has no NULL terminator within {MAX_TABLES} entries");
            }
            // SAFETY: the list is NULL-terminated and we stop at the terminator.
            let table = unsafe { *list.add(index) };
            if table.is_null() {
                break;
            }
            // SAFETY: a non-NULL entry points to at least a base table.
            let base = unsafe { &*table };
            let name = (!base.name.is_null())
                // SAFETY: a non-NULL name is a NUL-terminated string.
                .then(|| {
                    unsafe { CStr::from_ptr(base.name) }
                        .to_string_lossy()
                        .into_owned()
                });
            let is_nas = base.plugin_type == plugin_type::NAS && base.major_version == 1;
            let mut info = TableInfo {
                index,
                name,
                plugin_type: base.plugin_type,
                type_name: type_name(base.plugin_type),
                major_version: base.major_version,
                minor_version: base.minor_version,
                init: base.init.is_some(),
                done: base.done.is_some(),
                start_session: None,
                end_session: None,
                exec_primitive: None,
                support_status: None,
            };
            if is_nas {
                // SAFETY: a NAS table of interface 1.x is a VixDiskLibNasPlugin.
                let t = unsafe { &*(table as *const VixDiskLibNasPlugin) };
                info.start_session = Some(t.start_session.is_some());
                info.end_session = Some(t.end_session.is_some());
                info.exec_primitive = Some(t.exec_primitive.is_some());
                info.support_status = Some(t.support_status.is_some());
                if nas.is_null() {
                    nas = table as *const VixDiskLibNasPlugin;
                }
            }
            tables.push(info);
        }
        if nas.is_null() {
            bail!(
                "{} holds no NAS plugin table of interface 1.x ({} table(s))",
                path.display(),
                tables.len()
            );
        }
        Ok(Plugin {
            path: path.to_owned(),
            tables,
            nas,
            initialised: false,
            _lib: lib,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    fn table(&self) -> &VixDiskLibNasPlugin {
        // SAFETY: checked in `load`, and the library stays loaded as long as `self`.
        unsafe { &*self.nas }
    }

    /// Calls `Init` with the CLI's log functions (if the table has one).
    pub fn init(&mut self) -> VixError {
        let Some(init) = self.table().base.init else {
            self.initialised = true;
            return vix::OK;
        };
        // SAFETY: Init's contract; our log functions accept (fmt, va_list) and live as long as
        // the process.
        let err = unsafe {
            init(
                Some(openvaai_host_log as LogFunc),
                Some(openvaai_host_warn as LogFunc),
                Some(openvaai_host_panic as LogFunc),
            )
        };
        self.initialised = err == vix::OK;
        err
    }

    /// `StartSession` on a datastore.
    pub fn start_session(
        &self,
        ds: &Datastore,
        timeout_ms: Option<u64>,
    ) -> Result<SessionId, VixError> {
        let Some(start) = self.table().start_session else {
            return Err(vix::E_NOT_SUPPORTED);
        };
        let c = ds.to_c().map_err(|_| vix::E_INVALID_ARG)?;
        let raw = c.raw();
        let params = timeout_ms.map(|t| SessionParams { timeout_ms: t });
        let params_ptr = params.as_ref().map_or(std::ptr::null(), |p| p as *const _);
        let mut id: SessionId = 0;
        // SAFETY: every pointer is valid for the call; the strings are NUL-terminated.
        let err = unsafe { start(&raw, params_ptr, &mut id) };
        if err == vix::OK {
            Ok(id)
        } else {
            Err(err)
        }
    }

    /// `EndSession`.
    pub fn end_session(&self, id: SessionId) -> VixError {
        match self.table().end_session {
            // SAFETY: plain value argument.
            Some(end) => unsafe { end(id) },
            None => vix::E_NOT_SUPPORTED,
        }
    }

    /// `SupportStatus`.
    pub fn support_status(&self, id: SessionId, primitive: PrimitiveId) -> VixError {
        match self.table().support_status {
            // SAFETY: plain value arguments.
            Some(status) => unsafe { status(id, primitive) },
            None => vix::E_NOT_SUPPORTED,
        }
    }
}

/// disklib's progress record as the caller of a primitive sets it up: report every
/// `update_bytes`, and the callback that receives each delta and returns false to abort.
pub struct Progress<'a> {
    pub update_bytes: u64,
    pub callback: &'a mut dyn FnMut(u64) -> bool,
}

struct Holder<'a, 'b> {
    callback: &'a mut (dyn FnMut(u64) -> bool + 'b),
}

/// The C callback disklib would pass; `private` carries the Rust closure.
unsafe extern "C" fn progress_trampoline(rec: *mut ProgressRecord) -> Bool {
    let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `rec` is the record we built for this call; `private` points to the
        // `Holder` on the caller's stack, alive for the whole ExecPrimitive.
        unsafe {
            let rec = &*rec;
            let holder = &mut *(rec.private as *mut Holder<'_, '_>);
            (holder.callback)(rec.progress_bytes)
        }
    }));
    match call {
        Ok(true) => TRUE,
        // A panicking callback aborts the operation, as a FALSE would.
        Ok(false) | Err(_) => FALSE,
    }
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("NUL in {what}"))
}

impl Plugin {
    /// `ExecPrimitive` with `params`, after wiring in `progress`.
    ///
    /// # Safety
    /// `params` is a parameter struct of the kind its `primitive_id` names, with `common`
    /// first, and every pointer in it valid for the call.
    unsafe fn exec(
        &self,
        id: SessionId,
        params: *mut CommonParams,
        progress: Option<Progress<'_>>,
    ) {
        let Some(exec) = self.table().exec_primitive else {
            // SAFETY: `result` is valid by the caller's contract.
            unsafe { (*(*params).result).status = vix::E_NOT_SUPPORTED };
            return;
        };
        match progress {
            Some(p) => {
                let mut holder = Holder {
                    callback: p.callback,
                };
                let mut record = ProgressRecord {
                    private: &mut holder as *mut Holder<'_, '_> as *mut std::ffi::c_void,
                    update_bytes: p.update_bytes,
                    progress_bytes: 0,
                    callback: Some(progress_trampoline),
                };
                // SAFETY: the record and holder outlive the call.
                unsafe {
                    (*params).progress_record = &mut record;
                    exec(id, params);
                    (*params).progress_record = std::ptr::null_mut();
                }
            }
            // SAFETY: as the caller promised.
            None => unsafe { exec(id, params) },
        }
    }

    /// CLONEFILE from `src` to `dst` (absolute paths under the datastores' mount points).
    pub fn clone_file(
        &self,
        id: SessionId,
        src: &str,
        dst: &str,
        flags: CloneFlags,
        src_datastore: Option<&Datastore>,
        progress: Option<Progress<'_>>,
    ) -> Result<VixError> {
        let (src, dst) = (cstring(src, "source")?, cstring(dst, "destination")?);
        let src_c = src_datastore.map(Datastore::to_c).transpose()?;
        let src_raw = src_c.as_ref().map(CDatastore::raw);
        let mut result = ResultCommon {
            status: vix::E_FAIL,
        };
        let mut params = CloneFileParams {
            common: CommonParams {
                primitive_id: prim::CLONEFILE,
                progress_record: std::ptr::null_mut(),
                result: &mut result,
            },
            src_file_name: src.as_ptr(),
            dst_file_name: dst.as_ptr(),
            clone_flags: flags,
            src_data_store_info: src_raw.as_ref().map_or(std::ptr::null(), |r| r as *const _),
        };
        // SAFETY: a CloneFileParams for CLONEFILE; everything it points to outlives the call.
        unsafe { self.exec(id, &mut params.common, progress) };
        Ok(result.status)
    }

    /// RESVSPACE on `file`.
    pub fn reserve(
        &self,
        id: SessionId,
        file: &str,
        progress: Option<Progress<'_>>,
    ) -> Result<VixError> {
        let file = cstring(file, "file name")?;
        let mut result = ResultCommon {
            status: vix::E_FAIL,
        };
        let mut params = ResvSpaceParams {
            common: CommonParams {
                primitive_id: prim::RESVSPACE,
                progress_record: std::ptr::null_mut(),
                result: &mut result,
            },
            file_name: file.as_ptr(),
        };
        // SAFETY: a ResvSpaceParams for RESVSPACE; everything it points to outlives the call.
        unsafe { self.exec(id, &mut params.common, progress) };
        Ok(result.status)
    }

    /// STATX of `file`: the status and the figures as the plugin filled them.
    pub fn statx(&self, id: SessionId, file: &str) -> Result<StatXResult> {
        let file = cstring(file, "file name")?;
        let mut result = StatXResult {
            common: ResultCommon {
                status: vix::E_FAIL,
            },
            total_bytes: 0,
            alloced_bytes: 0,
            unique_bytes: 0,
            alloc_type: openvaai_abi::alloc::UNKNOWN,
        };
        let mut params = StatXParams {
            common: CommonParams {
                primitive_id: prim::STATX,
                progress_record: std::ptr::null_mut(),
                // The whole StatXResult, not only its first member: the plugin fills it all.
                result: &mut result as *mut StatXResult as *mut ResultCommon,
            },
            file_name: file.as_ptr(),
        };
        // SAFETY: a StatXParams for STATX whose result is a StatXResult.
        unsafe { self.exec(id, &mut params.common, None) };
        Ok(result)
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if self.initialised {
            if let Some(done) = self.table().base.done {
                // SAFETY: Done after a successful Init, before dlclose.
                unsafe { done() };
            }
        }
    }
}

fn libc_rtld() -> c_int {
    // RTLD_NOW | RTLD_LOCAL, as disklib loads its plugins.
    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL
}

/// A datastore as ESXi describes it to a plugin.
#[derive(Debug, Clone)]
pub struct Datastore {
    pub fs_type: String,
    pub fs_version: u32,
    pub remote_ip: Option<String>,
    pub remote_mount_point: Option<String>,
    pub local_mount_point: Option<String>,
}

/// A [`Datastore`] with its strings as C strings, alive as long as the pointers made from it.
pub struct CDatastore {
    fs_type: CString,
    fs_version: u32,
    remote_ip: Option<CString>,
    remote_mount_point: Option<CString>,
    local_mount_point: Option<CString>,
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

impl Datastore {
    pub fn to_c(&self) -> Result<CDatastore> {
        let c = |s: &Option<String>| -> Result<Option<CString>> {
            Ok(match s {
                Some(s) => Some(CString::new(s.as_str()).context("NUL in a datastore field")?),
                None => None,
            })
        };
        Ok(CDatastore {
            fs_type: CString::new(self.fs_type.as_str()).context("NUL in fsType")?,
            fs_version: self.fs_version,
            remote_ip: c(&self.remote_ip)?,
            remote_mount_point: c(&self.remote_mount_point)?,
            local_mount_point: c(&self.local_mount_point)?,
        })
    }
}

impl CDatastore {
    /// The C struct; valid while `self` is.
    pub fn raw(&self) -> openvaai_abi::DataStoreParams {
        openvaai_abi::DataStoreParams {
            fs_type: self.fs_type.as_ptr(),
            fs_version: self.fs_version,
            remote_ip: opt_ptr(&self.remote_ip),
            remote_mount_point: opt_ptr(&self.remote_mount_point),
            local_mount_point: opt_ptr(&self.local_mount_point),
        }
    }
}
