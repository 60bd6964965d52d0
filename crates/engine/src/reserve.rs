//! RESVSPACE: provision every block of an existing file, keeping its data.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::fs::{fallocate, fstatvfs, seek, FallocateFlags, SeekFrom};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind};
use crate::fiemap::{self, EXTENT_UNWRITTEN};
use crate::journal::{self, Entry};
use crate::lease::WriteLease;
use crate::private::PrivateDir;
use crate::progress::{CancelToken, Progress, Reporter};

/// Bytes per `fallocate` call, so that progress and cancellation stay responsive.
const CHUNK: u64 = 64 << 20;

const OP: &str = "reserve";

/// `fallocate(fd, 0, off, len)` — allocates the blocks of `[off, off + len)` that are holes
/// (as unwritten extents where the filesystem has them) and leaves existing data alone —
/// over `[0, size)` in [`CHUNK`]s, then `fsync(fd)`.
///
/// All or nothing: when the holes clearly cannot fit the free space it fails with
/// `DiskFull` before allocating anything, and a reservation that fails or is cancelled on
/// the way gives back what it allocated (see [`give_back`]). So does one the process did not
/// live to finish: the holes are written to the journal in `private` first, and the next
/// start gives back what they left (see [`crate::journal`]). The file's size and contents
/// are unchanged either way.
pub(crate) fn reserve(
    fd: BorrowedFd<'_>,
    st: &rustix::fs::Stat,
    path: &str,
    private: &PrivateDir,
    progress: &mut dyn FnMut(Progress),
    cancel: &CancelToken,
) -> Result<(), Error> {
    let size = st.st_size as u64;
    if size == 0 {
        return Err(Error::new(ErrorKind::InvalidArgument, OP, path.to_owned()));
    }
    let holes = holes(fd, size);
    let hole_bytes: u64 = holes.iter().map(|(a, b)| b - a).sum();
    // statvfs(fd) — the free space, for a refusal that allocates nothing.
    if let Ok(vfs) = fstatvfs(fd) {
        let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        if hole_bytes > free {
            return Err(Error::sys_kind(ErrorKind::DiskFull, OP, path, Errno::NOSPC));
        }
    }
    let entry = Entry {
        path: path.to_owned(),
        dev: st.st_dev,
        ino: st.st_ino,
        size,
        born: journal::birth(fd),
        holes: holes.clone(),
    };
    let journal = journal::begin(private, &entry)?;
    let mut reporter = Reporter::new(progress, size);
    let mut off = 0;
    let result = loop {
        if off >= size {
            break rustix::fs::fsync(fd).map_err(|e| Error::sys(OP, path, e));
        }
        if let Err(e) = cancel.check(OP, path) {
            break Err(e);
        }
        let len = CHUNK.min(size - off);
        if let Err(e) = fallocate(fd, FallocateFlags::empty(), off, len) {
            break Err(match e {
                Errno::OPNOTSUPP | Errno::NOSYS => {
                    Error::sys_kind(ErrorKind::NotSupported, OP, path, e)
                }
                e => Error::sys(OP, path, e),
            });
        }
        off += len;
        reporter.advance(len);
    };
    // fallocate's success is not enough: a copy-on-write filesystem (ZFS) checks the free
    // space, answers 0 and allocates nothing. A reservation is only as good as the blocks.
    let result = result.and_then(|()| {
        if allocation_holds(fd, size) {
            Ok(())
        } else {
            Err(
                Error::new(ErrorKind::NotSupported, OP, path.to_owned()).with_detail(
                    "fallocate succeeded but allocated nothing: this filesystem (ZFS or \
                     another copy-on-write one) cannot reserve space for one file; reserve it \
                     for the whole dataset instead (zfs set refreservation=SIZE DATASET)"
                        .to_owned(),
                ),
            )
        }
    });
    if result.is_err() {
        if let Err(kept) = give_back(fd, &holes, off.min(size)) {
            tracing::warn!("{path}: the failed reservation was not given back: {kept}");
        }
        let _ = rustix::fs::fsync(fd);
    }
    journal.done();
    result.map(|()| reporter.finish())
}

/// Whether every byte of `[0, size)` of `fd` has blocks: no gap in the extent map (unwritten
/// extents count), or where there is no FIEMAP, `st_blocks` covering `size` (after an
/// `fsync`, for filesystems that account allocations late).
pub(crate) fn allocation_holds(fd: BorrowedFd<'_>, size: u64) -> bool {
    let mut covered_to = 0u64;
    let mut gap = false;
    let mapped = fiemap::for_each_extent(fd, size, |e| {
        gap |= e.logical > covered_to;
        covered_to = covered_to.max(e.logical.saturating_add(e.length));
    });
    if mapped.is_ok() {
        return !gap && covered_to >= size;
    }
    let _ = rustix::fs::fsync(fd);
    rustix::fs::fstat(fd).is_ok_and(|st| (st.st_blocks as u64).saturating_mul(512) >= size)
}

/// Undoes the reservation `entry` describes, on the file it names (if it is still that
/// file): gives back, within the holes it had, the blocks that are still unwritten.
/// Returns how many bytes were given back.
pub(crate) fn undo(fd: BorrowedFd<'_>, entry: &Entry) -> Result<u64, Error> {
    let before = rustix::fs::fstat(fd).map_err(|e| Error::sys(OP, &entry.path, e))?;
    give_back(fd, &entry.holes, entry.size).map_err(|kept| {
        Error::new(ErrorKind::Busy, OP, entry.path.clone()).with_detail(kept.to_string())
    })?;
    rustix::fs::fsync(fd).map_err(|e| Error::sys(OP, &entry.path, e))?;
    let after = rustix::fs::fstat(fd).map_err(|e| Error::sys(OP, &entry.path, e))?;
    Ok((before.st_blocks.saturating_sub(after.st_blocks) as u64) * 512)
}

/// The holes of `[0, size)`: gaps in the extent map (FIEMAP), so that unwritten extents — a
/// reservation made earlier — count as allocated. `lseek(SEEK_HOLE)` cannot tell: XFS, ext4
/// and Btrfs report unwritten extents as holes to it, which made re-reserving a reserved file
/// on a nearly full filesystem fail with `DiskFull`, and a failed one punch out the earlier
/// reservation. Without FIEMAP, SEEK_HOLE/SEEK_DATA; where neither can tell, an empty list:
/// then nothing is checked against the free space or given back.
fn holes(fd: BorrowedFd<'_>, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut covered_to = 0u64;
    let mapped = fiemap::for_each_extent(fd, size, |e| {
        let start = e.logical.min(size);
        if start > covered_to {
            out.push((covered_to, start));
        }
        covered_to = covered_to.max(e.logical.saturating_add(e.length).min(size));
    });
    if mapped.is_ok() {
        if covered_to < size {
            out.push((covered_to, size));
        }
        return out;
    }
    out.clear();
    let mut off = 0;
    while off < size {
        // lseek(fd, off, SEEK_HOLE) — the next hole at or after `off` (EOF counts as one).
        let Ok(hole) = seek(fd, SeekFrom::Hole(off)) else {
            return Vec::new();
        };
        if hole >= size {
            break;
        }
        // lseek(fd, hole, SEEK_DATA) — where data starts again (ENXIO: none before EOF).
        let data = seek(fd, SeekFrom::Data(hole)).unwrap_or(size).min(size);
        out.push((hole, data));
        off = data.max(hole + 1);
    }
    out
}

/// How long the undo waits for the other openers of the file to close it (see
/// [`WriteLease::take`]): knfsd closes the files of its NFSv3 clients 2 to 4 s after their
/// last use.
const LEASE_WAIT: Duration = Duration::from_secs(5);

/// Why an undo left blocks allocated. Data is never at stake: keeping blocks only keeps a
/// reservation the caller wanted undone.
#[derive(Debug)]
pub(crate) struct Kept(String);

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Punches back the blocks a failed reservation allocated below `upto`: only inside what
/// were holes before it started, and only where the blocks are still unwritten (allocated
/// by us and never written since), so that data a client wrote meanwhile is never lost.
///
/// "Never written" must hold from the moment the map is read to the moment of the punch,
/// and a punch frees the page cache over its range too, dirty pages included. So:
///
/// 1. `fsync(fd)`: the bulk of any dirty data goes to disk first.
/// 2. A write lease ([`WriteLease`]): granted only while no one else has the file open for
///    writing (a VM's knfsd open, a local writer, a shared writable mapping), and every
///    later open waits for it. No kernel interface gives a punch that skips written blocks,
///    and no lock keeps knfsd out of a file that is already open, so where the lease cannot
///    be had within [`LEASE_WAIT`] a writer may be there: nothing is punched, and the blocks
///    stay allocated (the caller hears why).
/// 3. Under the lease, the map is read with `FIEMAP_FLAG_SYNC`: what a writer that has
///    closed the file left in the page cache is written back first, so its blocks no longer
///    look unwritten.
/// 4. Each punch goes ahead only while the lease is still whole: an opener that arrives
///    meanwhile breaks it and waits; the undo then stops, releases the lease, and keeps the
///    rest.
///
/// A filesystem without FIEMAP or hole punching keeps the allocation.
fn give_back(fd: BorrowedFd<'_>, holes: &[(u64, u64)], upto: u64) -> Result<(), Kept> {
    rustix::fs::fsync(fd).map_err(|e| Kept(format!("fsync failed ({e}): nothing punched")))?;
    let lease = WriteLease::take(fd, LEASE_WAIT).map_err(|e| {
        Kept(match e {
            Errno::AGAIN => format!(
                "the file stayed open for writing elsewhere (a client may be writing) for {} \
                 s: nothing punched, its reserved blocks stay allocated",
                LEASE_WAIT.as_secs()
            ),
            e => format!("no write lease on the file ({e}): nothing punched"),
        })
    })?;
    let mut unwritten = Vec::new();
    match fiemap::for_each_extent_synced(fd, upto, |e| {
        if e.flags & EXTENT_UNWRITTEN != 0 {
            unwritten.push((e.logical, e.logical + e.length));
        }
    }) {
        Ok(()) => {}
        // No extent map (ZFS, whose fallocate allocates nothing anyway): best effort, as
        // documented; nothing is punched.
        Err(Errno::OPNOTSUPP | Errno::NOTTY) => return Ok(()),
        Err(e) => return Err(Kept(format!("no extent map ({e}): nothing punched"))),
    }
    for &(h0, h1) in holes {
        for &(u0, u1) in &unwritten {
            let (a, b) = (h0.max(u0), h1.min(u1).min(upto));
            if a >= b {
                continue;
            }
            if !lease.held() {
                return Err(Kept(
                    "another opener arrived during the undo: the rest stays allocated".into(),
                ));
            }
            // fallocate(fd, PUNCH_HOLE | KEEP_SIZE, a, b - a) — frees the blocks, keeps the
            // size; the range reads as zeros, as it did before.
            let _ = fallocate(
                fd,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                a,
                b - a,
            );
        }
    }
    drop(lease);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    use openvaai_testkit::{write_layout, FsKind, Run, TestFs};

    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_cancelled_reservation_gives_back_what_it_allocated() {
        for kind in [FsKind::Xfs, FsKind::Ext4] {
            let Some(fs) = TestFs::new(kind, 1 << 30).unwrap() else {
                return;
            };
            let path = fs.path().join("disk");
            write_layout(&path, &[Run::Data(MIB), Run::Hole(511 * MIB)], 1).unwrap();
            let before = std::fs::metadata(&path).unwrap().blocks();
            let export = crate::Export::open(fs.path()).unwrap();
            let cancel = CancelToken::new();
            let mut reports = 0;
            let mut progress = |_: Progress| {
                reports += 1;
                cancel.cancel();
            };
            let err = export.reserve("disk", &mut progress, &cancel).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Cancelled, "{kind:?}");
            assert!(
                reports >= 1,
                "{kind:?}: it had allocated something before the cancel"
            );
            let after = std::fs::metadata(&path).unwrap();
            assert_eq!(
                after.blocks(),
                before,
                "{kind:?}: the allocation was given back"
            );
            assert_eq!(after.len(), 512 * MIB);
            let data = std::fs::read(&path).unwrap();
            assert!(
                data[MIB as usize..].iter().all(|&b| b == 0),
                "{kind:?}: holes read as zeros"
            );
            assert!(
                data[..MIB as usize].iter().any(|&b| b != 0),
                "{kind:?}: data kept"
            );
        }
    }

    #[test]
    fn written_blocks_are_never_punched_back() {
        let Some(fs) = TestFs::new(FsKind::Xfs, 1 << 30).unwrap() else {
            return;
        };
        let path = fs.path().join("disk");
        write_layout(&path, &[Run::Hole(64 * MIB)], 2).unwrap();
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let holes = holes(file.as_fd(), 64 * MIB);
        assert_eq!(holes, vec![(0, 64 * MIB)]);
        // Allocated by the reservation, then a client writes into part of it.
        fallocate(file.as_fd(), FallocateFlags::empty(), 0, 64 * MIB).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[7u8; 4096], 8 * MIB).unwrap();
        file.sync_all().unwrap();
        give_back(file.as_fd(), &holes, 64 * MIB).unwrap();
        let mut buf = [0u8; 4096];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 8 * MIB).unwrap();
        assert_eq!(buf, [7u8; 4096], "the client's write survives");
        let blocks = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            (4096..MIB).contains(&blocks),
            "the rest was given back: {blocks}"
        );
    }
}
