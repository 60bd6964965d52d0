//! Reaching the daemon: the access file as last read (a [`Trust`]), and opening an
//! authenticated connection with it that rides out a daemon restart (the file read again
//! when it changed, transient failures retried with backoff within the caller's deadline).

use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_proto::access::AccessFile;
use rustls::ClientConfig;

use crate::conn::{self, Conn, ExportKey, Failure};
use crate::datastore::DataStore;
use crate::Note;

/// The first pause before trying to connect again; each next one doubles, up to
/// [`RETRY_MAX`], and is spread by ±50 % so that a burst of clients does not come back in
/// step.
pub const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest pause between two attempts to connect.
pub const RETRY_MAX: Duration = Duration::from_secs(1);
/// Less time left than this is not worth another attempt: the last failure is returned.
const MIN_ATTEMPT: Duration = Duration::from_millis(10);

/// How to reach and convince the daemon: the access file as last read, the addresses it
/// gives, and the TLS configuration that pins its certificate.
pub struct Trust {
    pub access: AccessFile,
    /// Which version of the file this is, without reading it.
    stamp: Option<Stamp>,
    pub addrs: Vec<SocketAddr>,
    tls: Arc<ClientConfig>,
}

/// What tells one version of the access file from the next at the cost of a `stat`: the
/// daemon writes a new file and renames it into place, so a new version is a new inode with
/// a new mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    len: u64,
}

fn stamp(datastore: &DataStore) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(datastore.access_file()).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
        len: m.len(),
    })
}

impl Trust {
    /// Reads the access file and finds the daemon's addresses (names looked up before
    /// `deadline`).
    pub fn read(datastore: &DataStore, deadline: Instant) -> Result<Trust, Failure> {
        // The stamp first: if the file changes between the two, the next look reads it again.
        let stamp = stamp(datastore);
        let access = datastore.read_access()?;
        Trust::with(datastore, access, stamp, deadline)
    }

    fn with(
        datastore: &DataStore,
        access: AccessFile,
        stamp: Option<Stamp>,
        deadline: Instant,
    ) -> Result<Trust, Failure> {
        let addrs = conn::daemon_addresses(&access, &datastore.remote_ip, deadline)?;
        let tls = conn::tls_config(access.cert_sha256)?;
        Ok(Trust {
            access,
            stamp,
            addrs,
            tls,
        })
    }

    /// The access file as it is now, if its content differs from this one's (a restarted
    /// daemon's: a new secret, maybe a new port). `None` when it is the same, or cannot be
    /// read just now (a daemon being restarted may be rewriting it): this one is then still
    /// the best guess.
    pub fn newer(&self, datastore: &DataStore, deadline: Instant) -> Option<Trust> {
        let stamp = stamp(datastore);
        let access = datastore.read_access().ok()?;
        // Only a new file is worth resolving the daemon's address again.
        if access == self.access {
            return None;
        }
        Trust::with(datastore, access, stamp, deadline).ok()
    }

    /// Whether the file may have changed since it was read.
    pub fn stale(&self, datastore: &DataStore) -> bool {
        self.stamp.is_none() || stamp(datastore) != self.stamp
    }

    fn open(&self, export: &str, deadline: Instant) -> Result<Conn, Failure> {
        let key = ExportKey {
            export,
            access: &self.access,
        };
        Conn::open(&self.addrs, &self.tls, &key, deadline)
    }
}

/// Whether a failure to open a connection may pass within the timeout: nobody listening (a
/// daemon restarting), a connection closed at accept or during the handshake (the daemon's
/// connection limits), no answer yet. A refusal (wrong secret, wrong pin, unknown export)
/// does not pass by waiting; it is retried only with a changed access file.
fn transient(f: &Failure) -> bool {
    f.vix == vix::E_HOST_NOT_CONNECTED || f.vix == vix::E_HOST_CONNECTION_LOST
}

/// `pause` spread by ±50 %.
fn jitter(pause: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    pause / 2 + pause.mul_f64((r % 1024) as f64 / 1024.0)
}

/// Opens an authenticated connection with `trust` before `deadline`, riding out a daemon
/// restart: the access file is read again first if its stamp changed (so that the new
/// secret is tried, not the old one), transient failures are retried with backoff until the
/// deadline, reading the file again before each new attempt, and a refusal is tried once
/// more only if the file changed. Returns the last failure when the deadline passes.
pub fn connect(
    datastore: &DataStore,
    trust: &mut Arc<Trust>,
    deadline: Instant,
    note: Note<'_>,
) -> Result<Conn, Failure> {
    let export = &datastore.remote_mount_point;
    let changed = |trust: &mut Arc<Trust>| match trust.newer(datastore, deadline) {
        Some(fresh) => {
            note(format_args!(
                "{}: the access file changed (daemon restarted?); connecting with it",
                datastore.mount().display()
            ));
            *trust = Arc::new(fresh);
            true
        }
        None => false,
    };
    if trust.stale(datastore) {
        changed(trust);
    }
    let mut pause = RETRY_FIRST;
    let mut last: Option<Failure> = None;
    loop {
        // Too little time left for one more attempt to say anything: the last one speaks.
        if deadline.saturating_duration_since(Instant::now()) < MIN_ATTEMPT {
            if let Some(f) = last {
                return Err(f);
            }
        }
        let failure = match trust.open(export, deadline) {
            Ok(c) => return Ok(c),
            Err(f) => f,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failure);
        }
        if !transient(&failure) {
            // A refusal passes only with another file: tried once more at once if so.
            if changed(trust) {
                continue;
            }
            return Err(failure);
        }
        if last.is_none() {
            note(format_args!(
                "{}: {failure}; trying again for up to {left:?}",
                datastore.mount().display()
            ));
        }
        last = Some(failure);
        std::thread::sleep(jitter(pause).min(left));
        pause = (pause * 2).min(RETRY_MAX);
        // Before the next attempt: a daemon back by now has written its new file.
        changed(trust);
    }
}

/// Whether the daemon closed this idle connection (a restart, its idle timeout) or sent
/// something unasked, which makes it unusable too: a non-blocking peek at the socket sees
/// the end of the stream, or data, where a live idle connection has nothing.
pub fn closed_by_peer(sock: &TcpStream) -> bool {
    if sock.set_nonblocking(true).is_err() {
        return true;
    }
    let peeked = sock.peek(&mut [0u8; 1]);
    let blocking_again = sock.set_nonblocking(false).is_ok();
    let idle = matches!(&peeked, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    !(idle && blocking_again)
}
