//! GUARDED vs replace, atomicity, races, DRYRUN, ownership, cancellation.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::{Arc, Barrier};

use openvaai_engine::{CancelToken, ErrorKind, Export};

use crate::util::*;

mod guarded_refuses_an_existing_destination {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(100 * KIB)], 1).unwrap();
        fs::write(env.p("dst"), b"old").unwrap();
        for lazy in [false, true] {
            for dry_run in [false, true] {
                let e = env
                    .clone("src", "dst", flags(true, lazy, dry_run, false))
                    .unwrap_err();
                assert_eq!(
                    e.kind(),
                    ErrorKind::AlreadyExists,
                    "lazy {lazy} dry {dry_run}: {e}"
                );
            }
        }
        // A dangling symlink counts as existing too.
        std::os::unix::fs::symlink("nowhere", env.p("dangling")).unwrap();
        let e = env
            .clone("src", "dangling", flags(true, false, false, false))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(env.p("dst")).unwrap(), b"old");
        assert_eq!(names(env.export.root()), vec!["dangling", "dst", "src"]);
    });
}

mod overwrite_replaces_atomically {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(3 * MIB + 3)], 7).unwrap();
        fs::write(env.p("dst"), b"the old contents").unwrap();
        let mut old = fs::File::open(env.p("dst")).unwrap();
        let lazy = env.kind().reflinks();
        env.clone("src", "dst", flags(false, lazy, false, false))
            .unwrap();
        assert_same_content(&env.p("src"), &env.p("dst"));
        // The open descriptor still reads the old inode: the name was swapped, not rewritten.
        let mut s = String::new();
        old.read_to_string(&mut s).unwrap();
        assert_eq!(s, "the old contents");
        assert_eq!(names(env.export.root()), vec!["dst", "src"]);
        // A directory in the way is the wrong file type.
        fs::create_dir(env.p("adir")).unwrap();
        let e = env
            .clone("src", "adir", flags(false, false, false, false))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::IncorrectFileType);
    });
}

mod guarded_race_has_exactly_one_winner {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(4 * MIB)], 9).unwrap();
        for round in 0..4 {
            let dst = format!("dst{round}");
            let barrier = Arc::new(Barrier::new(2));
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..2)
                    .map(|_| {
                        let barrier = barrier.clone();
                        let dst = dst.clone();
                        s.spawn(move || {
                            barrier.wait();
                            env.clone("src", &dst, flags(true, false, false, false))
                                .map_err(|e| e.kind())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let wins = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "{results:?}");
            assert!(
                results.contains(&Err(ErrorKind::AlreadyExists)),
                "{results:?}"
            );
            assert_same_content(&env.p("src"), &env.p(&dst));
        }
        assert!(names(env.export.root())
            .iter()
            .all(|n| !n.starts_with(".openvaai-tmp")));
    });
}

mod dry_run_creates_nothing_and_reports_the_same_errors {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(MIB), Run::Hole(MIB)], 1).unwrap();
        fs::create_dir(env.p("sub")).unwrap();
        let before = tree(env.export.root());
        for guarded in [false, true] {
            for lazy in [false, true] {
                for skip in [false, true] {
                    let dry = env.clone("src", "sub/new", flags(guarded, lazy, true, skip));
                    if lazy && !env.kind().reflinks() {
                        assert_eq!(dry.unwrap_err().kind(), ErrorKind::NotSupported);
                    } else {
                        let out = dry.unwrap();
                        assert_eq!((out.bytes, out.copied), (2 * MIB, 0));
                    }
                }
            }
        }
        let cases: [(&str, &str, ErrorKind); 5] = [
            ("missing", "x", ErrorKind::NotFound),
            ("src", "nodir/x", ErrorKind::NotFound),
            ("sub", "x", ErrorKind::IncorrectFileType),
            ("src", "src/x", ErrorKind::IncorrectFileType),
            ("src", "sub", ErrorKind::IncorrectFileType),
        ];
        for (src, dst, kind) in cases {
            let real = env
                .clone(src, dst, flags(false, false, false, false))
                .unwrap_err()
                .kind();
            let dry = env
                .clone(src, dst, flags(false, false, true, false))
                .unwrap_err()
                .kind();
            assert_eq!((real, dry), (kind, kind), "{src} -> {dst}");
        }
        assert_eq!(tree(env.export.root()), before);
    });
}

mod mode_uid_gid_follow_the_source {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(200 * KIB)], 5).unwrap();
        std::os::unix::fs::chown(env.p("src"), Some(1234), Some(5678)).unwrap();
        fs::set_permissions(env.p("src"), fs::Permissions::from_mode(0o2640)).unwrap();
        let mut modes = vec![(false, false), (false, true)];
        if env.kind().reflinks() {
            modes.push((true, false));
        }
        for (lazy, skip) in modes {
            let dst = format!("dst-{lazy}-{skip}");
            env.clone("src", &dst, flags(true, lazy, false, skip))
                .unwrap();
            let m = fs::metadata(env.p(&dst)).unwrap();
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o7777),
                (1234, 5678, 0o2640),
                "{dst}"
            );
        }
    });
}

mod cancel_mid_copy_leaves_nothing {
    use super::*;
    per_fs!(1 << 30, |env: &Env| {
        let runs = [
            Run::Data(96 * MIB),
            Run::Hole(200 * MIB),
            Run::Data(96 * MIB),
            Run::Zero(32 * MIB),
        ];
        write_layout(&env.p("src"), &runs, 11).unwrap();
        let before = tree(env.export.root());
        for (lazy, skip) in [(false, false), (false, true)] {
            for guarded in [false, true] {
                let cancel = CancelToken::new();
                let mut calls = 0;
                let mut cb = |_| {
                    calls += 1;
                    cancel.cancel();
                };
                let e = env
                    .export
                    .clone_file(
                        &env.export,
                        "src",
                        "dst",
                        flags(guarded, lazy, false, skip),
                        &mut cb,
                        &cancel,
                    )
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
                assert_eq!(calls, 1, "stopped right after the first report");
                assert_eq!(tree(env.export.root()), before);
            }
        }
        // A token that fired before the start stops a lazy clone too.
        let cancel = CancelToken::new();
        cancel.cancel();
        let e = env.export.clone_file(
            &env.export,
            "src",
            "dst",
            flags(false, true, false, false),
            &mut |_| {},
            &cancel,
        );
        assert_eq!(e.unwrap_err().kind(), ErrorKind::Cancelled);
        assert_eq!(tree(env.export.root()), before);
    });
}

/// The destination directory is opened once: swapping it for a symlink mid-clone does not
/// redirect the publish.
#[test]
fn destination_directory_swapped_for_a_symlink_mid_clone_is_not_followed() {
    let Some(env) = env(FsKind::Xfs, SMALL) else {
        return;
    };
    write_layout(&env.p("src"), &[Run::Data(40 * MIB)], 2).unwrap();
    fs::create_dir(env.p("d")).unwrap();
    fs::create_dir(env.p("elsewhere")).unwrap();
    let mut swapped = false;
    let mut cb = |_| {
        if !swapped {
            fs::rename(env.p("d"), env.p("d-moved")).unwrap();
            std::os::unix::fs::symlink("elsewhere", env.p("d")).unwrap();
            swapped = true;
        }
    };
    env.export
        .clone_file(
            &env.export,
            "src",
            "d/dst",
            flags(true, false, false, false),
            &mut cb,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(swapped);
    assert_same_content(&env.p("src"), &env.p("d-moved/dst"));
    assert!(names(&env.p("elsewhere")).is_empty());
}

/// Cloning into a read-only export fails with ReadOnly, and its capabilities say so.
#[test]
fn read_only_export_refuses_clones() {
    let Some(env) = env(FsKind::Xfs, SMALL) else {
        return;
    };
    write_layout(&env.p("src"), &[Run::Data(MIB)], 2).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(env.fs.path())
        .status()
        .unwrap();
    assert!(status.success());
    let ro = Export::open(env.export.root()).unwrap();
    let caps = ro.capabilities();
    assert!(!caps.reflink && !caps.fallocate, "{caps:?}");
    assert_eq!(caps.fs_type, "xfs");
    for dry_run in [false, true] {
        let e = ro.clone_file(
            &ro,
            "src",
            "dst",
            flags(false, false, dry_run, false),
            &mut |_| {},
            &CancelToken::new(),
        );
        assert_eq!(e.unwrap_err().kind(), ErrorKind::ReadOnly);
    }
    assert_eq!(
        ro.reserve("src", &mut |_| {}, &CancelToken::new())
            .unwrap_err()
            .kind(),
        ErrorKind::ReadOnly
    );
    assert!(ro.statx("src").is_ok());
}
