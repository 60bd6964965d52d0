//! The C host (a disklib stand-in written in C) against a real daemon.

use std::collections::HashMap;
use std::process::Command;

use openvaai_abi::{alloc, vix};
use openvaai_testkit::{write_layout, Daemon, FsKind, Run, TestFs};

use crate::util::MIB;

#[test]
fn the_c_host_drives_every_primitive_through_the_plugin() {
    let Some(fs) = TestFs::new(FsKind::Xfs, 1 << 30).unwrap() else {
        return;
    };
    let export = fs.path().join("ds");
    std::fs::create_dir(&export).unwrap();
    write_layout(
        &export.join("disk-flat.vmdk"),
        &[Run::Data(6 * MIB), Run::Hole(2 * MIB)],
        50,
    )
    .unwrap();
    let daemon = Daemon::serve(&export);

    let dir = tempfile::tempdir().unwrap();
    let host = crate::c_host_build(dir.path());
    let e = export.to_str().unwrap();
    let out = Command::new(host)
        .args([
            "e2e",
            openvaai_testkit::plugin_so().to_str().unwrap(),
            e,
            "127.0.0.1",
            e,
        ])
        .arg("disk-flat.vmdk")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", daemon.log_text());
    let kv: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    let num = |k: &str| -> i64 {
        kv.get(k)
            .unwrap_or_else(|| panic!("no {k} in:\n{text}"))
            .parse()
            .unwrap()
    };
    let ok = vix::OK as i64;
    for k in [
        "init",
        "start",
        "support.clone",
        "support.resv",
        "support.statx",
    ] {
        assert_eq!(num(k), ok, "{k}:\n{text}");
    }
    assert_eq!(num("session_nonzero"), 1);
    assert_eq!(num("statx.status"), ok);
    assert_eq!(num("statx.total"), 8 * MIB as i64);
    assert_eq!(num("statx.alloced"), 6 * MIB as i64);
    assert_eq!(num("statx.type"), alloc::THIN as i64);
    for clone in ["lazy", "full"] {
        assert_eq!(num(&format!("{clone}.status")), ok, "{clone}:\n{text}");
        assert_eq!(
            num(&format!("{clone}.progress")),
            8 * MIB as i64,
            "{clone}:\n{text}"
        );
        assert!(num(&format!("{clone}.callbacks")) >= 1);
    }
    assert_eq!(num("resv.status"), ok);
    assert_eq!(num("end"), ok);
    assert_eq!(num("end_again"), vix::E_INVALID_ARG as i64);
    openvaai_testkit::assert_same_content(
        &export.join("disk-flat.vmdk"),
        &export.join("c-full.vmdk"),
    );
    assert!(export.join("c-lazy.vmdk").exists());
}
