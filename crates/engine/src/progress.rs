//! Progress reports and cancellation.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::error::{Error, ErrorKind};

/// Cumulative progress of one operation: `done` bytes of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the file dealt with so far (copied, skipped as a hole, or provisioned).
    pub done: u64,
    /// The file's logical size.
    pub total: u64,
}

/// A cancellation flag; clones share it. The engine checks it at least once per chunk.
///
/// It fires in one of two ways: [`cancel`](Self::cancel) (the work is abandoned, nothing is
/// left) or [`suspend`](Self::suspend) (the process is stopping for a restart: work that can
/// outlive the process, a job's full clone, keeps its partial file and record for the next
/// one; any other work is abandoned as by `cancel`).
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicU8>);

const FIRED: u8 = 1;
const SUSPENDED: u8 = 2;

impl CancelToken {
    /// A token that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the token: the operation using it stops at its next check with
    /// [`ErrorKind::Cancelled`].
    pub fn cancel(&self) {
        self.0.fetch_or(FIRED, Ordering::SeqCst);
    }

    /// Fires the token for a restart: as [`cancel`](Self::cancel), but work that can be
    /// resumed by the next process is kept for it.
    pub fn suspend(&self) {
        self.0.fetch_or(FIRED | SUSPENDED, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) or [`suspend`](Self::suspend) was called on this
    /// token or a clone of it.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) & FIRED != 0
    }

    /// Whether [`suspend`](Self::suspend) was called on this token or a clone of it.
    pub fn is_suspended(&self) -> bool {
        self.0.load(Ordering::SeqCst) & SUSPENDED != 0
    }

    /// `Err(Cancelled)` once the token has fired.
    pub(crate) fn check(&self, op: &'static str, path: &str) -> Result<(), Error> {
        if self.is_cancelled() {
            Err(Error::new(ErrorKind::Cancelled, op, path.to_owned()))
        } else {
            Ok(())
        }
    }
}

/// Report at least this often (in bytes of work).
pub(crate) const REPORT_EVERY: u64 = 16 << 20;

/// Calls the caller's callback every [`REPORT_EVERY`] bytes of work and at the end.
pub(crate) struct Reporter<'a> {
    callback: &'a mut dyn FnMut(Progress),
    done: u64,
    total: u64,
    last: u64,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(callback: &'a mut dyn FnMut(Progress), total: u64) -> Self {
        Reporter {
            callback,
            done: 0,
            total,
            last: 0,
        }
    }

    /// A reporter for work of which `done` bytes were done before (a resumed copy): its
    /// first report comes [`REPORT_EVERY`] bytes later.
    pub(crate) fn resuming(callback: &'a mut dyn FnMut(Progress), total: u64, done: u64) -> Self {
        let done = done.min(total);
        Reporter {
            callback,
            done,
            total,
            last: done,
        }
    }

    /// The size of the work (the file's logical size).
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Adds `n` bytes of work; reports if enough accumulated since the last report.
    pub(crate) fn advance(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        if self.done - self.last >= REPORT_EVERY {
            self.last = self.done;
            (self.callback)(Progress {
                done: self.done,
                total: self.total,
            });
        }
    }

    /// The final report: everything done.
    pub(crate) fn finish(&mut self) {
        self.done = self.total;
        self.last = self.total;
        (self.callback)(Progress {
            done: self.total,
            total: self.total,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_token_clones_share_state() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
        assert_eq!(b.check("op", "p").unwrap_err().kind(), ErrorKind::Cancelled);
        assert!(!b.is_suspended());
        let c = CancelToken::new();
        c.clone().suspend();
        assert!(c.is_cancelled() && c.is_suspended());
        c.cancel();
        assert!(
            c.is_suspended(),
            "a cancel after a suspend does not undo it"
        );
    }

    #[test]
    fn reporter_reports_every_interval_and_at_the_end() {
        let mut seen = Vec::new();
        let mut cb = |p: Progress| seen.push(p.done);
        let mut r = Reporter::new(&mut cb, 100 << 20);
        for _ in 0..10 {
            r.advance(10 << 20);
        }
        r.finish();
        assert_eq!(
            seen,
            vec![20 << 20, 40 << 20, 60 << 20, 80 << 20, 100 << 20, 100 << 20]
        );
    }
}
