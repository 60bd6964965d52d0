//! Connection limits and deadlines: idle connections, slow handshakes, too many clients.

use super::*;

#[test]
fn idle_connection_is_closed_after_idle_timeout() {
    let d = Daemon::start_with("idle_timeout_seconds = 1", &[ExportSpec::plain()]);
    let mut c = d.authed(0);
    c.null().unwrap();
    let start = Instant::now();
    let s = c.stream_mut();
    s.sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(closed_within(s, Duration::from_secs(5)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(d.wait_for_log("closing idle connection", Duration::from_secs(2)));
}

#[test]
fn slow_or_half_open_handshake_is_bounded() {
    let d = Daemon::start_with(
        "handshake_timeout_seconds = 1\nidle_timeout_seconds = 60",
        &[ExportSpec::plain()],
    );
    // TCP connected, not a byte sent.
    let mut raw = TcpStream::connect(d.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut raw, Duration::from_secs(5)));
    assert!(start.elapsed() < Duration::from_secs(3));

    // TLS done, calls trickling in, but never authenticating: bounded by the same deadline.
    let mut c = d.client();
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(5) {
        if c.null().is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(closed, "unauthenticated connection kept open");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(d.wait_for_log("no authentication in time", Duration::from_secs(2)));
}

#[test]
fn too_many_connections_are_refused() {
    let d = Daemon::start_with(
        "max_connections = 1\nmax_unauthenticated = 1",
        &[ExportSpec::plain()],
    );
    let mut first = d.authed(0);
    // A second client gets through TLS but is closed when it authenticates.
    let mut second = d.client();
    assert!(
        second
            .authenticate(&d.name(0), &d.access(0).secret)
            .is_err(),
        "a second authenticated connection was kept"
    );
    assert!(d.wait_for_log("too many connections", Duration::from_secs(2)));
    // One unauthenticated slot: a connection that sends nothing holds it, and the next one
    // waits in the queue until the holder's grace is over; then the holder is dropped.
    let mut held = TcpStream::connect(d.addr()).unwrap();
    held.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let mut waiting = d.client();
    waiting.null().unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "it did not wait: {waited:?}"
    );
    assert!(closed_within(&mut held, Duration::from_millis(500)));
    assert!(d.wait_for_log(
        "dropped the oldest unauthenticated connection",
        Duration::from_secs(2)
    ));
    drop(waiting);
    // Closing the first frees the authenticated slot for a new client.
    first.null().unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = d.client();
        if matches!(c.authenticate(&d.name(0), &d.access(0).secret), Ok(Ok(_))) {
            break;
        }
        assert!(Instant::now() < deadline, "slot not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}
