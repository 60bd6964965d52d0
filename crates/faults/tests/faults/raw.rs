//! A raw protocol client, as the daemon's own tests have one: TCP (optionally from a chosen
//! source address), TLS pinned to the access file's certificate, and the proto `Client`
//! on top; plus streams that record what goes through them, for replays.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openvaai_proto::access::AccessFile;
use openvaai_proto::Client;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

pub type Tls<S = TcpStream> = StreamOwned<ClientConnection, S>;

/// The pinned client configuration the plugin uses.
pub fn client_config(pin: [u8; 32]) -> Arc<rustls::ClientConfig> {
    openvaai_client::tls::pinned_config(pin).expect("a TLS client configuration")
}

/// Where export `access` says the daemon is, on `ip`.
pub fn addr(ip: IpAddr, access: &AccessFile) -> SocketAddr {
    SocketAddr::new(ip, access.port)
}

/// TCP to `to`, from `from` if given (bound before connecting).
pub fn tcp(to: SocketAddr, from: Option<IpAddr>) -> io::Result<TcpStream> {
    let s = match from {
        None => TcpStream::connect_timeout(&to, Duration::from_secs(5))?,
        Some(ip) => {
            use rustix::net::{AddressFamily, SocketType};
            let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
            rustix::net::bind(&fd, &SocketAddr::new(ip, 0))?;
            rustix::net::connect(&fd, &to)?;
            TcpStream::from(fd)
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    Ok(s)
}

/// TLS over `sock`, pinned to `pin`, the handshake driven to its end.
pub fn tls_over<S: Read + Write>(sock: S, pin: [u8; 32]) -> io::Result<Tls<S>> {
    let conn = ClientConnection::new(
        client_config(pin),
        ServerName::try_from("localhost").unwrap(),
    )
    .map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

pub fn tls(to: SocketAddr, pin: [u8; 32]) -> Tls {
    tls_over(tcp(to, None).expect("connecting"), pin).expect("TLS handshake")
}

/// An unauthenticated proto client.
pub fn client(to: SocketAddr, pin: [u8; 32]) -> Client<Tls> {
    Client::new(tls(to, pin))
}

/// A proto client authenticated for `export` with the secret of `access`.
pub fn authed(to: SocketAddr, export: &str, access: &AccessFile) -> Client<Tls> {
    let mut c = client(to, access.cert_sha256);
    let r = c
        .authenticate(export, &access.secret)
        .expect("authenticating");
    assert!(r.is_ok(), "authentication refused: {r:?}");
    c
}

/// A stream that keeps a copy of every byte written through it.
pub struct Recorder<S> {
    pub inner: S,
    pub sent: Arc<Mutex<Vec<u8>>>,
}

impl<S> Recorder<S> {
    pub fn new(inner: S) -> Recorder<S> {
        Recorder {
            inner,
            sent: Arc::default(),
        }
    }
}

impl<S: Read> Read for Recorder<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Recorder<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sent.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads until the peer closes (EOF or reset) or `within` passes; returns what came and
/// whether it closed. Needs a read timeout on the socket (short ones make it precise).
pub fn drain<S: Read>(s: &mut S, within: Duration) -> (Vec<u8>, bool) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return (got, true),
        }
        if start.elapsed() > within {
            return (got, false);
        }
    }
}
