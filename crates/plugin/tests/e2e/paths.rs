//! Paths that must not reach, or not pass, the daemon.

use openvaai_abi::vix;
use openvaai_testkit::{write_layout, FsKind, Run};

use crate::util::*;

#[test]
fn paths_outside_the_mount_point_are_refused_before_any_network() {
    let Some(env) = Env::new(FsKind::Xfs, 2) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 12).unwrap();
    let mount = env.exports[0].to_str().unwrap();
    let p = &env.plugin;
    for bad in [
        "/etc/passwd".to_owned(),
        format!("{mount}/../ds1/x.vmdk"),
        format!("{mount}x/a.vmdk"),
        format!("{mount}/"),
        "relative/a.vmdk".to_owned(),
        env.s(1, "a.vmdk"),
    ] {
        assert_vix(
            p.statx(env.id, &bad).unwrap().common.status,
            vix::E_INVALID_ARG,
        );
        assert_vix(p.reserve(env.id, &bad, None).unwrap(), vix::E_INVALID_ARG);
        let st = p
            .clone_file(env.id, &env.s(0, "a.vmdk"), &bad, 0, None, None)
            .unwrap();
        assert_vix(st, vix::E_INVALID_ARG);
        let st = p
            .clone_file(env.id, &bad, &env.s(0, "b.vmdk"), 0, None, None)
            .unwrap();
        assert_vix(st, vix::E_INVALID_ARG);
    }
    assert_eq!(env.listing(0), ["a.vmdk"]);
    assert!(
        !env.daemon.log_text().contains("/etc/passwd"),
        "refused before the network"
    );
}

#[test]
fn symlinks_that_leave_the_export_are_refused_by_the_daemon() {
    let Some(env) = Env::new(FsKind::Xfs, 2) else {
        return;
    };
    write_layout(&env.path(1, "secret.vmdk"), &[Run::Data(MIB)], 13).unwrap();
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 14).unwrap();
    std::os::unix::fs::symlink(&env.exports[1], env.path(0, "out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", env.path(0, "passwd.vmdk")).unwrap();
    std::os::unix::fs::symlink("a.vmdk", env.path(0, "inside.vmdk")).unwrap();

    let st = |src: &str, dst: &str| env.clone_file(src, dst, 0);
    assert_vix(
        st("out/secret.vmdk", "stolen.vmdk"),
        vix::E_FILE_ACCESS_ERROR,
    );
    assert_vix(st("passwd.vmdk", "stolen.vmdk"), vix::E_FILE_ACCESS_ERROR);
    assert_vix(st("a.vmdk", "out/planted.vmdk"), vix::E_FILE_ACCESS_ERROR);
    let sx = env.statx("passwd.vmdk");
    assert_vix(sx.common.status, vix::E_FILE_ACCESS_ERROR);
    assert!(!env.path(1, "planted.vmdk").exists());
    assert!(!env.path(0, "stolen.vmdk").exists());
    // A symlink that stays inside the export is fine.
    assert_vix(st("inside.vmdk", "copy.vmdk"), vix::OK);
    // The daemon's own directory is out of bounds.
    assert_vix(
        st(".openvaai/access", "access.copy"),
        vix::E_FILE_ACCESS_ERROR,
    );
    assert_vix(st("a.vmdk", ".openvaai/planted"), vix::E_FILE_ACCESS_ERROR);
}
