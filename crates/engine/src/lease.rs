//! `fcntl(fd, F_SETLEASE, F_WRLCK)` — a write lease: the kernel's way to keep every other
//! opener of a file out for a moment.
//!
//! The engine's second `unsafe`: rustix has no `F_SETLEASE`, `F_GETLEASE` or `F_SETSIG`, so
//! these three `fcntl`s go through libc. See fcntl(2), "Leases".
//!
//! A write lease is granted only while no other open file description has the file open for
//! writing (knfsd's own opens and its clients' NFSv4 delegations included; a shared writable
//! `mmap` keeps its file open), and any later `open` of the file, by a local process or by
//! knfsd, breaks it: a blocking opener waits until the lease is released (or for
//! `/proc/sys/fs/lease-break-time`, 45 s by default), a non-blocking one gets `EWOULDBLOCK`
//! (knfsd answers its client NFS4ERR_DELAY / NFS3ERR_JUKEBOX, and the client retries). So
//! while the lease is held, and [`WriteLease::held`] says it has not been broken, nobody else
//! can write to the file.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;

/// `F_SETSIG` (`<asm-generic/fcntl.h>`, the same on every Linux architecture): which signal
/// tells the descriptor's owner of I/O readiness or a lease break. Not in the libc crate.
const F_SETSIG: libc::c_int = 10;

/// A write lease on a file, released on drop.
pub(crate) struct WriteLease<'a> {
    fd: BorrowedFd<'a>,
}

/// `fcntl(fd, cmd, arg)` with an integer argument.
fn fcntl_int(fd: BorrowedFd<'_>, cmd: libc::c_int, arg: libc::c_int) -> Result<i32, Errno> {
    // SAFETY: `fd` is a live descriptor borrowed for the call; F_SETSIG, F_SETLEASE and
    // F_GETLEASE take an int argument (or none) and touch no memory of ours.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) };
    if r < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(r)
    }
}

impl<'a> WriteLease<'a> {
    /// Takes a write lease on `fd` (open for writing), trying again with a short backoff for
    /// at most `wait` while another opener has the file (`EAGAIN`). knfsd keeps the files its
    /// NFSv3 clients wrote open for a few seconds after their last use, so a short wait often
    /// gets the lease where a single try would not.
    ///
    /// A lease break is signalled to its holder. The default signal, SIGIO, would end the
    /// process: the descriptor is first set to signal SIGURG instead (`F_SETSIG`), which is
    /// ignored by default. The holder never waits for that signal: it asks [`held`](Self::held).
    pub(crate) fn take(fd: BorrowedFd<'a>, wait: Duration) -> Result<WriteLease<'a>, Errno> {
        fcntl_int(fd, F_SETSIG, libc::SIGURG)?;
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            match fcntl_int(fd, libc::F_SETLEASE, libc::F_WRLCK) {
                Ok(_) => return Ok(WriteLease { fd }),
                Err(Errno::AGAIN) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the lease is still whole: no opener has started to break it. Once one has,
    /// the holder must stop writing under the lease's protection and release it.
    pub(crate) fn held(&self) -> bool {
        fcntl_int(self.fd, libc::F_GETLEASE, 0).is_ok_and(|t| t == libc::F_WRLCK)
    }
}

impl Drop for WriteLease<'_> {
    fn drop(&mut self) {
        let _ = fcntl_int(self.fd, libc::F_SETLEASE, libc::F_UNLCK);
    }
}
