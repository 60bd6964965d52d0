//! Confinement: a read-only export, `..` and absolute paths, symlinks out of the export at
//! every component of the source and the destination, and a destination directory swapped
//! for a symlink to another export in the middle of a clone. Each is refused or contained,
//! and the refusals are in the daemon log.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use openvaai_abi::{clone_flag as f, vix};
use openvaai_proto::{CloneArgs, JobState, Status};
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::raw;
use crate::util::*;

/// Export 0 writable, export 1 read-only, on one XFS.
fn with_read_only() -> Option<Fixture> {
    let fs = test_fs(FsKind::Xfs, 1 << 30)?;
    let exports = [
        (fs.path().join("rw"), ""),
        (fs.path().join("ro"), "read_only = true"),
    ];
    Some(fixture(vec![fs], &exports, ""))
}

fn read_only_refusals(fx: &Fixture) {
    let (rw, ro) = (&fx.exports[0], &fx.exports[1]);
    write_layout(&ro.join("t.vmdk"), &[Run::Data(MIB), Run::Hole(MIB)], 103).unwrap();
    write_layout(&rw.join("w.vmdk"), &[Run::Data(MIB)], 104).unwrap();
    let before = checksum(&ro.join("t.vmdk"));
    let id = fx.session(1);
    for flags in [0, f::LAZY, f::GUARDED, f::DRYRUN] {
        let st = fx
            .plugin
            .clone_file(
                id,
                &fx.s(1, "t.vmdk"),
                &fx.s(1, "copy.vmdk"),
                flags,
                None,
                None,
            )
            .unwrap();
        assert_vix(st, vix::E_FILE_READ_ONLY);
    }
    // Into it from another export: refused. Out of it: a read-only export is a fine source.
    let st = fx
        .plugin
        .clone_file(
            id,
            &fx.s(0, "w.vmdk"),
            &fx.s(1, "in.vmdk"),
            f::SRCDATASTORE_VALID,
            Some(&datastore(rw)),
            None,
        )
        .unwrap();
    assert_vix(st, vix::E_FILE_READ_ONLY);
    assert_vix(
        fx.plugin.reserve(id, &fx.s(1, "t.vmdk"), None).unwrap(),
        vix::E_FILE_READ_ONLY,
    );
    assert_vix(
        fx.plugin
            .statx(id, &fx.s(1, "t.vmdk"))
            .unwrap()
            .common
            .status,
        vix::OK,
    );
    assert_eq!(listing(ro), ["t.vmdk"], "nothing created");
    assert_eq!(checksum(&ro.join("t.vmdk")), before);
    let rw_id = fx.session(0);
    let st = fx
        .plugin
        .clone_file(
            rw_id,
            &fx.s(1, "t.vmdk"),
            &fx.s(0, "from-ro.vmdk"),
            f::SRCDATASTORE_VALID,
            Some(&datastore(ro)),
            None,
        )
        .unwrap();
    assert_vix(st, vix::OK);
    assert_same_content(&ro.join("t.vmdk"), &rw.join("from-ro.vmdk"));
}

#[test]
fn a_read_only_export_refuses_clone_and_reserve_and_creates_nothing() {
    let _machine = shared();
    let Some(fx) = with_read_only() else {
        return;
    };
    read_only_refusals(&fx);
}

#[test]

fn read_only_refusals_are_logged() {
    let _machine = shared();
    let Some(fx) = with_read_only() else {
        return;
    };
    read_only_refusals(&fx);
    let log = fx.daemon.log_text();
    assert!(
        log.lines()
            .any(|l| l.to_lowercase().contains("read-only") || l.contains("ReadOnly")),
        "no log line for the refused clones and reserve:\n{log}"
    );
}

#[test]
fn paths_and_symlinks_out_of_the_export_are_refused_at_every_component() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let outside = fs.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("secret.vmdk"), b"secret data").unwrap();
    let (ds0, ds1) = (fs.path().join("ds0"), fs.path().join("ds1"));
    let fx = fixture(vec![fs], &[(ds0.clone(), ""), (ds1.clone(), "")], "");
    std::fs::create_dir_all(ds0.join("d1/d2")).unwrap();
    write_layout(&ds0.join("d1/d2/f.vmdk"), &[Run::Data(MIB)], 105).unwrap();
    write_layout(&ds1.join("x.vmdk"), &[Run::Data(MIB)], 106).unwrap();
    // A symlink out of the export at each level: absolute, relative, to a file, to a
    // sibling export.
    symlink(&outside, ds0.join("l1")).unwrap();
    symlink("../../outside", ds0.join("d1/l2")).unwrap();
    symlink(outside.join("secret.vmdk"), ds0.join("d1/d2/lf")).unwrap();
    symlink("../../../outside/secret.vmdk", ds0.join("d1/d2/lrel")).unwrap();
    symlink(&ds1, ds0.join("lds1")).unwrap();
    let id = fx.session(0);
    let clone = |src: &str, dst: &str, flags| {
        fx.plugin
            .clone_file(id, &fx.s(0, src), &fx.s(0, dst), flags, None, None)
            .unwrap()
    };
    let mut refused = 0;
    for src in [
        "l1/secret.vmdk",
        "l1/sub/../secret.vmdk",
        "d1/l2/secret.vmdk",
        "d1/d2/lf",
        "d1/d2/lrel",
        "lds1/x.vmdk",
    ] {
        let st = clone(src, "stolen.vmdk", 0);
        // `..` is refused by the plugin before the network; the rest by the daemon.
        let want = if src.contains("..") {
            vix::E_INVALID_ARG
        } else {
            refused += 1;
            vix::E_FILE_ACCESS_ERROR
        };
        assert_eq!(name(st), name(want), "source {src}");
    }
    for dst in [
        "l1/planted.vmdk",
        "l1/sub/planted.vmdk",
        "d1/l2/planted.vmdk",
        "d1/l2/sub/planted.vmdk",
        "lds1/planted.vmdk",
    ] {
        for flags in [0, f::GUARDED, f::LAZY] {
            let st = clone("d1/d2/f.vmdk", dst, flags);
            assert_eq!(
                name(st),
                name(vix::E_FILE_ACCESS_ERROR),
                "destination {dst}"
            );
            refused += 1;
        }
    }
    for file in [
        "l1/secret.vmdk",
        "d1/l2/secret.vmdk",
        "d1/d2/lf",
        "d1/d2/lrel",
    ] {
        assert_vix(
            fx.plugin.statx(id, &fx.s(0, file)).unwrap().common.status,
            vix::E_FILE_ACCESS_ERROR,
        );
        assert_vix(
            fx.plugin.reserve(id, &fx.s(0, file), None).unwrap(),
            vix::E_FILE_ACCESS_ERROR,
        );
        refused += 1;
    }
    // A destination whose last component is a symlink out: GUARDED finds it there; a
    // replacing clone replaces the link itself, inside the export, and never writes through.
    assert_vix(
        clone("d1/d2/f.vmdk", "d1/d2/lf", f::GUARDED),
        vix::E_FILE_ALREADY_EXISTS,
    );
    assert_vix(clone("d1/d2/f.vmdk", "d1/d2/lf", 0), vix::OK);
    let lf = std::fs::symlink_metadata(ds0.join("d1/d2/lf")).unwrap();
    assert!(lf.is_file(), "the link was replaced by the clone");
    assert_same_content(&ds0.join("d1/d2/f.vmdk"), &ds0.join("d1/d2/lf"));

    // `..` and absolute paths straight to the daemon (the plugin would not send them).
    let a = fx.daemon.access(0);
    let to = raw::addr(IpAddr::V4(Ipv4Addr::LOCALHOST), &a);
    let e0 = ds0.to_str().unwrap();
    let mut c = raw::authed(to, e0, &a);
    for p in [
        "../outside/secret.vmdk",
        "/etc/passwd",
        "d1/../../outside/secret.vmdk",
        "d1/d2/f.vmdk\0x",
    ] {
        assert_eq!(c.statx(e0, p).unwrap(), Err(Status::InvalidArg), "{p:?}");
        let job = c
            .clone_start(&CloneArgs {
                export: e0.into(),
                src_export: None,
                src: "d1/d2/f.vmdk".into(),
                dst: p.into(),
                flags: 0,
            })
            .unwrap()
            .unwrap();
        let info = loop {
            let i = c.wait(job, u64::MAX, 5000).unwrap().unwrap();
            if i.state != JobState::Running {
                break i;
            }
        };
        assert_eq!(
            (info.state, info.result),
            (JobState::Failed, Status::InvalidArg),
            "{p:?}"
        );
    }

    assert_eq!(listing(&outside), ["secret.vmdk", "sub"]);
    assert_eq!(listing(&outside.join("sub")), Vec::<String>::new());
    assert_eq!(
        std::fs::read(outside.join("secret.vmdk")).unwrap(),
        b"secret data"
    );
    assert_eq!(listing(&ds1), ["x.vmdk"]);
    assert!(!ds0.join("stolen.vmdk").exists());
    assert_no_temporaries(&ds0);
    let log = fx.daemon.log_text();
    let logged = log_lines(&log, &["status=FileAccessError"]).len()
        + log_lines(&log, &["statx failed"]).len();
    assert!(
        logged >= refused,
        "{logged} refusals logged, {refused} made"
    );
}

#[test]
fn a_destination_directory_swapped_for_a_symlink_mid_clone_is_never_followed() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 2, "max_job_bytes_per_second = 134217728") else {
        return;
    };
    let (ds0, ds1) = (fx.exports[0].clone(), fx.exports[1].clone());
    std::fs::create_dir(ds0.join("vm")).unwrap();
    write_layout(&ds0.join("src.vmdk"), &[Run::Data(256 * MIB)], 107).unwrap();
    let id = fx.session(0);
    let swapped = AtomicBool::new(false);
    let (st, _) = clone_with(
        &fx.plugin,
        id,
        &fx.s(0, "src.vmdk"),
        &fx.s(0, "vm/dst.vmdk"),
        0,
        None,
        16 * MIB,
        &mut |_| {
            if !swapped.swap(true, Ordering::SeqCst) {
                std::fs::rename(ds0.join("vm"), ds0.join("vm.old")).unwrap();
                symlink(&ds1, ds0.join("vm")).unwrap();
            }
            true
        },
    );
    assert!(swapped.load(Ordering::SeqCst), "swapped mid-clone");
    println!("clone into a directory swapped for a symlink: {}", name(st));
    assert_eq!(
        listing(&ds1),
        Vec::<String>::new(),
        "nothing in the symlink's target"
    );
    let landed: PathBuf = ds0.join("vm.old/dst.vmdk");
    if st == vix::OK {
        assert_same_content(&ds0.join("src.vmdk"), &landed);
    } else {
        assert!(!landed.exists());
    }
    assert_no_temporaries(&ds0);
}
