//! At start: full clones that a daemon left in progress (killed, crashed, stopped for an
//! upgrade, or on the other node before an HA failover) go on under their job ids.
//!
//! Each export's private directory holds a record per clone in progress (see the engine's
//! `resume` module). Every record becomes a job again, with the id its client knows, and
//! resumes from its last checkpoint at once. A client that reconnects within its session
//! timeout finds it with WAIT, as before the restart; a job nobody comes back for is ended by
//! its lease like any other, and its files go with it.

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
            let src = match &record.src_export {
                None => dst.clone(),
                Some(n) => match shared.exports.iter().find(|e| e.cfg.name == *n) {
                    Some(e) => e.clone(),
                    None => {
                        tracing::warn!(export = %name, job = %job, source_export = %n.escape_debug(),
                            "interrupted clone dropped: its source's export is not served any more");
                        let _ = dst.engine.discard_clone(record.job);
                        continue;
                    }
                },
            };
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
