//! The guest-side half: run inside the knfsd guest by the test in `main.rs`, with
//! `OPENVAAI_IN_GUEST=1`. `openvaaid` serves `/export/xfs` (the guest's XFS disk, which knfsd
//! exports); the guest mounts that export from 127.0.0.1 with NFSv3 and NFSv4.1; the plugin's
//! datastore is each mount (`localMountPoint` a real NFS mount: the access file is read
//! through the NFS client and its caches). The server's truth is read on `/export/xfs`
//! directly.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use openvaai_abi::{alloc, clone_flag as f, prim, vix};
use openvaai_testkit::guest::local_view;
use openvaai_testkit::{assert_same_content, plugin_so, write_layout, Daemon, Run};

/// The ignored tests `main.rs` runs in the guest.
pub const NAMES: &[&str] = &[
    "inner::every_primitive_through_nfs_mounts",
    "inner::a_daemon_restart_during_a_session_is_seen_through_the_mount",
    "inner::a_full_clone_on_an_nfs_gateway_is_a_server_side_copy",
];

const EXPORT: &str = "/export/xfs";
const MIB: u64 = 1 << 20;
/// The session timeout (ESXi's timeoutMS).
const TIMEOUT_MS: u64 = 30_000;

use crate::guest::{assert_vix, name, plugin, MOUNTS};

fn in_guest() {
    crate::guest::in_guest("engine_and_plugin_on_the_guests_kernel_and_nfs_mounts");
}

fn mount_all() {
    crate::guest::mount_all(EXPORT);
}

fn server(file: &str) -> openvaai_testkit::guest::FileView {
    local_view(&Path::new(EXPORT).join(file)).unwrap()
}

#[test]
#[ignore = "runs inside the knfsd guest (engine_and_plugin_on_the_guests_kernel_and_nfs_mounts)"]
fn every_primitive_through_nfs_mounts() {
    in_guest();
    let daemon = Daemon::serve(Path::new(EXPORT));
    mount_all();
    let plugin = plugin();
    for (seed, at) in MOUNTS.iter().enumerate() {
        let mount = at.0;
        let tag = &mount[5..]; // v3, v41
        let p = |n: &str| format!("{mount}/{tag}-{n}.vmdk");
        let file = |n: &str| format!("{tag}-{n}.vmdk");
        let id = crate::guest::start_on(&plugin, &daemon, EXPORT, at, TIMEOUT_MS);
        for pr in [prim::CLONEFILE, prim::RESVSPACE, prim::STATX] {
            assert_vix(plugin.support_status(id, pr), vix::OK, mount);
        }
        // Written through the NFS client; closed, so flushed to the server (close-to-open).
        let runs = [Run::Data(2 * MIB), Run::Hole(4 * MIB), Run::Data(MIB)];
        let size = write_layout(Path::new(&p("src")), &runs, 40 + seed as u64).unwrap();

        let sx = plugin.statx(id, &p("src")).unwrap();
        assert_vix(sx.common.status, vix::OK, "STATX");
        assert_eq!(sx.total_bytes, size, "{mount}");
        assert!(
            sx.alloced_bytes >= 3 * MIB && sx.alloced_bytes < size,
            "{mount}: {sx:?}"
        );
        assert_eq!(sx.alloc_type, alloc::THIN, "{mount}");

        let st = plugin.clone_file(id, &p("src"), &p("lazy"), f::LAZY, None, None);
        assert_vix(st.unwrap(), vix::OK, "lazy CLONEFILE");
        assert_same_content(Path::new(&p("src")), Path::new(&p("lazy")));
        let lazy = server(&file("lazy"));
        assert!(
            lazy.mapped_bytes() >= 3 * MIB && lazy.shared_bytes() == lazy.mapped_bytes(),
            "{mount}: the lazy clone shares no blocks on the server: {lazy:?}"
        );

        let st = plugin.clone_file(id, &p("src"), &p("lazy"), f::LAZY | f::GUARDED, None, None);
        assert_vix(st.unwrap(), vix::E_FILE_ALREADY_EXISTS, "guarded CLONEFILE");

        let st = plugin.clone_file(id, &p("src"), &p("full"), 0, None, None);
        assert_vix(st.unwrap(), vix::OK, "full CLONEFILE");
        assert_same_content(Path::new(&p("src")), Path::new(&p("full")));
        let full = server(&file("full"));
        assert_eq!(
            full.shared_bytes(),
            0,
            "{mount}: a full clone shares: {full:?}"
        );
        assert!(
            full.holes().is_empty() && full.allocated >= size,
            "{mount}: {full:?}"
        );

        let st = plugin.reserve(id, &p("src"), None);
        let log = || format!("RESVSPACE on {mount}:\n{}", daemon.log_text());
        assert_vix(st.unwrap(), vix::OK, &log());
        let src = server(&file("src"));
        assert!(
            src.holes().is_empty(),
            "{mount}: holes after RESVSPACE: {src:?}"
        );
        assert_same_content(Path::new(&p("full")), Path::new(&p("src")));
        let sx = plugin.statx(id, &p("src")).unwrap();
        assert_vix(sx.common.status, vix::OK, "STATX after RESVSPACE");
        assert!(sx.alloced_bytes >= size, "{mount}: {sx:?}");
        assert_ne!(sx.alloc_type, alloc::THIN, "{mount}: {sx:?}");

        assert_vix(plugin.end_session(id), vix::OK, "EndSession");

        // The C host (disklib's stand-in in C) on the same mount.
        let out = Command::new(format!("{}/host", crate::GUEST_BIN))
            .args([
                "e2e",
                plugin_so().to_str().unwrap(),
                mount,
                "127.0.0.1",
                EXPORT,
            ])
            .arg(file("full"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "C host on {mount}:\n{text}\n{}",
            daemon.log_text()
        );
    }
}

#[test]
#[ignore = "runs inside the knfsd guest (engine_and_plugin_on_the_guests_kernel_and_nfs_mounts)"]
fn a_daemon_restart_during_a_session_is_seen_through_the_mount() {
    in_guest();
    let mut daemon = Daemon::serve(Path::new(EXPORT));
    mount_all();
    let plugin = plugin();
    for (seed, at) in MOUNTS.iter().enumerate() {
        let mount = at.0;
        let tag = &mount[5..];
        let p = |n: &str| format!("{mount}/{tag}-r-{n}.vmdk");
        write_layout(Path::new(&p("src")), &[Run::Data(MIB)], 60 + seed as u64).unwrap();
        let id = crate::guest::start_on(&plugin, &daemon, EXPORT, at, TIMEOUT_MS);
        assert_vix(
            plugin.statx(id, &p("src")).unwrap().common.status,
            vix::OK,
            "STATX",
        );
        // New secrets in a new access file, written on the server; the plugin reads it
        // through the NFS client, whose attribute cache may still hold the old one.
        daemon.restart();
        let began = Instant::now();
        let st = plugin.clone_file(id, &p("src"), &p("after"), f::LAZY, None, None);
        let took = began.elapsed();
        assert_vix(st.unwrap(), vix::OK, "CLONEFILE after the restart");
        assert!(
            took < Duration::from_millis(TIMEOUT_MS),
            "{mount}: {took:?}"
        );
        assert_same_content(Path::new(&p("src")), Path::new(&p("after")));
        let sx = plugin.statx(id, &p("after")).unwrap();
        assert_vix(sx.common.status, vix::OK, "STATX after the restart");
        assert_vix(plugin.end_session(id), vix::OK, "EndSession");
        eprintln!("{mount}: the first call after the restart took {took:?}");
    }
}

/// How many NFSv4 COPY operations (op 60) this guest's knfsd has served
/// (`/proc/net/rpc/nfsd`, `proc4ops N c0 c1 ...`: the count of each op by number).
fn nfsd_copies() -> u64 {
    const OP_COPY: usize = 60;
    let stats = std::fs::read_to_string("/proc/net/rpc/nfsd").unwrap();
    let line = stats
        .lines()
        .find(|l| l.starts_with("proc4ops "))
        .expect("knfsd's proc4ops counters");
    line.split_whitespace()
        .nth(2 + OP_COPY)
        .and_then(|n| n.parse().ok())
        .expect("a COPY counter")
}

/// openvaaid serving a directory that is itself an NFSv4.2 mount (a gateway in front of the
/// real storage): a full clone goes down as copy_file_range, which the NFS client sends to
/// the server as COPY, instead of reading and writing every byte through the gateway.
#[test]
#[ignore = "runs inside the knfsd guest (engine_and_plugin_on_the_guests_kernel_and_nfs_mounts)"]
fn a_full_clone_on_an_nfs_gateway_is_a_server_side_copy() {
    in_guest();
    let gw = "/mnt/gw";
    crate::guest::sh(&format!(
        "mkdir -p {gw}; grep -q ' {gw} nfs' /proc/mounts || \
         mount -t nfs -o vers=4.2 127.0.0.1:{EXPORT} {gw}; mkdir -p {EXPORT}/gw"
    ));
    let served = format!("{gw}/gw");
    let src = Path::new(EXPORT).join("gw/template-flat.vmdk");
    write_layout(&src, &[Run::Data(32 * MIB)], 91).unwrap();
    crate::guest::sh("sync");
    let daemon = Daemon::serve(Path::new(&served));
    assert!(
        daemon.wait_for_log("copies below the gateway", Duration::from_secs(5)),
        "the probe says the export offloads copies:\n{}",
        daemon.log_text()
    );
    assert!(
        daemon
            .log_text()
            .contains("taking the export lock on an NFS mount"),
        "the daemon says why its start may wait on an NFS mount:\n{}",
        daemon.log_text()
    );
    let plugin = plugin();
    let id = plugin
        .start_session(
            &crate::guest::datastore(&served, &served, "NFS", 3),
            Some(TIMEOUT_MS),
        )
        .unwrap_or_else(|e| panic!("StartSession on {served}: {}", name(e)));
    let before = nfsd_copies();
    let st = plugin.clone_file(
        id,
        &format!("{served}/template-flat.vmdk"),
        &format!("{served}/vm01-flat.vmdk"),
        f::GUARDED,
        None,
        None,
    );
    assert_vix(st.unwrap(), vix::OK, "full CLONEFILE on the gateway");
    let copies = nfsd_copies() - before;
    eprintln!("gateway: the full clone of 32 MiB was {copies} COPY operations on the server");
    assert!(
        copies >= 1,
        "no server-side COPY: the gateway moved the bytes itself"
    );
    assert_same_content(&src, &Path::new(EXPORT).join("gw/vm01-flat.vmdk"));
    assert_vix(plugin.end_session(id), vix::OK, "EndSession");
}
