//! Optional pacing of a job's bytes (`limits.max_job_bytes_per_second`), so that offloads do
//! not starve the NAS's NFS service. The engine reports progress after each chunk; pacing
//! sleeps in that callback, in short slices, and stops sleeping as soon as the job is
//! cancelled. A chunk is reported once it is done, so pacing waits for the next one too:
//! a job's bytes never run ahead of the rate, not even by the chunk just done.

use std::cell::Cell;
use std::time::{Duration, Instant};

use openvaai_engine::CancelToken;

const SLICE: Duration = Duration::from_millis(20);

pub struct Throttle {
    rate: Option<u64>,
    start: Instant,
    /// The bytes done at the last call.
    last: Cell<u64>,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Throttle {
        Throttle {
            rate,
            start: Instant::now(),
            last: Cell::new(0),
        }
    }

    /// Sleeps until `done` bytes and the next chunk (as large as the last one, at most up to
    /// `total`) are no faster than the rate, or until `cancel` fires.
    pub fn pace(&self, done: u64, total: u64, cancel: &CancelToken) {
        let Some(rate) = self.rate.filter(|&r| r > 0) else {
            return;
        };
        let chunk = done.saturating_sub(self.last.replace(done));
        let next = done.saturating_add(chunk).min(total.max(done));
        let due = self.start + Duration::from_secs_f64(next as f64 / rate as f64);
        while !cancel.is_cancelled() {
            let now = Instant::now();
            if now >= due {
                return;
            }
            std::thread::sleep((due - now).min(SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_and_stops_on_cancel() {
        let t = Throttle::new(Some(1000));
        let c = CancelToken::new();
        let start = Instant::now();
        // 100 bytes done, and as many to come: not before 200 ms.
        t.pace(100, 1000, &c);
        assert!(start.elapsed() >= Duration::from_millis(200));
        // The last chunk has nothing after it.
        let (t, start) = (Throttle::new(Some(1000)), Instant::now());
        t.pace(100, 100, &c);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(190));
        c.cancel();
        let start = Instant::now();
        t.pace(1_000_000, 2_000_000, &c);
        assert!(start.elapsed() < Duration::from_millis(100));
        Throttle::new(None).pace(u64::MAX, u64::MAX, &CancelToken::new());
    }
}
