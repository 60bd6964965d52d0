//! The plugin as disklib sees it: the interface's layout as a C compiler makes it, and the
//! built library loaded with `dlopen` by a C host.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built `libopenvaai.so` beside this test's binary.
fn plugin_so() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        let so = dir.join("libopenvaai.so");
        if so.exists() {
            return so;
        }
    }
    panic!("libopenvaai.so not found near {}", deps.display());
}

/// Compiles tests/c/host.c against the project's header, into `out`.
fn build_host(out: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = manifest.join("../abi/include");
    let exe = out.join("host");
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(0)
        .target("x86_64-unknown-linux-gnu")
        .host("x86_64-unknown-linux-gnu")
        .get_compiler();
    let status = compiler
        .to_command()
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(&include)
        .arg(manifest.join("tests/c/host.c"))
        .arg("-ldl")
        .status()
        .expect("running the C compiler");
    assert!(status.success(), "tests/c/host.c does not compile");
    exe
}

#[test]
fn c_layout_of_the_header_matches_the_rust_types() {
    let dir = tempfile::tempdir().unwrap();
    let host = build_host(dir.path());
    let out = Command::new(&host).arg("layout").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let c: Vec<(String, usize)> = text
        .lines()
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect();
    let rust = openvaai_abi::layout();
    assert_eq!(c.len(), rust.len(), "C and Rust list different members");
    for ((cn, cv), (rn, rv)) in c.iter().zip(rust.iter()) {
        assert_eq!(cn, rn, "member lists out of order");
        assert_eq!(cv, rv, "{cn}: C says {cv}, Rust says {rv}");
    }
}

#[test]
fn c_host_loads_the_plugin_and_foreign_datastores_are_declined() {
    let dir = tempfile::tempdir().unwrap();
    let host = build_host(dir.path());
    let foreign = tempfile::tempdir().unwrap();
    let out = Command::new(&host)
        .arg("load")
        .arg(plugin_so())
        .arg(foreign.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "C host failed:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ok: "), "{stdout}");
    assert!(
        stdout.contains("declining datastore"),
        "declines are logged: {stdout}"
    );
    assert!(stderr.is_empty(), "stderr: {stderr}");
}
