//! At start: full clones that a daemon left in progress (killed, crashed, stopped for an
//! upgrade, or on the other node before an HA failover) go on under their job ids.
//!
//! Each export's private directory holds a record per clone in progress (see the engine's
//! `resume` module). Every record becomes a job again, with the id its client knows, and
//! resumes from its last checkpoint at once. A client that reconnects within its session
//! timeout finds it with WAIT, as before the restart; a job nobody comes back for is ended by
//! its lease like any other, and its files go with it. Records are not trusted more than
//! a client's request: a resumed clone passes every check a new one does, and a record
//! naming another export as its source is not resumed (see `resume_interrupted`).

use crate::handlers::{clone_work, job_exports};
use crate::jobs::{JobMeta, Primitive};
use crate::state::Shared;

/// Starts a job for every clone record in every export; returns how many.
pub fn resume_interrupted(shared: &Shared) -> usize {
    let rate = shared.config.limits.max_job_bytes_per_second;
    let mut resumed = 0;
    for dst in &shared.exports {
        let name = &dst.cfg.name;
        let records = match dst.engine.clone_records() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(export = %name, error = %e, "cannot look for interrupted clones");
                continue;
            }
        };
        for (file, e) in &records.unreadable {
            tracing::warn!(export = %name, file = %file, error = %e, "clone record not read: left alone");
        }
        for record in records.found {
            let job = format!("{:016x}", record.job);
            // A record is a file in the export, which every NFS client of it that is root can
            // write: one naming another export as its source would have the daemon copy from
            // an export that client may not reach. Only clones within the export are resumed;
            // a cross-export one is dropped, and its client, finding the job unknown, starts
            // it again (from zero) over its authenticated connection.
            if let Some(n) = &record.src_export {
                tracing::warn!(export = %name, job = %job, source_export = %n.escape_debug(),
                    "interrupted cross-export clone not resumed: its client starts it again");
                let _ = dst.engine.discard_clone(record.job);
                continue;
            }
            let src = dst.clone();
            let what = JobMeta {
                what: format!(
                    "resumed clone {:?}:{:?} -> {:?}:{:?} from byte {}",
                    src.cfg.name, record.src, name, record.dst, record.done
                ),
                export: name.clone(),
                primitive: Primitive::CloneFull,
                source: Some(format!("{}:{}", src.cfg.name, record.src)),
                destination: format!("{}:{}", name, record.dst),
                client: "(resumed)".to_owned(),
            };
            let exports = job_exports(shared, &[dst, &src]);
            let (d, hold, id, from) = (dst.clone(), record.hold, record.job, record.done);
            let started = shared
                .jobs
                .start_with(exports, what, hold, Some(id), move |_| {
                    clone_work(rate, move |progress, cancel| {
                        d.engine
                            .resume_clone(&src.engine, &record, progress, cancel)
                    })
                });
            match started {
                Ok(_) => {
                    resumed += 1;
                    tracing::info!(export = %name, job = %job,
                        "interrupted clone resumed from byte {from}: waiting for its client");
                }
                Err(status) => {
                    tracing::warn!(export = %name, job = %job, ?status, "interrupted clone not resumed: dropped");
                    let _ = dst.engine.discard_clone(id);
                }
            }
        }
    }
    resumed
}
