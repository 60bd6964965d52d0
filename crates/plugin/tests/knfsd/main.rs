//! Our code on a second kernel and a real NFS mount: a knfsd guest (Debian 12's 6.1 cloud
//! kernel under qemu, see `openvaai_testkit::guest`) runs the engine's clone, reserve and
//! statx tests on XFS, then `openvaaid` serving its XFS export while the plugin, in the same
//! guest, works through the guest's own NFSv3 and NFSv4.1 mounts of that export, as ESXi
//! does: every primitive, the C host, and a daemon restart during a session.
//!
//! One guest boot for the whole binary. The guest-side half is [`inner`]: ignored tests that
//! this test runs inside the guest (a copy of this very binary).

#[path = "../support/chost.rs"]
mod chost;
#[path = "../support/guest.rs"]
mod guest;
mod inner;

use std::time::{Duration, Instant};

use guest::{build_daemon_and_cli, engine_test_binary, passed, run_in_guest};
pub use guest::{GUEST_BIN, IN_GUEST};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::{daemon_bin, plugin_so, FsKind};

#[test]
fn engine_and_plugin_on_the_guests_kernel_and_nfs_mounts() {
    let started = Instant::now();
    build_daemon_and_cli();
    let engine = engine_test_binary();
    let tmp = tempfile::tempdir().unwrap();
    let host = chost::build(tmp.path());
    let me = std::env::current_exe().unwrap();
    let at = |name: &str| format!("{GUEST_BIN}/{name}");
    let Some(nfs) = Knfsd::builder()
        .disk("xfs", FsKind::Xfs, 1 << 30)
        // Room for the engine tests' own images (TMPDIR): sparse, on the host too.
        .disk("scratch", FsKind::Ext4, 8 << 30)
        .memory_mib(1536)
        // NFSv4 delegations stay on: the guest's Linux client takes read delegations, and the
        // engine's opens of a delegated file must wait out knfsd's recall (they once failed
        // with EAGAIN: RESVSPACE -> VIX_E_FILE_ERROR).
        .program(&me, &at("knfsd"))
        .program(&daemon_bin(), &at("openvaaid"))
        .program(&plugin_so(), &at("libopenvaai.so"))
        .program(&host, &at("host"))
        .program(&engine, &at("engine"))
        .start()
    else {
        return;
    };
    let kernel = nfs.run("uname -r").unwrap();
    assert!(kernel.contains("cloud-amd64"), "guest kernel {kernel}");

    let engine_out = run_in_guest(
        &nfs,
        "the engine's clone, reserve and statx tests on XFS",
        &format!(
            "cd /export/scratch && TMPDIR=/export/scratch OPENVAAI_REQUIRE_FS_TESTS=1 \
             {} clone_modes:: reserve_statx:: --skip btrfs --skip ext4 2>&1",
            at("engine")
        ),
        Duration::from_secs(900),
    );
    let n = passed(&engine_out);
    assert!(n >= 10, "only {n} engine tests passed:\n{engine_out}");
    eprintln!("knfsd guest: {n} engine tests passed on {kernel}");
    assert!(
        !engine_out.contains("skipping"),
        "engine tests skipped in the guest:\n{engine_out}"
    );

    let plugin_out = run_in_guest(
        &nfs,
        "the plugin on the guest's NFSv3 and NFSv4.1 mounts",
        &format!(
            "cd /export/scratch && {IN_GUEST}=1 TMPDIR=/export/scratch OPENVAAI_REQUIRE_FS_TESTS=1 \
             {} --ignored --exact --nocapture --test-threads=1 {} 2>&1",
            at("knfsd"),
            inner::NAMES.join(" ")
        ),
        Duration::from_secs(600),
    );
    assert_eq!(
        passed(&plugin_out),
        inner::NAMES.len() as u32,
        "{plugin_out}"
    );
    eprintln!("{plugin_out}");
    eprintln!(
        "knfsd guest suite ({}): {:.1} s in all, boot to ready {:.1} s",
        nfs.kernel_package(),
        started.elapsed().as_secs_f64(),
        nfs.boot_time().as_secs_f64()
    );
}
