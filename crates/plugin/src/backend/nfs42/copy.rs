//! Full (not LAZY) clones: the server copies, the client only says what to copy where.
//!
//! 1. SETATTR the temporary's size to the source's (nothing after extends the file).
//! 2. Walk the source with SEEK (DATA, then HOLE): each data region is copied by
//!    intra-server synchronous COPY in ranges of at most [`MAX_RANGE`], looping on short
//!    `wr_count`s (knfsd copies at most 4 MiB per COPY). Each hole is, for a thick clone
//!    (no SKIPZEROES), ALLOCATEd in steps of [`ALLOC_STEP`]; with SKIPZEROES it stays a hole.
//!    A server without SEEK: the whole file is one data region (and a thick clone is
//!    ALLOCATEd over its whole length after the copy).
//! 3. Where a COPY answered UNSTABLE (knfsd always does for a synchronous COPY), COMMIT
//!    and compare its verifier with every COPY's: a different one means the server
//!    restarted and may have lost data: the clone fails, nothing is published.
//! 4. Progress: after each range, disklib is told the bytes done (data copied and holes
//!    passed, in `updateBytes` steps); an abort stops the copy there: at most one range
//!    more is copied after the user asked to stop. The remainder is reported last, after
//!    the COMMIT and before publishing, so that an abort there leaves nothing behind too.
//!
//! ALLOCATE answered NFS4ERR_NOTSUPP (a server or filesystem without it): the rest of the
//! holes are COPYed like data. Where the server's copy writes zeros for holes (ext4) the
//! clone is thick; where it keeps holes (a reflink, a ZFS block clone) it stays as thin as
//! the source, a full independent copy all the same — as the daemon does on ZFS
//! (docs/engine.md "On ZFS"): STATX then says THIN, the truth.
//!
//! Every call has its own deadline, one session timeout from its start: a long clone is
//! bounded per range, and a server that stops answering fails it within one timeout. Every
//! answer must move the copy forward, so that the ranges are bounded too: a SEEK answering
//! an offset before the one asked, or a COPY of nothing or of more than asked, fails the
//! clone (`VIX_E_FILE_ERROR`) and nothing is published.

use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_client::Failure;
use openvaai_nfs4::attr::SetAttrs;
use openvaai_nfs4::basic::{Fh, Stateid, Verifier};
use openvaai_nfs4::ops::file::{CommitArgs, SetattrArgs};
use openvaai_nfs4::ops::v42::{Content, CopyArgs, CopyRes, RangeArgs, SeekArgs, StableHow};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::{CompoundRes, Status};

use super::status::vix_of;
use super::temp::{check, Temporary};
use super::Nfs42;
use crate::primitive::{report_steps, Progress};

/// The most one COPY asks for (a server may copy less: knfsd 4 MiB).
pub const MAX_RANGE: u64 = 16 << 20;
/// The most one ALLOCATE asks for.
pub const ALLOC_STEP: u64 = 64 << 20;

/// What to copy and how.
pub struct Job<'a> {
    pub src: &'a Fh,
    pub src_path: &'a str,
    pub tmp: &'a Temporary,
    pub size: u64,
    /// No SKIPZEROES: holes are allocated.
    pub thick: bool,
    /// The server has SEEK.
    pub seek: bool,
    pub timeout: Duration,
}

/// The state of one copy.
struct Copier<'a, 'p> {
    job: &'a Job<'a>,
    /// Locked for each call only: other calls of the session go between the ranges, and
    /// disklib's progress callback never runs with the session locked.
    session: &'a Nfs42,
    progress: &'p mut dyn Progress,
    step: u64,
    done: u64,
    reported: u64,
    /// The verifier of the UNSTABLE COPYs so far.
    unstable: Option<Verifier>,
    /// ALLOCATE was refused: holes are copied.
    no_allocate: bool,
}

fn cancelled() -> Failure {
    Failure::new(vix::E_CANCELLED, "the clone was aborted")
}

/// Fills `job.tmp` with a copy of `job.src`; see the module's text.
pub fn fill(session: &Nfs42, job: &Job<'_>, progress: &mut dyn Progress) -> Result<(), Failure> {
    let step = progress.update_bytes();
    let mut c = Copier {
        job,
        session,
        progress,
        step,
        done: 0,
        reported: 0,
        unstable: None,
        no_allocate: false,
    };
    c.set_size()?;
    let size = job.size;
    if job.seek {
        let mut pos = 0;
        while pos < size {
            let data = c.seek(pos, Content::Data)?.min(size);
            if data > pos {
                c.hole(pos, data)?;
            }
            if data >= size {
                break;
            }
            let end = c.seek(data, Content::Hole)?.min(size);
            // No hole after the data (the source changed under the walk): copy the rest.
            let end = if end <= data { size } else { end };
            c.data(data, end)?;
            pos = end;
        }
    } else {
        c.data(0, size)?;
        if job.thick {
            c.allocate_whole()?;
        }
    }
    c.commit()?;
    if !report_steps(c.progress, &mut c.reported, c.done, c.step, true) {
        return Err(cancelled());
    }
    Ok(())
}

impl Copier<'_, '_> {
    /// One call within its own session timeout, the wait for the session's connection
    /// included.
    fn call(&self, what: &str, ops: &[Op]) -> Result<CompoundRes, Failure> {
        let deadline = Instant::now() + self.job.timeout;
        self.session.conn_by(deadline)?.call(what, ops, deadline)
    }

    /// Counts `n` bytes done and tells disklib; an abort stops the copy.
    fn advance(&mut self, n: u64) -> Result<(), Failure> {
        self.done += n;
        if report_steps(
            self.progress,
            &mut self.reported,
            self.done,
            self.step,
            false,
        ) {
            Ok(())
        } else {
            Err(cancelled())
        }
    }

    fn set_size(&mut self) -> Result<(), Failure> {
        let tmp = self.job.tmp;
        let res = self.call(
            "setting the clone's size",
            &[
                Op::Putfh(tmp.fh.clone()),
                Op::Setattr(SetattrArgs {
                    stateid: tmp.stateid,
                    attrs: SetAttrs {
                        size: Some(self.job.size),
                        ..SetAttrs::default()
                    },
                }),
            ],
        )?;
        check(&res, "SETATTR of the clone's size")
    }

    /// The next `what` at or after `offset` in the source (its size where there is none).
    fn seek(&mut self, offset: u64, what: Content) -> Result<u64, Failure> {
        let path = self.job.src_path;
        let res = self.call(
            &format!("SEEK in {path:?}"),
            &[
                Op::Putfh(self.job.src.clone()),
                Op::Seek(SeekArgs {
                    stateid: Stateid::ANONYMOUS,
                    offset,
                    what,
                }),
            ],
        )?;
        match (res.status, res.results.last()) {
            // Every answer moves the walk forward: one before the offset asked would copy
            // the same range again, for ever.
            (Status::Ok, Some(OpRes::Seek(Ok(ok)))) if ok.offset < offset => Err(Failure::new(
                vix::E_FILE_ERROR,
                format!(
                    "SEEK in {path:?} for {} at {offset} answered {}, before the offset asked: \
                     the server's answers go backwards; the clone is discarded",
                    match what {
                        Content::Data => "data",
                        Content::Hole => "a hole",
                    },
                    ok.offset
                ),
            )),
            (Status::Ok, Some(OpRes::Seek(Ok(ok)))) => Ok(ok.offset),
            // No data at or after `offset` (or `offset` is past the end).
            (Status::Nxio, _) => Ok(self.job.size),
            (s, _) => Err(Failure::new(
                vix_of(s),
                format!("SEEK in {path:?}: {}", s.name()),
            )),
        }
    }

    /// COPY of `[from, to)`, range by range.
    fn data(&mut self, from: u64, to: u64) -> Result<(), Failure> {
        let mut off = from;
        while off < to {
            let n = self.copy_range(off, (to - off).min(MAX_RANGE))?;
            off += n;
            self.advance(n)?;
        }
        Ok(())
    }

    /// One COPY of at most `count` bytes at `off`: the bytes the server copied.
    fn copy_range(&mut self, off: u64, count: u64) -> Result<u64, Failure> {
        let (job, path) = (self.job, self.job.src_path);
        let res = self.call(
            "COPY",
            &[
                Op::Putfh(job.src.clone()),
                Op::Savefh,
                Op::Putfh(job.tmp.fh.clone()),
                Op::Copy(CopyArgs {
                    src_stateid: Stateid::ANONYMOUS,
                    dst_stateid: job.tmp.stateid,
                    src_offset: off,
                    dst_offset: off,
                    count,
                    consecutive: true,
                    synchronous: true,
                }),
            ],
        )?;
        let response = match res.results.last() {
            Some(OpRes::Copy(CopyRes::Ok { response, .. })) if res.status.is_ok() => *response,
            Some(OpRes::Copy(CopyRes::NoReqs(req))) => {
                return Err(Failure::new(
                    vix::E_NOT_SUPPORTED,
                    format!(
                        "the server cannot COPY {path:?} as asked (synchronous, consecutive); \
                         it offers synchronous {}, consecutive {}",
                        req.synchronous, req.consecutive
                    ),
                ))
            }
            _ => {
                return Err(Failure::new(
                    vix_of(res.status),
                    format!("COPY of {path:?} at {off}: {}", res.status.name()),
                ))
            }
        };
        if response.callback_id.is_some() {
            return Err(Failure::new(
                vix::E_NOT_SUPPORTED,
                "the server made the COPY asynchronous, which this backend cannot follow (no \
                 callback channel)",
            ));
        }
        if response.count == 0 || response.count > count {
            return Err(Failure::new(
                vix::E_FILE_ERROR,
                format!(
                    "COPY of {path:?} at {off}: the server copied {} of {count} bytes (did the \
                     source shrink?)",
                    response.count
                ),
            ));
        }
        if response.committed == StableHow::Unstable
            || matches!(response.committed, StableHow::Unknown(_))
        {
            self.same_verifier(response.writeverf)?;
        }
        Ok(response.count)
    }

    /// Every UNSTABLE write and the COMMIT must carry one verifier.
    fn same_verifier(&mut self, v: Verifier) -> Result<(), Failure> {
        match self.unstable {
            None => {
                self.unstable = Some(v);
                Ok(())
            }
            Some(first) if first == v => Ok(()),
            Some(_) => Err(Failure::new(
                vix::E_FILE_ERROR,
                "the server's write verifier changed during the copy (it restarted, and may \
                 have lost copied data): the clone is discarded, retry it",
            )),
        }
    }

    /// A hole `[from, to)` of the source: allocated for a thick clone, else passed.
    fn hole(&mut self, from: u64, to: u64) -> Result<(), Failure> {
        if !self.job.thick {
            return self.advance(to - from);
        }
        let mut off = from;
        while off < to {
            if self.no_allocate {
                return self.data(off, to);
            }
            let len = (to - off).min(ALLOC_STEP);
            if self.allocate(off, len)? {
                off += len;
                self.advance(len)?;
            } else {
                self.no_allocate = true;
                crate::info!(
                    "ALLOCATE is not supported here: the holes of {:?} are copied as they are",
                    self.job.src_path
                );
            }
        }
        Ok(())
    }

    /// ALLOCATE of `[off, off + len)` of the temporary; false when the server has none.
    fn allocate(&mut self, off: u64, len: u64) -> Result<bool, Failure> {
        let tmp = self.job.tmp;
        let res = self.call(
            "ALLOCATE",
            &[
                Op::Putfh(tmp.fh.clone()),
                Op::Allocate(RangeArgs {
                    stateid: tmp.stateid,
                    offset: off,
                    length: len,
                }),
            ],
        )?;
        match res.status {
            Status::Ok => Ok(true),
            Status::Notsupp | Status::OpIllegal => Ok(false),
            s => Err(Failure::new(
                vix_of(s),
                format!("ALLOCATE of the clone at {off}: {}", s.name()),
            )),
        }
    }

    /// Without SEEK: ALLOCATE over the whole length after the copy (keeps the data).
    fn allocate_whole(&mut self) -> Result<(), Failure> {
        let mut off = 0;
        while off < self.job.size {
            let len = (self.job.size - off).min(ALLOC_STEP);
            if !self.allocate(off, len)? {
                return Ok(());
            }
            off += len;
        }
        Ok(())
    }

    /// COMMIT where a COPY was UNSTABLE, its verifier compared.
    fn commit(&mut self) -> Result<(), Failure> {
        if self.unstable.is_none() {
            return Ok(());
        }
        let res = self.call(
            "COMMIT",
            &[
                Op::Putfh(self.job.tmp.fh.clone()),
                Op::Commit(CommitArgs {
                    offset: 0,
                    count: 0,
                }),
            ],
        )?;
        match res.results.last() {
            Some(OpRes::Commit(Ok(v))) => self.same_verifier(*v),
            _ => Err(Failure::new(
                vix_of(res.status),
                format!("COMMIT of the clone: {}", res.status.name()),
            )),
        }
    }
}
