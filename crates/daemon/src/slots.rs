//! Connection slots: unauthenticated connections (TLS and the handshake under way) and
//! authenticated ones are counted apart, so that peers without a secret cannot keep the
//! ESXi hosts out.
//!
//! - At most `max_connections` authenticated connections; one more that authenticates is
//!   closed ("too many connections").
//! - At most `max_unauthenticated` connections between accept and their first successful
//!   AUTH. When they are all taken, the oldest is dropped to make room for a new one once it
//!   has had [`GRACE`] (a real client finishes TLS, HELLO and AUTH in milliseconds); while
//!   every one of them is younger, new connections wait in the acceptor's queue
//!   ([`crate::accept`]). A peer that holds slots by sending slowly therefore holds each for
//!   at most [`GRACE`] once others arrive, and the handshake deadline bounds it in any case.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How long a new connection keeps its unauthenticated slot before a newer one may take it.
pub const GRACE: Duration = Duration::from_secs(1);

struct Entry {
    sock: TcpStream,
    peer: SocketAddr,
    since: Instant,
    authenticated: bool,
}

#[derive(Default)]
struct Inner {
    next: u64,
    conns: HashMap<u64, Entry>,
    unauthenticated: usize,
    authenticated: usize,
}

/// Whether a new connection can be accepted now.
#[derive(Debug, PartialEq, Eq)]
pub enum Room {
    /// A slot is free.
    Free,
    /// The oldest unauthenticated connection was dropped to make room; its peer.
    Evicted(SocketAddr),
    /// Every unauthenticated slot is taken by connections younger than [`GRACE`].
    Full,
}

/// The open connections of the daemon.
pub struct Slots {
    inner: Mutex<Inner>,
    max_unauthenticated: usize,
    max_authenticated: usize,
}

impl Slots {
    pub fn new(max_unauthenticated: usize, max_authenticated: usize) -> Slots {
        Slots {
            inner: Mutex::new(Inner::default()),
            max_unauthenticated,
            max_authenticated,
        }
    }

    /// Makes room for one more unauthenticated connection if it can (see the module doc).
    pub fn make_room(&self, now: Instant) -> Room {
        let mut g = lock(&self.inner);
        if g.unauthenticated < self.max_unauthenticated {
            return Room::Free;
        }
        let oldest = g
            .conns
            .iter()
            .filter(|(_, e)| !e.authenticated)
            .min_by_key(|(_, e)| e.since)
            .map(|(id, e)| (*id, e.since));
        match oldest {
            Some((id, since)) if now.duration_since(since) >= GRACE => {
                let e = g.conns.remove(&id).expect("listed above");
                g.unauthenticated -= 1;
                let _ = e.sock.shutdown(Shutdown::Both);
                Room::Evicted(e.peer)
            }
            _ => Room::Full,
        }
    }

    /// Counts a new unauthenticated connection; `sock` is a handle to shut it down with.
    pub fn insert(&self, sock: TcpStream, peer: SocketAddr) -> u64 {
        let mut g = lock(&self.inner);
        g.next += 1;
        let id = g.next;
        g.conns.insert(
            id,
            Entry {
                sock,
                peer,
                since: Instant::now(),
                authenticated: false,
            },
        );
        g.unauthenticated += 1;
        id
    }

    /// Moves connection `id` to the authenticated slots; `false` when they are all taken
    /// (or the connection was dropped meanwhile): close it.
    pub fn promote(&self, id: u64) -> bool {
        let mut g = lock(&self.inner);
        let full = g.authenticated >= self.max_authenticated;
        let Some(e) = g.conns.get_mut(&id) else {
            return false;
        };
        if e.authenticated {
            return true;
        }
        if full {
            return false;
        }
        e.authenticated = true;
        g.unauthenticated -= 1;
        g.authenticated += 1;
        true
    }

    /// Forgets connection `id` (its thread is ending).
    pub fn remove(&self, id: u64) {
        let mut g = lock(&self.inner);
        if let Some(e) = g.conns.remove(&id) {
            if e.authenticated {
                g.authenticated -= 1;
            } else {
                g.unauthenticated -= 1;
            }
        }
    }

    /// Shuts the read side of every connection down (the start of a shutdown): each finishes
    /// the reply it is writing, then sees the end of its stream.
    pub fn shutdown_reads(&self) {
        for e in lock(&self.inner).conns.values() {
            let _ = e.sock.shutdown(Shutdown::Read);
        }
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        lock(&self.inner).conns.is_empty()
    }

    /// Shuts every connection down (at shutdown).
    pub fn shutdown_all(&self) {
        for (_, e) in lock(&self.inner).conns.drain() {
            let _ = e.sock.shutdown(Shutdown::Both);
        }
    }

    /// (unauthenticated, authenticated) connections open.
    pub fn counts(&self) -> (usize, usize) {
        let g = lock(&self.inner);
        (g.unauthenticated, g.authenticated)
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    #[test]
    fn the_oldest_unauthenticated_connection_makes_room_after_its_grace() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let slots = Slots::new(2, 1);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (c1, s1) = pair(&l);
        let (_c2, s2) = pair(&l);
        let now = Instant::now();
        assert_eq!(slots.make_room(now), Room::Free);
        let a = slots.insert(s1, peer);
        let b = slots.insert(s2, peer);
        assert_eq!(
            slots.make_room(now),
            Room::Full,
            "both are within their grace"
        );
        // Authenticated: out of the unauthenticated slots; a second is refused.
        assert!(slots.promote(b));
        assert!(slots.promote(b), "promoting twice is harmless");
        assert_eq!(slots.counts(), (1, 1));
        assert_eq!(slots.make_room(now), Room::Free);
        let (_c3, s3) = pair(&l);
        let c = slots.insert(s3, peer);
        assert!(!slots.promote(c), "the authenticated slot is taken");
        // Later, the oldest unauthenticated one (a) is dropped and its socket shut down.
        assert_eq!(slots.make_room(Instant::now() + GRACE), Room::Evicted(peer));
        let mut buf = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &c1, &mut buf).unwrap(), 0);
        slots.remove(a);
        assert_eq!(slots.counts(), (1, 1));
        slots.remove(b);
        slots.remove(c);
        assert_eq!(slots.counts(), (0, 0));
    }
}
