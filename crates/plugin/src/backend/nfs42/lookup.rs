//! Names to file handles: the export path from PUTROOTFH, and ESXi paths under the export,
//! one component at a time. `..`, `.`, empty and absolute names never reach the wire
//! (`Component` refuses them, and `DataStore::relative` refuses `..` before); the server
//! itself refuses to LOOKUP through a symbolic link (NFS4ERR_SYMLINK), and a symbolic link
//! as the last component is refused here: no path leaves the export.

use std::time::Instant;

use openvaai_abi::vix;
use openvaai_client::{DataStore, Failure};
use openvaai_nfs4::attr::{num, Fattr, FileType};
use openvaai_nfs4::basic::{Bitmap, Component, Fh};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::{CompoundRes, Status};
// The private directory, as the daemon keeps it (defined once, in proto): never a path component.
use openvaai_proto::layout::PRIVATE_DIR;

use super::conn::Conn;
use super::status::vix_of;

/// What a lookup found.
#[derive(Debug, Clone)]
pub struct Found {
    pub fh: Fh,
    pub attrs: Fattr,
}

impl Found {
    pub fn file_type(&self) -> FileType {
        self.attrs.file_type.unwrap_or(FileType::Unknown(0))
    }
}

/// Where a lookup starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    Root,
    Fh(&'a Fh),
}

/// The attributes every lookup asks for with its handle.
fn wanted() -> Bitmap {
    Bitmap::of(&[
        num::TYPE,
        num::SIZE,
        num::SPACE_USED,
        num::FSID,
        num::FILEID,
    ])
}

/// ESXi's path `esx` as a path relative to the datastore `ds` (refused: outside it).
pub fn relative(ds: &DataStore, esx: &[u8]) -> Result<String, Failure> {
    ds.relative(esx).map_err(|e| {
        Failure::new(
            vix::E_INVALID_ARG,
            format!("{}: {e}", String::from_utf8_lossy(esx)),
        )
    })
}

/// The components of `path` (split at `/`, empty and `.` dropped), each checked.
pub fn components(path: &str, what: &str) -> Result<Vec<Component>, Failure> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| {
            Component::new(c)
                .map_err(|e| Failure::new(vix::E_INVALID_ARG, format!("{what} {path:?}: {e}")))
        })
        .collect()
}

/// Components of a path under the export: the private directory is refused, as the daemon
/// refuses it (its markers are not files of the datastore).
pub fn file_components(path: &str) -> Result<Vec<Component>, Failure> {
    let parts = components(path, "file")?;
    if parts.iter().any(|c| c.as_str() == PRIVATE_DIR) {
        return Err(Failure::new(
            vix::E_FILE_ACCESS_ERROR,
            format!(
                "{path:?}: {PRIVATE_DIR} is openvaai's private directory, not a datastore file"
            ),
        ));
    }
    Ok(parts)
}

/// Looks `names` up from `start`, a COMPOUND per as many components as the session allows.
/// `shown` names the path in messages. An empty `names` gives `start` itself.
pub fn walk(
    conn: &mut Conn,
    start: Start<'_>,
    names: &[Component],
    shown: &str,
    deadline: Instant,
) -> Result<Found, Failure> {
    // SEQUENCE is counted by max_ops; PUTFH, GETFH and GETATTR go with the LOOKUPs.
    let per_call = conn.max_ops().saturating_sub(3).max(1);
    let mut cur: Option<Fh> = match start {
        Start::Root => None,
        Start::Fh(fh) => Some(fh.clone()),
    };
    let mut done = 0;
    loop {
        let chunk = &names[done..(done + per_call).min(names.len())];
        let mut ops = Vec::with_capacity(chunk.len() + 3);
        ops.push(cur.take().map_or(Op::Putrootfh, Op::Putfh));
        ops.extend(chunk.iter().cloned().map(Op::Lookup));
        ops.push(Op::Getfh);
        ops.push(Op::Getattr(wanted()));
        let res = conn.call(&format!("looking up {shown:?}"), &ops, deadline)?;
        if !res.status.is_ok() {
            return Err(failed_at(&res, names, done, chunk.len(), shown));
        }
        let mut fh = None;
        let mut attrs = None;
        for r in res.results {
            match r {
                OpRes::Getfh(Ok(f)) => fh = Some(f),
                OpRes::Getattr(Ok(a)) => attrs = Some(a),
                _ => {}
            }
        }
        let (Some(fh), Some(attrs)) = (fh, attrs) else {
            return Err(Failure::new(
                vix::E_FAIL,
                format!("looking up {shown:?}: the server's reply lacks the handle or attributes"),
            ));
        };
        let found = Found { fh, attrs };
        done += chunk.len();
        if found.file_type() == FileType::Symlink {
            return Err(Failure::new(
                vix::E_FILE_ACCESS_ERROR,
                format!("{shown:?} is a symbolic link, which this backend does not follow"),
            ));
        }
        if done >= names.len() {
            return Ok(found);
        }
        cur = Some(found.fh);
    }
}

/// The failure of a lookup COMPOUND whose results stop at a failed operation: PUTFH, then
/// one per LOOKUP of `names[done..done + looked_up]`, then GETFH and GETATTR. Whatever
/// the server's reply holds (a failed GETATTR past the last LOOKUP included), every index
/// is bounded by what was sent.
fn failed_at(
    res: &CompoundRes,
    names: &[Component],
    done: usize,
    looked_up: usize,
    shown: &str,
) -> Failure {
    let failed = res.results.len().saturating_sub(1);
    // The components up to and including the one the failed LOOKUP named, or all of them
    // when PUTFH, GETFH or GETATTR failed.
    let through = match failed {
        k @ 1.. if k <= looked_up => done + k,
        _ => done + looked_up,
    }
    .min(names.len());
    let at = match failed {
        k @ 1.. if k <= looked_up => format!(" at {:?}", names[through - 1].as_str()),
        _ => String::new(),
    };
    let hint = if res.status == Status::Symlink {
        // A LOOKUP answers NFS4ERR_SYMLINK when the directory it looks in is a link: the
        // link is the component before the one it named.
        let link = match failed {
            k @ 1.. if k <= looked_up => through - 1,
            _ => through,
        };
        let path: Vec<&str> = names[..link].iter().map(Component::as_str).collect();
        format!(
            ": {:?} is a symbolic link, which this backend does not follow",
            path.join("/")
        )
    } else {
        String::new()
    };
    Failure::new(
        vix_of(res.status),
        format!("looking up {shown:?}{at}: {}{hint}", res.status.name()),
    )
}
