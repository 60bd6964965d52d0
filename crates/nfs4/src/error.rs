//! The one error type of this crate.

use std::fmt;

use crate::status::Status;

/// What went wrong, broadly. Not `#[non_exhaustive]`: the crate is internal to the workspace
/// and each user maps every kind by name, so that a new kind fails to compile until each
/// mapping decides what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The stream failed (a timeout, a reset, EOF inside a record): reconnect.
    Io,
    /// Bytes that do not decode: truncated, trailing, a bad enum, union arm or bool.
    Decode,
    /// A length above one of the limits of [`crate::limits`] or of the record.
    TooLarge,
    /// The RPC layer refused the call (MSG_DENIED, PROG_MISMATCH: no NFSv4 on that port...).
    Rejected,
    /// A reply that does not answer the call: wrong xid, results for other operations than
    /// were sent, more results than operations, a SEQUENCE echo for another slot.
    UnexpectedReply,
    /// The server answered an NFS status that failed what was asked (see [`Error::nfs_status`]).
    Status,
    /// A COMPOUND that needs a session before one was created (or after it was destroyed).
    NoSession,
    /// An argument the protocol cannot carry (a name with `/`, a file handle over 128 bytes,
    /// more operations than the session allows).
    InvalidArgument,
}

/// The error of every fallible function of this crate.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
    status: Option<Status>,
    wire: Option<openvaai_proto::Error>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error {
            kind,
            detail: detail.into(),
            status: None,
            wire: None,
        }
    }

    /// `what` (an operation's name) failed with `status`.
    pub(crate) fn status(what: &str, status: Status) -> Error {
        Error {
            kind: ErrorKind::Status,
            detail: format!("{what}: {}", status.name()),
            status: Some(status),
            wire: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The NFS status, for [`ErrorKind::Status`].
    pub fn nfs_status(&self) -> Option<Status> {
        self.status
    }

    /// True for an I/O timeout (the deadline of the stream passed).
    pub fn is_timeout(&self) -> bool {
        self.wire.as_ref().is_some_and(|e| e.is_timeout())
    }

    /// Worth trying again after a pause, as it is: NFS4ERR_DELAY or NFS4ERR_GRACE.
    pub fn is_retryable(&self) -> bool {
        self.status.is_some_and(|s| s.is_retryable())
    }

    /// The session or client id is gone (server restart, lease expiry, a slot out of step):
    /// create a new one (EXCHANGE_ID, CREATE_SESSION) and try again.
    pub fn is_session_lost(&self) -> bool {
        self.status.is_some_and(|s| s.is_session_lost())
    }

    /// The connection is unusable (I/O error or timeout): open a new one and hand it to
    /// [`crate::Nfs4Client::replace_stream`]; the session survives.
    pub fn is_connection_lost(&self) -> bool {
        self.kind == ErrorKind::Io
    }
}

impl From<openvaai_proto::Error> for Error {
    fn from(e: openvaai_proto::Error) -> Error {
        use openvaai_proto::ErrorKind as P;
        let kind = match e.kind() {
            P::Io => ErrorKind::Io,
            P::Decode => ErrorKind::Decode,
            P::TooLarge => ErrorKind::TooLarge,
            P::Rejected => ErrorKind::Rejected,
            P::UnexpectedReply => ErrorKind::UnexpectedReply,
            // Kinds of the openvaai program's own messages, which never come out of the
            // codec and framing this crate uses: reported as undecodable if they ever did.
            P::ServerProof | P::AccessFile => ErrorKind::Decode,
        };
        Error {
            kind,
            detail: e.to_string(),
            status: None,
            wire: Some(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        openvaai_proto::Error::from(e).into()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Io => "NFS connection failed",
            ErrorKind::Decode => "malformed NFS reply",
            ErrorKind::TooLarge => "NFS reply over a limit",
            ErrorKind::Rejected => "NFS server rejected the RPC call",
            ErrorKind::UnexpectedReply => "NFS reply does not answer the call",
            ErrorKind::Status => "NFS operation failed",
            ErrorKind::NoSession => "no NFSv4.1 session (create one first)",
            ErrorKind::InvalidArgument => "argument the NFS protocol cannot carry",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.wire.as_ref().map(|e| e as _)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
