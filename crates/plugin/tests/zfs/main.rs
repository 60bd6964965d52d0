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
//! The engine's own clone, reserve and statx tests are not run here: they make their
//! filesystems as loop-mounted images (XFS, Btrfs, ext4), which ZFS cannot be; the engine on
//! ZFS is what the daemon runs below, checked by [`inner`] through the plugin.

#[path = "../support/guest.rs"]
mod guest;
mod inner;

use std::time::{Duration, Instant};

use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::{cli_bin, daemon_bin, plugin_so};

use guest::{build_daemon_and_cli, passed, run_in_guest, GUEST_BIN, IN_GUEST};

#[test]
fn openvaaid_on_a_zfs_dataset_through_nfs_mounts() {
    let started = Instant::now();
    build_daemon_and_cli();
    let me = std::env::current_exe().unwrap();
    let at = |name: &str| format!("{GUEST_BIN}/{name}");
    let Some(nfs) = Knfsd::builder()
        .zfs(inner::POOL, 2 << 30)
        .memory_mib(1536)
        // No NFSv4 delegations, as with ESXi's NFS 4.1 client (see tests/knfsd).
        .setup("echo 0 > /proc/sys/fs/leases-enable")
        .program(&me, &at("zfs"))
        .program(&daemon_bin(), &at("openvaaid"))
        .program(&plugin_so(), &at("libopenvaai.so"))
        .program(&cli_bin(), &at("openvaai"))
        .start()
    else {
        return;
    };
    let pool = nfs.run(&format!("zpool list -H {}", inner::POOL)).unwrap();
    eprintln!("zfs guest: {pool}");

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
