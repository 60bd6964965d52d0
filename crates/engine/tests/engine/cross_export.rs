//! Clones between exports: same filesystem (LAZY works) and different filesystems.

use openvaai_engine::{CancelToken, ErrorKind, Export};

use crate::util::*;

mod lazy_between_two_exports_on_one_filesystem {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let other = env.second_export("other");
        write_layout(
            &other.root().join("src"),
            &[Run::Data(2 * MIB), Run::Hole(MIB)],
            3,
        )
        .unwrap();
        let c = CancelToken::new();
        let saved = env.zfs().then(|| env.bclone_saved());
        let lazy = env.export.clone_file(
            &other,
            "src",
            "dst",
            flags(true, true, false, false),
            &mut |_| {},
            &c,
        );
        if env.kind().reflinks() {
            lazy.unwrap();
            match saved {
                // Two directories of one dataset: one device, so a block clone.
                Some(saved) => assert!(env.bclone_saved() >= saved + 2 * MIB),
                None => {
                    let (total, shared, _) = extents(&env.p("dst"));
                    assert!(total > 0 && shared == total);
                }
            }
            assert_same_content(&other.root().join("src"), &env.p("dst"));
        } else {
            assert_eq!(lazy.unwrap_err().kind(), ErrorKind::NotSupported);
            assert!(!env.p("dst").exists());
            if let Some(saved) = saved {
                assert_eq!(env.bclone_saved(), saved, "block cloning is off");
            }
        }
        let before_full = env.zfs().then(|| env.bclone_saved());
        env.export
            .clone_file(
                &other,
                "src",
                "full",
                flags(true, false, false, false),
                &mut |_| {},
                &c,
            )
            .unwrap();
        assert_same_content(&other.root().join("src"), &env.p("full"));
        match before_full {
            Some(saved) => assert_eq!(env.bclone_saved(), saved, "a full copy shares blocks"),
            None => assert_eq!(extents(&env.p("full")).1, 0),
        }
    });
}

/// Each ZFS dataset is its own device: LAZY between two of one pool is NotSupported
/// (docs/engine.md), although OpenZFS could block-clone there; a full copy works.
#[test]
#[ignore = "needs ZFS: runs in the ZFS guest (cargo test -p openvaai-plugin --test zfs)"]
fn zfs_lazy_between_two_datasets_of_one_pool_is_not_supported() {
    let Some(env) = env(FsKind::Zfs, SMALL) else {
        return;
    };
    let pool = env.fs.zfs_pool().unwrap();
    let root = env.fs.path().join("second");
    let made = std::process::Command::new("zfs")
        .args(["create", "-o"])
        .arg(format!("mountpoint={}", root.display()))
        .arg(format!("{pool}/second"))
        .status()
        .unwrap();
    assert!(made.success(), "zfs create {pool}/second");
    let other = Export::open(&root).unwrap();
    assert_ne!(
        other.capabilities().same_fs_id,
        env.export.capabilities().same_fs_id
    );
    write_layout(&root.join("src"), &[Run::Data(MIB)], 4).unwrap();
    let saved = env.bclone_saved();
    let c = CancelToken::new();
    for dry_run in [false, true] {
        let e = env.export.clone_file(
            &other,
            "src",
            "lazy",
            flags(false, true, dry_run, false),
            &mut |_| {},
            &c,
        );
        assert_eq!(e.unwrap_err().kind(), ErrorKind::NotSupported);
    }
    env.export
        .clone_file(
            &other,
            "src",
            "full",
            flags(true, false, false, false),
            &mut |_| {},
            &c,
        )
        .unwrap();
    assert_same_content(&root.join("src"), &env.p("full"));
    assert!(!env.p("lazy").exists());
    assert_eq!(env.bclone_saved(), saved);
}

/// Across filesystems LAZY is NotSupported (also in a dry run); a full copy works.
#[test]
fn lazy_across_filesystems_is_not_supported_but_full_copy_works() {
    let Some(a) = env(FsKind::Xfs, SMALL) else {
        return;
    };
    let Some(b) = env(FsKind::Xfs, SMALL) else {
        return;
    };
    let Some(c) = env(FsKind::Btrfs, SMALL) else {
        return;
    };
    write_layout(
        &a.p("src"),
        &[Run::Data(3 * MIB + 1), Run::Hole(2 * MIB), Run::Zero(MIB)],
        8,
    )
    .unwrap();
    let cancel = CancelToken::new();
    for dst in [&b.export, &c.export] {
        for dry_run in [false, true] {
            let e = dst.clone_file(
                &a.export,
                "src",
                "lazy",
                flags(false, true, dry_run, false),
                &mut |_| {},
                &cancel,
            );
            assert_eq!(e.unwrap_err().kind(), ErrorKind::NotSupported);
        }
        for skip in [false, true] {
            let name = format!("full-{skip}");
            dst.clone_file(
                &a.export,
                "src",
                &name,
                flags(true, false, false, skip),
                &mut |_| {},
                &cancel,
            )
            .unwrap();
            assert_same_content(&a.p("src"), &dst.root().join(&name));
        }
        assert!(!dst.root().join("lazy").exists());
    }
    assert_ne!(
        a.export.capabilities().same_fs_id,
        b.export.capabilities().same_fs_id
    );
    let _: &Export = &c.export;
}
