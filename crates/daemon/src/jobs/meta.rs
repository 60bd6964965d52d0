//! What a job is, as its client asked for it (for reports), and who is told of its start
//! and end: the job table calls an [`Observer`] at those points (the daemon's is
//! `crate::activity::Activity`, for `openvaai status` and the metrics).

use std::sync::Arc;

use openvaai_proto::{JobInfo, Status};

use super::Job;

/// Which primitive a job runs, as metrics and `openvaai status` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Primitive {
    /// A clone that makes an independent copy.
    CloneFull,
    /// A copy-on-write clone (LAZY).
    CloneLazy,
    /// A clone that only checks (DRYRUN).
    CloneDryRun,
    Reserve,
    /// A job of the unit tests.
    Other,
}

impl Primitive {
    /// The primitives clients start.
    pub const ALL: [Primitive; 4] = [
        Primitive::CloneFull,
        Primitive::CloneLazy,
        Primitive::CloneDryRun,
        Primitive::Reserve,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Primitive::CloneFull => "clone_full",
            Primitive::CloneLazy => "clone_lazy",
            Primitive::CloneDryRun => "clone_dry_run",
            Primitive::Reserve => "reserve",
            Primitive::Other => "other",
        }
    }

    /// Whether its bytes are work done on the disk (copied, cloned or reserved): a dry run
    /// only checks, and its bytes count for neither the metrics nor a rate.
    pub fn moves_bytes(self) -> bool {
        match self {
            Primitive::CloneDryRun => false,
            Primitive::CloneFull | Primitive::CloneLazy | Primitive::Reserve | Primitive::Other => {
                true
            }
        }
    }

    /// Whether a rate of its bytes means anything: not for a lazy clone (its blocks are
    /// shared, not copied, whatever their number) nor for a dry run.
    pub fn has_rate(self) -> bool {
        match self {
            Primitive::CloneLazy | Primitive::CloneDryRun => false,
            Primitive::CloneFull | Primitive::Reserve | Primitive::Other => true,
        }
    }
}

/// What a job is, as its client asked for it.
#[derive(Clone, Debug)]
pub struct JobMeta {
    /// The job in words, for log lines (client names quoted and escaped).
    pub what: String,
    /// The export it writes in.
    pub export: String,
    pub primitive: Primitive,
    /// `export:path` of a clone's source.
    pub source: Option<String>,
    /// `export:path` of the destination, or of the file reserved.
    pub destination: String,
    /// The client's address.
    pub client: String,
}

/// A job known by its description only (the unit tests').
impl From<&str> for JobMeta {
    fn from(what: &str) -> JobMeta {
        JobMeta {
            what: what.to_owned(),
            export: String::new(),
            primitive: Primitive::Other,
            source: None,
            destination: String::new(),
            client: String::new(),
        }
    }
}

/// Told of each job's start and end, in this order: `accepted` (before it can run),
/// then `admitted` or `refused`, then `running` (its work begins; not for a job cancelled
/// while queued) and `finished` (once); `lease_expired` any time before `finished`.
/// Never called with a job's lock held.
pub trait Observer: Send + Sync {
    /// START took `job`.
    fn accepted(&self, job: &Arc<Job>);
    /// It runs or waits in the queue.
    fn admitted(&self, job: &Job);
    /// It was refused with `status` (OBJECT_IS_BUSY: the queue is full).
    fn refused(&self, job: &Job, status: Status);
    /// Its work begins.
    fn running(&self, job: &Job);
    /// Its work is done and it waits, READY, for COMMIT (a held clone).
    fn ready(&self, job: &Job);
    /// Its lease expired: nobody polled it.
    fn lease_expired(&self, job: &Job);
    /// It ended with `status`, `info` its last state.
    fn finished(&self, job: &Job, status: Status, info: &JobInfo);
}

/// Nobody is told (the job table's unit tests).
#[cfg(test)]
pub struct Unobserved;

#[cfg(test)]
impl Observer for Unobserved {
    fn accepted(&self, _: &Arc<Job>) {}
    fn admitted(&self, _: &Job) {}
    fn refused(&self, _: &Job, _: Status) {}
    fn running(&self, _: &Job) {}
    fn ready(&self, _: &Job) {}
    fn lease_expired(&self, _: &Job) {}
    fn finished(&self, _: &Job, _: Status, _: &JobInfo) {}
}
