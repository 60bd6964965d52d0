//! Full (not LAZY) clones through the standard backend against knfsd, on XFS (reflink) and
//! ext4: COPY range by range with progress, COMMIT, SKIPZEROES and thick destinations,
//! GUARDED, overwrite, DRYRUN, aborts, refusals, a cross-export clone, four racing GUARDED
//! clones, a server frozen mid-copy, and the temporaries crashed hosts leave — each judged
//! by the server's own view (`Knfsd::view`: size, allocation, extents; `sha256sum`;
//! listings; knfsd's operation counters).

use openvaai_abi::clone_flag::{DRYRUN, GUARDED, LAZY, SKIPZEROES, SRCDATASTORE_VALID};
use openvaai_abi::{prim, vix, SessionId, VixError};
use openvaai_host::{Datastore, Plugin, Progress};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::FsKind;

use crate::{assert_vix, datastore, name, serial};

const MIB: u64 = 1 << 20;
/// The server's marker holds this comment (not empty: the probes' CLONE and COPY of it onto
/// itself must not change it).
const MARKER: &str = "the standard NFSv4.2 backend";
/// The session timeout of these tests.
const TIMEOUT_MS: u64 = 20_000;

/// knfsd's operation numbers (`/proc/net/rpc/nfsd` `proc4ops`).
const OP_COMMIT: usize = 5;
const OP_COPY: usize = 60;

/// One datastore on one export of the guest, with a session.
pub struct Store<'a> {
    pub nfs: &'a Knfsd,
    pub plugin: &'a Plugin,
    local: tempfile::TempDir,
    pub export: String,
    pub ds: Datastore,
    pub id: SessionId,
}

/// The files every export gets, made on the server.
pub fn prepare(nfs: &Knfsd, export: &str) {
    nfs.run(&format!(
        "set -e; cd {export}
         mkdir -p .openvaai && echo '# {MARKER}' > .openvaai/nfs42
         dd if=/dev/urandom of=dense bs=1M count=6 conv=fsync 2>/dev/null
         chmod 2640 dense
         truncate -s 8M sparse
         dd if=/dev/urandom of=sparse bs=1M count=1 conv=notrunc 2>/dev/null
         dd if=/dev/urandom of=sparse bs=1M seek=4 count=1 conv=notrunc,fsync 2>/dev/null
         mkdir -p dir
         ln -s /etc escape
         ln -s dense link
         sync"
    ))
    .unwrap_or_else(|e| panic!("preparing {export}: {e}"));
}

impl<'a> Store<'a> {
    pub fn open(nfs: &'a Knfsd, plugin: &'a Plugin, disk: &str) -> Store<'a> {
        Store::open_with(nfs, plugin, disk, TIMEOUT_MS)
    }

    /// With a session timeout of `timeout_ms`.
    pub fn open_with(nfs: &'a Knfsd, plugin: &'a Plugin, disk: &str, timeout_ms: u64) -> Store<'a> {
        let export = nfs.export(disk);
        let local = nfs.esxi_mount("openvaai-nfs42-").unwrap();
        let ds = datastore("127.0.0.1", &export, local.path());
        let id = plugin
            .start_session(&ds, Some(timeout_ms))
            .unwrap_or_else(|e| panic!("StartSession on {export}: {}", name(e)));
        Store {
            nfs,
            plugin,
            local,
            export,
            ds,
            id,
        }
    }

    pub fn esx(&self, name: &str) -> String {
        self.local.path().join(name).to_str().unwrap().to_owned()
    }

    /// CLONEFILE `src` → `dst` with `flags` on session `id`, `update_bytes` 1 MiB; the
    /// callback `at(n)` is called at report `n` (from 1) and answers whether to go on.
    pub fn clone_with(
        &self,
        id: SessionId,
        src: &str,
        dst: &str,
        flags: i32,
        src_ds: Option<&Datastore>,
        at: &mut dyn FnMut(usize) -> bool,
    ) -> (VixError, Vec<u64>) {
        let mut deltas = Vec::new();
        let mut cb = |d: u64| {
            deltas.push(d);
            at(deltas.len())
        };
        let st = self
            .plugin
            .clone_file(
                id,
                &self.esx(src),
                &self.esx(dst),
                flags,
                src_ds,
                Some(Progress {
                    update_bytes: MIB,
                    callback: &mut cb,
                }),
            )
            .unwrap();
        (st, deltas)
    }

    /// CLONEFILE, aborting at report `abort_at` (0: never).
    pub fn clone(&self, src: &str, dst: &str, flags: i32, abort_at: usize) -> (VixError, Vec<u64>) {
        self.clone_with(self.id, src, dst, flags, None, &mut |n| n != abort_at)
    }

    pub fn sha(&self, name: &str) -> String {
        let out = self
            .nfs
            .run(&format!("sha256sum {}/{name}", self.export))
            .unwrap();
        out.split_whitespace().next().unwrap().to_owned()
    }

    /// The permission bits, in octal, as `stat` shows them.
    pub fn mode(&self, name: &str) -> String {
        let out = self
            .nfs
            .run(&format!("stat -c %a {}/{name}", self.export))
            .unwrap();
        out.trim().to_owned()
    }

    pub fn view(&self, name: &str) -> openvaai_testkit::guest::FileView {
        self.nfs.view(&format!("{}/{name}", self.export)).unwrap()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.nfs
            .exec(&format!("test -e {}/{name}", self.export))
            .unwrap()
            .status
            == 0
    }

    /// The names in `dir` of the export (`.`: its root), sorted, without `lost+found`.
    pub fn listing(&self, dir: &str) -> Vec<String> {
        let out = self
            .nfs
            .run(&format!("ls -a {}/{dir}", self.export))
            .unwrap();
        let mut v: Vec<String> = out
            .lines()
            .map(str::to_owned)
            .filter(|n| n != "." && n != ".." && n != "lost+found")
            .collect();
        v.sort();
        v
    }

    /// The backend's temporaries in the export's `.openvaai/`.
    pub fn temporaries(&self) -> Vec<String> {
        self.listing(".openvaai")
            .into_iter()
            .filter(|n| n.starts_with("nfs42-tmp-"))
            .collect()
    }

    pub fn remove(&self, names: &[&str]) {
        let paths: Vec<String> = names
            .iter()
            .map(|n| format!("{}/{n}", self.export))
            .collect();
        self.nfs.run(&format!("rm -f {}", paths.join(" "))).unwrap();
    }
}

impl Drop for Store<'_> {
    fn drop(&mut self) {
        let _ = self.plugin.end_session(self.id);
    }
}

/// knfsd's count of operation `op` so far.
fn served(nfs: &Knfsd, op: usize) -> u64 {
    let stats = nfs.run("cat /proc/net/rpc/nfsd").unwrap();
    let line = stats
        .lines()
        .find(|l| l.starts_with("proc4ops "))
        .expect("knfsd's proc4ops counters");
    line.split_whitespace()
        .nth(2 + op)
        .and_then(|n| n.parse().ok())
        .expect("an operation counter")
}

pub fn guest(disks: &[(&str, FsKind)]) -> Option<Knfsd> {
    disks
        .iter()
        .fold(Knfsd::builder(), |b, (n, k)| b.disk(n, *k, 512 << 20))
        .start()
}

pub fn loaded() -> Plugin {
    let mut plugin = Plugin::load(&openvaai_testkit::plugin_so()).unwrap();
    assert_vix(plugin.init(), vix::OK);
    plugin
}

#[test]
fn full_clones_by_copy_on_knfsd_xfs_and_ext4() {
    let _one = serial();
    let Some(nfs) = guest(&[("xfs", FsKind::Xfs), ("ext4", FsKind::Ext4)]) else {
        return;
    };
    let plugin = loaded();
    let mut stores = Vec::new();
    for (disk, kind) in [("xfs", FsKind::Xfs), ("ext4", FsKind::Ext4)] {
        prepare(&nfs, &nfs.export(disk));
        let s = Store::open(&nfs, &plugin, disk);
        assert_vix(plugin.support_status(s.id, prim::CLONEFILE), vix::OK);
        check_says(&s, kind);
        full_thick_thin(&s, kind);
        refusals_and_aborts(&s);
        assert!(s.temporaries().is_empty(), "{:?}", s.temporaries());
        stores.push(s);
    }
    cross_export(&stores[0], &stores[1]);
    for s in &stores {
        let marker = s
            .nfs
            .run(&format!("cat {}/.openvaai/nfs42", s.export))
            .unwrap();
        assert_eq!(
            marker,
            format!("# {MARKER}\n"),
            "the probes changed the marker"
        );
    }
}

/// SRCDATASTORE_VALID: a source on the other export of the same server is copied in this
/// session; LAZY across two filesystems, and a source on another server, are NOT_SUPPORTED.
fn cross_export(xfs: &Store<'_>, ext4: &Store<'_>) {
    let before = xfs.listing(".");
    let from_ext4 = |dst: &str, flags: i32, src_ds: Option<&Datastore>| {
        let path = ext4.esx("sparse");
        let mut cb = |_: u64| true;
        xfs.plugin
            .clone_file(
                xfs.id,
                &path,
                &xfs.esx(dst),
                flags,
                src_ds,
                Some(Progress {
                    update_bytes: MIB,
                    callback: &mut cb,
                }),
            )
            .unwrap()
    };
    let flags = GUARDED | SRCDATASTORE_VALID;
    assert_vix(from_ext4("cross", flags, Some(&ext4.ds)), vix::OK);
    let (a, b) = (xfs.sha("cross"), ext4.sha("sparse"));
    assert_eq!(a, b, "the cross-export clone's data");
    let v = xfs.view("cross");
    assert!(v.holes().is_empty() && v.shared_bytes() == 0, "{v:?}");
    assert_vix(
        from_ext4("cross-lazy", flags | LAZY, Some(&ext4.ds)),
        vix::E_NOT_SUPPORTED,
    );
    assert_vix(
        from_ext4("cross-dry", flags | DRYRUN, Some(&ext4.ds)),
        vix::OK,
    );
    assert_vix(from_ext4("cross-none", flags, None), vix::E_INVALID_ARG);
    let mut elsewhere = ext4.ds.clone();
    elsewhere.remote_ip = Some("127.0.0.2".into());
    assert_vix(
        from_ext4("cross-other", flags, Some(&elsewhere)),
        vix::E_NOT_SUPPORTED,
    );
    let mut want = before;
    want.push("cross".into());
    want.sort();
    assert_eq!(xfs.listing("."), want);
    assert!(xfs.temporaries().is_empty(), "{:?}", xfs.temporaries());
}

/// `openvaai check` on the datastore, as an admin runs it: the backend line with the
/// probe's findings, and what CLONEFILE offers there.
fn check_says(s: &Store<'_>, kind: FsKind) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "-q", "-p", "openvaai-cli", "--bin", "openvaai"])
        .status()
        .unwrap();
    assert!(built.success(), "building the CLI");
    let out = std::process::Command::new(openvaai_testkit::cli_bin())
        .args(["check", "-d"])
        .arg(s.local.path())
        .args(["--nas-ip", "127.0.0.1", "--nas-path", &s.export])
        .arg("--plugin")
        .arg(openvaai_testkit::plugin_so())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let (probe, clones) = match kind {
        FsKind::Xfs => (
            "CLONE yes, COPY yes, SEEK yes",
            "supported: full and lazy (copy-on-write) clones",
        ),
        _ => (
            "CLONE no, COPY yes, SEEK yes",
            "supported: full clones; lazy clones need reflink",
        ),
    };
    assert!(
        text.contains(probe) && text.contains(clones),
        "{kind:?}:\n{text}"
    );
}

/// Full clones of a dense and a sparse file, thick and with SKIPZEROES.
fn full_thick_thin(s: &Store<'_>, kind: FsKind) {
    let before = s.listing(".");
    let (copies, commits) = (served(s.nfs, OP_COPY), served(s.nfs, OP_COMMIT));
    let (st, deltas) = s.clone("dense", "full", GUARDED, 0);
    assert_vix(st, vix::OK);
    // 6 MiB in reports of exactly 1 MiB: every `updateBytes`, summing to the size.
    assert_eq!(deltas, vec![MIB; 6], "{kind:?}");
    assert_eq!(s.sha("full"), s.sha("dense"));
    assert_eq!(s.mode("full"), "2640", "the source's mode");
    let v = s.view("full");
    assert_eq!(v.size, 6 * MIB);
    assert!(v.holes().is_empty(), "{kind:?}: {v:?}");
    // knfsd's COPY is `vfs_copy_file_range`, which reflinks where it can: on XFS the full
    // clone shares the source's blocks (docs/nfs42.md); on ext4 it is a real copy.
    let shared = if kind == FsKind::Xfs { 6 * MIB } else { 0 };
    assert_eq!(v.shared_bytes(), shared, "{kind:?}: {v:?}");
    // knfsd copies at most 4 MiB per COPY: 6 MiB took two (short count looped), and a
    // COMMIT followed (knfsd answers a synchronous COPY UNSTABLE).
    assert_eq!(served(s.nfs, OP_COPY) - copies, 2, "{kind:?}");
    assert!(served(s.nfs, OP_COMMIT) > commits, "{kind:?}: no COMMIT");

    // Thick (no SKIPZEROES): the source's holes are allocated, none left.
    let src = s.view("sparse");
    assert_eq!(src.holes().len(), 2, "{src:?}");
    let (st, deltas) = s.clone("sparse", "thick", GUARDED, 0);
    assert_vix(st, vix::OK);
    assert_eq!(deltas.iter().sum::<u64>(), 8 * MIB);
    assert!(deltas.iter().all(|&d| d == MIB), "{deltas:?}");
    assert_eq!(s.sha("thick"), s.sha("sparse"));
    let v = s.view("thick");
    assert!(v.holes().is_empty(), "{kind:?} thick: {v:?}");
    assert!(v.allocated >= 8 * MIB, "{kind:?} thick: {v:?}");
    assert_eq!(
        v.unwritten_bytes(),
        6 * MIB,
        "{kind:?}: the holes, reserved"
    );

    // SKIPZEROES: only the data is copied, the holes stay.
    let (st, deltas) = s.clone("sparse", "thin", GUARDED | SKIPZEROES, 0);
    assert_vix(st, vix::OK);
    assert_eq!(deltas.iter().sum::<u64>(), 8 * MIB);
    assert_eq!(s.sha("thin"), s.sha("sparse"));
    let v = s.view("thin");
    assert_eq!(v.holes(), src.holes(), "{kind:?} thin: {v:?}");
    assert!(v.allocated < 3 * MIB, "{kind:?} thin: {v:?}");

    // Overwrite (no GUARDED): replaced atomically.
    assert_vix(s.clone("sparse", "full", 0, 0).0, vix::OK);
    assert_eq!(s.sha("full"), s.sha("sparse"));
    let mut want = before;
    want.extend(["full", "thick", "thin"].map(String::from));
    want.sort();
    assert_eq!(s.listing("."), want, "{kind:?}");
    s.remove(&["thick", "thin"]);
}

/// GUARDED onto an existing file, DRYRUN, aborts, missing sources, escapes: each refused as
/// the daemon refuses it, nothing left behind.
fn refusals_and_aborts(s: &Store<'_>) {
    let before = s.listing(".");
    let sha = s.sha("full");
    let copies = served(s.nfs, OP_COPY);
    assert_vix(
        s.clone("dense", "full", GUARDED, 0).0,
        vix::E_FILE_ALREADY_EXISTS,
    );
    assert_eq!(s.sha("full"), sha, "GUARDED changed the file");
    // DRYRUN: everything checked, nothing created; GUARDED onto an existing name refused.
    assert_vix(s.clone("dense", "dry", GUARDED | DRYRUN, 0).0, vix::OK);
    assert_vix(s.clone("dense", "full", DRYRUN, 0).0, vix::OK);
    assert_vix(
        s.clone("dense", "full", GUARDED | DRYRUN, 0).0,
        vix::E_FILE_ALREADY_EXISTS,
    );
    assert_vix(
        s.clone("missing", "dry", GUARDED | DRYRUN, 0).0,
        vix::E_FILE_NOT_FOUND,
    );
    assert_vix(
        s.clone("dense", "nodir/dry", DRYRUN, 0).0,
        vix::E_FILE_NOT_FOUND,
    );
    assert_eq!(served(s.nfs, OP_COPY), copies, "a dry run copied");
    // Aborts at the first and at the last report: CANCELLED, nothing published.
    let (st, deltas) = s.clone("dense", "c1", GUARDED, 1);
    assert_vix(st, vix::E_CANCELLED);
    assert_eq!(deltas.len(), 1);
    let (st, deltas) = s.clone("dense", "c1", GUARDED, 6);
    assert_vix(st, vix::E_CANCELLED);
    assert_eq!(deltas.len(), 6);
    let (st, _) = s.clone("sparse", "full", 0, 8);
    assert_vix(st, vix::E_CANCELLED);
    assert_eq!(s.sha("full"), sha, "an aborted overwrite replaced the file");
    // Missing source, directory source, the source itself, escapes.
    assert_vix(
        s.clone("missing", "c2", GUARDED, 0).0,
        vix::E_FILE_NOT_FOUND,
    );
    assert_vix(
        s.clone("dir", "c2", GUARDED, 0).0,
        vix::E_INCORRECT_FILE_TYPE,
    );
    assert_vix(s.clone("dense", "dense", 0, 0).0, vix::E_INVALID_ARG);
    assert_vix(s.clone("dense", "dir", 0, 0).0, vix::E_INCORRECT_FILE_TYPE);
    assert_vix(s.clone("../x/dense", "c2", 0, 0).0, vix::E_INVALID_ARG);
    assert_vix(s.clone("dense", "dir/../../c2", 0, 0).0, vix::E_INVALID_ARG);
    assert_vix(s.clone("link", "c2", 0, 0).0, vix::E_FILE_ACCESS_ERROR);
    assert_vix(
        s.clone("escape/passwd", "c2", 0, 0).0,
        vix::E_FILE_ACCESS_ERROR,
    );
    assert_vix(
        s.clone("dense", "escape/c2", 0, 0).0,
        vix::E_FILE_ACCESS_ERROR,
    );
    assert_vix(
        s.clone(".openvaai/nfs42", "c2", 0, 0).0,
        vix::E_FILE_ACCESS_ERROR,
    );
    assert_eq!(s.listing("."), before, "something of the failures is left");
    assert!(!s.exists("c1") && !s.exists("dry"));
}

/// A thick clone where the server cannot ALLOCATE: an ext2 filesystem (no extents, so
/// `fallocate` is EOPNOTSUPP and knfsd answers NFS4ERR_NOTSUPP) made and exported in the
/// guest (busybox's `mke2fs`). The holes are then COPYed too, and the server's copy writes them as zeros: the
/// clone is still thick, with the same data.
#[test]
fn a_thick_clone_without_allocate_copies_the_holes() {
    let _one = serial();
    let Some(nfs) = Knfsd::builder().disk("xfs", FsKind::Xfs, 512 << 20).start() else {
        return;
    };
    nfs.run(
        "set -e; truncate -s 64M /ext2.img; mke2fs -F /ext2.img >/dev/null
         mkdir -p /export/ext2; mount -o loop -t ext2 /ext2.img /export/ext2
         exportfs -o rw,no_root_squash,insecure,sync,no_subtree_check,fsid=9 '*:/export/ext2'",
    )
    .unwrap();
    prepare(&nfs, "/export/ext2");
    assert_eq!(
        nfs.view("/export/ext2/sparse").unwrap().holes().len(),
        2,
        "the sparse source on ext2"
    );
    let plugin = loaded();
    let s = Store::open(&nfs, &plugin, "ext2");
    let _ = openvaai_host::take_log();
    let (st, deltas) = s.clone("sparse", "thick", GUARDED, 0);
    assert_vix(st, vix::OK);
    assert_eq!(deltas.iter().sum::<u64>(), 8 * MIB);
    assert_eq!(s.sha("thick"), s.sha("sparse"));
    let v = s.view("thick");
    assert!(v.holes().is_empty() && v.allocated >= 8 * MIB, "{v:?}");
    let said: Vec<String> = openvaai_host::take_log()
        .into_iter()
        .map(|l| l.text)
        .collect();
    // The backend met NFS4ERR_NOTSUPP from ALLOCATE (it says so) and copied the holes.
    assert!(
        said.iter()
            .any(|l| l.contains("ALLOCATE is not supported here")),
        "{said:?}"
    );
    // With SKIPZEROES the holes stay.
    assert_vix(
        s.clone("sparse", "thin", GUARDED | SKIPZEROES, 0).0,
        vix::OK,
    );
    assert_eq!(s.view("thin").holes(), s.view("sparse").holes());
    assert!(s.temporaries().is_empty(), "{:?}", s.temporaries());
}
