//! The seam between the C interface and whatever serves a datastore.
//!
//! StartSession picks a backend for the datastore by the marker its NAS left under
//! `<localMountPoint>/.openvaai/`; SupportStatus and ExecPrimitive then talk only to that
//! [`Backend`]. Today there is one: [`openvaaid`], the openvaai daemon, chosen by
//! `.openvaai/access`. A second (a standard NFSv4.2 client, `crates/nfs4`, chosen by
//! `.openvaai/nfs42`) is one more module here, one more arm in [`claim`] and [`open`].

pub mod openvaaid;

use std::time::Duration;

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
}

/// Claims a datastore for a backend, or declines it without touching the network (costs at
/// most a `stat` per marker).
pub fn claim(raw: &RawDataStore<'_>) -> Result<(DataStore, Kind), Decline> {
    DataStore::claim(raw).map(|ds| (ds, Kind::Openvaaid))
}

/// Opens the backend `kind` on `datastore` (StartSession's network part).
pub fn open(
    kind: Kind,
    datastore: DataStore,
    timeout: Duration,
) -> Result<Box<dyn Backend>, Failure> {
    match kind {
        Kind::Openvaaid => Ok(Box::new(openvaaid::Openvaaid::open(datastore, timeout)?)),
    }
}
