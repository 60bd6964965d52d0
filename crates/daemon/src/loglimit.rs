//! Rate limiting for log lines that peers can cause (refused connections, failed handshakes,
//! rejected calls): a flood of them must not flood the log.
//!
//! Each kind of line (keyed by its message text) gets [`BURST`] lines per [`INTERVAL`]; the
//! rest are counted, not written. The next line of that kind that is written carries
//! `held_back=N`, and [`flush`] (called by the acceptor's loop) writes one summary line for
//! every kind whose interval ended with lines held back and nothing since.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window each kind of line is counted in.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Lines of one kind written per window.
pub const BURST: u32 = 5;

struct Window {
    start: Instant,
    written: u32,
    held: u64,
}

/// Lines written and held back, per kind.
pub struct Limiter {
    windows: Mutex<BTreeMap<&'static str, Window>>,
}

impl Limiter {
    pub const fn new() -> Limiter {
        Limiter {
            windows: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether a line of `kind` may be written at `now`: `Some(held)` with how many of that
    /// kind were held back before it, or `None` to hold this one back.
    pub fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut windows = crate::sync::lock(&self.windows);
        let w = windows.entry(kind).or_insert(Window {
            start: now,
            written: 0,
            held: 0,
        });
        if now.duration_since(w.start) >= INTERVAL {
            w.start = now;
            w.written = 0;
        }
        if w.written < BURST {
            w.written += 1;
            Some(std::mem::take(&mut w.held))
        } else {
            w.held += 1;
            None
        }
    }

    /// The kinds whose window ended with lines held back, and how many; their counts restart.
    pub fn expired(&self, now: Instant) -> Vec<(&'static str, u64)> {
        let mut windows = crate::sync::lock(&self.windows);
        let mut out = Vec::new();
        windows.retain(|kind, w| {
            if now.duration_since(w.start) < INTERVAL {
                return true;
            }
            if w.held > 0 {
                out.push((*kind, w.held));
            }
            false
        });
        out
    }
}

static LIMITER: Limiter = Limiter::new();

/// [`Limiter::admit`] on the daemon's limiter, now.
pub fn admit(kind: &'static str) -> Option<u64> {
    LIMITER.admit(kind, Instant::now())
}

/// Writes a summary line for each kind whose window ended with lines held back.
pub fn flush() {
    for (kind, held) in LIMITER.expired(Instant::now()) {
        tracing::warn!(
            held_back = held,
            "{held} more log lines like \"{kind}\" held back in the last {} s",
            INTERVAL.as_secs()
        );
    }
}

/// `limited!(warn, { %peer, }, "closing connection: {e}")`: a `tracing` event at that level
/// with those fields (each followed by a comma), written only while [`admit`] lets lines of
/// its kind (the message's format string) through.
macro_rules! limited {
    ($level:ident, { $($field:tt)* }, $fmt:literal $($args:tt)*) => {{
        if let Some(held) = $crate::loglimit::admit($fmt) {
            if held == 0 {
                tracing::$level!($($field)* $fmt $($args)*);
            } else {
                tracing::$level!($($field)* held_back = held, $fmt $($args)*);
            }
        }
    }};
}
pub(crate) use limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_a_count() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(l.admit("a", t0), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(l.admit("a", t0), None);
        }
        // Another kind has its own window.
        assert_eq!(l.admit("b", t0), Some(0));
        assert!(l.expired(t0 + Duration::from_secs(1)).is_empty());
        // The next window's first line says how many were held back.
        let t1 = t0 + INTERVAL;
        assert_eq!(l.admit("a", t1), Some(1000));
        assert_eq!(l.admit("a", t1), Some(0));
    }

    #[test]
    fn a_window_that_ends_quietly_is_summarised_once() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for _ in 0..BURST + 7 {
            l.admit("a", t0);
        }
        l.admit("b", t0);
        let later = t0 + INTERVAL + Duration::from_millis(1);
        assert_eq!(l.expired(later), vec![("a", 7)]);
        assert!(l.expired(later).is_empty());
        assert_eq!(l.admit("a", later), Some(0));
    }
}
