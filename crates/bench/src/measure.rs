//! Timing: cold caches before each run, medians, percentiles, the peers' commands, and the
//! figures as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::plan::{GIB, KIB, MIB};

/// Makes the next timed run start cold, as every other: `sync`, a pause for XFS to free
/// the blocks of removed files (it does so in the background: `statfs` starts it), `fstrim`
/// of the image (so that they go back to the host's disk: without the pause, the trim
/// could run before a pool's 32 GiB removed were free, the image kept them, and once the
/// host's disk filled up), `echo 3 > /proc/sys/vm/drop_caches`, `sync`, and
/// then waiting until the host's disk under the image is idle (what a run before left it
/// doing, such as writing back 32 GiB of a pool, is not charged to the next).
pub fn cold(mount: &Path, drop_caches: bool, settle: Duration) -> Result<()> {
    rustix::fs::sync();
    if !drop_caches {
        return Ok(());
    }
    let _ = rustix::fs::statvfs(mount);
    std::thread::sleep(settle);
    rustix::fs::sync();
    let _ = Command::new("fstrim")
        .arg(mount)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("dropping caches (needs root)")?;
    rustix::fs::sync();
    if let Some(stat) = disk_stat_file(&std::env::temp_dir()) {
        if !wait_idle(&stat, DISK_IDLE, DISK_BUSY_MAX) {
            println!(
                "  the host's disk ({}) was still busy after {} (another workload?): the next \
                 run starts anyway",
                stat.display(),
                dur(DISK_BUSY_MAX)
            );
        }
    }
    Ok(())
}

/// The disk counts as idle after this long with no I/O in flight and none done.
const DISK_IDLE: Duration = Duration::from_millis(500);
/// At most this long is waited for it.
const DISK_BUSY_MAX: Duration = Duration::from_secs(20);

/// The block device's statistics (`/sys/dev/block/MAJ:MIN/stat`) of the filesystem holding
/// `dir`, if it has one.
fn disk_stat_file(dir: &Path) -> Option<PathBuf> {
    let dev = rustix::fs::stat(dir).ok()?.st_dev;
    let p = PathBuf::from(format!(
        "/sys/dev/block/{}:{}/stat",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    ));
    p.exists().then_some(p)
}

/// Waits until the device of `stat` has had nothing in flight and done no I/O for `idle`;
/// false if that did not happen within `max`.
fn wait_idle(stat: &Path, idle: Duration, max: Duration) -> bool {
    // Fields (Documentation/block/stat.rst): 1-8 reads and writes, 9 in flight, 12-15
    // discards, 16-17 flushes. All but the time counters: what was done.
    let sample = || -> Option<Vec<u64>> {
        let text = std::fs::read_to_string(stat).ok()?;
        let f: Vec<u64> = text
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        Some(
            [0, 2, 4, 6, 8, 11, 13, 15]
                .iter()
                .filter_map(|&i| f.get(i).copied())
                .collect(),
        )
    };
    let start = Instant::now();
    let (mut last, mut since) = (sample(), Instant::now());
    while start.elapsed() < max {
        std::thread::sleep(Duration::from_millis(50));
        let now = sample();
        let in_flight = now.as_ref().and_then(|v| v.get(4)).copied().unwrap_or(0);
        if now != last || in_flight > 0 {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= idle {
            return true;
        }
    }
    false
}

/// The median (the upper one of an even count).
pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// The `p`-th percentile (0..=100) by the nearest-rank method.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Runs `program args`, failing with its stderr unless it succeeds; returns its stdout.
pub fn cmd(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `text`, in order.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// `path` as `&str` (the image's paths are ours and ASCII).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("bench paths are UTF-8")
}

/// Times `f`.
pub fn time<T>(f: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let t = Instant::now();
    let v = f()?;
    Ok((t.elapsed(), v))
}

/// One field of `/proc/PID/status` (`VmRSS`, `VmHWM`) in KiB.
pub fn proc_status_kib(pid: Option<i32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) from `/proc/PID/stat`: of the process `pid` itself, or (with
/// `children`) of this process's children that have been waited for (`cp`, `dd`, ...).
pub fn cpu(pid: Option<i32>, children: bool) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The fields after the command name (which may hold spaces), from the state on.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime are fields 14 and 15 of stat(5); cutime, cstime 16 and 17.
    let at = if children { 13 } else { 11 };
    let ticks: u64 = f.get(at)?.parse::<u64>().ok()? + f.get(at + 1)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Resets the peak resident set (`VmHWM`) of `pid` to its current size (`echo 5 >
/// /proc/PID/clear_refs`, root), so that the next `VmHWM` is the peak from now on.
pub fn reset_peak_rss(pid: i32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of pid {pid} (needs root)"))
}

/// Free bytes of the filesystem holding `dir`, for unprivileged writers.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail * st.f_frsize)
}

/// KiB as the table shows them.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / KIB as f64)
}

/// A duration as the table shows it.
pub fn dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.01 {
        format!("{:.1} ms", s * 1e3)
    } else if s >= 0.001 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// Bytes as the table shows them (binary units).
pub fn size(b: u64) -> String {
    if b >= GIB && b.is_multiple_of(GIB) {
        format!("{} GiB", b / GIB)
    } else if b >= GIB {
        format!("{:.2} GiB", b as f64 / GIB as f64)
    } else if b >= MIB {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    } else {
        format!("{:.0} KiB", b as f64 / KIB as f64)
    }
}

/// Logical bytes per second.
pub fn rate(b: u64, d: Duration) -> String {
    let per_s = b as f64 / d.as_secs_f64().max(1e-9);
    if per_s >= GIB as f64 {
        format!("{:.2} GiB/s", per_s / GIB as f64)
    } else {
        format!("{:.0} MiB/s", per_s / MIB as f64)
    }
}

/// A time with the rate of its bytes.
pub fn dur_rate(d: Duration, b: u64) -> String {
    format!("{} ({})", dur(d), rate(b, d))
}

/// A ratio as `1.23×`.
pub fn times(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}×")
    } else if x >= 10.0 {
        format!("{x:.1}×")
    } else {
        format!("{x:.2}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
        assert_eq!(median(&v[..3]), Duration::from_millis(2));
    }

    #[test]
    fn cpu_times_of_this_process_and_its_children() {
        let own = cpu(None, false).expect("own CPU time");
        cmd("true", &[]).unwrap();
        assert!(cpu(None, true).is_some(), "children's CPU time");
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(100) {
            std::hint::black_box(0u64);
        }
        assert!(
            cpu(None, false).unwrap() > own,
            "100 ms of spinning counted"
        );
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(size(4 * GIB), "4 GiB");
        assert_eq!(dur(Duration::from_micros(250)), "250 µs");
        assert_eq!(dur(Duration::from_millis(1500)), "1.50 s");
        assert_eq!(rate(GIB, Duration::from_secs(2)), "512 MiB/s");
        assert_eq!(times(0.5), "0.50×");
    }
}
