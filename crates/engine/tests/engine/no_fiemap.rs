//! A filesystem without FIEMAP (tmpfs here; ZFS in production): statx takes the allocation
//! type from SEEK_HOLE and does not claim sharing it cannot see, and a reservation is
//! verified by the blocks it got.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use openvaai_engine::{AllocType, CancelToken, Export};

use crate::util::*;

/// A tmpfs mounted on a temporary directory, unmounted on drop; `None` (skipped) without
/// root, a panic under OPENVAAI_REQUIRE_FS_TESTS=1.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = rustix::process::geteuid().is_root()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !openvaai_testkit::require_fs_tests(),
                "OPENVAAI_REQUIRE_FS_TESTS=1 but tmpfs could not be mounted"
            );
            eprintln!("skipping: tmpfs needs root");
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn statx_without_fiemap_reads_holes_with_seek_and_claims_no_sharing() {
    let Some(t) = Tmpfs::new() else { return };
    let export = Export::open(t.0.path()).unwrap();
    let caps = export.capabilities();
    assert!(!caps.fiemap && !caps.reflink, "tmpfs: {caps:?}");
    write_layout(
        &t.0.path().join("thin"),
        &[Run::Data(MIB), Run::Hole(3 * MIB)],
        1,
    )
    .unwrap();
    write_layout(&t.0.path().join("dense"), &[Run::Data(2 * MIB)], 2).unwrap();
    let thin = export.statx("thin").unwrap();
    assert_eq!(thin.alloc_type, AllocType::Thin);
    assert_eq!(thin.total_bytes, 4 * MIB);
    assert_eq!(thin.alloced_bytes, MIB);
    // Nothing can be shared on a filesystem without reflink: every allocated byte is unique.
    assert_eq!(thin.unique_bytes, thin.alloced_bytes);
    let dense = export.statx("dense").unwrap();
    assert_eq!(
        dense.alloc_type,
        AllocType::Ezt,
        "no hole and no unwritten extents to see"
    );
    assert_eq!(dense.unique_bytes, 2 * MIB);
}

#[test]
fn a_reservation_without_fiemap_is_verified_by_its_blocks() {
    let Some(t) = Tmpfs::new() else { return };
    let export = Export::open(t.0.path()).unwrap();
    assert!(export.capabilities().fallocate, "tmpfs allocates for real");
    let path = t.0.path().join("thick");
    write_layout(&path, &[Run::Data(MIB), Run::Hole(7 * MIB)], 3).unwrap();
    export
        .reserve("thick", &mut |_| {}, &CancelToken::new())
        .unwrap();
    assert!(std::fs::metadata(&path).unwrap().blocks() * 512 >= 8 * MIB);
    // Allocated but not written: the seek sees "holes", the blocks say they are reserved.
    assert_eq!(export.statx("thick").unwrap().alloc_type, AllocType::Lzt);
}
