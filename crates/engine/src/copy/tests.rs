//! The choice of copy path per filesystem, and an offloaded-style copy carried out by
//! `copy_file_range` on a local file (the real NFS server-side COPY needs an NFS mount: see
//! docs/engine.md).

use std::os::fd::AsFd;

use super::{copy, Cfr, CopyPlan};
use crate::progress::{CancelToken, Reporter};
use crate::Capabilities;

fn caps(fs_type: &str, reflink: bool, copy_offload: bool) -> Capabilities {
    Capabilities {
        reflink,
        fallocate: true,
        fiemap: true,
        unwritten_extents: true,
        fs_type: fs_type.into(),
        same_fs_id: 1,
        copy_offload,
    }
}

#[test]
fn full_clones_offload_on_nfs_and_ceph_only() {
    let plan =
        |c: &Capabilities, same, skip| CopyPlan::for_clone(c, same, skip, 4096).copy_file_range;
    let nfs = caps("nfs", false, true);
    let ceph = caps("ceph", false, true);
    assert_eq!(plan(&nfs, true, false), Cfr::Offloaded);
    assert_eq!(plan(&ceph, true, false), Cfr::Offloaded);
    // A thin copy looks at every block; another filesystem cannot be copied below us.
    assert_eq!(plan(&nfs, true, true), Cfr::No);
    assert_eq!(plan(&nfs, false, false), Cfr::No);
    // Local: ext4 copies in the kernel; reflinking filesystems never (shared extents).
    assert_eq!(plan(&caps("ext4", false, false), true, false), Cfr::Local);
    assert_eq!(plan(&caps("xfs", true, false), true, false), Cfr::No);
    assert_eq!(plan(&caps("btrfs", true, false), true, false), Cfr::No);
    assert_eq!(plan(&caps("zfs", false, false), true, false), Cfr::No);
}

/// An offloaded plan copies by `copy_file_range` even where direct I/O would be taken, and
/// gets every byte and hole right (on the temporary directory's filesystem).
#[test]
fn an_offloaded_plan_copies_data_and_holes() {
    let dir = tempfile::tempdir().unwrap();
    let size = 24u64 << 20;
    let src = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("src"))
        .unwrap();
    src.set_len(size).unwrap();
    let a: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::os::unix::fs::FileExt::write_all_at(&src, &a, 1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&src, &a, 20 << 20).unwrap();
    let dst = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("dst"))
        .unwrap();
    let plan = CopyPlan {
        skip_zeroes: false,
        zero_block: 4096,
        copy_file_range: Cfr::Offloaded,
    };
    let mut seen = 0u64;
    let mut cb = |p: crate::Progress| seen = p.done;
    let mut reporter = Reporter::new(&mut cb, size);
    let written = copy(
        src.as_fd(),
        dst.as_fd(),
        size,
        &plan,
        &mut reporter,
        &CancelToken::new(),
        "dst",
    )
    .unwrap();
    reporter.finish();
    assert!(written >= 2 * a.len() as u64, "{written}");
    assert_eq!(seen, size);
    assert_eq!(
        std::fs::read(dir.path().join("src")).unwrap(),
        std::fs::read(dir.path().join("dst")).unwrap()
    );
    // Not switched to O_DIRECT (the direct path would have set it on the destination).
    let fl = rustix::fs::fcntl_getfl(&dst).unwrap();
    assert!(!fl.contains(rustix::fs::OFlags::DIRECT));
}
