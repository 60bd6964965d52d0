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
    /// `copy_file_range` is carried out below this machine (an NFS mount: a server-side COPY;
    /// CephFS: RADOS object copies), so full clones use it rather than reading and writing
    /// every byte through this gateway.
    pub copy_offload: bool,
}

impl Capabilities {
    /// Whether a file's blocks may be shared with another file or a snapshot, so that its
    /// unique bytes cannot be read off its allocation: where it can clone now (reflink, block
    /// cloning), and on ZFS at all (snapshots share blocks, and so do block clones made while
    /// `zfs_bclone_enabled` was on), and on network filesystems, whose server may share what
    /// this machine cannot see.
    pub fn may_share_blocks(&self) -> bool {
        self.reflink || matches!(self.fs_type.as_str(), "zfs" | "nfs" | "ceph")
    }
}

/// `statfs.f_type` of NFS (`NFS_SUPER_MAGIC`).
pub(crate) const NFS_MAGIC: u64 = 0x6969;
/// `statfs.f_type` of CephFS (`CEPH_SUPER_MAGIC`).
pub(crate) const CEPH_MAGIC: u64 = 0x00c3_6400;

/// Whether `copy_file_range` on a filesystem of this magic copies below this machine.
pub(crate) fn offloads_copy(magic: u64) -> bool {
    matches!(magic, NFS_MAGIC | CEPH_MAGIC)
}

/// Names `statfs.f_type` magics.
pub(crate) fn fs_type_name(magic: u64) -> String {
    match magic {
        0x5846_5342 => "xfs".into(),
        0x9123_683e => "btrfs".into(),
        0xef53 => "ext4".into(),
        0x2fc1_2fc1 => "zfs".into(),
        0x0102_1994 => "tmpfs".into(),
        NFS_MAGIC => "nfs".into(),
        CEPH_MAGIC => "ceph".into(),
        0x794c_7630 => "overlayfs".into(),
        other => format!("{other:#x}"),
    }
}

/// Probes `root` (an open directory): scratch files are `O_TMPFILE`s, so nothing is left
/// behind. On a read-only filesystem only FIEMAP (on the directory itself) can be tried.
pub(crate) fn probe(root: BorrowedFd<'_>) -> Capabilities {
    let magic = fstatfs(root).map(|s| s.f_type as u64);
    let fs_type = magic.map(fs_type_name).unwrap_or_else(|_| "unknown".into());
    let copy_offload = magic.is_ok_and(offloads_copy);
    if copy_offload {
        tracing::info!(
            fs = %fs_type,
            "full clones by copy_file_range: this filesystem copies below the gateway"
        );
    } else {
        tracing::debug!(fs = %fs_type, "full clones read and write here (or reflink)");
    }
    let same_fs_id = fstat(root).map(|s| s.st_dev).unwrap_or(0);
    let mut caps = Capabilities {
        reflink: false,
        fallocate: false,
        fiemap: false,
        unwritten_extents: false,
        fs_type,
        same_fs_id,
        copy_offload,
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
        assert_eq!(fs_type_name(0x6969), "nfs");
        assert_eq!(fs_type_name(0x00c36400), "ceph");
    }

    #[test]
    fn nfs_and_ceph_offload_copies_and_local_filesystems_do_not() {
        assert!(offloads_copy(0x6969));
        assert!(offloads_copy(0x00c3_6400));
        for local in [0x5846_5342, 0x9123_683e, 0xef53, 0x2fc1_2fc1, 0x0102_1994] {
            assert!(!offloads_copy(local), "{local:#x}");
        }
    }
}
