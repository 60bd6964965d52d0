//! What a new admin hits (issue 13): refusals that change nothing, files a failed command
//! made and removes, and messages that name the cause and the fix.

use std::os::unix::fs::MetadataExt;

use openvaai_testkit::{write_layout, Daemon, FsKind, Run};

use crate::util::*;

const MIB: u64 = 1 << 20;

#[test]
fn a_clone_onto_itself_is_refused_and_changes_nothing() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    write_layout(
        &srv.path("a.vmdk"),
        &[Run::Data(MIB), Run::Hole(8 * MIB)],
        4,
    )
    .unwrap();
    std::fs::hard_link(srv.path("a.vmdk"), srv.path("link.vmdk")).unwrap();
    let before = std::fs::metadata(srv.path("a.vmdk")).unwrap();
    for dst in ["a.vmdk", "./a.vmdk", "link.vmdk"] {
        let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk", dst, "--force"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{dst}: {err}");
        assert!(err.contains("VIX_E_INVALID_ARG"), "{err}");
        assert!(err.contains("onto its own source"), "{err}");
        assert!(
            !err.contains("empty file"),
            "no reserve advice for a clone: {err}"
        );
    }
    let after = std::fs::metadata(srv.path("a.vmdk")).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.blocks(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.blocks(),
            before.mtime_nsec()
        )
    );
}

#[test]
fn clone_refuses_an_existing_destination_unless_forced() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    write_layout(&srv.path("a.vmdk"), &[Run::Data(MIB)], 5).unwrap();
    std::fs::write(srv.path("b.vmdk"), b"keep").unwrap();
    let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk", "b.vmdk"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("VIX_E_FILE_ALREADY_EXISTS"), "{err}");
    assert!(err.contains("pass --force to replace it"), "{err}");
    assert_eq!(std::fs::read(srv.path("b.vmdk")).unwrap(), b"keep");

    let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk", "b.vmdk", "--force"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(srv.path("b.vmdk")).unwrap().len(), MIB);
    // A forced full clone has no flag at all: it says what it made, not "[]".
    assert!(text.contains("(full, thick; flags none)"), "{text}");
    assert!(!text.contains("[]"), "{text}");

    // A dry run moved nothing: no time or rate.
    let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk", "c.vmdk", "--dry-run"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(text.starts_with("would clone"), "{text}");
    assert!(!text.contains("/s"), "{text}");
    assert!(!srv.path("c.vmdk").exists());
}

#[test]
fn file_not_found_says_which_side_is_missing() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    std::fs::create_dir(srv.path("web01")).unwrap();
    write_layout(&srv.path("web01/web01-flat.vmdk"), &[Run::Data(MIB)], 6).unwrap();
    // The README's example, before web02/ exists.
    let out = openvaai(&[
        "clone",
        "-d",
        srv.ds(),
        "web01/web01-flat.vmdk",
        "web02/web02-flat.vmdk",
        "--lazy",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("VIX_E_FILE_NOT_FOUND"), "{err}");
    assert!(
        err.contains(r#"the destination's directory "web02" does not exist"#),
        "{err}"
    );
    assert!(err.contains("hint: the destination's directory does not exist: create it first"));

    let out = openvaai(&["clone", "-d", srv.ds(), "web01/nope.vmdk", "web01/b.vmdk"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(r#"the source "web01/nope.vmdk" does not exist"#),
        "{err}"
    );
    assert!(
        err.contains("hint: the source file does not exist"),
        "{err}"
    );
}

#[test]
fn a_failed_reserve_removes_the_file_it_created_and_sizes_take_decimals() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    // 40 GiB on a 1 GiB filesystem.
    let out = openvaai(&["reserve", "-d", srv.ds(), "db.vmdk", "--size", "40G"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("VIX_E_DISK_FULL"), "{err}");
    assert!(!srv.path("db.vmdk").exists(), "the file it created is gone");
    // A file that was there gets its old length back, and keeps its data.
    std::fs::write(srv.path("old.vmdk"), b"data").unwrap();
    let out = openvaai(&["reserve", "-d", srv.ds(), "old.vmdk", "--size", "40G"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read(srv.path("old.vmdk")).unwrap(), b"data");

    let v = json(&openvaai(&[
        "reserve",
        "-d",
        srv.ds(),
        "half.vmdk",
        "--size",
        "1.5M",
        "--json",
    ]));
    assert_eq!(
        (v["status"].as_str(), v["bytes"].as_u64()),
        (Some("VIX_OK"), Some(3 * MIB / 2))
    );
    let out = openvaai(&["reserve", "-d", srv.ds(), "x.vmdk", "--size", "0.1k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("whole number of bytes"),
        "{}",
        stderr(&out)
    );
    assert!(!srv.path("x.vmdk").exists());
}

#[test]
fn a_daemon_restarted_mid_clone_does_not_fail_the_clone() {
    // Paced at 32 MiB/s, a 256 MiB clone runs for about 8 s.
    let Some(mut srv) = Served::with_limits(FsKind::Xfs, "max_job_bytes_per_second = 33554432")
    else {
        return;
    };
    write_layout(&srv.path("big.vmdk"), &[Run::Data(256 * MIB)], 7).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args(["clone", "-d", srv.ds(), "big.vmdk", "copy.vmdk"])
        .env("OPENVAAI_PLUGIN", plugin_so())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = srv
        .daemon
        .wait_for_log("job started", std::time::Duration::from_secs(10));
    assert!(started, "the clone did not start");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // As `systemctl restart openvaaid` does: SIGTERM, then a start.
    let stopped = srv.daemon.terminate(std::time::Duration::from_secs(10));
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}");
    srv.daemon.restart();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    openvaai_testkit::assert_same_content(&srv.path("big.vmdk"), &srv.path("copy.vmdk"));
}

/// An export in a temporary directory that another user can reach (the access file inside
/// stays root's), served with `extra` in its table.
fn reachable_export(extra: &str) -> (tempfile::TempDir, Daemon) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = Daemon::builder().export_with(dir.path(), extra).start();
    (dir, daemon)
}

#[test]
fn check_says_the_address_is_not_allowed() {
    // Only configured: no traffic goes to 10.0.0.0/8.
    let (dir, _daemon) = reachable_export("allowed_networks = [\"10.0.0.0/8\"]");
    let out = openvaai(&["check", "-d", s(dir.path())]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("VIX_E_FILE_ACCESS_ERROR"), "{text}");
    assert!(text.contains("does not allow this host"), "{text}");
    assert!(text.contains("fix: this host's address is not in the export's allowed_networks"));
    assert!(!text.contains("stale"), "{text}");
}

#[test]
fn check_as_another_user_says_the_access_file_is_roots() {
    use std::os::unix::process::CommandExt;
    let (dir, _daemon) = reachable_export("");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args(["check", "-d", s(dir.path())])
        .env("OPENVAAI_PLUGIN", plugin_so())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL access file"), "{text}");
    assert!(text.contains("it exists, but is root's"), "{text}");
    assert!(text.contains("fix: the access file exists but only root can read it"));
    assert!(
        text.contains("StartSession: VIX_E_FILE_ACCESS_ERROR"),
        "{text}"
    );
    assert!(text.contains("run as root, as ESXi does"), "{text}");
    assert!(!text.contains("start openvaaid"), "{text}");
    assert!(!text.contains("no openvaaid serves"), "{text}");
    // Only that: no "neither file is there" before it, no allowed_networks after it.
    assert!(!text.contains("FAIL backend"), "{text}");
    assert!(!text.contains("neither"), "{text}");
    assert!(!text.contains("allowed_networks"), "{text}");
}

#[test]
fn check_advice_fits_a_wrong_nas_path_and_json_fixes_only_failures() {
    let (dir, _daemon) = reachable_export("");
    let out = openvaai(&[
        "check",
        "-d",
        s(dir.path()),
        "--nas-path",
        "/no/such/export",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("does not serve an export named /no/such/export"),
        "{text}"
    );
    assert!(text.contains("fix: openvaaid does not serve this datastore as given: --nas-path"));
    assert!(!text.contains("reflink"), "no filesystem advice: {text}");

    let v = json(&openvaai(&["check", "-d", s(dir.path()), "--json"]));
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.iter().filter(|s| s["ok"] == true).count() >= 5, "{v}");
    for step in steps {
        assert_eq!(step["ok"] == false, step.get("fix").is_some(), "{step}");
    }
}

#[test]
fn a_name_missing_from_the_config_is_called_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("openvaai.toml");
    std::fs::write(&config, "[datastore.gold]\nmount = \"/srv/gold\"\n").unwrap();
    let out = openvaai(&["statx", "--config", s(&config), "-d", "silver", "a.vmdk"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("has no [datastore.silver] (it names: gold)"),
        "{err}"
    );
    assert!(!err.contains("not a directory"), "{err}");
    let out = openvaai(&["statx", "-d", "silver", "a.vmdk"]);
    assert!(stderr(&out).contains("no --config"), "{}", stderr(&out));
}

#[test]
fn plugin_info_takes_d_like_the_other_commands() {
    let foreign = tempfile::tempdir().unwrap();
    let out = openvaai(&["plugin-info", s(&plugin_so()), "-d", s(foreign.path())]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "declined: {text}{}",
        stderr(&out)
    );
    assert!(text.contains("StartSession: VIX_E_NOT_SUPPORTED"), "{text}");
}
