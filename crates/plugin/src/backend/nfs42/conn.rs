//! The backend's NFSv4.1 session on the datastore's server: TCP to `remoteIP:port` (a
//! reserved source port when root), EXCHANGE_ID / CREATE_SESSION / RECLAIM_COMPLETE, and
//! every COMPOUND after that bounded by a deadline. NFS4ERR_DELAY and NFS4ERR_GRACE are
//! retried with backoff inside it, a lost connection is reconnected (the session survives
//! it) and a lost session re-established, all before the same deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use openvaai_abi::vix;
use openvaai_client::tcp::{self, Source};
use openvaai_client::Failure;
use openvaai_nfs4::basic::Verifier;
use openvaai_nfs4::ops::session::ClientOwner;
use openvaai_nfs4::ops::Op;
use openvaai_nfs4::{AuthSys, CompoundRes, ErrorKind, Nfs4Client};
use openvaai_proto::deadline::DeadlineStream;

use super::status::vix_of;

/// The first pause before a retry of NFS4ERR_DELAY / NFS4ERR_GRACE; doubled up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// Session set-ups tried when the server refuses a new session at once.
const SETUP_TRIES: u32 = 3;
/// The most a session set-up waits on one connection before it tries a new one (but the
/// last attempt, which has all the time left); a set-up is a few small exchanges.
const SETUP_ATTEMPT_MAX: Duration = Duration::from_secs(10);
/// The most the destruction of a failed set-up may take past the session's deadline.
const ABANDON_BOUND: Duration = Duration::from_millis(500);

/// What a call that must not run twice came to ([`Conn::call_once`]).
#[derive(Debug)]
pub enum Once {
    /// The server's reply (its status may be a failure).
    Done(CompoundRes),
    /// The call was sent but no usable reply came: the server may or may not have run it.
    Uncertain(Failure),
}

/// One NFSv4.1 session of this backend.
pub struct Conn {
    client: Nfs4Client<DeadlineStream>,
    addrs: Vec<SocketAddr>,
    owner: ClientOwner,
    /// Where the current connection goes, and from which port.
    pub addr: SocketAddr,
    pub source: Source,
    /// The stream may hold part of a reply, or bytes this client cannot frame (a call
    /// that timed out mid-reply, a reply that did not decode or did not answer the call):
    /// it is never read again, the next call opens a new connection first.
    broken: bool,
}

/// Whether an error of the protocol crate leaves the stream unusable: any failure of the
/// stream, the framing or the decoding, or a reply that does not answer the call. An NFS
/// status, a refused RPC or an argument refused before sending leave it in step.
fn breaks_stream(e: &openvaai_nfs4::Error) -> bool {
    match e.kind() {
        ErrorKind::Io | ErrorKind::Decode | ErrorKind::TooLarge | ErrorKind::UnexpectedReply => {
            true
        }
        ErrorKind::Status
        | ErrorKind::Rejected
        | ErrorKind::InvalidArgument
        | ErrorKind::NoSession => false,
    }
}

/// A client owner no other session shares: two sessions of one process (two datastores on
/// one server) with one owner and two verifiers would look like a client reboot to the
/// server, which would then drop the other's state.
fn owner() -> ClientOwner {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    ClientOwner {
        verifier: Verifier(nanos.to_be_bytes()),
        ownerid: format!("openvaai {} pid {} session {n}", nanos, std::process::id()).into_bytes(),
    }
}

/// The failure for an error of the protocol crate.
pub fn failure(what: &str, e: &openvaai_nfs4::Error) -> Failure {
    let vix = match e.kind() {
        ErrorKind::Io => vix::E_HOST_CONNECTION_LOST,
        ErrorKind::Status => e.nfs_status().map_or(vix::E_FAIL, vix_of),
        ErrorKind::Rejected => vix::E_NOT_SUPPORTED,
        ErrorKind::InvalidArgument => vix::E_INVALID_ARG,
        // A reply that is malformed, over a limit or not the answer to the call, a call
        // before a session: the server (or this client) is broken.
        ErrorKind::Decode
        | ErrorKind::TooLarge
        | ErrorKind::UnexpectedReply
        | ErrorKind::NoSession => vix::E_FAIL,
    };
    let mut f = Failure::new(vix, format!("{what}: {e}"));
    f.broken = e.is_connection_lost();
    f
}

/// Connects to the first address that answers, before `deadline` (each but the last gets
/// an equal share of the time left).
fn connect(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<(DeadlineStream, SocketAddr, Source), Failure> {
    let mut why = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let until = Instant::now() + left / (addrs.len() - i) as u32;
        match tcp::connect(*addr, until) {
            Ok((tcp, source)) => {
                let _ = tcp.set_nodelay(true);
                let stream = DeadlineStream::new(tcp);
                stream.set_deadline(deadline);
                return Ok((stream, *addr, source));
            }
            Err(e) => why.push(format!("{addr}: {e}")),
        }
    }
    Err(Failure::new(
        vix::E_HOST_NOT_CONNECTED,
        format!(
            "connecting to the NFS server ({}); check that it is up and serves NFSv4.2 on that \
             port (the `port` of .openvaai/nfs42)",
            why.join("; ")
        ),
    ))
}

/// Sleeps `*backoff` (doubling it) if that ends before `deadline`; false when it would not.
fn pause(backoff: &mut Duration, deadline: Instant) -> bool {
    if Instant::now() + *backoff >= deadline {
        return false;
    }
    std::thread::sleep(*backoff);
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    true
}

impl Conn {
    /// Connects and establishes a session before `deadline`.
    pub fn open(addrs: Vec<SocketAddr>, deadline: Instant) -> Result<Conn, Failure> {
        let mut owner = owner();
        let mut attempt = 1;
        loop {
            // A set-up whose replies stop coming (seen with 64 set-ups at once on knfsd
            // behind qemu's user networking: a few connections never answered) is given up
            // after part of the time and tried again on a new connection, from another
            // source port, as the same client owner with a new verifier: to the server the
            // client restarted, so whatever the first attempt left there (a client id, a
            // session whose CREATE_SESSION reply was lost) is dropped when the new one is
            // confirmed.
            let until = match attempt {
                SETUP_TRIES.. => deadline,
                _ => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    Instant::now() + (left / 2).min(SETUP_ATTEMPT_MAX)
                }
            };
            let (stream, addr, source) = connect(&addrs, until)?;
            let mut conn = Conn {
                client: Nfs4Client::new(stream, &AuthSys::root("openvaai")),
                addrs: addrs.clone(),
                owner: owner.clone(),
                addr,
                source,
                broken: false,
            };
            match conn.establish(until) {
                Ok(()) => return Ok(conn),
                // No reply in time, or still DELAY/GRACE (busy) when the attempt's share
                // ran out: the rest of the time goes to the next attempt.
                Err(f)
                    if (f.broken || f.vix == vix::E_OBJECT_IS_BUSY)
                        && attempt < SETUP_TRIES
                        && Instant::now() < deadline =>
                {
                    crate::info!("{f}; trying again on a new connection");
                    attempt += 1;
                    owner.verifier = self::owner().verifier;
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// A new connection in place of a broken one (the session survives it).
    fn reconnect(&mut self, deadline: Instant) -> Result<(), Failure> {
        let (stream, addr, source) = connect(&self.addrs, deadline)?;
        drop(self.client.replace_stream(stream));
        self.addr = addr;
        self.source = source;
        self.broken = false;
        Ok(())
    }

    /// EXCHANGE_ID, CREATE_SESSION, RECLAIM_COMPLETE, retrying GRACE and DELAY. A session
    /// the server refuses at once (its first SEQUENCE answered NFS4ERR_SEQ_MISORDERED,
    /// BADSESSION...: seen on knfsd among many sessions started at once) is destroyed and
    /// set up again, up to [`SETUP_TRIES`] times; a set-up that fails destroys what it made,
    /// so that nothing of it stays on the server.
    fn establish(&mut self, deadline: Instant) -> Result<(), Failure> {
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 1;
        loop {
            if self.broken {
                self.reconnect(deadline)?;
            }
            self.client.stream().set_deadline(deadline);
            match self.client.establish(self.owner.clone()) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && pause(&mut backoff, deadline) => {}
                Err(e)
                    if e.is_session_lost()
                        && tries < SETUP_TRIES
                        && pause(&mut backoff, deadline) =>
                {
                    tries += 1;
                    crate::info!(
                        "setting up an NFSv4.2 session with {}: {e}; setting it up again",
                        self.addr
                    );
                    self.abandon(deadline);
                }
                Err(e) => {
                    self.broken |= breaks_stream(&e);
                    self.abandon(deadline);
                    return Err(failure(
                        &format!("setting up an NFSv4.2 session with {}", self.addr),
                        &e,
                    ));
                }
            }
        }
    }

    /// DESTROY_SESSION and DESTROY_CLIENTID of a set-up that failed, each tried (within
    /// `deadline`, or [`ABANDON_BOUND`] when that has passed); both are forgotten whatever
    /// the answers.
    fn abandon(&mut self, deadline: Instant) {
        if self.broken {
            self.client.forget_session();
            return;
        }
        self.client
            .stream()
            .set_deadline(deadline.max(Instant::now() + ABANDON_BOUND));
        let destroyed = self.client.destroy_session();
        let _ = self.client.destroy_clientid();
        if let Err(e) = destroyed {
            self.broken |= breaks_stream(&e);
        }
    }

    /// SEQUENCE and `ops` in one COMPOUND, before `deadline`: DELAY and GRACE retried, a lost
    /// connection or session made again, and `ops` sent again after that. For operations
    /// whose repetition does no harm (lookups, reads, SETATTR, COPY of one range...); the
    /// others go through [`Conn::call_once`]. The result may still carry a failed
    /// operation: its status is the COMPOUND's.
    pub fn call(
        &mut self,
        what: &str,
        ops: &[Op],
        deadline: Instant,
    ) -> Result<CompoundRes, Failure> {
        match self.call_with(what, ops, deadline, true)? {
            Once::Done(res) => Ok(res),
            Once::Uncertain(f) => Err(f),
        }
    }

    /// Like [`Conn::call`], but `ops` are never sent again once they may have reached the
    /// server: a failed connection or an unreadable reply after sending is
    /// [`Once::Uncertain`], and the caller checks what happened (LOOKUP the name it made,
    /// compare fileids) before anything is sent again. For LINK, RENAME, REMOVE, OPEN with
    /// create.
    pub fn call_once(
        &mut self,
        what: &str,
        ops: &[Op],
        deadline: Instant,
    ) -> Result<Once, Failure> {
        self.call_with(what, ops, deadline, false)
    }

    fn call_with(
        &mut self,
        what: &str,
        ops: &[Op],
        deadline: Instant,
        repeat: bool,
    ) -> Result<Once, Failure> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.broken {
                self.reconnect(deadline)?;
            }
            self.client.stream().set_deadline(deadline);
            let err = match self.client.compound(ops) {
                Ok(res) if res.status.is_retryable() && pause(&mut backoff, deadline) => continue,
                Ok(res) => return Ok(Once::Done(res)),
                Err(e) => e,
            };
            self.broken |= breaks_stream(&err);
            if !repeat && breaks_stream(&err) {
                // Sent (or its slot's resynchronisation was): the server may have run it.
                return Ok(Once::Uncertain(failure(what, &err)));
            }
            if err.is_retryable() && pause(&mut backoff, deadline) {
                continue;
            }
            if Instant::now() >= deadline {
                return Err(failure(what, &err));
            }
            if err.is_connection_lost() {
                // Not in a tight loop against a server that resets every connection.
                let _ = pause(&mut backoff, deadline);
                continue;
            }
            if err.is_session_lost() {
                // Destroyed, not just forgotten: a session out of step (SEQ_MISORDERED,
                // BADSLOT) is still the server's (a gone one answers BADSESSION or
                // STALE_CLIENTID, which count as destroyed).
                self.abandon(deadline);
                self.establish(deadline)?;
                continue;
            }
            return Err(failure(what, &err));
        }
    }

    /// The client id of the session (for open owners).
    pub fn clientid(&self) -> u64 {
        self.client.client_id().map_or(0, |c| c.clientid)
    }

    /// Operations a COMPOUND may carry besides SEQUENCE, as the session granted.
    pub fn max_ops(&self) -> usize {
        self.client.session().map_or(2, |s| {
            (s.fore.max_operations as usize).min(openvaai_nfs4::limits::MAX_OPS) - 1
        })
    }

    /// DESTROY_SESSION and DESTROY_CLIENTID before `deadline`: no state left on the server.
    pub fn shutdown(&mut self, deadline: Instant) -> Result<(), Failure> {
        if self.broken {
            self.reconnect(deadline)?;
        }
        self.client.stream().set_deadline(deadline);
        self.client
            .shutdown()
            .map_err(|e| failure("ending the NFSv4.2 session", &e))
    }
}
