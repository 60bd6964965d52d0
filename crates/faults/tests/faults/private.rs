//! The private directory `.openvaai` against whoever can write an export's root (every ESXi
//! host): swapped for a symlink while daemons start, replaced by a FIFO or a directory of
//! someone else's, reached through a nested export or a hard link; and one export, one
//! daemon.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use openvaai_abi::vix;
use openvaai_testkit::{write_layout, Daemon, FsKind, Run};

use crate::util::*;

/// Every file below `dir`, recursively, not following symlinks.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn a_symlink_swapped_in_while_daemons_start_gets_nothing_written_through_it() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let export = fs.path().join("ds");
    let outside = fs.path().join("outside");
    std::fs::create_dir_all(export.join(".openvaai")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // A foreign file of the name the daemon writes, where the symlink points.
    std::fs::write(outside.join("access"), b"not the daemon's").unwrap();
    std::os::unix::fs::symlink(&outside, export.join(".openvaai.swap")).unwrap();
    let stop = AtomicBool::new(false);
    let swaps = AtomicUsize::new(0);
    let (mut started, mut refused) = (0, 0);
    let mut other = Vec::new();
    /// Stops the swapper when dropped, also when an assertion below panics.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    std::thread::scope(|s| {
        let _stop = Stop(&stop);
        // renameat2(RENAME_EXCHANGE): `.openvaai` is the real directory and the symlink in
        // turn, as fast as the kernel goes.
        s.spawn(|| {
            let dir = std::fs::File::open(&export).unwrap();
            while !stop.load(Ordering::SeqCst) {
                rustix::fs::renameat_with(
                    &dir,
                    ".openvaai",
                    &dir,
                    ".openvaai.swap",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        });
        for _ in 0..30 {
            match Daemon::builder().export(&export).try_start() {
                Ok(mut d) => {
                    started += 1;
                    d.terminate(Duration::from_secs(10));
                }
                Err(e) => {
                    if e.contains(".openvaai")
                        && (e.contains("is a symlink") || e.contains("swapped in"))
                    {
                        refused += 1;
                    } else {
                        other.push(e);
                    }
                }
            }
        }
    });
    println!(
        "symlink swap: {} swaps, {started} daemons started, {refused} refused",
        swaps.into_inner()
    );
    assert!(
        refused > 0,
        "the race never showed the symlink: the test proved nothing"
    );
    assert_eq!(
        files_below(&outside),
        ["access"],
        "something was written through the symlink"
    );
    assert_eq!(
        std::fs::read(outside.join("access")).unwrap(),
        b"not the daemon's"
    );
    // Whichever name the real directory has now, it holds the last access file and the
    // lock, and nothing else (no temporaries).
    let real = if export.join(".openvaai").is_symlink() {
        export.join(".openvaai.swap")
    } else {
        export.join(".openvaai")
    };
    if started > 0 {
        assert_eq!(files_below(&real), ["access", "lock"]);
    }
}

#[test]
fn a_fifo_or_a_foreign_directory_where_openvaai_should_be_is_refused_by_name() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let fifo = fs.path().join("fifo");
    std::fs::create_dir_all(&fifo).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fifo.join(".openvaai"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
    let e = Daemon::builder().export(&fifo).try_start().err().unwrap();
    assert!(e.contains("is not a directory"), "{e}");
    let foreign = fs.path().join("foreign");
    std::fs::create_dir_all(foreign.join(".openvaai")).unwrap();
    std::os::unix::fs::chown(foreign.join(".openvaai"), Some(4321), Some(4321)).unwrap();
    std::fs::set_permissions(
        foreign.join(".openvaai"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let e = Daemon::builder()
        .export(&foreign)
        .try_start()
        .err()
        .unwrap();
    assert!(e.contains("owned by uid 4321"), "{e}");
    // Nothing was written into either.
    assert!(std::fs::read_dir(foreign.join(".openvaai"))
        .unwrap()
        .next()
        .is_none());
    let md = std::fs::metadata(foreign.join(".openvaai")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (4321, 0o777));
}

#[test]
fn nested_exports_are_refused_and_no_export_reaches_a_private_directory() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let outer = fs.path().join("n");
    let inner = outer.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let e = Daemon::builder()
        .export(&outer)
        .export(&inner)
        .try_start()
        .err()
        .unwrap();
    assert!(
        e.contains(&format!(
            "export {} lies inside export {}",
            inner.display(),
            outer.display()
        )),
        "{e}"
    );
    // The same nesting through a symlinked path: found on disk.
    std::os::unix::fs::symlink(&outer, fs.path().join("via")).unwrap();
    let e = Daemon::builder()
        .export(&outer)
        .export(&fs.path().join("via/inner"))
        .try_start()
        .err()
        .unwrap();
    assert!(e.contains("lies inside export"), "{e}");
    assert!(
        !inner.join(".openvaai").exists(),
        "the refused start wrote nothing"
    );

    // Two sibling exports: a client of one cannot reach the other's private files by any
    // name — a path through a stray `.openvaai` directory, or a hard link made on the NAS.
    let a = fs.path().join("a");
    let b = fs.path().join("b");
    std::fs::create_dir_all(a.join("old/.openvaai")).unwrap();
    std::fs::write(a.join("old/.openvaai/access"), b"old").unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let d = Daemon::builder().export(&a).export(&b).start();
    std::fs::hard_link(b.join(".openvaai/access"), a.join("b-access")).unwrap();
    let plugin = load_plugin();
    let id = plugin
        .start_session(&datastore(&a), Some(TIMEOUT_MS))
        .unwrap();
    let p = |n: &str| a.join(n).to_str().unwrap().to_owned();
    for name in ["old/.openvaai/access", "b-access"] {
        let st = plugin.statx(id, &p(name)).unwrap().common.status;
        assert_vix(st, vix::E_FILE_ACCESS_ERROR);
        let (st, _) = clone_with(&plugin, id, &p(name), &p("copy"), 0, None, MIB, &mut |_| {
            true
        });
        assert_vix(st, vix::E_FILE_ACCESS_ERROR);
    }
    assert!(!a.join("copy").exists());
    plugin.end_session(id);
    drop(d);
}

#[test]
fn a_second_daemon_on_an_export_is_refused_naming_the_first() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let export = fs.path().join("ds");
    std::fs::create_dir_all(&export).unwrap();
    write_layout(&export.join("a.vmdk"), &[Run::Data(MIB)], 8).unwrap();
    let first = Daemon::builder().export(&export).start();
    let access = std::fs::read(export.join(".openvaai/access")).unwrap();
    let e = Daemon::builder().export(&export).try_start().err().unwrap();
    assert!(
        e.contains("already served by another openvaaid")
            && e.contains(&format!("pid {}", first.pid()))
            && e.contains(&format!("127.0.0.1:{}", first.port())),
        "{e}"
    );
    // The first is untouched: same access file, still serving.
    assert_eq!(
        std::fs::read(export.join(".openvaai/access")).unwrap(),
        access
    );
    let plugin = load_plugin();
    let id = plugin
        .start_session(&datastore(&export), Some(TIMEOUT_MS))
        .unwrap();
    let st = plugin
        .statx(id, export.join("a.vmdk").to_str().unwrap())
        .unwrap()
        .common
        .status;
    assert_vix(st, vix::OK);
    plugin.end_session(id);
}

#[test]
fn a_start_that_cannot_listen_writes_no_certificate() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let export = fs.path().join("ds");
    std::fs::create_dir_all(&export).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = Daemon::builder()
        .export(&export)
        .listen(taken.local_addr().unwrap())
        .try_start()
        .err()
        .unwrap();
    assert!(
        e.contains("Address already in use") || e.contains("address in use"),
        "{e}"
    );
    assert!(!export.join(".openvaai/access").exists(), "no access file");
    // The state directory is the daemon's temp dir: the log says no certificate was made.
    assert!(!e.contains("made a new self-signed certificate"), "{e}");
}
