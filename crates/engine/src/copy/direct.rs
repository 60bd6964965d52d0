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

use std::os::fd::BorrowedFd;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TryRecvError};

use rustix::fs::OFlags;
use rustix::io::{pread, pwrite, Errno};

use super::{Ctx, Region, Regions};
use crate::error::{Error, ErrorKind};

/// Bytes per direct read and write.
const CHUNK: usize = 4 << 20;

/// Buffers in flight: one being read, one being written, one queued between them. The
/// memory of a copy is at most `DEPTH * CHUNK`; buffers are made as the reader needs them,
/// no larger than the file, so a small copy takes one small buffer.
const DEPTH: usize = 3;

/// Alignment of a direct transfer's offset, length and memory: the page size, a multiple of
/// every disk's logical block size.
pub(super) const ALIGN: usize = 4096;

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

/// A descriptor whose `O_DIRECT` flag follows each transfer: on for aligned ones while the
/// filesystem takes them, off otherwise.
pub(super) struct Dio<'a> {
    fd: BorrowedFd<'a>,
    /// `O_DIRECT` is set now.
    on: bool,
    /// Direct transfers are still worth trying.
    usable: bool,
}

impl<'a> Dio<'a> {
    /// `fd` as it is: direct (`O_DIRECT` set by [`enable`]) or buffered.
    pub(super) fn new(fd: BorrowedFd<'a>, direct: bool) -> Dio<'a> {
        Dio {
            fd,
            on: direct,
            usable: direct,
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

/// A chunk buffer aligned on [`ALIGN`].
struct Buf {
    mem: Vec<u8>,
    at: usize,
    len: usize,
}

impl Buf {
    fn new(cap: usize) -> Buf {
        let mem = vec![0u8; cap + ALIGN];
        let at = mem.as_ptr().align_offset(ALIGN);
        Buf { mem, at, len: 0 }
    }

    /// The first `len` bytes of the buffer (`len` at most its size).
    fn space(&mut self, len: usize) -> &mut [u8] {
        &mut self.mem[self.at..self.at + len]
    }

    fn data(&self) -> &[u8] {
        &self.mem[self.at..self.at + self.len]
    }
}

/// The reader's supply of buffers: those the writer handed back, or a new one while fewer
/// than [`DEPTH`] exist.
struct Free {
    rx: Receiver<Buf>,
    made: usize,
    /// The size of a buffer.
    cap: usize,
}

impl Free {
    /// A buffer to read into; `None` once the writer has gone.
    fn take(&mut self) -> Option<Buf> {
        match self.rx.try_recv() {
            Ok(buf) => Some(buf),
            Err(TryRecvError::Empty) if self.made < DEPTH => {
                self.made += 1;
                Some(Buf::new(self.cap))
            }
            Err(TryRecvError::Empty) => self.rx.recv().ok(),
            Err(TryRecvError::Disconnected) => None,
        }
    }
}

/// What the reader hands the writer, in file order.
enum Piece {
    Hole(u64, u64),
    /// `buf` holds the data at `off`, in a data region ending at `end`; empty if the source
    /// ended before `off` (it shrank while being copied).
    Data {
        buf: Buf,
        off: u64,
        end: u64,
    },
    Failed(Error),
}

/// Copies the regions of the source with a reader thread feeding `ctx`'s writes.
pub(super) fn copy(ctx: &mut Ctx<'_, '_, '_>, regions: Regions<'_>) -> Result<(), Error> {
    let (full_tx, full_rx) = sync_channel::<Piece>(DEPTH);
    let (free_tx, free_rx) = channel::<Buf>();
    let cap = (CHUNK as u64).min(regions.size.next_multiple_of(ALIGN as u64)) as usize;
    let free = Free {
        rx: free_rx,
        made: 0,
        cap,
    };
    let src = Dio::new(ctx.src, true);
    let (cancel, path) = (ctx.cancel, ctx.path);
    std::thread::scope(|s| {
        let reader = s.spawn(move || read(src, regions, full_tx, free, cancel, path));
        let result = write(ctx, full_rx, free_tx);
        // `write` dropped its ends of both channels: a reader waiting on either returns.
        match reader.join() {
            Ok(()) => result,
            Err(_) => result.and(Err(Error::new(ErrorKind::Io, "copy", path.to_owned()))),
        }
    })
}

/// The reader thread: walks the regions, reads each data region chunk by chunk into a free
/// buffer, and queues the pieces; returns when done, on the first error (queued), or when
/// the writer has gone.
fn read(
    mut src: Dio<'_>,
    regions: Regions<'_>,
    full: SyncSender<Piece>,
    mut free: Free,
    cancel: &crate::progress::CancelToken,
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
            if cancel.is_cancelled() {
                return;
            }
            let Some(mut buf) = free.take() else { return };
            let want = (CHUNK as u64).min(end - off) as usize;
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
/// cancel token, and hands each buffer back.
fn write(ctx: &mut Ctx<'_, '_, '_>, full: Receiver<Piece>, free: Sender<Buf>) -> Result<(), Error> {
    for piece in full {
        ctx.cancel.check(super::OP, ctx.path)?;
        match piece {
            Piece::Hole(a, b) => ctx.hole(a, b)?,
            Piece::Data { buf, off, end } => {
                if buf.len == 0 {
                    // The rest of the region reads as zeros (the size was set first).
                    ctx.reporter.advance(end - off);
                } else {
                    ctx.write_data(buf.data(), off)?;
                    ctx.reporter.advance(buf.len as u64);
                }
                let _ = free.send(buf);
            }
            Piece::Failed(e) => return Err(e),
        }
    }
    // The reader also stops, without a word, when the token fires.
    ctx.cancel.check(super::OP, ctx.path)
}
