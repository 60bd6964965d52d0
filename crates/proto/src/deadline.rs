//! A TCP stream whose every read and write is bounded by one deadline.
//!
//! A socket timeout bounds a single `read` or `write`: a peer that sends one byte just before
//! each timeout keeps a reader (a TLS handshake, a record split in a thousand pieces) busy
//! for ever. [`DeadlineStream`] sets the socket's timeout to what is left of the deadline
//! before every call and fails with [`io::ErrorKind::TimedOut`] once it has passed, so an
//! exchange ends when its deadline does, however the bytes arrive. TLS goes on top of it
//! (`rustls::StreamOwned<_, DeadlineStream>`), so the handshake is bounded too.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The shortest timeout handed to the socket: `Duration::ZERO` would mean "no timeout".
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// A TCP stream bounded by a deadline (none until [`set_deadline`](Self::set_deadline)).
#[derive(Debug)]
pub struct DeadlineStream {
    sock: TcpStream,
    deadline: Cell<Option<Instant>>,
}

impl DeadlineStream {
    /// Wraps a connected socket; until a deadline is set, the socket's own timeouts apply.
    pub fn new(sock: TcpStream) -> DeadlineStream {
        DeadlineStream {
            sock,
            deadline: Cell::new(None),
        }
    }

    /// Every later read and write must finish by `deadline`.
    pub fn set_deadline(&self, deadline: Instant) {
        self.deadline.set(Some(deadline));
    }

    /// The deadline in force.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get()
    }

    /// The socket underneath (for its addresses, or to shut it down).
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// What is left of the deadline (`None`: no deadline), or `TimedOut` once it passed.
    fn left(&self) -> io::Result<Option<Duration>> {
        let Some(deadline) = self.deadline.get() else {
            return Ok(None);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left < MIN_TIMEOUT {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(Some(left))
        }
    }
}

/// A socket timeout surfaces as `WouldBlock` on Linux: say what it is.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "deadline passed")
    } else {
        e
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.sock.set_read_timeout(Some(left))?;
        }
        self.sock.read(buf).map_err(timed_out)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.sock.set_write_timeout(Some(left))?;
        }
        self.sock.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A peer that sends one byte every 50 ms, for ever (until the reader goes).
    fn trickler() -> (TcpStream, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for _ in 0..400 {
                if s.write_all(&[0x55]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        (TcpStream::connect(addr).unwrap(), t)
    }

    #[test]
    fn a_trickling_peer_cannot_stretch_a_read_past_the_deadline() {
        let (sock, peer) = trickler();
        let mut s = DeadlineStream::new(sock);
        let start = Instant::now();
        s.set_deadline(start + Duration::from_millis(600));
        // Wants 1 KiB: at a byte every 50 ms that would take 51 s.
        let mut buf = [0u8; 1024];
        let err = s.read_exact(&mut buf).unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(took >= Duration::from_millis(550), "ended early: {took:?}");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        drop(s);
        peer.join().unwrap();
    }

    #[test]
    fn a_peer_that_never_reads_cannot_stretch_a_write_past_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_held, _) = l.accept().unwrap();
        let mut s = DeadlineStream::new(sock);
        let start = Instant::now();
        s.set_deadline(start + Duration::from_millis(500));
        let chunk = vec![0u8; 1 << 20];
        let err = loop {
            if let Err(e) = s.write_all(&chunk) {
                break e;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "never blocked");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(start.elapsed() < Duration::from_millis(1500));
    }

    #[test]
    fn without_a_deadline_the_socket_timeouts_apply_and_a_passed_one_fails_at_once() {
        let (sock, _peer) = trickler();
        let mut s = DeadlineStream::new(sock);
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(b, [0x55]);
        s.set_deadline(Instant::now());
        let err = s.read(&mut b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
