//! The job table: long work (clone, reserve) runs on its own thread; clients poll it with
//! WAIT, stop it with CANCEL, and lose it if they stop polling for a lease period.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openvaai_engine::{CancelToken, Progress};
use openvaai_proto::{Failure, JobInfo, JobState, Side, Status};

/// Most jobs (running and finished) held at once; see [`JobTable::forget_oldest_finished`].
const MAX_KEPT: usize = 1024;

/// The work of a job: runs the engine, reports progress, returns how it ended.
pub type Work = Box<dyn FnOnce(&mut dyn FnMut(Progress), &CancelToken) -> Ended + Send>;

/// How a job's work ended: its status, and which path a failure concerns (for FAILURE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub status: Status,
    pub side: Side,
}

impl From<Status> for Ended {
    fn from(status: Status) -> Ended {
        Ended {
            status,
            side: Side::None,
        }
    }
}

/// One job.
pub struct Job {
    pub id: u64,
    /// Exports a connection must have authenticated to see this job.
    pub exports: Vec<usize>,
    pub what: String,
    cancel: CancelToken,
    state: Mutex<JobInner>,
    cond: Condvar,
}

/// Where a job stands with `CLONE_HOLD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// Not held: publishes as soon as the work is done.
    Off,
    /// Held, the data not all in place yet.
    Armed,
    /// Every byte in place; the work waits for COMMIT or CANCEL.
    Ready,
    /// COMMIT came: the work publishes.
    Released,
}

struct JobInner {
    hold: Hold,
    done: u64,
    total: u64,
    result: Option<Status>,
    side: Side,
    last_touch: Instant,
    finished_at: Option<Instant>,
    waiters: usize,
    thread: Option<JoinHandle<()>>,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Job {
    /// READY and not being cancelled.
    fn is_ready(&self, inner: &JobInner) -> bool {
        inner.hold == Hold::Ready && !self.cancel.is_cancelled()
    }

    fn info(&self, inner: &JobInner) -> JobInfo {
        let (state, result) = match inner.result {
            None if self.is_ready(inner) => (JobState::Ready, Status::Ok),
            None => (JobState::Running, Status::Ok),
            Some(Status::Ok) => (JobState::Done, Status::Ok),
            Some(s) => (JobState::Failed, s),
        };
        JobInfo {
            state,
            done: inner.done,
            total: inner.total,
            result,
        }
    }

    /// Waits until `done >= threshold`, READY, the end of the job, or `max_wait`.
    pub fn wait(&self, threshold: u64, max_wait: Duration) -> JobInfo {
        let deadline = Instant::now() + max_wait;
        let mut g = lock(&self.state);
        g.waiters += 1;
        while g.result.is_none() && g.done < threshold && !self.is_ready(&g) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g = self
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        g.waiters -= 1;
        g.last_touch = Instant::now();
        self.info(&g)
    }

    /// Cancels the job and waits (up to `bound`) for it to clean up.
    pub fn cancel(&self, bound: Duration) -> JobInfo {
        self.fire();
        self.wait(u64::MAX, bound)
    }

    /// Fires the cancel token and wakes a job held READY, so it sees it.
    fn fire(&self) {
        self.cancel.cancel();
        self.cond.notify_all();
    }

    /// COMMIT: lets a READY job publish and waits (up to `bound`) for its end. A job that
    /// already ended reports its final state (a COMMIT retried after a reconnect); a job that
    /// is not held, or not READY yet, is an invalid argument.
    pub fn commit(&self, bound: Duration) -> Result<JobInfo, Status> {
        let mut g = lock(&self.state);
        match g.hold {
            Hold::Ready => {
                g.hold = Hold::Released;
                drop(g);
                self.cond.notify_all();
            }
            Hold::Released => drop(g),
            Hold::Off | Hold::Armed if g.result.is_some() => drop(g),
            Hold::Off | Hold::Armed => return Err(Status::InvalidArg),
        }
        Ok(self.wait(u64::MAX, bound))
    }

    /// FAILURE: the result as WAIT reports it, and the path a failure concerns.
    pub fn failure(&self) -> Failure {
        let g = lock(&self.state);
        let result = self.info(&g).result;
        let side = if result == Status::Ok {
            Side::None
        } else {
            g.side
        };
        Failure { result, side }
    }

    fn is_finished(&self) -> bool {
        lock(&self.state).result.is_some()
    }
}

/// All jobs of the daemon.
pub struct JobTable {
    jobs: Mutex<HashMap<u64, Arc<Job>>>,
    max_jobs: usize,
    lease: Duration,
    closed: AtomicBool,
}

impl JobTable {
    pub fn new(max_jobs: usize, lease: Duration) -> JobTable {
        JobTable {
            jobs: Mutex::new(HashMap::new()),
            max_jobs,
            lease,
            closed: AtomicBool::new(false),
        }
    }

    /// Starts `work` on its own thread; `hold` keeps it READY before publishing, until
    /// COMMIT. OBJECT_IS_BUSY when `max_jobs` are running.
    pub fn start(
        &self,
        exports: Vec<usize>,
        what: String,
        hold: bool,
        work: Work,
    ) -> Result<u64, Status> {
        let mut jobs = lock(&self.jobs);
        if self.closed.load(Ordering::SeqCst) {
            return Err(Status::HostNotConnected);
        }
        let running = jobs.values().filter(|j| !j.is_finished()).count();
        if running >= self.max_jobs {
            tracing::warn!(%what, running, "job refused: too many jobs");
            return Err(Status::ObjectIsBusy);
        }
        self.forget_oldest_finished(&mut jobs);
        let id = loop {
            let id = u64::from_be_bytes(openvaai_proto::auth::random_bytes());
            if id != 0 && !jobs.contains_key(&id) {
                break id;
            }
        };
        let job = Arc::new(Job {
            id,
            exports,
            what,
            cancel: CancelToken::new(),
            state: Mutex::new(JobInner {
                hold: if hold { Hold::Armed } else { Hold::Off },
                done: 0,
                total: 0,
                result: None,
                side: Side::None,
                last_touch: Instant::now(),
                finished_at: None,
                waiters: 0,
                thread: None,
            }),
            cond: Condvar::new(),
        });
        let j = job.clone();
        let thread = std::thread::Builder::new()
            .name(format!("job-{id:016x}"))
            .spawn(move || run(&j, work));
        match thread {
            Ok(t) => {
                lock(&job.state).thread = Some(t);
                tracing::info!(job = %format!("{id:016x}"), what = %job.what, "job started");
                jobs.insert(id, job);
                Ok(id)
            }
            Err(e) => {
                tracing::error!("cannot start a job thread: {e}");
                Err(Status::OutOfMemory)
            }
        }
    }

    /// Keeps the table bounded when clients start many short jobs: past [`MAX_KEPT`]
    /// entries, the finished jobs nobody waits on go first, oldest first.
    fn forget_oldest_finished(&self, jobs: &mut HashMap<u64, Arc<Job>>) {
        if jobs.len() < MAX_KEPT {
            return;
        }
        let mut finished: Vec<(Instant, u64)> = jobs
            .values()
            .filter_map(|j| {
                let g = lock(&j.state);
                g.finished_at.filter(|_| g.waiters == 0).map(|t| (t, j.id))
            })
            .collect();
        finished.sort_unstable();
        let excess = jobs.len() + 1 - MAX_KEPT;
        for (_, id) in finished.into_iter().take(excess) {
            jobs.remove(&id);
        }
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        lock(&self.jobs).get(&id).cloned()
    }

    /// Cancels jobs whose lease expired and forgets finished jobs kept long enough.
    pub fn reap(&self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        lock(&self.jobs).retain(|_, job| {
            let mut g = lock(&job.state);
            if g.waiters > 0 {
                return true;
            }
            match g.finished_at {
                Some(t) if now.duration_since(t) > self.lease => {
                    gone.push(g.thread.take());
                    false
                }
                Some(_) => true,
                None => {
                    if now.duration_since(g.last_touch) > self.lease && !job.cancel.is_cancelled() {
                        tracing::warn!(
                            job = %format!("{:016x}", job.id), what = %job.what,
                            "lease expired: no WAIT from the client, cancelling"
                        );
                        job.fire();
                    }
                    true
                }
            }
        });
        for t in gone.into_iter().flatten() {
            let _ = t.join();
        }
    }

    /// Refuses new jobs, cancels the running ones and waits for them up to `bound`.
    /// Returns how many were still running at the end.
    pub fn shutdown(&self, bound: Duration) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        let jobs: Vec<Arc<Job>> = lock(&self.jobs).values().cloned().collect();
        for j in &jobs {
            j.fire();
        }
        let deadline = Instant::now() + bound;
        let mut left = 0;
        for j in &jobs {
            let rest = deadline.saturating_duration_since(Instant::now());
            if j.wait(u64::MAX, rest).state == JobState::Running {
                left += 1;
            }
        }
        left
    }
}

fn run(job: &Job, work: Work) {
    let mut progress = |p: Progress| {
        let mut g = lock(&job.state);
        g.done = p.done;
        g.total = p.total;
        if g.hold == Hold::Armed && p.done >= p.total {
            // The engine reports done == total before it publishes and checks the cancel
            // token after: holding here keeps the finished clone invisible until COMMIT.
            g.hold = Hold::Ready;
            job.cond.notify_all();
            tracing::debug!(job = %format!("{:016x}", job.id), "ready, waiting for COMMIT");
            while g.hold == Hold::Ready && !job.cancel.is_cancelled() {
                g = job
                    .cond
                    .wait_timeout(g, Duration::from_millis(250))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        drop(g);
        job.cond.notify_all();
    };
    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        work(&mut progress, &job.cancel)
    }))
    .unwrap_or(Ended::from(Status::Fail));
    let result = ended.status;
    let mut g = lock(&job.state);
    g.result = Some(result);
    g.side = ended.side;
    g.finished_at = Some(Instant::now());
    drop(g);
    job.cond.notify_all();
    tracing::info!(job = %format!("{:016x}", job.id), what = %job.what, status = ?result, "job finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow() -> Work {
        Box::new(|progress, cancel| {
            for i in 0..1000u64 {
                if cancel.is_cancelled() {
                    return Status::Cancelled.into();
                }
                progress(Progress {
                    done: i,
                    total: 1000,
                });
                std::thread::sleep(Duration::from_millis(5));
            }
            Status::Ok.into()
        })
    }

    #[test]
    fn limit_wait_cancel_and_lease() {
        let t = JobTable::new(1, Duration::from_millis(200));
        let a = t.start(vec![0], "a".into(), false, slow()).unwrap();
        assert_eq!(
            t.start(vec![0], "b".into(), false, slow()),
            Err(Status::ObjectIsBusy)
        );
        let job = t.get(a).unwrap();
        let i = job.wait(3, Duration::from_secs(5));
        assert!(i.done >= 3 && i.state == JobState::Running);
        let i = job.cancel(Duration::from_secs(5));
        assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));

        let b = t.start(vec![0], "c".into(), false, slow()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        t.reap();
        let i = t.get(b).unwrap().wait(u64::MAX, Duration::from_secs(5));
        assert_eq!(i.result, Status::Cancelled);
        std::thread::sleep(Duration::from_millis(300));
        t.reap();
        assert!(t.get(b).is_none() && t.get(a).is_none());
    }

    #[test]
    fn finished_jobs_are_forgotten_past_the_cap() {
        let t = JobTable::new(4, Duration::from_secs(3600));
        let mut last = 0;
        for _ in 0..MAX_KEPT + 10 {
            last = t
                .start(
                    vec![0],
                    "quick".into(),
                    false,
                    Box::new(|_, _| Status::Ok.into()),
                )
                .unwrap();
            t.get(last).unwrap().wait(u64::MAX, Duration::from_secs(5));
        }
        assert!(lock(&t.jobs).len() <= MAX_KEPT);
        assert!(t.get(last).is_some());
    }

    /// A held job: progress up to the total, then READY until COMMIT or CANCEL.
    fn held() -> Work {
        Box::new(|progress, cancel| {
            progress(Progress {
                done: 10,
                total: 10,
            });
            if cancel.is_cancelled() {
                Status::Cancelled.into()
            } else {
                Status::Ok.into()
            }
        })
    }

    #[test]
    fn a_held_job_waits_ready_for_commit_or_cancel() {
        let t = JobTable::new(4, Duration::from_secs(30));
        let a = t.start(vec![0], "a".into(), true, held()).unwrap();
        let job = t.get(a).unwrap();
        let i = job.wait(u64::MAX, Duration::from_secs(5));
        assert_eq!((i.state, i.done), (JobState::Ready, 10));
        // Still READY a while later: nothing publishes without COMMIT.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(job.wait(0, Duration::ZERO).state, JobState::Ready);
        let i = job.commit(Duration::from_secs(5)).unwrap();
        assert_eq!((i.state, i.result), (JobState::Done, Status::Ok));
        // A COMMIT retried after the end reports the end.
        assert_eq!(job.commit(Duration::ZERO).unwrap().state, JobState::Done);

        let b = t.start(vec![0], "b".into(), true, held()).unwrap();
        let job = t.get(b).unwrap();
        assert_eq!(
            job.wait(u64::MAX, Duration::from_secs(5)).state,
            JobState::Ready
        );
        let i = job.cancel(Duration::from_secs(5));
        assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));

        let c = t.start(vec![0], "c".into(), false, slow()).unwrap();
        assert_eq!(
            t.get(c).unwrap().commit(Duration::ZERO),
            Err(Status::InvalidArg)
        );
    }

    #[test]
    fn a_held_job_whose_client_vanishes_is_cancelled_by_its_lease() {
        let t = JobTable::new(4, Duration::from_millis(100));
        let a = t.start(vec![0], "a".into(), true, held()).unwrap();
        let job = t.get(a).unwrap();
        assert_eq!(
            job.wait(u64::MAX, Duration::from_secs(5)).state,
            JobState::Ready
        );
        std::thread::sleep(Duration::from_millis(200));
        t.reap();
        let i = job.wait(u64::MAX, Duration::from_secs(5));
        assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    }

    #[test]
    fn shutdown_cancels_and_refuses() {
        let t = JobTable::new(4, Duration::from_secs(30));
        t.start(vec![0], "a".into(), false, slow()).unwrap();
        assert_eq!(t.shutdown(Duration::from_secs(5)), 0);
        assert!(t.start(vec![0], "b".into(), false, slow()).is_err());
    }
}
