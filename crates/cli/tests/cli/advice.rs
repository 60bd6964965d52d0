//! What a new admin hits, round two (issue 28): advice that fits the command, a daemon that
//! is gone said at once, one exit code for one case, one form of a job id.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openvaai_testkit::{write_layout, Daemon, FsKind, Run};

use crate::util::*;

const MIB: u64 = 1 << 20;

/// `openvaai clone -d DS SRC DST` in the background, its output captured.
fn clone_in_background(ds: &str, src: &str, dst: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args(["clone", "-d", ds, src, dst])
        .env("OPENVAAI_PLUGIN", plugin_so())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn check_says_at_once_that_a_daemon_that_is_gone_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::builder().export(dir.path()).start();
    let pid = d.pid();
    // Killed: its access file and its lock stay, naming a pid that is gone.
    d.kill();
    let t = Instant::now();
    let out = openvaai(&["check", "-d", s(dir.path())]);
    let took = t.elapsed();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        took < Duration::from_secs(5),
        "{took:?}, not the session timeout: {text}"
    );
    assert!(
        text.contains(&format!(
            "FAIL daemon         openvaaid is not running: the export's lock names pid {pid}, \
             which is gone, and 127.0.0.1:"
        )),
        "{text}"
    );
    assert!(text.contains("fix: start openvaaid on the NAS: systemctl start openvaaid"));
    assert!(!text.contains("HOST_NOT_CONNECTED"), "{text}");
    assert!(text.contains("NAS VAAI Supported: NO"), "{text}");
}

#[test]
fn hints_fit_the_command() {
    let Some(srv) = Served::new(FsKind::Xfs) else {
        return;
    };
    // `--size 0` is no size to give: said as such, nothing made.
    let out = openvaai(&["reserve", "-d", srv.ds(), "db.vmdk", "--size", "0"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--size 0: a reservation needs a size of at least one byte"),
        "{err}"
    );
    assert!(!err.contains("give --size"), "{err}");
    assert!(!srv.path("db.vmdk").exists());

    // statx of a missing file: no source, no destination.
    let out = openvaai(&["statx", "-d", srv.ds(), "nope.vmdk"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hint: the file does not exist: check its path"),
        "{err}"
    );
    assert!(!err.contains("destination"), "{err}");

    // A datastore that does not exist is not "not a directory".
    let out = openvaai(&["statx", "-d", "/nonexistent", "a.vmdk"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("datastore /nonexistent: no such directory"),
        "{err}"
    );
    assert!(!err.contains("not a directory"), "{err}");
    let file = srv.path("plain");
    std::fs::write(&file, b"x").unwrap();
    let err = stderr(&openvaai(&["statx", "-d", s(&file), "a.vmdk"]));
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn a_clone_whose_daemon_stops_and_stays_away_says_so_and_gets_no_is_it_running_hint() {
    // Paced at 32 MiB/s, a 256 MiB clone runs for about 8 s.
    let Some(mut srv) = Served::with_limits(FsKind::Xfs, "max_job_bytes_per_second = 33554432")
    else {
        return;
    };
    write_layout(&srv.path("big.vmdk"), &[Run::Data(256 * MIB)], 8).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args([
            "clone",
            "-d",
            srv.ds(),
            "--timeout-ms",
            "3000",
            "big.vmdk",
            "copy.vmdk",
        ])
        .env("OPENVAAI_PLUGIN", plugin_so())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(srv
        .daemon
        .wait_for_log("job started", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    // A stop (it may be a restart: the plugin waits its session timeout for the daemon).
    srv.daemon.terminate(Duration::from_secs(20)).unwrap();
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(stopped.elapsed() >= Duration::from_secs(2), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("went away during job"), "{err}");
    assert!(err.contains("nothing was published"), "{err}");
    assert!(
        err.contains("hint: retry once openvaaid on the NAS is back"),
        "{err}"
    );
    assert!(!err.contains("is openvaaid running"), "{err}");
    assert!(!srv.path("copy.vmdk").exists());
}

#[test]
fn a_clone_cancelled_by_the_admin_says_so_with_the_id_status_shows() {
    // Paced at 8 MiB/s, a 128 MiB clone runs for about 16 s.
    let Some(srv) = Served::with_limits(FsKind::Xfs, "max_job_bytes_per_second = 8388608") else {
        return;
    };
    let sock = srv.daemon.state_dir().join("control.sock");
    write_layout(&srv.path("big.vmdk"), &[Run::Data(128 * MIB)], 9).unwrap();
    let child = clone_in_background(srv.ds(), "big.vmdk", "copy.vmdk");
    let t = Instant::now();
    let id = loop {
        let v = json(&openvaai(&["status", "--socket", s(&sock), "--json"]));
        if let Some(j) = v["jobs"].as_array().unwrap().first() {
            break j["id"].as_str().unwrap().to_owned();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no job: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // By the id as C's `%#x` prints it (no leading zeros), as older logs show it.
    let hex = format!("{:#x}", u64::from_str_radix(&id, 16).unwrap());
    let out = openvaai(&["status", "--socket", s(&sock), "--cancel", &hex]);
    assert_eq!(out.status.code(), Some(0), "{hex}: {}", stderr(&out));
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // The plugin names the job as `openvaai status` does.
    assert!(
        err.contains(&format!("job {id} failed: Cancelled")),
        "{id}: {err}"
    );
    assert!(
        err.contains("hint: the NAS's admin cancelled this job"),
        "{err}"
    );
    assert!(!srv.path("copy.vmdk").exists());
}

#[test]
fn status_as_another_user_exits_2_whatever_the_sockets_mode() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::builder().export(dir.path()).start();
    let sock = d.state_dir().join("control.sock");
    let as_nobody = || {
        Command::new(env!("CARGO_BIN_EXE_openvaai"))
            .args(["status", "--socket", s(&sock)])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // The mode opened up: the daemon refuses by the peer's uid, and the code is the same.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    for p in [d.state_dir(), d.state_dir().parent().unwrap().to_owned()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let out = as_nobody();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not root"), "{err}");
}

#[test]
fn plugin_info_defaults_the_nas_address_and_path_like_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let _d = Daemon::builder().export(dir.path()).start();
    let out = openvaai(&["plugin-info", s(&plugin_so()), "-d", s(dir.path())]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("StartSession: VIX_OK"), "{text}");
    assert!(text.contains("SupportStatus CLONEFILE: VIX_OK"), "{text}");
}
