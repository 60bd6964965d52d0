//! The VIB and bundle as wholes: member order, flavours, reproducibility and the standard
//! tools; and the fixtures the other modules' tests share.

use super::*;
use crate::vib::descriptor::checksums;

pub const DATE: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
pub const PLUGIN: &[u8] = b"\x7fELF not really a plugin, but bytes are bytes";

pub fn vib() -> Vib {
    build_vib(PLUGIN, &ESX8, "0.1.0-1", DATE).unwrap()
}

#[test]
fn vib_members_in_order_with_empty_signature() {
    let v = vib();
    let m = crate::ar::read(&v.bytes).unwrap();
    let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["descriptor.xml", "sig.pkcs7", PAYLOAD]);
    assert!(PAYLOAD.len() <= 8);
    assert_eq!(m[0].data, v.descriptor.as_bytes());
    assert!(m[1].data.is_empty());
    assert!(m
        .iter()
        .all(|m| m.uid == 0 && m.gid == 0 && m.mtime == DATE));
    // gzip magic
    assert_eq!(&m[2].data[..2], &[0x1f, 0x8b]);
}

/// ESXi 7.0 gets the same payload without the gunzipped SHA-256, for its own releases,
/// at a lower version than the ESXi 8.0 VIB.
#[test]
fn esx7_flavour() {
    let v7 = build_vib(PLUGIN, &ESX7, "0.1.0-1", DATE).unwrap();
    let v8 = vib();
    let d = &v7.descriptor;
    assert_eq!(v7.version, "0.1.0-1.700");
    assert!(v7.version < v8.version);
    assert!(!d.contains(r#"checksum-type="sha-256" verify-process"#));
    let sums = checksums(d).unwrap();
    let kinds: Vec<_> = sums
        .iter()
        .map(|(k, p, _)| (k.as_str(), p.as_deref()))
        .collect();
    assert_eq!(kinds, [("sha-256", None), ("sha-1", Some("gunzip"))]);
    let kinds8: Vec<_> = checksums(&v8.descriptor)
        .unwrap()
        .into_iter()
        .map(|(k, p, _)| (k, p))
        .collect();
    assert_eq!(kinds8.len(), 3);
    assert!(kinds8.contains(&("sha-256".to_owned(), Some("gunzip".to_owned()))));
    let depends = xml_text(d, "depends").unwrap();
    assert!(
        depends.contains(r#"<constraint name="esx-version" relation="&gt;=" version="7.0.0"/>"#)
    );
    assert!(
        depends.contains(r#"<constraint name="esx-version" relation="&lt;&lt;" version="8.0.0"/>"#)
    );
    // Same payload bytes in both.
    let p7 = crate::ar::read(&v7.bytes).unwrap().remove(2).data;
    let p8 = crate::ar::read(&v8.bytes).unwrap().remove(2).data;
    assert_eq!(p7, p8);
    let u = unpack_vib(&v7.bytes).unwrap();
    assert_eq!(u.files[1].data, PLUGIN);
    let z = build_bundle(&v7).unwrap();
    check_bundle(&z).unwrap();
    let m = crate::zip::read(&z).unwrap();
    assert_eq!(m[3].0, "vib20/openvaai/openvaai-0.1.0-1.700.vib");
    let vi = String::from_utf8(m[1].1.clone()).unwrap();
    assert_eq!(xml_text(&vi, "version"), Some("7.*"));
}

#[test]
fn builds_are_reproducible() {
    assert_eq!(vib().bytes, vib().bytes);
    assert_eq!(build_bundle(&vib()).unwrap(), build_bundle(&vib()).unwrap());
    assert_ne!(
        build_vib(b"other", &ESX8, "0.1.0-1", DATE).unwrap().bytes,
        vib().bytes
    );
}

/// The packages also come apart with the standard tools: GNU ar, tar and Python's zipfile.
#[test]
fn standard_tools_agree() {
    let dir = pkg::test_dir("vib");
    let v = vib();
    std::fs::write(dir.join("x.vib"), &v.bytes).unwrap();
    std::fs::write(dir.join("b.zip"), build_bundle(&v).unwrap()).unwrap();
    let sh = |cmd: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    if sh("command -v ar && command -v tar").status.success() {
        let out = sh("ar t x.vib && ar p x.vib openvaai | tar tzvf -");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.starts_with("descriptor.xml\nsig.pkcs7\nopenvaai\n"),
            "{out}"
        );
        assert!(out.contains("-rwxr-xr-x root/root"), "{out}");
        assert!(out.contains("usr/lib/vmware/nas_plugins/lib64/libopenvaai.so"));
    } else {
        crate::pkg::tool_missing("binutils or tar is missing (the ar/tar half)");
    }
    let py = "import io, sys, zipfile\nz = zipfile.ZipFile('b.zip')\nassert z.testzip() is None\nm = zipfile.ZipFile(io.BytesIO(z.read('metadata.zip')))\nassert m.testzip() is None\nprint(sorted(m.namelist()))";
    if sh("command -v python3").status.success() {
        let out = sh(&format!("python3 -c \"{py}\""));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "['bulletins/openvaai.xml', 'vendor-index.xml', 'vibs/openvaai-0.1.0-1.800.xml', 'vmware.xml']\n"
        );
    } else {
        crate::pkg::tool_missing("python3 is missing (the zipfile half)");
    }
}
