//! The disk's copy limit: a direct-I/O pipe that reads the file while it writes the copy,
//! `dd iflag=direct | dd oflag=direct`, no page cache on either side. Nothing that copies
//! on this disk can beat it by much, so every full clone is judged against it; and the CPU
//! each side spends per GiB.

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::compare;
use crate::measure::{self, cmd, s};
use crate::plan::GIB;
use crate::table::Row;

/// The peer's description in the table.
pub const PIPE: &str = "`dd if=SRC iflag=direct bs=4M | dd of=DST oflag=direct iflag=fullblock \
                        bs=4M conv=fsync` (the disk's read-while-write limit)";

/// The limit pipe: `src` to `dst`, 4 MiB direct reads and writes at once, `fsync` at the end
/// (durable, as every clone is). `src`'s size must be a multiple of 4 KiB.
pub fn pipe(src: &Path, dst: &Path) -> Result<()> {
    let script = format!(
        "dd if='{}' iflag=direct bs=4M status=none | \
         dd of='{}' oflag=direct iflag=fullblock bs=4M conv=fsync status=none",
        s(src),
        s(dst)
    );
    cmd("bash", &["-o", "pipefail", "-c", &script])?;
    Ok(())
}

/// CPU time spent while `f` runs: by the process `pid`, or (None) by this process's
/// children (the peers' commands), added to `total`.
pub fn counting_cpu(
    pid: Option<i32>,
    total: &Cell<Duration>,
    f: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let now = || measure::cpu(pid, pid.is_none()).unwrap_or_default();
    let before = now();
    let r = f();
    total.set(total.get() + now().saturating_sub(before));
    r
}

/// The `limit` row: a full clone of `bytes` against the pipe, ≥ 0.9× its throughput.
pub fn row(
    what: String,
    ours: &Result<Duration, String>,
    pipe: &Result<Duration, String>,
    bytes: u64,
) -> Row {
    compare(
        "limit",
        what,
        ours,
        PIPE,
        pipe,
        Some(bytes),
        "≥ 0.9× the limit's throughput",
        |o, t| t.as_secs_f64() / o.as_secs_f64() >= 0.9,
    )
}

/// CPU seconds per GiB as the table shows them.
pub fn per_gib(cpu: Duration, bytes: u64) -> String {
    format!(
        "{:.2} s/GiB",
        cpu.as_secs_f64() * GIB as f64 / bytes.max(1) as f64
    )
}

/// The `cpu-per-gib` row: the daemon's CPU per GiB copied against `cp`'s (each the total
/// over `runs` runs of `bytes`), at most cp's.
pub fn cpu_row(
    id: &'static str,
    what: String,
    daemon: Duration,
    peer: &str,
    theirs: Duration,
    bytes: u64,
    pipe: Option<Duration>,
) -> Row {
    let mut row = Row::new(id, what).ours(per_gib(daemon, bytes)).peer(
        peer,
        match pipe {
            Some(p) => format!(
                "{} (the limit pipe: {})",
                per_gib(theirs, bytes),
                per_gib(p, bytes)
            ),
            None => per_gib(theirs, bytes),
        },
    );
    if daemon > Duration::ZERO {
        row = row.ratio(measure::times(theirs.as_secs_f64() / daemon.as_secs_f64()));
    }
    row.target("≤ cp's", daemon <= theirs)
}
