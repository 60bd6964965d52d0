//! The standard backend against knfsd exporting a ZFS dataset (TrueNAS SCALE's stack): real
//! OpenZFS 2.4 in the guest (`Knfsd::builder().zfs`, the build from `shared/zfs`), the plugin
//! on the host. Judged by the pool: `zpool get bclonesaved`, `st_blocks` after `zpool sync`,
//! the content by SHA-256. LAZY is a block clone; with `zfs_bclone_enabled=0` it is
//! NOT_SUPPORTED, never a copy (the server's NFS4ERR_NOTSUPP in a running session, the probe's
//! answer in a new one); RESVSPACE is never offered nor claimed (ALLOCATE allocates nothing);
//! STATX of a file with a hole is THIN; full clones (COPY) give identical, independent data,
//! and a thick one is THIN there too (ALLOCATE allocates nothing on a copy-on-write pool).
//!
//! Without the OpenZFS build the test skips, and fails with `OPENVAAI_REQUIRE_FS_TESTS=1`.

use openvaai_abi::clone_flag::{GUARDED, LAZY};
use openvaai_abi::{alloc, prim, vix, SessionId};
use openvaai_host::Plugin;
use openvaai_testkit::guest::Knfsd;

use super::{clients, Export};
use crate::{assert_vix, datastore, name, serial};

const POOL: &str = "tank";
const MIB: u64 = 1 << 20;
const BCLONE_PARAM: &str = "/sys/module/zfs/parameters/zfs_bclone_enabled";

/// The pool's `bclonesaved`, in bytes, after its transaction group synced.
fn bclonesaved(nfs: &Knfsd) -> u64 {
    let out = nfs
        .run(&format!(
            "zpool sync {POOL} && zpool get -Hp -o value bclonesaved {POOL}"
        ))
        .unwrap();
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("bclonesaved {out:?}: {e}"))
}

/// `(st_size, st_blocks * 512)` of `name` in the dataset, after the pool synced.
fn stat(nfs: &Knfsd, export: &str, name: &str) -> (u64, u64) {
    let out = nfs
        .run(&format!(
            "zpool sync {POOL} && stat -c '%s %b' {export}/{name}"
        ))
        .unwrap();
    let mut it = out.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    let (size, blocks) = (it.next().unwrap(), it.next().unwrap());
    (size, blocks * 512)
}

/// A session on the dataset, and the session line the plugin logged.
fn session(plugin: &Plugin, nfs: &Knfsd, local: &std::path::Path) -> (SessionId, String) {
    let ds = datastore("127.0.0.1", &nfs.export(POOL), local);
    let _ = openvaai_host::take_log();
    let id = plugin
        .start_session(&ds, Some(30_000))
        .unwrap_or_else(|e| panic!("StartSession on ZFS: {}", name(e)));
    let line = openvaai_host::take_log()
        .into_iter()
        .map(|l| l.text)
        .find(|l| l.contains("standard backend"))
        .expect("a session line");
    (id, line)
}

/// `openvaai check` of the datastore: RESVSPACE refused, saying why and what to do.
fn check_says_why(local: &std::path::Path, export: &str) {
    let out = std::process::Command::new(openvaai_testkit::cli_bin())
        .arg("check")
        .arg("-d")
        .arg(local)
        .args(["--nas-ip", "127.0.0.1", "--nas-path", export, "--plugin"])
        .arg(openvaai_testkit::plugin_so())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "check said yes: {text}");
    assert!(
        text.contains("ALLOCATE allocates nothing") && text.contains("FAIL RESVSPACE"),
        "{text}"
    );
    let fix = text
        .lines()
        .skip_while(|l| !l.contains("FAIL RESVSPACE"))
        .nth(1)
        .unwrap_or_default();
    assert!(fix.contains("refreservation"), "{text}");
}

#[test]
fn the_standard_backend_on_knfsd_exporting_zfs() {
    let _one = serial();
    crate::support::build_daemon_and_cli();
    let Some(nfs) = Knfsd::builder().zfs(POOL, 1 << 30).memory_mib(1536).start() else {
        return;
    };
    let export = nfs.export(POOL);
    // Random data: lz4 cannot shrink it, so its blocks are really there.
    nfs.run(&format!(
        "set -e; cd {export}
         mkdir -p .openvaai && : > .openvaai/nfs42
         mkdir dir && ln -s /etc escape
         dd if=/dev/urandom of=dense bs=1M count=4 conv=fsync 2>/dev/null
         truncate -s 4M thick
         truncate -s 4M thin && dd if=/dev/urandom of=thin bs=64k count=2 conv=notrunc,fsync 2>/dev/null
         zpool sync {POOL}"
    ))
    .unwrap_or_else(|e| panic!("preparing the dataset: {e}"));
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir(local.path().join(".openvaai")).unwrap();
    std::fs::write(
        local.path().join(".openvaai/nfs42"),
        format!("port = {}\n", nfs.nfs_addr().port()),
    )
    .unwrap();
    // The forwarded port is neither 2049 nor privileged: allowed as an ESXi admin would.
    openvaai_testkit::guest::allow_nfs42_port(nfs.nfs_addr().port());
    let mut plugin = Plugin::load(&openvaai_testkit::plugin_so()).unwrap();
    assert_vix(plugin.init(), vix::OK);

    let (id, line) = session(&plugin, &nfs, local.path());
    assert!(
        line.contains("CLONE yes, COPY yes, SEEK yes, ALLOCATE allocates nothing")
            && line.contains("refreservation"),
        "{line}"
    );
    assert_vix(plugin.support_status(id, prim::STATX), vix::OK);
    assert_vix(plugin.support_status(id, prim::CLONEFILE), vix::OK);
    assert_vix(
        plugin.support_status(id, prim::RESVSPACE),
        vix::E_NOT_SUPPORTED,
    );
    let e = Export {
        nfs: &nfs,
        plugin: &plugin,
        local: local.path(),
        export: export.clone(),
        id,
    };
    assert_eq!(
        nfs.run(&format!("ls -A {export}/.openvaai"))
            .unwrap()
            .trim(),
        "nfs42",
        "the ALLOCATE probe left its temporary"
    );

    check_says_why(local.path(), &export);

    // LAZY: a block clone, seen by the pool.
    let saved = bclonesaved(&nfs);
    let (st, deltas) = e.clone("dense", "lazy", LAZY | GUARDED, 0);
    assert_vix(st, vix::OK);
    assert_eq!(deltas.iter().sum::<u64>(), 4 * MIB);
    assert_eq!(e.sha("lazy"), e.sha("dense"));
    let saved2 = bclonesaved(&nfs);
    assert!(
        saved2 >= saved + 4 * MIB,
        "the LAZY clone of 4 MiB is no block clone: bclonesaved {saved} -> {saved2}"
    );
    let sx = e.statx("lazy");
    assert_eq!(
        (sx.total_bytes, sx.alloc_type),
        (4 * MIB, alloc::EZT),
        "{sx:?}"
    );
    assert_eq!(
        sx.unique_bytes, 0,
        "a block clone's blocks are not its own: {sx:?}"
    );

    // Full clones by COPY (ZFS's copy_file_range), the same data; a thick one from the
    // sparse `thin`: ALLOCATE of its holes allocates nothing on ZFS, so the clone keeps them
    // and STATX says THIN, as openvaaid's thick clones on ZFS.
    let (st, deltas) = e.clone("dense", "full", GUARDED, 0);
    assert_vix(st, vix::OK);
    assert_eq!(deltas.iter().sum::<u64>(), 4 * MIB);
    assert_eq!(e.sha("full"), e.sha("dense"));
    assert_vix(e.clone("thin", "thick-clone", GUARDED, 0).0, vix::OK);
    assert_eq!(e.sha("thick-clone"), e.sha("thin"));
    assert_eq!(e.statx("thick-clone").alloc_type, alloc::THIN);

    // RESVSPACE: ALLOCATE answers NFS4_OK and allocates nothing: NOT_SUPPORTED, with why
    // and what to do instead; the file as it was.
    let _ = openvaai_host::take_log();
    assert_vix(
        plugin.reserve(id, &e.esx("thick"), None).unwrap(),
        vix::E_NOT_SUPPORTED,
    );
    let said: Vec<String> = openvaai_host::take_log()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert!(
        said.iter()
            .any(|l| l.contains("allocated nothing") && l.contains("refreservation")),
        "{said:?}"
    );
    let (size, used) = stat(&nfs, &export, "thick");
    assert!(
        size == 4 * MIB && used < MIB,
        "thick: {size} bytes, {used} used"
    );
    // The refusals of the path rules hold here too.
    assert_vix(
        plugin.reserve(id, &e.esx("missing"), None).unwrap(),
        vix::E_FILE_NOT_FOUND,
    );
    assert_vix(
        plugin.reserve(id, &e.esx("escape/passwd"), None).unwrap(),
        vix::E_FILE_ACCESS_ERROR,
    );

    // STATX: a hole before the end is THIN (SEEK; no FIEMAP on ZFS), the space the pool
    // accounted after its sync, never a uniqueness ZFS cannot show.
    let (size, used) = stat(&nfs, &export, "thin");
    let sx = e.statx("thin");
    assert_eq!(sx.alloc_type, alloc::THIN, "{sx:?}");
    assert_eq!((sx.total_bytes, sx.alloced_bytes), (size, used), "{sx:?}");
    assert!(used >= 128 << 10 && used < size, "thin: {used} of {size}");
    assert_eq!(sx.unique_bytes, 0, "{sx:?}");
    let sx = e.statx("dense");
    assert_eq!(sx.alloc_type, alloc::EZT, "{sx:?}");
    assert!(sx.alloced_bytes >= 4 * MIB, "dense: {sx:?}");

    // Block cloning off: the running session's LAZY clone meets the server's NOTSUPP and
    // is NOT_SUPPORTED, nothing made, nothing copied.
    nfs.run(&format!("echo 0 > {BCLONE_PARAM}")).unwrap();
    let before = e.listing();
    let saved = bclonesaved(&nfs);
    assert_vix(
        e.clone("dense", "lazy2", LAZY | GUARDED, 0).0,
        vix::E_NOT_SUPPORTED,
    );
    assert_vix(e.clone("dense", "lazy", LAZY, 0).0, vix::E_NOT_SUPPORTED);
    assert_eq!(e.listing(), before, "a refused LAZY clone left a file");
    assert_eq!(bclonesaved(&nfs), saved);
    assert_vix(plugin.end_session(id), vix::OK);

    // A new session probes again: no CLONE, so LAZY is refused at once (CLONEFILE stays
    // supported: full clones by COPY); STATX's uniqueness stays 0 (earlier block clones
    // still share).
    let (id, line) = session(&plugin, &nfs, local.path());
    assert!(line.contains("CLONE no, COPY yes, SEEK yes"), "{line}");
    assert_vix(plugin.support_status(id, prim::CLONEFILE), vix::OK);
    assert_vix(
        plugin.support_status(id, prim::RESVSPACE),
        vix::E_NOT_SUPPORTED,
    );
    let e = Export { id, ..e };
    assert_vix(
        e.clone("dense", "lazy2", LAZY | GUARDED, 0).0,
        vix::E_NOT_SUPPORTED,
    );
    assert_eq!(e.listing(), before);
    assert_eq!(e.statx("lazy").unique_bytes, 0);
    nfs.run(&format!("echo 1 > {BCLONE_PARAM}")).unwrap();
    assert_vix(plugin.end_session(id), vix::OK);
    assert_eq!(clients(&nfs), 0, "knfsd still holds a client");
}
