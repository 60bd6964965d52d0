//! The physical copy behind a non-LAZY clone: hole-aware, optionally skipping zero blocks.
//!
//! The source is walked region by region with `lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)`.
//! Data regions are read with `pread` into a large buffer and written with `pwrite` (never
//! `copy_file_range` on a filesystem that can reflink, since it may share extents there).
//! Holes are skipped (thin, SKIPZEROES) or provisioned with `fallocate` (thick).
//!
//! Data goes direct (`O_DIRECT`, a reader thread beside the writer: [`direct`]) where both
//! filesystems take it, else through the page cache: by `copy_file_range` where that is a
//! real copy (ext4), or with readahead and write-behind hints.
//!
//! Where the filesystem offloads `copy_file_range` below this machine (an NFS mount: a
//! server-side COPY; CephFS: RADOS object copies), a full clone uses it before anything
//! else, so that no byte crosses the gateway ([`CopyPlan::for_clone`]).

mod budget;
mod direct;

use std::os::fd::BorrowedFd;

use rustix::fs::{fallocate, seek, Advice, FallocateFlags, SeekFrom};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind};
use crate::progress::{CancelToken, Reporter};

/// Bytes per buffered read/write and per cancellation check.
///
/// 1 MiB, with the next chunk's readahead requested before this one is written: measured
/// against `cp` on XFS (docs/benchmarks.md), 8 MiB reads without that overlap left the disk
/// idle while the page cache was being filled and ran at 60-70% of `cp`'s throughput.
pub(crate) const CHUNK: usize = 1 << 20;

/// Start writeback of the destination every this many bytes (see `Ctx::write_behind`).
const WRITE_BEHIND: u64 = 16 << 20;

/// A zero block to compare against.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// How to copy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CopyPlan {
    /// Keep the destination thin: holes stay holes, all-zero blocks are not written.
    pub skip_zeroes: bool,
    /// Granularity of zero detection (the filesystem block size, at most 64 KiB).
    pub zero_block: usize,
    /// How `copy_file_range` is used for data.
    pub copy_file_range: Cfr,
}

/// Whether and how data goes by `copy_file_range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cfr {
    /// Never (`pread`/`pwrite`): it may share extents where the filesystem can reflink.
    No,
    /// When the copy is not direct: a real in-kernel copy on this machine (ext4).
    Local,
    /// Always, before direct I/O: the filesystem copies below us (NFS, CephFS).
    Offloaded,
}

impl CopyPlan {
    /// The plan for a non-LAZY clone onto the export with `caps`, the source on the same
    /// filesystem or not. A thin copy (`skip_zeroes`) must look at every block, so it never
    /// goes by `copy_file_range`.
    pub(crate) fn for_clone(
        caps: &crate::Capabilities,
        same_fs: bool,
        skip_zeroes: bool,
        zero_block: usize,
    ) -> CopyPlan {
        let copy_file_range = if !same_fs || skip_zeroes {
            Cfr::No
        } else if caps.copy_offload {
            Cfr::Offloaded
        } else if !caps.reflink && caps.fs_type == "ext4" {
            Cfr::Local
        } else {
            Cfr::No
        };
        CopyPlan {
            skip_zeroes,
            zero_block,
            copy_file_range,
        }
    }
}

const OP: &str = "copy";

/// Copies `[0, size)` of `src` into the empty `dst`, returning the data bytes written.
pub(crate) fn copy(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    size: u64,
    plan: &CopyPlan,
    reporter: &mut Reporter<'_>,
    cancel: &CancelToken,
    path: &str,
) -> Result<u64, Error> {
    copy_range(src, dst, 0..size, plan, reporter, cancel, path)
}

/// Copies `range` of `src` into `dst`, whose size is the reporter's total, returning the data
/// bytes written. A range that starts at 0 is the copy's first: `dst` is empty and given its
/// size here; a later range continues a copy of the same source into the same `dst` (a
/// clone resumed from its checkpoint, see `crate::resume`).
pub(crate) fn copy_range(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    range: std::ops::Range<u64>,
    plan: &CopyPlan,
    reporter: &mut Reporter<'_>,
    cancel: &CancelToken,
    path: &str,
) -> Result<u64, Error> {
    let sys = |e| Error::sys(OP, path, e);
    // The size first, so that no write extends the file: XFS would otherwise preallocate
    // beyond EOF as it grows, and once the file has fallocated ranges (thick copies) it keeps
    // those blocks after close. (Never truncate it again later: on XFS even a same-size
    // truncate writes the file back and waits.)
    if range.start == 0 {
        rustix::fs::ftruncate(dst, reporter.total()).map_err(sys)?;
    }
    let direct = plan.copy_file_range != Cfr::Offloaded
        && range.end - range.start.min(range.end) >= direct::MIN_SIZE
        && direct::enable(src, dst);
    // Sequential readahead for whatever goes through the page cache: a buffered copy, or
    // the chunks of a direct one whose source another copy reads too.
    let _ = rustix::fs::fadvise(src, 0, None, Advice::Sequential);
    let mut ctx = Ctx {
        src,
        dst: direct::Dio::new(dst, direct),
        plan,
        reporter,
        cancel,
        path,
        buf: Vec::new(),
        written: 0,
        can_fallocate: true,
        flushed: 0,
        cfr: plan.copy_file_range != Cfr::No,
    };
    let regions = Regions {
        src,
        off: range.start,
        size: range.end,
    };
    if direct {
        direct::copy(&mut ctx, regions)?;
    } else {
        for region in regions {
            cancel.check(OP, path)?;
            match region.map_err(sys)? {
                Region::Hole(a, b) => ctx.hole(a, b)?,
                Region::Data(a, b) => ctx.data(a, b)?,
            }
        }
    }
    Ok(ctx.written)
}

/// A stretch of the source: a hole, or data.
enum Region {
    Hole(u64, u64),
    Data(u64, u64),
}

/// The regions of `[off, size)` of the source, in order, by `lseek(SEEK_DATA)` and
/// `lseek(SEEK_HOLE)`; all data where the filesystem cannot tell. (`size` is where the walk
/// ends: the file's size, or the end of the range being copied.)
struct Regions<'a> {
    src: BorrowedFd<'a>,
    off: u64,
    size: u64,
}

impl Iterator for Regions<'_> {
    type Item = Result<Region, Errno>;

    fn next(&mut self) -> Option<Self::Item> {
        let off = self.off;
        if off >= self.size {
            return None;
        }
        let data = match seek(self.src, SeekFrom::Data(off)) {
            Ok(d) => d.min(self.size),
            Err(Errno::NXIO) => self.size,
            // No SEEK_DATA support: everything is data.
            Err(Errno::INVAL) => off,
            Err(e) => {
                self.off = self.size;
                return Some(Err(e));
            }
        };
        if data > off {
            self.off = data;
            return Some(Ok(Region::Hole(off, data)));
        }
        let end = match seek(self.src, SeekFrom::Hole(data)) {
            Ok(h) => h.min(self.size),
            Err(Errno::NXIO | Errno::INVAL) => self.size,
            Err(e) => {
                self.off = self.size;
                return Some(Err(e));
            }
        };
        let end = end.max(data + 1).min(self.size);
        self.off = end;
        Some(Ok(Region::Data(data, end)))
    }
}

struct Ctx<'a, 'r, 'c> {
    src: BorrowedFd<'a>,
    /// The destination, direct or buffered.
    dst: direct::Dio<'a>,
    plan: &'a CopyPlan,
    reporter: &'r mut Reporter<'c>,
    cancel: &'a CancelToken,
    path: &'a str,
    buf: Vec<u8>,
    written: u64,
    can_fallocate: bool,
    /// Writeback has been started for the destination below this offset.
    flushed: u64,
    /// `copy_file_range` is (still) to be used: it is dropped if the kernel refuses it.
    cfr: bool,
}

impl Ctx<'_, '_, '_> {
    fn sys(&self, e: Errno) -> Error {
        Error::sys(OP, self.path, e)
    }

    /// `[start, end)` is a hole in the source.
    fn hole(&mut self, start: u64, end: u64) -> Result<(), Error> {
        if self.plan.skip_zeroes {
            self.reporter.advance(end - start);
            return Ok(());
        }
        let mut off = start;
        while off < end {
            self.cancel.check(OP, self.path)?;
            let len = (64 << 20u64).min(end - off);
            if self.can_fallocate {
                // fallocate(dst, 0, off, len) — provisions the blocks without writing them.
                match fallocate(self.dst.fd(), FallocateFlags::empty(), off, len) {
                    Ok(()) => {
                        off += len;
                        self.reporter.advance(len);
                        continue;
                    }
                    Err(Errno::OPNOTSUPP | Errno::NOSYS) => self.can_fallocate = false,
                    Err(e) => return Err(self.sys(e)),
                }
            }
            let len = (CHUNK as u64).min(end - off) as usize;
            self.write_all(&vec![0u8; len], off)?;
            off += len as u64;
            self.reporter.advance(len as u64);
        }
        Ok(())
    }

    /// `[start, end)` holds data in the source.
    fn data(&mut self, start: u64, end: u64) -> Result<(), Error> {
        let start = if self.cfr && !self.plan.skip_zeroes {
            match self.data_cfr(start, end)? {
                None => return Ok(()),
                Some(rest) => rest,
            }
        } else {
            start
        };
        if self.buf.is_empty() {
            self.buf = vec![0u8; CHUNK];
        }
        let mut off = start;
        while off < end {
            self.cancel.check(OP, self.path)?;
            let want = (self.buf.len() as u64).min(end - off) as usize;
            // Start reading the next chunk now, so the disk works while this one is written.
            let next = off + want as u64;
            if next < end {
                let len = std::num::NonZeroU64::new((want as u64).min(end - next));
                let _ = rustix::fs::fadvise(self.src, next, len, Advice::WillNeed);
            }
            let got = direct::Dio::new(self.src, false)
                .read_full(&mut self.buf[..want], off)
                .map_err(|e| self.sys(e))?;
            if got == 0 {
                // The source shrank while we copied; the rest reads as zeros (ftruncate).
                self.reporter.advance(end - off);
                return Ok(());
            }
            let buf = std::mem::take(&mut self.buf);
            let result = self.write_data(&buf[..got], off);
            self.buf = buf;
            result?;
            off += got as u64;
            self.reporter.advance(got as u64);
            self.write_behind(off);
        }
        Ok(())
    }

    /// `posix_fadvise(dst, from, len, POSIX_FADV_DONTNEED)` every [`WRITE_BEHIND`] bytes —
    /// starts writeback of what was just written (without waiting for it) and drops pages
    /// already clean, so the disk writes while the copy reads, the final `fsync` has little
    /// left to do, and a huge copy does not evict the rest of the page cache.
    fn write_behind(&mut self, upto: u64) {
        if upto < self.flushed + WRITE_BEHIND {
            if upto < self.flushed {
                self.flushed = upto;
            }
            return;
        }
        let len = std::num::NonZeroU64::new(upto - self.flushed);
        let _ = rustix::fs::fadvise(self.dst.fd(), self.flushed, len, Advice::DontNeed);
        self.flushed = upto;
    }

    /// `copy_file_range(src, &off, dst, &off, len)` — an in-kernel copy; only used where the
    /// filesystem cannot share extents, so it is a real copy. `Some(offset)` if the kernel
    /// refuses it (`EXDEV`, `EOPNOTSUPP`, `ENOSYS`): the rest is copied by reading and
    /// writing from there, and so are later regions.
    fn data_cfr(&mut self, start: u64, end: u64) -> Result<Option<u64>, Error> {
        let mut off = start;
        while off < end {
            self.cancel.check(OP, self.path)?;
            let want = (8 << 20u64).min(end - off) as usize;
            let (mut off_in, mut off_out) = (off, off);
            let n = rustix::fs::copy_file_range(
                self.src,
                Some(&mut off_in),
                self.dst.fd(),
                Some(&mut off_out),
                want,
            );
            let n = match n {
                Ok(n) => n,
                Err(Errno::XDEV | Errno::OPNOTSUPP | Errno::NOSYS) => {
                    self.cfr = false;
                    return Ok(Some(off));
                }
                Err(e) => return Err(self.sys(e)),
            };
            if n == 0 {
                self.reporter.advance(end - off);
                return Ok(None);
            }
            off += n as u64;
            self.written += n as u64;
            self.reporter.advance(n as u64);
        }
        Ok(None)
    }

    /// Writes the data `buf` read at `off`: all of it, or (SKIPZEROES) its non-zero blocks.
    fn write_data(&mut self, buf: &[u8], off: u64) -> Result<(), Error> {
        if self.plan.skip_zeroes {
            self.write_nonzero(buf, off)
        } else {
            self.write_all(buf, off)
        }
    }

    /// Writes `buf` at `off`, skipping every all-zero block (coalescing non-zero runs).
    fn write_nonzero(&mut self, buf: &[u8], off: u64) -> Result<(), Error> {
        let block = self.plan.zero_block;
        let mut run_start: Option<usize> = None;
        let mut i = 0;
        while i < buf.len() {
            let j = (i + block).min(buf.len());
            let zero = buf[i..j] == ZEROS[..j - i];
            match (zero, run_start) {
                (false, None) => run_start = Some(i),
                (true, Some(s)) => {
                    self.write_all(&buf[s..i], off + s as u64)?;
                    run_start = None;
                }
                _ => {}
            }
            i = j;
        }
        if let Some(s) = run_start {
            self.write_all(&buf[s..], off + s as u64)?;
        }
        Ok(())
    }

    fn write_all(&mut self, mut buf: &[u8], mut off: u64) -> Result<(), Error> {
        while !buf.is_empty() {
            match self.dst.pwrite(buf, off) {
                Ok(0) => return Err(Error::new(ErrorKind::Io, OP, self.path.to_owned())),
                Ok(n) => {
                    buf = &buf[n..];
                    off += n as u64;
                    self.written += n as u64;
                }
                Err(e) => return Err(self.sys(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
