//! STATX of a file of many extents through the plugin vs `stat` + `filefrag`.

use anyhow::{bail, Result};
use openvaai_testkit::{write_layout, Run};

use super::clone::FRAG;
use super::{compare, Bench, Contender};
use crate::measure::{cmd, s, size};
use crate::plan::KIB;

/// Writes the fragmented file: `frag_extents` data runs of 4 KiB, evenly spread with holes
/// between, up to `frag` bytes. Returns its extent count as `filefrag` sees it.
pub fn make_fragmented(b: &Bench<'_>) -> Result<u64> {
    let stride = b.plan.frag_stride();
    let mut runs = Vec::with_capacity(2 * b.plan.frag_extents as usize + 1);
    for _ in 0..b.plan.frag_extents {
        runs.push(Run::Data(4 * KIB));
        runs.push(Run::Hole(stride - 4 * KIB));
    }
    runs.push(Run::Hole(b.plan.frag - stride * b.plan.frag_extents));
    write_layout(&b.p(FRAG), &runs, 5)?;
    extents(&b.p(FRAG).to_string_lossy())
}

/// The FIEMAP extents of `path`: the records `filefrag -v` lists (its summary line counts
/// physically discontiguous runs instead, which merges neighbours across holes).
fn extents(path: &str) -> Result<u64> {
    let out = cmd("filefrag", &["-v", path])?;
    let n = out
        .lines()
        .filter(|l| {
            l.trim_start()
                .split_once(':')
                .is_some_and(|(i, _)| !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()))
        })
        .count() as u64;
    if n == 0 {
        bail!("filefrag -v listed no extent: {out}");
    }
    Ok(n)
}

/// STATX through the plugin vs the two commands an admin would run.
pub fn statx(b: &mut Bench<'_>, extents: u64) -> Result<()> {
    let file = b.p(FRAG);
    let session = &b.session;
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| session.statx(FRAG).map(|_| ())),
        Box::new(|| {
            cmd("stat", &[s(&file)])?;
            cmd("filefrag", &[s(&file)])?;
            Ok(())
        }),
    ];
    let times = b.race(&mut contenders, &mut || {})?;
    drop(contenders);
    let r = b.session.statx(FRAG)?;
    b.push(compare(
        "statx-frag",
        format!(
            "STATX of a {} file of {extents} extents (cold cache; reports {} allocated, {} unique)",
            size(b.plan.frag),
            size(r.alloced_bytes),
            size(r.unique_bytes)
        ),
        &times[0],
        "`stat FILE` + `filefrag FILE`",
        &times[1],
        None,
        "< 20 ms",
        |o, _| o.as_secs_f64() < 0.020,
    ));
    Ok(())
}
