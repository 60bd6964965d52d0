//! The running limit and the queue behind it: at most `max_jobs` jobs run at once, each on a
//! thread of its own; later ones wait in arrival order, holding no thread, up to
//! `max_queued` of them. A job's thread, when its work ends, starts the first job still
//! waiting (its slot passes straight on), so the queue moves without a tick. A held clone
//! keeps its slot, a [`Slot`], past its thread's end until it is published or discarded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

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
    /// Runs `work` on the job's own thread, holding its `slot`.
    fn run(&self, work: Self::Work, slot: Slot);
    /// Keeps the handle of the thread started for it.
    fn keep_thread(&self, thread: JoinHandle<()>);
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

    /// Starts `work` on a thread of its own, which holds the job's slot (taken by the
    /// caller; a thread that cannot start takes none).
    fn launch(self: &Arc<Self>, job: Arc<T>, work: T::Work) -> Result<(), ()> {
        let runner = self.clone();
        let j = job.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("job-{:016x}", job.id()))
            .spawn(move || {
                let slot = Slot(runner);
                j.run(work, slot);
            });
        match spawned {
            Ok(t) => {
                job.keep_thread(t);
                Ok(())
            }
            Err(e) => {
                tracing::error!(job = %format!("{:016x}", job.id()), "cannot start a job thread: {e}");
                Err(())
            }
        }
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
