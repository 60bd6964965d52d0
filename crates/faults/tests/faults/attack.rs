//! Connection-level attacks on a running daemon: a flood of 500 connections at once, slow
//! partial writes (a byte every 100 ms, before and after authentication), oversized and
//! truncated records. A well-behaved plugin session keeps working throughout, the daemon's
//! memory stays bounded and its descriptors come back to their baseline.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{write_layout, Run};

use crate::raw;
use crate::util::*;

const HANDSHAKE_S: u64 = 2;
const IDLE_S: u64 = 3;

/// Sends `first`, then one byte of `rest` every 100 ms, until the daemon closes the
/// connection or `give_up` passes. Returns how long the daemon took to close it.
fn trickle<S: Read + Write>(
    s: &mut S,
    first: &[u8],
    rest: &[u8],
    give_up: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    if s.write_all(first).and_then(|()| s.flush()).is_err() {
        return Some(start.elapsed());
    }
    let mut buf = [0u8; 512];
    let mut i = 0;
    while start.elapsed() < give_up {
        // The read timeout (100 ms) is the pace.
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
        let b = rest[i % rest.len()];
        i += 1;
        if s.write_all(&[b]).and_then(|()| s.flush()).is_err() {
            return Some(start.elapsed());
        }
    }
    None
}

#[test]
fn floods_and_slow_writers_do_not_stop_the_daemon_serving() {
    let _machine = exclusive();
    let Some(fx) = on_xfs(
        1 << 30,
        1,
        &format!(
            "max_connections = 64\nhandshake_timeout_seconds = {HANDSHAKE_S}\n\
             idle_timeout_seconds = {IDLE_S}"
        ),
    ) else {
        return;
    };
    let root = fx.exports[0].clone();
    write_layout(&root.join("a.vmdk"), &[Run::Data(MIB)], 100).unwrap();
    let export = root.to_str().unwrap().to_owned();
    let access = fx.daemon.access(0);
    let to: SocketAddr = raw::addr(IpAddr::from([127, 0, 0, 1]), &access);
    let pid = fx.daemon.pid();
    let id = fx.session(0);
    let path = fx.s(0, "a.vmdk");
    assert_vix(fx.plugin.statx(id, &path).unwrap().common.status, vix::OK);
    let baseline = fd_count(pid);
    let (_, hwm_before) = memory(pid);

    let stop = AtomicBool::new(false);
    let ok = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let flood_connected = AtomicUsize::new(0);
    let flood_refused = AtomicUsize::new(0);
    let flood_over = AtomicBool::new(false);
    std::thread::scope(|s| {
        // The well-behaved client: a STATX every 20 ms through the plugin.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let st = fx.plugin.statx(id, &path).unwrap().common.status;
                if st == vix::OK && t.elapsed() < Duration::from_millis(TIMEOUT_MS) {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    eprintln!("well-behaved STATX: {} in {:?}", name(st), t.elapsed());
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let mut attackers = Vec::new();
        // The flood: 500 connections at once, held for a second.
        attackers.push(s.spawn(|| {
            let mut held = Vec::new();
            for _ in 0..500 {
                match TcpStream::connect_timeout(&to, Duration::from_secs(3)) {
                    Ok(c) => {
                        flood_connected.fetch_add(1, Ordering::SeqCst);
                        held.push(c);
                    }
                    Err(_) => {
                        flood_refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(1));
            drop(held);
            flood_over.store(true, Ordering::SeqCst);
        }));
        // Slow writers before TLS: a ClientHello a byte at a time.
        for _ in 0..8 {
            attackers.push(s.spawn(|| {
                std::thread::sleep(Duration::from_millis(1500));
                let Ok(mut c) = raw::tcp(to, None) else {
                    return;
                };
                c.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let hello = [
                    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ];
                let took = trickle(&mut c, &[], &hello, Duration::from_secs(8));
                let took = took.expect("a slow handshake is closed");
                assert!(
                    took < Duration::from_secs(HANDSHAKE_S) + MARGIN,
                    "slow handshake closed after {took:?}"
                );
            }));
        }
        // Slow writers after AUTH: one record, a byte at a time; an oversized record; a
        // truncated record left hanging.
        let (export, access, flood_over) = (&export, &access, &flood_over);
        for k in 0..8 {
            attackers.push(s.spawn(move || {
                // After the flood (its slots take a moment to free): retried for 5 s.
                while !flood_over.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut c = loop {
                    let attempt = raw::tcp(to, None)
                        .and_then(|t| raw::tls_over(t, access.cert_sha256))
                        .map(openvaai_proto::Client::new);
                    if let Ok(mut c) = attempt {
                        // 6 and 7: TLS done, never authenticated.
                        if k >= 6 && c.null().is_ok() {
                            break c.into_inner();
                        }
                        if k < 6 && matches!(c.authenticate(export, &access.secret), Ok(Ok(_))) {
                            break c.into_inner();
                        }
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no slot for a new client after the flood"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                };
                c.sock
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let (first, bound): (Vec<u8>, Duration) = match k % 3 {
                    _ if k >= 6 => (
                        vec![0x80, 0, 0, 100],
                        Duration::from_secs(HANDSHAKE_S) + MARGIN,
                    ),
                    0 => (vec![0x80, 0, 0, 100], Duration::from_secs(IDLE_S) + MARGIN),
                    1 => (vec![0x7f, 0xff, 0xff, 0xff], MARGIN),
                    _ => {
                        let mut v = vec![0x80, 0, 1, 0];
                        v.extend_from_slice(&[0; 16]);
                        (v, Duration::from_secs(IDLE_S) + MARGIN)
                    }
                };
                let rest: &[u8] = if k % 3 == 2 && k < 6 { &[] } else { &[0] };
                let took = if rest.is_empty() {
                    let _ = c.write_all(&first).and_then(|()| c.flush());
                    let start = Instant::now();
                    let (_, closed) = raw::drain(&mut c, Duration::from_secs(8));
                    closed.then(|| start.elapsed())
                } else {
                    trickle(&mut c, &first, rest, Duration::from_secs(8))
                };
                let took = took.expect("the connection is closed");
                assert!(took < bound, "case {k}: closed after {took:?}");
            }));
        }
        for a in attackers {
            if let Err(p) = a.join() {
                stop.store(true, Ordering::SeqCst);
                std::panic::resume_unwind(p);
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    let (ok, failures) = (ok.into_inner(), failures.into_inner());
    let (connected, refused) = (flood_connected.into_inner(), flood_refused.into_inner());
    let fds_after = wait_fds_at_most(pid, baseline + 2, Duration::from_secs(10));
    let (rss, hwm) = memory(pid);
    println!(
        "attack: flood {connected} connected / {refused} failed to connect, 8 slow handshakes, \
         8 slow, oversized or truncated records; well-behaved STATX {ok} ok, {failures} failed; fds {baseline} \
         before, {fds_after} after; VmRSS {} MiB, VmHWM {} MiB (before {} MiB)",
        rss / MIB,
        hwm / MIB,
        hwm_before / MIB
    );
    assert_eq!(failures, 0, "the well-behaved client failed");
    assert!(ok >= 50, "only {ok} STATX calls went through");
    assert!(fds_after <= baseline + 2, "fds {baseline} -> {fds_after}");
    assert!(hwm < 64 * MIB, "VmHWM {} MiB", hwm / MIB);
    let log = fx.daemon.log_text();
    assert!(
        log.contains("dropped the oldest unauthenticated connection"),
        "the flood's connections are dropped for newer ones, and that is logged"
    );
    assert!(log.contains("no authentication in time"));
    assert!(log.contains("TLS handshake failed"));
    assert!(log.contains("closing idle connection"));
    assert!(log.contains("closing connection: limit exceeded"));
    // And a new client is served after the attack.
    let mut c = raw::authed(to, &export, &access);
    c.null().unwrap();
    assert_vix(fx.plugin.statx(id, &path).unwrap().common.status, vix::OK);
}

#[test]
fn a_connection_flood_does_not_flood_the_log() {
    let _machine = exclusive();
    let Some(fs) = test_fs(openvaai_testkit::FsKind::Xfs, 1 << 30) else {
        return;
    };
    let root = fs.path().join("ds0");
    let fx = fixture(
        vec![fs],
        &[(root.clone(), "allowed_networks = [\"127.0.0.1/32\"]")],
        "",
    );
    let to: SocketAddr = raw::addr(IpAddr::from([127, 0, 0, 1]), &fx.daemon.access(0));
    let lines_before = fx.daemon.log_text().lines().count();
    // Two kinds of noise for 3 s: connections from an address no export allows (closed at
    // accept, before TLS), and connections that close before finishing TLS.
    let start = Instant::now();
    let mut made = 0;
    let mut c = raw::tcp(to, Some(IpAddr::from([127, 0, 0, 2]))).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let (_, closed) = raw::drain(&mut c, Duration::from_secs(1));
    assert!(
        closed,
        "a refused address is closed at once, before any TLS"
    );
    while start.elapsed() < Duration::from_secs(3) {
        if raw::tcp(to, Some(IpAddr::from([127, 0, 0, 2]))).is_ok() {
            made += 1;
        }
        if let Ok(mut c) = TcpStream::connect(to) {
            made += 1;
            let _ = c.write_all(&[0x16, 0x03, 0x01]);
        }
    }
    // The summaries of the last window come after it ends.
    assert!(wait_for_line(
        &fx.daemon,
        &["held back in the last 10 s"],
        Duration::from_secs(15)
    ));
    let log = fx.daemon.log_text();
    let lines = log.lines().count() - lines_before;
    println!("connection flood: {made} connections in 3 s, {lines} log lines");
    assert!(made > 200, "the flood was too small to tell: {made}");
    assert!(
        lines < 40,
        "{lines} log lines for {made} connections:\n{log}"
    );
    assert!(log.contains("not in any export's allowed_networks"));
    assert!(log.contains("TLS handshake failed"));
}
