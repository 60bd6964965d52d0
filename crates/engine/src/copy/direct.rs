//! Direct I/O for the data of a copy, read and written at once.
//!
//! Through the page cache a copy reads into memory the kernel must then write back, with
//! the writer throttled on dirty pages while the disk sits between reads; and a clone of a
//! large disk evicts what the NAS's other clients had cached. With `O_DIRECT` on both files,
//! one thread reads the next chunks of the source while the job's thread writes the last
//! one, so the disk reads and writes at once, and the page cache is left alone. On this
//! project's benchmark disk that halves the time of a 4 GiB full clone (docs/benchmarks.md).
//!
//! Every transfer that is aligned (offset, length and memory on [`ALIGN`]) is direct; the
//! rest (the tail of a file whose size is not a multiple of it, a filesystem with smaller
//! blocks) goes through the page cache on the same descriptor, its `O_DIRECT` flag cleared
//! for the transfer. A descriptor whose filesystem refuses a direct transfer (`EINVAL`) stays
//! buffered from then on.
//!
//! A source that more than one running copy reads at once (a pool deploy: a dozen full
//! clones of one template) is read through the page cache while it is shared, so that the
//! disk reads each of its blocks once for all of them, not once per copy ([`Readers`]).
//! Direct, sixteen clones of one 2 GiB template read 32 GiB from the disk; shared, 2 GiB.
//! Their writes stay direct.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, PoisonError};

use rustix::fs::OFlags;
use rustix::io::{pread, pwrite, Errno};

use super::budget::{self, Lease, CHUNK};
use super::{Ctx, Region, Regions};
use crate::error::{Error, ErrorKind};

/// Buffers in flight per copy: one being read, one queued, one being written (the queue
/// between reader and writer holds one piece). Each comes from the process's shared
/// [`budget`], in turn with the other copies running, and goes back once written; so one
/// copy alone has three, and many at once share [`budget::BUFFERS`] between them.
const QUEUED: usize = 1;

/// Alignment of a direct transfer's offset, length and memory: the budget's buffers'.
pub(super) const ALIGN: usize = budget::ALIGN;

/// Copies smaller than this go through the page cache: for them the reader thread costs
/// more than it saves, and their source is likely still cached.
pub(super) const MIN_SIZE: u64 = 1 << 20;

/// Sets or clears `O_DIRECT` on `fd`.
fn set_direct(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(fd, flags)
}

/// Turns `O_DIRECT` on for both descriptors; false (and both left buffered) if either
/// filesystem refuses it.
pub(super) fn enable(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> bool {
    if set_direct(src, true).is_err() {
        return false;
    }
    if set_direct(dst, true).is_err() {
        let _ = set_direct(src, false);
        return false;
    }
    true
}

/// A file by device and inode.
type FileId = (u64, u64);

/// How many running copies read each source now (a few: one entry per running copy at most).
pub(super) struct Readers(Mutex<Vec<(FileId, usize)>>);

/// The process's.
static READERS: Readers = Readers::new();

impl Readers {
    pub(super) const fn new() -> Readers {
        Readers(Mutex::new(Vec::new()))
    }

    /// Counts a copy reading `fd`'s file until the guard is dropped (none if `fstat`
    /// fails: the copy then reads direct, as if alone).
    pub(super) fn enter(&self, fd: BorrowedFd<'_>) -> Option<Reading<'_>> {
        let st = rustix::fs::fstat(fd).ok()?;
        let id = (st.st_dev, st.st_ino);
        let mut files = self.files();
        match files.iter_mut().find(|(f, _)| *f == id) {
            Some((_, n)) => *n += 1,
            None => files.push((id, 1)),
        }
        Some(Reading { readers: self, id })
    }

    /// How many copies read `id` now.
    fn count(&self, id: FileId) -> usize {
        self.files()
            .iter()
            .find(|(f, _)| *f == id)
            .map_or(0, |&(_, n)| n)
    }

    fn files(&self) -> std::sync::MutexGuard<'_, Vec<(FileId, usize)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One copy counted as reading a file.
pub(super) struct Reading<'r> {
    readers: &'r Readers,
    id: FileId,
}

impl Reading<'_> {
    /// Another running copy reads the same file now.
    pub(super) fn shared(&self) -> bool {
        self.readers.count(self.id) > 1
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut files = self.readers.files();
        if let Some(i) = files.iter().position(|(f, _)| *f == self.id) {
            files[i].1 -= 1;
            if files[i].1 == 0 {
                files.swap_remove(i);
            }
        }
    }
}

/// A descriptor whose `O_DIRECT` flag follows each transfer: on for aligned ones while the
/// filesystem takes them, off otherwise.
pub(super) struct Dio<'a> {
    fd: BorrowedFd<'a>,
    /// `O_DIRECT` is set now.
    on: bool,
    /// Direct transfers are still worth trying.
    usable: bool,
    /// The next transfers go through the page cache, aligned or not (a shared source).
    cached: bool,
}

impl<'a> Dio<'a> {
    /// `fd` as it is: direct (`O_DIRECT` set by [`enable`]) or buffered.
    pub(super) fn new(fd: BorrowedFd<'a>, direct: bool) -> Dio<'a> {
        Dio {
            fd,
            on: direct,
            usable: direct,
            cached: false,
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'a> {
        self.fd
    }

    /// Sets the flag for a transfer of up to `len` bytes at `off` from or to `ptr`, and
    /// returns how many to transfer: direct, the aligned part (all but an unaligned tail);
    /// else all of it, through the page cache.
    fn prepare(&mut self, off: u64, len: usize, ptr: *const u8) -> Result<usize, Errno> {
        let direct = self.usable
            && !self.cached
            && off.is_multiple_of(ALIGN as u64)
            && (ptr as usize).is_multiple_of(ALIGN)
            && len >= ALIGN;
        if direct != self.on {
            set_direct(self.fd, direct)?;
            self.on = direct;
        }
        Ok(if direct { len - len % ALIGN } else { len })
    }

    /// After `EINVAL` from a direct transfer: buffered from now on. False if the transfer
    /// was not direct (the error is the caller's).
    fn give_up(&mut self) -> bool {
        if !self.on {
            return false;
        }
        self.usable = false;
        self.on = false;
        set_direct(self.fd, false).is_ok()
    }

    /// `pread`, direct when it can be.
    fn pread(&mut self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        loop {
            let n = self.prepare(off, buf.len(), buf.as_ptr())?;
            match pread(self.fd, &mut buf[..n], off) {
                Err(Errno::INVAL) if self.give_up() => continue,
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// `pwrite`, direct when it can be.
    pub(super) fn pwrite(&mut self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        loop {
            let n = self.prepare(off, buf.len(), buf.as_ptr())?;
            match pwrite(self.fd, &buf[..n], off) {
                Err(Errno::INVAL) if self.give_up() => continue,
                Err(Errno::INTR) => continue,
                r => return r,
            }
        }
    }

    /// Reads `buf.len()` bytes at `off`; fewer only at end of file.
    pub(super) fn read_full(&mut self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        let mut got = 0;
        while got < buf.len() {
            // The aligned part goes direct, an unaligned rest through the page cache.
            match self.pread(&mut buf[got..], off + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        Ok(got)
    }
}

/// What the reader hands the writer, in file order.
enum Piece {
    Hole(u64, u64),
    /// `buf` holds the data at `off`, in a data region ending at `end`; empty if the source
    /// ended before `off` (it shrank while being copied).
    Data {
        buf: Lease<'static>,
        off: u64,
        end: u64,
    },
    Failed(Error),
}

/// Copies the regions of the source with a reader thread feeding `ctx`'s writes.
pub(super) fn copy(ctx: &mut Ctx<'_, '_, '_>, regions: Regions<'_>) -> Result<(), Error> {
    let (full_tx, full_rx) = sync_channel::<Piece>(QUEUED);
    let cap = (CHUNK as u64).min(regions.size.next_multiple_of(ALIGN as u64)) as usize;
    let src = Dio::new(ctx.src, true);
    let reading = READERS.enter(ctx.src);
    let (cancel, path) = (ctx.cancel, ctx.path);
    let writer_gone = AtomicBool::new(false);
    std::thread::scope(|s| {
        let gone = &writer_gone;
        let stop = move || cancel.is_cancelled() || gone.load(Ordering::Relaxed);
        let reading = reading.as_ref();
        let reader = s.spawn(move || read(src, reading, regions, full_tx, cap, &stop, path));
        let result = write(ctx, full_rx);
        // `write` dropped its end of the queue: a reader sending returns, one waiting for
        // a buffer gives up.
        writer_gone.store(true, Ordering::Relaxed);
        match reader.join() {
            Ok(()) => result,
            Err(_) => result.and(Err(Error::new(ErrorKind::Io, "copy", path.to_owned()))),
        }
    })
}

/// The reader thread: walks the regions, reads each data region chunk by chunk into a
/// buffer of the budget (of `cap` bytes at most; through the page cache while `reading`
/// says another copy reads the same source), and queues the pieces; returns when done, on
/// the first error (queued), or when `stop` says the copy is cancelled or the writer has
/// gone.
fn read(
    mut src: Dio<'_>,
    reading: Option<&Reading<'_>>,
    regions: Regions<'_>,
    full: SyncSender<Piece>,
    cap: usize,
    stop: &dyn Fn() -> bool,
    path: &str,
) {
    for region in regions {
        let (start, end) = match region {
            Err(e) => {
                let _ = full.send(Piece::Failed(Error::sys(super::OP, path, e)));
                return;
            }
            Ok(Region::Hole(a, b)) => {
                if full.send(Piece::Hole(a, b)).is_err() {
                    return;
                }
                continue;
            }
            Ok(Region::Data(a, b)) => (a, b),
        };
        let mut off = start;
        while off < end {
            let Some(mut buf) = budget::GLOBAL.lease(cap, stop) else {
                return;
            };
            let want = (cap as u64).min(end - off) as usize;
            src.cached = reading.is_some_and(Reading::shared);
            let n = match src.read_full(buf.space(want), off) {
                Ok(n) => n,
                Err(e) => {
                    let _ = full.send(Piece::Failed(Error::sys(super::OP, path, e)));
                    return;
                }
            };
            buf.len = n;
            if full.send(Piece::Data { buf, off, end }).is_err() {
                return;
            }
            if n == 0 {
                break;
            }
            off += n as u64;
        }
    }
}

/// The writer (the job's thread): writes the pieces in order, reports progress, checks the
/// cancel token, and gives each buffer back to the budget once written.
fn write(ctx: &mut Ctx<'_, '_, '_>, full: Receiver<Piece>) -> Result<(), Error> {
    for piece in full {
        ctx.cancel.check(super::OP, ctx.path)?;
        match piece {
            Piece::Hole(a, b) => ctx.hole(a, b)?,
            Piece::Data { buf, off, end } => {
                let n = buf.len as u64;
                if n > 0 {
                    ctx.write_data(buf.data(), off)?;
                }
                // Back to the budget before reporting (pacing sleeps in the report), for
                // the next copy in line.
                drop(buf);
                // Nothing read: the rest of the region reads as zeros (the size was set first).
                ctx.reporter.advance(if n == 0 { end - off } else { n });
            }
            Piece::Failed(e) => return Err(e),
        }
    }
    // The reader also stops, without a word, when the token fires.
    ctx.cancel.check(super::OP, ctx.path)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    use super::super::{copy, CopyPlan};
    use super::*;
    use crate::progress::{CancelToken, Reporter};

    /// A source is shared while two copies read it, by inode (not by descriptor), and
    /// alone again once the other has ended; another file is not.
    #[test]
    fn a_source_is_shared_while_two_copies_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let readers = Readers::new();
        let (a1, a2, b1) = (
            std::fs::File::open(&a).unwrap(),
            std::fs::File::open(&a).unwrap(),
            std::fs::File::open(&b).unwrap(),
        );
        let first = readers.enter(a1.as_fd()).unwrap();
        let other = readers.enter(b1.as_fd()).unwrap();
        assert!(!first.shared(), "one copy of a: not shared");
        let second = readers.enter(a2.as_fd()).unwrap();
        assert!(first.shared() && second.shared(), "two copies of a: shared");
        assert!(!other.shared(), "b is read by one copy only");
        drop(second);
        assert!(!first.shared(), "the other copy of a has ended");
        drop((first, other));
        assert!(readers.files().is_empty(), "nothing counted once all ended");
    }

    /// Twelve full copies at once, through the direct path: never more buffers lent than
    /// the budget holds (each copy alone would take three: 36), every copy exact.
    #[test]
    fn many_copies_at_once_share_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let size = 3 * CHUNK + 4096;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let src_path = dir.path().join("src");
        std::fs::File::create(&src_path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let plan = CopyPlan {
            skip_zeroes: false,
            zero_block: 4096,
            copy_file_range: crate::copy::Cfr::No,
        };
        std::thread::scope(|s| {
            for i in 0..12 {
                let (dir, src_path, plan) = (dir.path(), &src_path, &plan);
                s.spawn(move || {
                    let src = std::fs::File::open(src_path).unwrap();
                    let dst_path = dir.join(format!("dst-{i}"));
                    let dst = std::fs::File::options()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&dst_path)
                        .unwrap();
                    let mut cb = |_| {};
                    let mut reporter = Reporter::new(&mut cb, size as u64);
                    let cancel = CancelToken::new();
                    copy(
                        src.as_fd(),
                        dst.as_fd(),
                        size as u64,
                        plan,
                        &mut reporter,
                        &cancel,
                        "dst",
                    )
                    .unwrap();
                });
            }
        });
        for i in 0..12 {
            let got = std::fs::read(dir.path().join(format!("dst-{i}"))).unwrap();
            assert!(got == data, "copy {i} differs from its source");
        }
        let peak = budget::GLOBAL.peak();
        assert!(
            (1..=budget::BUFFERS).contains(&peak),
            "{peak} buffers lent at once (budget {})",
            budget::BUFFERS
        );
    }
}
