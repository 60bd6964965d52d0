//! systemd's notification protocol (sd_notify(3)) for `Type=notify`: `READY=1` once the
//! listeners are bound and every access file is written, `WATCHDOG=1` from the serving loop
//! at half of `$WATCHDOG_USEC` (a daemon whose loop hangs stops sending it, and systemd
//! restarts it), `STATUS=` with the job count, and `STOPPING=1` at shutdown. Each message is
//! one datagram to the unix socket in `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). Without `$NOTIFY_SOCKET` (not under systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use crate::state::Shared;

/// STATUS= is refreshed at most this often (when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(1);

pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    /// Half of `$WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog: Option<Duration>,
    last_ping: Instant,
    last_status: String,
    last_status_at: Instant,
    warned: bool,
}

impl Notifier {
    /// From the environment systemd gives the service.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let addr = address(p.to_str()?)?;
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let for_me = std::env::var("WATCHDOG_PID")
            .map(|p| p.trim() == std::process::id().to_string())
            .unwrap_or(true);
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_me && socket.is_some())
            .map(|u| Duration::from_micros(u) / 2);
        if let Some(w) = watchdog {
            tracing::info!(every_ms = w.as_millis() as u64, "systemd watchdog on");
        }
        Notifier {
            socket,
            watchdog,
            last_ping: Instant::now(),
            last_status: String::new(),
            last_status_at: Instant::now(),
            warned: false,
        }
    }

    /// `READY=1` with the first STATUS=.
    pub fn ready(&mut self, shared: &Shared) {
        let status = status_text(shared);
        self.send(&format!("READY=1\nSTATUS={status}"));
        self.last_status = status;
        self.last_status_at = Instant::now();
        self.last_ping = Instant::now();
    }

    /// From the serving loop, each time round: WATCHDOG=1 when half the watchdog period
    /// has passed, STATUS= when it changed.
    pub fn tick(&mut self, shared: &Shared) {
        if self.socket.is_none() {
            return;
        }
        let now = Instant::now();
        if let Some(every) = self.watchdog {
            if now.duration_since(self.last_ping) >= every {
                self.send("WATCHDOG=1");
                self.last_ping = now;
            }
        }
        if now.duration_since(self.last_status_at) >= STATUS_EVERY {
            self.last_status_at = now;
            let status = status_text(shared);
            if status != self.last_status {
                self.send(&format!("STATUS={status}"));
                self.last_status = status;
            }
        }
    }

    /// `STOPPING=1`: the shutdown began.
    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping: cancelling jobs");
    }

    fn send(&mut self, msg: &str) {
        let Some((sock, addr)) = &self.socket else {
            return;
        };
        if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
            if !std::mem::replace(&mut self.warned, true) {
                tracing::warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
            }
        }
    }
}

/// `$NOTIFY_SOCKET` as an address: a path, or `@name` for the abstract namespace.
fn address(s: &str) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match s.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok(),
        None if s.starts_with('/') => SocketAddr::from_pathname(s).ok(),
        None => None,
    }
}

/// What STATUS= says: the exports and the jobs.
pub fn status_text(shared: &Shared) -> String {
    let (running, queued) = shared.activity.refresh();
    format!(
        "serving {} export{}; {running} job{} running, {queued} queued",
        shared.exports.len(),
        if shared.exports.len() == 1 { "" } else { "s" },
        if running == 1 { "" } else { "s" },
    )
}
