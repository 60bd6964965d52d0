//! Running a test binary's guest-side half in a knfsd guest (`openvaai_testkit::guest`):
//! shared by the guest suites (`tests/knfsd`, `tests/zfs`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use openvaai_abi::{vix, SessionId, VixError};
use openvaai_host::{Datastore, Plugin};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::{plugin_so, profile_dir, Daemon};

/// Where the programs go in the guest: the test binary beside `openvaaid`, the plugin and the
/// CLI, where the testkit looks for them.
pub const GUEST_BIN: &str = "/opt/openvaai";
/// The environment variable that marks a run inside the guest.
pub const IN_GUEST: &str = "OPENVAAI_IN_GUEST";

/// Runs `script` in the guest within `bound`; its output, or a panic with it.
pub fn run_in_guest(nfs: &Knfsd, what: &str, script: &str, bound: Duration) -> String {
    let started = Instant::now();
    let out = nfs
        .exec_timeout(script, bound)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(out.status, 0, "{what} failed in the guest:\n{}", out.text);
    eprintln!("guest: {what}: {:.1} s", started.elapsed().as_secs_f64());
    out.text
}

/// `N` from libtest's "test result: ok. N passed".
pub fn passed(text: &str) -> u32 {
    text.lines()
        .filter_map(|l| l.split_once("test result: ok. "))
        .filter_map(|(_, r)| r.split_whitespace().next()?.parse::<u32>().ok())
        .sum()
}

/// Asserts this runs inside the guest (the ignored guest-side tests), naming the test that
/// boots it otherwise.
pub fn in_guest(outer: &str) {
    assert_eq!(
        std::env::var(IN_GUEST).as_deref(),
        Ok("1"),
        "this test runs inside the knfsd guest only: run {outer}, which boots it"
    );
}

/// Builds `openvaaid` and the `openvaai` CLI now (cargo does nothing when they are up to
/// date): `cargo test -p openvaai-plugin` does not, and the testkit takes whatever binary is
/// in the profile directory, so a guest suite would otherwise run a stale daemon.
pub fn build_daemon_and_cli() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "openvaai-daemon",
        "--bin",
        "openvaaid",
        "-p",
        "openvaai-cli",
        "--bin",
        "openvaai",
    ]);
    if openvaai_testkit::profile_dir().ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(
        status.success(),
        "cargo build of openvaaid and openvaai failed"
    );
}

/// The engine's integration test binary, built (or found up to date) by cargo.
pub fn engine_test_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "-p",
        "openvaai-engine",
        "--test",
        "engine",
        "--no-run",
    ])
    .arg("--message-format=json");
    if profile_dir().ends_with("release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("running cargo test --no-run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "building the engine's tests failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    const KEY: &str = "\"executable\":\"";
    text.lines()
        .filter(|l| l.contains("\"name\":\"engine\"") && l.contains("\"test\":true"))
        .find_map(|l| {
            let at = l.find(KEY)? + KEY.len();
            Some(PathBuf::from(&l[at..at + l[at..].find('"')?]))
        })
        .unwrap_or_else(|| panic!("cargo named no engine test binary:\n{text}"))
}

// The guest-side helpers: used inside the guest by each suite's `inner` tests.

/// `(mount point, mount options, fsType, fsVersion)` as ESXi mounts datastores.
pub const MOUNTS: &[(&str, &str, &str, u32)] = &[
    ("/mnt/v3", "vers=3,nolock", "NFS", 3),
    ("/mnt/v41", "vers=4.1", "NFS41", 4),
];

/// Runs `script` with `sh -c`; its output, or a panic with it.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`{script}` failed:\n{text}");
    text
}

/// The guest's NFS mounts of `export` (from its own knfsd on 127.0.0.1), made once per test
/// and checked to be of the version asked for.
pub fn mount_all(export: &str) {
    for (dir, opts, _, _) in MOUNTS {
        sh(&format!(
            "mkdir -p {dir}; grep -q ' {dir} nfs' /proc/mounts || \
             mount -t nfs -o {opts} 127.0.0.1:{export} {dir}"
        ));
        let line = sh(&format!("grep ' {dir} nfs' /proc/mounts"));
        let vers = opts.split(',').next().unwrap();
        assert!(line.contains(vers), "{dir} is not mounted {vers}: {line}");
    }
}

/// The datastore ESXi would describe for a mount of `export` from this guest's knfsd.
pub fn datastore(export: &str, mount: &str, fs_type: &str, fs_version: u32) -> Datastore {
    Datastore {
        fs_type: fs_type.into(),
        fs_version,
        remote_ip: Some("127.0.0.1".into()),
        remote_mount_point: Some(export.into()),
        local_mount_point: Some(mount.into()),
    }
}

/// StartSession on `mount` (one of [`MOUNTS`]: an NFS mount of `export` served by `daemon`)
/// with the session timeout `timeout_ms`; a refusal panics with the daemon's log.
pub fn start_on(
    plugin: &Plugin,
    daemon: &Daemon,
    export: &str,
    &(mount, _, fs_type, version): &(&str, &str, &str, u32),
    timeout_ms: u64,
) -> SessionId {
    plugin
        .start_session(
            &datastore(export, mount, fs_type, version),
            Some(timeout_ms),
        )
        .unwrap_or_else(|e| {
            panic!(
                "StartSession on {mount}: {}\n{}",
                name(e),
                daemon.log_text()
            )
        })
}

pub fn name(err: VixError) -> String {
    format!("{} ({err})", vix::name(err).unwrap_or("?"))
}

#[track_caller]
pub fn assert_vix(got: VixError, want: VixError, what: &str) {
    assert_eq!(name(got), name(want), "{what}");
}

/// The plugin, loaded and initialised as disklib does.
pub fn plugin() -> Plugin {
    let mut plugin = Plugin::load(&plugin_so()).unwrap();
    assert_eq!(plugin.init(), vix::OK);
    plugin
}
