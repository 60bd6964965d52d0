//! The export's private directory, `<root>/.openvaai`: the daemon's access file, its lock, and
//! the journal of reservations in progress live there.
//!
//! Anyone who can write the export root (every ESXi host, as root) can put a symlink, a FIFO
//! or a directory of their own where `.openvaai` should be, and swap it at any moment. So the
//! directory is opened once, relative to the root's descriptor, without following any
//! symlink and without crossing a mount; it must be a directory owned by the daemon's user;
//! and every file in it is created, renamed and removed through that one descriptor. Nothing
//! is ever written by path.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{
    fchmod, flock, fstat, fsync, ftruncate, mkdirat, openat, renameat, unlinkat, AtFlags, FileType,
    FlockOperation, Mode, OFlags, ResolveFlags,
};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind};
use crate::path::PRIVATE_DIR;
use crate::resolve::{open_beneath, RESOLVE};

const OP: &str = "private directory";

/// `.openvaai` of an export, held open (see the module doc).
#[derive(Debug)]
pub struct PrivateDir {
    pub(crate) fd: OwnedFd,
}

/// An exclusive `flock` on a file in the private directory, held until dropped.
#[derive(Debug)]
pub struct ExportLock {
    fd: OwnedFd,
}

/// Why [`PrivateDir::lock`] did not take the lock.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; what it wrote there (its pid and addresses).
    Held(String),
    /// The lock file could not be opened or locked.
    Failed(Error),
}

impl PrivateDir {
    /// Opens `<root>/.openvaai`, making it (mode 0700) if missing.
    ///
    /// `openat2(root, ".openvaai", O_DIRECTORY | O_NOFOLLOW, RESOLVE_NO_SYMLINKS |
    /// RESOLVE_NO_XDEV | RESOLVE_BENEATH)`; then `fstat`: a directory owned by this process's
    /// user, or [`ErrorKind::AccessDenied`] naming what is there; `fchmod(0700)`.
    pub(crate) fn open(root: &OwnedFd) -> Result<PrivateDir, Error> {
        let flags = RESOLVE | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = || open_beneath(root.as_fd(), PRIVATE_DIR, dir_flags, flags);
        let fd = match open() {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match mkdirat(root, PRIVATE_DIR, Mode::RWXU) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(Error::sys(OP, PRIVATE_DIR, e)),
                }
                open().map_err(|e| refusal(root, e))?
            }
            Err(e) => return Err(refusal(root, e)),
        };
        let st = fstat(&fd).map_err(|e| Error::sys(OP, PRIVATE_DIR, e))?;
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me {
            return Err(
                Error::new(ErrorKind::AccessDenied, OP, PRIVATE_DIR.to_owned()).with_detail(
                    format!(
                        "owned by uid {}, not by this daemon (uid {me}): remove it (it is \
                     made anew at start)",
                        st.st_uid
                    ),
                ),
            );
        }
        fchmod(&fd, Mode::RWXU).map_err(|e| Error::sys(OP, PRIVATE_DIR, e))?;
        Ok(PrivateDir { fd })
    }

    /// Replaces file `name` with `data` (mode `mode`), atomically and durably: a temporary
    /// made with `O_CREAT | O_EXCL | O_NOFOLLOW`, written, `fsync`ed, `renameat` over `name`,
    /// `fsync` of the directory — every step relative to the directory's descriptor.
    pub fn write_atomic(&self, name: &str, data: &[u8], mode: u32) -> Result<(), Error> {
        let tmp = format!(".{name}.tmp-{}", std::process::id());
        // A crash may have left this process id's temporary: it is ours to remove.
        let _ = unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        let result = (|| {
            let f = openat(
                &self.fd,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )
            .map_err(|e| Error::sys(OP, &tmp, e))?;
            // The umask may have narrowed the mode; set it exactly.
            fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| Error::sys(OP, &tmp, e))?;
            write_all(&f, data).map_err(|e| Error::sys(OP, &tmp, e))?;
            fsync(&f).map_err(|e| Error::sys(OP, &tmp, e))?;
            renameat(&self.fd, tmp.as_str(), &self.fd, name)
                .map_err(|e| Error::sys(OP, name, e))?;
            fsync(&self.fd).map_err(|e| Error::sys(OP, PRIVATE_DIR, e))
        })();
        if result.is_err() {
            let _ = unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// Reads file `name` (at most `max` bytes), not following a symlink.
    pub fn read(&self, name: &str, max: usize) -> Result<Vec<u8>, Error> {
        let f = openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(OP, name, e))?;
        let st = fstat(&f).map_err(|e| Error::sys(OP, name, e))?;
        crate::resolve::ensure_regular(&st, OP, name)?;
        let mut out = vec![0u8; max.min(st.st_size.max(0) as usize)];
        let mut got = 0;
        while got < out.len() {
            match rustix::io::read(&f, &mut out[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(Error::sys(OP, name, e)),
            }
        }
        out.truncate(got);
        Ok(out)
    }

    /// Takes an exclusive lock (`flock`) on file `name` (made if missing) for as long as the
    /// result lives, and writes `holder` into it.
    pub fn lock(&self, name: &str, holder: &str) -> Result<ExportLock, LockError> {
        let failed = |e| LockError::Failed(Error::sys(OP, name, e));
        let fd = openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(failed)?;
        let st = fstat(&fd).map_err(failed)?;
        crate::resolve::ensure_regular(&st, OP, name).map_err(LockError::Failed)?;
        match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                let text = self.read(name, 4096).map_err(LockError::Failed)?;
                return Err(LockError::Held(
                    String::from_utf8_lossy(&text).trim().to_owned(),
                ));
            }
            Err(e) => return Err(failed(e)),
        }
        let lock = ExportLock { fd };
        self.relabel(&lock, holder).map_err(LockError::Failed)?;
        Ok(lock)
    }

    /// Rewrites what a lock held by this process says of its holder.
    pub fn relabel(&self, lock: &ExportLock, holder: &str) -> Result<(), Error> {
        ftruncate(&lock.fd, 0).map_err(|e| Error::sys(OP, "lock", e))?;
        rustix::io::pwrite(&lock.fd, holder.as_bytes(), 0)
            .map(|_| ())
            .map_err(|e| Error::sys(OP, "lock", e))
    }
}

/// Why `.openvaai` could not be opened: a symlink, or something other than a directory, is
/// refused by name.
fn refusal(root: &OwnedFd, errno: Errno) -> Error {
    let what = rustix::fs::statat(root.as_fd(), PRIVATE_DIR, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode));
    let detail = match what {
        Ok(FileType::Symlink) => "is a symlink: refusing to write through it; remove it",
        Ok(FileType::Directory) if errno == Errno::XDEV => {
            "is another mounted filesystem: refusing to write there; unmount it"
        }
        // A directory now, but not when it was opened: something is swapping it.
        Ok(FileType::Directory) if matches!(errno, Errno::NOTDIR | Errno::LOOP) => {
            "was not a directory when opened (a symlink or another file swapped in): \
             refusing to write through it; find what replaces it"
        }
        Ok(FileType::Directory) => "cannot be opened",
        Ok(_) => "is not a directory (a FIFO, device or file is in the way): remove it",
        Err(_) => "cannot be looked at",
    };
    Error::sys_kind(ErrorKind::AccessDenied, OP, PRIVATE_DIR, errno).with_detail(detail.to_owned())
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
