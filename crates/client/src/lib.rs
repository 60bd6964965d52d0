//! openvaai's client side of openvaaid, as a library: what the plugin (`libopenvaai.so`),
//! `openvaai check`, the daemon's tests and the faults suite all use to reach a daemon.
//!
//! - [`datastore`]: a datastore as disklib describes it, whether openvaaid serves it, the
//!   access file read through the mount, and ESXi paths made relative to the export;
//! - [`address`]: the daemon's addresses from the access file or the datastore's `remoteIP`,
//!   names looked up within a deadline (no `getaddrinfo`);
//! - [`tls`]: the client TLS configuration that pins the certificate the access file names;
//! - [`conn`]: one authenticated connection, every exchange bounded by a deadline;
//! - [`tcp`]: a TCP connection within a deadline, from a reserved source port when root;
//! - [`reach`]: connecting with the access file as it is now, riding out a daemon restart.
//!
//! Failures are said in disklib's terms ([`Failure`]: a `VixError` and a detail), because
//! that is what every user of this crate reports. Nothing here writes to stdout or stderr or
//! starts a thread: what is worth logging goes to the caller's [`Note`].
#![deny(unsafe_code)]

pub mod address;
pub mod conn;
pub mod datastore;
pub mod reach;
pub mod tcp;
pub mod timeout;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvaai_proto::access::AccessFile;
use openvaai_proto::Capabilities;

pub use conn::{Conn, ExportKey, Failure, Stream};
pub use datastore::{DataStore, Decline, PathError, RawDataStore};
pub use reach::Trust;

/// Where a caller's informational messages go (the plugin: disklib's log).
pub type Note<'a> = &'a dyn Fn(std::fmt::Arguments<'_>);

/// A [`Note`] that drops every message.
pub fn quiet(_: std::fmt::Arguments<'_>) {}

/// A first connection to the daemon serving `datastore`: the access file as read, the
/// connection (authenticated for the export) and the export's capabilities.
pub struct Opened {
    pub trust: Arc<Trust>,
    pub conn: Conn,
    pub capabilities: Capabilities,
}

/// Reads the access file, connects, authenticates the export and reads its capabilities,
/// all before `deadline`: what StartSession does first.
pub fn open(datastore: &DataStore, deadline: Instant, note: Note<'_>) -> Result<Opened, Failure> {
    let mut trust = Arc::new(Trust::read(datastore, deadline)?);
    let mut conn = reach::connect(datastore, &mut trust, deadline, note)?;
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
    Ok(Opened {
        trust,
        conn,
        capabilities,
    })
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

/// Opens a connection to a datastore's daemon as StartSession would, reports what it found,
/// and closes it. Errors come as the VixError StartSession would return, with the reason.
pub fn probe(raw: &RawDataStore<'_>, timeout: Duration) -> Result<Probe, Failure> {
    let datastore =
        DataStore::claim(raw).map_err(|d| Failure::new(d.vix_error(), d.to_string()))?;
    let opened = open(&datastore, Instant::now() + timeout, &quiet)?;
    Ok(Probe {
        capabilities: opened.capabilities,
        server_version: opened.conn.server_version.clone(),
        addresses: opened.trust.addrs.clone(),
        access: opened.trust.access.clone(),
    })
}
