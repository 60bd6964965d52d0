//! Clones whose source is on another datastore (SRCDATASTORE_VALID).

use openvaai_abi::{clone_flag as f, vix};
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

fn cross(env: &Env, src_export: usize, dst_export: usize, flags: i32) -> u64 {
    let id = env.session(dst_export);
    let src_ds = datastore(&env.exports[src_export]);
    let st = env
        .plugin
        .clone_file(
            id,
            &env.s(src_export, "src.vmdk"),
            &env.s(dst_export, &format!("from{src_export}-{flags}.vmdk")),
            flags | f::SRCDATASTORE_VALID,
            Some(&src_ds),
            None,
        )
        .unwrap();
    env.plugin.end_session(id);
    st
}

#[test]
fn lazy_clones_across_two_exports_of_one_filesystem_share_blocks() {
    let Some(env) = Env::new(FsKind::Xfs, 2) else {
        return;
    };
    write_layout(
        &env.path(0, "src.vmdk"),
        &[Run::Data(4 * MIB), Run::Hole(MIB)],
        40,
    )
    .unwrap();
    assert_vix(cross(&env, 0, 1, f::LAZY), vix::OK);
    let dst = env.path(1, &format!("from0-{}.vmdk", f::LAZY));
    assert_same_content(&env.path(0, "src.vmdk"), &dst);
    let id = env.session(1);
    let sx = env.plugin.statx(id, dst.to_str().unwrap()).unwrap();
    assert_eq!(sx.unique_bytes, 0);
    assert_vix(cross(&env, 0, 1, f::SKIPZEROES), vix::OK);
}

#[test]
fn across_filesystems_lazy_is_not_supported_and_full_copies() {
    let Some(env) = Env::build(&[(FsKind::Xfs, 1), (FsKind::Ext4, 1)], "", None) else {
        return;
    };
    write_layout(&env.path(0, "src.vmdk"), &[Run::Data(3 * MIB)], 41).unwrap();
    assert_vix(cross(&env, 0, 1, f::LAZY), vix::E_NOT_SUPPORTED);
    assert_eq!(env.listing(1), Vec::<String>::new());
    assert_vix(cross(&env, 0, 1, 0), vix::OK);
    assert_same_content(&env.path(0, "src.vmdk"), &env.path(1, "from0-0.vmdk"));
}

#[test]
fn a_source_datastore_without_openvaaid_is_not_supported() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("src.vmdk"), b"data").unwrap();
    let st = env
        .plugin
        .clone_file(
            env.id,
            foreign.path().join("src.vmdk").to_str().unwrap(),
            &env.s(0, "dst.vmdk"),
            f::SRCDATASTORE_VALID,
            Some(&datastore(foreign.path())),
            None,
        )
        .unwrap();
    assert_vix(st, vix::E_NOT_SUPPORTED);
    // And SRCDATASTORE_VALID without srcDataStoreInfo is an invalid argument.
    let st = env
        .plugin
        .clone_file(
            env.id,
            &env.s(0, "x"),
            &env.s(0, "y"),
            f::SRCDATASTORE_VALID,
            None,
            None,
        )
        .unwrap();
    assert_vix(st, vix::E_INVALID_ARG);
}
