//! systemd's notification protocol, as `Type=notify` with `WatchdogSec=` sees it: the test
//! binds the `$NOTIFY_SOCKET` datagram socket systemd would, starts a real openvaaid with it
//! and `$WATCHDOG_USEC`, and reads what arrives.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openvaai_testkit::access_path;
use rustix::process::{kill_process, Pid, Signal};

/// openvaaid on `export`, notifying `socket`, with `env` besides.
fn start(export: &Path, state: &Path, socket: &Path, env: &[(&str, &str)]) -> Child {
    let mut c = Command::new(openvaai_testkit::daemon_bin());
    c.args(["--listen", "127.0.0.1:0", "--export"])
        .arg(export)
        .arg("--state-dir")
        .arg(state)
        .env("NOTIFY_SOCKET", socket)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

fn signal(child: &Child, sig: Signal) {
    kill_process(Pid::from_raw(child.id() as i32).unwrap(), sig).unwrap();
}

/// The next datagram within `within`, as text.
fn next(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Every datagram that arrives within `during`.
fn collect(sock: &UnixDatagram, during: Duration) -> Vec<String> {
    let end = Instant::now() + during;
    let mut out = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match next(sock, left.max(Duration::from_millis(1))) {
            Some(m) => out.push(m),
            None => break,
        }
    }
    out
}

#[test]
fn ready_comes_once_listening_with_access_files_and_the_watchdog_keeps_coming() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // WatchdogSec=0.3: a ping every 150 ms.
    let mut daemon = start(
        &export,
        &dir.path().join("state"),
        &path,
        &[("WATCHDOG_USEC", "300000")],
    );
    let first = next(&sock, Duration::from_secs(20)).expect("no notification at all");
    // Stop the daemon the moment READY arrives: what it claims must already be true.
    signal(&daemon, Signal::STOP);
    assert!(first.lines().any(|l| l == "READY=1"), "first: {first:?}");
    assert!(
        first.contains("STATUS=serving 1 export; 0 jobs running, 0 queued"),
        "{first:?}"
    );
    let access = std::fs::read(access_path(&export)).expect("READY before the access file");
    let access = openvaai_proto::access::AccessFile::parse(&access).unwrap();
    // The listener accepts (the kernel queues the connection while the daemon is stopped).
    std::net::TcpStream::connect(("127.0.0.1", access.port)).expect("READY before listening");
    signal(&daemon, Signal::CONT);

    let msgs = collect(&sock, Duration::from_millis(1500));
    let pings = msgs.iter().filter(|m| m.as_str() == "WATCHDOG=1").count();
    assert!(pings >= 5, "watchdog pings in 1.5 s: {pings} ({msgs:?})");
    assert!(
        !msgs.iter().any(|m| m.contains("READY=1")),
        "READY twice: {msgs:?}"
    );

    // A frozen daemon stops pinging: systemd would restart it.
    signal(&daemon, Signal::STOP);
    let _ = collect(&sock, Duration::from_millis(50));
    let frozen = collect(&sock, Duration::from_millis(600));
    assert!(frozen.is_empty(), "pings from a stopped daemon: {frozen:?}");
    signal(&daemon, Signal::CONT);

    signal(&daemon, Signal::TERM);
    let rest = collect(&sock, Duration::from_secs(5));
    assert!(
        rest.iter().any(|m| m.starts_with("STOPPING=1")),
        "no STOPPING=1: {rest:?}"
    );
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn no_watchdog_pings_for_another_pid_or_without_watchdog_usec() {
    let dir = tempfile::tempdir().unwrap();
    for (i, env) in [
        &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")][..],
        &[][..],
    ]
    .into_iter()
    .enumerate()
    {
        let export = dir.path().join(format!("export{i}"));
        std::fs::create_dir(&export).unwrap();
        let path = dir.path().join(format!("notify{i}.sock"));
        let sock = UnixDatagram::bind(&path).unwrap();
        let mut daemon = start(&export, &dir.path().join(format!("state{i}")), &path, env);
        let first = next(&sock, Duration::from_secs(20)).expect("no READY");
        assert!(first.starts_with("READY=1"), "{first:?}");
        let msgs = collect(&sock, Duration::from_millis(800));
        assert!(
            !msgs.iter().any(|m| m.contains("WATCHDOG=1")),
            "{env:?}: {msgs:?}"
        );
        signal(&daemon, Signal::TERM);
        assert!(daemon.wait().unwrap().success());
    }
}
