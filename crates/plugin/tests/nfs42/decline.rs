//! A datastore with neither `.openvaai/access` nor `.openvaai/nfs42` is declined at once,
//! with no socket opened; with `.openvaai/nfs42` the plugin does go to the network.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_host::Plugin;

use crate::{assert_vix, datastore, serial};

/// The sockets this process holds (`/proc/self/fd` links to `socket:[inode]`).
fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn neither_marker_is_declined_in_under_a_millisecond_without_a_socket() {
    let _one = serial();
    let mut plugin = Plugin::load(&openvaai_testkit::plugin_so()).unwrap();
    assert_vix(plugin.init(), vix::OK);
    let local = tempfile::tempdir().unwrap();
    // A listener the plugin would reach if it went to the network: remoteIP 127.0.0.1 and
    // the port below in a marker (written further down).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let ds = datastore("127.0.0.1", "/export/x", local.path());
    std::fs::create_dir(local.path().join(".openvaai")).unwrap();
    // A directory named like the marker is not a marker.
    std::fs::create_dir(local.path().join(".openvaai/nfs42")).unwrap();
    let before = sockets();
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let t = Instant::now();
        assert_vix(
            plugin.start_session(&ds, None).unwrap_err(),
            vix::E_NOT_SUPPORTED,
        );
        slowest = slowest.max(t.elapsed());
    }
    assert_eq!(sockets(), before, "a socket was opened to decline");
    assert!(l.accept().is_err(), "the plugin connected");
    assert!(
        slowest < Duration::from_millis(1),
        "slowest decline {slowest:?}"
    );
    let said = openvaai_host::take_log();
    assert!(
        said.iter()
            .any(|l| l.text.contains(".openvaai/nfs42 is absent")),
        "{said:?}"
    );

    // The marker as a regular file: the plugin now goes to remoteIP:port (a port neither
    // 2049 nor privileged: allowed here as the ESXi host's administrator would).
    openvaai_testkit::guest::allow_nfs42_port(port);
    std::fs::remove_dir(local.path().join(".openvaai/nfs42")).unwrap();
    std::fs::write(
        local.path().join(".openvaai/nfs42"),
        format!("port = {port}\n"),
    )
    .unwrap();
    // Accepts for 5 s at most (non-blocking polls), then closes at once.
    let accepted = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if l.accept().is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    });
    // The listener accepts and closes: the session set-up fails.
    let got = plugin.start_session(&ds, Some(500)).unwrap_err();
    assert!(
        accepted.join().unwrap(),
        "no connection to the marker's port"
    );
    assert!(
        got == vix::E_HOST_CONNECTION_LOST || got == vix::E_HOST_NOT_CONNECTED,
        "{}",
        crate::name(got)
    );
    // A marker that is not what it may be is refused before the network.
    std::fs::write(
        local.path().join(".openvaai/nfs42"),
        "address = \"10.0.0.1\"\n",
    )
    .unwrap();
    let before = sockets();
    assert_vix(
        plugin.start_session(&ds, None).unwrap_err(),
        vix::E_NOT_SUPPORTED,
    );
    assert_eq!(sockets(), before);
}
