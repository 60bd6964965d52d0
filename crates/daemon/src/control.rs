//! The control socket (`openvaai status`): a unix stream socket, mode 0600, serving root
//! only (see `openvaai_control` for the protocol).
//!
//! The peer's credentials are checked with SO_PEERCRED before anything is read, so the
//! socket file's mode is not the only guard. One thread accepts; each request is handled
//! on a short-lived thread of its own (a cancel waits for the job to clean up), at most
//! [`MAX_CLIENTS`] at once; more are answered "busy". A request must arrive within the
//! protocol's deadline.

use std::io::ErrorKind;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openvaai_control::{read_line, write_reply, Reply, Request, Status, CANCEL_BOUND, DEADLINE};

use crate::activity::NotCancelled;
use crate::control_socket::ControlSocket;
use crate::loglimit::limited;
use crate::state::Shared;

/// Requests handled at once, at most.
pub const MAX_CLIENTS: usize = 4;
/// How often the acceptor looks at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);

/// Serves `socket` until the daemon shuts down; then its file is removed.
pub fn serve(socket: ControlSocket, shared: Arc<Shared>) {
    let busy = Arc::new(AtomicUsize::new(0));
    while !shared.shutdown.load(Ordering::SeqCst) {
        match socket.listener().accept() {
            Ok((stream, _)) => start(stream, &shared, &busy),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                wait(socket.listener())
            }
            Err(e) => {
                limited!(warn, {}, "control socket: accept: {e}");
                wait(socket.listener());
            }
        }
    }
}

fn wait(listener: &UnixListener) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let ts = Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as _,
    };
    let _ = rustix::event::poll(&mut fds, Some(&ts));
}

fn start(stream: UnixStream, shared: &Arc<Shared>, busy: &Arc<AtomicUsize>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(DEADLINE));
    let _ = stream.set_write_timeout(Some(DEADLINE));
    if let Err(why) = check_peer(&stream) {
        limited!(warn, {}, "control socket: refused: {why}");
        let _ = write_reply(&stream, &Reply::Error { message: why });
        return;
    }
    if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
        busy.fetch_sub(1, Ordering::SeqCst);
        let _ = write_reply(
            &stream,
            &Reply::Error {
                message: format!("openvaaid is busy with {MAX_CLIENTS} control requests; retry"),
            },
        );
        return;
    }
    let (s, b) = (shared.clone(), busy.clone());
    let spawned = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            handle(&stream, &s);
            b.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `Ok` for a peer that runs as root; else why not.
fn check_peer(stream: &UnixStream) -> Result<(), String> {
    let cred = rustix::net::sockopt::socket_peercred(stream)
        .map_err(|e| format!("cannot read the peer's credentials (SO_PEERCRED): {e}"))?;
    if cred.uid.is_root() {
        Ok(())
    } else {
        Err(format!(
            "uid {} (pid {}) is not root: only root may use openvaaid's control socket",
            cred.uid.as_raw(),
            cred.pid.as_raw_nonzero()
        ))
    }
}

fn handle(stream: &UnixStream, shared: &Shared) {
    let reply = match read_line(stream, openvaai_control::MAX_REQUEST) {
        Err(e) => Reply::Error {
            message: format!("no request within {} s: {e}", DEADLINE.as_secs()),
        },
        Ok(line) => match serde_json::from_slice::<Request>(&line) {
            Err(e) => Reply::Error {
                message: format!("not a request: {e}"),
            },
            Ok(Request::Status) => Reply::Status(status(shared)),
            Ok(Request::Cancel { job }) => cancel(shared, &job),
        },
    };
    if let Err(e) = write_reply(stream, &reply) {
        limited!(info, {}, "control socket: reply not taken: {e}");
    }
}

fn status(shared: &Shared) -> Status {
    let (running, queued) = shared.activity.refresh();
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_seconds: shared.started.elapsed().as_secs_f64(),
        exports: shared.exports.iter().map(|e| e.cfg.name.clone()).collect(),
        jobs_running: running,
        jobs_queued: queued,
        jobs: shared.activity.jobs(),
    }
}

fn cancel(shared: &Shared, job: &str) -> Reply {
    match shared.activity.cancel(job, CANCEL_BOUND) {
        Ok(j) => Reply::Cancelled(j),
        Err(NotCancelled::NotFound) => Reply::Error {
            message: format!("no running or queued job {job:?} (see openvaai status)"),
        },
        Err(NotCancelled::Ambiguous) => Reply::Error {
            message: format!("more than one job starts with {job:?}: give more digits"),
        },
        Err(NotCancelled::Finished(result)) => Reply::Error {
            message: format!("job {job:?} has finished already ({result})"),
        },
    }
}
