//! Extended statistics: sizes, unique (unshared) bytes and the allocation type.

use std::os::fd::BorrowedFd;

use rustix::fs::Stat;
use rustix::io::Errno;

use crate::error::Error;
use crate::fiemap::{self, EXTENT_SHARED, EXTENT_UNWRITTEN};

/// How a file's blocks are provisioned (VMware's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocType {
    /// Eager-zeroed thick: fully allocated and written.
    Ezt,
    /// Lazy-zeroed thick: fully allocated, some blocks unwritten (read as zeros).
    Lzt,
    /// Thin: `[0, size)` has at least one hole.
    Thin,
    /// The filesystem cannot tell (no FIEMAP, and `SEEK_HOLE` not answered either).
    Unknown,
}

/// What [`Export::statx`](crate::Export::statx) reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatX {
    /// `st_size`.
    pub total_bytes: u64,
    /// `st_blocks * 512`.
    pub alloced_bytes: u64,
    /// Allocated bytes not shared with another file (alloced minus FIEMAP_EXTENT_SHARED bytes).
    pub unique_bytes: u64,
    /// Thin if there is a hole, else LZT if any extent is unwritten, else EZT.
    pub alloc_type: AllocType,
}

/// Computes [`StatX`] for an open regular file.
///
/// Holes are found from the extent map (a gap between extents below `st_size`) rather than
/// with `SEEK_HOLE`, because XFS and ext4 report unwritten extents as holes to `SEEK_HOLE`,
/// which would make every reserved (LZT) file look thin.
///
/// Without FIEMAP (ZFS), see [`without_fiemap`]; `may_share` says whether the file's blocks
/// may be shared with another file or a snapshot ([`crate::Capabilities::may_share_blocks`]).
pub(crate) fn statx(
    fd: BorrowedFd<'_>,
    st: &Stat,
    path: &str,
    may_share: bool,
) -> Result<StatX, Error> {
    let size = st.st_size as u64;
    let alloced = (st.st_blocks as u64).saturating_mul(512);
    let mut covered = 0u64;
    let mut shared = 0u64;
    let mut unwritten = false;
    let walk = fiemap::for_each_extent(fd, size.max(1), |e| {
        let start = e.logical.min(size);
        let end = e.logical.saturating_add(e.length).min(size);
        covered += end - start;
        if e.flags & EXTENT_SHARED != 0 {
            shared += e.length;
        }
        unwritten |= e.flags & EXTENT_UNWRITTEN != 0;
    });
    match walk {
        Ok(()) => {}
        Err(Errno::OPNOTSUPP | Errno::NOTTY | Errno::NOSYS | Errno::INVAL) => {
            return Ok(without_fiemap(fd, size, alloced, may_share))
        }
        Err(e) => return Err(Error::sys("statx", path, e)),
    }
    let alloc_type = if covered < size {
        AllocType::Thin
    } else if unwritten {
        AllocType::Lzt
    } else {
        AllocType::Ezt
    };
    Ok(StatX {
        total_bytes: size,
        alloced_bytes: alloced,
        unique_bytes: alloced.saturating_sub(shared),
        alloc_type,
    })
}

/// [`StatX`] where the extent map cannot be read (ZFS has no FIEMAP):
/// - the allocation type from `lseek(fd, 0, SEEK_HOLE)` and the allocated bytes: no hole
///   before the end is EZT (every block written; ZFS turns all-zero blocks into holes when
///   compression is on, so they do not count); a "hole" while the blocks cover the whole size
///   is allocated but unwritten (tmpfs reports fallocated ranges so), LZT; any other hole is
///   THIN; UNKNOWN if the seek fails;
/// - unique bytes: where the file's blocks may be shared (block cloning, ZFS snapshots, a
///   network filesystem's server) and nothing says which are, 0 — never more than deleting
///   the file would free; elsewhere (tmpfs) nothing can be shared, so all of them;
/// - allocated bytes are `st_blocks * 512` as the filesystem reports them (on ZFS, compressed,
///   and updated when the transaction group syncs, within seconds of a write).
fn without_fiemap(fd: BorrowedFd<'_>, size: u64, alloced: u64, may_share: bool) -> StatX {
    let alloc_type = match rustix::fs::seek(fd, rustix::fs::SeekFrom::Hole(0)) {
        Ok(hole) if hole < size && alloced >= size => AllocType::Lzt,
        Ok(hole) if hole < size => AllocType::Thin,
        Ok(_) => AllocType::Ezt,
        Err(Errno::NXIO) if size == 0 => AllocType::Ezt,
        Err(_) => AllocType::Unknown,
    };
    StatX {
        total_bytes: size,
        alloced_bytes: alloced,
        unique_bytes: if may_share { 0 } else { alloced },
        alloc_type,
    }
}
