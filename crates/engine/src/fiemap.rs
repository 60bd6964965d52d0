//! `ioctl(fd, FS_IOC_FIEMAP, &fiemap)` — the file's extent map, with per-extent flags.
//!
//! The only `unsafe` in the engine: the ioctl goes through rustix's [`Updater`] pattern, whose
//! constructor is `unsafe` because the opcode and the buffer type must agree.
//! See `Documentation/filesystems/fiemap.rst` in the kernel tree.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use rustix::io;
use rustix::ioctl::{ioctl, opcode, Updater};

/// Extents asked for per ioctl.
const BATCH: usize = 512;

/// `FIEMAP_EXTENT_LAST`: the last extent of the file.
pub const EXTENT_LAST: u32 = 0x0000_0001;
/// `FIEMAP_EXTENT_DELALLOC`: delayed allocation, no blocks yet.
pub const EXTENT_DELALLOC: u32 = 0x0000_0004;
/// `FIEMAP_EXTENT_UNWRITTEN`: allocated but reads as zeros (preallocated).
pub const EXTENT_UNWRITTEN: u32 = 0x0000_0800;
/// `FIEMAP_EXTENT_SHARED`: the blocks are shared with another file (reflink, snapshot).
pub const EXTENT_SHARED: u32 = 0x0000_2000;

/// `struct fiemap` without its flexible array: the header whose size the opcode encodes.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

/// `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// The header followed by room for [`BATCH`] extents, as the kernel expects it in memory.
#[repr(C)]
struct FiemapBuf {
    header: FiemapHeader,
    extents: [RawExtent; BATCH],
}

/// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: rustix::ioctl::Opcode = opcode::read_write::<FiemapHeader>(b'f', 11);

/// One mapped extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the file.
    pub logical: u64,
    /// Length in bytes.
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

/// `FIEMAP_FLAG_SYNC`: write the file's dirty pages back (and wait) before mapping.
const FLAG_SYNC: u32 = 0x0000_0001;

/// Calls `f` for every extent overlapping `[0, len)`, in batches of [`BATCH`] per ioctl.
///
/// The map is of what is on disk: data still in the page cache shows as a hole, as a
/// delayed allocation ([`EXTENT_DELALLOC`]), or, written into a preallocated range, as
/// [`EXTENT_UNWRITTEN`] until writeback. Where that matters, see [`for_each_extent_synced`].
///
/// Errors are the ioctl's: EOPNOTSUPP (or ENOTTY) where the filesystem has no FIEMAP.
pub fn for_each_extent<Fd: AsFd>(fd: Fd, len: u64, f: impl FnMut(Extent)) -> io::Result<()> {
    map(fd, len, 0, f)
}

/// [`for_each_extent`] with `FIEMAP_FLAG_SYNC`: the kernel writes the file's dirty pages back
/// and waits for them (unwritten extents written through the page cache are converted) before
/// the first batch is mapped, so an extent flagged [`EXTENT_UNWRITTEN`] has no data a writer
/// gave the page cache before the call.
pub fn for_each_extent_synced<Fd: AsFd>(fd: Fd, len: u64, f: impl FnMut(Extent)) -> io::Result<()> {
    map(fd, len, FLAG_SYNC, f)
}

fn map<Fd: AsFd>(fd: Fd, len: u64, flags: u32, mut f: impl FnMut(Extent)) -> io::Result<()> {
    let mut buf = Box::new(FiemapBuf {
        header: FiemapHeader::default(),
        extents: [RawExtent::default(); BATCH],
    });
    let mut start = 0u64;
    while start < len {
        buf.header = FiemapHeader {
            fm_start: start,
            fm_length: len - start,
            fm_flags: flags,
            fm_mapped_extents: 0,
            fm_extent_count: BATCH as u32,
            fm_reserved: 0,
        };
        // SAFETY: FS_IOC_FIEMAP reads a `struct fiemap` header and writes at most
        // `fm_extent_count` (= BATCH) `struct fiemap_extent` records after it; `FiemapBuf` is
        // `#[repr(C)]` with exactly that layout and room for BATCH extents, and it outlives
        // the call.
        let ctl = unsafe { Updater::<'_, FS_IOC_FIEMAP, FiemapBuf>::new(&mut buf) };
        // SAFETY: the opcode and the buffer type agree, as stated above.
        unsafe { ioctl(fd.as_fd(), ctl)? };
        let mapped = (buf.header.fm_mapped_extents as usize).min(BATCH);
        if mapped == 0 {
            break;
        }
        let mut last = false;
        for raw in &buf.extents[..mapped] {
            f(Extent {
                logical: raw.fe_logical,
                length: raw.fe_length,
                flags: raw.fe_flags,
            });
            last |= raw.fe_flags & EXTENT_LAST != 0;
        }
        let end = buf.extents[mapped - 1].fe_logical + buf.extents[mapped - 1].fe_length;
        if last || end <= start {
            break;
        }
        start = end;
    }
    Ok(())
}
