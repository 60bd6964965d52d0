//! The cases, each beside its peer: one module per primitive, plus the load and memory.

pub mod backends;
pub mod clone;
pub mod extents;
pub mod limit;
pub mod link;
pub mod load;
pub mod memory;
pub mod nfs;
pub mod pool;
pub mod reserve;
pub mod statx;
pub mod storm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use openvaai_host::Plugin;

use crate::client::Session;
use crate::measure;
use crate::plan::Plan;
use crate::table::{Row, Table};

/// Everything a case needs: the plan, the image, the export, the plugin with a session, the
/// daemon's pid, and the table.
pub struct Bench<'p> {
    pub plan: Plan,
    /// The XFS image's mount point.
    pub mount: PathBuf,
    /// The export (the datastore) on it.
    pub export: PathBuf,
    pub plugin: &'p Plugin,
    pub session: Session<'p>,
    pub daemon_pid: i32,
    /// The daemon's VmRSS right after it started, in KiB.
    pub daemon_start_kib: u64,
    pub table: Table,
    /// One round trip through the plugin, for the lazy clone's target.
    pub rtt: Duration,
}

/// One contender of a race: what it runs.
pub type Contender<'a> = Box<dyn FnMut() -> Result<()> + 'a>;

impl Bench<'_> {
    pub fn p(&self, name: &str) -> PathBuf {
        self.export.join(name)
    }

    /// Removes files of the export by name (missing ones are fine).
    pub fn rm(&self, names: &[&str]) {
        rm(&self.export, names);
    }

    pub fn cold(&self) -> Result<()> {
        measure::cold(&self.mount, self.plan.drop_caches, self.plan.settle)
    }

    /// Runs the contenders in turn, `plan.runs` rounds (interleaved and rotated, so that
    /// drift in the host's disk hits all alike), each from cold caches after `reset`.
    /// Returns each one's median time, or its first failure.
    pub fn race(
        &self,
        contenders: &mut [Contender<'_>],
        reset: &mut dyn FnMut(),
    ) -> Result<Vec<Result<Duration, String>>> {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
        let mut errors: Vec<Option<String>> = vec![None; contenders.len()];
        let n = contenders.len();
        for round in 0..self.plan.runs {
            // Each round starts with the next contender, so that none is always the first
            // run after the sources were written (the slowest slot on a shared disk).
            for j in 0..n {
                let i = (j + round) % n;
                let run = &mut contenders[i];
                if errors[i].is_some() {
                    continue;
                }
                reset();
                self.cold()?;
                match measure::time(run) {
                    Ok((t, ())) => times[i].push(t),
                    Err(e) => errors[i] = Some(format!("{e:#}")),
                }
            }
        }
        reset();
        Ok(times
            .into_iter()
            .zip(errors)
            .map(|(t, e)| match e {
                Some(e) => Err(e),
                None => Ok(measure::median(&t)),
            })
            .collect())
    }

    pub fn push(&mut self, row: Row) {
        self.table.push(row);
    }
}

pub fn rm(dir: &Path, names: &[&str]) {
    for n in names {
        let _ = std::fs::remove_file(dir.join(n));
    }
}

/// A row comparing two timed contenders; the ratio is the peer's time over ours (above 1:
/// openvaai is faster), and `ok` decides the verdict from our time and the peer's.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    id: &'static str,
    measure: String,
    ours: &Result<Duration, String>,
    peer: &str,
    theirs: &Result<Duration, String>,
    bytes: Option<u64>,
    target: &str,
    ok: impl Fn(Duration, Duration) -> bool,
) -> Row {
    let fig = |r: &Result<Duration, String>| match (r, bytes) {
        (Ok(d), Some(b)) => measure::dur_rate(*d, b),
        (Ok(d), None) => measure::dur(*d),
        (Err(_), _) => "failed".to_owned(),
    };
    let mut row = Row::new(id, measure)
        .ours(fig(ours))
        .peer(peer, fig(theirs));
    match (ours, theirs) {
        (Ok(o), Ok(t)) => {
            row = row.ratio(measure::times(t.as_secs_f64() / o.as_secs_f64()));
            if target.is_empty() {
                row
            } else {
                row.target(target, ok(*o, *t))
            }
        }
        (Err(e), _) => row.failed(e.clone()),
        (Ok(_), Err(e)) => row.failed(format!("the peer: {e}")),
    }
}
