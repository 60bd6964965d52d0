//! Every primitive and clone flag through the plugin.

use std::os::unix::fs::MetadataExt;

use openvaai_abi::{alloc, clone_flag as f, vix};
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

#[test]
fn statx_reports_a_thin_file_and_a_lazy_clone_shares_its_blocks() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let runs = [Run::Data(4 * MIB), Run::Hole(8 * MIB), Run::Data(4 * MIB)];
    write_layout(&env.path(0, "thin.vmdk"), &runs, 1).unwrap();

    let sx = env.statx("thin.vmdk");
    assert_vix(sx.common.status, vix::OK);
    assert_eq!(sx.total_bytes, 16 * MIB);
    assert_eq!(sx.alloced_bytes, 8 * MIB);
    assert_eq!(sx.unique_bytes, 8 * MIB);
    assert_eq!(sx.alloc_type, alloc::THIN);

    assert_vix(env.clone_file("thin.vmdk", "lazy.vmdk", f::LAZY), vix::OK);
    assert_same_content(&env.path(0, "thin.vmdk"), &env.path(0, "lazy.vmdk"));
    for name in ["thin.vmdk", "lazy.vmdk"] {
        let sx = env.statx(name);
        assert_vix(sx.common.status, vix::OK);
        assert_eq!(sx.alloced_bytes, 8 * MIB, "{name}");
        assert_eq!(
            sx.unique_bytes, 0,
            "{name}: every block is shared after a lazy clone"
        );
        assert_eq!(sx.alloc_type, alloc::THIN, "{name}");
    }
}

#[test]
fn a_full_clone_is_an_independent_thick_copy() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let runs = [
        Run::Data(3 * MIB),
        Run::Hole(5 * MIB),
        Run::Zero(2 * MIB),
        Run::Data(MIB),
    ];
    write_layout(&env.path(0, "src.vmdk"), &runs, 2).unwrap();

    assert_vix(env.clone_file("src.vmdk", "thick.vmdk", 0), vix::OK);
    assert_same_content(&env.path(0, "src.vmdk"), &env.path(0, "thick.vmdk"));
    let sx = env.statx("thick.vmdk");
    assert_eq!(sx.total_bytes, 11 * MIB);
    assert!(
        sx.alloced_bytes >= 11 * MIB,
        "thick: no holes ({} bytes)",
        sx.alloced_bytes
    );
    assert_eq!(
        sx.unique_bytes, sx.alloced_bytes,
        "no block shared with the source"
    );
    assert_ne!(sx.alloc_type, alloc::THIN);
    let src = env.statx("src.vmdk");
    assert_eq!(
        src.unique_bytes, src.alloced_bytes,
        "the source shares nothing either"
    );
}

#[test]
fn skipzeroes_keeps_holes_and_zero_blocks_out_of_the_clone() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let runs = [
        Run::Data(MIB),
        Run::Zero(4 * MIB),
        Run::Hole(8 * MIB),
        Run::Data(MIB),
    ];
    write_layout(&env.path(0, "src.vmdk"), &runs, 3).unwrap();

    assert_vix(
        env.clone_file("src.vmdk", "thin.vmdk", f::SKIPZEROES),
        vix::OK,
    );
    assert_same_content(&env.path(0, "src.vmdk"), &env.path(0, "thin.vmdk"));
    let sx = env.statx("thin.vmdk");
    assert_eq!(sx.total_bytes, 14 * MIB);
    assert_eq!(
        sx.alloced_bytes,
        2 * MIB,
        "only the data runs are allocated"
    );
    assert_eq!(sx.alloc_type, alloc::THIN);
}

#[test]
fn guarded_refuses_an_existing_destination_and_unguarded_replaces_it() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(2 * MIB)], 4).unwrap();
    write_layout(&env.path(0, "b.vmdk"), &[Run::Data(MIB)], 5).unwrap();
    let before = std::fs::read(env.path(0, "b.vmdk")).unwrap();

    for flags in [f::GUARDED, f::GUARDED | f::LAZY, f::GUARDED | f::DRYRUN] {
        assert_vix(
            env.clone_file("a.vmdk", "b.vmdk", flags),
            vix::E_FILE_ALREADY_EXISTS,
        );
        assert_eq!(
            std::fs::read(env.path(0, "b.vmdk")).unwrap(),
            before,
            "flags {flags}"
        );
    }
    assert_vix(env.clone_file("a.vmdk", "b.vmdk", f::LAZY), vix::OK);
    assert_same_content(&env.path(0, "a.vmdk"), &env.path(0, "b.vmdk"));
    assert_eq!(env.listing(0), ["a.vmdk", "b.vmdk"]);
}

#[test]
fn dryrun_checks_everything_and_creates_nothing() {
    let Some(env) = Env::new(FsKind::Ext4, 1) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 6).unwrap();
    std::fs::create_dir(env.path(0, "dir")).unwrap();

    assert_vix(env.clone_file("a.vmdk", "new.vmdk", f::DRYRUN), vix::OK);
    assert_vix(
        env.clone_file("a.vmdk", "new.vmdk", f::DRYRUN | f::SKIPZEROES),
        vix::OK,
    );
    // ext4 cannot reflink: the dry run says so, as the real clone would.
    assert_vix(
        env.clone_file("a.vmdk", "new.vmdk", f::DRYRUN | f::LAZY),
        vix::E_NOT_SUPPORTED,
    );
    assert_vix(
        env.clone_file("none.vmdk", "new.vmdk", f::DRYRUN),
        vix::E_FILE_NOT_FOUND,
    );
    assert_vix(
        env.clone_file("dir", "new.vmdk", f::DRYRUN),
        vix::E_INCORRECT_FILE_TYPE,
    );
    assert_vix(
        env.clone_file("a.vmdk", "nodir/new.vmdk", f::DRYRUN),
        vix::E_FILE_NOT_FOUND,
    );
    assert_eq!(env.listing(0), ["a.vmdk", "dir"]);
}

#[test]
fn a_lazy_clone_where_the_filesystem_cannot_reflink_is_not_supported() {
    let Some(env) = Env::new(FsKind::Ext4, 1) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 7).unwrap();
    assert_vix(
        env.clone_file("a.vmdk", "b.vmdk", f::LAZY),
        vix::E_NOT_SUPPORTED,
    );
    assert_eq!(env.listing(0), ["a.vmdk"], "never a silent full copy");
    // A full clone still works there.
    assert_vix(env.clone_file("a.vmdk", "b.vmdk", 0), vix::OK);
    assert_same_content(&env.path(0, "a.vmdk"), &env.path(0, "b.vmdk"));
}

#[test]
fn clones_on_btrfs_share_or_copy_as_asked() {
    let Some(env) = Env::new(FsKind::Btrfs, 1) else {
        return;
    };
    write_layout(
        &env.path(0, "a.vmdk"),
        &[Run::Data(4 * MIB), Run::Hole(4 * MIB)],
        8,
    )
    .unwrap();
    assert_vix(env.clone_file("a.vmdk", "lazy.vmdk", f::LAZY), vix::OK);
    assert_vix(
        env.clone_file("a.vmdk", "full.vmdk", f::SKIPZEROES),
        vix::OK,
    );
    for name in ["lazy.vmdk", "full.vmdk"] {
        assert_same_content(&env.path(0, "a.vmdk"), &env.path(0, name));
    }
    let lazy = env.statx("lazy.vmdk");
    let full = env.statx("full.vmdk");
    assert_eq!(lazy.unique_bytes, 0);
    assert_eq!(full.unique_bytes, full.alloced_bytes);
}

#[test]
fn mode_and_owner_follow_the_source() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let src = env.path(0, "a.vmdk");
    write_layout(&src, &[Run::Data(MIB)], 9).unwrap();
    std::os::unix::fs::chown(&src, Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    for (dst, flags) in [("lazy.vmdk", f::LAZY), ("full.vmdk", 0)] {
        assert_vix(env.clone_file("a.vmdk", dst, flags), vix::OK);
        let m = std::fs::metadata(env.path(0, dst)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1234, 5678, 0o640),
            "{dst}"
        );
    }
}

#[test]
fn reserve_makes_a_thin_file_thick_and_keeps_its_data() {
    for kind in [FsKind::Xfs, FsKind::Ext4] {
        let Some(env) = Env::new(kind, 1) else { return };
        let file = env.path(0, "thick-flat.vmdk");
        write_layout(&file, &[Run::Data(MIB), Run::Hole(63 * MIB)], 10).unwrap();
        let before = std::fs::read(&file).unwrap();
        let sx = env.statx("thick-flat.vmdk");
        assert_eq!(sx.alloc_type, alloc::THIN, "{kind:?}");

        let status = env
            .plugin
            .reserve(env.id, &env.s(0, "thick-flat.vmdk"), None)
            .unwrap();
        assert_vix(status, vix::OK);
        assert_eq!(std::fs::read(&file).unwrap(), before, "{kind:?}: data kept");
        let sx = env.statx("thick-flat.vmdk");
        assert_eq!(sx.total_bytes, 64 * MIB);
        assert!(
            sx.alloced_bytes >= 64 * MIB,
            "{kind:?}: {}",
            sx.alloced_bytes
        );
        assert_eq!(sx.alloc_type, alloc::LZT, "{kind:?}: reserved, not written");
    }
}

#[test]
fn reserve_refuses_empty_and_missing_files() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    std::fs::write(env.path(0, "empty.vmdk"), b"").unwrap();
    let r = |name: &str| env.plugin.reserve(env.id, &env.s(0, name), None).unwrap();
    assert_vix(r("empty.vmdk"), vix::E_INVALID_ARG);
    assert_vix(r("missing.vmdk"), vix::E_FILE_NOT_FOUND);
    assert_eq!(
        std::fs::metadata(env.path(0, "empty.vmdk")).unwrap().len(),
        0
    );
}

#[test]
fn support_status_follows_the_export() {
    let Some(env) = Env::new(FsKind::Ext4, 1) else {
        return;
    };
    use openvaai_abi::prim;
    for p in [prim::CLONEFILE, prim::RESVSPACE, prim::STATX] {
        assert_vix(env.plugin.support_status(env.id, p), vix::OK);
    }
    assert_vix(
        env.plugin.support_status(env.id, prim::INVALID),
        vix::E_INVALID_ARG,
    );
    assert_vix(
        env.plugin
            .support_status(env.id.wrapping_add(1), prim::STATX),
        vix::E_INVALID_ARG,
    );
}
