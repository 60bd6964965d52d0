//! The workspace's built programs and the plugin library, for tests in any crate.
//!
//! `cargo test --workspace` builds them all before any test runs; a test run of one crate
//! alone builds what is missing with the same cargo and profile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The profile directory of the running test binary (`target/debug` or `target/release`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let mut dir = exe.parent().expect("test binary directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

static BUILD: Mutex<()> = Mutex::new(());

fn built(file: &Path, package: &str, extra: &[&str]) -> PathBuf {
    if file.exists() {
        return file.to_owned();
    }
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !file.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", package]).args(extra);
        if profile_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "cargo build -p {package} failed");
    }
    assert!(
        file.exists(),
        "{} is missing after the build",
        file.display()
    );
    file.to_owned()
}

/// `openvaaid`: beside the running program; else, outside cargo (an installed `openvaai
/// demo`), on the PATH; else built.
pub fn daemon_bin() -> PathBuf {
    let beside = profile_dir().join("openvaaid");
    if !beside.exists() && std::env::var_os("CARGO").is_none() {
        if let Some(found) = in_path("openvaaid") {
            return found;
        }
    }
    built(&beside, "openvaai-daemon", &["--bin", "openvaaid"])
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `openvaai`, built if missing.
pub fn cli_bin() -> PathBuf {
    built(
        &profile_dir().join("openvaai"),
        "openvaai-cli",
        &["--bin", "openvaai"],
    )
}

/// `libopenvaai.so`, built if missing.
///
/// `cargo test` builds the plugin's cdylib into `deps/` without copying it up to the profile
/// directory (only `cargo build` does), so the copy up there may be stale: the newer of the
/// two is the one this test run built.
pub fn plugin_so() -> PathBuf {
    let up = profile_dir().join("libopenvaai.so");
    let candidates = [profile_dir().join("deps/libopenvaai.so"), up.clone()];
    let newest = candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p.clone());
    newest.unwrap_or_else(|| built(&up, "openvaai-plugin", &["--lib"]))
}
