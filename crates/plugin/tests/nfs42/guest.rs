//! Against real knfsd: the session, the probe, STATX of each kind of file and the refusals,
//! on an XFS export (reflink) and an ext4 export (no reflink).

use std::path::Path;

use openvaai_abi::VixError;
use openvaai_abi::{alloc, prim, vix, SessionId};
use openvaai_host::{Plugin, Progress};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::FsKind;

use crate::{assert_vix, datastore, name, serial};

#[path = "reserve.rs"]
mod reserve;
#[path = "zfs.rs"]
mod zfs;

const MIB: u64 = 1 << 20;

/// The files every export gets, made on the server.
fn prepare(nfs: &Knfsd, export: &str) {
    nfs.run(&format!(
        "set -e; cd {export}
         mkdir -p .openvaai && : > .openvaai/nfs42
         dd if=/dev/urandom of=dense bs=1M count=2 conv=fsync 2>/dev/null
         truncate -s 2M thin && dd if=/dev/urandom of=thin bs=64k count=1 conv=notrunc,fsync 2>/dev/null
         fallocate -l 2M reserved
         : > empty
         mkdir -p dir/sub && dd if=/dev/urandom of=dir/sub/deep bs=4k count=3 2>/dev/null
         ln -s /etc escape
         ln -s dense link
         sync"
    ))
    .unwrap_or_else(|e| panic!("preparing {export}: {e}"));
}

/// The number of NFSv4 clients knfsd holds state for.
fn clients(nfs: &Knfsd) -> usize {
    nfs.run("ls /proc/fs/nfsd/clients | wc -l")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

struct Export<'a> {
    nfs: &'a Knfsd,
    plugin: &'a Plugin,
    /// Where the markers are seen from "ESXi" (a local directory: no NFS mount on the host).
    local: &'a Path,
    export: String,
    id: SessionId,
}

impl Export<'_> {
    fn esx(&self, name: &str) -> String {
        self.local.join(name).to_str().unwrap().to_owned()
    }

    /// STATX of `name`, which must succeed.
    fn statx(&self, name: &str) -> openvaai_abi::StatXResult {
        let r = self.plugin.statx(self.id, &self.esx(name)).unwrap();
        assert_vix(r.common.status, vix::OK);
        r
    }

    /// The status of a STATX that must fail.
    fn statx_err(&self, name: &str) -> openvaai_abi::VixError {
        let r = self.plugin.statx(self.id, &self.esx(name)).unwrap();
        assert_ne!(r.common.status, vix::OK, "STATX {name} succeeded: {r:?}");
        r.common.status
    }

    fn view(&self, name: &str) -> openvaai_testkit::guest::FileView {
        self.nfs.view(&format!("{}/{name}", self.export)).unwrap()
    }
}

fn check_export(nfs: &Knfsd, plugin: &Plugin, disk: &str, kind: FsKind) {
    let export = nfs.export(disk);
    prepare(nfs, &export);
    let local = nfs.esxi_mount("openvaai-nfs42-").unwrap();
    let ds = datastore("127.0.0.1", &export, local.path());
    let _ = openvaai_host::take_log();
    let id = plugin
        .start_session(&ds, Some(20_000))
        .unwrap_or_else(|e| panic!("StartSession on {export}: {}", name(e)));
    let said: Vec<String> = openvaai_host::take_log()
        .into_iter()
        .map(|l| l.text)
        .collect();
    let session_line = said
        .iter()
        .find(|l| l.contains("standard backend"))
        .unwrap_or_else(|| panic!("no session line: {said:?}"));
    let reflink = kind == FsKind::Xfs;
    let want = format!(
        "CLONE {}, COPY yes, SEEK yes, ALLOCATE yes",
        if reflink { "yes" } else { "no" }
    );
    assert!(session_line.contains(&want), "{kind:?}: {session_line}");
    if rustix_is_root() {
        assert!(
            session_line.contains("(from reserved port "),
            "{session_line}"
        );
    }
    assert!(clients(nfs) >= 1, "knfsd holds no client for the session");

    assert_vix(plugin.support_status(id, prim::STATX), vix::OK);
    // CLONEFILE: LAZY where CLONE works, full clones by COPY everywhere (copy.rs).
    assert_vix(plugin.support_status(id, prim::CLONEFILE), vix::OK);
    // XFS and ext4 allocate what ALLOCATE asks for: the probe saw it hold.
    assert_vix(plugin.support_status(id, prim::RESVSPACE), vix::OK);

    let e = Export {
        nfs,
        plugin,
        local: local.path(),
        export: export.clone(),
        id,
    };
    let unique = |v: &openvaai_testkit::guest::FileView| if reflink { 0 } else { v.allocated };

    // Dense: every byte written.
    let (sx, v) = (e.statx("dense"), e.view("dense"));
    assert_eq!(
        (sx.total_bytes, sx.alloced_bytes),
        (v.size, v.allocated),
        "{kind:?} dense"
    );
    assert_eq!(v.size, 2 * MIB);
    assert!(v.holes().is_empty() && v.unwritten_bytes() == 0, "{v:?}");
    assert_eq!(sx.alloc_type, alloc::EZT, "{kind:?} dense");
    assert_eq!(sx.unique_bytes, unique(&v), "{kind:?} dense");

    // Thin: 64 KiB of data in 2 MiB.
    let (sx, v) = (e.statx("thin"), e.view("thin"));
    assert!(!v.holes().is_empty() && v.allocated < v.size, "{v:?}");
    assert_eq!(
        (sx.total_bytes, sx.alloced_bytes),
        (v.size, v.allocated),
        "{kind:?} thin"
    );
    assert_eq!(sx.alloc_type, alloc::THIN, "{kind:?} thin");

    // Reserved: allocated, unwritten.
    let (sx, v) = (e.statx("reserved"), e.view("reserved"));
    assert!(
        v.unwritten_bytes() == v.size && v.allocated >= v.size,
        "{v:?}"
    );
    assert_eq!(
        (sx.total_bytes, sx.alloced_bytes),
        (v.size, v.allocated),
        "{kind:?} reserved"
    );
    assert_eq!(sx.alloc_type, alloc::LZT, "{kind:?} reserved");
    assert_eq!(sx.unique_bytes, unique(&v), "{kind:?} reserved");

    // Empty, and a file three directories down.
    let sx = e.statx("empty");
    assert_eq!(
        (sx.total_bytes, sx.alloced_bytes, sx.alloc_type),
        (0, 0, alloc::EZT)
    );
    let (sx, v) = (e.statx("dir/sub/deep"), e.view("dir/sub/deep"));
    assert_eq!((sx.total_bytes, sx.alloced_bytes), (v.size, v.allocated));
    assert_eq!(sx.total_bytes, 12288);

    // Missing files and wrong types.
    assert_vix(e.statx_err("missing"), vix::E_FILE_NOT_FOUND);
    assert_vix(e.statx_err("dir/missing/deep"), vix::E_FILE_NOT_FOUND);
    assert_vix(e.statx_err("dir"), vix::E_INCORRECT_FILE_TYPE);
    assert_vix(e.statx_err("dense/x"), vix::E_INCORRECT_FILE_TYPE);

    // Escapes: `..` (refused before the wire), a symlink on the way or at the end, the
    // private directory.
    assert_vix(e.statx_err("../../etc/passwd"), vix::E_INVALID_ARG);
    assert_vix(e.statx_err("dir/../../x"), vix::E_INVALID_ARG);
    assert_vix(e.statx_err("escape/passwd"), vix::E_FILE_ACCESS_ERROR);
    assert_vix(e.statx_err("escape"), vix::E_FILE_ACCESS_ERROR);
    assert_vix(e.statx_err("link"), vix::E_FILE_ACCESS_ERROR);
    assert_vix(e.statx_err(".openvaai/nfs42"), vix::E_FILE_ACCESS_ERROR);

    reserve::check(&e);
    check_clones(&e, reflink);

    // EndSession leaves no client on the server.
    assert_vix(plugin.end_session(id), vix::OK);
    assert_eq!(clients(nfs), 0, "knfsd still holds the session's client");

    // A remoteMountPoint whose export has no marker on the server: declined.
    let mut other = ds.clone();
    other.remote_mount_point = Some(format!("{export}/dir"));
    assert_vix(
        plugin.start_session(&other, Some(20_000)).unwrap_err(),
        vix::E_NOT_SUPPORTED,
    );
    assert_eq!(
        clients(nfs),
        0,
        "a StartSession without a marker left a client: {:?}",
        openvaai_host::take_log()
    );
    // An export path with `..` or a symlink in it.
    other.remote_mount_point = Some(format!("{export}/dir/../.."));
    assert_vix(
        plugin.start_session(&other, Some(20_000)).unwrap_err(),
        vix::E_INVALID_ARG,
    );
    other.remote_mount_point = Some(format!("{export}/escape"));
    assert_vix(
        plugin.start_session(&other, Some(20_000)).unwrap_err(),
        vix::E_FILE_ACCESS_ERROR,
    );
    assert_eq!(
        clients(nfs),
        0,
        "a failed StartSession left a client on the server"
    );
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn statx_support_and_refusals_on_knfsd_xfs_and_ext4() {
    let _one = serial();
    let Some(nfs) = Knfsd::builder()
        .disk("xfs", FsKind::Xfs, 512 << 20)
        .disk("ext4", FsKind::Ext4, 512 << 20)
        .secure_disk("secure", FsKind::Ext4, 256 << 20)
        .start()
    else {
        return;
    };
    let mut plugin = Plugin::load(&openvaai_testkit::plugin_so()).unwrap();
    assert_vix(plugin.init(), vix::OK);
    check_export(&nfs, &plugin, "xfs", FsKind::Xfs);
    check_export(&nfs, &plugin, "ext4", FsKind::Ext4);
    secure_export(&nfs, &plugin);
}

impl Export<'_> {
    /// CLONEFILE `src` → `dst` with `flags`; aborts at report number `abort_at` (0: never).
    fn clone(&self, src: &str, dst: &str, flags: i32, abort_at: usize) -> (VixError, Vec<u64>) {
        let mut deltas = Vec::new();
        let mut cb = |d: u64| {
            deltas.push(d);
            deltas.len() != abort_at
        };
        let st = self
            .plugin
            .clone_file(
                self.id,
                &self.esx(src),
                &self.esx(dst),
                flags,
                None,
                Some(Progress {
                    update_bytes: MIB,
                    callback: &mut cb,
                }),
            )
            .unwrap();
        (st, deltas)
    }

    fn sha(&self, name: &str) -> String {
        let out = self
            .nfs
            .run(&format!("sha256sum {}/{name}", self.export))
            .unwrap();
        out.split_whitespace().next().unwrap().to_owned()
    }

    /// The export's names (without the private directory), sorted.
    fn listing(&self) -> Vec<String> {
        let out = self.nfs.run(&format!("ls -a {}", self.export)).unwrap();
        let mut v: Vec<String> = out
            .lines()
            .map(str::to_owned)
            .filter(|n| n != "." && n != ".." && n != ".openvaai" && n != "lost+found")
            .collect();
        v.sort();
        v
    }
}

/// LAZY clones: shared extents on XFS, NOT_SUPPORTED on ext4; GUARDED, overwrite, DRYRUN,
/// abort at the last report, a missing source; never a temporary left.
fn check_clones(e: &Export<'_>, reflink: bool) {
    use openvaai_abi::clone_flag::{DRYRUN, GUARDED, LAZY};
    let before = e.listing();
    let (lazy, guarded) = (LAZY, LAZY | GUARDED);
    if !reflink {
        assert_vix(e.clone("dense", "c1", guarded, 0).0, vix::E_NOT_SUPPORTED);
        assert_eq!(e.listing(), before, "ext4: something was created");
        return;
    }
    let (st, deltas) = e.clone("dense", "c1", guarded, 0);
    assert_vix(st, vix::OK);
    assert_eq!(deltas.iter().sum::<u64>(), 2 * MIB);
    let v = e.view("c1");
    assert_eq!((v.size, v.shared_bytes()), (2 * MIB, 2 * MIB), "{v:?}");
    assert_eq!(e.sha("c1"), e.sha("dense"));
    // GUARDED onto an existing name: refused, the file unchanged.
    assert_vix(
        e.clone("thin", "c1", guarded, 0).0,
        vix::E_FILE_ALREADY_EXISTS,
    );
    assert_eq!(e.sha("c1"), e.sha("dense"));
    // Without GUARDED: replaced.
    assert_vix(e.clone("thin", "c1", lazy, 0).0, vix::OK);
    assert_eq!(e.sha("c1"), e.sha("thin"));
    // DRYRUN: nothing created; GUARDED onto an existing name refused.
    assert_vix(
        e.clone("dense", "c2", LAZY | GUARDED | DRYRUN, 0).0,
        vix::OK,
    );
    assert_vix(
        e.clone("dense", "c1", LAZY | GUARDED | DRYRUN, 0).0,
        vix::E_FILE_ALREADY_EXISTS,
    );
    // Abort at the last report: nothing published.
    let (st, deltas) = e.clone("dense", "c3", guarded, 2);
    assert_vix(st, vix::E_CANCELLED);
    assert_eq!(deltas.len(), 2);
    // A missing source, a missing destination directory.
    assert_vix(
        e.clone("missing", "c4", guarded, 0).0,
        vix::E_FILE_NOT_FOUND,
    );
    assert_vix(
        e.clone("dense", "nodir/c4", guarded, 0).0,
        vix::E_FILE_NOT_FOUND,
    );
    let mut want = before.clone();
    want.push("c1".into());
    want.sort();
    assert_eq!(
        e.listing(),
        want,
        "only c1 is new: no temporaries, nothing of the failures"
    );
    e.nfs.run(&format!("rm {}/c1", e.export)).unwrap();
}

/// A `secure` export (knfsd's default: clients must come from a port below 1024), reached
/// through qemu's user-mode port forward, which keeps the source port of the host's
/// connection: the backend, as root, binds a reserved one.
fn secure_export(nfs: &Knfsd, plugin: &Plugin) {
    let export = nfs.export("secure");
    nfs.run(&format!(
        "mkdir -p {export}/.openvaai && : > {export}/.openvaai/nfs42 && \
         dd if=/dev/urandom of={export}/f bs=4k count=2 2>/dev/null"
    ))
    .unwrap();
    let local = nfs.esxi_mount("openvaai-nfs42-").unwrap();
    let ds = datastore("127.0.0.1", &export, local.path());
    if !rustix_is_root() {
        eprintln!("skipping the secure export: not root, no reserved port");
        return;
    }
    let id = plugin
        .start_session(&ds, Some(20_000))
        .unwrap_or_else(|e| panic!("StartSession on the secure export: {}", name(e)));
    // The server's side of the connection: the client's port as knfsd sees it.
    let conns = nfs.run("netstat -tn | grep ':2049 ' || true").unwrap();
    let peer_ports: Vec<u16> = conns
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(4)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        peer_ports.iter().any(|&p| p < 1024),
        "knfsd sees no reserved client port: {conns}"
    );
    let r = plugin
        .statx(id, local.path().join("f").to_str().unwrap())
        .unwrap();
    assert_vix(r.common.status, vix::OK);
    assert_eq!(r.total_bytes, 8192);
    assert_vix(plugin.end_session(id), vix::OK);
}
