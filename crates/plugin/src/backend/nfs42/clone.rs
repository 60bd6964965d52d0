//! CLONEFILE through the standard backend. In order:
//!
//! 1. Flags: unknown bits refused; LAZY needs CLONE, a full clone COPY (the probe's
//!    findings), else NOT_SUPPORTED — never a silent fallback from one to the other.
//! 2. The source: under this export, or with SRCDATASTORE_VALID under the source datastore's
//!    export, which must be on this server (the same address): looked up from PUTROOTFH in
//!    this session; another server is NOT_SUPPORTED (no inter-server COPY).
//! 3. The source must be a regular file, the destination's directory a directory on the
//!    filesystem of the export's `.openvaai/`, and the destination name free for GUARDED, not
//!    a directory and not the source itself ([`publish::check_destination`]).
//! 4. DRYRUN stops here: everything was looked up, nothing created.
//! 5. A temporary in `.openvaai/` ([`temp`]) with the source's permission bits, filled by
//!    CLONE of the whole source (LAZY) or by COPY range by range ([`copy`]); the last
//!    progress report; then the source's owner, group and mode ([`owner`]: set-id bits
//!    only where the owner follows).
//! 6. Published by LINK (GUARDED) or RENAME ([`publish`]); the temporary's open CLOSEd and
//!    its name REMOVEd whatever happened, so nothing partial is ever visible under the
//!    destination's name.

use std::time::Instant;

use openvaai_abi::{clone_flag, vix, CloneFlags};
use openvaai_client::address::resolve;
use openvaai_client::{DataStore, Failure, RawDataStore};
use openvaai_nfs4::attr::FileType;
use openvaai_nfs4::basic::{Fh, Stateid};
use openvaai_nfs4::ops::v42::CloneArgs;
use openvaai_nfs4::ops::Op;

use super::conn::Conn;
use super::copy::{self, Job};
use super::lookup::{self, Found, Start};
use super::owner;
use super::publish::{self, Published, Target};
use super::temp::{self, check, Temporary, DISCARD_BOUND};
use super::Nfs42;
use crate::primitive::{report_steps, Progress};

fn needs(have: bool, what: &str) -> Result<(), Failure> {
    if have {
        Ok(())
    } else {
        Err(Failure::new(vix::E_NOT_SUPPORTED, what.to_owned()))
    }
}

pub fn clone(
    session: &Nfs42,
    src: &[u8],
    dst: &[u8],
    flags: CloneFlags,
    src_datastore: Option<&RawDataStore<'_>>,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    if flags & !clone_flag::ALL != 0 {
        return Err(Failure::new(
            vix::E_INVALID_ARG,
            format!("unknown clone flags {:#x}", flags & !clone_flag::ALL),
        ));
    }
    let lazy = flags & clone_flag::LAZY != 0;
    let guarded = flags & clone_flag::GUARDED != 0;
    if lazy {
        needs(
            session.supported.clone,
            "the server does not CLONE on this export (no reflink: NFS4ERR_NOTSUPP)",
        )?;
    } else {
        needs(
            session.supported.copy,
            "the server has no intra-server COPY on this export (NFS4ERR_NOTSUPP)",
        )?;
    }
    let deadline = session.deadline();
    let mut conn = session.conn_by(deadline)?;
    let source_ds;
    let (src_root, src_ds) = if flags & clone_flag::SRCDATASTORE_VALID != 0 {
        let raw = src_datastore.ok_or_else(|| {
            Failure::new(
                vix::E_INVALID_ARG,
                "SRCDATASTORE_VALID without srcDataStoreInfo",
            )
        })?;
        let (ds, root) = source_export(session, &mut conn, raw, deadline)?;
        source_ds = ds;
        (root, &source_ds)
    } else {
        (session.root.clone(), &session.datastore)
    };
    let (src_path, dst_path) = (
        lookup::relative(src_ds, src)?,
        lookup::relative(&session.datastore, dst)?,
    );
    let src_names = lookup::file_components(&src_path)?;
    let mut dst_names = lookup::file_components(&dst_path)?;
    let name = dst_names.pop().expect("relative() gives a name");
    let source = lookup::walk(
        &mut conn,
        Start::Fh(&src_root),
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
    let to = Target {
        dir: &dir,
        name: &name,
        path: &dst_path,
        guarded,
    };
    publish::check_destination(&mut conn, &session.private, &to, &source, deadline)?;
    if flags & clone_flag::DRYRUN != 0 {
        return Ok(());
    }
    let private = &session.private.fh;
    let attrs = owner::of_source(&mut conn, &source.fh, deadline)?;
    let tmp = temp::create(&mut conn, private, attrs.create_mode(), deadline)?;
    let size = source.attrs.size.unwrap_or(0);
    let cloned = match lazy {
        true => clone_whole(&mut conn, &source.fh, &tmp, &src_path, deadline),
        false => Ok(()),
    };
    // Not locked across the copy's ranges and the progress reports: the session's other
    // calls go between them, and the callback may use the session.
    drop(conn);
    let built = cloned.and_then(|()| {
        if lazy {
            let (mut reported, step) = (0, progress.update_bytes());
            match report_steps(progress, &mut reported, size, step, true) {
                true => Ok(()),
                false => Err(Failure::new(vix::E_CANCELLED, "the clone was aborted")),
            }
        } else {
            let job = Job {
                src: &source.fh,
                src_path: &src_path,
                tmp: &tmp,
                size,
                thick: flags & clone_flag::SKIPZEROES == 0,
                seek: session.supported.seek,
                timeout: session.timeout,
            };
            copy::fill(session, &job, progress)
        }
    });
    let published = built.and_then(|()| {
        let deadline = session.deadline();
        let mut conn = session.conn_by(deadline)?;
        attrs.apply(&mut conn, &tmp, &dst_path, deadline)?;
        publish::publish(&mut conn, private, &tmp, &to, deadline)
    });
    finish(private, &tmp, published.as_ref().ok(), &dst_path, session);
    published.map(drop)
}

/// CLOSE of the temporary, then REMOVE of its name unless RENAME took it, within their own
/// bound (the clone's deadline may be spent: a server that stopped answering). A failure is
/// logged: the next StartSession of the datastore removes what is left.
fn finish(
    private: &Fh,
    tmp: &Temporary,
    published: Option<&Published>,
    dst_path: &str,
    session: &Nfs42,
) {
    let named = published != Some(&Published::Renamed);
    let deadline = Instant::now() + session.timeout.min(DISCARD_BOUND);
    let discarded = session
        .conn_by(deadline)
        .and_then(|mut conn| temp::discard(&mut conn, private, tmp, named, deadline));
    if let Err(f) = discarded {
        crate::warning!(
            "{dst_path:?}: the temporary .openvaai/{} is left: {f}; the next session on this \
             datastore removes it",
            tmp.name.as_str()
        );
    }
}

/// The export of the source datastore of a SRCDATASTORE_VALID clone: on this server (one of
/// its addresses is the session's), looked up from the pseudo-root in this session.
fn source_export(
    session: &Nfs42,
    conn: &mut Conn,
    raw: &RawDataStore<'_>,
    deadline: Instant,
) -> Result<(DataStore, Fh), Failure> {
    let ds = DataStore::from_raw(raw)
        .map_err(|d| Failure::new(d.vix_error(), format!("source datastore: {d}")))?;
    let addrs = resolve(&ds.remote_ip, conn.addr.port(), deadline).map_err(|e| {
        Failure::new(
            vix::E_HOST_NOT_CONNECTED,
            format!("source datastore: {}", e.0),
        )
    })?;
    if !addrs.iter().any(|a| a.ip() == conn.addr.ip()) {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            format!(
                "the source datastore {} is on another server ({}) than {} ({}): the standard \
                 NFSv4.2 backend copies within one server only",
                ds.mount().display(),
                ds.remote_ip,
                session.datastore.mount().display(),
                conn.addr.ip()
            ),
        ));
    }
    let export = &ds.remote_mount_point;
    let names = lookup::components(export, "the source's remoteMountPoint")?;
    let root: Found = lookup::walk(conn, Start::Root, &names, export, deadline)?;
    if root.file_type() != FileType::Directory {
        return Err(Failure::new(
            vix::E_FILE_NOT_FOUND,
            format!("the source datastore's export {export:?} is not a directory"),
        ));
    }
    Ok((ds, root.fh))
}

/// CLONE of the whole source (count 0: to its end) into the temporary.
fn clone_whole(
    conn: &mut Conn,
    src: &Fh,
    tmp: &Temporary,
    src_path: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let res = conn.call(
        "CLONE",
        &[
            Op::Putfh(src.clone()),
            Op::Savefh,
            Op::Putfh(tmp.fh.clone()),
            Op::Clone(CloneArgs {
                src_stateid: Stateid::ANONYMOUS,
                dst_stateid: tmp.stateid,
                src_offset: 0,
                dst_offset: 0,
                count: 0,
            }),
        ],
        deadline,
    )?;
    check(&res, &format!("CLONE of {src_path:?}"))
}
