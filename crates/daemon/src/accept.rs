//! From accept to a connection thread: the address check, and a short queue in front of the
//! unauthenticated slots (see [`crate::slots`]).
//!
//! Every connection is accepted at once, so that the kernel's listen backlog never fills
//! (where a real client's connection would be dropped unseen). One from an address no export
//! allows is closed there, before TLS, after a plaintext TLS `access_denied` alert. The others wait in arrival order for an
//! unauthenticated slot — a burst of hundreds of sessions from vSphere is served in turn, not
//! refused — for at most the handshake timeout, which counts from the accept. Only a full
//! queue ([`MAX_WAITING`]) refuses a connection.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use crate::loglimit::limited;
use crate::slots::Room;
use crate::state::Shared;

/// A TLS record (RFC 8446 §5.1, §6): content type alert (21), legacy version 3.3, length 2,
/// level fatal (2), description access_denied (49).
const ACCESS_DENIED_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 49];

/// Connections accepted and waiting for an unauthenticated slot, at most.
pub const MAX_WAITING: usize = 1024;

struct Waiting {
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
}

/// The acceptor's queue.
pub struct Acceptor {
    shared: Arc<Shared>,
    waiting: VecDeque<Waiting>,
}

impl Acceptor {
    pub fn new(shared: Arc<Shared>) -> Acceptor {
        Acceptor {
            shared,
            waiting: VecDeque::new(),
        }
    }

    /// Whether connections are waiting for a slot.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Takes a connection just accepted: closes it if no export allows `peer` or the queue
    /// is full, else queues it.
    pub fn take(&mut self, stream: TcpStream, peer: SocketAddr) {
        let net = &self.shared.metrics.net;
        net.accepted();
        if !self.allowed(peer) {
            net.refused("address_not_allowed");
            limited!(
                warn,
                { %peer, },
                "connection refused: address not in any export's allowed_networks"
            );
            // A plaintext TLS alert, access_denied, before any handshake: the client can tell
            // this refusal from a daemon that is merely busy. Seven bytes into an empty send
            // buffer, without blocking.
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write(&ACCESS_DENIED_ALERT);
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if self.waiting.len() >= MAX_WAITING {
            net.refused("queue_full");
            limited!(
                warn,
                { %peer, max = MAX_WAITING, },
                "connection refused: too many connections waiting for a slot"
            );
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        self.waiting.push_back(Waiting {
            stream,
            peer,
            accepted: Instant::now(),
        });
    }

    /// Starts the waiting connections that slots can be made for, in arrival order; closes
    /// those that waited out their handshake timeout.
    pub fn admit_waiting(&mut self) {
        let timeout = self.shared.config.limits.handshake_timeout;
        while let Some(front) = self.waiting.front() {
            let now = Instant::now();
            if now.duration_since(front.accepted) >= timeout {
                let w = self.waiting.pop_front().expect("front exists");
                self.shared.metrics.net.refused("no_slot_in_time");
                limited!(
                    warn,
                    { peer = %w.peer, },
                    "closing connection: no unauthenticated slot within the handshake timeout"
                );
                let _ = w.stream.shutdown(Shutdown::Both);
                continue;
            }
            match self.shared.slots.make_room(now) {
                Room::Free => {}
                Room::Evicted(old) => {
                    self.shared.metrics.net.refused("evicted");
                    limited!(
                        warn,
                        { peer = %old, },
                        "dropped the oldest unauthenticated connection to make room for a new one"
                    )
                }
                Room::Full => return,
            }
            let w = self.waiting.pop_front().expect("front exists");
            self.start(w);
        }
    }

    /// Whether any export lets `peer` in.
    fn allowed(&self, peer: SocketAddr) -> bool {
        self.shared
            .exports
            .iter()
            .any(|e| e.cfg.allowed_networks.iter().any(|n| n.contains(peer.ip())))
    }

    fn start(&self, w: Waiting) {
        let Waiting {
            stream,
            peer,
            accepted,
        } = w;
        let handle = match stream.try_clone() {
            Ok(h) => h,
            Err(e) => {
                limited!(warn, { %peer, }, "connection refused: {e}");
                return;
            }
        };
        let id = self.shared.slots.insert(handle, peer);
        let s = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{id}"))
            .spawn(move || {
                crate::conn::serve(&s, stream, peer, id, accepted);
                s.slots.remove(id);
            });
        if let Err(e) = spawned {
            tracing::error!(%peer, "cannot start a connection thread: {e}");
            self.shared.slots.remove(id);
        }
    }
}
