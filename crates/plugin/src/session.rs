//! Sessions: the registry behind the opaque IDs disklib holds, and the work done in them.
//!
//! disklib may call from many threads at once, on one session or on several, so the registry
//! is a mutex-guarded map from ID to `Arc<Session>`: a call takes its `Arc` and lets the lock
//! go before doing any work, and an `EndSession` racing a call cannot free what the call uses.
//! IDs are random-looking non-zero numbers, never pointers, so a stale or forged ID finds
//! nothing and gets `VIX_E_INVALID_ARG`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openvaai_abi::{prim, vix, AllocType, CloneFlags, PrimitiveId, SessionId, VixError};
use openvaai_proto::access::AccessFile;
use openvaai_proto::{Capabilities, Client};

use crate::conn::{self, Conn, Failure, Stream};
use crate::datastore::{DataStore, RawDataStore};
pub use crate::reach::Trust;
use crate::reach::{closed_by_peer, connect};

/// The per-exchange network timeout when disklib gives none (`timeoutMS` 0 or no params).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest timeout the plugin honours: a larger `timeoutMS` is clamped to it, so that no
/// call can wait for hours on a peer that is gone.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The timeout a session uses for a `timeoutMS` from disklib (`None`: no params given).
pub fn effective_timeout(timeout_ms: Option<u64>) -> Duration {
    match timeout_ms {
        None | Some(0) => DEFAULT_TIMEOUT,
        Some(ms) => Duration::from_millis(ms).min(MAX_TIMEOUT),
    }
}

/// Idle connections kept per session; calls beyond that open their own and close them after.
pub const MAX_IDLE: usize = 4;
/// A pooled connection idle longer than this is closed rather than reused (the daemon closes
/// idle connections after 300 s by default).
pub const POOL_MAX_IDLE: Duration = Duration::from_secs(60);
/// A pooled connection idle longer than this is checked with a NULL call before reuse.
pub const POOL_TRUST_IDLE: Duration = Duration::from_secs(2);

/// One session: a datastore served by openvaaid, how to reach and prove ourselves to it, and
/// a small pool of authenticated connections.
pub struct Session {
    pub datastore: DataStore,
    pub timeout: Duration,
    trust: Mutex<Arc<Trust>>,
    pub capabilities: Capabilities,
    /// Idle connections and when each was last used.
    pool: Mutex<Vec<(Conn, Instant)>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("datastore", &self.datastore)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Session {
    /// Reads the access file, connects, authenticates the export and reads its capabilities.
    fn open(datastore: DataStore, timeout: Duration) -> Result<Session, Failure> {
        let deadline = Instant::now() + timeout;
        let mut trust = Arc::new(Trust::read(&datastore, deadline)?);
        let mut conn = connect(&datastore, &mut trust, deadline)?;
        let export = datastore.remote_mount_point.clone();
        let capabilities = match conn.with(deadline, |c| c.capabilities(&export))? {
            Ok(caps) => caps,
            Err(status) => {
                return Err(Failure::new(
                    conn::status_vix(status),
                    format!("capabilities of {export}: {status:?}"),
                ))
            }
        };
        Ok(Session {
            datastore,
            timeout,
            trust: Mutex::new(trust),
            capabilities,
            pool: Mutex::new(vec![(conn, Instant::now())]),
        })
    }

    /// The access file as last read.
    pub fn trust(&self) -> Arc<Trust> {
        self.trust.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The export's name for the daemon: the path the NAS exports.
    pub fn export(&self) -> &str {
        &self.datastore.remote_mount_point
    }

    /// An authenticated connection: an idle one from the pool, or a new one. A new one is
    /// opened with the access file as it is now (a restarted daemon draws a new secret and
    /// may listen elsewhere, and a session must outlive that), retrying within `deadline`
    /// while the daemon cannot be reached.
    pub fn acquire(&self, deadline: Instant) -> Result<Conn, Failure> {
        loop {
            let idle = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((mut conn, since)) = idle else { break };
            let idle_for = since.elapsed();
            if idle_for > POOL_MAX_IDLE {
                continue;
            }
            // Closed by the daemon (a restart, its idle timeout): gone, whatever its age.
            let closed = conn
                .with(deadline, |c| Ok(closed_by_peer(c.stream().sock.socket())))
                .unwrap_or(true);
            if closed {
                continue;
            }
            // A connection idle for a while may be dead without a word (a peer that froze or
            // vanished from the network): a NULL round trip tells, before a call that cannot
            // be retried (a job start) is sent on it.
            if idle_for < POOL_TRUST_IDLE || conn.with(deadline, |c| c.null()).is_ok() {
                return Ok(conn);
            }
        }
        let before = self.trust();
        let mut trust = before.clone();
        let conn = connect(&self.datastore, &mut trust, deadline);
        if !Arc::ptr_eq(&before, &trust) {
            *self.trust.lock().unwrap_or_else(|e| e.into_inner()) = trust;
        }
        conn
    }

    /// Returns a healthy connection to the pool.
    pub fn release(&self, conn: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < MAX_IDLE {
            pool.push((conn, Instant::now()));
        }
    }

    /// A deadline one session timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Runs one idempotent exchange within one session timeout, retrying once on a fresh
    /// connection when the pooled one turns out broken (the daemon restarted, an idle
    /// connection was closed).
    pub fn exchange<T>(
        &self,
        mut f: impl FnMut(&mut Client<Stream>) -> openvaai_proto::Result<T>,
    ) -> Result<T, Failure> {
        let deadline = self.deadline();
        let mut conn = self.acquire(deadline)?;
        let first = match conn.with(deadline, &mut f) {
            Ok(v) => {
                self.release(conn);
                return Ok(v);
            }
            Err(failure) => failure,
        };
        drop(conn);
        if !first.broken || Instant::now() >= deadline {
            return Err(first);
        }
        let mut conn = self.acquire(deadline)?;
        let v = conn.with(deadline, &mut f)?;
        self.release(conn);
        Ok(v)
    }
}

struct Registry<T> {
    sessions: HashMap<SessionId, Arc<T>>,
    counter: u64,
    key: u64,
}

static REGISTRY: Mutex<Option<Registry<Session>>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry<Session>>> {
    // The map is never left half-updated by a panic (insert and remove are single calls), so
    // a poisoned lock still guards a consistent map.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> Registry<T> {
    fn new() -> Registry<T> {
        // A per-process random key, from the standard library's hash seed.
        let key = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Registry {
            sessions: HashMap::new(),
            counter: 0,
            key,
        }
    }

    fn insert(&mut self, session: T) -> SessionId {
        loop {
            self.counter = self.counter.wrapping_add(1);
            // A bijective mix of the counter: unique until the counter wraps, and not
            // guessable from a neighbour's ID.
            let id = mix(self.counter ^ self.key);
            if id != openvaai_abi::INVALID_SESSION_ID && !self.sessions.contains_key(&id) {
                self.sessions.insert(id, Arc::new(session));
                return id;
            }
        }
    }
}

/// splitmix64's finaliser: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The session behind an ID, if it is live.
pub fn lookup(id: SessionId) -> Option<Arc<Session>> {
    registry().as_ref()?.sessions.get(&id).cloned()
}

/// How many sessions are open.
pub fn count() -> usize {
    registry().as_ref().map_or(0, |r| r.sessions.len())
}

/// `StartSession`: claims the datastore (declining foreign ones without network) and opens a
/// session on it.
pub fn start(raw: &RawDataStore<'_>, timeout_ms: Option<u64>) -> Result<SessionId, VixError> {
    let datastore = match DataStore::claim(raw) {
        Ok(ds) => ds,
        Err(decline) => {
            crate::info!("declining datastore: {decline}");
            return Err(decline.vix_error());
        }
    };
    let timeout = effective_timeout(timeout_ms);
    let mount = datastore.mount().display().to_string();
    let session = match Session::open(datastore, timeout) {
        Ok(s) => s,
        Err(failure) => {
            crate::warning!("cannot open a session on {mount}: {failure}");
            return Err(failure.vix);
        }
    };
    crate::info!(
        "session on {mount}: export {} ({}, reflink {}), openvaaid {}",
        session.export(),
        session.capabilities.fs_type,
        if session.capabilities.reflink {
            "yes"
        } else {
            "no"
        },
        session.capabilities.daemon_version
    );
    let mut guard = registry();
    let id = guard.get_or_insert_with(Registry::new).insert(session);
    Ok(id)
}

/// What a session on a datastore finds out beyond what the C interface reports: for the
/// `openvaai check` diagnostics.
#[derive(Debug, Clone)]
pub struct Probe {
    pub capabilities: Capabilities,
    pub server_version: String,
    pub addresses: Vec<SocketAddr>,
    pub access: AccessFile,
}

/// Opens a session on a datastore as StartSession would, reports what it found, and closes
/// it. Errors come as the VixError StartSession would return, with the reason.
pub fn probe(raw: &RawDataStore<'_>, timeout_ms: Option<u64>) -> Result<Probe, (VixError, String)> {
    let datastore = DataStore::claim(raw).map_err(|d| (d.vix_error(), d.to_string()))?;
    let session = Session::open(datastore, effective_timeout(timeout_ms))
        .map_err(|f| (f.vix, f.detail.clone()))?;
    let trust = session.trust();
    let server_version = session
        .pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first()
        .map(|(c, _)| c.server_version.clone())
        .unwrap_or_default();
    Ok(Probe {
        capabilities: session.capabilities.clone(),
        server_version,
        addresses: trust.addrs.clone(),
        access: trust.access.clone(),
    })
}

/// `EndSession`.
pub fn end(id: SessionId) -> VixError {
    let removed = registry().as_mut().and_then(|r| r.sessions.remove(&id));
    match removed {
        Some(_) => vix::OK,
        None => vix::E_INVALID_ARG,
    }
}

/// Ends every session (the last `Done`). Returns how many were open.
pub fn end_all() -> usize {
    registry().take().map_or(0, |r| r.sessions.len())
}

/// `SupportStatus`.
pub fn support_status(id: SessionId, primitive: PrimitiveId) -> VixError {
    let Some(session) = lookup(id) else {
        return vix::E_INVALID_ARG;
    };
    let bit = match primitive {
        prim::CLONEFILE => openvaai_proto::PRIM_CLONE,
        prim::RESVSPACE => openvaai_proto::PRIM_RESERVE,
        prim::STATX => openvaai_proto::PRIM_STATX,
        _ => return vix::E_INVALID_ARG,
    };
    if session.capabilities.primitives & bit != 0 {
        vix::OK
    } else {
        vix::E_NOT_SUPPORTED
    }
}

/// A primitive as disklib asked for it, its strings still raw bytes from C.
#[derive(Debug)]
pub enum Request<'a> {
    Clone {
        src: &'a [u8],
        dst: &'a [u8],
        flags: CloneFlags,
        src_datastore: Option<RawDataStore<'a>>,
    },
    Reserve {
        file: &'a [u8],
    },
    Statx {
        file: &'a [u8],
    },
}

impl Request<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Clone { .. } => "CLONEFILE",
            Request::Reserve { .. } => "RESVSPACE",
            Request::Statx { .. } => "STATX",
        }
    }
}

/// disklib's progress record: how often to report, and the report itself.
pub trait Progress {
    /// Report every this many bytes (0: as often as there is progress).
    fn update_bytes(&self) -> u64;
    /// Reports `delta` bytes done since the last report; false means the user aborts.
    fn report(&mut self, delta: u64) -> bool;
}

/// The figures of a STATX result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatxFigures {
    pub total_bytes: u64,
    pub alloced_bytes: u64,
    pub unique_bytes: u64,
    pub alloc_type: AllocType,
}

/// What ExecPrimitive reports back to disklib.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: VixError,
    pub statx: Option<StatxFigures>,
}

impl Outcome {
    pub fn status(status: VixError) -> Outcome {
        Outcome {
            status,
            statx: None,
        }
    }
}

/// `ExecPrimitive`.
pub fn exec(id: SessionId, request: &Request<'_>, progress: &mut dyn Progress) -> Outcome {
    let Some(session) = lookup(id) else {
        return Outcome::status(vix::E_INVALID_ARG);
    };
    let outcome = crate::exec::run(&session, request, progress);
    if outcome.status != vix::OK {
        crate::info!(
            "{} on {}: {}",
            request.name(),
            session.datastore.mount().display(),
            vix::name(outcome.status).unwrap_or("VixError")
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_defaults_and_clamps() {
        assert_eq!(effective_timeout(None), DEFAULT_TIMEOUT);
        assert_eq!(effective_timeout(Some(0)), DEFAULT_TIMEOUT);
        assert_eq!(effective_timeout(Some(1500)), Duration::from_millis(1500));
        assert_eq!(effective_timeout(Some(u64::MAX)), MAX_TIMEOUT);
    }

    #[test]
    fn ids_are_unique_nonzero_and_not_sequential() {
        let mut r = Registry::new();
        let ids: Vec<SessionId> = (0..1000).map(|i| r.insert(i)).collect();
        assert!(ids.iter().all(|&id| id != 0));
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert!(ids.windows(2).all(|w| w[1] != w[0].wrapping_add(1)));
    }

    #[test]
    fn unknown_ids_are_invalid_arguments() {
        assert_eq!(end(0), vix::E_INVALID_ARG);
        assert_eq!(end(0xdead_beef), vix::E_INVALID_ARG);
        assert_eq!(support_status(42, prim::STATX), vix::E_INVALID_ARG);
    }
}
