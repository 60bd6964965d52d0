//! The guest-side half: run inside the knfsd guest by `main.rs` with `OPENVAAI_IN_GUEST=1`.
//! On each logged disk (`/export/FS`, a filesystem under `dm-log-writes`) `openvaaid`
//! serves two exports, `a` and `b`; the plugin, loaded as disklib loads it, runs every step
//! of the workload with a mark before and after each.

use std::path::Path;

use openvaai_abi::vix;
use openvaai_testkit::{Daemon, FsKind};

use crate::guest::{datastore, name, plugin, sh};
use crate::workload::{run_step, write_sources, END, EXPORT_A, EXPORT_B, READY, STEPS};

/// The ignored test `main.rs` runs in the guest.
pub const DAEMON: &str = "inner::daemon_workload_on_each_logged_disk";

/// The filesystems (logged disks) the guest has: `FS` names its disk and its target.
pub const FILESYSTEMS: &[FsKind] = &[FsKind::Xfs, FsKind::Ext4, FsKind::Btrfs];

const TIMEOUT_MS: u64 = 60_000;

/// Logs mark `text` on disk `fs`'s target.
pub fn mark(fs: &str, text: &str) {
    sh(&format!("dmsetup message lw-{fs} 0 mark {text}"));
}

#[test]
#[ignore = "runs inside the knfsd guest (main.rs boots it)"]
fn daemon_workload_on_each_logged_disk() {
    crate::guest::in_guest("every_primitive_is_durable_at_every_crash_point");
    let plugin = plugin();
    for kind in FILESYSTEMS {
        let fs = kind.name();
        let root = Path::new("/export").join(fs);
        let (a, b) = (root.join(EXPORT_A), root.join(EXPORT_B));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        write_sources(&a);
        let daemon = Daemon::builder().export(&a).export(&b).start();
        sh("sync");
        mark(fs, READY);
        let (pa, pb) = (a.to_str().unwrap(), b.to_str().unwrap());
        let (dsa, dsb) = (datastore(pa, pa, "NFS", 3), datastore(pb, pb, "NFS", 3));
        let ida = plugin.start_session(&dsa, Some(TIMEOUT_MS)).unwrap();
        let idb = plugin.start_session(&dsb, Some(TIMEOUT_MS)).unwrap();
        for s in STEPS {
            mark(fs, &s.start_mark());
            let st = run_step(&plugin, (ida, pa), (idb, pb), &dsa, s.kind);
            mark(fs, &s.end_mark(st));
            assert_eq!(
                name(st),
                name(s.expected(*kind)),
                "{fs}: {}\n{}",
                s.name,
                daemon.log_text()
            );
        }
        assert_eq!(plugin.end_session(ida), vix::OK);
        assert_eq!(plugin.end_session(idb), vix::OK);
        drop(daemon);
        mark(fs, END);
        eprintln!("{fs}: {} steps done", STEPS.len());
    }
}

/// The ignored test that writes the sources for the NFSv4.2 backend's workload.
pub const SOURCES_FOR_NFS42: &str = "inner::sources_for_nfs42";

#[test]
#[ignore = "runs inside the knfsd guest (main.rs boots it)"]
fn sources_for_nfs42() {
    crate::guest::in_guest("every_primitive_is_durable_at_every_crash_point");
    let dir = std::env::var("CRASH_SOURCES").expect("CRASH_SOURCES names the directory");
    write_sources(Path::new(&dir));
}
