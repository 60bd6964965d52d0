//! Another filesystem mounted inside an export (a bind mount here): clone sources and
//! destinations, reserves and statx through it are refused, with a message that names the
//! mount, and nothing is read or written on the other side.

use std::path::{Path, PathBuf};
use std::process::Command;

use openvaai_abi::{clone_flag, vix};
use openvaai_testkit::{write_layout, FsKind, Run};

use crate::util::*;

/// `mount --bind FROM TO`, undone on drop.
struct Bind(PathBuf);

impl Bind {
    fn new(from: &Path, to: &Path) -> Bind {
        let st = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(to)
            .status()
            .expect("running mount");
        assert!(
            st.success(),
            "mount --bind {} {}",
            from.display(),
            to.display()
        );
        Bind(to.to_owned())
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_mount_inside_an_export_is_not_crossed() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let elsewhere = fs.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write_layout(&elsewhere.join("other.vmdk"), &[Run::Data(MIB)], 4).unwrap();
    let root = fs.path().join("ds0");
    let fx = fixture(vec![fs], &[(root.clone(), "")], "");
    write_layout(&root.join("a.vmdk"), &[Run::Data(MIB)], 5).unwrap();
    std::fs::create_dir(root.join("mnt")).unwrap();
    let bind = Bind::new(&elsewhere, &root.join("mnt"));
    let before = checksum(&elsewhere.join("other.vmdk"));
    let id = fx.session(0);
    let statx = fx.plugin.statx(id, &fx.s(0, "mnt/other.vmdk")).unwrap();
    assert_vix(statx.common.status, vix::E_FILE_ACCESS_ERROR);
    for (src, dst, flags) in [
        ("mnt/other.vmdk", "copy.vmdk", 0),
        ("mnt/other.vmdk", "lazy.vmdk", clone_flag::LAZY),
        ("a.vmdk", "mnt/into.vmdk", 0),
        ("a.vmdk", "mnt/other.vmdk", 0),
    ] {
        let (st, _) = clone_with(
            &fx.plugin,
            id,
            &fx.s(0, src),
            &fx.s(0, dst),
            flags,
            None,
            MIB,
            &mut |_| true,
        );
        assert_vix(st, vix::E_FILE_ACCESS_ERROR);
    }
    let st = fx
        .plugin
        .reserve(id, &fx.s(0, "mnt/other.vmdk"), None)
        .unwrap();
    assert_vix(st, vix::E_FILE_ACCESS_ERROR);
    fx.plugin.end_session(id);
    drop(bind);
    // Nothing changed on either side.
    assert_eq!(listing(&root), ["a.vmdk", "mnt"]);
    assert!(listing(&root.join("mnt")).is_empty());
    assert_eq!(listing(&elsewhere), ["other.vmdk"]);
    assert_eq!(checksum(&elsewhere.join("other.vmdk")), before);
    assert!(
        fx.daemon
            .log_text()
            .contains("crosses into another mounted filesystem"),
        "the daemon's log names the mount crossing"
    );
}
