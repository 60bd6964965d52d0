//! One connection to openvaaid: TCP with a connect timeout, TLS pinned to the certificate the
//! access file names, and the HMAC handshake for each export the connection serves.
//!
//! Every exchange is bounded: before each call the socket's read and write timeouts are set
//! to what is left of the caller's deadline.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvaai_abi::{vix, VixError};
use openvaai_proto::access::AccessFile;
use openvaai_proto::{Client, ErrorKind as ProtoKind, Status};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

pub type Stream = StreamOwned<ClientConnection, TcpStream>;

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
        _ => vix::E_HOST_CONNECTION_LOST,
    };
    Failure::broken(vix, err.to_string())
}

/// The TLS client configuration that pins `cert_sha256`.
pub fn tls_config(cert_sha256: [u8; 32]) -> Result<Arc<ClientConfig>, Failure> {
    crate::tls::pinned_config(cert_sha256)
        .map_err(|e| Failure::new(vix::E_FAIL, format!("TLS configuration: {e}")))
}

/// Where a daemon listens, from the access file and the datastore's NAS address.
pub fn daemon_addresses(access: &AccessFile, remote_ip: &str) -> Result<Vec<SocketAddr>, Failure> {
    if !access.addresses.is_empty() {
        return Ok(access
            .addresses
            .iter()
            .map(|ip| SocketAddr::new(*ip, access.port))
            .collect());
    }
    // ESXi mounts by address or by name; a bracketed IPv6 address is accepted as well.
    let host = remote_ip.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, access.port)]);
    }
    let addrs: Vec<SocketAddr> = (host, access.port)
        .to_socket_addrs()
        .map_err(|e| Failure::new(vix::E_HOST_NOT_CONNECTED, format!("resolving {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Failure::new(
            vix::E_HOST_NOT_CONNECTED,
            format!("{host} has no address"),
        ));
    }
    Ok(addrs)
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
    /// Connects to the first address that answers, pins the certificate, and authenticates
    /// `key.export`, all before `deadline`.
    pub fn open(
        addrs: &[SocketAddr],
        tls: &Arc<ClientConfig>,
        key: &ExportKey<'_>,
        deadline: Instant,
    ) -> Result<Conn, Failure> {
        let mut last = Failure::new(vix::E_HOST_NOT_CONNECTED, "no address to connect to");
        for addr in addrs {
            let Some(left) = remaining(deadline) else {
                return Err(Failure::new(
                    vix::E_HOST_NOT_CONNECTED,
                    format!("timed out connecting to {addr}"),
                ));
            };
            match TcpStream::connect_timeout(addr, left) {
                Ok(tcp) => return Conn::handshake(tcp, *addr, tls, key, deadline),
                Err(e) => {
                    last = Failure::new(
                        vix::E_HOST_NOT_CONNECTED,
                        format!("connecting to openvaaid at {addr}: {e}"),
                    )
                }
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
        let mut stream = StreamOwned::new(tls_conn, tcp);
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

fn set_deadline(sock: &TcpStream, deadline: Instant) -> Result<(), Failure> {
    let left = remaining(deadline).ok_or_else(|| {
        Failure::broken(vix::E_HOST_CONNECTION_LOST, "the session timeout ran out")
    })?;
    sock.set_read_timeout(Some(left))
        .and_then(|()| sock.set_write_timeout(Some(left)))
        .map_err(|e| Failure::broken(vix::E_HOST_CONNECTION_LOST, e.to_string()))
}

fn tls_failure(e: &io::Error, addr: SocketAddr) -> Failure {
    let text = e.to_string();
    let cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if cert {
        Failure::broken(
            vix::E_AUTHENTICATION_FAIL,
            format!("{addr} presented a certificate other than the access file's: {text}"),
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
