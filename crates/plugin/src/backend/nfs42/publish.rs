//! Publishing a finished temporary under the destination's name, atomically, and the check
//! of that name before anything is built (so that DRYRUN and a real run refuse the same).
//!
//! - GUARDED: LINK of the temporary into the destination's directory. NFS4ERR_EXIST if the
//!   name is taken, checked by the server with the directory locked: two GUARDED clones to
//!   one name have exactly one winner. The temporary's name is REMOVEd after.
//! - otherwise: RENAME from `.openvaai/` to the name, which replaces a file there
//!   atomically (readers see the old file or the new one, never a part).
//!
//! Both need the temporary and the destination on one filesystem: a destination directory on
//! another filesystem than the export's `.openvaai/` (an export that crosses a mount) is
//! refused before anything is built, as the daemon refuses paths crossing mounts.

use std::time::Instant;

use openvaai_abi::vix;
use openvaai_client::Failure;
use openvaai_nfs4::attr::{num, FileType};
use openvaai_nfs4::basic::{Bitmap, Component, Fh};
use openvaai_nfs4::ops::file::RenameArgs;
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::Status;

use super::conn::{Conn, Once};
use super::lookup::Found;
use super::status::vix_of;
use super::temp::{check, Temporary};

/// Where a clone goes: `name` in `dir`, `path` as ESXi's path under the export.
pub struct Target<'a> {
    pub dir: &'a Found,
    pub name: &'a Component,
    pub path: &'a str,
    pub guarded: bool,
}

/// Whether the published temporary still has its own name (to be REMOVEd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Linked,
    Renamed,
}

/// Checks the destination before a clone of `source`: a destination directory on another
/// filesystem than `private`, a directory under the name, the source itself under the name,
/// or for GUARDED any existing name, are refused.
pub fn check_destination(
    conn: &mut Conn,
    private: &Found,
    to: &Target<'_>,
    source: &Found,
    deadline: Instant,
) -> Result<(), Failure> {
    let (dir, name, dst_path, guarded) = (to.dir, to.name, to.path, to.guarded);
    if dir.attrs.fsid != private.attrs.fsid {
        return Err(Failure::new(
            vix::E_FILE_ACCESS_ERROR,
            format!(
                "the destination {dst_path:?} is on another filesystem than the export's root \
                 (the export crosses a mount); openvaai works within one filesystem: use that \
                 filesystem's own export"
            ),
        ));
    }
    let res = conn.call(
        "looking up the destination",
        &[
            Op::Putfh(dir.fh.clone()),
            Op::Lookup(name.clone()),
            Op::Getattr(Bitmap::of(&[num::TYPE, num::FSID, num::FILEID])),
        ],
        deadline,
    )?;
    let attrs = match (res.status, res.results.last()) {
        (Status::Noent, _) => return Ok(()),
        (Status::Ok, Some(OpRes::Getattr(Ok(a)))) => a.clone(),
        (Status::Ok, _) => {
            return Err(Failure::new(
                vix::E_FAIL,
                "LOOKUP answered without the destination's attributes",
            ))
        }
        (s, _) => {
            return Err(Failure::new(
                vix_of(s),
                format!("looking up {dst_path:?}: {}", s.name()),
            ))
        }
    };
    if attrs.fsid == source.attrs.fsid && attrs.fileid == source.attrs.fileid {
        return Err(Failure::new(
            vix::E_INVALID_ARG,
            format!("the destination {dst_path:?} is the source itself"),
        ));
    }
    if guarded {
        return Err(Failure::new(
            vix::E_FILE_ALREADY_EXISTS,
            format!("the destination {dst_path:?} exists (GUARDED)"),
        ));
    }
    if attrs.file_type == Some(FileType::Directory) {
        return Err(Failure::new(
            vix::E_INCORRECT_FILE_TYPE,
            format!("the destination {dst_path:?} is a directory"),
        ));
    }
    Ok(())
}

/// How many times a publish is sent when its outcome was uncertain and the check found it
/// had not run.
const MAX_TRIES: u32 = 3;

/// What the destination's name holds after a publish of uncertain outcome.
enum Landed {
    /// The temporary: the publish ran.
    Ours,
    /// Nothing: it did not run.
    NotYet,
    /// Another file (another clone's, or the file a RENAME would have replaced).
    Other,
}

/// LOOKUP of the destination and GETATTR of the temporary, in one COMPOUND (idempotent, so
/// sent again over a new connection as needed): the fileids compared.
fn landed(
    conn: &mut Conn,
    tmp: &Temporary,
    to: &Target<'_>,
    deadline: Instant,
) -> Result<Landed, Failure> {
    let what = "checking whether the clone was published";
    let fileid = Bitmap::of(&[num::FSID, num::FILEID]);
    let res = conn.call(
        what,
        &[
            Op::Putfh(tmp.fh.clone()),
            Op::Getattr(fileid.clone()),
            Op::Putfh(to.dir.fh.clone()),
            Op::Lookup(to.name.clone()),
            Op::Getattr(fileid),
        ],
        deadline,
    )?;
    let attrs: Vec<_> = res
        .results
        .iter()
        .filter_map(|r| match r {
            OpRes::Getattr(Ok(a)) => Some((a.fsid, a.fileid)),
            _ => None,
        })
        .collect();
    match (res.status, attrs.as_slice()) {
        (Status::Ok, [mine, there]) if mine.1.is_some() && mine == there => Ok(Landed::Ours),
        (Status::Ok, [_, _]) => Ok(Landed::Other),
        // LOOKUP (the fourth result) found nothing under the name.
        (Status::Noent, [_]) if res.results.len() == 4 => Ok(Landed::NotYet),
        (s, _) => Err(Failure::new(
            vix_of(s),
            format!("{what} ({}): {}", to.path, s.name()),
        )),
    }
}

/// Publishes `tmp` (in `private`) as the target. Sent once: after an uncertain outcome
/// (the connection failed, the reply was unreadable) the destination is looked up and its
/// fileid compared with the temporary's, and only a publish that did not run is sent again
/// (a LINK sent twice would answer EXIST for our own clone, a RENAME NOENT).
pub fn publish(
    conn: &mut Conn,
    private: &Fh,
    tmp: &Temporary,
    to: &Target<'_>,
    deadline: Instant,
) -> Result<Published, Failure> {
    let (dir, name, dst_path) = (&to.dir.fh, to.name, to.path);
    let (ops, how) = if to.guarded {
        (
            vec![
                Op::Putfh(tmp.fh.clone()),
                Op::Savefh,
                Op::Putfh(dir.clone()),
                Op::Link(name.clone()),
            ],
            Published::Linked,
        )
    } else {
        (
            vec![
                Op::Putfh(private.clone()),
                Op::Savefh,
                Op::Putfh(dir.clone()),
                Op::Rename(RenameArgs {
                    oldname: tmp.name.clone(),
                    newname: name.clone(),
                }),
            ],
            Published::Renamed,
        )
    };
    let mut tries = 0;
    let res = loop {
        tries += 1;
        let uncertain = match conn.call_once("publishing the clone", &ops, deadline)? {
            Once::Done(res) => break res,
            Once::Uncertain(f) => f,
        };
        // The LINK or RENAME may have run: never sent again before the name is checked.
        match landed(conn, tmp, to, deadline)? {
            Landed::Ours => return Ok(how),
            Landed::NotYet if tries < MAX_TRIES && Instant::now() < deadline => continue,
            Landed::Other if to.guarded => {
                return Err(Failure::new(
                    vix::E_FILE_ALREADY_EXISTS,
                    format!("the destination {dst_path:?} exists (GUARDED: another clone won)"),
                ))
            }
            Landed::Other if tries < MAX_TRIES && Instant::now() < deadline => continue,
            Landed::NotYet | Landed::Other => return Err(uncertain),
        }
    };
    if res.status == Status::Exist {
        return Err(Failure::new(
            vix::E_FILE_ALREADY_EXISTS,
            format!("the destination {dst_path:?} exists (GUARDED: another clone won)"),
        ));
    }
    check(&res, &format!("publishing {dst_path:?}"))?;
    Ok(how)
}
