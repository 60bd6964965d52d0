//! The daemon's state and its acceptor: listeners, the connection limit, shutdown.

use std::collections::HashMap;
use std::io::ErrorKind as IoKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use openvaai_proto::auth::Secret;

use crate::config::{Config, ExportConfig};
use crate::jobs::JobTable;
use crate::tls::Identity;

/// How often the acceptor looks at the shutdown flag and the reaper at the job table.
const TICK: Duration = Duration::from_millis(50);
/// On shutdown, how long connections get to finish the replies they are writing.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

/// One export being served.
pub struct ExportState {
    pub cfg: ExportConfig,
    pub engine: openvaai_engine::Export,
    pub secret: Secret,
}

/// Everything the threads share.
pub struct Shared {
    pub config: Config,
    pub exports: Vec<Arc<ExportState>>,
    pub jobs: JobTable,
    pub tls: Arc<rustls::ServerConfig>,
    pub shutdown: Arc<AtomicBool>,
    conns: Mutex<HashMap<u64, TcpStream>>,
    conn_count: AtomicUsize,
    next_conn: AtomicU64,
}

/// Opens the exports, makes or loads the certificate, binds the listeners and writes the
/// access files. Everything that can fail at start fails here, before serving.
pub fn prepare(
    config: Config,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<(Arc<Shared>, Vec<TcpListener>)> {
    crate::fsutil::ensure_dir(&config.state_dir, 0o700)?;
    let identity: Identity = crate::tls::load_or_create(&config.state_dir)?;
    let mut listeners = Vec::new();
    for a in &config.listen {
        let l = TcpListener::bind(a).with_context(|| format!("listening on {a}"))?;
        l.set_nonblocking(true)?;
        tracing::info!(address = %l.local_addr()?, "listening");
        listeners.push(l);
    }
    let port = listeners[0].local_addr()?.port();
    let mut exports = Vec::new();
    for e in &config.exports {
        let engine = openvaai_engine::Export::open(&e.path)
            .with_context(|| format!("opening export {}", e.path.display()))?;
        match engine.cleanup_stale() {
            Ok(0) => {}
            Ok(n) => tracing::info!(export = %e.name, removed = n, "removed stale temporaries"),
            Err(err) => tracing::warn!(export = %e.name, "cleaning stale temporaries: {err}"),
        }
        let secret =
            crate::access::publish(&e.path, port, &config.advertise, identity.cert_sha256)?;
        let caps = engine.capabilities();
        tracing::info!(
            export = %e.name, path = %e.path.display(), fs = %caps.fs_type,
            reflink = caps.reflink, read_only = e.read_only, "serving export"
        );
        exports.push(Arc::new(ExportState {
            cfg: e.clone(),
            engine,
            secret,
        }));
    }
    let shared = Arc::new(Shared {
        jobs: JobTable::new(
            config.limits.max_jobs,
            config.limits.max_queued_jobs,
            config.limits.lease,
        ),
        config,
        exports,
        tls: identity.config,
        shutdown,
        conns: Mutex::new(HashMap::new()),
        conn_count: AtomicUsize::new(0),
        next_conn: AtomicU64::new(1),
    });
    Ok((shared, listeners))
}

/// Accepts connections until `shared.shutdown` is set (by SIGTERM or SIGINT), then stops the jobs and the
/// connections. Returns the number of jobs that did not stop in time.
pub fn serve(shared: Arc<Shared>, listeners: Vec<TcpListener>) -> usize {
    let reaper = {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                while !s.shutdown.load(Ordering::SeqCst) {
                    s.jobs.reap();
                    std::thread::sleep(TICK);
                }
            })
            .ok()
    };
    while !shared.shutdown.load(Ordering::SeqCst) {
        let mut idle = true;
        for l in &listeners {
            match l.accept() {
                Ok((stream, peer)) => {
                    idle = false;
                    admit(&shared, stream, peer);
                }
                Err(e) if e.kind() == IoKind::WouldBlock || e.kind() == IoKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!("accept: {e}");
                }
            }
        }
        if idle {
            std::thread::sleep(TICK);
        }
    }
    tracing::info!("shutting down: no new connections, cancelling jobs");
    drop(listeners);
    let left = shared.jobs.shutdown(shared.config.limits.shutdown_timeout);
    // Close the read sides first: a connection still writing a reply (the end of a job)
    // finishes it, then sees the end of its stream and leaves.
    for s in crate::jobs::lock(&shared.conns).values() {
        let _ = s.shutdown(Shutdown::Read);
    }
    let deadline = std::time::Instant::now() + CLOSE_BOUND;
    while shared.conn_count.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (_, s) in crate::jobs::lock(&shared.conns).drain() {
        let _ = s.shutdown(Shutdown::Both);
    }
    if let Some(r) = reaper {
        let _ = r.join();
    }
    left
}

fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: std::net::SocketAddr) {
    let max = shared.config.limits.max_connections;
    if shared.conn_count.fetch_add(1, Ordering::SeqCst) >= max {
        shared.conn_count.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(%peer, max, "connection refused: too many connections");
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    if let Ok(c) = stream.try_clone() {
        crate::jobs::lock(&shared.conns).insert(id, c);
    }
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("conn-{id}"))
        .spawn(move || {
            crate::conn::serve(&s, stream, peer);
            crate::jobs::lock(&s.conns).remove(&id);
            s.conn_count.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        tracing::error!(%peer, "cannot start a connection thread: {e}");
        crate::jobs::lock(&shared.conns).remove(&id);
        shared.conn_count.fetch_sub(1, Ordering::SeqCst);
    }
}
