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
            let (total, shared, _) = extents(&env.p("dst"));
            assert!(total > 0 && shared == total);
            assert_same_content(&other.root().join("src"), &env.p("dst"));
        } else {
            assert_eq!(lazy.unwrap_err().kind(), ErrorKind::NotSupported);
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
        assert_same_content(&other.root().join("src"), &env.p("full"));
        assert_eq!(extents(&env.p("full")).1, 0);
    });
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
