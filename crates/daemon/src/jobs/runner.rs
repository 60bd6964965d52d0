//! The running limit and the queue behind it: at most `max_jobs` jobs run at once, each on a
//! thread of its own; later ones wait in arrival order, holding no thread, up to
//! `max_queued` of them. A job's thread, when its work ends, starts the first job still
//! waiting (its slot passes straight on), so the queue moves without a tick. A held clone
//! keeps its slot, a [`Slot`], past its thread's end until it is published or discarded.
//!
//! The threads are reused: a job's thread whose work has ended waits [`IDLE_EXIT`] for the
//! next job before it exits (see [`Workers`]). A storm of lazy clones runs thousands of
//! jobs a second, and a new thread for each cost a `clone3`, a stack `mmap`/`munmap` (with
//! its TLB shootdown) and a dozen more syscalls.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use openvaai_proto::Status;

use crate::sync::lock;

/// What the runner needs of a job.
pub trait Task: Send + Sync + 'static {
    /// What it runs on its thread.
    type Work: Send + 'static;
    /// Its id, for its thread's name and the log.
    fn id(&self) -> u64;
    /// Takes it out of the queue (to run it, or to end it there); false if it was not
    /// queued (already running, or already taken out: cancelled while it waited).
    fn leave_queue(&self) -> bool;
    /// Whether it still waits in the queue.
    fn is_queued(&self) -> bool;
    /// Runs `work` on a job thread, holding its `slot`.
    fn run(&self, work: Self::Work, slot: Slot);
    /// No thread could be started for it: it ends OUT_OF_MEMORY.
    fn not_started(&self);
}

/// Where a started job went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// It runs now.
    Running,
    /// It waits, behind this many others.
    Queued(usize),
}

struct Waiting<T: Task> {
    job: Arc<T>,
    work: T::Work,
    since: Instant,
}

struct Slots<T: Task> {
    running: usize,
    queue: VecDeque<Waiting<T>>,
    /// Shutting down: nothing more starts.
    closed: bool,
}

/// A running job's place among the `max_jobs`: dropped, it goes to the first job still
/// waiting, or is freed.
pub struct Slot(Arc<dyn HandOn>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clone().hand_on();
    }
}

/// A runner, whatever its jobs: where a slot goes back to.
trait HandOn: Send + Sync {
    fn hand_on(self: Arc<Self>);
}

pub struct Runner<T: Task> {
    slots: Mutex<Slots<T>>,
    max_jobs: usize,
    max_queued: usize,
    workers: Arc<Workers>,
}

/// How long a job thread without work waits for the next job before it exits.
pub const IDLE_EXIT: Duration = Duration::from_secs(10);

/// What a job thread runs: one job's work, holding its slot.
type Run = Box<dyn FnOnce() + Send>;

/// The job threads: each runs one job, then waits up to [`IDLE_EXIT`] for the next before
/// it exits. A job goes to an idle thread if there is one, else to a new thread. Every
/// thread runs a job that holds a slot or hands one on, so there are at most `max_jobs`
/// busy ones, and as many idle ones for at most [`IDLE_EXIT`] after a burst.
struct Workers {
    state: Mutex<Idle>,
    /// Signalled when a job is handed to the idle threads.
    more: Condvar,
}

struct Idle {
    /// Threads waiting for a job.
    threads: usize,
    /// Jobs handed to them and not yet taken: never more than `threads`, so each has its
    /// thread.
    jobs: VecDeque<Run>,
}

impl Workers {
    fn new() -> Workers {
        Workers {
            state: Mutex::new(Idle {
                threads: 0,
                jobs: VecDeque::new(),
            }),
            more: Condvar::new(),
        }
    }

    /// Runs `run` on an idle job thread, or on a new one (named after `id`, until it
    /// takes another job).
    fn execute(self: &Arc<Self>, id: u64, run: Run) -> std::io::Result<()> {
        let mut idle = lock(&self.state);
        if idle.threads > idle.jobs.len() {
            idle.jobs.push_back(run);
            drop(idle);
            self.more.notify_one();
            return Ok(());
        }
        drop(idle);
        let workers = self.clone();
        std::thread::Builder::new()
            .name(thread_name(id))
            .spawn(move || {
                run();
                while let Some(next) = workers.next() {
                    next();
                }
            })
            .map(drop)
    }

    /// The next job for this thread, or `None` after [`IDLE_EXIT`] without one.
    fn next(&self) -> Option<Run> {
        let deadline = Instant::now() + IDLE_EXIT;
        // Not the last job's name any more: it no longer runs here.
        let _ = rustix::thread::set_name(c"job-idle");
        let mut idle = lock(&self.state);
        idle.threads += 1;
        loop {
            // A job handed over is taken even if the wait timed out meanwhile: it was
            // counted on this thread.
            if let Some(run) = idle.jobs.pop_front() {
                idle.threads -= 1;
                return Some(run);
            }
            let now = Instant::now();
            if now >= deadline {
                idle.threads -= 1;
                return None;
            }
            idle = self
                .more
                .wait_timeout(idle, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A job thread's name: `job-` and the job's id, cut by the kernel to 15 bytes.
fn thread_name(id: u64) -> String {
    format!("job-{id:016x}")
}

impl<T: Task> Runner<T> {
    pub fn new(max_jobs: usize, max_queued: usize) -> Runner<T> {
        Runner {
            slots: Mutex::new(Slots {
                running: 0,
                queue: VecDeque::new(),
                closed: false,
            }),
            max_jobs,
            max_queued,
            workers: Arc::new(Workers::new()),
        }
    }

    /// Runs `job` now if a slot is free and nobody waits, else queues it; OBJECT_IS_BUSY
    /// when the queue is full, HOST_NOT_CONNECTED once closed, OUT_OF_MEMORY when no
    /// thread can be started.
    pub fn admit(self: &Arc<Self>, job: &Arc<T>, work: T::Work) -> Result<Admitted, Status> {
        let mut slots = lock(&self.slots);
        if slots.closed {
            return Err(Status::HostNotConnected);
        }
        // Jobs cancelled while waiting (CANCEL, lease) ended already: they take no room.
        slots.queue.retain(|w| w.job.is_queued());
        if slots.running < self.max_jobs && slots.queue.is_empty() {
            // Not in the table yet: nobody can have cancelled it.
            job.leave_queue();
            slots.running += 1;
            drop(slots);
            return match self.launch(job.clone(), work) {
                Ok(()) => Ok(Admitted::Running),
                Err(()) => {
                    lock(&self.slots).running -= 1;
                    Err(Status::OutOfMemory)
                }
            };
        }
        if slots.queue.len() >= self.max_queued {
            return Err(Status::ObjectIsBusy);
        }
        slots.queue.push_back(Waiting {
            job: job.clone(),
            work,
            since: Instant::now(),
        });
        Ok(Admitted::Queued(slots.queue.len() - 1))
    }

    /// Starts `work` on a job thread (an idle one, or a new one), which holds the job's slot
    /// (taken by the caller; a thread that cannot start takes none). A reused thread takes
    /// the job's name in the kernel (`top -H`, `/proc/PID/task/*/comm`).
    fn launch(self: &Arc<Self>, job: Arc<T>, work: T::Work) -> Result<(), ()> {
        let runner = self.clone();
        let id = job.id();
        let run: Run = Box::new(move || {
            if let Ok(name) = std::ffi::CString::new(thread_name(id)[..15].to_owned()) {
                // prctl(PR_SET_NAME, name) — this thread's name in the kernel: best effort.
                let _ = rustix::thread::set_name(&name);
            }
            let slot = Slot(runner);
            job.run(work, slot);
        });
        self.workers.execute(id, run).map_err(|e| {
            tracing::error!(job = %format!("{id:016x}"), "cannot start a job thread: {e}");
        })
    }

    /// How many job threads wait for a job now.
    #[cfg(test)]
    pub fn idle_threads(&self) -> usize {
        lock(&self.workers.state).threads
    }

    /// Closes the queue: nothing more starts or waits. Returns the jobs that were waiting,
    /// still marked queued, for the caller to end.
    pub fn close(&self) -> Vec<Arc<T>> {
        let mut slots = lock(&self.slots);
        slots.closed = true;
        slots.queue.drain(..).map(|w| w.job).collect()
    }
}

impl<T: Task> HandOn for Runner<T> {
    /// A running job ended: its slot goes to the first job still waiting, or is freed.
    fn hand_on(self: Arc<Self>) {
        loop {
            let mut slots = lock(&self.slots);
            let next = if slots.closed {
                None
            } else {
                slots.queue.pop_front()
            };
            let Some(w) = next else {
                slots.running -= 1;
                return;
            };
            // Cancelled while it waited: it has ended already, next one.
            if !w.job.leave_queue() {
                continue;
            }
            drop(slots);
            tracing::debug!(
                job = %format!("{:016x}", w.job.id()),
                waited_ms = w.since.elapsed().as_millis() as u64,
                "job leaves the queue"
            );
            if self.launch(w.job.clone(), w.work).is_ok() {
                return;
            }
            w.job.not_started();
        }
    }
}
