//! Engine errors as protocol statuses, and the path they concern.

use openvaai_engine::{Error, ErrorKind};
use openvaai_proto::{Side, Status};

use crate::jobs::Ended;

/// The status a client sees for an engine error. One arm per kind, so that a new kind is a
/// conscious decision here rather than a silent FAIL.
pub fn of_engine_error(e: &Error) -> Status {
    match e.kind() {
        ErrorKind::InvalidArgument => Status::InvalidArg,
        ErrorKind::NotFound => Status::FileNotFound,
        ErrorKind::AlreadyExists => Status::FileAlreadyExists,
        ErrorKind::NotSupported => Status::NotSupported,
        ErrorKind::DiskFull => Status::DiskFull,
        ErrorKind::ReadOnly => Status::FileReadOnly,
        ErrorKind::AccessDenied => Status::FileAccessError,
        ErrorKind::IncorrectFileType => Status::IncorrectFileType,
        ErrorKind::Cancelled => Status::Cancelled,
        ErrorKind::FileTooBig => Status::FileTooBig,
        ErrorKind::NameInvalid => Status::FileNameInvalid,
        ErrorKind::Busy => Status::ObjectIsBusy,
        ErrorKind::Io => Status::FileError,
        // ErrorKind is #[non_exhaustive] and lives in another crate, so the compiler insists
        // on this arm. A kind added to the engine lands here as FAIL until it gets its own
        // arm above.
        _ => Status::Fail,
    }
}

/// The path an engine error concerns, as the protocol names it.
pub fn side_of_engine_error(e: &Error) -> Side {
    match e.side() {
        None => Side::None,
        Some(openvaai_engine::Side::Source) => Side::Source,
        Some(openvaai_engine::Side::DestinationDir) => Side::DestinationDir,
        Some(openvaai_engine::Side::Destination) => Side::Destination,
        // Side is #[non_exhaustive] in another crate: a new side is unnamed until mapped.
        Some(_) => Side::None,
    }
}

/// How a job ends on an engine error: its status and its side.
pub fn ended_by(e: &Error) -> Ended {
    Ended {
        status: of_engine_error(e),
        side: side_of_engine_error(e),
    }
}
