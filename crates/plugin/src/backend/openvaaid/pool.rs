//! A session's connections to openvaaid: a small pool of authenticated ones, leased as a
//! guard ([`Lease`]) that goes back to the pool when dropped unless it broke, and reconnecting
//! (with the access file as it is now) beside it. The primitives deal only in leases.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_client::reach::{closed_by_peer, connect};
use openvaai_client::{Conn, DataStore, ExportKey, Failure, Stream, Trust};
use openvaai_proto::Client;

/// Idle connections kept per session; calls beyond that open their own and close them after.
const MAX_IDLE: usize = 4;
/// A pooled connection idle longer than this is closed rather than reused (the daemon closes
/// idle connections after 300 s by default).
const POOL_MAX_IDLE: Duration = Duration::from_secs(60);
/// A pooled connection idle longer than this is checked with a NULL call before reuse.
const POOL_TRUST_IDLE: Duration = Duration::from_secs(2);
/// The pause between two attempts to reconnect a job's connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// How to reach the daemon, and the idle connections.
pub struct Pool {
    datastore: DataStore,
    trust: Mutex<Arc<Trust>>,
    /// Idle connections and when each was last used.
    idle: Mutex<Vec<(Conn, Instant)>>,
}

/// A connection borrowed from the pool. Dropped, it goes back to the pool, unless an
/// exchange on it failed in a way that leaves it unusable (then it is closed), or it is
/// dropped by a panic.
pub struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
    broken: bool,
}

impl Lease<'_> {
    /// Runs `f` on the client with the socket bounded by `deadline`; a failure that breaks
    /// the connection marks the lease broken.
    pub fn with<T>(
        &mut self,
        deadline: Instant,
        f: impl FnOnce(&mut Client<Stream>) -> openvaai_proto::Result<T>,
    ) -> Result<T, Failure> {
        let r = self.conn().with(deadline, f);
        self.note(r)
    }

    /// Authenticates one more export on the connection (a clone's source on another
    /// datastore of the same daemon).
    pub fn authenticate(&mut self, key: &ExportKey<'_>, deadline: Instant) -> Result<(), Failure> {
        let r = self.conn().authenticate(key, deadline);
        self.note(r)
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    fn note<T>(&mut self, r: Result<T, Failure>) -> Result<T, Failure> {
        if let Err(f) = &r {
            self.broken |= f.broken;
        }
        r
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.broken && !std::thread::panicking() {
                self.pool.put(conn);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind each lock (a pointer swap, a push or a pop): still consistent after
    // a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// A pool holding the first connection of a session.
    pub fn new(datastore: DataStore, trust: Arc<Trust>, first: Conn) -> Pool {
        Pool {
            datastore,
            trust: Mutex::new(trust),
            idle: Mutex::new(vec![(first, Instant::now())]),
        }
    }

    /// The access file as last read.
    pub fn trust(&self) -> Arc<Trust> {
        lock(&self.trust).clone()
    }

    fn put(&self, conn: Conn) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    fn lease_of(&self, conn: Conn) -> Lease<'_> {
        Lease {
            pool: self,
            conn: Some(conn),
            broken: false,
        }
    }

    /// An authenticated connection: an idle one from the pool, or a new one. A new one is
    /// opened with the access file as it is now (a restarted daemon draws a new secret and
    /// may listen elsewhere, and a session must outlive that), retrying within `deadline`
    /// while the daemon cannot be reached.
    pub fn lease(&self, deadline: Instant) -> Result<Lease<'_>, Failure> {
        loop {
            let idle = lock(&self.idle).pop();
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
                return Ok(self.lease_of(conn));
            }
        }
        let before = self.trust();
        let mut trust = before.clone();
        let conn = connect(&self.datastore, &mut trust, deadline, &crate::log::note);
        if !Arc::ptr_eq(&before, &trust) {
            *lock(&self.trust) = trust;
        }
        conn.map(|c| self.lease_of(c))
    }

    /// A lease authenticated for `extra` exports too, for a job whose connection broke:
    /// tried again every [`RECONNECT_PAUSE`] until `deadline` (the daemon may be restarting;
    /// job IDs outlive connections).
    pub fn reconnect(
        &self,
        extra: &[ExportKey<'_>],
        deadline: Instant,
    ) -> Result<Lease<'_>, Failure> {
        let mut last = None;
        while Instant::now() < deadline {
            let attempt = self.lease(deadline).and_then(|mut c| {
                for key in extra {
                    c.authenticate(key, deadline)?;
                }
                Ok(c)
            });
            match attempt {
                Ok(c) => return Ok(c),
                Err(f) => {
                    last = Some(f);
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(RECONNECT_PAUSE));
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Failure::new(vix::E_HOST_CONNECTION_LOST, "the session timeout ran out")
        }))
    }

    /// Runs one idempotent exchange before `deadline`, retrying once on a fresh connection
    /// when the pooled one turns out broken (the daemon restarted, an idle connection was
    /// closed).
    pub fn exchange<T>(
        &self,
        deadline: Instant,
        mut f: impl FnMut(&mut Client<Stream>) -> openvaai_proto::Result<T>,
    ) -> Result<T, Failure> {
        let first = match self.lease(deadline)?.with(deadline, &mut f) {
            Ok(v) => return Ok(v),
            Err(failure) => failure,
        };
        if !first.broken || Instant::now() >= deadline {
            return Err(first);
        }
        self.lease(deadline)?.with(deadline, &mut f)
    }
}
