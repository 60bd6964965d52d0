//! The control socket of a real openvaaid, through the real `openvaai status`: root only
//! (by the peer's credentials, not only the file's mode), a running paced clone listed with
//! its progress, `--json`, and `--cancel` ending it CANCELLED for its client with nothing
//! left on the filesystem.

#[allow(dead_code)]
mod ops;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use openvaai_testkit::{write_layout, Daemon, Run};
use ops::*;

/// Runs `openvaai status ARGS` as uid and gid 65534 (nobody).
fn as_nobody(args: &[&str]) -> std::process::Output {
    cli(args).uid(65534).gid(65534).output().unwrap()
}

#[test]
fn only_root_can_use_the_control_socket_whatever_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::builder().export(dir.path()).start();
    let sock = control_socket(&d);
    let s = sock.to_str().unwrap();
    let md = std::fs::metadata(&sock).unwrap();
    assert_eq!(
        (md.mode() & 0o777, md.uid()),
        (0o600, 0),
        "socket mode and owner"
    );
    // Root is served.
    let out = openvaai(&["status", "--socket", s, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json(&out)["pid"], d.pid());
    // Another user cannot even connect while the mode is 0600.
    let out = as_nobody(&["status", "--socket", s]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("only root can use openvaaid's control socket"),
        "{}",
        text(&out.stderr)
    );
    // With the file opened to everyone (an admin's mistake), the daemon still refuses by
    // the peer's credentials, before reading a request, and says nothing about its jobs.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    for p in [d.state_dir(), d.state_dir().parent().unwrap().to_owned()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    for args in [
        &["status", "--socket", s, "--json"][..],
        &["status", "--socket", s, "--cancel", "00"][..],
    ] {
        let out = as_nobody(args);
        let err = text(&out.stderr);
        // Not root: exit code 2, as when the mode keeps it out.
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        assert!(
            err.contains("uid 65534") && err.contains("is not root"),
            "{args:?}: {err}"
        );
    }
    assert!(d.wait_for_log("control socket: refused: uid 65534", Duration::from_secs(5)));
}

#[test]
fn status_lists_a_paced_clone_and_cancel_ends_it_cancelled_leaving_nothing() {
    // 64 MiB paced at 4 MiB/s: about 16 s unless cancelled.
    let Some(srv) = Served::xfs("max_job_bytes_per_second = 4194304") else {
        return;
    };
    let sock = srv.socket();
    let s = sock.to_str().unwrap();
    write_layout(&srv.path("big.vmdk"), &[Run::Data(64 * MIB)], 9).unwrap();
    let child = clone_in_background(srv.ds(), "big.vmdk", "copy.vmdk", &[]);

    let job = eventually(
        Duration::from_secs(20),
        "a running job with progress",
        || {
            let out = openvaai(&["status", "--socket", s, "--json"]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            let v = json(&out);
            let j = v["jobs"].as_array()?.first()?.clone();
            // A rate is given once the job has run a second.
            let rate = j["rate_bytes_per_second"].as_f64().is_some();
            (j["state"] == "running" && j["done_bytes"].as_u64()? > 0 && rate).then_some((v, j))
        },
    );
    let (st, j) = job;
    assert_eq!(st["jobs_running"], 1);
    assert_eq!(st["exports"][0], srv.ds());
    assert_eq!(j["primitive"], "clone_full");
    assert_eq!(j["export"], srv.ds());
    assert_eq!(j["source"], format!("{}:big.vmdk", srv.ds()));
    assert_eq!(j["destination"], format!("{}:copy.vmdk", srv.ds()));
    assert_eq!(j["total_bytes"], 64 * MIB);
    assert!(j["done_bytes"].as_u64().unwrap() < 64 * MIB, "{j}");
    assert!(j["rate_bytes_per_second"].as_f64().unwrap() > 0.0, "{j}");
    assert!(
        j["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{j}"
    );
    assert!(j["result"].is_null(), "{j}");
    let id = j["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 16, "{id}");

    // The table shows it too.
    let out = openvaai(&["status", "--socket", s]);
    let table = text(&out.stdout);
    assert!(table.contains("1 running, 0 queued"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("running") && l.contains("clone_full")),
        "{table}"
    );
    assert!(table.contains("big.vmdk -> "), "{table}");

    // Cancel it by a prefix of its id.
    let out = openvaai(&["status", "--socket", s, "--cancel", &id[..8]]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("job {id} ended VIX_E_CANCELLED")),
        "{}",
        text(&out.stdout)
    );
    // Its client sees CANCELLED, and nothing is left: no destination, no temporary.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(json(&out)["status"], "VIX_E_CANCELLED");
    assert_eq!(listing(&srv.export), ["big.vmdk"]);
    // It is listed as finished; a second cancel says so.
    let v = json(&openvaai(&["status", "--socket", s, "--json"]));
    let j = &v["jobs"][0];
    assert_eq!(
        (j["id"].as_str(), j["state"].as_str()),
        (Some(&id[..]), Some("failed"))
    );
    assert_eq!(j["result"], "VIX_E_CANCELLED");
    assert_eq!(v["jobs_running"], 0);
    let out = openvaai(&["status", "--socket", s, "--cancel", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has finished already (VIX_E_CANCELLED)"),
        "{}",
        text(&out.stderr)
    );
    assert!(srv
        .daemon
        .wait_for_log("cancel requested by the admin", Duration::from_secs(1)));
}

#[test]
fn watch_refreshes_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::builder().export(dir.path()).start();
    let sock = control_socket(&d);
    let child = cli(&[
        "status",
        "--socket",
        sock.to_str().unwrap(),
        "--watch",
        "0.2",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 4, "{} refreshes in 1.5 s", lines.len());
    assert!(lines.iter().all(|v| v["pid"] == d.pid()));
    let up: Vec<f64> = lines
        .iter()
        .map(|v| v["uptime_seconds"].as_f64().unwrap())
        .collect();
    assert!(up.windows(2).all(|w| w[1] > w[0]), "{up:?}");
}
