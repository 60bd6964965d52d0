//! A TCP connection within a deadline, from a reserved source port (below 1024) when the
//! process may bind one: NFS servers refuse other ports on `secure` exports (knfsd's
//! default), and ESXi's own NFS client uses reserved ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

/// The reserved ports tried, highest first (as the Linux NFS client: 665..=1023).
const RESERVED: std::ops::RangeInclusive<u16> = 665..=1023;
/// Ports tried before giving up on a reserved one (each a `bind`, no traffic).
const MAX_BIND_TRIES: usize = 64;

/// How a connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From this reserved port.
    Reserved(u16),
    /// From an ephemeral port: not root, or every reserved port tried was taken.
    Ephemeral,
}

/// Connects to `addr` before `deadline`, from a reserved source port when running as root.
pub fn connect(addr: SocketAddr, deadline: Instant) -> std::io::Result<(TcpStream, Source)> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no time left to connect to {addr}"),
        ));
    }
    if !rustix::process::geteuid().is_root() {
        return Ok((TcpStream::connect_timeout(&addr, left)?, Source::Ephemeral));
    }
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let any: IpAddr = match addr {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let mut bound = None;
    for port in RESERVED.rev().take(MAX_BIND_TRIES) {
        match rustix::net::bind(&fd, &SocketAddr::new(any, port)) {
            Ok(()) => {
                bound = Some(port);
                break;
            }
            Err(Errno::ADDRINUSE) => continue,
            Err(_) => break,
        }
    }
    let Some(port) = bound else {
        return Ok((TcpStream::connect_timeout(&addr, left)?, Source::Ephemeral));
    };
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => {}
        Err(Errno::INPROGRESS) => wait_connected(&fd, addr, deadline)?,
        Err(e) => return Err(e.into()),
    }
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok((stream, Source::Reserved(port)))
}

/// Waits until a non-blocking `connect` on `fd` ends, before `deadline`.
fn wait_connected(
    fd: &rustix::fd::OwnedFd,
    addr: SocketAddr,
    deadline: Instant,
) -> std::io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            ));
        }
        let timeout = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(fd, PollFlags::OUT)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {
                return match rustix::net::sockopt::socket_error(fd)? {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn connects_from_a_reserved_port_as_root() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (s, source) = connect(addr, Instant::now() + Duration::from_secs(5)).unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(s.peer_addr().unwrap(), addr);
        if rustix::process::geteuid().is_root() {
            assert_eq!(source, Source::Reserved(peer.port()));
            assert!(peer.port() < 1024, "{peer}");
        } else {
            assert_eq!(source, Source::Ephemeral);
        }
    }

    #[test]
    fn a_refused_connection_is_an_error_not_a_hang() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let t = Instant::now();
        assert!(connect(addr, Instant::now() + Duration::from_secs(5)).is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
