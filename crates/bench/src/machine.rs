//! The machine the figures come from: CPU, memory, kernel, the disk under the image, and
//! how busy the machine was.

use std::path::Path;

use crate::measure::cmd;

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The block device and filesystem holding `dir`, with the disk's model, size, rotational
/// flag and scheduler.
fn disk_under(dir: &Path) -> String {
    let dir = dir.to_string_lossy();
    let Ok(fs) = cmd("findmnt", &["-n", "-o", "SOURCE,FSTYPE", "-T", &dir]) else {
        return "?".into();
    };
    let mut it = fs.split_whitespace();
    let (source, fstype) = (it.next().unwrap_or("?"), it.next().unwrap_or("?"));
    // The whole disk of a partition (PKNAME), or the device itself.
    let disk = cmd("lsblk", &["-ndo", "PKNAME", source])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| source.trim_start_matches("/dev/").to_owned());
    let model = cmd(
        "lsblk",
        &["-ndo", "MODEL,SIZE,TRAN", &format!("/dev/{disk}")],
    )
    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    .unwrap_or_default();
    let rota = trimmed(&format!("/sys/block/{disk}/queue/rotational"));
    let sched = trimmed(&format!("/sys/block/{disk}/queue/scheduler"));
    format!(
        "{fstype} on {source} (disk {disk}{}{}, rotational={rota}, scheduler {sched})",
        if model.is_empty() { "" } else { ": " },
        model
    )
}

/// The workspace's commit, and whether the tree had uncommitted changes.
fn commit() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let Ok(head) = cmd("git", &["-C", root, "rev-parse", "--short", "HEAD"]) else {
        return "?".into();
    };
    let dirty = cmd(
        "git",
        &["-C", root, "status", "--porcelain", "--untracked-files=no"],
    )
    .map(|s| !s.trim().is_empty())
    .unwrap_or(false);
    format!(
        "{}{}",
        head.trim(),
        if dirty { " + uncommitted changes" } else { "" }
    )
}

/// One line per fact, `- key: value`, for the top of the report.
pub fn describe(image_dir: &Path, image_size: u64, loop_dev: &str) -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = first_line_with("/proc/meminfo", "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "?".into());
    let dio = cmd("losetup", &["-n", "-O", "DIO", loop_dev])
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    vec![
        (
            "CPU".into(),
            format!(
                "{cpus} × {}",
                first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into())
            ),
        ),
        ("memory".into(), mem),
        ("kernel".into(), trimmed("/proc/sys/kernel/osrelease")),
        ("disk under the image".into(), disk_under(image_dir)),
        (
            "image".into(),
            format!(
                "{} GiB sparse file, XFS (`mkfs.xfs -m reflink=1`) on {loop_dev} (direct I/O: {})",
                image_size >> 30,
                if dio == "1" { "on" } else { "off, buffered" }
            ),
        ),
        ("openvaai".into(), commit()),
    ]
}
