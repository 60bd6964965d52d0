//! The one error type of this crate.

use std::fmt;

/// What went wrong, broadly. Not `#[non_exhaustive]`: the crate is internal to the
/// workspace, and every user maps each kind by name, so that a new kind fails to compile
/// until each mapping decides what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The underlying stream failed (including timeouts and EOF in the middle of a record).
    Io,
    /// Bytes that do not decode: truncated, trailing, bad enum or bool, bad UTF-8.
    Decode,
    /// A length above one of the protocol's limits (fragment, record, string, opaque, array).
    TooLarge,
    /// The peer rejected the call (an RPC `MSG_DENIED` or an accept status other than SUCCESS).
    Rejected,
    /// A reply that does not belong to the call (wrong xid, not a reply, verifier too large).
    UnexpectedReply,
    /// The server's proof of the export secret did not verify.
    ServerProof,
    /// An access file that does not parse.
    AccessFile,
}

/// The error of every fallible function in this crate.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
    io: Option<std::io::Error>,
}

impl Error {
    /// An error of `kind` saying what failed in `detail`. Public so that a sibling protocol
    /// crate (`openvaai-nfs4`) can report its own decode errors through this crate's codec.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error {
            kind,
            detail: detail.into(),
            io: None,
        }
    }

    /// The broad kind of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The I/O error underneath, for [`ErrorKind::Io`] (e.g. to tell a timeout apart).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.io.as_ref()
    }

    /// True for an I/O timeout (`WouldBlock` or `TimedOut`, as socket timeouts report either).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.io.as_ref().map(|e| e.kind()),
            Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error {
            kind: ErrorKind::Io,
            detail: e.to_string(),
            io: Some(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Io => "i/o error",
            ErrorKind::Decode => "malformed data",
            ErrorKind::TooLarge => "limit exceeded",
            ErrorKind::Rejected => "call rejected",
            ErrorKind::UnexpectedReply => "unexpected reply",
            ErrorKind::ServerProof => "server failed to prove the export secret",
            ErrorKind::AccessFile => "bad access file",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io.as_ref().map(|e| e as _)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
