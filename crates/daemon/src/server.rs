//! The acceptor loop: listeners, the connection queue, the reaper, shutdown.

use std::io::ErrorKind as IoKind;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::accept::Acceptor;
use crate::loglimit::limited;
use crate::notify::Notifier;
use crate::state::Shared;

/// How often the acceptor looks at the shutdown flag (it wakes at once for a connection)
/// and the reaper at the job table.
const TICK: Duration = Duration::from_millis(50);
/// How often the acceptor looks again while connections wait for a slot.
const WAITING_TICK: Duration = Duration::from_millis(5);
/// On shutdown, how long connections get to finish the replies they are writing.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

/// Accepts connections until `shared.shutdown` is set (by SIGTERM or SIGINT), then stops the jobs and the
/// connections. Returns the number of jobs that did not stop in time. Each time round, the
/// loop tells systemd it is alive (`notifier`).
pub fn serve(shared: Arc<Shared>, listeners: Vec<TcpListener>, notifier: &mut Notifier) -> usize {
    let reaper = {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                while !s.shutdown.load(Ordering::SeqCst) {
                    s.jobs.reap();
                    std::thread::sleep(TICK);
                }
            })
            .ok()
    };
    let mut acceptor = Acceptor::new(shared.clone());
    while !shared.shutdown.load(Ordering::SeqCst) {
        let mut idle = true;
        for l in &listeners {
            match l.accept() {
                Ok((stream, peer)) => {
                    idle = false;
                    acceptor.take(stream, peer);
                }
                Err(e) if e.kind() == IoKind::WouldBlock || e.kind() == IoKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    limited!(warn, {}, "accept: {e}");
                }
            }
        }
        acceptor.admit_waiting();
        crate::loglimit::flush();
        notifier.tick(&shared);
        if idle {
            // Connections waiting for a slot are looked at again soon: slots free as
            // handshakes finish.
            let tick = if acceptor.has_waiting() {
                WAITING_TICK
            } else {
                TICK
            };
            wait_for_connections(&listeners, tick);
        }
    }
    tracing::info!("shutting down: no new connections, cancelling jobs");
    notifier.stopping();
    drop(listeners);
    let left = shared.jobs.shutdown(shared.config.limits.shutdown_timeout);
    // Close the read sides first: a connection still writing a reply (the end of a job)
    // finishes it, then sees the end of its stream and leaves.
    shared.slots.shutdown_reads();
    let deadline = std::time::Instant::now() + CLOSE_BOUND;
    while !shared.slots.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.slots.shutdown_all();
    if let Some(r) = reaper {
        let _ = r.join();
    }
    left
}

/// `poll(listeners, POLLIN, timeout)` — returns when a connection arrives on any listener or
/// `timeout` passes (or a signal comes).
fn wait_for_connections(listeners: &[TcpListener], timeout: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds: Vec<PollFd<'_>> = listeners
        .iter()
        .map(|l| PollFd::new(l, PollFlags::IN))
        .collect();
    let ts = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let _ = rustix::event::poll(&mut fds, Some(&ts));
}
