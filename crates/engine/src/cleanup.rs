//! Removing named temporaries that a crash left behind.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{openat2, unlinkat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};

use crate::error::Error;
use crate::path::{PRIVATE_DIR, TEMP_PREFIX};
use crate::resolve::RESOLVE;

/// Directories deeper than this are not visited.
const MAX_DEPTH: usize = 64;
/// At most this many directory entries are looked at.
const MAX_ENTRIES: usize = 1_000_000;

/// Walks the export (not following symlinks, not crossing mounts, skipping `.openvaai/`) and
/// unlinks regular files named `.openvaai-tmp-*`.
pub(crate) fn cleanup(root: BorrowedFd<'_>) -> Result<usize, Error> {
    const OP: &str = "cleanup";
    let flags = RESOLVE | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let first = rustix::io::dup(root).map_err(|e| Error::sys(OP, ".", e))?;
    let mut stack: Vec<(OwnedFd, usize)> = vec![(first, 0)];
    let mut removed = 0;
    let mut seen = 0;
    while let Some((dir, depth)) = stack.pop() {
        let entries = Dir::read_from(&dir).map_err(|e| Error::sys(OP, ".", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::sys(OP, ".", e))?;
            seen += 1;
            if seen > MAX_ENTRIES {
                return Ok(removed);
            }
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." || (depth == 0 && bytes == PRIVATE_DIR.as_bytes()) {
                continue;
            }
            let mut kind = entry.file_type();
            if kind == FileType::Unknown {
                kind = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                    .unwrap_or(FileType::Unknown);
            }
            match kind {
                FileType::Directory if depth < MAX_DEPTH => {
                    if let Ok(sub) = openat2(dir.as_fd(), name, dir_flags, Mode::empty(), flags) {
                        stack.push((sub, depth + 1));
                    }
                }
                FileType::RegularFile if bytes.starts_with(TEMP_PREFIX.as_bytes()) => {
                    match unlinkat(&dir, name, AtFlags::empty()) {
                        Ok(()) => removed += 1,
                        Err(rustix::io::Errno::NOENT) => {}
                        Err(e) => return Err(Error::sys(OP, &String::from_utf8_lossy(bytes), e)),
                    }
                }
                _ => {}
            }
        }
    }
    Ok(removed)
}
