//! Answers a server may give: well-formed replies that lie (SEEK going backwards, COPY
//! claiming more than asked, verifiers changing, DELAY or GRACE for ever, a SYMLINK where
//! none can be, names with control characters), and the marker's port.

use openvaai_abi::clone_flag::GUARDED;
use openvaai_abi::vix;
use openvaai_nfs4::ops::opcode;
use openvaai_nfs4::ops::v42::{Content, CopyRes, SeekOk, StableHow};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::Status;

use crate::fs::Fs;
use crate::peer::Fault;
use crate::{assert_bounded, assert_vix, data, serial, Rig, MIB};

#[test]
fn a_well_behaved_peer_gets_a_published_copy_and_keeps_no_state() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(6 * MIB, 1))]);
    let id = rig.session();
    let (st, deltas, took) = rig.clone(id, "src", "dst", GUARDED);
    assert_vix(st, vix::OK);
    assert_bounded(took, "a clone");
    assert_eq!(deltas.iter().sum::<u64>(), 6 * MIB as u64);
    {
        let s = rig.peer.state();
        assert_eq!(s.fs.data("dst"), s.fs.data("src"));
        assert_eq!(s.fs.changes_of(opcode::LINK), 1);
    }
    assert!(rig.temporaries().is_empty(), "{:?}", rig.temporaries());
    rig.end_and_check_nothing_left(id);
}

/// Finding 9: the marker, which whoever can write to the export can edit, may name only
/// 2049 or a privileged port, unless the ESXi host's administrator allowed another.
#[test]
fn a_marker_port_the_esxi_admin_did_not_allow_is_refused_before_any_connection() {
    let _one = serial();
    std::env::remove_var("OPENVAAI_NFS42_PORTS");
    let rig = Rig::with(Fs::new(b"", &[]), false);
    let e = rig.start().unwrap_err();
    assert_vix(e, vix::E_NOT_SUPPORTED);
    assert_eq!(rig.peer.state().connections, 0, "the plugin connected");
    let said = rig.log().join("\n");
    assert!(
        said.contains("OPENVAAI_NFS42_PORTS") && said.contains("privileged"),
        "{said}"
    );
    // Allowed on the ESXi side, the same marker works.
    openvaai_testkit::guest::allow_nfs42_port(rig.peer.addr.port());
    let id = rig.session();
    rig.end_and_check_nothing_left(id);
}

/// Finding 2: SEEK for data answers an offset before the one asked (0), and SEEK for a
/// hole one within the range already copied: the copy must not go round for ever.
#[test]
fn seek_answers_before_the_offset_asked_fail_the_clone_within_its_timeout() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(4 * MIB, 2))]);
    let id = rig.session();
    rig.peer.hook(|op, _| match op {
        Op::Seek(a) => Fault::Answer(OpRes::Seek(Ok(SeekOk {
            eof: false,
            offset: match a.what {
                Content::Data => 0,
                Content::Hole => MIB as u64,
            },
        }))),
        _ => Fault::Run,
    });
    let (st, deltas, took) = rig.clone(id, "src", "dst", GUARDED);
    assert_vix(st, vix::E_FILE_ERROR);
    assert_bounded(took, "a clone against backward SEEKs");
    assert!(
        deltas.iter().sum::<u64>() <= 4 * MIB as u64,
        "progress past the size: {deltas:?}"
    );
    let said = rig.log().join("\n");
    assert!(said.contains("SEEK"), "{said}");
    rig.peer.unhook();
    assert!(rig.peer.state().fs.data("dst").is_none(), "published");
    assert!(rig.temporaries().is_empty(), "{:?}", rig.temporaries());
    rig.end_and_check_nothing_left(id);
}

/// COPY says it copied more than it was asked: nothing is published.
#[test]
fn a_copy_claiming_more_than_asked_publishes_nothing() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(2 * MIB, 3))]);
    let id = rig.session();
    rig.peer.hook(|op, fs| match op {
        Op::Copy(a) if a.count > 0 => {
            let _ = fs;
            Fault::Answer(OpRes::Copy(CopyRes::Ok {
                response: openvaai_nfs4::ops::v42::WriteResponse {
                    callback_id: None,
                    count: a.count * 2,
                    committed: StableHow::Unstable,
                    writeverf: crate::fs::VERF,
                },
                requirements: openvaai_nfs4::ops::v42::CopyRequirements {
                    consecutive: true,
                    synchronous: true,
                },
            }))
        }
        _ => Fault::Run,
    });
    let (st, _, took) = rig.clone(id, "src", "dst", GUARDED);
    assert_vix(st, vix::E_FILE_ERROR);
    assert_bounded(took, "a clone against COPY over-counts");
    rig.peer.unhook();
    assert!(rig.peer.state().fs.data("dst").is_none(), "published");
    assert!(rig.temporaries().is_empty(), "{:?}", rig.temporaries());
    rig.end_and_check_nothing_left(id);
}

/// COMMIT answers another verifier than the COPYs: the server may have lost the data.
#[test]
fn a_verifier_changing_between_copy_and_commit_publishes_nothing() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(2 * MIB, 4))]);
    let id = rig.session();
    rig.peer.hook(|op, _| match op {
        Op::Commit(_) => Fault::Answer(OpRes::Commit(Ok(openvaai_nfs4::basic::Verifier(
            *b"rebooted",
        )))),
        _ => Fault::Run,
    });
    let (st, _, took) = rig.clone(id, "src", "dst", GUARDED);
    assert_vix(st, vix::E_FILE_ERROR);
    assert_bounded(took, "a clone with a changed verifier");
    rig.peer.unhook();
    assert!(rig.peer.state().fs.data("dst").is_none(), "published");
    assert!(rig.temporaries().is_empty(), "{:?}", rig.temporaries());
    rig.end_and_check_nothing_left(id);
}

/// NFS4ERR_DELAY or NFS4ERR_GRACE for ever, to every operation but the session's own: each
/// call gives up within its session timeout, busy.
#[test]
fn delay_and_grace_for_ever_end_within_the_session_timeout() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 5))]);
    let id = rig.session();
    for status in [Status::Delay, Status::Grace] {
        rig.peer.hook(move |op, _| match op {
            Op::Putfh(_) => Fault::Answer(OpRes::Putfh(status)),
            _ => Fault::Run,
        });
        let (st, took) = rig.statx(id, "src");
        assert_vix(st, vix::E_OBJECT_IS_BUSY);
        assert_bounded(took, "STATX against DELAY/GRACE");
        let (st, _, took) = rig.clone(id, "src", "dst", GUARDED);
        assert_vix(st, vix::E_OBJECT_IS_BUSY);
        assert_bounded(took, "CLONEFILE against DELAY/GRACE");
    }
    rig.peer.unhook();
    assert!(rig.peer.state().fs.data("dst").is_none(), "published");
    rig.end_and_check_nothing_left(id);
}

/// Finding 6: GETATTR of a looked-up path answers NFS4ERR_SYMLINK (the failed operation is
/// past the last LOOKUP): a clear error, no panic.
#[test]
fn a_symlink_status_from_the_last_getattr_is_an_error_not_a_panic() {
    let _one = serial();
    let rig = Rig::new(&[("dir/file", data(4096, 6))]);
    let id = rig.session();
    rig.peer.hook(|op, _| match op {
        Op::Getattr(_) => Fault::Answer(OpRes::Getattr(Err(Status::Symlink))),
        _ => Fault::Run,
    });
    let (st, took) = rig.statx(id, "dir/file");
    assert_vix(st, vix::E_FILE_ACCESS_ERROR);
    assert_bounded(took, "STATX");
    rig.peer.unhook();
    let said = rig.log().join("\n");
    assert!(!said.contains("panic"), "{said}");
    assert!(said.contains("symbolic link"), "{said}");
    // The session goes on.
    assert_vix(rig.statx(id, "dir/file").0, vix::OK);
    rig.end_and_check_nothing_left(id);
}

/// Finding 7: a name the server lists (here a crashed host's temporary, removed and named in
/// the log at StartSession) with a newline and an escape sequence forges no log line.
#[test]
fn names_with_control_characters_are_escaped_in_the_host_log() {
    let _one = serial();
    let forged = "nfs42-tmp-1\nopenvaai: all is well\x1b[2J";
    let rig = Rig::new(&[(&format!(".openvaai/{forged}"), Vec::new())]);
    let id = rig.session();
    let lines = rig.log();
    let named: Vec<&String> = lines.iter().filter(|l| l.contains("nfs42-tmp-1")).collect();
    assert!(!named.is_empty(), "the removal is not logged: {lines:?}");
    for l in &lines {
        let body = l.strip_suffix('\n').unwrap_or(l);
        assert!(
            !body.chars().any(|c| c.is_control()),
            "a control character reached the host's log: {l:?}"
        );
    }
    assert!(
        named.iter().any(|l| l.contains("nfs42-tmp-1\\nopenvaai")),
        "{named:?}"
    );
    assert!(rig.temporaries().is_empty(), "{:?}", rig.temporaries());
    rig.end_and_check_nothing_left(id);
}

/// A READDIR of `.openvaai` whose cookies never end (one new entry a page, never eof): the
/// StartSession's listing stops at its page bound, says so, and the session works.
#[test]
fn a_readdir_whose_cookies_never_end_is_cut_at_its_page_bound() {
    use openvaai_nfs4::ops::dir::{DirEntry, ReaddirOk};
    let _one = serial();
    let rig = Rig::new(&[("src", data(4096, 16))]);
    rig.peer.hook(|op, _| match op {
        Op::Readdir(a) => Fault::Answer(OpRes::Readdir(Ok(ReaddirOk {
            cookieverf: openvaai_nfs4::basic::Verifier([7; 8]),
            entries: vec![DirEntry {
                cookie: a.cookie + 1,
                name: format!("entry-{}", a.cookie).into_bytes(),
            }],
            eof: false,
        }))),
        _ => Fault::Run,
    });
    let t = std::time::Instant::now();
    let id = rig.session();
    assert_bounded(t.elapsed(), "StartSession");
    rig.peer.unhook();
    assert_eq!(rig.peer.state().calls_with(opcode::READDIR), 16);
    let said = rig.log().join("\n");
    assert!(said.contains("more of .openvaai than 16 pages"), "{said}");
    assert_vix(rig.statx(id, "src").0, vix::OK);
    rig.end_and_check_nothing_left(id);
}
