//! The job table: long work (clone, reserve) runs on a job thread, or waits its turn in
//! a queue when `max_jobs` are running; clients poll it with WAIT, stop it with CANCEL, and
//! lose it if they stop polling for a lease period.
//!
//! A queued job answers WAIT as RUNNING with nothing done and the result OBJECT_IS_BUSY (the
//! protocol's "waiting its turn"), so a client knows it is alive though it makes no progress.
//! On shutdown, jobs end FAILED with HOST_NOT_CONNECTED (the daemon is going away), and the
//! table waits briefly for their polling clients to collect that end.
//!
//! A clone's work ends with its result staged (every byte in place, nothing visible): a
//! [`Staged`] value. A job started with `hold` keeps it, READY, until COMMIT publishes it
//! (on the committing connection's thread) or CANCEL, its lease or the shutdown drops it
//! (discarded); its thread has ended, but it keeps its running slot until then. Any other
//! job publishes at once.

mod meta;
mod runner;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use openvaai_engine::{CancelToken, Progress};
use openvaai_proto::{Failure, JobInfo, JobState, Side, Status};

use crate::sync::lock;
pub use meta::{JobMeta, Observer, Primitive};
use runner::{Admitted, Runner, Slot, Task};

/// Fewest jobs (running, queued and finished) held at once; see
/// [`JobTable::forget_oldest_finished`].
const MAX_KEPT: usize = 1024;
/// On shutdown, how long to wait for polling clients to collect the end of their jobs.
const DRAIN_BOUND: Duration = Duration::from_secs(2);
/// A client that polled a job this recently at shutdown is taken to be polling still.
const POLLING_RECENTLY: Duration = Duration::from_secs(1);

/// The work of a job: runs the engine, reports progress, says how it came out.
pub type Work = Box<dyn FnOnce(&mut dyn FnMut(Progress), &CancelToken) -> Worked + Send>;

/// How a job's work came out.
pub enum Worked {
    /// It ended: done, failed or cancelled.
    Ended(Ended),
    /// Its result is in place but not visible: publishing it is the job's last step.
    Staged(Staged),
}

/// A result in place but not visible yet (a staged clone).
pub struct Staged {
    /// Its size: the job's `done` and `total` from now on.
    pub bytes: u64,
    pub publish: Box<dyn Publish>,
}

/// A staged result's last step: published, kept for the next daemon, or (dropped) discarded.
pub trait Publish: Send {
    /// Publishes the staged result, and says how that went.
    fn publish(self: Box<Self>) -> Ended;

    /// The daemon stops for a restart: leaves the result for the next one where it can
    /// outlive this process (a job's clone), else discards it.
    fn keep(self: Box<Self>) {}
}

/// A closure that publishes (and cannot be kept).
impl<F: FnOnce() -> Ended + Send> Publish for F {
    fn publish(self: Box<Self>) -> Ended {
        (*self)()
    }
}

impl From<Ended> for Worked {
    fn from(ended: Ended) -> Worked {
        Worked::Ended(ended)
    }
}

impl From<Status> for Worked {
    fn from(status: Status) -> Worked {
        Worked::Ended(status.into())
    }
}

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
    /// What it is, for reports (`openvaai status`, metrics).
    pub meta: JobMeta,
    /// Who is told of its start and end.
    observer: Arc<dyn Observer>,
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
    /// Every byte in place: the job keeps its staged result until COMMIT or CANCEL.
    Ready,
    /// COMMIT came: the result is being published, or was.
    Released,
}

/// What a READY job keeps: its staged result and its running slot.
struct Held {
    publish: Box<dyn Publish>,
    slot: Slot,
}

struct JobInner {
    /// Waiting in the queue for a slot: no thread yet.
    queued: bool,
    hold: Hold,
    /// READY: the staged result, until COMMIT takes it to publish or a cancellation drops it.
    held: Option<Held>,
    done: u64,
    total: u64,
    result: Option<Status>,
    side: Side,
    last_touch: Instant,
    finished_at: Option<Instant>,
    waiters: usize,
    /// Stopped by the daemon's shutdown: a cancellation suspends it.
    by_shutdown: bool,
    /// Suspended by the shutdown: stopped, with no end to report (its client finds it, or
    /// starts it again, at the next daemon).
    suspended: bool,
    /// At shutdown its client was polling: the table waits for it to collect the end.
    owed: bool,
    /// Its end has been answered to a client (WAIT, CANCEL or COMMIT).
    reported: bool,
}

impl Job {
    fn new(
        id: u64,
        exports: Vec<usize>,
        meta: JobMeta,
        hold: bool,
        observer: Arc<dyn Observer>,
    ) -> Job {
        Job {
            id,
            exports,
            what: meta.what.clone(),
            meta,
            observer,
            cancel: CancelToken::new(),
            state: Mutex::new(JobInner {
                queued: true,
                hold: if hold { Hold::Armed } else { Hold::Off },
                held: None,
                done: 0,
                total: 0,
                result: None,
                side: Side::None,
                last_touch: Instant::now(),
                finished_at: None,
                waiters: 0,
                by_shutdown: false,
                suspended: false,
                owed: false,
                reported: false,
            }),
            cond: Condvar::new(),
        }
    }

    /// READY and not being cancelled.
    fn is_ready(&self, inner: &JobInner) -> bool {
        inner.hold == Hold::Ready && !self.cancel.is_cancelled()
    }

    fn info(&self, inner: &JobInner) -> JobInfo {
        let (state, result) = match inner.result {
            None if inner.queued => (JobState::Running, Status::ObjectIsBusy),
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

    /// Waits until `done >= threshold`, READY, the end of the job, or `max_wait`, for a
    /// client: it renews the lease and, at the end, counts as the end reported.
    pub fn wait(&self, threshold: u64, max_wait: Duration) -> JobInfo {
        self.await_info(threshold, max_wait, true)
    }

    fn await_info(&self, threshold: u64, max_wait: Duration, client: bool) -> JobInfo {
        let deadline = Instant::now() + max_wait;
        let mut g = lock(&self.state);
        g.waiters += 1;
        while g.result.is_none() && !g.suspended && g.done < threshold && !self.is_ready(&g) {
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
        if client {
            g.last_touch = Instant::now();
            g.reported |= g.result.is_some();
        }
        self.info(&g)
    }

    /// Cancels the job and waits (up to `bound`) for it to clean up.
    pub fn cancel(&self, bound: Duration) -> JobInfo {
        self.fire();
        self.wait(u64::MAX, bound)
    }

    /// [`Job::cancel`] for the admin (`openvaai status --cancel`): the same end for the
    /// client, which collects it with its next WAIT; not a poll of the client's.
    pub fn cancel_by_admin(&self, bound: Duration) -> JobInfo {
        self.fire();
        self.await_info(u64::MAX, bound, false)
    }

    /// Where the job stands, and whether it waits in the queue, for reports: renews nothing.
    pub fn standing(&self) -> (JobInfo, bool) {
        let g = lock(&self.state);
        (self.info(&g), g.queued)
    }

    /// Fires the cancel token. A job still queued ends here and then; a job held READY too,
    /// its staged result discarded (and its slot handed on).
    fn fire(&self) {
        self.cancel.cancel();
        if self.leave_queue() {
            self.finish(Status::Cancelled.into());
        }
        let held = lock(&self.state).held.take();
        if let Some(Held { publish, slot }) = held {
            drop(publish);
            drop(slot);
            self.finish(Status::Cancelled.into());
        }
        self.cond.notify_all();
    }

    /// The daemon stops (for a restart, as far as it knows): the job's token is suspended,
    /// so a clone that can outlive the daemon keeps its partial file for the next one, and a
    /// READY one keeps its staged result; any other work stops and leaves nothing. The job
    /// does not end: its client is told RUNNING until its connection closes, then finds it
    /// again at the next daemon (resumed from its record), or starts it again there (a job
    /// not recorded: it had published nothing).
    fn suspend_for_shutdown(&self) {
        {
            let mut g = lock(&self.state);
            if g.result.is_none() {
                g.by_shutdown = true;
                g.owed = g.waiters > 0 || g.last_touch.elapsed() < POLLING_RECENTLY;
            }
        }
        self.cancel.suspend();
        if self.leave_queue() {
            self.finish(Status::Cancelled.into());
        }
        let held = lock(&self.state).held.take();
        if let Some(Held { publish, slot }) = held {
            publish.keep();
            drop(slot);
            self.finish(Status::Cancelled.into());
        }
        self.cond.notify_all();
    }

    /// Takes the job out of the queue (to run it, or to end it there); false if it was not
    /// queued (already running, or already taken out).
    fn leave_queue(&self) -> bool {
        std::mem::replace(&mut lock(&self.state).queued, false)
    }

    fn is_queued(&self) -> bool {
        lock(&self.state).queued
    }

    /// Ends the job as `ended` says. A job stopped by the daemon's shutdown does not end: it
    /// is suspended (see [`Job::suspend_for_shutdown`]).
    fn finish(&self, ended: Ended) {
        let mut g = lock(&self.state);
        if ended.status == Status::Cancelled && g.by_shutdown {
            g.suspended = true;
            drop(g);
            tracing::info!(job = %format!("{:016x}", self.id), what = %self.what, "job suspended: the daemon stops; its client goes on with it at the next start");
            self.cond.notify_all();
            return;
        }
        let status = ended.status;
        g.result = Some(status);
        g.side = ended.side;
        g.finished_at = Some(Instant::now());
        let info = self.info(&g);
        drop(g);
        // Recorded before anyone waiting is woken: a cancel by the admin finds the end.
        self.observer.finished(self, status, &info);
        self.cond.notify_all();
        // One line per job is DEBUG: a storm of lazy clones runs thousands a second, and
        // formatting and writing their lines cost more than the clones' own work. A job that
        // did not succeed stays at INFO (the failure itself is logged where it happened).
        if status == Status::Ok {
            tracing::debug!(job = %format!("{:016x}", self.id), what = %self.what, ?status, "job finished");
        } else {
            tracing::info!(job = %format!("{:016x}", self.id), what = %self.what, ?status, "job finished");
        }
    }

    /// The work came out `staged`: READY with it if held (and not cancelled meanwhile),
    /// else published at once (or, cancelled meanwhile, discarded).
    fn staged(&self, staged: Staged, slot: Slot) {
        let mut g = lock(&self.state);
        g.done = staged.bytes;
        g.total = staged.bytes;
        let cancelled = self.cancel.is_cancelled();
        if g.hold == Hold::Armed && !cancelled {
            g.hold = Hold::Ready;
            g.held = Some(Held {
                publish: staged.publish,
                slot,
            });
            drop(g);
            // Recorded before anyone waiting is woken, as the end is.
            self.observer.ready(self);
            self.cond.notify_all();
            tracing::debug!(job = %format!("{:016x}", self.id), "ready, waiting for COMMIT");
            return;
        }
        drop(g);
        if self.cancel.is_suspended() {
            staged.publish.keep();
            drop(slot);
            self.finish(Status::Cancelled.into());
        } else if cancelled {
            drop(staged.publish);
            drop(slot);
            self.finish(Status::Cancelled.into());
        } else {
            self.publish(staged.publish, slot);
        }
    }

    /// Publishes a staged result, hands the running slot on, and ends the job as that went
    /// (FAIL if it panicked). The slot goes first everywhere a job ends, so that a client
    /// that sees the end and starts another job finds the place free.
    fn publish(&self, publish: Box<dyn Publish>, slot: Slot) {
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| publish.publish()))
            .unwrap_or(Ended::from(Status::Fail));
        drop(slot);
        self.finish(ended);
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

    /// COMMIT: publishes a READY job's staged result, on the caller's thread, and reports
    /// the job's end (waiting up to `bound` for it, if another COMMIT is publishing). A job
    /// that already ended reports its final state (a COMMIT retried after a reconnect); a
    /// job that is not held, or not READY yet, is an invalid argument.
    pub fn commit(&self, bound: Duration) -> Result<JobInfo, Status> {
        let mut g = lock(&self.state);
        match g.hold {
            Hold::Ready => {
                g.hold = Hold::Released;
                // None: a cancellation took it first; the job has ended, as reported below.
                let held = g.held.take();
                drop(g);
                self.cond.notify_all();
                if let Some(Held { publish, slot }) = held {
                    self.publish(publish, slot);
                }
            }
            Hold::Released => drop(g),
            Hold::Off | Hold::Armed if g.result.is_some() => drop(g),
            Hold::Off | Hold::Armed => return Err(Status::InvalidArg),
        }
        Ok(self.wait(u64::MAX, bound))
    }
}

/// All jobs of the daemon.
pub struct JobTable {
    jobs: Mutex<HashMap<u64, Arc<Job>>>,
    runner: Arc<Runner<Job>>,
    observer: Arc<dyn Observer>,
    lease: Duration,
    /// Jobs kept before finished ones are forgotten early.
    keep: usize,
}

impl JobTable {
    /// At most `max_jobs` running and `max_queued` waiting for a slot.
    #[cfg(test)]
    pub fn new(max_jobs: usize, max_queued: usize, lease: Duration) -> JobTable {
        JobTable::reporting_to(max_jobs, max_queued, lease, Arc::new(meta::Unobserved))
    }

    /// [`JobTable::new`], its jobs reported to `observer`.
    pub fn reporting_to(
        max_jobs: usize,
        max_queued: usize,
        lease: Duration,
        observer: Arc<dyn Observer>,
    ) -> JobTable {
        JobTable {
            jobs: Mutex::new(HashMap::new()),
            runner: Arc::new(Runner::new(max_jobs, max_queued)),
            observer,
            lease,
            keep: MAX_KEPT.max(2 * (max_jobs + max_queued)),
        }
    }

    /// Starts `work` on a job thread, or queues it when `max_jobs` are running; `hold`
    /// keeps it READY before publishing, until COMMIT. OBJECT_IS_BUSY when the queue is full
    /// too; HOST_NOT_CONNECTED once shutting down.
    pub fn start(
        &self,
        exports: Vec<usize>,
        what: JobMeta,
        hold: bool,
        work: Work,
    ) -> Result<u64, Status> {
        self.start_with(exports, what, hold, None, |_| work)
    }

    /// [`JobTable::start`] with the work made for the job's id (`make(id)`): a new random
    /// id, or `id` (a job resumed from its record under the id its client knows;
    /// OBJECT_IS_BUSY if a job has it already).
    pub fn start_with(
        &self,
        exports: Vec<usize>,
        what: JobMeta,
        hold: bool,
        id: Option<u64>,
        make: impl FnOnce(u64) -> Work,
    ) -> Result<u64, Status> {
        let mut jobs = lock(&self.jobs);
        self.forget_oldest_finished(&mut jobs);
        let id = match id {
            Some(id) if id == 0 || jobs.contains_key(&id) => return Err(Status::ObjectIsBusy),
            Some(id) => id,
            None => loop {
                let id = u64::from_be_bytes(openvaai_proto::auth::random_bytes());
                if id != 0 && !jobs.contains_key(&id) {
                    break id;
                }
            },
        };
        let work = make(id);
        let job = Arc::new(Job::new(id, exports, what, hold, self.observer.clone()));
        self.observer.accepted(&job);
        let admitted = self.runner.admit(&job, work);
        match admitted {
            Ok(_) => self.observer.admitted(&job),
            Err(s) => self.observer.refused(&job, s),
        }
        match admitted {
            Ok(Admitted::Running) => {}
            Ok(Admitted::Queued(ahead)) => {
                tracing::debug!(job = %format!("{id:016x}"), what = %job.what, ahead, "job queued: max_jobs running");
            }
            Err(Status::ObjectIsBusy) => {
                tracing::warn!(what = %job.what, "job refused: max_jobs running and max_queued_jobs waiting");
                return Err(Status::ObjectIsBusy);
            }
            Err(s) => return Err(s),
        }
        jobs.insert(id, job);
        Ok(id)
    }

    /// Keeps the table bounded when clients start many short jobs: past `keep` entries, the finished jobs nobody waits on go first, oldest first.
    fn forget_oldest_finished(&self, jobs: &mut HashMap<u64, Arc<Job>>) {
        if jobs.len() < self.keep {
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
        let excess = jobs.len() + 1 - self.keep;
        for (_, id) in finished.into_iter().take(excess) {
            jobs.remove(&id);
        }
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        lock(&self.jobs).get(&id).cloned()
    }

    /// Cancels jobs whose lease expired (running or queued) and forgets finished jobs kept
    /// long enough.
    pub fn reap(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        lock(&self.jobs).retain(|_, job| {
            let g = lock(&job.state);
            if g.waiters > 0 {
                return true;
            }
            match g.finished_at {
                Some(t) if now.duration_since(t) > self.lease => false,
                Some(_) => true,
                None => {
                    if now.duration_since(g.last_touch) > self.lease && !job.cancel.is_cancelled() {
                        expired.push(job.clone());
                    }
                    true
                }
            }
        });
        for job in expired {
            tracing::warn!(
                job = %format!("{:016x}", job.id), what = %job.what,
                "lease expired: no WAIT from the client, cancelling"
            );
            job.observer.lease_expired(&job);
            job.fire();
        }
    }

    /// Refuses new jobs, and suspends the queued and running ones (see
    /// [`Job::suspend_for_shutdown`]), waiting for them up to `bound`. Then waits (briefly)
    /// for the clients that were polling jobs that ended meanwhile to collect those ends.
    /// Returns how many jobs were still running at the end.
    pub fn shutdown(&self, bound: Duration) -> usize {
        let waiting = self.runner.close();
        let jobs: Vec<Arc<Job>> = lock(&self.jobs).values().cloned().collect();
        for j in waiting.iter().chain(&jobs) {
            j.suspend_for_shutdown();
        }
        let deadline = Instant::now() + bound;
        let mut left = 0;
        for j in &jobs {
            let rest = deadline.saturating_duration_since(Instant::now());
            j.await_info(u64::MAX, rest, false);
            let g = lock(&j.state);
            if g.result.is_none() && !g.suspended && !j.is_ready(&g) {
                left += 1;
            }
        }
        let unreported = self.drain(&jobs, DRAIN_BOUND);
        if unreported > 0 {
            tracing::info!(unreported, "clients did not collect the end of their jobs");
        }
        left
    }

    /// Waits up to `bound` until every job owed to a polling client has been reported;
    /// returns how many were not.
    fn drain(&self, jobs: &[Arc<Job>], bound: Duration) -> usize {
        let deadline = Instant::now() + bound;
        loop {
            let owed = jobs
                .iter()
                .filter(|j| {
                    let g = lock(&j.state);
                    g.owed && !g.reported && g.result.is_some()
                })
                .count();
            if owed == 0 || Instant::now() >= deadline {
                return owed;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs a job's work on its thread, which holds `slot`: until the work ends, or, for a held
/// clone, until its staged result is published or discarded.
fn run(job: &Job, work: Work, slot: Slot) {
    let mut progress = |p: Progress| {
        let mut g = lock(&job.state);
        g.total = p.total;
        // A held job's last bytes are reported with READY, once its result is staged.
        if g.hold != Hold::Armed || p.done < p.total {
            g.done = p.done;
        }
        drop(g);
        job.cond.notify_all();
    };
    tracing::debug!(job = %format!("{:016x}", job.id), what = %job.what, "job started");
    job.observer.running(job);
    let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        work(&mut progress, &job.cancel)
    }))
    .unwrap_or(Worked::from(Status::Fail));
    match worked {
        Worked::Ended(ended) => {
            // The slot first (see `Job::publish`).
            drop(slot);
            job.finish(ended);
        }
        Worked::Staged(staged) => job.staged(staged, slot),
    }
}

impl Task for Job {
    type Work = Work;
    fn id(&self) -> u64 {
        self.id
    }
    fn leave_queue(&self) -> bool {
        Job::leave_queue(self)
    }
    fn is_queued(&self) -> bool {
        Job::is_queued(self)
    }
    fn run(&self, work: Work, slot: Slot) {
        run(self, work, slot)
    }
    fn not_started(&self) {
        self.finish(Status::OutOfMemory.into())
    }
}
