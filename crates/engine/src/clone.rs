//! CLONEFILE: LAZY (reflink) or physical copy, GUARDED or replacing, DRYRUN.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{
    accessat, fchmod, fchown, ioctl_ficlone, statat, Access, AtFlags, FileType, Gid, Mode, Uid,
};
use rustix::io::Errno;

use crate::copy::{self, CopyPlan};
use crate::error::{Error, ErrorKind, Side};
use crate::export::Export;
use crate::path::RelPath;
use crate::progress::{CancelToken, Progress, Reporter};
use crate::publish::Staged;
use crate::resolve::{open_dir, open_regular, Protected};

/// The clone flags of the NAS interface (SRCDATASTORE_VALID is implied by passing a
/// different source export).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloneFlags {
    /// Fail with [`ErrorKind::AlreadyExists`] if the destination exists (no race).
    pub guarded: bool,
    /// Copy-on-write clone (FICLONE); [`ErrorKind::NotSupported`] where impossible.
    pub lazy: bool,
    /// Check everything, create nothing.
    pub dry_run: bool,
    /// Keep the destination thin: holes and all-zero blocks are not written.
    pub skip_zeroes: bool,
}

/// What a clone did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloneOutcome {
    /// Logical size of the destination.
    pub bytes: u64,
    /// Data bytes physically written, or reflinked (0 for a dry run).
    pub copied: u64,
}

const OP: &str = "clone";

/// A clone with every byte in place and durable (owner and mode set, `fsync`ed) that nothing
/// can see yet: the first of a clone's two phases. [`publish`](Self::publish) gives it its
/// name; dropped unpublished it is discarded, its temporary gone (the `tempfile` crate's
/// `NamedTempFile::persist` shape). It holds its destination directory open, so it may be
/// kept (by a job held until its client's COMMIT) after the code that made it returned.
///
/// A dry run stages nothing: its `publish` creates nothing and returns the outcome.
#[must_use = "a staged clone dropped unpublished is discarded"]
pub struct StagedClone {
    /// The file under construction in its destination directory; `None` for a dry run.
    file: Option<Staged<OwnedFd>>,
    name: String,
    guarded: bool,
    dst: String,
    outcome: CloneOutcome,
}

impl StagedClone {
    /// What the clone did (and will be, once published).
    pub fn outcome(&self) -> CloneOutcome {
        self.outcome
    }

    /// The second phase: gives the clone its name and `fsync`s it and the directory.
    ///
    /// GUARDED: `linkat`, which fails with [`ErrorKind::AlreadyExists`] if the name appeared
    /// meanwhile; else `renameat` over whatever is there, atomically. On error nothing is
    /// left behind.
    pub fn publish(self) -> Result<CloneOutcome, Error> {
        if let Some(file) = self.file {
            file.publish(&self.name, self.guarded, OP, &self.dst)
                .map_err(|e| e.on(Side::Destination))?;
        }
        Ok(self.outcome)
    }
}

impl Export {
    /// Clone `src` (relative path inside `src_export`, which may be `self`) to `dst`
    /// (relative path inside self): [`stage_clone`](Self::stage_clone), then, unless
    /// `cancel` fired meanwhile, [`StagedClone::publish`].
    ///
    /// `progress` gets a report at least every 16 MiB of work, and a last one with
    /// `done == total` once the data is durable but before the destination is published;
    /// `cancel` is checked after that report, so cancelling from it leaves nothing.
    pub fn clone_file(
        &self,
        src_export: &Export,
        src: &str,
        dst: &str,
        flags: CloneFlags,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> Result<CloneOutcome, Error> {
        let staged = self.stage_clone(src_export, src, dst, flags, progress, cancel)?;
        cancel.check(OP, dst)?;
        staged.publish()
    }

    /// The first phase of a clone of `src` (inside `src_export`, which may be `self`) to
    /// `dst` (inside self): everything but giving the destination its name.
    ///
    /// The destination is built invisibly (see `publish`); on any error or cancellation
    /// nothing is left behind. Mode, uid and gid follow the source. `progress` gets a report
    /// at least every 16 MiB of work and a last one with `done == total` once the data is
    /// durable, just before this returns. A dry run checks everything and stages nothing.
    pub fn stage_clone(
        &self,
        src_export: &Export,
        src: &str,
        dst: &str,
        flags: CloneFlags,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> Result<StagedClone, Error> {
        let src_rel = RelPath::parse(OP, src).map_err(|e| e.on(Side::Source))?;
        let dst_rel = RelPath::parse(OP, dst).map_err(|e| e.on(Side::Destination))?;
        cancel.check(OP, dst)?;

        // The private directories' inodes, listed once per clone where the source is in this
        // export (a listing costs an openat2, two getdents64 and a stat per entry).
        let protected = self.protected();
        let src_protected = if std::ptr::eq(src_export, self) {
            None
        } else {
            Some(src_export.protected())
        };

        // The source: a regular file, not the daemon's private files.
        let (src_fd, src_st) = open_regular(
            src_export.root_fd.as_fd(),
            src_rel.as_str(),
            false,
            "open source",
        )
        .and_then(|(fd, st)| {
            src_protected
                .as_ref()
                .unwrap_or(&protected)
                .check(&st, "open source", src)?;
            Ok((fd, st))
        })
        .map_err(|e| e.on(Side::Source))?;
        let size = src_st.st_size as u64;

        // The destination directory, opened once and used by descriptor from here on.
        let (dir_path, name) = dst_rel.split_parent();
        let (dir, dir_st) = self
            .destination_dir(&protected, dir_path, dst)
            .map_err(|e| e.on(Side::DestinationDir))?;
        self.check_destination(&dir, name, &src_st, &protected, flags, dst)
            .map_err(|e| e.on(Side::Destination))?;
        if flags.lazy && !(self.lazy_possible(src_export) && src_st.st_dev == dir_st.st_dev) {
            return Err(Error::new(
                ErrorKind::NotSupported,
                "lazy clone",
                dst.to_owned(),
            ));
        }
        let mut staged = StagedClone {
            file: None,
            name: name.to_owned(),
            guarded: flags.guarded,
            dst: dst.to_owned(),
            outcome: CloneOutcome {
                bytes: size,
                copied: 0,
            },
        };
        if flags.dry_run {
            return Ok(staged);
        }

        let file = Staged::create(dir, "create destination", dst)?;
        let tmp = file.file();
        let mut reporter = Reporter::new(progress, size);
        let copied = if flags.lazy {
            // ioctl(tmp, FICLONE, src) — shares all of src's extents with tmp (copy-on-write).
            ioctl_ficlone(tmp, &src_fd).map_err(|e| match e {
                Errno::OPNOTSUPP | Errno::NOTTY | Errno::INVAL | Errno::XDEV => {
                    Error::sys_kind(ErrorKind::NotSupported, "lazy clone", dst, e)
                }
                e => Error::sys("lazy clone", dst, e),
            })?;
            data_bytes(src_fd.as_fd(), size)
        } else {
            let same_fs = src_st.st_dev == dir_st.st_dev;
            let plan = CopyPlan::for_clone(
                self.capabilities(),
                same_fs,
                flags.skip_zeroes,
                zero_block(file.dir()),
            );
            copy::copy(src_fd.as_fd(), tmp, size, &plan, &mut reporter, cancel, dst)?
        };
        cancel.check(OP, dst)?;

        // Ownership first: chown clears set-id bits, chmod then restores them.
        let (uid, gid) = (src_st.st_uid, src_st.st_gid);
        fchown(tmp, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| Error::sys(OP, dst, e))?;
        fchmod(tmp, Mode::from_raw_mode(src_st.st_mode & 0o7777))
            .map_err(|e| Error::sys(OP, dst, e))?;
        rustix::fs::fsync(tmp).map_err(|e| Error::sys(OP, dst, e))?;
        // The final report comes after the data is durable and before anything is visible:
        // whoever holds the staged clone decides whether it is published.
        reporter.finish();
        staged.outcome.copied = copied;
        staged.file = Some(file);
        Ok(staged)
    }

    /// Opens the destination's directory beneath this export: not private, writable.
    fn destination_dir(
        &self,
        protected: &Protected,
        dir_path: &str,
        dst: &str,
    ) -> Result<(rustix::fd::OwnedFd, rustix::fs::Stat), Error> {
        let dir = open_dir(self.root_fd.as_fd(), dir_path, "open destination directory")?;
        let dir_st = rustix::fs::fstat(&dir).map_err(|e| Error::sys(OP, dst, e))?;
        protected.check(&dir_st, "open destination directory", dst)?;
        accessat(
            &dir,
            ".",
            Access::WRITE_OK | Access::EXEC_OK,
            AtFlags::empty(),
        )
        .map_err(|e| Error::sys("destination directory", dst, e))?;
        Ok((dir, dir_st))
    }

    /// What is at the destination's name now: nothing, or something a clone may replace.
    fn check_destination(
        &self,
        dir: &rustix::fd::OwnedFd,
        name: &str,
        src_st: &rustix::fs::Stat,
        protected: &Protected,
        flags: CloneFlags,
        dst: &str,
    ) -> Result<(), Error> {
        match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(existing) => {
                // The same file by the same path, another name or a hard link: replacing it
                // would rewrite the source in place (and lose its shared extents).
                if (existing.st_dev, existing.st_ino) == (src_st.st_dev, src_st.st_ino) {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "clone onto its own source",
                        dst.to_owned(),
                    ));
                }
                if flags.guarded {
                    return Err(Error::new(ErrorKind::AlreadyExists, OP, dst.to_owned()));
                }
                if FileType::from_raw_mode(existing.st_mode) == FileType::Directory {
                    return Err(Error::new(ErrorKind::IncorrectFileType, OP, dst.to_owned()));
                }
                protected.check(&existing, OP, dst)?;
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::sys(OP, dst, e)),
        }
        Ok(())
    }
}

/// Bytes in the data regions of `[0, size)`: by FIEMAP (a few ioctls of 512 extents each),
/// else by SEEK_DATA/SEEK_HOLE (two `lseek`s per extent), else all of it.
fn data_bytes(fd: rustix::fd::BorrowedFd<'_>, size: u64) -> u64 {
    let mut total = 0;
    let by_fiemap = crate::fiemap::for_each_extent(fd, size, |e| {
        let end = (e.logical + e.length).min(size);
        total += end.saturating_sub(e.logical);
    });
    if by_fiemap.is_ok() {
        return total;
    }
    use rustix::fs::{seek, SeekFrom};
    let mut total = 0;
    let mut off = 0;
    while off < size {
        let Ok(data) = seek(fd, SeekFrom::Data(off)) else {
            break;
        };
        if data >= size {
            break;
        }
        let hole = seek(fd, SeekFrom::Hole(data)).unwrap_or(size).min(size);
        total += hole - data;
        off = hole.max(data + 1);
    }
    total
}

/// The granularity for zero detection: the filesystem block size, between 4 KiB and 64 KiB.
fn zero_block(dir: rustix::fd::BorrowedFd<'_>) -> usize {
    rustix::fs::fstatvfs(dir)
        .map(|s| s.f_bsize as usize)
        .unwrap_or(4096)
        .clamp(4096, 64 << 10)
}
