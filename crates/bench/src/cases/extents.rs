//! STATX of a file of a million extents: its time against `filefrag`, and how much the
//! daemon's memory grows meanwhile (the extent walk streams FIEMAP batches; collecting the
//! extents would cost tens of MiB).

use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};
use rustix::fs::{fallocate, FallocateFlags};

use super::load::sampling;
use super::{compare, Bench, Contender};
use crate::measure::{self, cmd, mib, proc_status_kib, s, size};
use crate::plan::KIB;
use crate::table::Row;

const FILE: &str = "extents-flat.vmdk";

/// A file of `n` extents: 4 KiB allocated (unwritten, no data written) every 8 KiB, the
/// holes between keeping every extent apart (XFS maps each on its own). Returns the count
/// `filefrag`'s summary gives.
fn make(b: &Bench<'_>, n: u64) -> Result<u64> {
    let f = std::fs::File::create(b.p(FILE))?;
    let fd = f.as_fd();
    for k in 0..n {
        fallocate(fd, FallocateFlags::KEEP_SIZE, 2 * k * 4 * KIB, 4 * KIB)
            .with_context(|| format!("fallocate of extent {k} of {n}"))?;
    }
    f.set_len(2 * n * 4 * KIB)?;
    f.sync_all()?;
    let out = cmd("filefrag", &[s(&b.p(FILE))])?;
    // "FILE: N extents found" (it counts physically discontiguous runs: at most n).
    let found: u64 = out
        .rsplit(':')
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("filefrag's summary: {out}"))?;
    Ok(found)
}

pub fn statx_1m(b: &mut Bench<'_>) -> Result<()> {
    let n = b.plan.big_extents;
    let physical = make(b, n)?;
    let pid = b.daemon_pid;
    let file = b.p(FILE);
    let session = &b.session;
    let before = proc_status_kib(Some(pid), "VmRSS").unwrap_or(0);
    measure::reset_peak_rss(pid)?;
    let (times, peak) = {
        let mut contenders: Vec<Contender<'_>> = vec![
            Box::new(|| session.statx(FILE).map(|_| ())),
            Box::new(|| cmd("filefrag", &[s(&file)]).map(|_| ())),
        ];
        let (t, peak) = sampling(pid, || b.race(&mut contenders, &mut || {}));
        (t?, peak)
    };
    let hwm = proc_status_kib(Some(pid), "VmHWM").unwrap_or(0);
    let r = b.session.statx(FILE)?;
    b.rm(&[FILE]);
    // XFS may round an allocation up (never down).
    let want = n * 4 * KIB;
    if r.alloced_bytes < want {
        bail!(
            "STATX of the {n}-extent file reports {} allocated, less than the {} fallocated",
            r.alloced_bytes,
            want
        );
    }
    let what = format!(
        "STATX of a {} file of {n} extents (4 KiB allocated every 8 KiB; filefrag counts {physical} \
         physically discontiguous runs), cold cache; reports {} allocated",
        size(2 * want),
        size(r.alloced_bytes)
    );
    b.push(compare(
        "statx-1m",
        what,
        &times[0],
        "`filefrag FILE` (the same FIEMAP walk, in one process)",
        &times[1],
        None,
        "≤ 2 s",
        |o, _| o.as_secs_f64() <= 2.0,
    ));
    let growth = hwm.max(peak).saturating_sub(before);
    b.push(
        Row::new(
            "statx-1m-rss",
            "openvaaid's RSS growth during those STATX calls (VmHWM reset before, and VmRSS \
             sampled every 5 ms, over its VmRSS before)",
        )
        .ours(format!(
            "+{} ({} → peak {})",
            mib(growth),
            mib(before),
            mib(hwm.max(peak))
        ))
        .target("≤ 8 MiB", growth <= 8 * KIB),
    );
    Ok(())
}
