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
//! same guest, on three more logged disks ([`nfs42`]), judged by the same invariants.
//!
//! One guest boot for the binary; the guest-side half is [`inner`].

#[path = "../support/guest.rs"]
#[allow(dead_code)]
mod guest;
mod inner;
mod invariants;
mod nfs42;
mod workload;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use guest::{build_daemon_and_cli, run_in_guest, GUEST_BIN, IN_GUEST};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::replay::{ReplayReport, StateMount};
use openvaai_testkit::{daemon_bin, plugin_so, FsKind};

/// Each logged disk's size (sparse; XFS wants 300 MiB at least).
const DISK: u64 = 320 << 20;

/// Replays logged disk `fs` of the powered-off guest and judges every crash point.
fn replay(nfs: &Knfsd, fs: &str, want: &invariants::Expected) -> ReplayReport {
    let disk = nfs.write_log(fs).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let fstype = disk.kind.name();
    disk.log
        .replay(
            &disk.base,
            scratch.path(),
            Some(workload::READY),
            |point, state| {
                let mounted = StateMount::new(state, fstype)?;
                invariants::judge(mounted.path(), point, want)
            },
        )
        .unwrap_or_else(|e| panic!("replaying {fs}: {e}"))
}

/// One line of the table (filesystem, entries, crash points, bad ones, time) and the bad
/// points, each with the marks before it.
fn describe(backend: &str, fs: &str, r: &ReplayReport, out: &mut String) {
    let _ = writeln!(
        out,
        "| {backend} | {fs} | {} | {} | {} | {:.1} s |",
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
        String::from("| backend | filesystem | entries | crash points | bad | replay |\n");
    let mut bad = 0;
    let backends = [("openvaaid", &daemon_disks[..]), ("NFSv4.2", nfs42::DISKS)];
    for (backend, disks) in backends {
        for (disk, _) in disks {
            let r = replay(&nfs, disk, &want);
            assert!(r.judged > 0, "{disk}: no crash point after the ready mark");
            bad += r.bad.len();
            describe(backend, disk, &r, &mut table);
        }
    }
    eprintln!(
        "crash replay ({:.1} s in all, boot {:.1} s):\n{table}",
        started.elapsed().as_secs_f64(),
        nfs.boot_time().as_secs_f64()
    );
    assert_eq!(
        bad, 0,
        "crash points where a primitive is not durable:\n{table}"
    );
}
