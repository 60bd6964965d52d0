//! The backend's temporaries: where a clone is built before it is published, and their
//! removal at StartSession when a crashed host left them behind.
//!
//! A temporary is a regular file in the export's private directory `.openvaai/` (where the
//! marker is), named `nfs42-tmp-<pid hex>-<nanoseconds hex>-<n>` (the ALLOCATE probe's
//! scratch file too), created by OPEN
//! (GUARDED) and held open for writing by the session that builds it until it is finished:
//! published from there into the destination's directory (LINK or RENAME, within one
//! filesystem), or given up; then CLOSEd, and its name REMOVEd unless RENAME took it. One
//! known directory, so a bounded listing finds every temporary of the export.
//!
//! At StartSession, [`cleanup`] lists `.openvaai/` (READDIR, at most [`MAX_PAGES`] pages)
//! and asks the server, for each name of that form, whether anyone still writes to it: an
//! OPEN for reading with DENY_WRITE. NFS4ERR_SHARE_DENIED (or NFS4ERR_DELAY until a short
//! bound): a live session holds it — another host cloning right now — and it is kept.
//! Granted: its builder is gone (its lease ran out, or its client was destroyed, and the
//! server dropped its open), so it is REMOVEd. The server's leases decide, not clocks.

use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_client::Failure;
use openvaai_nfs4::attr::{FileType, SetAttrs};
use openvaai_nfs4::basic::{Bitmap, Component, Fh, Stateid, Verifier};
use openvaai_nfs4::ops::dir::ReaddirArgs;
use openvaai_nfs4::ops::open::{
    CloseArgs, OpenArgs, OpenClaim, OpenHow, StateOwner, SHARE_ACCESS_BOTH, SHARE_ACCESS_READ,
    SHARE_ACCESS_WANT_NO_DELEG, SHARE_DENY_NONE, SHARE_DENY_WRITE,
};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::{CompoundRes, Status};
use openvaai_proto::layout::PRIVATE_DIR;

use super::conn::{Conn, Once};
use super::lookup::{self, Found, Start};
use super::status::vix_of;

/// The start of every temporary's name.
pub const PREFIX: &str = "nfs42-tmp-";
/// READDIR pages of `.openvaai/` read at StartSession, and the bytes of each (within the
/// protocol crate's 512 entries a reply).
pub const MAX_PAGES: usize = 16;
const PAGE_BYTES: u32 = 8 * 1024;
/// Temporaries looked at per StartSession (the rest wait for the next one).
const MAX_CHECKED: usize = 64;
/// How long the liveness question about one temporary may take.
const CHECK_BOUND: Duration = Duration::from_secs(2);
/// How long discarding a temporary may take after a failure (the clone's own deadline may
/// be spent already: a server that stopped answering).
pub const DISCARD_BOUND: Duration = Duration::from_secs(5);

/// The status of a COMPOUND as a failure, naming `what`.
pub fn check(res: &CompoundRes, what: &str) -> Result<(), Failure> {
    match res.status {
        Status::Ok => Ok(()),
        s => Err(Failure::new(vix_of(s), format!("{what}: {}", s.name()))),
    }
}

/// The export's `.openvaai/` on the server (it holds the marker, so it is there).
pub fn private_dir(conn: &mut Conn, root: &Fh, deadline: Instant) -> Result<Found, Failure> {
    let names = lookup::components(PRIVATE_DIR, "private directory")?;
    let found = lookup::walk(conn, Start::Fh(root), &names, PRIVATE_DIR, deadline)?;
    if found.file_type() != FileType::Directory {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            "the export's .openvaai is not a directory",
        ));
    }
    Ok(found)
}

/// A temporary being built: its name in `.openvaai/`, handle and open stateid.
#[derive(Debug)]
pub struct Temporary {
    pub name: Component,
    pub fh: Fh,
    pub stateid: Stateid,
}

/// A new temporary's name: [`PREFIX`], this process, the time and a counter.
pub fn new_name() -> Component {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Component::new(&format!("{PREFIX}{:x}-{nanos:x}-{n:x}", std::process::id()))
        .expect("a valid name")
}

/// OPEN (create, GUARDED, no delegation, with permission bits `mode`) of a new temporary in
/// `private`; a name another host happened to take is replaced by a new one.
pub fn create(
    conn: &mut Conn,
    private: &Fh,
    mode: Option<u32>,
    deadline: Instant,
) -> Result<Temporary, Failure> {
    let mut tries = 0;
    loop {
        let name = new_name();
        tries += 1;
        match open_create(conn, private, &name, mode, deadline) {
            Err(f) if f.vix == vix::E_FILE_ALREADY_EXISTS && tries < 4 => continue,
            Err(f) => return Err(f),
            Ok((fh, stateid)) => return Ok(Temporary { name, fh, stateid }),
        }
    }
}

/// The owner of the temporaries' opens.
const CLONE_OWNER: &[u8] = b"openvaai clone";

/// OPEN (create, GUARDED, for reading and writing, no delegation) of `name` in `dir`: its
/// handle and open stateid. Also the ALLOCATE probe's (`reserve::probe`).
///
/// Sent once: after an uncertain outcome the OPEN may have created the file, with an open
/// of this client on it. The name is then opened again without create by the same open
/// owner, which the server answers with that same open state: the file is used, closed and
/// removed like any temporary, and no orphan (nor an open that would keep the client id
/// from being destroyed) is left. NFS4ERR_NOENT there: the OPEN did not run, and is sent
/// again.
pub fn open_create(
    conn: &mut Conn,
    dir: &Fh,
    name: &Component,
    mode: Option<u32>,
    deadline: Instant,
) -> Result<(Fh, Stateid), Failure> {
    let open = |conn: &Conn, how: OpenHow| {
        [
            Op::Putfh(dir.clone()),
            Op::Open(OpenArgs {
                seqid: 0,
                share_access: SHARE_ACCESS_BOTH | SHARE_ACCESS_WANT_NO_DELEG,
                share_deny: SHARE_DENY_NONE,
                owner: StateOwner {
                    clientid: conn.clientid(),
                    owner: CLONE_OWNER.to_vec(),
                },
                how,
                claim: OpenClaim::Null(name.clone()),
            }),
            Op::Getfh,
        ]
    };
    let create = OpenHow::Guarded(SetAttrs {
        mode,
        ..SetAttrs::default()
    });
    let what = "creating the temporary";
    for _ in 0..3 {
        let uncertain = match conn.call_once(what, &open(conn, create.clone()), deadline)? {
            Once::Done(res) => {
                check(&res, "creating a temporary in the export's .openvaai")?;
                return opened(res);
            }
            Once::Uncertain(f) => f,
        };
        let res = conn.call(
            "opening a temporary whose creation was uncertain",
            &open(conn, OpenHow::NoCreate),
            deadline,
        )?;
        match res.status {
            Status::Ok => return opened(res),
            Status::Noent if Instant::now() < deadline => continue,
            _ => return Err(uncertain),
        }
    }
    Err(Failure::new(
        vix::E_HOST_CONNECTION_LOST,
        "creating a temporary in the export's .openvaai: no reply three times",
    ))
}

/// The handle and stateid of an OPEN ... GETFH reply.
fn opened(res: CompoundRes) -> Result<(Fh, Stateid), Failure> {
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

/// Ends a finished temporary (published, or given up): CLOSE, then REMOVE of its name if it
/// still has one (`named`), each bounded by `deadline`. Both are tried; the first failure is
/// returned.
///
/// CLOSE comes first because the handle of a file with no name left is stale on some
/// servers (knfsd on ZFS: NFS4ERR_STALE), and an open that cannot be closed keeps the client
/// id from being destroyed. Between the two, another host's [`cleanup`] may take the name
/// (NFS4ERR_NOENT here): harmless, since the temporary is finished — after a LINK it is a
/// second name of the published clone, else garbage.
pub fn discard(
    conn: &mut Conn,
    private: &Fh,
    tmp: &Temporary,
    named: bool,
    deadline: Instant,
) -> Result<(), Failure> {
    let closed = close(conn, &tmp.fh, tmp.stateid, deadline);
    let removed = if named {
        remove(conn, private, &tmp.name, deadline)
    } else {
        Ok(())
    };
    closed.and(removed)
}

/// REMOVE of `name` in `private`; one already gone is fine.
fn remove(
    conn: &mut Conn,
    private: &Fh,
    name: &Component,
    deadline: Instant,
) -> Result<(), Failure> {
    let res = conn.call(
        "REMOVE of a temporary",
        &[Op::Putfh(private.clone()), Op::Remove(name.clone())],
        deadline,
    )?;
    match res.status {
        Status::Noent => Ok(()),
        _ => check(&res, "REMOVE of a temporary"),
    }
}

fn close(conn: &mut Conn, fh: &Fh, stateid: Stateid, deadline: Instant) -> Result<(), Failure> {
    let res = conn.call(
        "CLOSE of the temporary",
        &[
            Op::Putfh(fh.clone()),
            Op::Close(CloseArgs {
                seqid: 0,
                open_stateid: stateid,
            }),
        ],
        deadline,
    )?;
    check(&res, "CLOSE of the temporary")
}

/// What [`cleanup`] did.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Temporaries of crashed hosts, removed.
    pub removed: Vec<String>,
    /// Temporaries a live session writes, kept (with the server's answer).
    pub live: Vec<String>,
    /// Why a temporary (or the listing) could not be dealt with.
    pub failed: Vec<String>,
}

/// The names in `private` that are temporaries, from a bounded READDIR.
fn list(conn: &mut Conn, private: &Fh, deadline: Instant) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let (mut cookie, mut cookieverf) = (0, Verifier::default());
    for _ in 0..MAX_PAGES {
        let res = conn
            .call(
                "listing .openvaai",
                &[
                    Op::Putfh(private.clone()),
                    Op::Readdir(ReaddirArgs {
                        cookie,
                        cookieverf,
                        dircount: PAGE_BYTES / 4,
                        maxcount: PAGE_BYTES,
                        attr_request: Bitmap::default(),
                    }),
                ],
                deadline,
            )
            .map_err(|f| f.to_string())?;
        let Some(OpRes::Readdir(Ok(page))) = res.results.into_iter().last() else {
            return Err(format!("READDIR of .openvaai: {}", res.status.name()));
        };
        for e in &page.entries {
            match std::str::from_utf8(&e.name) {
                Ok(n) if n.starts_with(PREFIX) => names.push(n.to_owned()),
                _ => {}
            }
        }
        if page.eof {
            return Ok(names);
        }
        match page.entries.last() {
            Some(e) => (cookie, cookieverf) = (e.cookie, page.cookieverf),
            None => return Err("READDIR of .openvaai: an empty page before the end".into()),
        }
    }
    Err(format!(
        "more of .openvaai than {MAX_PAGES} pages: the rest is left for the next session"
    ))
}

/// Removes the temporaries in `private` nobody writes to any more (see the module's text).
/// Never fails: what it could not do is in the report.
pub fn cleanup(conn: &mut Conn, private: &Fh, deadline: Instant) -> Cleanup {
    let mut report = Cleanup::default();
    let names = match list(conn, private, deadline) {
        Ok(names) => names,
        Err(why) => {
            report.failed.push(why);
            return report;
        }
    };
    if names.len() > MAX_CHECKED {
        report.failed.push(format!(
            "{} temporaries; {MAX_CHECKED} looked at, the rest at the next session",
            names.len()
        ));
    }
    for name in names.into_iter().take(MAX_CHECKED) {
        if Instant::now() >= deadline {
            report.failed.push(format!("{name}: no time left"));
            break;
        }
        let Ok(c) = Component::new(&name) else {
            continue;
        };
        let bound = deadline.min(Instant::now() + CHECK_BOUND);
        match remove_if_unused(conn, private, &c, bound) {
            Ok(None) => report.removed.push(name),
            Ok(Some(why)) => report.live.push(format!("{name} ({})", why.name())),
            Err(f) => report.failed.push(format!("{name}: {f}")),
        }
    }
    report
}

/// `None` when `name` was removed; else the answer that kept it: a live open holds it
/// (SHARE_DENIED, or DELAY until the bound), or it is gone already (NOENT).
fn remove_if_unused(
    conn: &mut Conn,
    private: &Fh,
    name: &Component,
    deadline: Instant,
) -> Result<Option<Status>, Failure> {
    let res = conn.call(
        "checking a temporary",
        &[
            Op::Putfh(private.clone()),
            Op::Open(OpenArgs {
                seqid: 0,
                share_access: SHARE_ACCESS_READ | SHARE_ACCESS_WANT_NO_DELEG,
                share_deny: SHARE_DENY_WRITE,
                owner: StateOwner {
                    clientid: conn.clientid(),
                    owner: b"openvaai cleanup".to_vec(),
                },
                how: OpenHow::NoCreate,
                claim: OpenClaim::Null(name.clone()),
            }),
            Op::Getfh,
        ],
        deadline,
    )?;
    match res.status {
        Status::Ok => {}
        // Written by a live session; or it went meanwhile (its builder published it).
        s @ (Status::ShareDenied | Status::Delay | Status::Noent) => return Ok(Some(s)),
        s => return Err(Failure::new(vix_of(s), format!("OPEN: {}", s.name()))),
    }
    // Nobody writes it, and no builder opens an existing temporary again: CLOSE, then
    // REMOVE (in that order, as in `discard`).
    let (fh, stateid) = opened(res)?;
    let closed = close(conn, &fh, stateid, deadline);
    let removed = remove(conn, private, name, deadline);
    closed.and(removed).map(|()| None)
}
