//! Opening files and directories confined beneath an export root.
//!
//! Every lookup goes through `openat2(root, path, flags, mode, RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` — the kernel refuses any step that would leave
//! the directory tree under `root` (`..` above it, an absolute symlink, a symlink pointing
//! outside: EXDEV), any `/proc` magic link (ELOOP), and any step into another mounted
//! filesystem (a bind mount or any filesystem mounted inside the export: EXDEV too). All
//! become [`ErrorKind::AccessDenied`]; a mount crossing says so in its message.
//!
//! Every such lookup in the engine goes through [`open_beneath`]. Kernels without `openat2`
//! (before 5.6) get the same guarantees and errnos from a walk one component at a time
//! ([`walk`]); which one is used is probed once and logged.

mod walk;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{openat2, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind};
use crate::path::PRIVATE_DIR;

/// The resolution flags for every lookup inside an export.
pub(crate) const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// How confined lookups are done on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV` (Linux 5.6+).
    Openat2,
    /// One component at a time with `openat(O_PATH | O_NOFOLLOW)` (older kernels).
    Walk,
}

/// Set to `walk` to force the component walk even where `openat2` works (read once; for the
/// test suites, which run both ways).
pub const RESOLVER_ENV: &str = "OPENVAAI_RESOLVER";

impl Resolver {
    /// The one in use in this process: probed on first use (and logged), then fixed.
    pub fn current() -> Resolver {
        static CURRENT: OnceLock<Resolver> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let forced = std::env::var(RESOLVER_ENV).is_ok_and(|v| v == "walk");
            let r = if forced {
                Resolver::Walk
            } else {
                Resolver::probe()
            };
            match (r, forced) {
                (Resolver::Openat2, _) => tracing::info!("confined lookups: openat2"),
                (Resolver::Walk, true) => tracing::info!(
                    "confined lookups: component walk (forced by {RESOLVER_ENV}=walk)"
                ),
                (Resolver::Walk, false) => tracing::warn!(
                    "confined lookups: component walk (this kernel has no openat2, Linux 5.6+)"
                ),
            }
            r
        })
    }

    /// `openat2` of `/` answered with `ENOSYS` (no such syscall) or `EPERM` (a seccomp filter
    /// that does not know it, as in older container runtimes): walk instead.
    fn probe() -> Resolver {
        match openat2(
            rustix::fs::CWD,
            "/",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::empty(),
        ) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => Resolver::Walk,
            _ => Resolver::Openat2,
        }
    }
}

/// `openat2(root, path, oflags, 0, how)`, or its equivalent walk (see [`Resolver`]): the one
/// function every confined lookup in the engine goes through.
pub(crate) fn open_beneath(
    root: BorrowedFd<'_>,
    path: impl AsRef<[u8]>,
    oflags: OFlags,
    how: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    open_with(Resolver::current(), root, path.as_ref(), oflags, how)
}

/// [`open_beneath`] with the resolver chosen by the caller (the tests compare the two).
pub(crate) fn open_with(
    resolver: Resolver,
    root: BorrowedFd<'_>,
    path: &[u8],
    oflags: OFlags,
    how: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    match resolver {
        Resolver::Openat2 => openat2(root, path, oflags, Mode::empty(), how),
        Resolver::Walk => walk::open_beneath(root, path, oflags, how),
    }
}

/// Maps an errno from resolving `path` beneath `root`: escaping the root or crossing into
/// another mount is an access error, told apart by a second look without `NO_XDEV`.
pub(crate) fn resolve_error(
    root: BorrowedFd<'_>,
    op: &'static str,
    path: &str,
    errno: Errno,
) -> Error {
    match errno {
        Errno::XDEV => {
            let flags = RESOLVE.difference(ResolveFlags::NO_XDEV);
            let crossing = open_beneath(root, path, OFlags::PATH | OFlags::CLOEXEC, flags).is_ok();
            let e = Error::sys_kind(ErrorKind::AccessDenied, op, path, errno);
            if crossing {
                e.with_detail(
                    "the path crosses into another mounted filesystem inside the export; \
                     openvaai works within one filesystem: use the mount's own export"
                        .to_owned(),
                )
            } else {
                e.with_detail("the path leads outside the export".to_owned())
            }
        }
        Errno::LOOP => Error::sys_kind(ErrorKind::AccessDenied, op, path, errno),
        _ => Error::sys(op, path, errno),
    }
}

/// `openat2(root, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, BENEATH | NO_MAGICLINKS)` —
/// opens a directory beneath `root`, readable so that it can be fsynced and listed.
pub(crate) fn open_dir(
    root: BorrowedFd<'_>,
    path: &str,
    op: &'static str,
) -> Result<OwnedFd, Error> {
    open_beneath(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        RESOLVE,
    )
    .map_err(|e| resolve_error(root, op, path, e))
}

/// Opens a regular file beneath `root` for reading (`write == false`) or reading and writing.
///
/// The type is checked on an `O_PATH` descriptor first, so that a FIFO or device is never
/// opened; the real open adds `O_NONBLOCK | O_NOCTTY` and the result is checked to be the same
/// inode, so a swap in between cannot slip a different file in.
pub(crate) fn open_regular(
    root: BorrowedFd<'_>,
    path: &str,
    write: bool,
    op: &'static str,
) -> Result<(OwnedFd, Stat), Error> {
    let probe = open_beneath(root, path, OFlags::PATH | OFlags::CLOEXEC, RESOLVE)
        .map_err(|e| resolve_error(root, op, path, e))?;
    let st = rustix::fs::fstat(&probe).map_err(|e| Error::sys(op, path, e))?;
    ensure_regular(&st, op, path)?;
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    let fd = open_past_leases(|| {
        open_beneath(
            root,
            path,
            access | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            RESOLVE,
        )
    })
    .map_err(|e| match e {
        Errno::WOULDBLOCK => Error::sys_kind(ErrorKind::Busy, op, path, e).with_detail(format!(
            "a lease on the file (an NFSv4 client's delegation) was not given back within \
             {} s",
            LEASE_WAIT.as_secs()
        )),
        e => resolve_error(root, op, path, e),
    })?;
    let st2 = rustix::fs::fstat(&fd).map_err(|e| Error::sys(op, path, e))?;
    ensure_regular(&st2, op, path)?;
    if (st.st_dev, st.st_ino) != (st2.st_dev, st2.st_ino) {
        return Err(Error::new(ErrorKind::Busy, op, path.to_owned()));
    }
    // Regular files ignore O_NONBLOCK for I/O, but clear it anyway for clarity.
    rustix::fs::fcntl_setfl(&fd, access).map_err(|e| Error::sys(op, path, e))?;
    Ok((fd, st2))
}

/// How long an open waits for a lease (an NFSv4 delegation knfsd handed a client) to be
/// given back.
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `open` (an `O_NONBLOCK` open) until it gets past the leases on the file. A file a
/// knfsd client holds a delegation on answers `EWOULDBLOCK` to a conflicting non-blocking
/// open, and that open starts the recall; once the client gives the delegation back (within
/// milliseconds, usually) the open goes through. Retried with a short backoff for at most
/// [`LEASE_WAIT`]; then `EWOULDBLOCK` stands.
fn open_past_leases(mut open: impl FnMut() -> Result<OwnedFd, Errno>) -> Result<OwnedFd, Errno> {
    let deadline = std::time::Instant::now() + LEASE_WAIT;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match open() {
            Err(Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Fails with [`ErrorKind::IncorrectFileType`] unless `st` describes a regular file.
pub(crate) fn ensure_regular(st: &Stat, op: &'static str, path: &str) -> Result<(), Error> {
    if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::IncorrectFileType,
            op,
            path.to_owned(),
        ))
    }
}

/// The inodes of the export's private directory and everything in it, so that a symlink or
/// hard link elsewhere in the export cannot reach the daemon's access file.
#[derive(Default)]
pub(crate) struct Protected {
    inodes: Vec<(u64, u64)>,
}

/// At most this many inodes are collected from the private directory.
const PROTECTED_LIMIT: usize = 4096;

impl Protected {
    /// Lists the private directories of `roots` (each `<root>/.openvaai`, if it exists)
    /// without following symlinks.
    pub(crate) fn load<'a>(roots: impl IntoIterator<Item = BorrowedFd<'a>>) -> Protected {
        let mut protected = Protected::default();
        for root in roots {
            protected.add(root);
        }
        protected
    }

    fn add(&mut self, root: BorrowedFd<'_>) {
        let protected = self;
        let flags = RESOLVE | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Ok(dir) = open_beneath(root, PRIVATE_DIR, dir_flags, flags) else {
            return;
        };
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            if let Ok(st) = rustix::fs::fstat(&dir) {
                protected.inodes.push((st.st_dev, st.st_ino));
            }
            let Ok(entries) = rustix::fs::Dir::read_from(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if protected.inodes.len() + stack.len() >= PROTECTED_LIMIT {
                    return;
                }
                let name = entry.file_name();
                if name.to_bytes() == b"." || name.to_bytes() == b".." {
                    continue;
                }
                if entry.file_type() == FileType::Directory {
                    if let Ok(sub) = open_beneath(dir.as_fd(), name.to_bytes(), dir_flags, flags) {
                        stack.push(sub);
                        continue;
                    }
                }
                if let Ok(st) =
                    rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                {
                    protected.inodes.push((st.st_dev, st.st_ino));
                }
            }
        }
    }

    /// Fails with [`ErrorKind::AccessDenied`] if `st` is the private directory or inside it.
    pub(crate) fn check(&self, st: &Stat, op: &'static str, path: &str) -> Result<(), Error> {
        if self.inodes.contains(&(st.st_dev, st.st_ino)) {
            Err(Error::new(ErrorKind::AccessDenied, op, path.to_owned()))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
