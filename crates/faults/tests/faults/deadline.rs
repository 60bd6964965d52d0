//! Deadlines that hold per byte, on both sides: a slowloris that trickles TLS hellos from 80
//! connections while real ESXi sessions are served; an unauthenticated client that pipelines
//! calls and never reads a reply; and a path to the daemon that trickles its answers back to
//! the plugin (a slow proxy: no key needed), against which every plugin call must end within
//! its session timeout.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openvaai_abi::{clone_flag, vix};
use openvaai_testkit::{write_layout, Run};

use crate::raw;
use crate::util::*;

/// The start of a TLS ClientHello (record header and handshake header), sent a byte at a time.
const HELLO: [u8; 11] = [
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

#[test]
fn a_trickling_slowloris_does_not_keep_real_clients_out() {
    let _machine = exclusive();
    const HANDSHAKE_S: u64 = 3;
    let Some(fx) = on_xfs(
        1 << 30,
        1,
        &format!("handshake_timeout_seconds = {HANDSHAKE_S}"),
    ) else {
        return;
    };
    write_layout(&fx.path(0, "a.vmdk"), &[Run::Data(MIB)], 3).unwrap();
    let to = raw::addr(IpAddr::from([127, 0, 0, 1]), &fx.daemon.access(0));
    let stop = AtomicBool::new(false);
    let longest = Mutex::new(Duration::ZERO);
    let connections = AtomicUsize::new(0);
    let mut served = Vec::new();
    std::thread::scope(|s| {
        // 80 connections, each sending its hello a byte a second; reconnecting when closed.
        for _ in 0..80 {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(mut c) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let start = Instant::now();
                    for b in HELLO.iter().cycle() {
                        if stop.load(Ordering::SeqCst) || c.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    let mut l = longest.lock().unwrap();
                    *l = (*l).max(start.elapsed());
                }
            });
        }
        // Once they hold their slots: three ESXi hosts start sessions and call STATX.
        std::thread::sleep(Duration::from_secs(2));
        for _ in 0..3 {
            let t = Instant::now();
            let st = match fx
                .plugin
                .start_session(&datastore(&fx.exports[0]), Some(5000))
            {
                Ok(id) => {
                    let st = fx
                        .plugin
                        .statx(id, &fx.s(0, "a.vmdk"))
                        .unwrap()
                        .common
                        .status;
                    fx.plugin.end_session(id);
                    st
                }
                Err(e) => e,
            };
            served.push((name(st), t.elapsed()));
            std::thread::sleep(Duration::from_secs(1));
        }
        // Long enough for every trickler to meet the handshake deadline at least once.
        std::thread::sleep(Duration::from_secs(HANDSHAKE_S));
        stop.store(true, Ordering::SeqCst);
    });
    let longest = longest.into_inner().unwrap();
    println!(
        "slowloris: 80 trickling connections ({} in all), real sessions {served:?}, longest \
         trickler connection {longest:?}",
        connections.into_inner()
    );
    for (st, took) in &served {
        assert_eq!(st, &name(vix::OK), "a real client was kept out ({took:?})");
    }
    // A byte a second: the close is seen at the next write after the deadline.
    assert!(
        longest < Duration::from_secs(HANDSHAKE_S) + MARGIN + Duration::from_secs(1),
        "a trickling connection stayed open {longest:?}"
    );
    assert!(fx.daemon.log_text().contains("TLS handshake failed"));
}

#[test]
fn an_unauthenticated_client_that_never_reads_is_closed_at_the_handshake_deadline() {
    let _machine = shared();
    // Long enough for the daemon's replies to fill the socket buffers (megabytes of them)
    // well before the deadline, so that it is writing, not reading, when the deadline comes.
    const HANDSHAKE_S: u64 = 6;
    let Some(fx) = on_xfs(
        1 << 30,
        1,
        &format!("handshake_timeout_seconds = {HANDSHAKE_S}"),
    ) else {
        return;
    };
    let to = raw::addr(IpAddr::from([127, 0, 0, 1]), &fx.daemon.access(0));
    // A tiny receive window, so that the daemon's replies back up at once.
    let sock = {
        use rustix::net::{sockopt, AddressFamily, SocketType};
        let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
        rustix::net::connect(&fd, &to).unwrap();
        let s = TcpStream::from(fd);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let start = Instant::now();
    let mut tls = raw::tls_over(sock, fx.daemon.access(0).cert_sha256).unwrap();
    tls.sock
        .set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    tls.conn.set_buffer_limit(Some(1 << 20));
    // NULL calls, pipelined, never a reply read: a batch of records per TLS write.
    let null = openvaai_proto::rpc::encode_call(7, openvaai_proto::PROC_NULL, &[]);
    let mut record = ((null.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
    record.extend_from_slice(&null);
    let batch: Vec<u8> = record.repeat(256);
    let mut sent = 0usize;
    let mut looked = Instant::now();
    let closed = loop {
        if looked.elapsed() > Duration::from_millis(50) {
            looked = Instant::now();
            if fx.daemon.log_text().contains("no authentication in time") {
                break Some(start.elapsed());
            }
        }
        if start.elapsed() > Duration::from_secs(HANDSHAKE_S + 10) {
            break None;
        }
        // Plaintext into rustls, ciphertext out to the socket; never a read (StreamOwned's
        // write would read replies too).
        sent += tls.conn.writer().write(&batch).unwrap_or(0);
        match tls.conn.write_tls(&mut tls.sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let closed = closed.unwrap_or_else(|| {
        panic!(
            "the daemon kept writing to a client that never reads ({} calls sent):\n{}",
            sent / record.len(),
            fx.daemon.log_text()
        )
    });
    println!(
        "never-reading client: {} calls sent, closed by the daemon after {closed:?}",
        sent / record.len()
    );
    assert!(
        closed < Duration::from_secs(HANDSHAKE_S) + MARGIN,
        "closed after {closed:?}"
    );
}

/// Copies `from` to `to` until either closes or `stop`: at once, or a byte per 100 ms while
/// `slow` is set (`None`: never slow).
fn pump(mut from: TcpStream, mut to: TcpStream, slow: Option<&AtomicBool>, stop: &AtomicBool) {
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16384];
    while !stop.load(Ordering::SeqCst) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        let trickle = slow.is_some_and(|s| s.load(Ordering::SeqCst));
        for chunk in buf[..n].chunks(if trickle { 1 } else { n }) {
            if stop.load(Ordering::SeqCst) || to.write_all(chunk).is_err() {
                return;
            }
            if trickle {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A TCP proxy on `listen` to `upstream` that passes the client's bytes at once and the
/// server's a byte per 100 ms while `slow` is set. Runs until `stop`.
fn slow_proxy(listen: SocketAddr, upstream: SocketAddr, slow: &AtomicBool, stop: &AtomicBool) {
    let l = TcpListener::bind(listen).expect("binding the proxy");
    l.set_nonblocking(true).unwrap();
    std::thread::scope(|s| {
        while !stop.load(Ordering::SeqCst) {
            let Ok((client, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            client.set_nonblocking(false).unwrap();
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            s.spawn(move || pump(client, server, None, stop));
            s.spawn(move || pump(s2, c2, Some(slow), stop));
        }
    });
}

#[test]
fn a_trickling_path_to_the_daemon_cannot_hold_a_plugin_call_past_its_timeout() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 1, "") else {
        return;
    };
    write_layout(&fx.path(0, "a.vmdk"), &[Run::Data(8 * MIB)], 5).unwrap();
    let port = fx.daemon.port();
    let proxy: SocketAddr = ([127, 0, 0, 3], port).into();
    let slow = AtomicBool::new(true);
    let stop = AtomicBool::new(false);
    let ds = datastore_at(&fx.exports[0], "127.0.0.3");
    let bound = Duration::from_millis(TIMEOUT_MS) + MARGIN;
    let mut took = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| slow_proxy(proxy, fx.daemon.addr(), &slow, &stop));
        std::thread::sleep(Duration::from_millis(200));
        // Slow from the first byte: StartSession (the TLS handshake) ends in time.
        let t = Instant::now();
        let st = match fx.plugin.start_session(&ds, Some(TIMEOUT_MS)) {
            Ok(id) => {
                fx.plugin.end_session(id);
                vix::OK
            }
            Err(e) => e,
        };
        took.push(("StartSession", t.elapsed(), name(st)));
        // A session opened fast, then the path turns slow: STATX, a clone, a reserve.
        slow.store(false, Ordering::SeqCst);
        let id = fx.plugin.start_session(&ds, Some(TIMEOUT_MS)).unwrap();
        slow.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2500));
        let t = Instant::now();
        let st = fx
            .plugin
            .statx(id, &fx.s(0, "a.vmdk"))
            .unwrap()
            .common
            .status;
        took.push(("STATX", t.elapsed(), name(st)));
        let t = Instant::now();
        let (st, _) = clone_with(
            &fx.plugin,
            id,
            &fx.s(0, "a.vmdk"),
            &fx.s(0, "b.vmdk"),
            clone_flag::GUARDED,
            None,
            MIB,
            &mut |_| true,
        );
        took.push(("CLONEFILE", t.elapsed(), name(st)));
        stop.store(true, Ordering::SeqCst);
        fx.plugin.end_session(id);
    });
    println!("through a trickling path (timeout {TIMEOUT_MS} ms): {took:?}");
    for (what, t, st) in &took {
        assert_ne!(
            st,
            &name(vix::OK),
            "{what} succeeded through a byte per 100 ms?"
        );
        assert!(*t < bound, "{what} took {t:?} (bound {bound:?})");
    }
    // Whatever the clone did on the NAS, nothing partial is visible.
    assert_no_temporaries(&fx.exports[0]);
}
