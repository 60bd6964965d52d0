//! The standard backend: primitives as the server's own NFSv4.2 operations (RFC 7862), with
//! nothing installed on the NAS. Chosen by `<localMountPoint>/.openvaai/nfs42` ([`config`]).
//!
//! StartSession connects to `remoteIP:port` ([`conn`]), looks the export up from PUTROOTFH
//! ([`lookup`]), finds the marker on the server's side of the export (the same file the
//! plugin saw through the mount: a check that `remoteMountPoint` is the export mounted there)
//! and probes on it which offload operations the server has ([`probe`]), then removes the
//! temporaries crashed hosts left in the export's `.openvaai/` ([`temp::cleanup`]).
//! EndSession (the session's drop) destroys the session and client id. One COMPOUND at a
//! time per session.

mod clone;
mod config;
mod conn;
mod copy;
mod lookup;
mod owner;
mod probe;
mod publish;
mod reserve;
mod status;
mod statx;
mod temp;

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_client::address::resolve;
use openvaai_client::tcp::Source;
use openvaai_client::{DataStore, Failure};
use openvaai_nfs4::attr::FileType;
use openvaai_nfs4::basic::Fh;

use super::Backend;
use crate::primitive::{Outcome, Primitive, Progress, Request};
pub use config::Config;
use conn::Conn;
use lookup::{Found, Start};
pub use probe::Supported;

/// How often a call waiting for the session's connection looks again: from the first
/// pause, doubling to the last.
const LOCK_POLL_FIRST: Duration = Duration::from_micros(100);
const LOCK_POLL_MAX: Duration = Duration::from_millis(5);

/// The most a failed StartSession spends taking its session down.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

/// A session's datastore served by the server's NFSv4.2 operations.
pub struct Nfs42 {
    pub datastore: DataStore,
    pub timeout: Duration,
    pub supported: Supported,
    /// The export's root, as `remoteMountPoint` names it.
    root: Fh,
    /// The export's `.openvaai/` on the server: where clones are built ([`temp`]).
    private: Found,
    conn: Mutex<Conn>,
}

impl Nfs42 {
    /// Reads the marker, connects, sets up a session, looks the export up and probes it.
    pub fn open(datastore: DataStore, timeout: Duration) -> Result<Nfs42, Failure> {
        let deadline = Instant::now() + timeout;
        let marker = openvaai_client::datastore::nfs42_path(&datastore.local_mount_point);
        let config = Config::read(&marker)?;
        let addrs = resolve(&datastore.remote_ip, config.port, deadline)
            .map_err(|e| Failure::new(vix::E_HOST_NOT_CONNECTED, e.0))?;
        let mut conn = Conn::open(addrs, deadline)?;
        let found = Nfs42::find_export(&mut conn, &datastore.remote_mount_point, deadline);
        let (root, private, supported) = match found {
            Ok(found) => found,
            Err(f) => {
                // Nothing of a session that failed stays on the server.
                let _ = conn.shutdown(Instant::now() + timeout.min(SHUTDOWN_BOUND));
                return Err(f);
            }
        };
        Ok(Nfs42 {
            datastore,
            timeout,
            supported,
            root,
            private,
            conn: Mutex::new(conn),
        })
    }

    /// The export's root handle, its private directory (cleaned of crashed hosts'
    /// temporaries), and what the server supports there.
    fn find_export(
        conn: &mut Conn,
        export: &str,
        deadline: Instant,
    ) -> Result<(Fh, Found, Supported), Failure> {
        let names = lookup::components(export, "remoteMountPoint")?;
        let root = lookup::walk(conn, Start::Root, &names, export, deadline)?;
        if root.file_type() != FileType::Directory {
            return Err(Failure::new(
                vix::E_NOT_SUPPORTED,
                format!("the server's {export:?} is not a directory"),
            ));
        }
        let supported = probe::probe(conn, &root.fh, export, deadline)?;
        let private = temp::private_dir(conn, &root.fh, deadline)?;
        let cleaned = temp::cleanup(conn, &private.fh, deadline);
        if !cleaned.removed.is_empty() {
            crate::info!(
                "{export}: removed {} temporaries crashed hosts left in .openvaai: {}",
                cleaned.removed.len(),
                cleaned.removed.join(", ")
            );
        }
        if !cleaned.live.is_empty() {
            crate::info!(
                "{export}: kept {} temporaries a live session is writing: {}",
                cleaned.live.len(),
                cleaned.live.join(", ")
            );
        }
        if !cleaned.failed.is_empty() {
            crate::warning!(
                "{export}: cleaning .openvaai of crashed hosts' temporaries: {}",
                cleaned.failed.join("; ")
            );
        }
        Ok((root.fh, private, supported))
    }

    /// A deadline one session timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// The session's connection (one COMPOUND at a time), waited for until `deadline` at
    /// most: a call that waits behind another (a LAZY clone's CLONE, a COPY range, each up
    /// to a session timeout) still ends within its own timeout, busy. A panic while it was
    /// held leaves it usable (its slot is resynchronised by the next call).
    fn conn_by(&self, deadline: Instant) -> Result<MutexGuard<'_, Conn>, Failure> {
        let mut pause = LOCK_POLL_FIRST;
        loop {
            match self.conn.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::new(
                    vix::E_OBJECT_IS_BUSY,
                    "the session's NFS connection stayed busy with another call of this \
                     session (a clone or a copy range) until the session timeout; retry, or \
                     give the session a longer timeout",
                ));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
    }
}

impl Backend for Nfs42 {
    fn describe(&self) -> String {
        let Ok(conn) = self.conn_by(self.deadline()) else {
            return format!(
                "export {} on an NFSv4.2 server (busy), standard backend; server offers {}",
                self.datastore.remote_mount_point,
                self.supported.describe()
            );
        };
        let from = match conn.source {
            Source::Reserved(p) => format!("reserved port {p}"),
            Source::Ephemeral => "an unreserved port".to_owned(),
        };
        format!(
            "export {} on NFSv4.2 server {} (from {from}), standard backend; server offers {}",
            self.datastore.remote_mount_point,
            conn.addr,
            self.supported.describe()
        )
    }

    fn supports(&self, primitive: Primitive) -> bool {
        match primitive {
            // GETATTR is every server's; SEEK only sharpens allocType.
            Primitive::Statx => true,
            // LAZY clones where the probe found CLONE, full ones where it found COPY.
            Primitive::Clone => self.supported.clone || self.supported.copy,
            // Where the probe saw an ALLOCATE hold (not on ZFS: it allocates nothing).
            Primitive::Reserve => self.supported.allocate.holds(),
        }
    }

    fn exec(&self, request: &Request<'_>, progress: &mut dyn Progress) -> Outcome {
        let result = match request {
            Request::Statx { file } => statx::statx(self, file),
            Request::Clone {
                src,
                dst,
                flags,
                src_datastore,
            } => clone::clone(self, src, dst, *flags, src_datastore.as_ref(), progress)
                .map(|()| Outcome::status(vix::OK)),
            Request::Reserve { file } => {
                reserve::reserve(self, file, progress).map(|()| Outcome::status(vix::OK))
            }
        };
        result.unwrap_or_else(|failure| {
            crate::warning!("{}: {failure}", request.name());
            Outcome::status(failure.vix)
        })
    }
}

impl Drop for Nfs42 {
    /// EndSession: DESTROY_SESSION and DESTROY_CLIENTID, within the session timeout.
    fn drop(&mut self) {
        let deadline = self.deadline();
        if let Err(f) = self
            .conn_by(deadline)
            .and_then(|mut conn| conn.shutdown(deadline))
        {
            crate::info!(
                "ending the session on {}: {f}",
                self.datastore.mount().display()
            );
        }
    }
}
