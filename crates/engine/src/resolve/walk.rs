//! The confined lookup for kernels without `openat2` (before Linux 5.6, or a seccomp filter
//! that refuses it): the path is walked one component at a time from the export root with
//! `openat(dir, name, O_PATH | O_NOFOLLOW)`, holding a descriptor for every directory on the
//! way, so the kernel never resolves more than one name and never follows anything.
//!
//! It keeps the guarantees `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV)` gives, with the same errnos (so [`super::resolve_error`] tells the same
//! kinds and messages):
//! - an absolute path or symlink target leaves the root: `EXDEV`;
//! - `..` never reaches the kernel: it drops the last held directory, and dropping the root
//!   itself is leaving it (`EXDEV`);
//! - a symlink that stays inside is read with `readlinkat` and its target's components take
//!   its place (at most [`MAX_LINKS`], as the kernel's 40, then `ELOOP`); with
//!   `RESOLVE_NO_SYMLINKS` any symlink is `ELOOP`;
//! - every directory passed and the file opened must be on the root's mount: the same
//!   `st_dev` and, where `statx` reports it (`STATX_MNT_ID`, Linux 5.8), the same mount id,
//!   which also catches a bind mount of the same filesystem; otherwise `EXDEV`. Magic links
//!   live on procfs, another mount, so they are refused with it.
//!
//! What `openat2` closes and this cannot: a directory already passed that is renamed out of
//! the export mid-walk is still walked from (`openat2` retries on a concurrent rename). An
//! ESXi host cannot do that through NFS: a rename out of the exported tree crosses exports.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{fstat, openat, readlinkat, statx, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Symlinks followed in one lookup at most (the kernel's `MAXSYMLINKS`).
pub(crate) const MAX_LINKS: usize = 40;

/// The mount a descriptor is on: `(st_dev, mount id if the kernel tells it)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MountId {
    dev: u64,
    mnt: Option<u64>,
}

impl MountId {
    pub(crate) fn of(fd: BorrowedFd<'_>) -> Result<MountId, Errno> {
        match statx(
            fd,
            "",
            AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::BASIC_STATS | rustix::fs::StatxFlags::MNT_ID,
        ) {
            Ok(st) => Ok(MountId {
                dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
                mnt: (st.stx_mask & rustix::fs::StatxFlags::MNT_ID.bits() != 0)
                    .then_some(st.stx_mnt_id),
            }),
            // statx came in 4.11: st_dev alone.
            Err(Errno::NOSYS) => Ok(MountId {
                dev: fstat(fd)?.st_dev,
                mnt: None,
            }),
            Err(e) => Err(e),
        }
    }

    /// Whether `other` is on the same mount (the mount ids compared only where both have one).
    fn same(&self, other: &MountId) -> bool {
        self.dev == other.dev
            && match (self.mnt, other.mnt) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// `openat2(root, path, oflags, 0, how)` by walking; see the module doc. `how` may hold
/// `BENEATH`, `NO_MAGICLINKS`, `NO_XDEV` and `NO_SYMLINKS`; the first two always apply.
pub(crate) fn open_beneath(
    root: BorrowedFd<'_>,
    path: &[u8],
    oflags: OFlags,
    how: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    if path.starts_with(b"/") {
        return Err(Errno::XDEV);
    }
    let no_xdev = how.contains(ResolveFlags::NO_XDEV);
    let no_symlinks = how.contains(ResolveFlags::NO_SYMLINKS);
    let root_mount = MountId::of(root)?;
    let on_root_mount = |fd: BorrowedFd<'_>| -> Result<(), Errno> {
        if no_xdev && !root_mount.same(&MountId::of(fd)?) {
            return Err(Errno::XDEV);
        }
        Ok(())
    };
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    let mut todo: VecDeque<Vec<u8>> = components(path).collect();
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut links = 0usize;
    let probe = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    while let Some(name) = todo.pop_front() {
        if name == b".." {
            held.pop().ok_or(Errno::XDEV)?;
            continue;
        }
        let last = todo.is_empty();
        let dir = held.last().map_or(root, |d| d.as_fd());
        let fd = openat(dir, name.as_slice(), probe, Mode::empty())?;
        let kind = FileType::from_raw_mode(fstat(&fd)?.st_mode);
        let follow = !last || !oflags.contains(OFlags::NOFOLLOW);
        if kind == FileType::Symlink && follow {
            if no_symlinks {
                return Err(Errno::LOOP);
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::LOOP);
            }
            let target = readlinkat(&fd, "", Vec::new())?;
            let target = target.to_bytes();
            if target.starts_with(b"/") {
                return Err(Errno::XDEV);
            }
            for c in components(target).collect::<Vec<_>>().into_iter().rev() {
                todo.push_front(c);
            }
            continue;
        }
        if !last {
            if kind != FileType::Directory {
                return Err(Errno::NOTDIR);
            }
            on_root_mount(fd.as_fd())?;
            held.push(fd);
            continue;
        }
        if oflags.contains(OFlags::PATH) {
            if oflags.contains(OFlags::DIRECTORY) && kind != FileType::Directory {
                return Err(Errno::NOTDIR);
            }
            on_root_mount(fd.as_fd())?;
            return Ok(fd);
        }
        // The real open, of the name just looked at, never following: a symlink swapped in
        // since is ELOOP (refused), never followed.
        let fd = openat(
            dir,
            name.as_slice(),
            oflags | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        on_root_mount(fd.as_fd())?;
        return Ok(fd);
    }
    // The path was `.` or ended in `..`: the directory it came to.
    let dir = held.last().map_or(root, |d| d.as_fd());
    let fd = openat(dir, ".", oflags | OFlags::NOFOLLOW, Mode::empty())?;
    on_root_mount(fd.as_fd())?;
    Ok(fd)
}

/// The components of a relative path, without empty ones and `.`; a trailing `/` becomes a
/// last `.`, so that what comes before it must be a directory, as for the kernel.
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .chain(path.ends_with(b"/").then(|| b".".to_vec()))
}
