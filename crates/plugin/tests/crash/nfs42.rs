//! The same workload through the standard NFSv4.2 backend: the plugin on the host speaks
//! NFSv4.2 to the guest's knfsd (qemu's port forward), whose exports `a` and `b` sit on a
//! logged disk of each filesystem (`n-xfs`, `n-ext4`, `n-btrfs`, exported `sync`). The
//! sources are written in the guest before the `ready` mark; each step is marked from the
//! host once the plugin has returned, so a step's `:ok` mark follows every write knfsd made
//! stable for it (the COMMIT after the COPYs, the LINK or RENAME).

use std::path::Path;

use openvaai_host::{Datastore, Plugin};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::FsKind;

use crate::guest::{name, GUEST_BIN, IN_GUEST};
use crate::workload::{run_step, END, EXPORT_A, EXPORT_B, READY, STEPS};

/// The logged disks of this backend.
pub const DISKS: &[(&str, FsKind)] = &[
    ("n-xfs", FsKind::Xfs),
    ("n-ext4", FsKind::Ext4),
    ("n-btrfs", FsKind::Btrfs),
];

const TIMEOUT_MS: u64 = 60_000;

/// Whether a clone knfsd reported done on a `kind` export survives its crash. Not on Btrfs
/// (Debian 12's 6.1): knfsd's LINK and RENAME are not stable when it answers (Btrfs has no
/// `commit_metadata` export operation), and nothing a client can send made them so: a
/// COMMIT of the published file, a SETATTR then a COMMIT of it, and a COMMIT of a fresh
/// scratch file each added no write to the Btrfs log. There the suite judges
/// atomicity only, and counts the points where a name is not yet stable.
pub fn durable(kind: FsKind) -> bool {
    kind != FsKind::Btrfs
}

/// A datastore as ESXi describes an NFS 4.1 mount of `export`, mounted at `local` (a
/// directory holding the backend's marker only).
fn datastore(export: &str, local: &Path) -> Datastore {
    Datastore {
        fs_type: "NFS41".into(),
        fs_version: 41,
        remote_ip: Some("127.0.0.1".into()),
        remote_mount_point: Some(export.into()),
        local_mount_point: Some(local.to_str().unwrap().into()),
    }
}

/// Runs the workload on logged disk `disk` (a `kind` filesystem).
pub fn workload(nfs: &Knfsd, plugin: &Plugin, disk: &str, kind: FsKind) {
    let root = nfs.export(disk);
    nfs.run(&format!(
        "set -e
         for e in {EXPORT_A} {EXPORT_B}; do
             mkdir -p {root}/$e/.openvaai
             echo '# the standard NFSv4.2 backend' > {root}/$e/.openvaai/nfs42
         done
         {IN_GUEST}=1 CRASH_SOURCES={root}/{EXPORT_A} {GUEST_BIN}/crash --ignored --exact \
             {} >/tmp/sources.log 2>&1 || {{ cat /tmp/sources.log; exit 1; }}
         sync",
        crate::inner::SOURCES_FOR_NFS42
    ))
    .unwrap_or_else(|e| panic!("{disk}: writing the sources: {e}"));
    nfs.mark(disk, READY).unwrap();
    let (la, lb) = (
        nfs.esxi_mount("openvaai-crash-a-").unwrap(),
        nfs.esxi_mount("openvaai-crash-b-").unwrap(),
    );
    let dsa = datastore(&format!("{root}/{EXPORT_A}"), la.path());
    let dsb = datastore(&format!("{root}/{EXPORT_B}"), lb.path());
    let start = |ds: &Datastore| {
        plugin
            .start_session(ds, Some(TIMEOUT_MS))
            .unwrap_or_else(|e| panic!("{disk}: StartSession: {}", name(e)))
    };
    let (ida, idb) = (start(&dsa), start(&dsb));
    let (pa, pb) = (la.path().to_str().unwrap(), lb.path().to_str().unwrap());
    for s in STEPS {
        nfs.mark(disk, &s.start_mark()).unwrap();
        let st = run_step(plugin, (ida, pa), (idb, pb), &dsa, s.kind);
        nfs.mark(disk, &s.end_mark(st)).unwrap();
        assert_eq!(name(st), name(s.expected(kind)), "{disk}: {}", s.name);
    }
    plugin.end_session(ida);
    plugin.end_session(idb);
    nfs.mark(disk, END).unwrap();
}
