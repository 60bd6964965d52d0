//! check, clone, reserve, statx: text, JSON and exit codes.

use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

const MIB: u64 = 1 << 20;

#[test]
fn check_says_yes_for_a_served_export_and_no_with_the_fix_otherwise() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    let out = openvaai(&["check", "-d", srv.ds()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("NAS VAAI Supported: YES"), "{text}");
    assert!(text.contains("xfs: reflink yes"), "{text}");
    assert!(text.contains("ok   backend        openvaaid: "), "{text}");
    // Every line before the verdict has its status column, the first one too.
    assert!(
        text.starts_with(&format!("ok   datastore      {} (NFS 127.0.0.1:", srv.ds())),
        "{text}"
    );
    assert!(
        text.contains("full and lazy (copy-on-write) clones"),
        "{text}"
    );

    let v = json(&openvaai(&["check", "-d", srv.ds(), "--json"]));
    assert_eq!(v["nas_vaai_supported"], true);
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{v}");
    assert!(steps.iter().any(|s| s["step"] == "CLONEFILE"));

    // A directory no daemon serves: NO, with the cause and the fix.
    let foreign = tempfile::tempdir().unwrap();
    let out = openvaai(&["check", "-d", s(foreign.path())]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("NAS VAAI Supported: NO"), "{text}");
    assert!(text.contains("FAIL access file"), "{text}");
    assert!(
        text.contains("FAIL backend        none: neither") && text.contains(".openvaai/nfs42"),
        "{text}"
    );
    assert!(text.contains("fix: start openvaaid"), "{text}");
}

#[test]
fn clone_reserve_and_statx_through_the_plugin() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    write_layout(
        &srv.path("a.vmdk"),
        &[Run::Data(8 * MIB), Run::Hole(8 * MIB)],
        1,
    )
    .unwrap();

    let v = json(&openvaai(&[
        "clone",
        "-d",
        srv.ds(),
        "a.vmdk",
        "b.vmdk",
        "--lazy",
        "--json",
    ]));
    assert_eq!(v["status"], "VIX_OK", "{v}");
    assert_eq!(v["flags"], serde_json::json!(["GUARDED", "LAZY"]));
    assert_eq!(v["progress_bytes"], 16 * MIB);
    assert_same_content(&srv.path("a.vmdk"), &srv.path("b.vmdk"));

    let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk", "c.vmdk", "--thin"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(full, thin; flags GUARDED SKIPZEROES)"),
        "{}",
        stdout(&out)
    );

    let v = json(&openvaai(&[
        "statx",
        "-d",
        srv.ds(),
        "a.vmdk",
        "b.vmdk",
        "c.vmdk",
        "--json",
    ]));
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(
        files[1]["unique_bytes"], 0,
        "the lazy clone shares everything: {v}"
    );
    assert_eq!(
        files[2]["alloced_bytes"],
        8 * MIB,
        "the thin clone holds the data only: {v}"
    );
    assert!(files.iter().all(|f| f["alloc_type"] == "thin"));

    let v = json(&openvaai(&[
        "reserve",
        "-d",
        srv.ds(),
        "thick.vmdk",
        "--size",
        "64M",
        "--json",
    ]));
    assert_eq!(v["status"], "VIX_OK", "{v}");
    assert_eq!(v["bytes"], 64 * MIB);
    let out = openvaai(&["statx", "-d", srv.ds(), "thick.vmdk"]);
    assert!(
        stdout(&out).contains("lazy-zeroed thick"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn failures_name_the_vix_error_and_the_fix_and_set_the_exit_code() {
    let Some(srv) = Served::new(FsKind::Ext4) else {
        return;
    };
    write_layout(&srv.path("a.vmdk"), &[Run::Data(MIB)], 2).unwrap();
    std::fs::write(srv.path("b.vmdk"), b"keep").unwrap();

    let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk", "b.vmdk", "--guarded"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("VIX_E_FILE_ALREADY_EXISTS"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(std::fs::read(srv.path("b.vmdk")).unwrap(), b"keep");

    // ext4 cannot reflink: lazy is refused, never silently copied.
    let v = json(&openvaai(&[
        "clone",
        "-d",
        srv.ds(),
        "a.vmdk",
        "l.vmdk",
        "--lazy",
        "--json",
    ]));
    assert_eq!(v["status"], "VIX_E_NOT_SUPPORTED");
    assert!(!srv.path("l.vmdk").exists());

    let out = openvaai(&["reserve", "-d", srv.ds(), "missing.vmdk"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("VIX_E_FILE_NOT_FOUND"),
        "{}",
        stderr(&out)
    );

    // Usage and environment errors are exit 2.
    let out = openvaai(&["statx", "-d", "/nonexistent/datastore", "a.vmdk"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no such directory"),
        "{}",
        stderr(&out)
    );
    let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_datastore_can_be_named_in_a_config_file() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    write_layout(&srv.path("a.vmdk"), &[Run::Data(MIB)], 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("openvaai.toml");
    std::fs::write(
        &config,
        format!(
            "[datastore.gold]\nmount = \"{}\"\nnas_ip = \"127.0.0.1\"\n",
            srv.ds()
        ),
    )
    .unwrap();
    let out = openvaai(&["statx", "--config", s(&config), "-d", "gold", "a.vmdk"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("a.vmdk"));
}

#[test]
fn ctrl_c_cancels_a_clone_through_the_progress_callback_and_leaves_nothing() {
    // Paced at 64 MiB/s, a 256 MiB clone runs for about 4 s.
    let Some(srv) = Served::with_limits(FsKind::Xfs, "max_job_bytes_per_second = 67108864") else {
        return;
    };
    write_layout(&srv.path("big.vmdk"), &[Run::Data(256 * MIB)], 5).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args(["clone", "-d", srv.ds(), "big.vmdk", "copy.vmdk", "--json"])
        .env("OPENVAAI_PLUGIN", plugin_so())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        srv.daemon
            .wait_for_log("job started", std::time::Duration::from_secs(10)),
        "the clone did not start"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit 3 for a cancel: {}",
        stderr(&out)
    );
    let v = json(&out);
    assert_eq!(v["status"], "VIX_E_CANCELLED", "{v}");
    let listing: Vec<String> = std::fs::read_dir(&srv.export)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".openvaai")
        .collect();
    assert_eq!(listing, ["big.vmdk"], "no destination, no temporary");
}
