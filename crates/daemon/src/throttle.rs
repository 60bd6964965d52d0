//! Optional pacing of a job's bytes (`limits.max_job_bytes_per_second`), so that offloads do
//! not starve the NAS's NFS service. The engine reports progress after each chunk; pacing
//! sleeps in that callback, in short slices, and stops sleeping as soon as the job is
//! cancelled.

use std::time::{Duration, Instant};

use openvaai_engine::CancelToken;

const SLICE: Duration = Duration::from_millis(20);

pub struct Throttle {
    rate: Option<u64>,
    start: Instant,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Throttle {
        Throttle {
            rate,
            start: Instant::now(),
        }
    }

    /// Sleeps until `done` bytes are no faster than the rate, or until `cancel` fires.
    pub fn pace(&self, done: u64, cancel: &CancelToken) {
        let Some(rate) = self.rate.filter(|&r| r > 0) else {
            return;
        };
        let due = self.start + Duration::from_secs_f64(done as f64 / rate as f64);
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
        t.pace(100, &c);
        assert!(start.elapsed() >= Duration::from_millis(100));
        c.cancel();
        let start = Instant::now();
        t.pace(1_000_000, &c);
        assert!(start.elapsed() < Duration::from_millis(100));
        Throttle::new(None).pace(u64::MAX, &CancelToken::new());
    }
}
