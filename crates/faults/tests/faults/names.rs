//! How the plugin finds the NAS: a `remoteIP` list (NFS 4.1 multipath) whose first address
//! is dead or never answers, and host names looked up through a name server that answers,
//! one that never does, and `/etc/hosts` — each call within its session timeout.
//!
//! The name tests run the `openvaai` tool (which loads the plugin as disklib does) in a mount
//! namespace of their own, where `/etc/resolv.conf` and `/etc/hosts` are files the test
//! wrote, pointing at a name server on a loopback address the test holds.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{write_layout, Run};

use crate::util::*;

#[test]
fn a_remote_ip_list_is_tried_in_order_within_the_timeout() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 1, "") else {
        return;
    };
    write_layout(&fx.path(0, "a.vmdk"), &[Run::Data(MIB)], 7).unwrap();
    let port = fx.daemon.port();
    // 127.0.0.9 refuses (nothing listens); 127.0.0.10 accepts TCP and never answers TLS.
    let silent = TcpListener::bind(SocketAddr::from(([127, 0, 0, 10], port))).unwrap();
    for list in [
        "127.0.0.9,127.0.0.1",
        "127.0.0.10, 127.0.0.1",
        "127.0.0.9 127.0.0.10 127.0.0.1",
    ] {
        let t = Instant::now();
        let id = fx
            .plugin
            .start_session(&datastore_at(&fx.exports[0], list), Some(4000))
            .unwrap_or_else(|e| panic!("remoteIP {list:?}: {}", name(e)));
        let took = t.elapsed();
        let st = fx
            .plugin
            .statx(id, &fx.s(0, "a.vmdk"))
            .unwrap()
            .common
            .status;
        assert_vix(st, vix::OK);
        fx.plugin.end_session(id);
        println!("remoteIP {list:?}: session in {took:?}");
        assert!(
            took < Duration::from_millis(4000) + MARGIN,
            "{list:?}: {took:?}"
        );
    }
    // Every address dead: a bounded failure that names them.
    let t = Instant::now();
    let got = fx.plugin.start_session(
        &datastore_at(&fx.exports[0], "127.0.0.9,127.0.0.10"),
        Some(2000),
    );
    assert_eq!(got.map_err(name), Err(name(vix::E_HOST_NOT_CONNECTED)));
    assert!(t.elapsed() < Duration::from_millis(2000) + MARGIN);
    drop(silent);
}

/// A name server on `addr`:53 that answers every A query with 127.0.0.1 (`answer`), or
/// never answers at all; it serves until its socket is quiet for `quiet`.
fn name_server(addr: [u8; 4], answer: bool, quiet: Duration) -> std::thread::JoinHandle<usize> {
    openvaai_testkit::dns::name_server(
        SocketAddr::from((addr, 53)),
        answer.then_some(std::net::Ipv4Addr::LOCALHOST),
        quiet,
    )
}

/// Runs `openvaai statx` on `file` of `export` with `--nas-ip nas` in a mount namespace
/// whose /etc/resolv.conf names `server` and whose /etc/hosts is `hosts`.
fn statx_by_name(
    dir: &Path,
    export: &Path,
    nas: &str,
    server: &str,
    hosts: &str,
) -> (Output, Duration) {
    std::fs::write(
        dir.join("resolv.conf"),
        format!("nameserver {server}\noptions timeout:5 attempts:2\n"),
    )
    .unwrap();
    std::fs::write(dir.join("hosts"), hosts).unwrap();
    let script = format!(
        "mount --bind {d}/resolv.conf /etc/resolv.conf && mount --bind {d}/hosts /etc/hosts && \
         exec {cli} statx -d {e} --nas-ip {nas} --timeout-ms 2000 --plugin {so} a.vmdk",
        d = dir.display(),
        cli = openvaai_testkit::cli_bin().display(),
        e = export.display(),
        so = openvaai_testkit::plugin_so().display(),
    );
    let t = Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("running unshare");
    (out, t.elapsed())
}

#[test]
fn host_names_are_looked_up_within_the_session_timeout() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 1, "") else {
        return;
    };
    write_layout(&fx.path(0, "a.vmdk"), &[Run::Data(MIB)], 8).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let export = &fx.exports[0];
    let bound = Duration::from_millis(2000) + MARGIN;
    let hosts = "127.0.0.1 localhost\n127.0.0.1 nas-in-hosts\n";

    // A name server that answers.
    let server = name_server([127, 0, 0, 77], true, Duration::from_secs(3));
    let (out, took) = statx_by_name(dir.path(), export, "nas.openvaai.test", "127.0.0.77", hosts);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "by DNS: {text}");
    assert!(took < bound, "by DNS: {took:?}");
    assert!(server.join().unwrap() >= 1, "the name server was asked");

    // /etc/hosts first: no name server is asked.
    let server = name_server([127, 0, 0, 77], false, Duration::from_secs(2));
    let (out, _) = statx_by_name(dir.path(), export, "nas-in-hosts", "127.0.0.77", hosts);
    assert!(
        out.status.success(),
        "by /etc/hosts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.join().unwrap(), 0, "/etc/hosts answered first");

    // A name server that never answers: the call ends within its timeout, saying why.
    let server = name_server([127, 0, 0, 77], false, Duration::from_secs(4));
    let (out, took) = statx_by_name(dir.path(), export, "nas.openvaai.test", "127.0.0.77", hosts);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!(
        "silent name server: the call ended after {took:?}: {}",
        text.trim()
    );
    assert!(!out.status.success());
    assert!(took < bound, "a silent name server held the call {took:?}");
    assert!(text.contains("name server 127.0.0.77"), "{text}");
    assert!(server.join().unwrap() >= 1);
}
