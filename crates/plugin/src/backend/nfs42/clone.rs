//! CLONEFILE with LAZY through the standard backend: CLONE of the whole source into a
//! temporary in the destination's directory, then published atomically — LINK for GUARDED
//! (NFS4ERR_EXIST if the name is taken: race-free), RENAME to replace — and the temporary
//! REMOVEd. Any failure, and an abort at the progress report (made once every byte is in
//! place, before publishing), REMOVEs the temporary: nothing partial is ever visible under
//! the destination's name. The temporary is `.openvaai-clone-<pid>-<nanos>` (hex).
//!
//! Full (not LAZY) clones, SRCDATASTORE_VALID and DRYRUN without LAZY are NOT_SUPPORTED so
//! far; NFS4ERR_NOTSUPP from CLONE (ext4) is NOT_SUPPORTED, never a silent copy.

use std::time::Instant;

use openvaai_abi::{clone_flag, vix, CloneFlags};
use openvaai_client::Failure;
use openvaai_nfs4::attr::{FileType, SetAttrs};
use openvaai_nfs4::basic::{Component, Fh, Stateid};
use openvaai_nfs4::ops::file::RenameArgs;
use openvaai_nfs4::ops::open::{
    CloseArgs, OpenArgs, OpenClaim, OpenHow, StateOwner, SHARE_ACCESS_BOTH,
    SHARE_ACCESS_WANT_NO_DELEG, SHARE_DENY_NONE,
};
use openvaai_nfs4::ops::v42::CloneArgs;
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::{CompoundRes, Status};

use super::conn::Conn;
use super::lookup::{self, Start};
use super::status::vix_of;
use super::Nfs42;
use crate::primitive::Progress;

fn path_of(session: &Nfs42, esx: &[u8]) -> Result<String, Failure> {
    session.datastore.relative(esx).map_err(|e| {
        Failure::new(
            vix::E_INVALID_ARG,
            format!("{}: {e}", String::from_utf8_lossy(esx)),
        )
    })
}

/// The status of a COMPOUND as a failure, naming `what`.
fn check(res: &CompoundRes, what: &str) -> Result<(), Failure> {
    match res.status {
        Status::Ok => Ok(()),
        s => Err(Failure::new(vix_of(s), format!("{what}: {}", s.name()))),
    }
}

pub fn clone(
    session: &Nfs42,
    src: &[u8],
    dst: &[u8],
    flags: CloneFlags,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    if flags & !clone_flag::ALL != 0 {
        return Err(Failure::new(
            vix::E_INVALID_ARG,
            format!("unknown clone flags {:#x}", flags & !clone_flag::ALL),
        ));
    }
    if flags & clone_flag::LAZY == 0 || flags & clone_flag::SRCDATASTORE_VALID != 0 {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            "the standard NFSv4.2 backend offers only LAZY clones within one datastore so far",
        ));
    }
    if !session.supported.clone {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            "the server does not CLONE on this export (no reflink: NFS4ERR_NOTSUPP)",
        ));
    }
    let (src_path, dst_path) = (path_of(session, src)?, path_of(session, dst)?);
    let src_names = lookup::file_components(&src_path)?;
    let mut dst_names = lookup::file_components(&dst_path)?;
    let name = dst_names.pop().expect("relative() gives a name");
    let deadline = session.deadline();
    let mut conn = session.conn();
    let source = lookup::walk(
        &mut conn,
        Start::Fh(&session.root),
        &src_names,
        &src_path,
        deadline,
    )?;
    if source.file_type() != FileType::Regular {
        return Err(Failure::new(
            vix::E_INCORRECT_FILE_TYPE,
            format!("the source {src_path:?} is not a regular file"),
        ));
    }
    let dir = lookup::walk(
        &mut conn,
        Start::Fh(&session.root),
        &dst_names,
        &dst_path,
        deadline,
    )?;
    if dir.file_type() != FileType::Directory {
        return Err(Failure::new(
            vix::E_FILE_NOT_FOUND,
            format!("the destination's directory of {dst_path:?} is not a directory"),
        ));
    }
    if flags & clone_flag::DRYRUN != 0 {
        return dry_run(&mut conn, &dir.fh, &name, flags, &dst_path, deadline);
    }
    let tmp = temporary_name();
    let (tmp_fh, stateid) = create(&mut conn, &dir.fh, &tmp, deadline)?;
    let built = fill(&mut conn, &source.fh, &tmp_fh, stateid, &src_path, deadline);
    let closed = conn.call(
        "CLOSE of the temporary",
        &[
            Op::Putfh(tmp_fh.clone()),
            Op::Close(CloseArgs {
                seqid: 0,
                open_stateid: stateid,
            }),
        ],
        deadline,
    );
    let result = built
        .and_then(|()| closed.and_then(|r| check(&r, "CLOSE of the temporary")))
        .and_then(|()| report(progress, source.attrs.size.unwrap_or(0)))
        .and_then(|()| {
            publish(
                &mut conn, &dir.fh, &tmp_fh, &tmp, &name, flags, &dst_path, deadline,
            )
        });
    // The temporary goes whatever happened (after LINK it is the second name of the clone).
    let removed = conn.call(
        "REMOVE of the temporary",
        &[Op::Putfh(dir.fh.clone()), Op::Remove(tmp.clone())],
        deadline,
    );
    if let Err(f) = removed.and_then(|r| check(&r, "REMOVE of the temporary")) {
        crate::warning!(
            "{dst_path:?}: the temporary {:?} is left: {f}",
            tmp.as_str()
        );
    }
    result
}

fn temporary_name() -> Component {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Component::new(&format!(
        ".openvaai-clone-{:x}-{nanos:x}",
        std::process::id()
    ))
    .expect("a valid name")
}

/// DRYRUN: everything looked up, and for GUARDED the name free; nothing created.
fn dry_run(
    conn: &mut Conn,
    dir: &Fh,
    name: &Component,
    flags: CloneFlags,
    dst_path: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    if flags & clone_flag::GUARDED == 0 {
        return Ok(());
    }
    let res = conn.call(
        "looking up the destination",
        &[Op::Putfh(dir.clone()), Op::Lookup(name.clone())],
        deadline,
    )?;
    match res.status {
        Status::Noent => Ok(()),
        Status::Ok => Err(Failure::new(
            vix::E_FILE_ALREADY_EXISTS,
            format!("the destination {dst_path:?} exists"),
        )),
        s => Err(Failure::new(
            vix_of(s),
            format!("{dst_path:?}: {}", s.name()),
        )),
    }
}

/// OPEN (create, GUARDED) of the temporary: its handle and open stateid. Also the
/// ALLOCATE probe's (`reserve::probe`).
pub(super) fn create(
    conn: &mut Conn,
    dir: &Fh,
    tmp: &Component,
    deadline: Instant,
) -> Result<(Fh, Stateid), Failure> {
    let res = conn.call(
        "creating the temporary",
        &[
            Op::Putfh(dir.clone()),
            Op::Open(OpenArgs {
                seqid: 0,
                share_access: SHARE_ACCESS_BOTH | SHARE_ACCESS_WANT_NO_DELEG,
                share_deny: SHARE_DENY_NONE,
                owner: StateOwner {
                    clientid: conn.clientid(),
                    owner: b"openvaai clone".to_vec(),
                },
                how: OpenHow::Guarded(SetAttrs::default()),
                claim: OpenClaim::Null(tmp.clone()),
            }),
            Op::Getfh,
        ],
        deadline,
    )?;
    check(
        &res,
        "creating the temporary in the destination's directory",
    )?;
    let mut stateid = None;
    let mut fh = None;
    for r in res.results {
        match r {
            OpRes::Open(Ok(ok)) => stateid = Some(ok.stateid),
            OpRes::Getfh(Ok(f)) => fh = Some(f),
            _ => {}
        }
    }
    match (fh, stateid) {
        (Some(fh), Some(s)) => Ok((fh, s)),
        _ => Err(Failure::new(
            vix::E_FAIL,
            "OPEN answered without a handle or stateid",
        )),
    }
}

/// CLONE of the whole source (count 0: to its end) into the temporary.
fn fill(
    conn: &mut Conn,
    src: &Fh,
    tmp: &Fh,
    stateid: Stateid,
    src_path: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let res = conn.call(
        "CLONE",
        &[
            Op::Putfh(src.clone()),
            Op::Savefh,
            Op::Putfh(tmp.clone()),
            Op::Clone(CloneArgs {
                src_stateid: Stateid::ANONYMOUS,
                dst_stateid: stateid,
                src_offset: 0,
                dst_offset: 0,
                count: 0,
            }),
        ],
        deadline,
    )?;
    check(&res, &format!("CLONE of {src_path:?}"))
}

/// One report of the whole size (in `updateBytes` steps); an abort cancels.
fn report(progress: &mut dyn Progress, size: u64) -> Result<(), Failure> {
    let step = progress.update_bytes().max(1);
    let mut done = 0;
    while done < size {
        let delta = step.min(size - done);
        done += delta;
        if !progress.report(delta) {
            return Err(Failure::new(vix::E_CANCELLED, "the clone was aborted"));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn publish(
    conn: &mut Conn,
    dir: &Fh,
    tmp_fh: &Fh,
    tmp: &Component,
    name: &Component,
    flags: CloneFlags,
    dst_path: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let ops = if flags & clone_flag::GUARDED != 0 {
        vec![
            Op::Putfh(tmp_fh.clone()),
            Op::Savefh,
            Op::Putfh(dir.clone()),
            Op::Link(name.clone()),
        ]
    } else {
        vec![
            Op::Putfh(dir.clone()),
            Op::Savefh,
            Op::Putfh(dir.clone()),
            Op::Rename(RenameArgs {
                oldname: tmp.clone(),
                newname: name.clone(),
            }),
        ]
    };
    let res = conn.call("publishing the clone", &ops, deadline)?;
    check(&res, &format!("publishing {dst_path:?}"))
}
