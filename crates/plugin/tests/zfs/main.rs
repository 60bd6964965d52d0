//! openvaaid on real OpenZFS, the filesystem of TrueNAS: a knfsd guest (Debian 12's cloud
//! kernel the prebuilt OpenZFS 2.4 modules are built for, see `openvaai_testkit::guest`) makes
//! a pool on a partitioned raw disk and a dataset on `/export/tank`, and exports it; in the
//! same guest `openvaaid` serves the dataset while the plugin works through the guest's NFSv3
//! and NFSv4.1 mounts of it, as ESXi does. Judged by the pool: `zpool get bcloneused,
//! bclonesaved`, `st_blocks` after `zpool sync`, content compared byte for byte. Then the same
//! with block cloning off (`zfs_bclone_enabled=0`, set at run time: one boot for the binary).
//!
//! The OpenZFS build is not in the repository: `shared/zfs` beside it (or
//! `OPENVAAI_ZFS_DIR`); without it the test skips, and fails with `OPENVAAI_REQUIRE_FS_TESTS=1`.
//! The guest-side half is [`inner`]: ignored tests this test runs inside the guest.
//!
//! First, in the same boot, the engine's own suite on ZFS: its `zfs` tests (`#[ignore]`d on
//! the host, which has no ZFS) each make a pool on a sparse file on the guest's scratch disk,
//! once with block cloning on and once, the tests that clone, with it off.

#[path = "../support/guest.rs"]
mod guest;
mod inner;

use std::time::{Duration, Instant};

use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::{cli_bin, daemon_bin, plugin_so, FsKind, ZFS_BCLONE_PARAM};

use guest::{build_daemon_and_cli, engine_test_binary, passed, run_in_guest, GUEST_BIN, IN_GUEST};

/// The engine's tests that clone, run a second time with block cloning off.
const CLONING: &[&str] = &[
    "caps::",
    "clone_modes::",
    "cross_export::",
    "layouts::",
    "paths::",
    "publish::",
];

/// The engine's `zfs` tests (its ignored ones) matching `filters`, in the guest with the
/// pool files on the scratch disk; how many passed. None may skip.
fn engine_on_zfs(nfs: &Knfsd, what: &str, filters: &[&str], bclone: u8) -> u32 {
    let out = run_in_guest(
        nfs,
        what,
        &format!(
            "echo {bclone} > {ZFS_BCLONE_PARAM} && cd /export/scratch && \
             TMPDIR=/export/scratch OPENVAAI_REQUIRE_FS_TESTS=1 {GUEST_BIN}/engine --ignored \
             {} 2>&1; rc=$?; echo 1 > {ZFS_BCLONE_PARAM}; exit $rc",
            filters.join(" ")
        ),
        Duration::from_secs(1500),
    );
    eprintln!("{out}");
    assert!(
        !out.contains("skipping"),
        "engine tests skipped in the guest:\n{out}"
    );
    assert!(
        out.lines()
            .filter(|l| l.starts_with("test ") && l.contains(" ... ok"))
            .all(|l| l.contains("zfs")),
        "a test that is not a ZFS one ran:\n{out}"
    );
    passed(&out)
}

#[test]
fn openvaaid_on_a_zfs_dataset_through_nfs_mounts() {
    let started = Instant::now();
    build_daemon_and_cli();
    let engine = engine_test_binary();
    let me = std::env::current_exe().unwrap();
    let at = |name: &str| format!("{GUEST_BIN}/{name}");
    let Some(nfs) = Knfsd::builder()
        .zfs(inner::POOL, 2 << 30)
        // The engine tests' pools are sparse files here (TMPDIR): sparse on the host too.
        .disk("scratch", FsKind::Ext4, 8 << 30)
        .memory_mib(1536)
        // No NFSv4 delegations, as with ESXi's NFS 4.1 client (see tests/knfsd).
        .setup("echo 0 > /proc/sys/fs/leases-enable")
        .program(&me, &at("zfs"))
        .program(&daemon_bin(), &at("openvaaid"))
        .program(&plugin_so(), &at("libopenvaai.so"))
        .program(&cli_bin(), &at("openvaai"))
        .program(&engine, &at("engine"))
        .start()
    else {
        return;
    };
    let pool = nfs.run(&format!("zpool list -H {}", inner::POOL)).unwrap();
    eprintln!("zfs guest: {pool}");

    let n = engine_on_zfs(
        &nfs,
        "the engine's tests on ZFS, block cloning on",
        &["zfs"],
        1,
    );
    assert!(n >= 28, "only {n} engine tests passed on ZFS");
    let off = engine_on_zfs(
        &nfs,
        "the engine's cloning tests on ZFS, block cloning off",
        CLONING,
        0,
    );
    assert!(
        off >= 17,
        "only {off} engine tests passed on ZFS with block cloning off"
    );
    eprintln!("zfs guest: {n} engine tests passed, {off} again with block cloning off");

    let out = run_in_guest(
        &nfs,
        "the plugin on a ZFS dataset through NFSv3 and NFSv4.1 mounts",
        &format!(
            "cd /tmp && {IN_GUEST}=1 OPENVAAI_REQUIRE_FS_TESTS=1 {} --ignored --exact \
             --nocapture --test-threads=1 {} 2>&1",
            at("zfs"),
            inner::NAMES.join(" ")
        ),
        Duration::from_secs(900),
    );
    eprintln!("{out}");
    assert_eq!(passed(&out), inner::NAMES.len() as u32, "{out}");
    eprintln!(
        "zfs guest suite ({}): {:.1} s in all, boot to ready {:.1} s",
        nfs.kernel_package(),
        started.elapsed().as_secs_f64(),
        nfs.boot_time().as_secs_f64()
    );
}
