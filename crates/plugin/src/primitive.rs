//! ExecPrimitive's vocabulary, shared by the C layer and every backend: the request as
//! disklib made it, its progress record, and what goes back.

use openvaai_abi::{AllocType, CloneFlags, VixError};
use openvaai_client::RawDataStore;

/// The primitives SupportStatus asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    Clone,
    Reserve,
    Statx,
}

/// A primitive as disklib asked for it, its strings still raw bytes from C.
#[derive(Debug)]
pub enum Request<'a> {
    Clone {
        src: &'a [u8],
        dst: &'a [u8],
        flags: CloneFlags,
        src_datastore: Option<RawDataStore<'a>>,
    },
    Reserve {
        file: &'a [u8],
    },
    Statx {
        file: &'a [u8],
    },
}

impl Request<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Clone { .. } => "CLONEFILE",
            Request::Reserve { .. } => "RESVSPACE",
            Request::Statx { .. } => "STATX",
        }
    }
}

/// disklib's progress record: how often to report, and the report itself.
pub trait Progress {
    /// Report every this many bytes (0: as often as there is progress).
    fn update_bytes(&self) -> u64;
    /// Reports `delta` bytes done since the last report; false means the user aborts.
    fn report(&mut self, delta: u64) -> bool;
}

/// The figures of a STATX result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatxFigures {
    pub total_bytes: u64,
    pub alloced_bytes: u64,
    pub unique_bytes: u64,
    pub alloc_type: AllocType,
}

/// What ExecPrimitive reports back to disklib.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: VixError,
    pub statx: Option<StatxFigures>,
}

impl Outcome {
    pub fn status(status: VixError) -> Outcome {
        Outcome {
            status,
            statx: None,
        }
    }
}

/// Reports `done - *reported` bytes to disklib in calls of exactly `step` bytes (the header:
/// "for every updateBytes bytes"), and with `last` the remainder below `step` as one more
/// call. Stops at the first abort answer and returns false; `*reported` counts what was
/// reported.
pub fn report_steps(
    progress: &mut dyn Progress,
    reported: &mut u64,
    done: u64,
    step: u64,
    last: bool,
) -> bool {
    if step == 0 {
        // No `updateBytes` (0, or no progress record): each bit of progress in one report,
        // never one call per byte.
        if done > *reported {
            let delta = done - *reported;
            *reported = done;
            return progress.report(delta);
        }
        return true;
    }
    while done.saturating_sub(*reported) >= step {
        *reported += step;
        if !progress.report(step) {
            return false;
        }
    }
    if last && done > *reported {
        let rest = done - *reported;
        *reported = done;
        return progress.report(rest);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the calls and bytes reported.
    struct Count(u64, u64);

    impl Progress for Count {
        fn update_bytes(&self) -> u64 {
            0
        }
        fn report(&mut self, delta: u64) -> bool {
            self.0 += 1;
            self.1 += delta;
            true
        }
    }

    #[test]
    fn without_update_bytes_progress_comes_whole_not_a_byte_at_a_time() {
        // 100 GiB done at once: one call, not 10^11 (which spun for minutes).
        let (mut p, mut reported) = (Count(0, 0), 0);
        assert!(report_steps(&mut p, &mut reported, 100 << 30, 0, false));
        assert!(report_steps(&mut p, &mut reported, 100 << 30, 0, true));
        assert_eq!((p.0, p.1, reported), (1, 100 << 30, 100 << 30));
        // With a step: exact steps, then the remainder last.
        let (mut p, mut reported) = (Count(0, 0), 0);
        assert!(report_steps(
            &mut p,
            &mut reported,
            10 << 20 | 7,
            1 << 20,
            true
        ));
        assert_eq!((p.0, p.1), (11, 10 << 20 | 7));
    }
}
