//! The one call out of the plugin into C: a message to one of disklib's `va_list` log
//! functions, through the shim in `csrc/log_shim.c`.
//!
//! # Safety
//!
//! With [`crate::ffi`], the only module that may hold `unsafe` code. It trusts that a
//! [`LogFunc`] came from disklib's `Init` and is still loaded (the log module forgets the
//! functions after the last `Done`).
#![allow(unsafe_code)]

use std::ffi::{c_char, CStr};

use openvaai_abi::LogFunc;

extern "C" {
    /// `openvaai_log_shim(cb, msg)` — calls `cb("%s", msg)` with a real `va_list`
    /// (csrc/log_shim.c).
    fn openvaai_log_shim(cb: LogFunc, msg: *const c_char);
}

/// Passes one finished message to one of disklib's log functions.
pub(crate) fn call_log(func: LogFunc, msg: &CStr) {
    // SAFETY: `func` came from disklib's Init as a VixDiskLibGenericLogFunc, and the shim
    // calls it with the format "%s" and one valid NUL-terminated string argument.
    unsafe { openvaai_log_shim(func, msg.as_ptr()) }
}
