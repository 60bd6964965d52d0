//! `GET /metrics` over plain HTTP/1.x, on one thread, for Prometheus.
//!
//! One thread polls the listener and every scraper's socket (all non-blocking), so a scraper
//! never holds a thread and never makes another wait: at most [`MAX_SCRAPERS`] connections
//! at once, each with [`DEADLINE`] from its accept to send a request of at most
//! [`MAX_REQUEST`] bytes and take the reply (one request per connection; then the daemon
//! closes its side and drops what else comes until the scraper closes). When all places are
//! taken, one already answered, or else the oldest one still sending its request once it has
//! had [`GRACE`], gives way to a new one; otherwise the new one gets `503` at once. Anything but `GET
//! /metrics` is refused: another method `405`, another path `404`, an oversized request
//! `431`, a malformed one `400`. None of this touches the RPC listeners, connections or jobs.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request::{self, Request};
use crate::loglimit::limited;
use crate::state::Shared;

/// Scrapers connected at once, at most.
pub const MAX_SCRAPERS: usize = 8;
/// From accept to the last byte of the reply.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// A request (its line and headers), at most.
pub const MAX_REQUEST: usize = 8192;
/// How long a scraper keeps its place before a newer one may take it.
pub const GRACE: Duration = Duration::from_secs(1);
/// After its reply, what a scraper may still send (and is read and dropped) before the
/// close, so that the close does not reset the connection under the reply.
const MAX_DRAIN: usize = 64 << 10;
/// How often the loop looks at the shutdown flag and the deadlines.
const TICK: Duration = Duration::from_millis(100);

struct Scraper {
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    request: Vec<u8>,
    /// The reply and how much of it is written.
    reply: Option<(Vec<u8>, usize)>,
    /// The reply is written: what else comes is read and dropped until the peer closes.
    closing: bool,
    drained: usize,
}

/// Serves `listener` (non-blocking) until the daemon shuts down.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut scrapers: Vec<Scraper> = Vec::new();
    while !shared.shutdown.load(Ordering::SeqCst) {
        wait(&listener, &scrapers);
        accept(&listener, &mut scrapers);
        let now = Instant::now();
        scrapers.retain_mut(|s| step(s, &shared, now));
    }
}

/// `poll(listener and scrapers, TICK)`: a scraper waiting for its reply is polled for
/// writing, the others for reading.
fn wait(listener: &TcpListener, scrapers: &[Scraper]) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = vec![PollFd::new(listener, PollFlags::IN)];
    fds.extend(scrapers.iter().map(|s| {
        let flags = if s.reply.is_some() && !s.closing {
            PollFlags::OUT
        } else {
            PollFlags::IN
        };
        PollFd::new(&s.stream, flags)
    }));
    let ts = Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as _,
    };
    let _ = rustix::event::poll(&mut fds, Some(&ts));
}

fn accept(listener: &TcpListener, scrapers: &mut Vec<Scraper>) {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return
            }
            Err(e) => {
                limited!(warn, {}, "metrics endpoint: accept: {e}");
                return;
            }
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let now = Instant::now();
        if scrapers.len() >= MAX_SCRAPERS {
            let oldest = scrapers
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    s.closing || (s.reply.is_none() && now.duration_since(s.accepted) >= GRACE)
                })
                .min_by_key(|(_, s)| s.accepted)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    let old = scrapers.swap_remove(i);
                    limited!(warn, { peer = %old.peer, }, "metrics endpoint: dropped a scraper that sent no request, to make room");
                }
                None => {
                    limited!(warn, { %peer, max = MAX_SCRAPERS, }, "metrics endpoint: too many scrapers, refused");
                    let _ = (&stream).write(&response(503, "too many scrapers\n", &[]));
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
            }
        }
        scrapers.push(Scraper {
            stream,
            peer,
            accepted: now,
            request: Vec::new(),
            reply: None,
            closing: false,
            drained: 0,
        });
    }
}

/// Moves one scraper on; `false` when it is done with (closed).
fn step(s: &mut Scraper, shared: &Shared, now: Instant) -> bool {
    if now.duration_since(s.accepted) >= DEADLINE {
        limited!(info, { peer = %s.peer, }, "metrics endpoint: scraper closed at its deadline");
        return false;
    }
    let mut buf = [0u8; 2048];
    if s.closing {
        loop {
            match s.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    s.drained += n;
                    if s.drained > MAX_DRAIN {
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
    if s.reply.is_none() {
        loop {
            match s.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    s.request.extend_from_slice(&buf[..n]);
                    if let Some(reply) = answer(&s.request, shared) {
                        s.reply = Some((reply, 0));
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
    let Some((reply, written)) = s.reply.as_mut() else {
        return true;
    };
    while *written < reply.len() {
        match s.stream.write(&reply[*written..]) {
            Ok(0) => return false,
            Ok(n) => *written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    let _ = s.stream.shutdown(Shutdown::Write);
    s.closing = true;
    true
}

/// The reply to `request` once it is whole (or too big); `None` while more may come.
fn answer(request: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    match request::parse(request, MAX_REQUEST) {
        Request::Incomplete => None,
        Request::TooLarge => Some(response(431, "request too large\n", &[])),
        Request::Malformed => Some(response(400, "bad request\n", &[])),
        Request::NotGet => Some(response(405, "only GET\n", &[("Allow", "GET")])),
        Request::NotMetrics => Some(response(404, "only /metrics\n", &[])),
        Request::Metrics => {
            let body = shared
                .metrics
                .render(shared.activity.refresh(), shared.slots.counts());
            Some(response(
                200,
                &body,
                &[(
                    "Content-Type",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
            ))
        }
    }
}

/// A whole HTTP/1.1 response that closes the connection.
fn response(code: u16, body: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| *k == "Content-Type") {
        head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}
