//! Full clones that outlive the process: a crash, an upgrade's restart, an HA failover.
//!
//! Such a clone is built in the export's private directory as `clone-<job>.part`, beside its
//! record `clone-<job>.job` ([`CloneRecord`]): the job, the source's identity, the flags, the
//! destination, and the bytes durably done. The copy goes in segments; after each, the
//! partial file is synced (`fdatasync`), and only then the record says the segment is done
//! (a checkpoint). A segment is about [`CHECKPOINT_EVERY`] of work at the rate the last one
//! ran, within [`MIN_SEGMENT`] and [`MAX_SEGMENT`]: a checkpoint costs one `fdatasync` and
//! one small atomic write about once a second, and a restart loses about a second of work.
//!
//! The private directory is on the export's filesystem, as every destination directory is
//! (paths never cross a mount), so publishing is one `renameat` (or, GUARDED, `linkat` and
//! then `unlinkat` of the partial name) into the destination's directory, and the published
//! destination is the partial file's inode. A record whose partial file is gone while the
//! destination is that inode was published before a crash removed the record.
//!
//! A later process resumes it ([`Export::resume_clone`]) from the last checkpoint, never
//! from a source that changed meanwhile: if the source's device, inode, size, mtime or ctime
//! differ from the record's, the copy starts over from zero. Dropping the clone unpublished
//! discards it (both files removed); [`StagedJob::keep`] leaves both for the next process.

mod record;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::fs::{
    fstat, linkat, openat, renameat, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags,
};
use rustix::io::Errno;

pub use record::{CloneRecord, SourceId};

use crate::copy::{self, CopyPlan};
use crate::error::{Error, ErrorKind};
use crate::private::PrivateDir;
use crate::progress::{CancelToken, Reporter};

/// The names of a clone job's files in the private directory start so.
pub const JOB_PREFIX: &str = "clone-";
const PART: &str = ".part";
const RECORD: &str = ".job";

/// About this much copying between two checkpoints.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The smallest segment between two checkpoints.
pub const MIN_SEGMENT: u64 = 32 << 20;
/// The largest segment between two checkpoints (and the first one).
pub const MAX_SEGMENT: u64 = 1 << 30;
/// The first segment, before any rate is known.
const FIRST_SEGMENT: u64 = MIN_SEGMENT;

fn part_name(job: u64) -> String {
    format!("{JOB_PREFIX}{job:016x}{PART}")
}

fn record_name(job: u64) -> String {
    format!("{JOB_PREFIX}{job:016x}{RECORD}")
}

/// The job a full clone is built for, so that it can outlive the process.
#[derive(Clone, Copy, Debug)]
pub struct CloneJob<'a> {
    /// The job's id (unique among the export's jobs; the daemon's are 64 random bits).
    pub id: u64,
    /// The source's export by the caller's name for it, when it is not this export.
    pub src_export: Option<&'a str>,
    /// See [`CloneRecord::hold`].
    pub hold: bool,
}

/// A full clone's partial file in the private directory, with its record.
pub(crate) struct StagedJob {
    /// A descriptor of the private directory.
    private: OwnedFd,
    /// The destination's directory.
    dir: OwnedFd,
    file: OwnedFd,
    record: CloneRecord,
    /// Both files are still there to remove on drop.
    armed: bool,
}

impl StagedJob {
    pub(crate) fn file(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Leaves the partial file and its record for the next process to resume (the daemon
    /// stops for a restart): nothing is removed.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }

    /// Gives the file its name `name` in the destination's directory (GUARDED: `linkat`, which
    /// fails if the name exists; else `renameat` over it), `fsync`s the file and then that
    /// directory (the order `publish.rs` explains: Btrfs logs the file's extents with its new
    /// name only at the file's own `fsync`), then removes the record.
    pub(crate) fn publish(
        mut self,
        name: &str,
        guarded: bool,
        op: &'static str,
        path: &str,
    ) -> Result<(), Error> {
        let sys = |e| Error::sys(op, path, e);
        let part = part_name(self.record.job);
        if guarded {
            linkat(
                &self.private,
                part.as_str(),
                &self.dir,
                name,
                AtFlags::empty(),
            )
            .map_err(sys)?;
            // Published: a partial name left behind is removed with the record below, or at
            // the next start (its record then finds the destination is its inode).
            let _ = unlinkat(&self.private, part.as_str(), AtFlags::empty());
        } else {
            renameat(&self.private, part.as_str(), &self.dir, name).map_err(sys)?;
        }
        rustix::fs::fsync(&self.file).map_err(sys)?;
        rustix::fs::fsync(&self.dir).map_err(sys)?;
        self.armed = false;
        let _ = unlinkat(
            &self.private,
            record_name(self.record.job).as_str(),
            AtFlags::empty(),
        );
        Ok(())
    }
}

impl Drop for StagedJob {
    fn drop(&mut self) {
        if self.armed {
            discard(self.private.as_fd(), self.record.job);
        }
    }
}

/// Removes job `job`'s partial file and record (the record last: a crash in between leaves a
/// record with no partial file, which resumes nothing and is discarded in turn).
fn discard(private: BorrowedFd<'_>, job: u64) {
    let _ = unlinkat(private, part_name(job).as_str(), AtFlags::empty());
    let _ = unlinkat(private, record_name(job).as_str(), AtFlags::empty());
}

/// Where a recorded clone stands when a process finds it.
pub(crate) enum Found {
    /// Its partial file is there: the copy can go on.
    Partial(OwnedFd),
    /// Its partial file is gone and the destination is its inode: it was published.
    Published,
}

/// Finds job `record`'s partial file in `private`, or learns from `dst_dir` that it was
/// published; `NotFound` if neither.
pub(crate) fn find(
    private: &PrivateDir,
    dst_dir: BorrowedFd<'_>,
    name: &str,
    record: &CloneRecord,
    path: &str,
) -> Result<Found, Error> {
    const OP: &str = "resume clone";
    let part = part_name(record.job);
    match openat(
        &private.fd,
        part.as_str(),
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(file) => {
            let st = fstat(&file).map_err(|e| Error::sys(OP, path, e))?;
            // Its size is set by the first range: a record with nothing done yet may find it
            // empty.
            let size_ok = st.st_size as u64 == record.source.size || record.done == 0;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
                || st.st_ino != record.part_ino
                || !size_ok
            {
                return Err(
                    Error::new(ErrorKind::Io, OP, path.to_owned()).with_detail(format!(
                        "{part} is not the partial file its record describes"
                    )),
                );
            }
            Ok(Found::Partial(file))
        }
        Err(Errno::NOENT) => match statat(dst_dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_ino == record.part_ino => Ok(Found::Published),
            _ => Err(Error::new(ErrorKind::NotFound, OP, path.to_owned())
                .with_detail(format!("{part} is gone and the clone was not published"))),
        },
        Err(e) => Err(Error::sys(OP, path, e)),
    }
}

/// Starts job `job`'s partial file and record in `private`: the file made (`O_CREAT |
/// O_EXCL`, mode 0600), then the record, done 0.
pub(crate) fn create(
    private: &PrivateDir,
    dir: OwnedFd,
    mut record: CloneRecord,
    path: &str,
) -> Result<StagedJob, Error> {
    const OP: &str = "create destination";
    let part = part_name(record.job);
    let file = openat(
        &private.fd,
        part.as_str(),
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| match e {
        Errno::EXIST => Error::new(ErrorKind::Busy, OP, path.to_owned()).with_detail(format!(
            "job {:016x} has a partial file already",
            record.job
        )),
        e => Error::sys(OP, path, e),
    })?;
    let private_fd =
        rustix::io::fcntl_dupfd_cloexec(&private.fd, 0).map_err(|e| Error::sys(OP, path, e))?;
    record.part_ino = fstat(&file).map_err(|e| Error::sys(OP, path, e))?.st_ino;
    let staged = StagedJob {
        private: private_fd,
        dir,
        file,
        record,
        armed: true,
    };
    write_record(private, &staged.record, path)?;
    Ok(staged)
}

/// A job's partial file found again, to go on with.
pub(crate) fn reopen(
    private: &PrivateDir,
    dir: OwnedFd,
    file: OwnedFd,
    record: CloneRecord,
    path: &str,
) -> Result<StagedJob, Error> {
    let private_fd = rustix::io::fcntl_dupfd_cloexec(&private.fd, 0)
        .map_err(|e| Error::sys("resume clone", path, e))?;
    Ok(StagedJob {
        private: private_fd,
        dir,
        file,
        record,
        armed: true,
    })
}

fn write_record(private: &PrivateDir, record: &CloneRecord, path: &str) -> Result<(), Error> {
    private
        .write_atomic(&record_name(record.job), record.render().as_bytes(), 0o600)
        .map_err(|e| e.with_detail(format!("writing the record of a clone of {path:?}")))
}

/// Copies the source into `job`'s partial file from its record's `done` to the end, with a
/// checkpoint after every segment; returns the data bytes written.
pub(crate) fn copy_with_checkpoints(
    src: BorrowedFd<'_>,
    job: &mut StagedJob,
    private: &PrivateDir,
    plan: &CopyPlan,
    reporter: &mut Reporter<'_>,
    cancel: &CancelToken,
    path: &str,
) -> Result<u64, Error> {
    let size = job.record.source.size;
    let mut segment = FIRST_SEGMENT;
    let mut written = 0;
    // A copy from 0 (new, or started over) has its size set by its first range.
    let mut off = job.record.done;
    while off < size {
        let end = size.min(off.saturating_add(segment));
        let started = Instant::now();
        written += copy::copy_range(src, job.file(), off..end, plan, reporter, cancel, path)?;
        // The data first, then the record that says it is there.
        rustix::fs::fdatasync(job.file()).map_err(|e| Error::sys("checkpoint", path, e))?;
        job.record.done = end;
        write_record(private, &job.record, path)?;
        segment = next_segment(end - off, started.elapsed());
        off = end;
    }
    Ok(written)
}

/// The next segment: [`CHECKPOINT_EVERY`] of work at the rate `bytes` in `took` ran, in whole
/// MiB, within [`MIN_SEGMENT`] and [`MAX_SEGMENT`].
fn next_segment(bytes: u64, took: Duration) -> u64 {
    let rate = bytes as f64 / took.as_secs_f64().max(1e-3);
    let want = (rate * CHECKPOINT_EVERY.as_secs_f64()) as u64;
    want.clamp(MIN_SEGMENT, MAX_SEGMENT) & !((1 << 20) - 1)
}

/// Starts the copy over: the source changed since the record was written.
pub(crate) fn restart(
    job: &mut StagedJob,
    private: &PrivateDir,
    source: SourceId,
    path: &str,
) -> Result<(), Error> {
    // ftruncate(part, 0) — drops every byte copied of the old content; the first range
    // gives the file its new size.
    rustix::fs::ftruncate(job.file(), 0).map_err(|e| Error::sys("resume clone", path, e))?;
    job.record.source = source;
    job.record.done = 0;
    write_record(private, &job.record, path)
}

impl StagedJob {
    pub(crate) fn record(&self) -> &CloneRecord {
        &self.record
    }
}

/// The clones a process left in progress in an export.
#[derive(Debug, Default)]
pub struct CloneRecords {
    /// Their records.
    pub found: Vec<CloneRecord>,
    /// Records that cannot be read, by file name, with why: left alone.
    pub unreadable: Vec<(String, Error)>,
}

/// The records of clones in progress in `private`; partial files without a record (a crash
/// between the two creations) are removed. Records that cannot be read are listed with why.
pub(crate) fn records(private: &PrivateDir) -> CloneRecords {
    const OP: &str = "clone records";
    let mut found = Vec::new();
    let mut bad = Vec::new();
    let mut parts = Vec::new();
    let dir = match rustix::fs::openat(
        &private.fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .and_then(Dir::new)
    {
        Ok(d) => d,
        Err(e) => {
            bad.push((".".to_owned(), Error::sys(OP, ".", e)));
            return CloneRecords {
                found,
                unreadable: bad,
            };
        }
    };
    for entry in dir {
        let Ok(entry) = entry else { break };
        let Ok(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(JOB_PREFIX) else {
            continue;
        };
        if let Some(job) = rest.strip_suffix(PART) {
            parts.push((name.clone(), job.to_owned()));
        } else if rest.ends_with(RECORD) {
            match private.read(&name, record::MAX_RECORD + 1) {
                Ok(text) => match CloneRecord::parse(&text) {
                    Some(r) if record_name(r.job) == name => found.push(r),
                    _ => bad.push((
                        name,
                        Error::new(ErrorKind::Io, OP, None)
                            .with_detail("not a clone record of this version".to_owned()),
                    )),
                },
                Err(e) => bad.push((name, e)),
            }
        }
    }
    for (name, job) in parts {
        let recorded = found.iter().any(|r| format!("{:016x}", r.job) == job);
        if !recorded {
            let _ = unlinkat(&private.fd, name.as_str(), AtFlags::empty());
        }
    }
    CloneRecords {
        found,
        unreadable: bad,
    }
}

/// Removes job `job`'s files from `private` (nobody came back for it).
pub(crate) fn discard_in(private: &PrivateDir, job: u64) {
    discard(private.fd.as_fd(), job);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_the_rate_within_bounds() {
        let s = Duration::from_secs(1);
        assert_eq!(next_segment(100 << 20, s), 100 << 20);
        assert_eq!(next_segment(1 << 20, s), MIN_SEGMENT);
        assert_eq!(next_segment(10 << 30, s), MAX_SEGMENT);
        assert_eq!(next_segment(1 << 30, Duration::ZERO), MAX_SEGMENT);
        assert_eq!(
            next_segment(300 << 20, Duration::from_millis(1500)) % (1 << 20),
            0
        );
    }
}
