//! `openvaai clone-vmdk` on real descriptors.

use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

const DESCRIPTOR: &str = "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=9a8b7c6d\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\nRW 32768 VMFS \"web01-flat.vmdk\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.longContentID = \"0f1e2d3c4b5a69788796a5b49a8b7c6d\"\nddb.uuid = \"60 00 C2 9a 3b 2c 1d 0e-4f 5e 6d 7c 8b 9a a9 b8\"\nddb.virtualHWVersion = \"19\"\n";

#[test]
fn clone_vmdk_writes_a_new_descriptor_and_clones_the_extent() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    std::fs::create_dir(srv.path("web01")).unwrap();
    std::fs::create_dir(srv.path("web02")).unwrap();
    std::fs::write(srv.path("web01/web01.vmdk"), DESCRIPTOR).unwrap();
    write_layout(
        &srv.path("web01/web01-flat.vmdk"),
        &[Run::Data(8 << 20), Run::Hole(8 << 20)],
        4,
    )
    .unwrap();

    let out = openvaai(&[
        "clone-vmdk",
        "-d",
        srv.ds(),
        "web01/web01.vmdk",
        "web02/web02.vmdk",
        "--lazy",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    let text = std::fs::read_to_string(srv.path("web02/web02.vmdk")).unwrap();
    assert!(text.contains("RW 32768 VMFS \"web02-flat.vmdk\""), "{text}");
    assert!(text.contains("parentCID=ffffffff"));
    assert!(!text.contains("CID=9a8b7c6d"), "a new CID");
    assert_eq!(v["cid"].as_str().unwrap().len(), 8);
    assert_same_content(
        &srv.path("web01/web01-flat.vmdk"),
        &srv.path("web02/web02-flat.vmdk"),
    );

    // A second clone onto the same name is refused, and nothing is touched.
    let out = openvaai(&[
        "clone-vmdk",
        "-d",
        srv.ds(),
        "web01/web01.vmdk",
        "web02/web02.vmdk",
    ]);
    // As `clone` refuses an existing destination: exit code 1, the same words.
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("VIX_E_FILE_ALREADY_EXISTS"), "{err}");
    assert!(err.contains("web02/web02.vmdk exists"), "{err}");
    assert!(
        err.contains("hint: the destination exists; pass --force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(srv.path("web02/web02.vmdk")).unwrap(),
        text
    );
}

#[test]
fn clone_vmdk_refuses_sparse_and_incomplete_disks() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    let sparse = DESCRIPTOR.replace(
        "VMFS \"web01-flat.vmdk\"",
        "VMFSSPARSE \"web01-delta.vmdk\"",
    );
    std::fs::write(srv.path("snap.vmdk"), sparse).unwrap();
    let out = openvaai(&["clone-vmdk", "-d", srv.ds(), "snap.vmdk", "copy.vmdk"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("VMFSSPARSE"), "{}", stderr(&out));

    std::fs::write(srv.path("lonely.vmdk"), DESCRIPTOR).unwrap();
    let out = openvaai(&["clone-vmdk", "-d", srv.ds(), "lonely.vmdk", "copy.vmdk"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    assert!(!srv.path("copy.vmdk").exists());
    assert!(!srv.path("copy-flat.vmdk").exists());
}

#[test]
fn clone_vmdk_marks_the_new_disk_thin_or_thick_as_made() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    let thin = DESCRIPTOR.replace(
        "ddb.virtualHWVersion",
        "ddb.thinProvisioned = \"1\"\nddb.virtualHWVersion",
    );
    std::fs::write(srv.path("web01.vmdk"), thin).unwrap();
    write_layout(
        &srv.path("web01-flat.vmdk"),
        &[Run::Data(4 << 20), Run::Hole(12 << 20)],
        8,
    )
    .unwrap();
    let clone = |dst: &str, extra: &[&str]| {
        let mut args = vec!["clone-vmdk", "-d", srv.ds(), "web01.vmdk", dst];
        args.extend_from_slice(extra);
        let out = openvaai(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        std::fs::read_to_string(srv.path(dst)).unwrap()
    };
    let thick = clone("thick.vmdk", &[]);
    assert!(!thick.contains("thinProvisioned"), "{thick}");
    let thin = clone("thin.vmdk", &["--thin"]);
    assert!(thin.contains("ddb.thinProvisioned = \"1\""), "{thin}");
    let lazy = clone("lazy.vmdk", &["--lazy"]);
    assert!(
        lazy.contains("ddb.thinProvisioned = \"1\""),
        "as its source: {lazy}"
    );

    // The destination's directory must exist: said before anything is cloned.
    let out = openvaai(&["clone-vmdk", "-d", srv.ds(), "web01.vmdk", "nodir/x.vmdk"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("destination directory") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains("extent"), "{err}");
}
