//! CLONEFILE: LAZY (reflink) or physical copy, GUARDED or replacing, DRYRUN.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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
use crate::resume::{CloneJob, CloneRecord, Found, SourceId, StagedJob};

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
    /// The file under construction; `None` for a dry run, or for a resumed clone that had
    /// been published already.
    file: Option<Building>,
    name: String,
    guarded: bool,
    dst: String,
    outcome: CloneOutcome,
}

/// Where a staged clone's file is.
enum Building {
    /// Unnamed in its destination directory (`O_TMPFILE`, or a named temporary there).
    Anonymous(Staged<OwnedFd>),
    /// A job's partial file in the private directory, with its record (see `crate::resume`).
    Job(StagedJob),
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
        let published = match self.file {
            Some(Building::Anonymous(file)) => {
                file.publish(&self.name, self.guarded, OP, &self.dst)
            }
            Some(Building::Job(job)) => job.publish(&self.name, self.guarded, OP, &self.dst),
            None => Ok(()),
        };
        published.map_err(|e| e.on(Side::Destination))?;
        Ok(self.outcome)
    }

    /// Leaves a job's partial file and record in place for the next process, which resumes
    /// it ([`Export::resume_clone`]); any other staged clone is discarded, as when dropped.
    /// (A job's clone whose token was [suspended](CancelToken::suspend) while it copied is
    /// kept the same way.)
    pub fn keep_for_restart(self) {
        if let Some(Building::Job(job)) = self.file {
            job.keep();
        }
    }

    /// Whether the clone outlives this process if kept ([`keep_for_restart`]).
    ///
    /// [`keep_for_restart`]: Self::keep_for_restart
    pub fn is_resumable(&self) -> bool {
        matches!(self.file, Some(Building::Job(_)))
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
        self.stage(
            src_export,
            src,
            dst,
            flags,
            Staging::New(None),
            progress,
            cancel,
        )
    }

    /// [`stage_clone`](Self::stage_clone) for job `job`, so that it outlives this process: a
    /// full clone is built in the private directory with a record and checkpoints (see
    /// `crate::resume`), and a later process can go on with it from its last checkpoint
    /// ([`resume_clone`](Self::resume_clone)). A LAZY clone or a dry run is the same as
    /// [`stage_clone`](Self::stage_clone)'s: it has nothing to resume.
    #[allow(clippy::too_many_arguments)]
    pub fn stage_clone_job(
        &self,
        src_export: &Export,
        job: CloneJob<'_>,
        src: &str,
        dst: &str,
        flags: CloneFlags,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> Result<StagedClone, Error> {
        self.stage(
            src_export,
            src,
            dst,
            flags,
            Staging::New(Some(job)),
            progress,
            cancel,
        )
    }

    /// Goes on with a clone that a process left in progress (its record, from
    /// [`clone_records`](Self::clone_records)), `src_export` being the export its record
    /// names (this one when it names none): from its last checkpoint, or from zero when the
    /// source changed since. The destination is checked again as at the start (GUARDED: it
    /// must still be absent). A clone that had been published before its record was removed
    /// stages nothing and publishes nothing. On error the clone's files are removed: it
    /// cannot go on.
    pub fn resume_clone(
        &self,
        src_export: &Export,
        record: &CloneRecord,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> Result<StagedClone, Error> {
        let flags = record.flags;
        let resumed = self.stage(
            src_export,
            &record.src,
            &record.dst,
            flags,
            Staging::Resume(record),
            progress,
            cancel,
        );
        if resumed.is_err() && !cancel.is_suspended() {
            // It cannot go on: its files go (those of a staged job went when it was dropped).
            crate::resume::discard_in(self.private_dir()?, record.job);
        }
        resumed
    }

    /// The records of clones that a process left in progress in this export, and the
    /// records it cannot read (with why). Partial files that have no record are removed.
    pub fn clone_records(&self) -> Result<crate::resume::CloneRecords, Error> {
        Ok(crate::resume::records(self.private_dir()?))
    }

    /// Removes the files of recorded job `job` (nobody came back for it).
    pub fn discard_clone(&self, job: u64) -> Result<(), Error> {
        crate::resume::discard_in(self.private_dir()?, job);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn stage(
        &self,
        src_export: &Export,
        src: &str,
        dst: &str,
        flags: CloneFlags,
        staging: Staging<'_>,
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
        let resumed = match staging {
            Staging::Resume(record) => {
                let found =
                    crate::resume::find(self.private_dir()?, dir.as_fd(), name, record, dst)
                        .map_err(|e| e.on(Side::Destination))?;
                match found {
                    Found::Published => {
                        return Ok(StagedClone {
                            file: None,
                            name: name.to_owned(),
                            guarded: flags.guarded,
                            dst: dst.to_owned(),
                            outcome: CloneOutcome {
                                bytes: record.source.size,
                                copied: 0,
                            },
                        })
                    }
                    Found::Partial(file) => Some((file, record)),
                }
            }
            Staging::New(_) => None,
        };
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

        let plan = CopyPlan::for_clone(
            self.capabilities(),
            src_st.st_dev == dir_st.st_dev,
            flags.skip_zeroes,
            zero_block(dir.as_fd()),
        );
        let src_at = (src_fd.as_fd(), &src_st);
        match (staging, resumed) {
            (_, Some((file, record))) => {
                let changed = record.source != SourceId::of(&src_st);
                let job =
                    crate::resume::reopen(self.private_dir()?, dir, file, record.clone(), dst)?;
                return self.run_job(job, changed, src_at, &plan, staged, progress, cancel);
            }
            (Staging::New(Some(job)), None) if !flags.lazy => {
                let record = CloneRecord {
                    job: job.id,
                    src_export: job.src_export.map(str::to_owned),
                    src: src.to_owned(),
                    dst: dst.to_owned(),
                    flags: CloneFlags {
                        lazy: false,
                        dry_run: false,
                        ..flags
                    },
                    hold: job.hold,
                    source: SourceId::of(&src_st),
                    part_ino: 0,
                    done: 0,
                };
                let job = crate::resume::create(self.private_dir()?, dir, record, dst)?;
                return self.run_job(job, false, src_at, &plan, staged, progress, cancel);
            }
            (Staging::New(_) | Staging::Resume(_), None) => {}
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
            copy::copy(src_fd.as_fd(), tmp, size, &plan, &mut reporter, cancel, dst)?
        };
        cancel.check(OP, dst)?;
        finish_file(tmp, &src_st, dst, &mut reporter)?;
        staged.outcome.copied = copied;
        staged.file = Some(Building::Anonymous(file));
        Ok(staged)
    }

    /// The copy of a job's clone (see `crate::resume`), from its record's checkpoint, or from
    /// zero where the source `changed`.
    #[allow(clippy::too_many_arguments)]
    fn run_job(
        &self,
        mut job: StagedJob,
        changed: bool,
        (src_fd, src_st): (BorrowedFd<'_>, &rustix::fs::Stat),
        plan: &CopyPlan,
        mut staged: StagedClone,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> Result<StagedClone, Error> {
        let dst = staged.dst.clone();
        let private = self.private_dir()?;
        if changed {
            tracing::warn!(
                job = %format!("{:016x}", job.record().job),
                path = %dst,
                "the source changed while the clone was interrupted: copying it again from the start"
            );
            crate::resume::restart(&mut job, private, SourceId::of(src_st), &dst)?;
        }
        let size = src_st.st_size as u64;
        let mut reporter = Reporter::resuming(progress, size, job.record().done);
        let copied = crate::resume::copy_with_checkpoints(
            src_fd,
            &mut job,
            private,
            plan,
            &mut reporter,
            cancel,
            &dst,
        )
        .and_then(|copied| cancel.check(OP, &dst).map(|()| copied))
        .and_then(|copied| {
            finish_file(job.file(), src_st, &dst, &mut reporter)?;
            Ok(copied)
        });
        let copied = match copied {
            Ok(c) => c,
            Err(e) => {
                if cancel.is_suspended() {
                    // The process stops for a restart: the next one goes on from the last
                    // checkpoint.
                    job.keep();
                }
                return Err(e);
            }
        };
        staged.outcome.copied = copied;
        staged.file = Some(Building::Job(job));
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

/// What a clone is staged as.
#[derive(Clone, Copy)]
enum Staging<'a> {
    /// A new clone, for a job that may outlive the process or not.
    New(Option<CloneJob<'a>>),
    /// A clone a process left in progress.
    Resume(&'a CloneRecord),
}

/// The last steps of a staged file: owner and mode as the source's, `fsync`, the final
/// report. Ownership first: chown clears set-id bits, chmod then restores them.
fn finish_file(
    tmp: BorrowedFd<'_>,
    src_st: &rustix::fs::Stat,
    dst: &str,
    reporter: &mut Reporter<'_>,
) -> Result<(), Error> {
    let (uid, gid) = (src_st.st_uid, src_st.st_gid);
    fchown(tmp, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| Error::sys(OP, dst, e))?;
    fchmod(tmp, Mode::from_raw_mode(src_st.st_mode & 0o7777))
        .map_err(|e| Error::sys(OP, dst, e))?;
    rustix::fs::fsync(tmp).map_err(|e| Error::sys(OP, dst, e))?;
    // The final report comes after the data is durable and before anything is visible:
    // whoever holds the staged clone decides whether it is published.
    reporter.finish();
    Ok(())
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
