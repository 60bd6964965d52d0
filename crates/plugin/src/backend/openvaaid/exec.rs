//! ExecPrimitive: each primitive as calls to the daemon, and the progress pump for the long
//! ones (clone, reserve), which run as jobs on the NAS.
//!
//! The pump long-polls WAIT with a byte threshold of the next `updateBytes` boundary, calls
//! disklib's callback with the bytes done since the last call, cancels the job when the
//! callback says abort, survives a dropped connection by reconnecting (job IDs outlive
//! connections), and gives up when the NAS shows no progress for a whole session timeout.

use std::time::{Duration, Instant};

use openvaai_abi::{alloc, clone_flag, vix};
use openvaai_proto::limits::MAX_WAIT_MS;
use openvaai_proto::{self as proto, AllocType, CloneArgs, JobInfo, JobState, Side, Status};

use openvaai_client::conn::status_vix;
use openvaai_client::timeout::MAX_TIMEOUT;
use openvaai_client::{DataStore, ExportKey, Failure, PathError, RawDataStore, Stream};
use openvaai_proto::access::AccessFile;
use openvaai_proto::Client;

use super::pool::Lease;
use super::Openvaaid;
use crate::primitive::{report_steps, Outcome, Progress, Request, StatxFigures};

/// Runs one primitive on a session.
pub fn run(session: &Openvaaid, request: &Request<'_>, progress: &mut dyn Progress) -> Outcome {
    let result = match request {
        Request::Statx { file } => statx(session, file),
        Request::Reserve { file } => {
            reserve(session, file, progress).map(|()| Outcome::status(vix::OK))
        }
        Request::Clone {
            src,
            dst,
            flags,
            src_datastore,
        } => clone(session, src, dst, *flags, src_datastore.as_ref(), progress)
            .map(|()| Outcome::status(vix::OK)),
    };
    result.unwrap_or_else(|failure| {
        crate::warning!("{}: {failure}", request.name());
        Outcome::status(failure.vix)
    })
}

fn path_failure(e: PathError, path: &[u8]) -> Failure {
    Failure::new(
        vix::E_INVALID_ARG,
        format!("{}: {e}", String::from_utf8_lossy(path)),
    )
}

fn refused(status: Status, what: &str) -> Failure {
    Failure::new(status_vix(status), format!("{what}: {status:?}"))
}

fn statx(session: &Openvaaid, file: &[u8]) -> Result<Outcome, Failure> {
    let path = session
        .datastore
        .relative(file)
        .map_err(|e| path_failure(e, file))?;
    let export = session.export();
    match session
        .pool
        .exchange(session.deadline(), |c| c.statx(export, &path))?
    {
        Ok(sx) => Ok(Outcome {
            status: vix::OK,
            statx: Some(StatxFigures {
                total_bytes: sx.total_bytes,
                alloced_bytes: sx.alloced_bytes,
                unique_bytes: sx.unique_bytes,
                alloc_type: match sx.alloc_type {
                    AllocType::Ezt => alloc::EZT,
                    AllocType::Lzt => alloc::LZT,
                    AllocType::Thin => alloc::THIN,
                    AllocType::NotKnown | AllocType::Unknown(_) => alloc::UNKNOWN,
                },
            }),
        }),
        Err(status) => Err(refused(status, &path)),
    }
}

fn reserve(session: &Openvaaid, file: &[u8], progress: &mut dyn Progress) -> Result<(), Failure> {
    let path = session
        .datastore
        .relative(file)
        .map_err(|e| path_failure(e, file))?;
    let export = session.export().to_owned();
    let deadline = session.deadline();
    let conn = session.pool.lease(deadline)?;
    let paths = JobPaths {
        src: None,
        dst: &path,
    };
    // A reservation is idempotent: started again if the NAS lost it.
    let start = |c: &mut Client<Stream>| c.reserve_start(&export, &path);
    pump(session, conn, &start, &[], &paths, progress)
}

/// A clone's source on another datastore: its export and its access file.
struct Source {
    datastore: DataStore,
    access: proto::access::AccessFile,
}

fn clone(
    session: &Openvaaid,
    src: &[u8],
    dst: &[u8],
    flags: openvaai_abi::CloneFlags,
    src_datastore: Option<&RawDataStore<'_>>,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    if flags & !clone_flag::ALL != 0 {
        return Err(Failure::new(
            vix::E_INVALID_ARG,
            format!("unknown clone flags {:#x}", flags & !clone_flag::ALL),
        ));
    }
    let dst_path = session
        .datastore
        .relative(dst)
        .map_err(|e| path_failure(e, dst))?;
    let source = if flags & clone_flag::SRCDATASTORE_VALID != 0 {
        let raw = src_datastore.ok_or_else(|| {
            Failure::new(
                vix::E_INVALID_ARG,
                "SRCDATASTORE_VALID without srcDataStoreInfo",
            )
        })?;
        Some(source(session, raw)?)
    } else {
        None
    };
    let src_path = match &source {
        Some(s) => s.datastore.relative(src),
        None => session.datastore.relative(src),
    }
    .map_err(|e| path_failure(e, src))?;
    let args = CloneArgs {
        export: session.export().to_owned(),
        src_export: source
            .as_ref()
            .map(|s| s.datastore.remote_mount_point.clone()),
        src: src_path,
        dst: dst_path,
        // The interface's flag bits are the protocol's; the hold keeps the clone unpublished
        // until the last progress report is answered.
        flags: flags as u32 | proto::CLONE_HOLD,
    };
    let sources: Vec<Source> = source.into_iter().collect();
    let deadline = session.deadline();
    let mut conn = session.pool.lease(deadline)?;
    let access: Vec<AccessFile> = sources.iter().map(|s| s.access.clone()).collect();
    for key in keys(&sources, &access) {
        conn.authenticate(&key, deadline)?;
    }
    let paths = JobPaths {
        src: Some(&args.src),
        dst: &args.dst,
    };
    // Held until COMMIT: a clone the NAS lost before any COMMIT published nothing, and is
    // started again.
    let start = |c: &mut Client<Stream>| c.clone_start(&args);
    pump(session, conn, &start, &sources, &paths, progress)
}

/// The keys of a job's other exports (a cross-datastore clone's source), with their access
/// files `access` (in the same order).
fn keys<'a>(sources: &'a [Source], access: &'a [AccessFile]) -> Vec<ExportKey<'a>> {
    sources
        .iter()
        .zip(access)
        .map(|(s, a)| ExportKey {
            export: &s.datastore.remote_mount_point,
            access: a,
        })
        .collect()
}

/// A lease for job work after a lost connection (see `Pool::reconnect`), authenticated for
/// `sources` too with their access files read again before each second of attempts: a
/// restarted daemon has new secrets, written when it starts.
fn reconnect<'s>(
    session: &'s Openvaaid,
    sources: &[Source],
    deadline: Instant,
) -> Result<Lease<'s>, Failure> {
    loop {
        let fresh: Vec<AccessFile> = sources
            .iter()
            .map(|s| {
                s.datastore
                    .read_access()
                    .unwrap_or_else(|_| s.access.clone())
            })
            .collect();
        let slice = if sources.is_empty() {
            deadline
        } else {
            deadline.min(Instant::now() + REKEY_EVERY)
        };
        match session.pool.reconnect(&keys(sources, &fresh), slice) {
            Ok(lease) => return Ok(lease),
            Err(f) if Instant::now() >= deadline => return Err(f),
            Err(_) => {}
        }
    }
}

/// How often [`reconnect`] reads the sources' access files again.
const REKEY_EVERY: Duration = Duration::from_secs(1);

/// The source datastore of a cross-datastore clone. It must be an export of the same daemon
/// (the same certificate): a clone between two NAS servers cannot be offloaded.
fn source(session: &Openvaaid, raw: &RawDataStore<'_>) -> Result<Source, Failure> {
    let datastore = DataStore::claim(raw)
        .map_err(|d| Failure::new(d.vix_error(), format!("source datastore: {d}")))?;
    let access = datastore.read_access()?;
    if access.cert_sha256 != session.pool.trust().access.cert_sha256 {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            format!(
                "the source datastore {} is served by another openvaaid than {}",
                datastore.mount().display(),
                session.datastore.mount().display()
            ),
        ));
    }
    Ok(Source { datastore, access })
}

/// How long one WAIT may block on the server: well inside the session timeout, so that a
/// reply always arrives before the socket gives up.
fn wait_bound(timeout: Duration) -> u32 {
    let half = (timeout / 2).as_millis().min(u128::from(MAX_WAIT_MS));
    (half as u32).max(1)
}

/// The paths of a job as the NAS knows them, for saying which one a failure concerns.
struct JobPaths<'a> {
    src: Option<&'a str>,
    dst: &'a str,
}

/// Follows a started job to its end, reporting progress to disklib.
///
/// Clones are started with `CLONE_HOLD`: the NAS keeps the finished clone unpublished in the
/// READY state until the last progress report has been answered, so that an abort at any
/// report, the last one included, leaves nothing behind. COMMIT then publishes it.
///
/// `start` starts the job. A job the NAS lost across a restart of its daemon before anything
/// of it was recorded there (killed just after its start), and before any COMMIT, is
/// started again with `start` (as often as that happens within the session timeout): its
/// progress goes on from what was reported, never reporting a byte twice.
fn pump(
    session: &Openvaaid,
    mut conn: Lease<'_>,
    start: &dyn Fn(&mut Client<Stream>) -> openvaai_proto::Result<proto::StartRes>,
    sources: &[Source],
    paths: &JobPaths<'_>,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    let started = conn.with(session.deadline(), start)?;
    let mut job = match started {
        Ok(job) => job,
        Err(status) => {
            drop(conn);
            return Err(refused(status, "the NAS refused the job"));
        }
    };
    let step = progress.update_bytes();
    let bound = wait_bound(session.timeout);
    let mut reported = 0u64;
    let mut last_done = 0u64;
    let mut last_progress = Instant::now();
    let started_at = last_progress;
    let mut commit_next = false;
    // Whether the connection was lost and made again, and whether a COMMIT was ever sent.
    let (mut reconnected, mut committed) = (false, false);
    let mut conn = Some(conn);
    loop {
        let stall_deadline = last_progress + session.timeout;
        let threshold = reported.saturating_add(step.max(1));
        committed |= commit_next;
        let call = |c: &mut proto::Client<openvaai_client::Stream>| {
            if commit_next {
                c.commit(job)
            } else {
                c.wait(job, threshold, bound)
            }
        };
        let reply = match conn.as_mut() {
            Some(c) => c.with(stall_deadline, call),
            None => reconnect(session, sources, stall_deadline)
                .and_then(|c| conn.insert(c).with(stall_deadline, call)),
        };
        let info = match reply {
            Ok(Ok(info)) => info,
            Ok(Err(Status::ObjectNotFound)) if reconnected && !committed => {
                // Unknown to the restarted daemon: it died before recording the job.
                let c = conn.as_mut().expect("the reply came on a connection");
                match c.with(stall_deadline, start)? {
                    Ok(again) => {
                        crate::info!(
                            "job {job:#x}: lost by the restarted NAS; started again as {again:#x}"
                        );
                        (job, last_done, reconnected) = (again, 0, false);
                        continue;
                    }
                    Err(status) => {
                        drop(conn);
                        return Err(refused(status, "the NAS refused the job started again"));
                    }
                }
            }
            Ok(Err(status)) => {
                // The job is unknown: it ended by lease, or the daemon restarted.
                drop(conn);
                return Err(lost_job(status, job));
            }
            Err(failure) if failure.broken && Instant::now() < stall_deadline => {
                crate::info!("job {job:016x}: {failure}; reconnecting");
                conn = None;
                reconnected = true;
                // A restarted daemon resumes the job from its checkpoint: it is READY again
                // only once it has staged it anew, so ask where it stands before a COMMIT.
                commit_next = false;
                continue;
            }
            // Lost and not found again within the session timeout.
            Err(failure) if reconnected => return Err(not_back(failure, job, session.timeout)),
            Err(failure) => return Err(failure),
        };
        if info.done > last_done || queued(&info, started_at) {
            last_done = info.done;
            last_progress = Instant::now();
        }
        match info.state {
            JobState::Running => {
                commit_next = false;
                if !report_steps(progress, &mut reported, info.done, step, false) {
                    return cancel(session, conn, sources, job);
                }
                if last_progress.elapsed() >= session.timeout {
                    let _ = cancel(session, conn, sources, job);
                    return Err(Failure::new(
                        vix::E_HOST_CONNECTION_LOST,
                        format!("no progress from the NAS in {:?}", session.timeout),
                    ));
                }
            }
            JobState::Ready => {
                // Every byte is in place and nothing is visible yet: the last report decides.
                if !report_steps(progress, &mut reported, info.done, step, true) {
                    return cancel(session, conn, sources, job);
                }
                commit_next = true;
                last_progress = Instant::now();
            }
            JobState::Done => {
                drop(conn);
                // A job without hold (a reservation): the rest, once done. The space is
                // reserved by now, so an abort answered here has nothing left to stop.
                if !report_steps(progress, &mut reported, info.done, step, true) {
                    crate::info!("job {job:016x}: abort requested after the NAS finished");
                }
                return Ok(());
            }
            JobState::Failed | JobState::Unknown(_) => {
                let side = failed_side(session, conn, job);
                return Err(job_failure(&info, job, side, paths));
            }
        }
    }
}

/// Asks the NAS which path a failed job concerns (FAILURE). A daemon older than that
/// procedure rejects it: then nothing is known, and the connection is not reused.
fn failed_side(session: &Openvaaid, conn: Option<Lease<'_>>, job: u64) -> Side {
    let Some(mut conn) = conn else {
        return Side::None;
    };
    match conn.with(session.deadline(), |c| c.failure(job)) {
        Ok(reply) => {
            drop(conn);
            reply.map_or(Side::None, |f| f.side)
        }
        Err(_) => Side::None,
    }
}

/// Whether the job waits its turn on the NAS behind `max_jobs` others (RUNNING, nothing
/// done, OBJECT_IS_BUSY): alive though it makes no progress, while the daemon says so, for
/// at most [`MAX_TIMEOUT`] since its start.
fn queued(info: &JobInfo, started_at: Instant) -> bool {
    info.state == JobState::Running
        && info.done == 0
        && info.result == Status::ObjectIsBusy
        && started_at.elapsed() < MAX_TIMEOUT
}

fn job_failure(info: &JobInfo, job: u64, side: Side, paths: &JobPaths<'_>) -> Failure {
    let status = if info.result == Status::Ok {
        Status::Fail
    } else {
        info.result
    };
    let path = match side {
        Side::Source => paths.src,
        Side::DestinationDir => Some(paths.dst.rsplit_once('/').map_or(".", |(dir, _)| dir)),
        Side::Destination => Some(paths.dst),
        Side::None | Side::Unknown(_) => None,
    };
    let detail = match (path, status) {
        (Some(p), Status::FileNotFound) => format!(": {} {p:?} does not exist", side.describe()),
        (Some(p), _) => format!(" ({} {p:?})", side.describe()),
        (None, _) => String::new(),
    };
    let text = match status {
        Status::HostNotConnected => format!(
            "openvaaid on the NAS shut down (stopped or restarting) and cancelled job {job:016x}; \
             nothing of it was published: retry once the daemon is back"
        ),
        _ => format!("job {job:016x} failed: {status:?}{detail}"),
    };
    Failure::new(status_vix(status), text)
}

/// A job whose daemon went away (a stop, a crash, a failover) and was not back within the
/// session timeout: nothing was published; a daemon that starts later resumes it for its
/// lease, which then ends it, removing its partial file.
fn not_back(failure: Failure, job: u64, timeout: Duration) -> Failure {
    Failure {
        detail: format!(
            "openvaaid on the NAS went away during job {job:016x} and was not back within the              session timeout ({} ms): nothing was published ({})",
            timeout.as_millis(),
            failure.detail
        ),
        ..failure
    }
}

/// WAIT or COMMIT of a job the NAS no longer knows.
fn lost_job(status: Status, job: u64) -> Failure {
    let mut f = refused(status, &format!("job {job:016x}"));
    if status == Status::ObjectNotFound {
        f.detail.push_str(
            ": the NAS lost the job (openvaaid restarted, or the job outlived its lease); retry",
        );
    }
    f
}

/// Cancels a job and waits (within the session timeout) until the NAS has cleaned it up.
fn cancel(
    session: &Openvaaid,
    conn: Option<Lease<'_>>,
    sources: &[Source],
    job: u64,
) -> Result<(), Failure> {
    let deadline = session.deadline();
    let mut conn = match conn {
        Some(c) => c,
        None => reconnect(session, sources, deadline)?,
    };
    let bound = wait_bound(session.timeout);
    let mut reply = conn.with(deadline, |c| c.cancel(job))?;
    loop {
        match reply {
            Ok(JobInfo {
                state: JobState::Running,
                ..
            }) => {
                reply = conn.with(deadline, |c| c.wait(job, u64::MAX, bound))?;
            }
            Ok(JobInfo {
                state: JobState::Done,
                ..
            }) => {
                // Finished before the cancel reached it: the clone is complete and durable.
                drop(conn);
                crate::info!("job {job:016x} finished before the abort reached the NAS");
                return Ok(());
            }
            Ok(_) | Err(_) => {
                drop(conn);
                return Err(Failure::new(vix::E_CANCELLED, "aborted by the user"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_bounded_inside_the_timeout() {
        assert_eq!(wait_bound(Duration::from_secs(30)), 15_000);
        assert_eq!(wait_bound(Duration::from_secs(600)), MAX_WAIT_MS);
        assert_eq!(wait_bound(Duration::from_millis(1)), 1);
    }

    #[test]
    fn the_interface_flags_are_the_protocol_flags() {
        assert_eq!(clone_flag::GUARDED as u32, proto::CLONE_GUARDED);
        assert_eq!(clone_flag::LAZY as u32, proto::CLONE_LAZY);
        assert_eq!(
            clone_flag::SRCDATASTORE_VALID as u32,
            proto::CLONE_SRC_DATASTORE_VALID
        );
        assert_eq!(clone_flag::DRYRUN as u32, proto::CLONE_DRY_RUN);
        assert_eq!(clone_flag::SKIPZEROES as u32, proto::CLONE_SKIP_ZEROES);
    }
}
