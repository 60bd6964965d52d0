//! What the daemon is doing: every job from its START to its end, and the last
//! [`MAX_FINISHED`] jobs that ended, for `openvaai status` (the control socket) and the job
//! metrics. The job table reports to it at a few points (accepted, admitted or refused,
//! running, finished, lease expired); it never holds a job's lock while holding its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openvaai_control::JobStatus;
use openvaai_proto::{JobInfo, JobState, Status};

use crate::jobs::{Job, JobMeta, Observer};
use crate::metrics::{JobLabels, JobMetrics, ResultLabels};
use crate::sync::lock;

/// Finished jobs remembered for `openvaai status`, newest first.
pub const MAX_FINISHED: usize = 64;

/// A rate is given once a job's work has run this long: over less, the first chunk (done
/// before any pacing) or a lazy clone's instant would make a figure of nothing.
pub const MIN_RATE_WINDOW: Duration = Duration::from_secs(1);

/// A job id as the admin gives it to `--cancel`, in the one form ids are shown in (16 hex
/// digits, lowercase): a prefix of that, or `0x…`, a whole id with its leading zeros left
/// out, as C's `%#x` and the plugin's log before this form printed it.
pub fn canonical_id(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    match id.strip_prefix("0x") {
        Some(hex)
            if (1..=16).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("{hex:0>16}")
        }
        Some(_) | None => id,
    }
}

fn labels(m: &JobMeta) -> JobLabels {
    JobLabels {
        export: m.export.clone(),
        primitive: m.primitive.label(),
    }
}

fn result_labels(m: &JobMeta, status: Status) -> ResultLabels {
    ResultLabels {
        export: m.export.clone(),
        primitive: m.primitive.label(),
        result: vix_name(status),
    }
}

/// `VIX_OK`, `VIX_E_CANCELLED`, ...: the VixError a status is.
pub fn vix_name(status: Status) -> &'static str {
    openvaai_abi::vix::name(status.vix_code()).unwrap_or("VIX_E_UNKNOWN")
}

/// A job between START and its end.
struct Live {
    job: Arc<Job>,
    accepted: Instant,
    /// When it left the queue and its work began.
    running_since: Option<Instant>,
    /// When its work was done, for a held clone waiting READY for COMMIT: its rate is of
    /// the work, not of the wait.
    ready_at: Option<Instant>,
    /// Its bytes already added to the bytes counter.
    counted: u64,
}

/// A job that ended.
struct Finished {
    status: JobStatus,
    accepted: Instant,
}

#[derive(Default)]
struct Inner {
    live: HashMap<u64, Live>,
    finished: VecDeque<Finished>,
}

/// The daemon's jobs, for reports.
pub struct Activity {
    inner: Mutex<Inner>,
    metrics: JobMetrics,
}

/// Why a job named by an admin cannot be cancelled.
#[derive(Debug, PartialEq, Eq)]
pub enum NotCancelled {
    /// No running or queued job has that id (or prefix).
    NotFound,
    /// More than one does: give more digits.
    Ambiguous,
    /// It ended already, as this says.
    Finished(String),
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new(JobMetrics::default())
    }
}

impl Activity {
    pub fn new(metrics: JobMetrics) -> Activity {
        Activity {
            inner: Mutex::new(Inner::default()),
            metrics,
        }
    }

    pub fn metrics(&self) -> &JobMetrics {
        &self.metrics
    }

    /// (running, queued) jobs, with every running job's bytes added to the bytes counter.
    pub fn refresh(&self) -> (u64, u64) {
        let mut g = lock(&self.inner);
        let (mut running, mut queued) = (0, 0);
        for l in g.live.values_mut() {
            let (info, is_queued) = l.job.standing();
            if is_queued {
                queued += 1;
            } else {
                running += 1;
            }
            let delta = info.done.saturating_sub(l.counted);
            if delta > 0 && l.job.meta.primitive.moves_bytes() {
                self.metrics
                    .bytes
                    .get_or_create(&labels(&l.job.meta))
                    .inc_by(delta);
                l.counted = info.done;
            }
        }
        (running, queued)
    }

    /// The live jobs (oldest first), then the finished ones (newest first).
    pub fn jobs(&self) -> Vec<JobStatus> {
        let g = lock(&self.inner);
        let now = Instant::now();
        let mut live: Vec<&Live> = g.live.values().collect();
        live.sort_by_key(|l| l.accepted);
        let mut out: Vec<JobStatus> = live
            .into_iter()
            .map(|l| report(&l.job, l, &l.job.standing().0, now))
            .collect();
        out.extend(g.finished.iter().map(|f| JobStatus {
            age_seconds: now.duration_since(f.accepted).as_secs_f64(),
            ..f.status.clone()
        }));
        out
    }

    /// The live job named by `id`: its 16 hex digits, or a prefix that one job alone has.
    pub fn find(&self, id: &str) -> Result<Arc<Job>, NotCancelled> {
        let id = canonical_id(id);
        if id.is_empty() {
            return Err(NotCancelled::NotFound);
        }
        let g = lock(&self.inner);
        let mut found = g
            .live
            .values()
            .filter(|l| format!("{:016x}", l.job.id).starts_with(&id));
        match (found.next(), found.next()) {
            (Some(l), None) => Ok(l.job.clone()),
            (Some(_), Some(_)) => Err(NotCancelled::Ambiguous),
            (None, _) => match g.finished.iter().find(|f| f.status.id.starts_with(&id)) {
                Some(f) => Err(NotCancelled::Finished(
                    f.status.result.clone().unwrap_or_default(),
                )),
                None => Err(NotCancelled::NotFound),
            },
        }
    }

    /// Cancels the live job named by `id` as a client's CANCEL does, and waits (up to
    /// `bound`) for it to clean up; returns how it ended (or stands).
    pub fn cancel(&self, id: &str, bound: Duration) -> Result<JobStatus, NotCancelled> {
        let job = self.find(id)?;
        tracing::warn!(job = %format!("{:016x}", job.id), what = %job.what, "cancel requested by the admin (openvaai status --cancel)");
        let info = job.cancel_by_admin(bound);
        let g = lock(&self.inner);
        let now = Instant::now();
        let id = format!("{:016x}", job.id);
        if let Some(f) = g.finished.iter().find(|f| f.status.id == id) {
            return Ok(JobStatus {
                age_seconds: now.duration_since(f.accepted).as_secs_f64(),
                ..f.status.clone()
            });
        }
        match g.live.get(&job.id) {
            Some(l) => Ok(report(&job, l, &info, now)),
            // Ended and already pushed out of the finished list by newer ones.
            None => Err(NotCancelled::Finished(vix_name(info.result).to_owned())),
        }
    }
}

/// The job table's reports.
impl Observer for Activity {
    /// START took `job`: it is known from now on (before it can run and end).
    fn accepted(&self, job: &Arc<Job>) {
        lock(&self.inner).live.insert(
            job.id,
            Live {
                job: job.clone(),
                accepted: Instant::now(),
                running_since: None,
                ready_at: None,
                counted: 0,
            },
        );
    }

    /// It runs or waits in the queue.
    fn admitted(&self, job: &Job) {
        self.metrics.started.get_or_create(&labels(&job.meta)).inc();
    }

    /// It was refused with `status` (OBJECT_IS_BUSY: the queue is full).
    fn refused(&self, job: &Job, status: Status) {
        lock(&self.inner).live.remove(&job.id);
        self.metrics
            .refused
            .get_or_create(&result_labels(&job.meta, status))
            .inc();
    }

    /// Its work begins.
    fn running(&self, job: &Job) {
        if let Some(l) = lock(&self.inner).live.get_mut(&job.id) {
            l.running_since = Some(Instant::now());
        }
    }

    /// Its work is done; it waits for COMMIT.
    fn ready(&self, job: &Job) {
        if let Some(l) = lock(&self.inner).live.get_mut(&job.id) {
            l.ready_at = Some(Instant::now());
        }
    }

    /// Its lease expired: nobody polled it.
    fn lease_expired(&self, job: &Job) {
        self.metrics
            .lease_expiries
            .get_or_create(&labels(&job.meta))
            .inc();
    }

    /// It ended with `status`, `info` its last state.
    fn finished(&self, job: &Job, status: Status, info: &JobInfo) {
        let mut g = lock(&self.inner);
        let Some(live) = g.live.remove(&job.id) else {
            return;
        };
        let meta = &job.meta;
        if meta.primitive.moves_bytes() {
            self.metrics
                .bytes
                .get_or_create(&labels(meta))
                .inc_by(info.done.saturating_sub(live.counted));
        }
        self.metrics
            .finished
            .get_or_create(&result_labels(meta, status))
            .inc();
        self.metrics
            .duration
            .get_or_create(&labels(meta))
            .observe(live.accepted.elapsed().as_secs_f64());
        let mut st = report(job, &live, info, Instant::now());
        st.result = Some(vix_name(status).to_owned());
        st.duration_seconds = Some(live.accepted.elapsed().as_secs_f64());
        g.finished.push_front(Finished {
            status: st,
            accepted: live.accepted,
        });
        g.finished.truncate(MAX_FINISHED);
    }
}

/// How `job` stands at `now`, `info` its progress.
fn report(job: &Job, l: &Live, info: &JobInfo, now: Instant) -> JobStatus {
    let m = &job.meta;
    let queued = l.running_since.is_none() && info.state == JobState::Running;
    let state = match info.state {
        JobState::Running if queued => "queued",
        JobState::Running => "running",
        JobState::Ready => "ready",
        JobState::Done => "done",
        JobState::Failed | JobState::Unknown(_) => "failed",
    };
    let rate = l
        .running_since
        .map(|t| l.ready_at.unwrap_or(now).duration_since(t))
        .filter(|worked| *worked >= MIN_RATE_WINDOW && m.primitive.has_rate())
        .map(|worked| info.done as f64 / worked.as_secs_f64());
    JobStatus {
        id: format!("{:016x}", job.id),
        state: state.to_owned(),
        export: m.export.clone(),
        primitive: m.primitive.label().to_owned(),
        source: m.source.clone(),
        destination: m.destination.clone(),
        client: m.client.clone(),
        done_bytes: info.done,
        total_bytes: info.total,
        rate_bytes_per_second: rate,
        age_seconds: now.duration_since(l.accepted).as_secs_f64(),
        duration_seconds: None,
        result: matches!(info.state, JobState::Done | JobState::Failed)
            .then(|| vix_name(info.result).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobTable;

    fn quick() -> crate::jobs::Work {
        Box::new(|progress, _| {
            progress(openvaai_engine::Progress {
                done: 10,
                total: 10,
            });
            Status::Ok.into()
        })
    }

    #[test]
    fn a_held_clone_waiting_for_commit_keeps_the_rate_of_its_work() {
        let activity = Arc::new(Activity::default());
        let t = JobTable::reporting_to(4, 0, Duration::from_secs(60), activity.clone());
        let work: crate::jobs::Work = Box::new(|_, _| {
            std::thread::sleep(MIN_RATE_WINDOW + Duration::from_millis(100));
            crate::jobs::Worked::Staged(crate::jobs::Staged {
                bytes: 1 << 20,
                publish: Box::new(|| Status::Ok.into()),
            })
        });
        let id = t.start(vec![0], "held".into(), true, work).unwrap();
        let job = t.get(id).unwrap();
        assert_eq!(
            job.wait(u64::MAX, Duration::from_secs(5)).state,
            JobState::Ready
        );
        let rate = |jobs: Vec<JobStatus>| jobs[0].rate_bytes_per_second.unwrap();
        let at_ready = rate(activity.jobs());
        std::thread::sleep(Duration::from_millis(300));
        let later = rate(activity.jobs());
        assert_eq!(activity.jobs()[0].state, "ready");
        // The rate of the work (~1 MiB/s), not falling with the wait for COMMIT.
        assert!(
            at_ready > 0.0 && later == at_ready,
            "{at_ready} then {later}"
        );
        job.cancel(Duration::from_secs(5));
    }

    #[test]
    fn finished_jobs_are_remembered_newest_first_and_bounded() {
        let activity = Arc::new(Activity::default());
        let t = JobTable::reporting_to(4, 0, Duration::from_secs(60), activity.clone());
        let mut ids = Vec::new();
        for _ in 0..MAX_FINISHED + 5 {
            let id = t.start(vec![0], "quick".into(), false, quick()).unwrap();
            t.get(id).unwrap().wait(u64::MAX, Duration::from_secs(5));
            ids.push(id);
        }
        // The end is recorded before a waiter wakes.
        let jobs = activity.jobs();
        assert_eq!(jobs.len(), MAX_FINISHED);
        assert_eq!(jobs[0].id, format!("{:016x}", ids.last().unwrap()));
        assert_eq!(jobs[0].result.as_deref(), Some("VIX_OK"));
        assert_eq!((jobs[0].done_bytes, jobs[0].state.as_str()), (10, "done"));
        assert_eq!(activity.refresh(), (0, 0));
        let label = JobLabels {
            export: String::new(),
            primitive: "other",
        };
        let m = activity.metrics();
        assert_eq!(
            m.started.get_or_create(&label).get(),
            (MAX_FINISHED + 5) as u64
        );
        assert_eq!(
            m.bytes.get_or_create(&label).get(),
            10 * (MAX_FINISHED + 5) as u64
        );
    }

    #[test]
    fn a_job_is_found_by_a_prefix_one_job_alone_has() {
        let activity = Arc::new(Activity::default());
        let t = JobTable::reporting_to(17, 0, Duration::from_secs(60), activity.clone());
        let slow = || -> crate::jobs::Work {
            Box::new(|_, cancel| {
                while !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Status::Cancelled.into()
            })
        };
        // 17 ids: two of them share their first hex digit.
        let ids: Vec<u64> = (0..17)
            .map(|_| t.start(vec![0], "slow".into(), false, slow()).unwrap())
            .collect();
        let hex: Vec<String> = ids.iter().map(|i| format!("{i:016x}")).collect();
        let (a, b) = (0..17)
            .flat_map(|i| (0..i).map(move |j| (j, i)))
            .find(|&(j, i)| hex[j][..1] == hex[i][..1])
            .expect("pigeonholes");
        let (ha, hb) = (&hex[a], &hex[b]);
        assert_eq!(activity.find(ha).unwrap().id, ids[a]);
        assert_eq!(activity.find(&ha.to_uppercase()).unwrap().id, ids[a]);
        // As C's `%#x` prints it: the whole id, without its leading zeros.
        assert_eq!(activity.find(&format!("{:#x}", ids[a])).unwrap().id, ids[a]);
        assert_eq!(canonical_id("0xaaf94dbf958e411"), "0aaf94dbf958e411");
        assert_eq!(canonical_id(" 0AAF9 "), "0aaf9");
        assert_eq!(canonical_id("0x"), "0x");
        assert_eq!(activity.find("").err(), Some(NotCancelled::NotFound));
        assert_eq!(activity.find("x").err(), Some(NotCancelled::NotFound));
        let common = ha
            .chars()
            .zip(hb.chars())
            .take_while(|(x, y)| x == y)
            .count();
        assert_eq!(
            activity.find(&ha[..common]).err(),
            Some(NotCancelled::Ambiguous)
        );
        let j = activity.cancel(ha, Duration::from_secs(5)).unwrap();
        assert_eq!(
            (j.state.as_str(), j.result.as_deref()),
            ("failed", Some("VIX_E_CANCELLED"))
        );
        assert_eq!(
            activity.cancel(ha, Duration::from_secs(5)).err(),
            Some(NotCancelled::Finished("VIX_E_CANCELLED".into()))
        );
        assert_eq!(activity.refresh(), (16, 0));
        assert_eq!(activity.find(hb).unwrap().id, ids[b]);
        for id in &ids {
            t.get(*id).unwrap().cancel(Duration::from_secs(5));
        }
    }
}
