//! Sessions: the registry behind the opaque IDs disklib holds, each session a datastore and
//! the backend that serves it.
//!
//! disklib may call from many threads at once, on one session or on several, so the registry
//! is a mutex-guarded map from ID to `Arc<Session>`: a call takes its `Arc` and lets the lock
//! go before doing any work, and an `EndSession` racing a call cannot free what the call uses.
//! IDs are random-looking non-zero numbers, never pointers, so a stale or forged ID finds
//! nothing and gets `VIX_E_INVALID_ARG`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use openvaai_abi::{prim, vix, PrimitiveId, SessionId, VixError};
use openvaai_client::timeout::effective_timeout;
use openvaai_client::{DataStore, RawDataStore};

use crate::backend::{self, Backend};
use crate::primitive::{Outcome, Primitive, Progress, Request};

/// One session: a datastore, and the backend that serves it.
pub struct Session {
    pub datastore: DataStore,
    backend: Box<dyn Backend>,
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
fn lookup(id: SessionId) -> Option<Arc<Session>> {
    registry().as_ref()?.sessions.get(&id).cloned()
}

/// `StartSession`: claims the datastore for a backend (declining foreign ones without
/// network) and opens a session on it.
pub fn start(raw: &RawDataStore<'_>, timeout_ms: Option<u64>) -> Result<SessionId, VixError> {
    let (datastore, kind) = match backend::claim(raw) {
        Ok(claimed) => claimed,
        Err(decline) => {
            crate::info!("declining datastore: {decline}");
            return Err(decline.vix_error());
        }
    };
    let timeout = effective_timeout(timeout_ms);
    let mount = datastore.mount().display().to_string();
    let backend = match backend::open(kind, datastore.clone(), timeout) {
        Ok(b) => b,
        Err(failure) => {
            crate::warning!("cannot open a session on {mount}: {failure}");
            return Err(failure.vix);
        }
    };
    crate::info!("session on {mount}: {}", backend.describe());
    let session = Session { datastore, backend };
    let mut guard = registry();
    let id = guard.get_or_insert_with(Registry::new).insert(session);
    Ok(id)
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
    let primitive = match primitive {
        prim::CLONEFILE => Primitive::Clone,
        prim::RESVSPACE => Primitive::Reserve,
        prim::STATX => Primitive::Statx,
        _ => return vix::E_INVALID_ARG,
    };
    if session.backend.supports(primitive) {
        vix::OK
    } else {
        vix::E_NOT_SUPPORTED
    }
}

/// `ExecPrimitive`.
pub fn exec(id: SessionId, request: &Request<'_>, progress: &mut dyn Progress) -> Outcome {
    let Some(session) = lookup(id) else {
        return Outcome::status(vix::E_INVALID_ARG);
    };
    let outcome = session.backend.exec(request, progress);
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
