//! RESVSPACE: provision every block of an existing file, keeping its data.

use std::os::fd::BorrowedFd;

use rustix::fs::{fallocate, FallocateFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind};
use crate::progress::{CancelToken, Progress, Reporter};

/// Bytes per `fallocate` call, so that progress and cancellation stay responsive.
const CHUNK: u64 = 64 << 20;

/// `fallocate(fd, 0, off, len)` — allocates the blocks of `[off, off + len)` that are holes
/// (as unwritten extents where the filesystem has them) and leaves existing data alone —
/// over `[0, size)` in [`CHUNK`]s, then `fsync(fd)`.
///
/// A cancelled reservation keeps what was already allocated: the file's contents are
/// unchanged either way.
pub(crate) fn reserve(
    fd: BorrowedFd<'_>,
    size: u64,
    path: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &CancelToken,
) -> Result<(), Error> {
    const OP: &str = "reserve";
    if size == 0 {
        return Err(Error::new(ErrorKind::InvalidArgument, OP, path.to_owned()));
    }
    let mut reporter = Reporter::new(progress, size);
    let mut off = 0;
    while off < size {
        cancel.check(OP, path)?;
        let len = CHUNK.min(size - off);
        fallocate(fd, FallocateFlags::empty(), off, len).map_err(|e| match e {
            Errno::OPNOTSUPP | Errno::NOSYS => {
                Error::sys_kind(ErrorKind::NotSupported, OP, path, e)
            }
            e => Error::sys(OP, path, e),
        })?;
        off += len;
        reporter.advance(len);
    }
    rustix::fs::fsync(fd).map_err(|e| Error::sys(OP, path, e))?;
    reporter.finish();
    Ok(())
}
