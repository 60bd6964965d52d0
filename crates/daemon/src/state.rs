//! The daemon's state, shared by every thread: the exports served, the job table, the TLS
//! configuration, the connection slots, the metrics and the shutdown flag; and how it is
//! made at start.

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use openvaai_proto::auth::Secret;

use crate::activity::Activity;
use crate::config::{Config, ExportConfig};
use crate::control_socket::ControlSocket;
use crate::jobs::JobTable;
use crate::metrics::{ExportLabels, Metrics};
use crate::slots::Slots;
use crate::tls::Identity;

/// One export being served.
pub struct ExportState {
    pub cfg: ExportConfig,
    pub engine: openvaai_engine::Export,
    pub secret: Secret,
    /// One export, one daemon: held for as long as the export is served.
    _lock: openvaai_engine::ExportLock,
}

/// Everything the threads share.
pub struct Shared {
    pub config: Config,
    pub exports: Vec<Arc<ExportState>>,
    pub jobs: JobTable,
    pub tls: Arc<rustls::ServerConfig>,
    pub shutdown: Arc<AtomicBool>,
    pub slots: Slots,
    /// Every job from START to its end, and the last ones that ended.
    pub activity: Arc<Activity>,
    pub metrics: Metrics,
    pub started: Instant,
}

/// The sockets the daemon serves on.
pub struct Listeners {
    /// The RPC listeners (non-blocking).
    pub rpc: Vec<TcpListener>,
    /// `GET /metrics` (non-blocking), when configured.
    pub metrics: Option<TcpListener>,
    pub control: ControlSocket,
}

/// Opens and locks the exports, binds the listeners (RPC, metrics), makes or loads the
/// certificate, binds the control socket, and writes the access files, in that order:
/// everything that can fail at start fails here, before serving, and a start that fails
/// (another daemon on an export, an address in use) has written nothing — no certificate,
/// no access file. The configuration's exports were checked on disk before (see
/// [`crate::preflight`]).
pub fn prepare(
    config: Config,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<(Arc<Shared>, Listeners)> {
    let mut opened = Vec::new();
    for e in &config.exports {
        let engine = openvaai_engine::Export::open(&e.path)
            .with_context(|| format!("opening export {}", e.path.display()))?;
        let lock = crate::access::lock(&engine, &e.name)?;
        opened.push((e, engine, lock));
    }
    // No export's clients may reach another's private directory, not even by a hard link.
    for i in 0..opened.len() {
        let (before, rest) = opened.split_at_mut(i);
        let ((_, me, _), after) = rest.split_first_mut().expect("i < len");
        for (_, other, _) in before.iter().chain(after.iter()) {
            me.guard_private_dir_of(other)?;
        }
    }
    let mut listeners = Vec::new();
    for a in &config.listen {
        let l = TcpListener::bind(a).with_context(|| format!("listening on {a}"))?;
        l.set_nonblocking(true)?;
        tracing::info!(address = %l.local_addr()?, "listening");
        listeners.push(l);
    }
    let metrics_listener = match config.metrics_listen {
        Some(a) => {
            let l = TcpListener::bind(a)
                .with_context(|| format!("listening on {a} for metrics ([metrics] listen)"))?;
            l.set_nonblocking(true)?;
            tracing::info!(address = %l.local_addr()?, "metrics endpoint listening (GET /metrics)");
            Some(l)
        }
        None => None,
    };
    let port = listeners[0].local_addr()?.port();
    let listening = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    crate::fsutil::ensure_dir(&config.state_dir, 0o700)?;
    let identity: Identity = crate::tls::load_or_create(&config.state_dir)?;
    let control = ControlSocket::bind(&config.control_socket)?;
    let activity = Arc::new(Activity::default());
    let names: Vec<String> = config.exports.iter().map(|e| e.name.clone()).collect();
    let metrics = Metrics::new(activity.metrics(), &names);
    let mut exports = Vec::new();
    for (e, engine, lock) in opened {
        crate::access::label(&engine, &lock, &listening)?;
        let tidied = crate::cleanup::at_start(&engine, &e.name);
        let export = ExportLabels {
            export: e.name.clone(),
        };
        let start = &metrics.start;
        start
            .temporaries_cleaned
            .get_or_create(&export)
            .inc_by(tidied.temporaries);
        start
            .reservations_recovered
            .get_or_create(&export)
            .inc_by(tidied.reservations);
        let secret =
            crate::access::publish(&engine, port, &config.advertise, identity.cert_sha256)?;
        let caps = engine.capabilities();
        tracing::info!(
            export = %e.name, path = %e.path.display(), fs = %caps.fs_type,
            reflink = caps.reflink, read_only = e.read_only, "serving export"
        );
        exports.push(Arc::new(ExportState {
            cfg: e.clone(),
            engine,
            secret,
            _lock: lock,
        }));
    }
    let shared = Arc::new(Shared {
        jobs: JobTable::reporting_to(
            config.limits.max_jobs,
            config.limits.max_queued_jobs,
            config.limits.lease,
            activity.clone(),
        ),
        slots: Slots::new(
            config.limits.max_unauthenticated,
            config.limits.max_connections,
        ),
        config,
        exports,
        tls: identity.config,
        shutdown,
        activity,
        metrics,
        started: Instant::now(),
    });
    Ok((
        shared,
        Listeners {
            rpc: listeners,
            metrics: metrics_listener,
            control,
        },
    ))
}
