//! Sessions: the registry behind the opaque IDs disklib holds, and the work done in them.
//!
//! disklib may call from many threads at once, on one session or on several, so the registry
//! is a mutex-guarded map from ID to `Arc<Session>`: a call takes its `Arc` and lets the lock
//! go before doing any work, and an `EndSession` racing a call cannot free what the call uses.
//! IDs are random-looking non-zero numbers, never pointers, so a stale or forged ID finds
//! nothing and gets `VIX_E_INVALID_ARG`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openvaai_abi::{prim, vix, AllocType, CloneFlags, PrimitiveId, SessionId, VixError};

use crate::datastore::{DataStore, RawDataStore};

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

/// One session: a datastore of ours, and how long each exchange may take.
#[derive(Debug)]
pub struct Session {
    pub datastore: DataStore,
    pub timeout: Duration,
}

struct Registry {
    sessions: HashMap<SessionId, Arc<Session>>,
    counter: u64,
    key: u64,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    // The map is never left half-updated by a panic (insert and remove are single calls), so
    // a poisoned lock still guards a consistent map.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    fn new() -> Registry {
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

    fn insert(&mut self, session: Session) -> SessionId {
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
    let session = Session { datastore, timeout };
    connect(&session)?;
    let mut guard = registry();
    let id = guard.get_or_insert_with(Registry::new).insert(session);
    Ok(id)
}

/// Opens the session's connection to the daemon.
fn connect(session: &Session) -> Result<(), VixError> {
    // The client side of the protocol is not part of this build yet: an openvaaid datastore
    // is recognised, but no session can be opened on it.
    crate::warning!(
        "{} is served by openvaaid at {}, but this build has no protocol client",
        session.datastore.mount().display(),
        session.datastore.remote_ip
    );
    Err(vix::E_HOST_NOT_CONNECTED)
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
    let Some(_session) = lookup(id) else {
        return vix::E_INVALID_ARG;
    };
    match primitive {
        prim::CLONEFILE | prim::RESVSPACE | prim::STATX => vix::E_NOT_SUPPORTED,
        _ => vix::E_INVALID_ARG,
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
pub fn exec(id: SessionId, request: &Request<'_>, _progress: &mut dyn Progress) -> Outcome {
    let Some(session) = lookup(id) else {
        return Outcome::status(vix::E_INVALID_ARG);
    };
    crate::warning!(
        "{request:?} on {}: no protocol client in this build",
        session.datastore.mount().display()
    );
    Outcome::status(vix::E_NOT_SUPPORTED)
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
        let ds = DataStore {
            fs_type: "NFS".into(),
            fs_version: 3,
            remote_ip: "127.0.0.1".into(),
            remote_mount_point: "/x".into(),
            local_mount_point: "/mnt/x".into(),
        };
        let mut ids = Vec::new();
        for _ in 0..1000 {
            ids.push(r.insert(Session {
                datastore: ds.clone(),
                timeout: DEFAULT_TIMEOUT,
            }));
        }
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
