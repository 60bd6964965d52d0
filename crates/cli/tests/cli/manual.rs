//! The man pages, as the packages get them (`OPENVAAI_WRITE_MANUAL`), cover the operations
//! side: `openvaai status` and the daemon's metrics and control options.

use std::process::Command;

#[test]
fn the_man_pages_cover_status_and_the_daemons_operations_options() {
    let dir = tempfile::tempdir().unwrap();
    for bin in [
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_openvaai")),
        openvaai_testkit::daemon_bin(),
    ] {
        let st = Command::new(&bin)
            .env("OPENVAAI_WRITE_MANUAL", dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "{}", bin.display());
    }
    let page =
        |name: &str| std::fs::read_to_string(dir.path().join("man/man1").join(name)).unwrap();
    let status = page("openvaai-status.1");
    for want in [
        r"\-\-cancel",
        r"\-\-watch",
        r"\-\-json",
        "SO_PEERCRED",
        "Exit status",
    ] {
        assert!(status.contains(want), "openvaai-status.1 lacks {want}");
    }
    let daemon = page("openvaaid.1");
    for want in [
        r"\-\-metrics\-listen",
        r"\-\-control\-socket",
        "WATCHDOG=1",
        "READY=1",
    ] {
        assert!(daemon.contains(want), "openvaaid.1 lacks {want}");
    }
    assert!(page("openvaai.1").contains("status"));
}
