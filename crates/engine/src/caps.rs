//! What an export's filesystem can do, found by trying it on scratch files.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{fallocate, fstat, fstatfs, ioctl_ficlone, FallocateFlags};

use crate::fiemap;
use crate::publish::scratch_file;

/// The offloads an export's filesystem supports, as probed by [`Export::open`](crate::Export::open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `FICLONE` works between two files of this filesystem (LAZY clones).
    pub reflink: bool,
    /// `fallocate(fd, 0, ...)` works and really allocates (RESVSPACE, thick clones without
    /// writing zeros): ZFS answers it with success and allocates nothing, so it is `false`
    /// there.
    pub fallocate: bool,
    /// `FS_IOC_FIEMAP` works (statx's unique bytes and allocation type).
    pub fiemap: bool,
    /// `fallocate` makes unwritten (reads-as-zero) extents that FIEMAP reports.
    pub unwritten_extents: bool,
    /// `"xfs"`, `"btrfs"`, `"ext4"`, `"zfs"`, `"tmpfs"`, `"nfs"`, or the magic in hex.
    pub fs_type: String,
    /// `st_dev` of the root: two exports can share extents only if these are equal.
    pub same_fs_id: u64,
}

/// Names `statfs.f_type` magics.
pub(crate) fn fs_type_name(magic: u64) -> String {
    match magic {
        0x5846_5342 => "xfs".into(),
        0x9123_683e => "btrfs".into(),
        0xef53 => "ext4".into(),
        0x2fc1_2fc1 => "zfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x6969 => "nfs".into(),
        0x794c_7630 => "overlayfs".into(),
        other => format!("{other:#x}"),
    }
}

/// Probes `root` (an open directory): scratch files are `O_TMPFILE`s, so nothing is left
/// behind. On a read-only filesystem only FIEMAP (on the directory itself) can be tried.
pub(crate) fn probe(root: BorrowedFd<'_>) -> Capabilities {
    let fs_type = fstatfs(root)
        .map(|s| fs_type_name(s.f_type as u64))
        .unwrap_or_else(|_| "unknown".into());
    let same_fs_id = fstat(root).map(|s| s.st_dev).unwrap_or(0);
    let mut caps = Capabilities {
        reflink: false,
        fallocate: false,
        fiemap: false,
        unwritten_extents: false,
        fs_type,
        same_fs_id,
    };
    let Ok(a) = scratch_file(root) else {
        caps.fiemap = fiemap::for_each_extent(root, 1, |_| {}).is_ok();
        return caps;
    };
    let block = vec![0x5a_u8; 64 << 10];
    if rustix::io::pwrite(&a, &block, 0).is_ok() {
        if let Ok(b) = scratch_file(root) {
            caps.reflink = ioctl_ficlone(&b, &a).is_ok();
        }
    }
    caps.fiemap = fiemap::for_each_extent(&a, block.len() as u64, |_| {}).is_ok();
    if let Ok(c) = scratch_file(root) {
        // Success that allocates nothing (ZFS) is not a reservation: see reserve.rs.
        caps.fallocate = fallocate(&c, FallocateFlags::empty(), 0, 1 << 20).is_ok()
            && crate::reserve::allocation_holds(c.as_fd(), 1 << 20);
        if caps.fallocate && caps.fiemap {
            let mut unwritten = false;
            let _ = fiemap::for_each_extent(c.as_fd(), 1 << 20, |e| {
                unwritten |= e.flags & fiemap::EXTENT_UNWRITTEN != 0;
            });
            caps.unwritten_extents = unwritten;
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_known_magics() {
        assert_eq!(fs_type_name(0x58465342), "xfs");
        assert_eq!(fs_type_name(0x9123683e), "btrfs");
        assert_eq!(fs_type_name(0xef53), "ext4");
        assert_eq!(fs_type_name(0x1234), "0x1234");
    }
}
