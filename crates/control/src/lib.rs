//! openvaaid's control socket: a local unix stream socket that only root may use, for
//! `openvaai status` (what the daemon is doing) and `openvaai status --cancel JOB`.
//!
//! The protocol is one JSON line each way: the client connects, writes one [`Request`]
//! followed by `\n` (at most [`MAX_REQUEST`] bytes), and reads one [`Reply`] followed by `\n`
//! (at most [`MAX_REPLY`] bytes); then the daemon closes the connection. The daemon gives a
//! client [`DEADLINE`] to send its request and to take the reply, and checks the peer's
//! credentials (SO_PEERCRED) before it reads anything: only uid 0 is served, whatever the
//! socket file's mode.
#![deny(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The socket's name in the daemon's state directory, unless configured otherwise.
pub const SOCKET_NAME: &str = "control.sock";
/// The default state directory's socket (the systemd unit's).
pub const DEFAULT_SOCKET: &str = "/var/lib/openvaaid/control.sock";
/// A request line, at most (its newline included).
pub const MAX_REQUEST: usize = 4096;
/// A reply line, at most: a status of every remembered job fits well within it.
pub const MAX_REPLY: usize = 4 << 20;
/// How long either side gives the other to send a line or take one.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// How long a cancel waits for the job to clean up before answering with its state anyway
/// (CANCEL's bound over RPC); the client's read deadline allows for it.
pub const CANCEL_BOUND: Duration = Duration::from_secs(20);

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The running and recently finished jobs.
    Status,
    /// Cancel a job, named by its id (16 hex digits) or a prefix of it that only one job
    /// has; the reply comes once it has cleaned up (or after [`CANCEL_BOUND`]).
    Cancel { job: String },
}

/// What the daemon answers: a [`Status`], or an error saying what went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status(Status),
    /// The cancelled job, as it ended (or stands, if it did not end within the bound).
    Cancelled(JobStatus),
    Error {
        message: String,
    },
}

/// The daemon and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_seconds: f64,
    /// Export names (the NFS export paths clients use).
    pub exports: Vec<String>,
    pub jobs_running: u64,
    pub jobs_queued: u64,
    /// Running and queued jobs first (oldest first), then finished ones (newest first).
    pub jobs: Vec<JobStatus>,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job id as the RPC protocol and the daemon's log show it: 16 hex digits.
    pub id: String,
    /// `queued`, `running`, `ready` (a held clone waiting for COMMIT), `done` or `failed`.
    pub state: String,
    /// The export it writes in.
    pub export: String,
    /// `clone_full`, `clone_lazy`, `clone_dry_run` or `reserve`.
    pub primitive: String,
    /// `export:path` of a clone's source; `None` for a reserve.
    pub source: Option<String>,
    /// `export:path` of the clone's destination or of the file reserved.
    pub destination: String,
    /// The client's address and port.
    pub client: String,
    pub done_bytes: u64,
    pub total_bytes: u64,
    /// Bytes per second since the job left the queue; `None` before it did.
    pub rate_bytes_per_second: Option<f64>,
    /// Seconds since the job was started by its client.
    pub age_seconds: f64,
    /// Seconds it ran, once finished.
    pub duration_seconds: Option<f64>,
    /// Its VixError name once finished (`VIX_OK`, `VIX_E_CANCELLED`, ...).
    pub result: Option<String>,
}

/// Why a request failed on the client's side.
#[derive(Debug)]
pub enum Error {
    /// Connecting to the socket failed (no daemon, not root, wrong path).
    Connect(std::io::Error),
    /// The exchange failed after connecting.
    Exchange(std::io::Error),
    /// The daemon answered something that is not a reply.
    BadReply(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "connecting: {e}"),
            Error::Exchange(e) => write!(f, "talking to openvaaid: {e}"),
            Error::BadReply(e) => write!(f, "openvaaid's reply is not understood: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Sends `request` to the daemon at `socket` and returns its reply.
pub fn request(socket: &Path, request: &Request) -> Result<Reply, Error> {
    let mut s = UnixStream::connect(socket).map_err(Error::Connect)?;
    let read_bound = match request {
        Request::Cancel { .. } => CANCEL_BOUND + DEADLINE,
        Request::Status => DEADLINE,
    };
    s.set_read_timeout(Some(read_bound))
        .and_then(|()| s.set_write_timeout(Some(DEADLINE)))
        .map_err(Error::Exchange)?;
    let mut line = serde_json::to_vec(request).map_err(|e| Error::BadReply(e.to_string()))?;
    line.push(b'\n');
    // A daemon that refuses the peer answers before reading and closes: the write may fail
    // (EPIPE) with its reply waiting to be read.
    let wrote = s.write_all(&line);
    let reply = match (read_line(&mut s, MAX_REPLY), wrote) {
        (Ok(reply), _) => reply,
        (Err(_), Err(e)) | (Err(e), Ok(())) => return Err(Error::Exchange(e)),
    };
    serde_json::from_slice(&reply).map_err(|e| Error::BadReply(e.to_string()))
}

/// Reads one line (without its newline) of at most `max` bytes from `r`; more is an
/// `InvalidData` error, and so is the end of the stream before a newline.
pub fn read_line<R: Read>(r: R, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let n = BufReader::new(r.take(max as u64)).read_until(b'\n', &mut buf)?;
    if n == 0 || buf.last() != Some(&b'\n') {
        let why = if n >= max {
            format!("a line longer than {max} bytes")
        } else {
            "the stream ended before the end of the line".to_owned()
        };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    buf.pop();
    Ok(buf)
}

/// Writes `reply` as one line.
pub fn write_reply<W: Write>(mut w: W, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_one_json_line_each() {
        let r = Request::Cancel { job: "00ab".into() };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"op":"cancel","job":"00ab"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"op":"status"}"#
        );
        let mut out = Vec::new();
        write_reply(
            &mut out,
            &Reply::Error {
                message: "no".into(),
            },
        )
        .unwrap();
        assert_eq!(out, b"{\"reply\":\"error\",\"message\":\"no\"}\n");
    }

    #[test]
    fn lines_are_bounded() {
        assert_eq!(read_line(&b"abc\ndef"[..], 16).unwrap(), b"abc");
        assert!(read_line(&b"abcdef"[..], 16).is_err(), "no newline");
        assert!(read_line(&[b'x'; 100][..], 16).is_err(), "too long");
        assert!(read_line(&b""[..], 16).is_err(), "empty");
    }
}
