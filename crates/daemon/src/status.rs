//! Engine errors as protocol statuses, and the path they concern.

use openvaai_engine::{Error, ErrorKind};
use openvaai_proto::{Side, Status};

use crate::jobs::Ended;

/// The status a client sees for an engine error. One arm per kind and no other, so that a
/// new kind does not compile until it is given its status here.
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
    }
}

/// The path an engine error concerns, as the protocol names it.
pub fn side_of_engine_error(e: &Error) -> Side {
    match e.side() {
        None => Side::None,
        Some(openvaai_engine::Side::Source) => Side::Source,
        Some(openvaai_engine::Side::DestinationDir) => Side::DestinationDir,
        Some(openvaai_engine::Side::Destination) => Side::Destination,
    }
}

/// How a job ends on an engine error: its status and its side.
pub fn ended_by(e: &Error) -> Ended {
    Ended {
        status: of_engine_error(e),
        side: side_of_engine_error(e),
    }
}
