//! STATX through the standard backend: one lookup (GETATTR `size`, `space_used`, type) and,
//! where the server has SEEK, one SEEK for the first hole. The figures, as close to the
//! daemon's as NFSv4.2 lets them be (the daemon's fallback where FIEMAP is missing, see
//! docs/engine.md "STATX"):
//!
//! - `total_bytes` = `size`; `alloced_bytes` = `space_used` (knfsd: `st_blocks * 512`);
//! - `alloc_type`: no hole before the end is EZT; a hole while `space_used` covers the size
//!   is LZT (XFS and ext4 report unwritten, reserved extents as holes to SEEK_HOLE, and
//!   knfsd answers SEEK with `vfs_llseek`), except where the probe saw ALLOCATE allocate
//!   nothing (ZFS: no reserved extents, so every hole is a hole, whatever `copies=` or
//!   metadata add to `space_used`); any other hole is THIN; without SEEK, UNKNOWN;
//! - `unique_bytes`: NFS cannot say which blocks a file shares, so never more than deleting
//!   the file could free: `space_used` only where the export can share no blocks at all (the
//!   probe found no CLONE, and an ALLOCATE that holds: a filesystem that writes in place,
//!   e.g. ext4, with no snapshots), else 0 (XFS and Btrfs clone; ZFS shares through block
//!   clones, also ones made while `zfs_bclone_enabled` was on, and snapshots).
//!
//! On ZFS `space_used` (`st_blocks`) is what the pool has accounted so far: it is the
//! compressed size, and blocks written in the open transaction group (up to
//! `zfs_txg_timeout`, 5 s) are not in it until the group syncs. STATX reports it as it is
//! (a COMMIT does not sync the group; waiting for one would stall ESXi): a figure that may
//! lag by seconds, never one above what the file holds. SEEK is exact (OpenZFS syncs a
//! dirty file before answering it).

use openvaai_abi::{alloc, vix, AllocType};
use openvaai_client::Failure;
use openvaai_nfs4::attr::FileType;
use openvaai_nfs4::basic::{Fh, Stateid};
use openvaai_nfs4::ops::v42::{Content, SeekArgs};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::Status;

use super::lookup::{self, Start};
use super::reserve::Allocate;
use super::status::vix_of;
use super::Nfs42;
use crate::primitive::{Outcome, StatxFigures};

pub fn statx(session: &Nfs42, file: &[u8]) -> Result<Outcome, Failure> {
    let path = lookup::relative(&session.datastore, file)?;
    let names = lookup::file_components(&path)?;
    let deadline = session.deadline();
    let mut conn = session.conn_by(deadline)?;
    let found = lookup::walk(&mut conn, Start::Fh(&session.root), &names, &path, deadline)?;
    if found.file_type() != FileType::Regular {
        return Err(Failure::new(
            vix::E_INCORRECT_FILE_TYPE,
            format!("{path:?} is not a regular file ({:?})", found.file_type()),
        ));
    }
    let size = found.attrs.size.unwrap_or(0);
    let used = found.attrs.space_used.unwrap_or(0);
    let hole = if session.supported.seek {
        first_hole(&mut conn, &found.fh, &path, deadline)?
    } else {
        None
    };
    Ok(Outcome {
        status: vix::OK,
        statx: Some(StatxFigures {
            total_bytes: size,
            alloced_bytes: used,
            unique_bytes: unique_bytes(session.supported, used),
            alloc_type: alloc_type(size, used, hole, reserves(session.supported.allocate)),
        }),
    })
}

/// Whether the export's filesystem may hold reserved (unwritten) extents: not where the
/// probe saw ALLOCATE allocate nothing.
fn reserves(allocate: Allocate) -> bool {
    !matches!(allocate, Allocate::Hollow { .. })
}

/// What deleting a file of `used` bytes frees, at most: all of it only where nothing can
/// share its blocks.
fn unique_bytes(supported: super::Supported, used: u64) -> u64 {
    if !supported.clone && supported.allocate.holds() {
        used
    } else {
        0
    }
}

/// `hole`: where SEEK found the first hole (`Some(size)` for none before the end), `None`
/// where the server cannot say; `reserves`: whether a hole may be a reserved extent.
fn alloc_type(size: u64, used: u64, hole: Option<u64>, reserves: bool) -> AllocType {
    match hole {
        None => alloc::UNKNOWN,
        Some(at) if at >= size => alloc::EZT,
        Some(_) if used >= size && reserves => alloc::LZT,
        Some(_) => alloc::THIN,
    }
}

/// The offset of the first hole of `fh` (its size if none before the end), by SEEK.
fn first_hole(
    conn: &mut super::conn::Conn,
    fh: &Fh,
    path: &str,
    deadline: std::time::Instant,
) -> Result<Option<u64>, Failure> {
    let res = conn.call(
        &format!("SEEK in {path:?}"),
        &[
            Op::Putfh(fh.clone()),
            Op::Seek(SeekArgs {
                stateid: Stateid::ANONYMOUS,
                offset: 0,
                what: Content::Hole,
            }),
        ],
        deadline,
    )?;
    match (res.status, res.results.last()) {
        (Status::Ok, Some(OpRes::Seek(Ok(ok)))) => Ok(Some(ok.offset)),
        // Offset 0 at or past the end: an empty file, with no hole before its end.
        (Status::Nxio, _) => Ok(Some(0)),
        (Status::Notsupp | Status::OpIllegal, _) => Ok(None),
        (s, _) => Err(Failure::new(
            vix_of(s),
            format!("SEEK in {path:?}: {}", s.name()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_type_from_the_first_hole_and_the_space_used() {
        const M: u64 = 1 << 20;
        assert_eq!(alloc_type(M, M, Some(M), true), alloc::EZT, "dense");
        assert_eq!(alloc_type(0, 0, Some(0), true), alloc::EZT, "empty");
        assert_eq!(
            alloc_type(M, M, Some(0), true),
            alloc::LZT,
            "reserved, unwritten"
        );
        assert_eq!(alloc_type(M, 4096, Some(4096), true), alloc::THIN, "sparse");
        assert_eq!(alloc_type(M, M, None, true), alloc::UNKNOWN, "no SEEK");
        // ZFS (copies=2 doubles space_used): a hole is a hole.
        assert_eq!(alloc_type(M, M, Some(M / 2), false), alloc::THIN, "zfs");
        assert!(!reserves(Allocate::Hollow { used: 512 }));
        assert!(reserves(Allocate::Holds));
    }

    #[test]
    fn unique_bytes_only_where_nothing_can_share_blocks() {
        use super::super::Supported;
        let of = |clone, allocate| Supported {
            clone,
            copy: true,
            seek: true,
            allocate,
        };
        assert_eq!(unique_bytes(of(false, Allocate::Holds), 4096), 4096, "ext4");
        assert_eq!(unique_bytes(of(true, Allocate::Holds), 4096), 0, "xfs");
        // ZFS with block cloning off: earlier clones and snapshots still share.
        let zfs = Allocate::Hollow { used: 512 };
        assert_eq!(unique_bytes(of(false, zfs), 4096), 0, "zfs");
        assert_eq!(unique_bytes(of(false, Allocate::Absent), 4096), 0);
    }
}
