//! Which offload operations the server has, found once per session at StartSession on the
//! export's marker `.openvaai/nfs42` (a regular file the administrator made, on the export's
//! own filesystem), with requests that change nothing:
//!
//! - CLONE of the marker onto itself, offset 0, count 0: an empty marker is a clone of
//!   nothing (Linux returns at once), a non-empty one an overlapping clone the server refuses
//!   (NFS4ERR_INVAL) before touching anything; a filesystem without reflink answers
//!   NFS4ERR_NOTSUPP first (knfsd: the VFS has no `remap_file_range`);
//! - SEEK for data from offset 0: a read-only question;
//! - ALLOCATE, which must be seen to *hold* (ZFS answers NFS4_OK and allocates nothing), so
//!   it is tried for real on a temporary in the marker's directory `.openvaai/` and the
//!   temporary removed ([`reserve::probe`]).
//!
//! NFS4ERR_NOTSUPP or NFS4ERR_OP_ILLEGAL (an operation the server does not know) means
//! "not supported"; any other answer means the operation is there (it was asked of a
//! request it need not carry out). A server that supports CLONE on the marker's filesystem
//! may still refuse it on another one (an export crossing mounts): that NFS4ERR_NOTSUPP, on
//! use, is NOT_SUPPORTED too.

use std::time::Instant;

use openvaai_abi::vix;
use openvaai_client::Failure;
use openvaai_nfs4::basic::{Fh, Stateid};
use openvaai_nfs4::ops::v42::{CloneArgs, Content, SeekArgs};
use openvaai_nfs4::ops::Op;
use openvaai_nfs4::{CompoundRes, Status};

use super::conn::Conn;
use super::lookup::{self, Start};
use super::reserve::{self, Allocate};
use super::status::vix_of;

/// The probe's findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Supported {
    pub clone: bool,
    pub seek: bool,
    /// ALLOCATE, and whether a reservation holds (RESVSPACE).
    pub allocate: Allocate,
}

impl Supported {
    /// E.g. `CLONE yes, SEEK yes, ALLOCATE yes`.
    pub fn describe(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "CLONE {}, SEEK {}, {}",
            yes(self.clone),
            yes(self.seek),
            self.allocate.describe()
        )
    }
}

/// Whether the last of `sent` operations is there, by its answer; an earlier failure (the
/// marker's handle gone stale) answers nothing about it.
fn present(res: &CompoundRes, sent: usize, what: &str) -> Result<bool, Failure> {
    if res.results.len() < sent {
        return Err(Failure::new(
            vix_of(res.status),
            format!("{what}: {} before the probe", res.status.name()),
        ));
    }
    Ok(!matches!(res.status, Status::Notsupp | Status::OpIllegal))
}

/// Finds the marker under the export root `root` and asks the server about each operation.
pub fn probe(
    conn: &mut Conn,
    root: &Fh,
    export: &str,
    deadline: Instant,
) -> Result<Supported, Failure> {
    let missing = |f: Failure| {
        Failure::new(
            vix::E_NOT_SUPPORTED,
            format!(
                "the server's export {export:?} has no .openvaai/nfs42 ({}): is \
                 remoteMountPoint the export mounted here?",
                f.detail
            ),
        )
    };
    let (dir, file) = (
        lookup::components(".openvaai", "marker")?,
        lookup::components("nfs42", "marker")?,
    );
    let private =
        lookup::walk(conn, Start::Fh(root), &dir, ".openvaai", deadline).map_err(missing)?;
    let marker = lookup::walk(
        conn,
        Start::Fh(&private.fh),
        &file,
        ".openvaai/nfs42",
        deadline,
    )
    .map_err(missing)?;
    let anonymous = Stateid::ANONYMOUS;
    let clone = conn.call(
        "probing CLONE",
        &[
            Op::Putfh(marker.fh.clone()),
            Op::Savefh,
            Op::Clone(CloneArgs {
                src_stateid: anonymous,
                dst_stateid: anonymous,
                src_offset: 0,
                dst_offset: 0,
                count: 0,
            }),
        ],
        deadline,
    )?;
    let seek = conn.call(
        "probing SEEK",
        &[
            Op::Putfh(marker.fh),
            Op::Seek(SeekArgs {
                stateid: anonymous,
                offset: 0,
                what: Content::Data,
            }),
        ],
        deadline,
    )?;
    let (clone, seek) = (
        present(&clone, 3, "probing CLONE")?,
        present(&seek, 2, "probing SEEK")?,
    );
    Ok(Supported {
        clone,
        seek,
        allocate: reserve::probe(conn, &private.fh, deadline)?,
    })
}
