//! The guest-side half: run inside the ZFS guest by the test in `main.rs`, with
//! `OPENVAAI_IN_GUEST=1`. `openvaaid` serves `/export/tank` (a ZFS dataset, lz4, on pool
//! `tank`, which knfsd exports); the guest mounts that export from 127.0.0.1 with NFSv3 and
//! NFSv4.1 and the plugin's datastore is each mount. The truth is the pool's: `zpool get
//! bcloneused,bclonesaved` and `st_blocks` on the dataset after `zpool sync`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use openvaai_abi::{alloc, clone_flag as f, prim, vix};
use openvaai_testkit::{assert_same_content, cli_bin, plugin_so, write_layout, Daemon, Run};

use crate::guest::{assert_vix, in_guest, plugin, sh, MOUNTS};

/// The pool `main.rs` asks the guest for; its dataset is mounted on `/export/POOL`.
pub const POOL: &str = "tank";

/// The ignored tests `main.rs` runs in the guest, in this order (the second turns block
/// cloning off for the rest of the boot).
pub const NAMES: &[&str] = &[
    "inner::every_primitive_on_zfs_with_block_cloning",
    "inner::lazy_is_not_supported_where_block_cloning_is_off",
];

const OUTER: &str = "openvaaid_on_a_zfs_dataset_through_nfs_mounts";
const EXPORT: &str = "/export/tank";
const MIB: u64 = 1 << 20;
const TIMEOUT_MS: u64 = 30_000;
const BCLONE_PARAM: &str = "/sys/module/zfs/parameters/zfs_bclone_enabled";

fn mount_all() {
    crate::guest::mount_all(EXPORT);
}

/// `(bcloneused, bclonesaved)` of the pool, in bytes, after its transaction group synced.
fn bclone() -> (u64, u64) {
    let out = sh(&format!(
        "zpool sync {POOL} && zpool get -Hp -o value bcloneused,bclonesaved {POOL}"
    ));
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|n| n.parse().unwrap_or_else(|_| panic!("zpool get said {out}")))
        .collect();
    (v[0], v[1])
}

/// The dataset's `st_blocks * 512` of `file`, after the pool synced.
fn allocated(file: &str) -> u64 {
    sh(&format!("zpool sync {POOL}"));
    std::fs::metadata(Path::new(EXPORT).join(file))
        .unwrap()
        .blocks()
        * 512
}

/// `openvaai check` on `mount`, as an admin runs it: its output.
fn check(mount: &str) -> String {
    let out = Command::new(cli_bin())
        .args([
            "check",
            "-d",
            mount,
            "--nas-ip",
            "127.0.0.1",
            "--nas-path",
            EXPORT,
        ])
        .arg("--plugin")
        .arg(plugin_so())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
#[ignore = "runs inside the ZFS guest (openvaaid_on_a_zfs_dataset_through_nfs_mounts)"]
fn every_primitive_on_zfs_with_block_cloning() {
    in_guest(OUTER);
    assert_eq!(sh(&format!("cat {BCLONE_PARAM}")).trim(), "1");
    let daemon = Daemon::serve(Path::new(EXPORT));
    mount_all();
    let plugin = plugin();
    for (seed, at) in MOUNTS.iter().enumerate() {
        let mount = at.0;
        let tag = &mount[5..]; // v3, v41
        let p = |n: &str| format!("{mount}/{tag}-{n}.vmdk");
        let file = |n: &str| format!("{tag}-{n}.vmdk");
        let id = crate::guest::start_on(&plugin, &daemon, EXPORT, at, TIMEOUT_MS);
        assert_vix(plugin.support_status(id, prim::CLONEFILE), vix::OK, mount);
        assert_vix(plugin.support_status(id, prim::STATX), vix::OK, mount);
        // ZFS emulates fallocate (it checks free space and allocates nothing): never offered.
        assert_vix(
            plugin.support_status(id, prim::RESVSPACE),
            vix::E_NOT_SUPPORTED,
            &format!("SupportStatus(RESVSPACE) on {mount}"),
        );

        // A dense file and a sparse one, written through the NFS client.
        let dense = write_layout(
            Path::new(&p("dense")),
            &[Run::Data(4 * MIB)],
            70 + seed as u64,
        )
        .unwrap();
        let runs = [Run::Data(MIB), Run::Hole(2 * MIB), Run::Data(MIB)];
        let sparse = write_layout(Path::new(&p("sparse")), &runs, 80 + seed as u64).unwrap();

        // STATX: the allocation type from SEEK_HOLE (no FIEMAP on ZFS); allocated bytes as
        // the pool has them once synced; unique bytes 0 where blocks can be cloned.
        assert!(
            allocated(&file("dense")) >= dense,
            "{mount}: dense not on disk"
        );
        let sx = plugin.statx(id, &p("dense")).unwrap();
        assert_vix(sx.common.status, vix::OK, "STATX dense");
        assert_eq!(sx.alloc_type, alloc::EZT, "{mount}: dense {sx:?}");
        assert_eq!(sx.total_bytes, dense, "{mount}: {sx:?}");
        assert!(sx.alloced_bytes >= dense, "{mount}: dense {sx:?}");
        assert_eq!(sx.unique_bytes, 0, "{mount}: dense {sx:?}");
        let sx = plugin.statx(id, &p("sparse")).unwrap();
        assert_vix(sx.common.status, vix::OK, "STATX sparse");
        assert_eq!(sx.alloc_type, alloc::THIN, "{mount}: sparse {sx:?}");
        assert!(
            sx.alloced_bytes >= 2 * MIB && sx.alloced_bytes < sparse,
            "{mount}: sparse {sx:?}"
        );
        assert_eq!(sx.unique_bytes, 0, "{mount}: sparse {sx:?}");

        // LAZY: a block clone, seen by the pool.
        let (used, saved) = bclone();
        let st = plugin.clone_file(id, &p("dense"), &p("lazy"), f::LAZY, None, None);
        assert_vix(
            st.unwrap(),
            vix::OK,
            &format!("LAZY on {mount}:\n{}", daemon.log_text()),
        );
        assert_same_content(Path::new(&p("dense")), Path::new(&p("lazy")));
        let (used2, saved2) = bclone();
        assert!(
            used2 >= used + dense && saved2 >= saved + dense,
            "{mount}: the lazy clone of {dense} bytes is no block clone: bcloneused \
             {used} -> {used2}, bclonesaved {saved} -> {saved2}"
        );
        let sx = plugin.statx(id, &p("lazy")).unwrap();
        assert_eq!(sx.unique_bytes, 0, "{mount}: lazy {sx:?}");
        assert_eq!(sx.alloc_type, alloc::EZT, "{mount}: lazy {sx:?}");

        // Full clones, thin (SKIPZEROES) and not: independent copies with the same data (no
        // block shared, so the pool's clone counters stay); holes stay holes either way, as
        // ZFS's fallocate allocates nothing: "thick" does not exist on ZFS, and STATX says so.
        for (n, flags) in [("thin", f::SKIPZEROES), ("full", 0)] {
            let st = plugin.clone_file(id, &p("sparse"), &p(n), flags, None, None);
            assert_vix(st.unwrap(), vix::OK, &format!("{n} clone on {mount}"));
            assert_same_content(Path::new(&p("sparse")), Path::new(&p(n)));
            let sx = plugin.statx(id, &p(n)).unwrap();
            assert_eq!(sx.alloc_type, alloc::THIN, "{mount}: {n} clone {sx:?}");
            assert!(
                allocated(&file(n)) >= 2 * MIB,
                "{mount}: {n} clone not on disk"
            );
        }
        assert_eq!(
            bclone(),
            (used2, saved2),
            "{mount}: a full clone shares blocks"
        );

        // RESVSPACE: NOT_SUPPORTED, and the file as it was.
        let st = plugin.reserve(id, &p("sparse"), None);
        assert_vix(
            st.unwrap(),
            vix::E_NOT_SUPPORTED,
            &format!("RESVSPACE on {mount}"),
        );
        let log = daemon.log_text();
        assert!(
            log.contains("allocated nothing") && log.contains("refreservation"),
            "{mount}: the daemon's log does not say why RESVSPACE failed:\n{log}"
        );
        assert_same_content(Path::new(&p("sparse")), Path::new(&p("full")));
        let sx = plugin.statx(id, &p("sparse")).unwrap();
        assert_eq!(
            sx.alloc_type,
            alloc::THIN,
            "{mount}: after RESVSPACE {sx:?}"
        );
        assert_vix(plugin.end_session(id), vix::OK, "EndSession");

        // openvaai check says what works and why RESVSPACE does not.
        let text = check(mount);
        assert!(
            text.contains("reflink yes, fallocate no"),
            "{mount}:\n{text}"
        );
        assert!(
            text.contains("FAIL RESVSPACE") && text.contains("refreservation"),
            "{mount}:\n{text}"
        );
        assert!(text.contains("full and lazy"), "{mount}:\n{text}");
        eprintln!("openvaai check on {mount}:\n{text}");
    }
}

#[test]
#[ignore = "runs inside the ZFS guest (openvaaid_on_a_zfs_dataset_through_nfs_mounts)"]
fn lazy_is_not_supported_where_block_cloning_is_off() {
    in_guest(OUTER);
    // As in OpenZFS 2.2.1-2.2.3; the daemon's probe at start sees it.
    sh(&format!("echo 0 > {BCLONE_PARAM}"));
    let daemon = Daemon::serve(Path::new(EXPORT));
    mount_all();
    let plugin = plugin();
    for (seed, at) in MOUNTS.iter().enumerate() {
        let mount = at.0;
        let tag = &mount[5..];
        let p = |n: &str| format!("{mount}/{tag}-off-{n}.vmdk");
        write_layout(
            Path::new(&p("src")),
            &[Run::Data(2 * MIB)],
            90 + seed as u64,
        )
        .unwrap();
        let id = crate::guest::start_on(&plugin, &daemon, EXPORT, at, TIMEOUT_MS);
        let before = bclone();
        let st = plugin.clone_file(id, &p("src"), &p("lazy"), f::LAZY, None, None);
        assert_vix(
            st.unwrap(),
            vix::E_NOT_SUPPORTED,
            &format!(
                "LAZY with block cloning off on {mount}:\n{}",
                daemon.log_text()
            ),
        );
        assert!(!Path::new(&p("lazy")).exists(), "{mount}: LAZY left a file");
        assert_eq!(bclone(), before, "{mount}");
        let st = plugin.clone_file(id, &p("src"), &p("full"), 0, None, None);
        assert_vix(st.unwrap(), vix::OK, "full clone with block cloning off");
        assert_same_content(Path::new(&p("src")), Path::new(&p("full")));
        // Nothing tells which blocks are shared on ZFS (a snapshot, or a block clone made
        // while cloning was on, shares them unseen): unique bytes are 0, never more than
        // deleting the file would free. Here a snapshot holds every block of the clone.
        sh(&format!(
            "zfs snapshot {POOL}@{tag}-off && zpool sync {POOL}"
        ));
        let sx = plugin.statx(id, &p("full")).unwrap();
        sh(&format!("zfs destroy {POOL}@{tag}-off"));
        assert!(
            sx.unique_bytes == 0 && sx.alloced_bytes >= 2 * MIB,
            "{mount}: unique bytes of a file a snapshot shares: {sx:?}"
        );
        assert_vix(plugin.end_session(id), vix::OK, "EndSession");
        let text = check(mount);
        assert!(text.contains("reflink no"), "{mount}:\n{text}");
        assert!(
            text.contains("lazy clones need reflink"),
            "{mount}:\n{text}"
        );
    }
    sh(&format!("echo 1 > {BCLONE_PARAM}"));
}
