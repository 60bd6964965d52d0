//! Building a file invisibly and publishing it atomically.
//!
//! The file is built as an `O_TMPFILE` in its destination directory (no name, so it vanishes
//! if the process stops or the file is dropped), then given its name:
//!
//! - GUARDED: `linkat(tmp, "", dir, name, AT_EMPTY_PATH)` — links the anonymous inode; fails
//!   with EEXIST if the name exists, so there is no window between "check" and "create".
//! - not GUARDED: link under a unique temporary name, then `renameat(dir, temp, dir, name)` —
//!   atomically replaces whatever was there; open descriptors of the old file keep reading it.
//!
//! Then `fsync(file)` and `fsync(dir)`: durable once this returns, on every filesystem (the
//! crash-replay suite, `crates/plugin/tests/crash`, checks it at every flush).
//!
//! Filesystems without `O_TMPFILE` get a named temporary `.openvaai-tmp-<random>` instead,
//! unlinked on drop unless published; `Export::cleanup_stale` removes any a crash left.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{linkat, openat, renameat, unlinkat, AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind};
use crate::path::TEMP_PREFIX;

/// A file under construction in a directory, which it holds (borrowed, or owned when the
/// staged file outlives the code that opened the directory: a held clone).
pub(crate) struct Staged<D: AsFd> {
    dir: D,
    file: OwnedFd,
    /// The name it currently has, if any (fallback path, or between link and rename).
    temp_name: Option<String>,
}

/// A fresh name `.openvaai-tmp-<16 hex digits>`.
pub(crate) fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{TEMP_PREFIX}{:016x}", h.finish())
}

impl<D: AsFd> Staged<D> {
    /// `openat(dir, ".", O_TMPFILE | O_RDWR, 0600)` — an unnamed regular file in `dir`;
    /// where the filesystem lacks it (EOPNOTSUPP, or EISDIR from old kernels), a named
    /// temporary created with `O_CREAT | O_EXCL`.
    pub(crate) fn create(dir: D, op: &'static str, path: &str) -> Result<Self, Error> {
        let mode = Mode::from_raw_mode(0o600);
        match openat(
            &dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            mode,
        ) {
            Ok(file) => {
                return Ok(Staged {
                    dir,
                    file,
                    temp_name: None,
                })
            }
            Err(Errno::OPNOTSUPP | Errno::ISDIR) => {}
            Err(e) => return Err(Error::sys(op, path, e)),
        }
        Self::create_named(dir, op, path)
    }

    /// The fallback: `openat(dir, ".openvaai-tmp-<random>", O_CREAT | O_EXCL | O_RDWR |
    /// O_NOFOLLOW, 0600)`, unlinked on drop unless published.
    pub(crate) fn create_named(dir: D, op: &'static str, path: &str) -> Result<Self, Error> {
        let mode = Mode::from_raw_mode(0o600);
        for _ in 0..16 {
            let name = temp_name();
            let flags =
                OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match openat(&dir, name.as_str(), flags, mode) {
                Ok(file) => {
                    return Ok(Staged {
                        dir,
                        file,
                        temp_name: Some(name),
                    })
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::sys(op, path, e)),
            }
        }
        Err(Error::new(ErrorKind::Io, op, path.to_owned()))
    }

    /// The file being built.
    pub(crate) fn file(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Gives the file the name `name` in its directory, then `fsync(file)` and `fsync(dir)`.
    pub(crate) fn publish(
        mut self,
        name: &str,
        guarded: bool,
        op: &'static str,
        path: &str,
    ) -> Result<(), Error> {
        let sys = |e| Error::sys(op, path, e);
        let dir = self.dir.as_fd();
        match (self.temp_name.clone(), guarded) {
            (None, true) => link_anonymous(&self.file, dir, name).map_err(sys)?,
            (None, false) => {
                let temp = loop {
                    let candidate = temp_name();
                    match link_anonymous(&self.file, dir, &candidate) {
                        Ok(()) => break candidate,
                        Err(Errno::EXIST) => continue,
                        Err(e) => return Err(sys(e)),
                    }
                };
                self.temp_name = Some(temp.clone());
                renameat(dir, temp.as_str(), dir, name).map_err(sys)?;
                self.temp_name = None;
            }
            (Some(temp), true) => {
                linkat(dir, temp.as_str(), dir, name, AtFlags::empty()).map_err(sys)?;
                // The file is published; failing to drop the temporary name is not an error
                // for the caller (cleanup_stale will find it).
                let _ = unlinkat(dir, temp.as_str(), AtFlags::empty());
                self.temp_name = None;
            }
            (Some(temp), false) => {
                renameat(dir, temp.as_str(), dir, name).map_err(sys)?;
                self.temp_name = None;
            }
        }
        // The file again, now that it has its name, then the directory. On Btrfs (up to at
        // least the 6.1 kernel) the `fsync` of an `O_TMPFILE` logs nothing while it has no
        // link, and the directory's `fsync` logs the new name but not the file's extents: a
        // crash then shows the name with 0 bytes until the next transaction commit (and a
        // replace has already unlinked the old file). This `fsync` logs the inode with its
        // extents and its name; XFS and ext4 need no more than their journals did already.
        rustix::fs::fsync(&self.file).map_err(sys)?;
        rustix::fs::fsync(dir).map_err(sys)
    }
}

impl<D: AsFd> Drop for Staged<D> {
    fn drop(&mut self) {
        if let Some(name) = self.temp_name.take() {
            let _ = unlinkat(&self.dir, name.as_str(), AtFlags::empty());
        }
    }
}

/// `linkat(file, "", dir, name, AT_EMPTY_PATH)` — names an `O_TMPFILE` inode. Without
/// CAP_DAC_READ_SEARCH that fails with ENOENT; then
/// `linkat(AT_FDCWD, "/proc/self/fd/N", dir, name, AT_SYMLINK_FOLLOW)` does the same.
fn link_anonymous(file: &OwnedFd, dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<()> {
    match linkat(file, "", dir, name, AtFlags::EMPTY_PATH) {
        Err(Errno::NOENT | Errno::PERM) => {
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            linkat(CWD, proc_path.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)
        }
        other => other,
    }
}

/// Creates an unnamed scratch file in `dir` for probing; a named fallback is unlinked at once.
pub(crate) fn scratch_file(dir: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    let mut staged = Staged::create(dir, "probe", ".")?;
    if let Some(name) = staged.temp_name.take() {
        unlinkat(dir, name.as_str(), AtFlags::empty()).map_err(|e| Error::sys("probe", ".", e))?;
    }
    let file = rustix::io::dup(&staged.file).map_err(|e| Error::sys("probe", ".", e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::fd::OwnedFd;

    fn dir(path: &std::path::Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    fn names(path: &std::path::Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn staged<'a>(d: BorrowedFd<'a>, named: bool, content: &[u8]) -> Staged<BorrowedFd<'a>> {
        let s = if named {
            Staged::create_named(d, "t", "x")
        } else {
            Staged::create(d, "t", "x")
        }
        .unwrap();
        assert_eq!(
            rustix::io::pwrite(s.file(), content, 0).unwrap(),
            content.len()
        );
        s
    }

    #[test]
    fn named_fallback_is_removed_when_dropped_unpublished() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dir(tmp.path());
        let s = staged(d.as_fd(), true, b"partial");
        assert_eq!(names(tmp.path()).len(), 1);
        assert!(names(tmp.path())[0].starts_with(TEMP_PREFIX));
        drop(s);
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn both_paths_publish_guarded_and_replacing() {
        for named in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let d = dir(tmp.path());
            staged(d.as_fd(), named, b"one")
                .publish("f", true, "t", "f")
                .unwrap();
            assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"one");
            let e = staged(d.as_fd(), named, b"two")
                .publish("f", true, "t", "f")
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists);
            assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"one");
            staged(d.as_fd(), named, b"three")
                .publish("f", false, "t", "f")
                .unwrap();
            assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"three");
            assert_eq!(
                names(tmp.path()),
                vec!["f"],
                "named {named}: no temporary left"
            );
        }
    }

    #[test]
    fn temp_names_are_unique_and_prefixed() {
        let a = temp_name();
        let b = temp_name();
        assert_ne!(a, b);
        assert!(
            a.starts_with(TEMP_PREFIX) && a.len() == TEMP_PREFIX.len() + 16,
            "{a}"
        );
    }
}
