//! The procedures of program 0x2F56414A version 1, one function each, under its definition
//! from `crates/proto/openvaai.x`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openvaai_engine::{CancelToken, CloneFlags, CloneJob, Progress};
use openvaai_proto::auth;
use openvaai_proto::limits::MAX_WAIT_MS;
use openvaai_proto::rpc::{self, AcceptStat, Call};
use openvaai_proto::xdr::{from_bytes, to_bytes, Xdr};
use openvaai_proto::*;
use std::result::Result;

use crate::jobs::{Ended, Job, JobMeta, Primitive, Publish, Staged, Work, Worked};
use crate::loglimit::limited;
use crate::state::{ExportState, Shared};
use crate::status::{ended_by, of_engine_error};

/// How long CANCEL waits for the job to clean up before answering with its state anyway.
const CANCEL_BOUND: Duration = Duration::from_secs(20);

/// What one connection has proven.
pub struct Session {
    peer: SocketAddr,
    authenticated: Vec<usize>,
    pending: Option<Pending>,
}

/// A HELLO waiting for its AUTH.
struct Pending {
    export: usize,
    challenge: [u8; NONCE_LEN],
    nonce: [u8; NONCE_LEN],
}

impl Session {
    pub fn new(peer: SocketAddr) -> Session {
        Session {
            peer,
            authenticated: Vec::new(),
            pending: None,
        }
    }

    pub fn any_authenticated(&self) -> bool {
        !self.authenticated.is_empty()
    }

    /// The export called `name`, if this connection authenticated it.
    fn export<'a>(&self, shared: &'a Shared, name: &str) -> Result<&'a Arc<ExportState>, Status> {
        match shared.config.export_index(name) {
            Some(i) if self.authenticated.contains(&i) => Ok(&shared.exports[i]),
            _ => Err(Status::AuthenticationFail),
        }
    }

    /// The job `id`, if every export it touches is authenticated here (else it is not found,
    /// to this connection).
    fn job(&self, shared: &Shared, id: u64) -> Result<Arc<Job>, Status> {
        match shared.jobs.get(id) {
            Some(j) if j.exports.iter().all(|e| self.authenticated.contains(e)) => Ok(j),
            _ => Err(Status::ObjectNotFound),
        }
    }
}

/// Runs one call and encodes its reply.
pub fn reply(shared: &Shared, session: &mut Session, call: &Call<'_>) -> Vec<u8> {
    let a = call.args;
    let results = match call.header.proc_ {
        PROC_NULL => run(a, |()| ()),
        PROC_HELLO => run(a, |x| hello(shared, session, x)),
        PROC_AUTH => run(a, |x| auth(shared, session, x)),
        PROC_CAPABILITIES => run(a, |x| capabilities(shared, session, x)),
        PROC_CLONE_START => run(a, |x| clone_start(shared, session, x)),
        PROC_RESERVE_START => run(a, |x| reserve_start(shared, session, x)),
        PROC_WAIT => run(a, |x| wait(shared, session, x)),
        PROC_CANCEL => run(a, |x| cancel(shared, session, x)),
        PROC_STATX => run(a, |x| statx(shared, session, x)),
        PROC_COMMIT => run(a, |x| commit(shared, session, x)),
        PROC_FAILURE => run(a, |x| failure(shared, session, x)),
        _ => Err(AcceptStat::ProcUnavail),
    };
    let xid = call.header.xid;
    match results {
        Ok(r) => rpc::encode_reply(xid, &rpc::accepted(AcceptStat::Success), &r),
        Err(stat) => {
            limited!(warn, { peer = %session.peer, xid, proc_ = call.header.proc_, ?stat, }, "call refused");
            rpc::encode_reply(xid, &rpc::accepted(stat), &[])
        }
    }
}

/// Decodes the arguments (GARBAGE_ARGS if they do not), runs `f`, encodes its result.
fn run<A: Xdr, R: Xdr>(args: &[u8], f: impl FnOnce(A) -> R) -> Result<Vec<u8>, AcceptStat> {
    let a = from_bytes::<A>(args).map_err(|_| AcceptStat::GarbageArgs)?;
    Ok(to_bytes(&f(a)))
}

/// `hello_res OVPROC_HELLO(hello_args) = 1;`
fn hello(shared: &Shared, s: &mut Session, a: HelloArgs) -> HelloRes {
    s.pending = None;
    let Some(i) = shared.config.export_index(&a.export) else {
        limited!(warn, { peer = %s.peer, export = ?a.export, }, "HELLO for an unknown export");
        shared.metrics.net.auth_failed("unknown_export");
        return Err(Status::ObjectNotFound);
    };
    let ip = s.peer.ip();
    if !shared.exports[i]
        .cfg
        .allowed_networks
        .iter()
        .any(|n| n.contains(ip))
    {
        limited!(warn, { peer = %s.peer, export = ?a.export, }, "refused: address not in allowed_networks");
        shared.metrics.net.auth_failed("address_not_allowed");
        // Not AUTHENTICATION_FAIL: the secret is not in question, the address is.
        return Err(Status::FileAccessError);
    }
    let challenge = auth::random_bytes();
    s.pending = Some(Pending {
        export: i,
        challenge,
        nonce: a.client_nonce,
    });
    Ok(HelloOk {
        server_challenge: challenge,
        protocol_version: PROTOCOL_VERSION,
        server_version: IMPLEMENTATION_VERSION.to_owned(),
    })
}

/// `auth_res OVPROC_AUTH(auth_args) = 2;`
fn auth(shared: &Shared, s: &mut Session, a: AuthArgs) -> AuthRes {
    // The challenge is used once, whatever happens next.
    let Some(p) = s.pending.take() else {
        limited!(warn, { peer = %s.peer, }, "AUTH without a HELLO");
        shared.metrics.net.auth_failed("auth_without_hello");
        return Err(Status::AuthenticationFail);
    };
    let e = &shared.exports[p.export];
    if shared.config.export_index(&a.export) != Some(p.export) {
        limited!(warn, { peer = %s.peer, export = ?a.export, }, "AUTH for another export than its HELLO");
        shared.metrics.net.auth_failed("export_mismatch");
        return Err(Status::AuthenticationFail);
    }
    let want = auth::client_proof(&e.secret, &p.challenge, &p.nonce, &a.export);
    if !auth::proofs_equal(&want, &a.client_proof) {
        limited!(warn, { peer = %s.peer, export = ?a.export, }, "authentication failed: wrong proof");
        shared.metrics.net.auth_failed("wrong_proof");
        return Err(Status::AuthenticationFail);
    }
    if !s.authenticated.contains(&p.export) {
        s.authenticated.push(p.export);
    }
    tracing::info!(peer = %s.peer, export = ?a.export, "authenticated");
    shared.metrics.net.authenticated(&e.cfg.name);
    Ok(Proof(auth::server_proof(
        &e.secret,
        &p.challenge,
        &p.nonce,
        &a.export,
    )))
}

/// `caps_res OVPROC_CAPABILITIES(export_args) = 3;`
fn capabilities(shared: &Shared, s: &mut Session, a: ExportArgs) -> CapsRes {
    let e = s.export(shared, &a.export)?;
    let c = e.engine.capabilities();
    let mut primitives = PRIM_STATX;
    if !e.cfg.read_only {
        primitives |= PRIM_CLONE;
        if c.fallocate {
            primitives |= PRIM_RESERVE;
        }
    }
    let mut clone_flags = CLONE_ALL_FLAGS;
    if !c.reflink {
        clone_flags &= !CLONE_LAZY;
    }
    Ok(Capabilities {
        primitives,
        clone_flags,
        reflink: c.reflink,
        fallocate: c.fallocate,
        fiemap: c.fiemap,
        unwritten_extents: c.unwritten_extents,
        read_only: e.cfg.read_only,
        fs_type: c.fs_type.chars().take(limits::MAX_SHORT_STRING).collect(),
        fs_id: c.same_fs_id,
        daemon_version: IMPLEMENTATION_VERSION.to_owned(),
        protocol_version: PROTOCOL_VERSION,
    })
}

/// `start_res OVPROC_CLONE_START(clone_args) = 4;`
fn clone_start(shared: &Shared, s: &mut Session, a: CloneArgs) -> StartRes {
    let dst = s.export(shared, &a.export)?.clone();
    let src = match &a.src_export {
        Some(name) => s.export(shared, name)?.clone(),
        None => dst.clone(),
    };
    if a.flags & !CLONE_ALL_FLAGS != 0 {
        return Err(Status::InvalidArg);
    }
    if dst.cfg.read_only {
        tracing::warn!(peer = %s.peer, export = ?dst.cfg.name, "clone refused: read-only export");
        return Err(Status::FileReadOnly);
    }
    let flags = CloneFlags {
        guarded: a.flags & CLONE_GUARDED != 0,
        lazy: a.flags & CLONE_LAZY != 0,
        dry_run: a.flags & CLONE_DRY_RUN != 0,
        skip_zeroes: a.flags & CLONE_SKIP_ZEROES != 0,
    };
    // Names from the wire are quoted and escaped: a newline in a path must not forge a line.
    let what = JobMeta {
        what: format!(
            "clone {:?}:{:?} -> {:?}:{:?} flags {:#x} for {}",
            src.cfg.name, a.src, dst.cfg.name, a.dst, a.flags, s.peer
        ),
        export: dst.cfg.name.clone(),
        primitive: match (flags.dry_run, flags.lazy) {
            (true, _) => Primitive::CloneDryRun,
            (false, true) => Primitive::CloneLazy,
            (false, false) => Primitive::CloneFull,
        },
        source: Some(format!("{}:{}", src.cfg.name, a.src)),
        destination: format!("{}:{}", dst.cfg.name, a.dst),
        client: s.peer.to_string(),
    };
    let exports = job_exports(shared, &[&dst, &src]);
    let rate = shared.config.limits.max_job_bytes_per_second;
    // A dry run publishes nothing, so there is nothing to hold.
    let hold = a.flags & CLONE_HOLD != 0 && !flags.dry_run;
    let src_name = (!Arc::ptr_eq(&src, &dst)).then(|| src.cfg.name.clone());
    shared
        .jobs
        .start_with(exports, what, hold, None, move |id| {
            // A full clone is built for its job, so that it outlives a restart of the daemon.
            clone_work(rate, move |progress, cancel| {
                let job = CloneJob {
                    id,
                    src_export: src_name.as_deref(),
                    hold,
                };
                let (s, d) = (&a.src, &a.dst);
                dst.engine
                    .stage_clone_job(&src.engine, job, s, d, flags, progress, cancel)
            })
        })
}

/// What a clone's stage step returns.
type StageResult = Result<openvaai_engine::StagedClone, openvaai_engine::Error>;

/// The work of a clone job: `stage` (paced to `rate` bytes a second), then the staged
/// clone for the job to publish, at once or on COMMIT if held; dropped = discarded.
pub fn clone_work(
    rate: Option<u64>,
    stage: impl FnOnce(&mut dyn FnMut(Progress), &CancelToken) -> StageResult + Send + 'static,
) -> Work {
    Box::new(move |progress, cancel| {
        let throttle = crate::throttle::Throttle::new(rate);
        let r = stage(
            &mut |p| {
                progress(p);
                throttle.pace(p.done, p.total, cancel);
            },
            cancel,
        );
        match r {
            Ok(staged) => Worked::Staged(Staged {
                bytes: staged.outcome().bytes,
                publish: Box::new(PublishClone(staged)),
            }),
            Err(e) => {
                tracing::info!(error = %e.to_string().escape_debug(), "clone failed");
                ended_by(&e).into()
            }
        }
    })
}

/// A staged clone's last step.
struct PublishClone(openvaai_engine::StagedClone);

impl Publish for PublishClone {
    fn publish(self: Box<Self>) -> Ended {
        match self.0.publish() {
            Ok(_) => Status::Ok.into(),
            Err(e) => {
                tracing::info!(error = %e.to_string().escape_debug(), "clone failed");
                ended_by(&e)
            }
        }
    }

    fn keep(self: Box<Self>) {
        self.0.keep_for_restart();
    }
}

/// `start_res OVPROC_RESERVE_START(path_args) = 5;`
fn reserve_start(shared: &Shared, s: &mut Session, a: PathArgs) -> StartRes {
    let e = s.export(shared, &a.export)?.clone();
    if e.cfg.read_only {
        tracing::warn!(peer = %s.peer, export = ?e.cfg.name, "reserve refused: read-only export");
        return Err(Status::FileReadOnly);
    }
    // Names from the wire are quoted and escaped: a newline in a path must not forge a line.
    let what = JobMeta {
        what: format!("reserve {:?}:{:?} for {}", e.cfg.name, a.path, s.peer),
        export: e.cfg.name.clone(),
        primitive: Primitive::Reserve,
        source: None,
        destination: format!("{}:{}", e.cfg.name, a.path),
        client: s.peer.to_string(),
    };
    let exports = job_exports(shared, &[&e]);
    let rate = shared.config.limits.max_job_bytes_per_second;
    shared.jobs.start(
        exports,
        what,
        false,
        Box::new(move |progress, cancel| {
            let throttle = crate::throttle::Throttle::new(rate);
            let mut paced = |p: openvaai_engine::Progress| {
                progress(p);
                throttle.pace(p.done, p.total, cancel);
            };
            match e.engine.reserve(&a.path, &mut paced, cancel) {
                Ok(()) => Status::Ok.into(),
                Err(err) => {
                    tracing::info!(error = %err.to_string().escape_debug(), "reserve failed");
                    ended_by(&err).into()
                }
            }
        }),
    )
}

pub fn job_exports(shared: &Shared, exports: &[&Arc<ExportState>]) -> Vec<usize> {
    let mut v: Vec<usize> = exports
        .iter()
        .filter_map(|e| shared.config.export_index(&e.cfg.name))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `wait_res OVPROC_WAIT(wait_args) = 6;`
fn wait(shared: &Shared, s: &mut Session, a: WaitArgs) -> WaitRes {
    let job = s.job(shared, a.job)?;
    let ms = a.max_wait_ms.min(MAX_WAIT_MS);
    Ok(job.wait(a.threshold, Duration::from_millis(ms as u64)))
}

/// `wait_res OVPROC_CANCEL(job_args) = 7;`
fn cancel(shared: &Shared, s: &mut Session, a: JobArgs) -> WaitRes {
    let job = s.job(shared, a.job)?;
    tracing::info!(peer = %s.peer, job = %format!("{:016x}", a.job), "cancel requested");
    Ok(job.cancel(CANCEL_BOUND))
}

/// `wait_res OVPROC_COMMIT(job_args) = 9;`
fn commit(shared: &Shared, s: &mut Session, a: JobArgs) -> WaitRes {
    let job = s.job(shared, a.job)?;
    tracing::debug!(peer = %s.peer, job = %format!("{:016x}", a.job), "commit");
    job.commit(CANCEL_BOUND)
}

/// `failure_res OVPROC_FAILURE(job_args) = 10;`
fn failure(shared: &Shared, s: &mut Session, a: JobArgs) -> FailureRes {
    Ok(s.job(shared, a.job)?.failure())
}

/// `statx_res OVPROC_STATX(path_args) = 8;`
fn statx(shared: &Shared, s: &mut Session, a: PathArgs) -> StatxRes {
    let e = s.export(shared, &a.export)?;
    let st = e.engine.statx(&a.path).map_err(|err| {
        tracing::debug!(error = %err.to_string().escape_debug(), "statx failed");
        of_engine_error(&err)
    })?;
    Ok(StatX {
        total_bytes: st.total_bytes,
        alloced_bytes: st.alloced_bytes,
        unique_bytes: st.unique_bytes,
        alloc_type: match st.alloc_type {
            openvaai_engine::AllocType::Ezt => AllocType::Ezt,
            openvaai_engine::AllocType::Lzt => AllocType::Lzt,
            openvaai_engine::AllocType::Thin => AllocType::Thin,
            openvaai_engine::AllocType::Unknown => AllocType::NotKnown,
        },
    })
}
