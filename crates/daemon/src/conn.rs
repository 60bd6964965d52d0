//! One client connection: TLS, then records in, replies out, until the client leaves, a
//! deadline passes or the stream breaks.
//!
//! Deadlines hold per byte: TLS runs over a [`DeadlineStream`], which checks the time left
//! before every read and write, so a peer that trickles its bytes or never reads its replies
//! cannot stretch one. Until its first successful AUTH, everything on a connection (TLS,
//! reads, writes) must be done within the handshake timeout of the accept; after that each
//! record must arrive whole, and each reply be taken, within the idle timeout.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use openvaai_proto::deadline::DeadlineStream;
use openvaai_proto::record::{read_record, write_record};
use openvaai_proto::rpc::{self, CallError};
use openvaai_proto::ErrorKind;
use rustls::{ServerConnection, StreamOwned};

use crate::handlers::{self, Session};
use crate::loglimit::limited;
use crate::state::Shared;

type Tls = StreamOwned<ServerConnection, DeadlineStream>;

/// Serves connection `id` (its slot in `shared.slots`) from `peer`, accepted at `accepted`.
pub fn serve(shared: &Shared, stream: TcpStream, peer: SocketAddr, id: u64, accepted: Instant) {
    let limits = &shared.config.limits;
    let handshake_deadline = accepted + limits.handshake_timeout;
    let setup = (|| -> io::Result<Tls> {
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let sock = DeadlineStream::new(stream);
        sock.set_deadline(handshake_deadline);
        let conn = ServerConnection::new(shared.tls.clone()).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(tls)
    })();
    let mut tls = match setup {
        Ok(t) => t,
        Err(e) => {
            limited!(info, { %peer, }, "TLS handshake failed: {e}");
            shared.metrics.net.auth_failed("tls_handshake");
            return;
        }
    };
    tracing::debug!(%peer, "connected");
    let mut session = Session::new(peer);
    // Until the first AUTH, the handshake deadline; after it, the idle timeout from now.
    let deadline = |authenticated: bool| {
        if authenticated {
            Instant::now() + limits.idle_timeout
        } else {
            handshake_deadline
        }
    };
    loop {
        let authenticated = session.any_authenticated();
        tls.sock.set_deadline(deadline(authenticated));
        let record = match read_record(&mut tls) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::debug!(%peer, "client closed the connection");
                return;
            }
            Err(e) if e.is_timeout() => {
                if authenticated {
                    tracing::info!(%peer, "closing idle connection");
                } else {
                    no_authentication_in_time(shared, peer);
                }
                return;
            }
            Err(e) if e.kind() == ErrorKind::TooLarge => {
                limited!(warn, { %peer, }, "closing connection: {e}");
                return;
            }
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::UnexpectedEof) =>
            {
                // A client that closes without TLS close_notify: how most sessions end.
                tracing::debug!(%peer, "client went away: {e}");
                return;
            }
            Err(e) => {
                limited!(info, { %peer, }, "connection lost: {e}");
                return;
            }
        };
        let reply = match rpc::decode_call(&record) {
            Ok(call) => handlers::reply(shared, &mut session, &call),
            Err(CallError::Reject { xid, reply }) => {
                limited!(warn, { %peer, xid, }, "call rejected at the RPC layer");
                reply
            }
            Err(CallError::Malformed(e)) => {
                limited!(warn, { %peer, }, "closing connection: not an RPC call: {e}");
                return;
            }
        };
        let now_authenticated = session.any_authenticated();
        if now_authenticated && !authenticated && !shared.slots.promote(id) {
            shared.metrics.net.refused("too_many");
            limited!(
                warn,
                { %peer, max = limits.max_connections, },
                "connection refused: too many connections"
            );
            return;
        }
        tls.sock.set_deadline(deadline(now_authenticated));
        if let Err(e) = write_record(&mut tls, &reply) {
            if e.is_timeout() && !now_authenticated {
                no_authentication_in_time(shared, peer);
            } else {
                limited!(info, { %peer, }, "connection lost while replying: {e}");
            }
            return;
        }
    }
}

/// The handshake deadline passed before a successful AUTH, reading or writing.
fn no_authentication_in_time(shared: &Shared, peer: SocketAddr) {
    shared.metrics.net.auth_failed("timeout");
    limited!(warn, { %peer, }, "closing connection: no authentication in time");
}
