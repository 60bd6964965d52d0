//! The seam between the C interface and whatever serves a datastore.
//!
//! StartSession picks a backend for the datastore by the marker its NAS left under
//! `<localMountPoint>/.openvaai/`; SupportStatus and ExecPrimitive then talk only to that
//! [`Backend`]:
//!
//! 1. `.openvaai/access` → [`openvaaid`], the openvaai daemon (full fidelity wins);
//! 2. else `.openvaai/nfs42` → [`nfs42`], the server's own NFSv4.2 operations (`crates/nfs4`);
//! 3. else declined with NOT_SUPPORTED: two `stat`s, no socket.

pub mod nfs42;
pub mod openvaaid;

use std::time::Duration;

use openvaai_client::datastore::{marker, nfs42_path};
use openvaai_client::{DataStore, Decline, Failure, RawDataStore};

use crate::primitive::{Outcome, Primitive, Progress, Request};

/// What serves one session's datastore. Calls come from any of disklib's threads at once.
pub trait Backend: Send + Sync {
    /// One line for the log: what serves the datastore, and what it can do.
    fn describe(&self) -> String;
    /// Whether SupportStatus says yes to `primitive`.
    fn supports(&self, primitive: Primitive) -> bool;
    /// Runs one ExecPrimitive, bounded by the session timeout.
    fn exec(&self, request: &Request<'_>, progress: &mut dyn Progress) -> Outcome;
}

/// Which backend a datastore's marker names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.openvaai/access`: openvaaid serves the export.
    Openvaaid,
    /// `.openvaai/nfs42` (and no access file): the standard NFSv4.2 backend.
    Nfs42,
}

/// Claims a datastore for a backend, or declines it without touching the network (costs at
/// most a `stat` per marker).
pub fn claim(raw: &RawDataStore<'_>) -> Result<(DataStore, Kind), Decline> {
    let ds = DataStore::from_raw(raw)?;
    let access = ds.access_file();
    if marker(&access)? {
        return Ok((ds, Kind::Openvaaid));
    }
    let nfs42 = nfs42_path(&ds.local_mount_point);
    if marker(&nfs42)? {
        return Ok((ds, Kind::Nfs42));
    }
    Err(Decline::NoMarker { access, nfs42 })
}

/// Opens the backend `kind` on `datastore` (StartSession's network part).
pub fn open(
    kind: Kind,
    datastore: DataStore,
    timeout: Duration,
) -> Result<Box<dyn Backend>, Failure> {
    match kind {
        Kind::Openvaaid => Ok(Box::new(openvaaid::Openvaaid::open(datastore, timeout)?)),
        Kind::Nfs42 => Ok(Box::new(nfs42::Nfs42::open(datastore, timeout)?)),
    }
}
