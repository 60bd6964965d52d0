//! Logging through the functions disklib hands to `Init`.
//!
//! disklib's log functions take `(fmt, va_list)`; the plugin formats each message in Rust and
//! passes it through the C shim as `("%s", message)`. Before `Init` (or after the last `Done`)
//! messages are dropped: the plugin never falls back to stdout or stderr.

use std::ffi::CString;
use std::fmt;
use std::sync::{Mutex, MutexGuard, TryLockError};

use openvaai_abi::LogFunc;

/// The log functions of the current `Init`, and how many `Init`s are outstanding.
#[derive(Default)]
struct Sinks {
    init_count: u32,
    log: Option<LogFunc>,
    warn: Option<LogFunc>,
}

static SINKS: Mutex<Sinks> = Mutex::new(Sinks {
    init_count: 0,
    log: None,
    warn: None,
});

fn sinks() -> MutexGuard<'static, Sinks> {
    // A panic while the lock was held cannot leave `Sinks` half-written (plain field stores),
    // so a poisoned lock is still good to use.
    SINKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the log functions of an `Init` call. disklib's panic function is kept out on
/// purpose: it ends the host process, and nothing in the plugin is worth that.
pub(crate) fn init(log: Option<LogFunc>, warn: Option<LogFunc>) {
    let mut s = sinks();
    s.init_count = s.init_count.saturating_add(1);
    if log.is_some() {
        s.log = log;
    }
    if warn.is_some() {
        s.warn = warn;
    }
}

/// Counts one `Done`; returns true when no `Init` is outstanding any more.
pub(crate) fn release() -> bool {
    let mut s = sinks();
    s.init_count = s.init_count.saturating_sub(1);
    s.init_count == 0
}

/// Forgets the log functions (after the last `Done`, the host may unload them).
pub(crate) fn clear() {
    let mut s = sinks();
    if s.init_count == 0 {
        s.log = None;
        s.warn = None;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warning,
}

/// Formats and emits one message.
pub(crate) fn emit(level: Level, args: fmt::Arguments<'_>) {
    write(level, args, true)
}

/// Like [`emit`] but gives up when the logger is busy: for the panic hook, which may run on a
/// thread that already holds the lock and must never deadlock.
pub(crate) fn try_emit(level: Level, args: fmt::Arguments<'_>) {
    write(level, args, false)
}

fn write(level: Level, args: fmt::Arguments<'_>, may_wait: bool) {
    let func = match SINKS.try_lock() {
        Ok(s) => pick(&s, level),
        Err(TryLockError::Poisoned(p)) => pick(&p.into_inner(), level),
        // Another thread holds the lock for a few field stores only: the wait is bounded.
        Err(TryLockError::WouldBlock) if may_wait => pick(&sinks(), level),
        Err(TryLockError::WouldBlock) => None,
    };
    let Some(func) = func else { return };
    let text = format!("openvaai: {}\n", escape(&args.to_string()));
    if let Ok(msg) = CString::new(text) {
        crate::shim::call_log(func, &msg);
    }
}

/// `text` as one line of the host's log: every control character (newlines, escapes, NUL)
/// and every character that reorders or breaks lines in a viewer (bidirectional overrides,
/// Unicode line separators) written as a Rust escape (`\n`, `\u{1b}`). Messages carry
/// strings a server or a datastore's files chose (names in a listing, owners, paths): none
/// can forge a line, a log level or a terminal escape in disklib's log.
pub(crate) fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hostile) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hostile(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

fn pick(s: &Sinks, level: Level) -> Option<LogFunc> {
    match level {
        Level::Info => s.log.or(s.warn),
        Level::Warning => s.warn.or(s.log),
    }
}

/// `info!("...", args)`: a line in the host's log.
macro_rules! info {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Info, format_args!($($t)*)) };
}

/// `warning!("...", args)`: a warning in the host's log.
macro_rules! warning {
    ($($t:tt)*) => { $crate::log::emit($crate::log::Level::Warning, format_args!($($t)*)) };
}

pub(crate) use {info, warning};

/// A [`openvaai_client::Note`] that writes to the host's log.
pub(crate) fn note(args: fmt::Arguments<'_>) {
    emit(Level::Info, args)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn a_string_cannot_forge_a_line_or_an_escape_in_the_host_log() {
        let forged = "nfs42-tmp-1\nopenvaai: all good\r\x1b[2J\0\u{202e}txt.exe\u{2028}";
        let line = escape(forged);
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert_eq!(
            line,
            "nfs42-tmp-1\\nopenvaai: all good\\r\\u{1b}[2J\\u{0}\\u{202e}txt.exe\\u{2028}"
        );
        assert!(matches!(
            escape("plain é"),
            std::borrow::Cow::Borrowed("plain é")
        ));
    }
}
