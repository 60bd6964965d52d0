//! RESVSPACE through the standard backend: ALLOCATE over the file's length (RFC 7862 §15.1:
//! blocks for the holes, the data kept), then GETATTR `space_used`, which must cover the
//! size. ALLOCATE's success is not enough: knfsd on ZFS (TrueNAS) answers it with NFS4_OK
//! and allocates nothing (OpenZFS's `fallocate(0)` checks the free space and leaves the file
//! sparse: a copy-on-write pool cannot reserve per file), so a reservation is only as good
//! as the `space_used` after it — the same rule as the engine's (`allocation_holds`).
//!
//! Also the probe's half for ALLOCATE ([`probe`]): whether ALLOCATE exists *and holds* on the
//! export, tried once per session on a small temporary in the export's `.openvaai/`.
//!
//! A reservation that fails or is aborted half way keeps what it allocated: NFS cannot tell
//! a hole from an earlier reservation (SEEK reports unwritten extents as holes), so giving
//! back with DEALLOCATE could free space reserved before. The data is unchanged either way.

use std::time::Instant;

use openvaai_abi::{vix, VixError};
use openvaai_client::Failure;
use openvaai_nfs4::attr::{num, FileType};
use openvaai_nfs4::basic::{Bitmap, Fh, Stateid};
use openvaai_nfs4::ops::open::CloseArgs;
use openvaai_nfs4::ops::v42::RangeArgs;
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::{CompoundRes, Status};
use openvaai_proto::layout::PRIVATE_DIR;

use super::conn::Conn;
use super::lookup::{self, Start};
use super::status::vix_of;
use super::Nfs42;
use crate::primitive::{report_steps, Progress};

/// Bytes per ALLOCATE, so that progress is reported and each call stays well inside the
/// session timeout (XFS and ext4 allocate a GiB of unwritten extents in milliseconds).
const CHUNK: u64 = 1 << 30;

/// What the probe allocates in its temporary.
pub const PROBE_BYTES: u64 = 1 << 20;

/// What to do where a filesystem cannot reserve per file.
const INSTEAD: &str = "a copy-on-write filesystem (ZFS, TrueNAS) cannot reserve space for one \
                       file; reserve it for the whole dataset instead (zfs set \
                       refreservation=SIZE DATASET) and let ESXi make thin disks";

/// What the probe found of ALLOCATE on the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocate {
    /// ALLOCATE answered and `space_used` grew to cover what it allocated.
    Holds,
    /// ALLOCATE answered NFS4_OK and `space_used` stayed at `used` bytes (of
    /// [`PROBE_BYTES`]): the filesystem allocates nothing (ZFS).
    Hollow { used: u64 },
    /// NFS4ERR_NOTSUPP or NFS4ERR_OP_ILLEGAL: no ALLOCATE here (also before any probe).
    #[default]
    Absent,
    /// The probe's temporary could not be made (`vix`: e.g. a read-only or root-squashed
    /// export), or ALLOCATE failed otherwise, so nothing was learnt.
    Untried { vix: VixError },
}

impl Allocate {
    /// Whether RESVSPACE is offered: only where a reservation was seen to hold.
    pub fn holds(&self) -> bool {
        *self == Allocate::Holds
    }

    /// For the session line, e.g. `ALLOCATE yes`.
    pub fn describe(&self) -> String {
        match self {
            Allocate::Holds => "ALLOCATE yes".to_owned(),
            Allocate::Hollow { used } => format!(
                "ALLOCATE allocates nothing ({used} bytes used after allocating {PROBE_BYTES}: \
                 RESVSPACE not offered; {INSTEAD})"
            ),
            Allocate::Absent => "ALLOCATE no".to_owned(),
            Allocate::Untried { vix } => format!(
                "ALLOCATE untested ({} trying it on a file in the export's .openvaai: \
                 RESVSPACE not offered; is the export rw,no_root_squash?)",
                vix::name(*vix).unwrap_or("an error")
            ),
        }
    }
}

fn check(res: &CompoundRes, what: &str) -> Result<(), Failure> {
    match res.status {
        Status::Ok => Ok(()),
        s => Err(Failure::new(vix_of(s), format!("{what}: {}", s.name()))),
    }
}

/// `space_used` from the GETATTR in `res`, if there is one.
fn space_used(res: &CompoundRes) -> Option<u64> {
    res.results.iter().find_map(|r| match r {
        OpRes::Getattr(Ok(a)) => a.space_used,
        _ => None,
    })
}

/// The probe's half for ALLOCATE, in the export's private directory `dir`: OPEN (create,
/// GUARDED) of a temporary named as the clones' are (`temp`: one held open while in use, so
/// the next StartSession's cleanup removes it if a crash left it), ALLOCATE [0, 1 MiB) with
/// GETATTR `space_used` in the same COMPOUND, then CLOSE and REMOVE whatever the answer. Four
/// round trips, each bounded by `deadline`; only a connection lost between OPEN and REMOVE
/// can leave the (empty, 1 MiB) temporary behind, until that cleanup.
pub fn probe(conn: &mut Conn, dir: &Fh, deadline: Instant) -> Result<Allocate, Failure> {
    let name = super::temp::new_name();
    let (fh, stateid) = match super::temp::open_create(conn, dir, &name, None, deadline) {
        Ok(made) => made,
        Err(f) if f.broken => return Err(f),
        Err(f) => {
            crate::info!("probing ALLOCATE: {f}");
            return Ok(Allocate::Untried { vix: f.vix });
        }
    };
    let tried = conn.call(
        "probing ALLOCATE",
        &[
            Op::Putfh(fh.clone()),
            Op::Allocate(RangeArgs {
                stateid,
                offset: 0,
                length: PROBE_BYTES,
            }),
            Op::Getattr(Bitmap::of(&[num::SPACE_USED])),
        ],
        deadline,
    );
    let closed = conn
        .call(
            "CLOSE of the ALLOCATE probe",
            &[
                Op::Putfh(fh),
                Op::Close(CloseArgs {
                    seqid: 0,
                    open_stateid: stateid,
                }),
            ],
            deadline,
        )
        .and_then(|r| check(&r, "CLOSE of the ALLOCATE probe"));
    let removed = conn
        .call(
            "REMOVE of the ALLOCATE probe",
            &[Op::Putfh(dir.clone()), Op::Remove(name.clone())],
            deadline,
        )
        .and_then(|r| check(&r, "REMOVE of the ALLOCATE probe"));
    for f in [closed.err(), removed.err()].into_iter().flatten() {
        crate::warning!("{PRIVATE_DIR}/{}: {f}", name.as_str());
    }
    let res = tried?;
    Ok(match res.status {
        Status::Ok => match space_used(&res) {
            Some(used) if used >= PROBE_BYTES => Allocate::Holds,
            used => Allocate::Hollow {
                used: used.unwrap_or(0),
            },
        },
        Status::Notsupp | Status::OpIllegal => Allocate::Absent,
        s => Allocate::Untried { vix: vix_of(s) },
    })
}

/// RESVSPACE of `file`: every byte of `[0, size)` allocated, the data kept.
pub fn reserve(session: &Nfs42, file: &[u8], progress: &mut dyn Progress) -> Result<(), Failure> {
    if session.supported.allocate == Allocate::Absent {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            "the server has no ALLOCATE on this export (NFS4ERR_NOTSUPP when probed)",
        ));
    }
    let path = lookup::relative(&session.datastore, file)?;
    let names = lookup::file_components(&path)?;
    let deadline = session.deadline();
    let found = lookup::walk(
        &mut *session.conn_by(deadline)?,
        Start::Fh(&session.root),
        &names,
        &path,
        deadline,
    )?;
    if found.file_type() != FileType::Regular {
        return Err(Failure::new(
            vix::E_INCORRECT_FILE_TYPE,
            format!("{path:?} is not a regular file ({:?})", found.file_type()),
        ));
    }
    let size = found.attrs.size.unwrap_or(0);
    if size == 0 {
        return Err(Failure::new(
            vix::E_INVALID_ARG,
            format!("{path:?} is empty: ESXi sets a disk's length before reserving it"),
        ));
    }
    let step = progress.update_bytes();
    let (mut done, mut reported) = (0u64, 0u64);
    let mut used = None;
    while done < size {
        let len = CHUNK.min(size - done);
        let last = done + len == size;
        let mut ops = vec![
            Op::Putfh(found.fh.clone()),
            Op::Allocate(RangeArgs {
                stateid: Stateid::ANONYMOUS,
                offset: done,
                length: len,
            }),
        ];
        if last {
            ops.push(Op::Getattr(Bitmap::of(&[num::SPACE_USED])));
        }
        // Each ALLOCATE within its own session timeout: the bound is on a stall, not on
        // the size of the disk.
        let deadline = session.deadline();
        let res = session
            .conn_by(deadline)?
            .call("ALLOCATE", &ops, deadline)?;
        if matches!(res.status, Status::Notsupp | Status::OpIllegal) {
            return Err(Failure::new(
                vix::E_NOT_SUPPORTED,
                format!(
                    "ALLOCATE in {path:?}: {}: the server's filesystem cannot reserve space",
                    res.status.name()
                ),
            ));
        }
        check(
            &res,
            &format!("ALLOCATE of [{done}, {}) in {path:?}", done + len),
        )?;
        used = space_used(&res);
        done += len;
        if !report_steps(progress, &mut reported, done, step, last) {
            return Err(Failure::new(
                vix::E_CANCELLED,
                format!(
                    "the reservation of {path:?} was aborted after {done} of {size} bytes \
                     (what was allocated stays allocated)"
                ),
            ));
        }
    }
    verify(&path, size, used)
}

/// A reservation holds only if `space_used` covers the size.
fn verify(path: &str, size: u64, used: Option<u64>) -> Result<(), Failure> {
    match used {
        Some(used) if used >= size => Ok(()),
        Some(used) => Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            format!(
                "{path:?}: ALLOCATE succeeded but allocated nothing ({used} bytes used of \
                 {size}): {INSTEAD}"
            ),
        )),
        None => Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            format!(
                "{path:?}: the server does not report space_used, so a reservation cannot be \
                 checked"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_holds_only_where_space_used_covers_the_size() {
        assert!(verify("f", 4096, Some(4096)).is_ok());
        assert!(verify("f", 4097, Some(8192)).is_ok());
        // ZFS: NFS4_OK, one sector used.
        let f = verify("f", 64 << 20, Some(512)).unwrap_err();
        assert_eq!(f.vix, vix::E_NOT_SUPPORTED);
        assert!(
            f.detail.contains("allocated nothing") && f.detail.contains("refreservation"),
            "{f}"
        );
        assert_eq!(
            verify("f", 4096, None).unwrap_err().vix,
            vix::E_NOT_SUPPORTED
        );
    }

    #[test]
    fn only_a_reservation_seen_to_hold_is_offered() {
        assert!(Allocate::Holds.holds());
        for a in [
            Allocate::Hollow { used: 512 },
            Allocate::Absent,
            Allocate::Untried {
                vix: vix::E_FILE_READ_ONLY,
            },
        ] {
            assert!(!a.holds(), "{a:?}");
        }
        assert_eq!(Allocate::default(), Allocate::Absent);
        let hollow = Allocate::Hollow { used: 512 }.describe();
        assert!(hollow.contains("refreservation"), "{hollow}");
    }
}
