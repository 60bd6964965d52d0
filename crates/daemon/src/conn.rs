//! One client connection: TLS, then records in, replies out, until the client leaves, a
//! deadline passes or the stream breaks.
//!
//! Deadlines: TLS and the first successful AUTH must be done within the handshake timeout
//! of the accept; after that every record must arrive whole within the idle timeout of the
//! previous reply. A slow sender cannot stretch either: the socket's read timeout is set to
//! what is left of the deadline before every read.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use openvaai_proto::record::{read_record, write_record};
use openvaai_proto::rpc::{self, CallError};
use openvaai_proto::ErrorKind;
use rustls::{ServerConnection, StreamOwned};

use crate::handlers::{self, Session};
use crate::server::Shared;

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// Reads from the TLS stream, failing with `TimedOut` once `deadline` has passed.
struct DeadlineReader<'a> {
    tls: &'a mut Tls,
    deadline: Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = remaining(self.deadline)?;
        self.tls.sock.set_read_timeout(Some(left))?;
        self.tls.read(buf)
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    } else {
        Ok(left)
    }
}

pub fn serve(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    let limits = &shared.config.limits;
    let handshake_deadline = Instant::now() + limits.handshake_timeout;
    let setup = (|| -> io::Result<Tls> {
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(limits.idle_timeout))?;
        let conn = ServerConnection::new(shared.tls.clone()).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, stream);
        while tls.conn.is_handshaking() {
            let left = remaining(handshake_deadline)?;
            tls.sock.set_read_timeout(Some(left))?;
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(tls)
    })();
    let mut tls = match setup {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(%peer, "TLS handshake failed: {e}");
            return;
        }
    };
    tracing::debug!(%peer, "connected");
    let mut session = Session::new(peer);
    loop {
        let deadline = if session.any_authenticated() {
            Instant::now() + limits.idle_timeout
        } else {
            handshake_deadline
        };
        let record = read_record(&mut DeadlineReader {
            tls: &mut tls,
            deadline,
        });
        let record = match record {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::debug!(%peer, "client closed the connection");
                return;
            }
            Err(e) if e.is_timeout() => {
                if session.any_authenticated() {
                    tracing::info!(%peer, "closing idle connection");
                } else {
                    tracing::warn!(%peer, "closing connection: no authentication in time");
                }
                return;
            }
            Err(e) if e.kind() == ErrorKind::TooLarge => {
                tracing::warn!(%peer, "closing connection: {e}");
                return;
            }
            Err(e) => {
                tracing::info!(%peer, "connection lost: {e}");
                return;
            }
        };
        let reply = match rpc::decode_call(&record) {
            Ok(call) => handlers::reply(shared, &mut session, &call),
            Err(CallError::Reject { xid, reply }) => {
                tracing::warn!(%peer, xid, "call rejected at the RPC layer");
                reply
            }
            Err(CallError::Malformed(e)) => {
                tracing::warn!(%peer, "closing connection: not an RPC call: {e}");
                return;
            }
        };
        if let Err(e) = write_record(&mut tls, &reply) {
            tracing::info!(%peer, "connection lost while replying: {e}");
            return;
        }
    }
}
