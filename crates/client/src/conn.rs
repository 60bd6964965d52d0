//! One connection to openvaaid: TCP with a connect timeout, TLS pinned to the certificate the
//! access file names, and the HMAC handshake for each export the connection serves.
//!
//! Every exchange is bounded by the caller's deadline: the TLS stream runs over a
//! [`DeadlineStream`], which checks the time left before every read and write, so a peer that
//! trickles its bytes cannot hold a call past its session timeout.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvaai_abi::{vix, VixError};
use openvaai_proto::access::AccessFile;
use openvaai_proto::deadline::DeadlineStream;
use openvaai_proto::{Client, ErrorKind as ProtoKind, Status};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

pub type Stream = StreamOwned<ClientConnection, DeadlineStream>;

/// Why a connection or a call failed, already in disklib's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub vix: VixError,
    pub detail: String,
    /// The connection is unusable afterwards.
    pub broken: bool,
}

impl Failure {
    pub fn new(vix: VixError, detail: impl Into<String>) -> Failure {
        Failure {
            vix,
            detail: detail.into(),
            broken: false,
        }
    }

    fn broken(vix: VixError, detail: impl Into<String>) -> Failure {
        Failure {
            vix,
            detail: detail.into(),
            broken: true,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = vix::name(self.vix).unwrap_or("VixError");
        write!(f, "{name}: {}", self.detail)
    }
}

/// A protocol error on an open connection: the stream cannot be trusted afterwards.
pub fn lost(err: &openvaai_proto::Error) -> Failure {
    let vix = match err.kind() {
        ProtoKind::ServerProof => vix::E_AUTHENTICATION_FAIL,
        // A peer that rejects or garbles our calls, or a stream that breaks or times out.
        ProtoKind::Io
        | ProtoKind::Decode
        | ProtoKind::TooLarge
        | ProtoKind::Rejected
        | ProtoKind::UnexpectedReply => vix::E_HOST_CONNECTION_LOST,
        // Not raised on a connection (the access file is parsed before one is opened); if
        // it were, the exchange is as lost as any.
        ProtoKind::AccessFile => vix::E_HOST_CONNECTION_LOST,
    };
    Failure::broken(vix, err.to_string())
}

/// The TLS client configuration that pins `cert_sha256`.
pub fn tls_config(cert_sha256: [u8; 32]) -> Result<Arc<ClientConfig>, Failure> {
    crate::tls::pinned_config(cert_sha256)
        .map_err(|e| Failure::new(vix::E_FAIL, format!("TLS configuration: {e}")))
}

/// Where a daemon listens: the access file's addresses, else every address of the datastore's
/// `remoteIP` (an address, a name, or a list of them), names looked up before `deadline`.
pub fn daemon_addresses(
    access: &AccessFile,
    remote_ip: &str,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Failure> {
    if !access.addresses.is_empty() {
        return Ok(access
            .addresses
            .iter()
            .map(|ip| SocketAddr::new(*ip, access.port))
            .collect());
    }
    crate::address::resolve(remote_ip, access.port, deadline)
        .map_err(|e| Failure::new(vix::E_HOST_NOT_CONNECTED, e.0))
}

/// What an authenticated export needs on a connection.
pub struct ExportKey<'a> {
    pub export: &'a str,
    pub access: &'a AccessFile,
}

/// An open, authenticated connection.
pub struct Conn {
    client: Client<Stream>,
    /// Exports authenticated on this connection.
    exports: Vec<String>,
    pub server_version: String,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("exports", &self.exports)
            .field("server_version", &self.server_version)
            .finish()
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    // A zero timeout means "block forever" to the socket: never pass it.
    (left >= Duration::from_millis(1)).then_some(left)
}

impl Conn {
    /// Connects to the addresses in order until one is connected, shows the pinned
    /// certificate and accepts `key.export`, all before `deadline`. Each address but the last
    /// gets an equal share of the time left, so that one that never answers cannot use it
    /// all. A refusal by a daemon that did answer (a wrong certificate or secret) ends the
    /// attempt: the next address would be the same daemon or no better.
    pub fn open(
        addrs: &[SocketAddr],
        tls: &Arc<ClientConfig>,
        key: &ExportKey<'_>,
        deadline: Instant,
    ) -> Result<Conn, Failure> {
        let mut last = Failure::new(vix::E_HOST_NOT_CONNECTED, "no address to connect to");
        for (i, addr) in addrs.iter().enumerate() {
            let Some(left) = remaining(deadline) else {
                return Err(Failure::new(
                    vix::E_HOST_NOT_CONNECTED,
                    format!("{}; timed out before trying {addr}", last.detail),
                ));
            };
            let until = Instant::now() + left / (addrs.len() - i) as u32;
            let attempt = TcpStream::connect_timeout(addr, left / (addrs.len() - i) as u32)
                .map_err(|e| {
                    Failure::new(
                        vix::E_HOST_NOT_CONNECTED,
                        format!("connecting to openvaaid at {addr}: {e}"),
                    )
                })
                .and_then(|tcp| Conn::handshake(tcp, *addr, tls, key, until));
            match attempt {
                Ok(conn) => return Ok(conn),
                Err(f)
                    if f.vix != vix::E_HOST_NOT_CONNECTED
                        && f.vix != vix::E_HOST_CONNECTION_LOST =>
                {
                    return Err(f)
                }
                Err(f) => last = f,
            }
        }
        Err(last)
    }

    fn handshake(
        tcp: TcpStream,
        addr: SocketAddr,
        tls: &Arc<ClientConfig>,
        key: &ExportKey<'_>,
        deadline: Instant,
    ) -> Result<Conn, Failure> {
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(addr.ip().into());
        let tls_conn = ClientConnection::new(tls.clone(), name)
            .map_err(|e| Failure::new(vix::E_FAIL, format!("TLS: {e}")))?;
        let mut stream = StreamOwned::new(tls_conn, DeadlineStream::new(tcp));
        set_deadline(&stream.sock, deadline)?;
        // Drive the TLS handshake now, so that a certificate mismatch is told apart from a
        // protocol failure.
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                return Err(tls_failure(&e, addr));
            }
        }
        let mut conn = Conn {
            client: Client::new(stream),
            exports: Vec::new(),
            server_version: String::new(),
        };
        conn.authenticate(key, deadline)?;
        Ok(conn)
    }

    /// Authenticates one more export on this connection (a clone's source on another
    /// datastore of the same daemon). A no-op for an export already authenticated.
    pub fn authenticate(&mut self, key: &ExportKey<'_>, deadline: Instant) -> Result<(), Failure> {
        if self.exports.iter().any(|e| e == key.export) {
            return Ok(());
        }
        set_deadline(&self.client.stream().sock, deadline)?;
        match self.client.authenticate(key.export, &key.access.secret) {
            Ok(Ok(hello)) => {
                self.server_version = hello.server_version;
                self.exports.push(key.export.to_owned());
                Ok(())
            }
            Ok(Err(status)) => Err(refused(status, key.export)),
            Err(e) => Err(lost(&e)),
        }
    }

    /// Runs `f` on the client with the socket bounded by `deadline`.
    pub fn with<T>(
        &mut self,
        deadline: Instant,
        f: impl FnOnce(&mut Client<Stream>) -> openvaai_proto::Result<T>,
    ) -> Result<T, Failure> {
        set_deadline(&self.client.stream().sock, deadline)?;
        f(&mut self.client).map_err(|e| lost(&e))
    }
}

/// The most a closing connection waits to say so (a full send buffer: a peer that stopped
/// reading); usually the alert goes into the socket buffer at once.
const CLOSE_BOUND: Duration = Duration::from_millis(100);

impl Drop for Conn {
    /// Ends the TLS session with a close_notify alert, so the daemon sees a clean close and
    /// not a lost connection; bounded by [`CLOSE_BOUND`], and nothing is waited for back.
    fn drop(&mut self) {
        let stream = self.client.stream_mut();
        stream.sock.set_deadline(Instant::now() + CLOSE_BOUND);
        stream.conn.send_close_notify();
        let _ = io::Write::flush(stream);
    }
}

/// Bounds every later read and write on `sock` by `deadline`.
fn set_deadline(sock: &DeadlineStream, deadline: Instant) -> Result<(), Failure> {
    if remaining(deadline).is_none() {
        return Err(Failure::broken(
            vix::E_HOST_CONNECTION_LOST,
            "the session timeout ran out",
        ));
    }
    sock.set_deadline(deadline);
    Ok(())
}

fn tls_failure(e: &io::Error, addr: SocketAddr) -> Failure {
    let text = e.to_string();
    let cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    let denied = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::AlertReceived(rustls::AlertDescription::AccessDenied)
            )
        });
    if cert {
        Failure::broken(
            vix::E_AUTHENTICATION_FAIL,
            format!("{addr} presented a certificate other than the access file's: {text}"),
        )
    } else if denied {
        Failure::broken(
            vix::E_FILE_ACCESS_ERROR,
            format!(
                "openvaaid at {addr} does not allow this host: its address is in no export's \
                 allowed_networks (refused before TLS)"
            ),
        )
    } else if matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
    ) {
        Failure::broken(
            vix::E_HOST_NOT_CONNECTED,
            format!(
                "openvaaid at {addr} closed the connection during the TLS handshake ({text}): \
                 the daemon is at its connection limits or restarting (its log says which)"
            ),
        )
    } else {
        Failure::broken(
            vix::E_HOST_NOT_CONNECTED,
            format!("TLS handshake with {addr}: {text}"),
        )
    }
}

/// The daemon refused the handshake for `export`.
fn refused(status: Status, export: &str) -> Failure {
    let detail = match status {
        Status::AuthenticationFail => {
            format!(
                "openvaaid refused the secret for {export}: the access file is stale or foreign"
            )
        }
        Status::NotSupported | Status::ObjectNotFound | Status::FileNotFound => {
            format!("openvaaid does not serve an export named {export}")
        }
        Status::FileAccessError => {
            format!("openvaaid does not allow this host to use {export}")
        }
        other => format!("openvaaid refused {export}: {other:?}"),
    };
    let vix = match status {
        // An unknown export is a datastore the plugin cannot serve.
        Status::ObjectNotFound | Status::FileNotFound => vix::E_NOT_SUPPORTED,
        other => status_vix(other),
    };
    Failure::broken(vix, detail)
}

/// A protocol status as a VixError: the codes are the same numbers by design.
pub fn status_vix(status: Status) -> VixError {
    match status {
        Status::Unknown(_) => vix::E_FAIL,
        known => known.vix_code(),
    }
}
