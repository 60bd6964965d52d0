//! The engine's error type: one opaque [`Error`] with an [`ErrorKind`].
//!
//! Neither [`ErrorKind`] nor [`Side`] is `#[non_exhaustive]`: the crate is internal to the
//! workspace, and the daemon maps every variant by name, so that a new one fails to compile
//! there until it is given its status.

use std::fmt;

use rustix::io::Errno;

/// What went wrong, coarsely enough for a caller to choose a status code.
///
/// Each kind maps one-to-one onto a VixError code (shown in brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A malformed request: empty or absolute path, empty file to reserve, a clone onto its
    /// own source (INVALID_ARG 3).
    InvalidArgument,
    /// The file or a directory on its path does not exist (FILE_NOT_FOUND 4).
    NotFound,
    /// GUARDED clone onto an existing destination (FILE_ALREADY_EXISTS 12).
    AlreadyExists,
    /// The filesystem cannot do it: no reflink, no fallocate, not the same filesystem
    /// (NOT_SUPPORTED 6).
    NotSupported,
    /// ENOSPC or EDQUOT (DISK_FULL 8).
    DiskFull,
    /// EROFS (FILE_READ_ONLY 11).
    ReadOnly,
    /// Permission denied, or a path that leaves the export or enters `.openvaai/`
    /// (FILE_ACCESS_ERROR 13).
    AccessDenied,
    /// Not a regular file where one is needed, or a directory in the way (INCORRECT_FILE_TYPE 9).
    IncorrectFileType,
    /// The caller's [`CancelToken`](crate::CancelToken) fired (CANCELLED 10).
    Cancelled,
    /// EFBIG (FILE_TOO_BIG 21).
    FileTooBig,
    /// A name that is too long or not acceptable (FILE_NAME_INVALID 22).
    NameInvalid,
    /// EBUSY, ETXTBSY (OBJECT_IS_BUSY 5).
    Busy,
    /// Anything else (FILE_ERROR 7).
    Io,
}

/// Which path of an operation an error concerns, so that a caller can say which one is
/// missing or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// A clone's source.
    Source,
    /// The directory a clone's destination goes in.
    DestinationDir,
    /// A clone's destination itself, or the file to reserve.
    Destination,
}

/// An engine error: a kind, the operation and path it concerns, and the errno if there was one.
pub struct Error {
    kind: ErrorKind,
    op: &'static str,
    path: Option<String>,
    errno: Option<Errno>,
    /// What the kind alone does not say (and what to do), for messages.
    detail: Option<String>,
    side: Option<Side>,
}

impl Error {
    /// An error without an errno.
    pub(crate) fn new(kind: ErrorKind, op: &'static str, path: impl Into<Option<String>>) -> Self {
        Error {
            kind,
            op,
            path: path.into(),
            errno: None,
            detail: None,
            side: None,
        }
    }

    /// An error from a syscall, with the kind chosen by [`kind_of_errno`].
    pub(crate) fn sys(op: &'static str, path: &str, errno: Errno) -> Self {
        Error {
            kind: kind_of_errno(errno),
            op,
            path: Some(path.to_owned()),
            errno: Some(errno),
            detail: None,
            side: None,
        }
    }

    /// An error from a syscall with an explicit kind (the errno is kept as the source).
    pub(crate) fn sys_kind(kind: ErrorKind, op: &'static str, path: &str, errno: Errno) -> Self {
        Error {
            kind,
            op,
            path: Some(path.to_owned()),
            errno: Some(errno),
            detail: None,
            side: None,
        }
    }

    /// The same error with `detail` added to its message.
    pub(crate) fn with_detail(mut self, detail: String) -> Self {
        self.detail = Some(detail);
        self
    }

    /// What the kind alone does not say, if anything.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Marks which path of the operation this error concerns (the first mark stays).
    pub(crate) fn on(mut self, side: Side) -> Self {
        self.side.get_or_insert(side);
        self
    }

    /// The kind of error, for choosing a status code.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Which path this error concerns, where the operation knows.
    pub fn side(&self) -> Option<Side> {
        self.side
    }

    /// The raw errno behind this error, if a syscall failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.errno.map(Errno::raw_os_error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("op", &self.op)
            .field("path", &self.path)
            .field("errno", &self.errno)
            .field("detail", &self.detail)
            .field("side", &self.side)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        if let Some(path) = &self.path {
            write!(f, " {path:?}")?;
        }
        write!(f, ": {:?}", self.kind)?;
        if let Some(errno) = self.errno {
            write!(f, " ({errno})")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errno
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The kind for an errno in general. Call sites with a more specific meaning (EXDEV or ELOOP
/// from path confinement, EINVAL from FICLONE) choose the kind themselves.
pub fn kind_of_errno(errno: Errno) -> ErrorKind {
    match errno {
        Errno::NOSPC | Errno::DQUOT => ErrorKind::DiskFull,
        Errno::EXIST => ErrorKind::AlreadyExists,
        Errno::NOENT => ErrorKind::NotFound,
        Errno::ROFS => ErrorKind::ReadOnly,
        Errno::ACCESS | Errno::PERM | Errno::XDEV | Errno::LOOP => ErrorKind::AccessDenied,
        // ENOTSUP has the same value as EOPNOTSUPP on Linux.
        Errno::OPNOTSUPP | Errno::NOTTY | Errno::NOSYS => ErrorKind::NotSupported,
        Errno::FBIG => ErrorKind::FileTooBig,
        Errno::NAMETOOLONG => ErrorKind::NameInvalid,
        Errno::ISDIR | Errno::NOTDIR => ErrorKind::IncorrectFileType,
        Errno::BUSY | Errno::TXTBSY => ErrorKind::Busy,
        _ => ErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping_covers_the_documented_cases() {
        let cases = [
            (Errno::NOSPC, ErrorKind::DiskFull),
            (Errno::DQUOT, ErrorKind::DiskFull),
            (Errno::EXIST, ErrorKind::AlreadyExists),
            (Errno::NOENT, ErrorKind::NotFound),
            (Errno::ROFS, ErrorKind::ReadOnly),
            (Errno::XDEV, ErrorKind::AccessDenied),
            (Errno::LOOP, ErrorKind::AccessDenied),
            (Errno::ACCESS, ErrorKind::AccessDenied),
            (Errno::PERM, ErrorKind::AccessDenied),
            (Errno::OPNOTSUPP, ErrorKind::NotSupported),
            (Errno::NOTSUP, ErrorKind::NotSupported),
            (Errno::NOTTY, ErrorKind::NotSupported),
            (Errno::FBIG, ErrorKind::FileTooBig),
            (Errno::NAMETOOLONG, ErrorKind::NameInvalid),
            (Errno::ISDIR, ErrorKind::IncorrectFileType),
            (Errno::NOTDIR, ErrorKind::IncorrectFileType),
            (Errno::BUSY, ErrorKind::Busy),
            (Errno::IO, ErrorKind::Io),
            (Errno::INVAL, ErrorKind::Io),
        ];
        for (errno, kind) in cases {
            assert_eq!(kind_of_errno(errno), kind, "{errno:?}");
        }
    }

    #[test]
    fn display_names_op_path_and_errno() {
        let e = Error::sys("open source", "a/b", Errno::NOENT);
        let s = e.to_string();
        assert!(
            s.contains("open source") && s.contains("a/b") && s.contains("NotFound"),
            "{s}"
        );
        assert_eq!(e.raw_os_error(), Some(libc_enoent()));
        assert!(std::error::Error::source(&e).is_some());
    }

    fn libc_enoent() -> i32 {
        Errno::NOENT.raw_os_error()
    }
}
