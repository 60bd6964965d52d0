//! `openvaai plugin-info`: the table disklib finds, and declines through the Rust loader.

use crate::util::{openvaai, plugin_so, s};

#[test]
fn plugin_info_prints_the_nas_table() {
    let so = plugin_so();
    let out = openvaai(&["plugin-info", s(&so)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(r#"name "openvaai", type NAS (1), interface 1.2"#),
        "{text}"
    );
    assert!(text.contains("StartSession yes, EndSession yes, ExecPrimitive yes, SupportStatus yes"));
    assert!(text.contains("init      VIX_OK (0)"), "{text}");
}

#[test]
fn plugin_info_json_is_parseable_and_complete() {
    let so = plugin_so();
    let out = openvaai(&["plugin-info", s(&so), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["init"], "VIX_OK");
    let tables = v["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0]["type_name"], "NAS");
    assert_eq!(tables[0]["minor_version"], 2);
    assert_eq!(tables[0]["exec_primitive"], true);
    assert!(v["log"][0]
        .as_str()
        .unwrap()
        .contains("loaded (interface 1.2)"));
}

#[test]
fn a_datastore_without_daemon_is_declined_through_the_rust_loader() {
    let so = plugin_so();
    let foreign = tempfile::tempdir().unwrap();
    for fs in ["NFS", "NFS41", "VMFS"] {
        let out = openvaai(&[
            "plugin-info",
            s(&so),
            "--datastore",
            s(foreign.path()),
            "--nas-ip",
            "127.0.0.1",
            "--nas-path",
            "/srv/ds",
            "--fs-type",
            fs,
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "a declined session is a failure"
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["session"]["status"], "VIX_E_NOT_SUPPORTED", "{fs}");
        let log = v["log"].to_string();
        assert!(log.contains("declining datastore"), "{log}");
    }
}

#[test]
fn a_library_that_is_no_plugin_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.so");
    let out = openvaai(&["plugin-info", s(&missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot load"));

    // A real shared library without the entry point: libc itself.
    let out = openvaai(&["plugin-info", "libc.so.6"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exports no VixDiskLibPlugin_EntryPoint"),
        "{err}"
    );
}
