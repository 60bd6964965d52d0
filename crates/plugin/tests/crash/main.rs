//! Durability proven by crash replay: every primitive, on XFS (reflink), ext4 and Btrfs,
//! survives a power cut at every point where the filesystem made a promise.
//!
//! A knfsd guest (Debian 12's 6.1 cloud kernel, `openvaai_testkit::guest`) has one disk of
//! each filesystem under a `dm-log-writes` target. In the guest, `openvaaid` serves two
//! exports on each and the plugin runs the workload ([`workload::STEPS`]: lazy, full, thin
//! and thick clones, an overwrite, GUARDED to a new name and onto a taken one, a
//! cross-export clone, RESVSPACE) with a mark before and after each step. The guest then
//! stops; on the host each log is replayed onto the disk as it was before
//! (`openvaai_testkit::replay`) up to every FLUSH and FUA entry from the `ready` mark on,
//! and each state, mounted with its log recovered, is judged by [`invariants::judge`].
//!
//! The standard NFSv4.2 backend runs the same workload from the host against knfsd in the
//! same guest, on three more logged disks ([`nfs42`]), judged by the same invariants; on
//! knfsd's Btrfs export for atomicity only (see [`nfs42::durable`]), the points where a
//! returned clone is not yet durable counted and printed.
//!
//! One guest boot for the binary; the guest-side half is [`inner`].

#[path = "../support/guest.rs"]
#[allow(dead_code)]
mod guest;
mod inner;
mod invariants;
mod nfs42;
mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use guest::{build_daemon_and_cli, run_in_guest, GUEST_BIN, IN_GUEST};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::replay::{ReplayReport, StateMount};
use openvaai_testkit::{daemon_bin, plugin_so, FsKind};

/// Each logged disk's size (sparse; XFS wants 300 MiB at least).
const DISK: u64 = 320 << 20;

/// Crash points and bad findings per step, by the step whose mark last precedes each point
/// (`ready` before the first step, `end` after the last).
#[derive(Default)]
struct Tally {
    points: BTreeMap<String, usize>,
    bad: BTreeMap<String, usize>,
    /// Points where a step that returned is not durable, where that is not promised.
    not_durable: usize,
}

impl Tally {
    fn cell(&self, step: &str) -> String {
        match (self.points.get(step), self.bad.get(step)) {
            (None, None) => "0".into(),
            (p, None) => format!("{}", p.copied().unwrap_or(0)),
            (p, Some(b)) => format!("{} ({b} bad)", p.copied().unwrap_or(0)),
        }
    }
}

/// Replays logged disk `fs` of the powered-off guest and judges every crash point.
///
/// With `durable` false (a backend that does not promise it there) the points are judged
/// for atomicity, and those where a returned step is not (yet) durable are counted in
/// `Tally::not_durable`.
fn replay(
    nfs: &Knfsd,
    fs: &str,
    want: &invariants::Expected,
    durable: bool,
) -> (ReplayReport, Tally) {
    let disk = nfs.write_log(fs).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let fstype = disk.kind.name();
    let mut tally = Tally::default();
    let report = disk
        .log
        .replay(
            &disk.base,
            scratch.path(),
            Some(workload::READY),
            |point, state| {
                let step = point.last_mark().split(':').next().unwrap_or("");
                *tally.points.entry(step.to_owned()).or_default() += 1;
                let mounted = StateMount::new(state, fstype)?;
                let judged = invariants::judge(mounted.path(), point, want, durable);
                if !durable && invariants::judge(mounted.path(), point, want, true).is_err() {
                    tally.not_durable += 1;
                }
                if let Err(why) = &judged {
                    for wrong in why.split("; ") {
                        let step = wrong.split(':').next().unwrap_or("");
                        *tally.bad.entry(step.to_owned()).or_default() += 1;
                    }
                }
                judged
            },
        )
        .unwrap_or_else(|e| panic!("replaying {fs}: {e}"));
    (report, tally)
}

/// The table of crash points per step (rows) and logged disk (columns).
fn per_step(disks: &[(&str, Tally)]) -> String {
    let mut out = String::from("| step |");
    for (d, _) in disks {
        let _ = write!(out, " {d} |");
    }
    out.push('\n');
    let steps = std::iter::once(workload::READY)
        .chain(workload::STEPS.iter().map(|s| s.name))
        .chain(std::iter::once(workload::END));
    for step in steps {
        let _ = write!(out, "| {step} |");
        for (_, t) in disks {
            let _ = write!(out, " {} |", t.cell(step));
        }
        out.push('\n');
    }
    out
}

/// One line of the table (filesystem, entries, crash points, bad ones, time) and the bad
/// points, each with the marks before it.
fn describe(backend: &str, fs: &str, r: &ReplayReport, t: &Tally, durable: bool, out: &mut String) {
    let not_durable = match durable {
        true => "promised".to_owned(),
        false => format!("not promised: {} points", t.not_durable),
    };
    let _ = writeln!(
        out,
        "| {backend} | {fs} | {} | {} | {} | {not_durable} | {:.1} s |",
        r.entries,
        r.judged,
        r.bad.len(),
        r.elapsed.as_secs_f64()
    );
    for b in &r.bad {
        let _ = writeln!(
            out,
            "    entry {} (after {}): {}",
            b.point.entry,
            b.point.last_mark(),
            b.why
        );
    }
}

#[test]
fn every_primitive_is_durable_at_every_crash_point() {
    let started = Instant::now();
    build_daemon_and_cli();
    let me = std::env::current_exe().unwrap();
    let at = |name: &str| format!("{GUEST_BIN}/{name}");
    let daemon_disks: Vec<(&str, FsKind)> =
        inner::FILESYSTEMS.iter().map(|k| (k.name(), *k)).collect();
    let mut builder = Knfsd::builder();
    for (disk, kind) in daemon_disks.iter().chain(nfs42::DISKS) {
        builder = builder.logged_disk(disk, *kind, DISK);
    }
    let Some(mut nfs) = builder
        .program(&me, &at("crash"))
        .program(&daemon_bin(), &at("openvaaid"))
        .program(&plugin_so(), &at("libopenvaai.so"))
        .start()
    else {
        return;
    };
    let out = run_in_guest(
        &nfs,
        "the workload through openvaaid on each logged disk",
        &format!(
            "{IN_GUEST}=1 OPENVAAI_REQUIRE_FS_TESTS=1 {} --ignored --exact --nocapture {} 2>&1",
            at("crash"),
            inner::DAEMON
        ),
        Duration::from_secs(600),
    );
    assert_eq!(guest::passed(&out), 1, "{out}");
    let nfs_started = Instant::now();
    let plugin = guest::plugin();
    for (disk, kind) in nfs42::DISKS {
        nfs42::workload(&nfs, &plugin, disk, *kind);
    }
    eprintln!(
        "the workload through the NFSv4.2 backend: {:.1} s",
        nfs_started.elapsed().as_secs_f64()
    );
    for (disk, _) in daemon_disks.iter().chain(nfs42::DISKS) {
        nfs.stop_logging(disk).unwrap();
    }
    nfs.power_off().unwrap();

    let expected_dir = tempfile::tempdir().unwrap();
    let want = invariants::Expected::new(expected_dir.path());
    let mut table =
        String::from("| backend | filesystem | entries | crash points | bad | durability of a returned step | replay |\n");
    let mut bad = 0;
    let mut tallies = Vec::new();
    let backends = [("openvaaid", &daemon_disks[..]), ("NFSv4.2", nfs42::DISKS)];
    for (backend, disks) in backends {
        for (disk, kind) in disks {
            let durable = backend == "openvaaid" || nfs42::durable(*kind);
            let (r, tally) = replay(&nfs, disk, &want, durable);
            assert!(r.judged > 0, "{disk}: no crash point after the ready mark");
            bad += r.bad.len();
            describe(backend, disk, &r, &tally, durable, &mut table);
            tallies.push((*disk, tally));
        }
    }
    eprintln!(
        "crash replay ({:.1} s in all, boot {:.1} s):\n{table}\ncrash points per step:\n{}",
        started.elapsed().as_secs_f64(),
        nfs.boot_time().as_secs_f64(),
        per_step(&tallies)
    );
    assert_eq!(
        bad, 0,
        "crash points where a primitive is not durable:\n{table}"
    );
}
