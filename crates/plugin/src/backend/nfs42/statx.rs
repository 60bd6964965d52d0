//! STATX through the standard backend: one lookup (GETATTR `size`, `space_used`, type) and,
//! where the server has SEEK, one SEEK for the first hole. The figures, as close to the
//! daemon's as NFSv4.2 lets them be (the daemon's fallback where FIEMAP is missing, see
//! docs/engine.md "STATX"):
//!
//! - `total_bytes` = `size`; `alloced_bytes` = `space_used` (knfsd: `st_blocks * 512`);
//! - `alloc_type`: no hole before the end is EZT; a hole while `space_used` covers the size
//!   is LZT (XFS and ext4 report unwritten, reserved extents as holes to SEEK_HOLE, and
//!   knfsd answers SEEK with `vfs_llseek`); any other hole is THIN; without SEEK, UNKNOWN;
//! - `unique_bytes`: NFS cannot say which blocks a file shares. Where the server clones
//!   (the probe), 0 — never more than deleting the file frees; where it cannot, nothing can
//!   be shared by clones and it is `space_used`.

use openvaai_abi::{alloc, vix, AllocType};
use openvaai_client::Failure;
use openvaai_nfs4::attr::FileType;
use openvaai_nfs4::basic::{Fh, Stateid};
use openvaai_nfs4::ops::v42::{Content, SeekArgs};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::Status;

use super::lookup::{self, Start};
use super::status::vix_of;
use super::Nfs42;
use crate::primitive::{Outcome, StatxFigures};

pub fn statx(session: &Nfs42, file: &[u8]) -> Result<Outcome, Failure> {
    let path = session.datastore.relative(file).map_err(|e| {
        Failure::new(
            vix::E_INVALID_ARG,
            format!("{}: {e}", String::from_utf8_lossy(file)),
        )
    })?;
    let names = lookup::file_components(&path)?;
    let deadline = session.deadline();
    let mut conn = session.conn();
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
            unique_bytes: if session.supported.clone { 0 } else { used },
            alloc_type: alloc_type(size, used, hole),
        }),
    })
}

/// `hole`: where SEEK found the first hole (`Some(size)` for none before the end), `None`
/// where the server cannot say.
fn alloc_type(size: u64, used: u64, hole: Option<u64>) -> AllocType {
    match hole {
        None => alloc::UNKNOWN,
        Some(at) if at >= size => alloc::EZT,
        Some(_) if used >= size => alloc::LZT,
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
        assert_eq!(alloc_type(M, M, Some(M)), alloc::EZT, "dense");
        assert_eq!(alloc_type(0, 0, Some(0)), alloc::EZT, "empty");
        assert_eq!(alloc_type(M, M, Some(0)), alloc::LZT, "reserved, unwritten");
        assert_eq!(alloc_type(M, 4096, Some(4096)), alloc::THIN, "sparse");
        assert_eq!(alloc_type(M, M, None), alloc::UNKNOWN, "no SEEK");
    }
}
