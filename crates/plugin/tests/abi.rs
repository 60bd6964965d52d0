//! The plugin as disklib sees it: the interface's layout as a C compiler makes it, and the
//! built library loaded with `dlopen` by a C host.

use std::process::Command;

#[path = "support/chost.rs"]
mod chost;

use openvaai_testkit::plugin_so;

fn build_host(out: &std::path::Path) -> std::path::PathBuf {
    chost::build(out)
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
