//! A full filesystem mid-clone and mid-reserve: a small XFS export receives a clone from an
//! export on another filesystem (SRCDATASTORE_VALID, one daemon serving both) that cannot
//! fit, and a reservation larger than its free space.

use std::os::unix::fs::{FileExt, MetadataExt};

use openvaai_abi::{clone_flag as f, vix};
use openvaai_testkit::{write_layout, FsKind, Run};

use crate::util::*;

/// A 1 GiB filesystem with the source export and a 320 MiB one (XFS's smallest) with the destination.
fn small_and_big() -> Option<Fixture> {
    let big = test_fs(FsKind::Xfs, 1 << 30)?;
    let small = test_fs(FsKind::Xfs, 320 * MIB)?;
    let exports = [
        (big.path().join("src"), ""),
        (small.path().join("small"), ""),
    ];
    Some(fixture(vec![big, small], &exports, ""))
}

#[test]
fn a_clone_that_cannot_fit_is_disk_full_and_leaves_nothing() {
    let _machine = shared();
    let Some(fx) = small_and_big() else {
        return;
    };
    let (src, dst) = (&fx.exports[0], &fx.exports[1]);
    write_layout(&src.join("big.vmdk"), &[Run::Data(384 * MIB)], 95).unwrap();
    let sum_before = checksum(&src.join("big.vmdk"));
    let free_before = free_bytes(dst);
    assert!(free_before < 384 * MIB, "{} MiB free", free_before / MIB);
    let id = fx.session(1);
    let src_ds = datastore(src);
    for flags in [0, f::SKIPZEROES, f::GUARDED] {
        let mut reported = 0;
        let (st, _) = clone_with(
            &fx.plugin,
            id,
            &fx.s(0, "big.vmdk"),
            &fx.s(1, "full.vmdk"),
            flags | f::SRCDATASTORE_VALID,
            Some(&src_ds),
            32 * MIB,
            &mut |d| {
                reported += d;
                true
            },
        );
        assert_vix(st, vix::E_DISK_FULL);
        assert!(reported < 384 * MIB, "flags {flags}: reported {reported}");
        assert_eq!(listing(dst), Vec::<String>::new(), "flags {flags}");
        assert_no_temporaries(dst);
        let free_after = wait_free_back(dst, free_before, 4 * MIB);
        assert!(
            free_after + 4 * MIB >= free_before,
            "flags {flags}: {} MiB free before, {} MiB after",
            free_before / MIB,
            free_after / MIB
        );
    }
    assert_eq!(checksum(&src.join("big.vmdk")), sum_before, "source intact");
    assert_eq!(listing(src), ["big.vmdk"]);
    // A clone that fits still works afterwards.
    write_layout(&src.join("fits.vmdk"), &[Run::Data(32 * MIB)], 96).unwrap();
    let st = fx
        .plugin
        .clone_file(
            id,
            &fx.s(0, "fits.vmdk"),
            &fx.s(1, "fits.vmdk"),
            f::SRCDATASTORE_VALID,
            Some(&src_ds),
            None,
        )
        .unwrap();
    assert_vix(st, vix::OK);
    openvaai_testkit::assert_same_content(&src.join("fits.vmdk"), &dst.join("fits.vmdk"));
}

/// What a reservation larger than the free space does: DISK_FULL, the file's size and data
/// unchanged. Returns the file's allocation before, after, and the free space before and
/// after, for the report.
fn failed_reserve(fx: &Fixture) -> (u64, u64, u64, u64) {
    let dst = &fx.exports[1];
    let file = dst.join("thick.vmdk");
    let size = 512 * MIB;
    write_layout(&file, &[Run::Data(MIB), Run::Hole(size - MIB)], 97).unwrap();
    let mut head = vec![0u8; MIB as usize];
    std::fs::File::open(&file)
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    let before = std::fs::metadata(&file).unwrap().blocks() * 512;
    let free_before = free_bytes(dst);
    let id = fx.session(1);
    let st = fx.plugin.reserve(id, &fx.s(1, "thick.vmdk"), None).unwrap();
    assert_vix(st, vix::E_DISK_FULL);
    let m = std::fs::metadata(&file).unwrap();
    assert_eq!(m.len(), size, "size unchanged");
    let mut got = vec![0u8; MIB as usize];
    std::fs::File::open(&file)
        .unwrap()
        .read_exact_at(&mut got, 0)
        .unwrap();
    assert!(got == head, "data unchanged");
    let mut tail = vec![1u8; MIB as usize];
    std::fs::File::open(&file)
        .unwrap()
        .read_exact_at(&mut tail, size - MIB)
        .unwrap();
    assert!(
        tail.iter().all(|&b| b == 0),
        "the rest still reads as zeros"
    );
    assert_eq!(listing(dst), ["thick.vmdk"]);
    assert_no_temporaries(dst);
    let after = m.blocks() * 512;
    let free_after = wait_free_back(dst, free_before, 0);
    println!(
        "reserve of 512 MiB on a 320 MiB filesystem: DISK_FULL; allocated {} MiB before, {} \
         MiB after; free {} MiB before, {} MiB after",
        before / MIB,
        after / MIB,
        free_before / MIB,
        free_after / MIB
    );
    (before, after, free_before, free_after)
}

#[test]
fn a_reserve_larger_than_the_free_space_is_disk_full_and_keeps_the_data() {
    let _machine = shared();
    let Some(fx) = small_and_big() else {
        return;
    };
    failed_reserve(&fx);
}

#[test]

fn a_reserve_that_fails_gives_its_space_back() {
    let _machine = shared();
    let Some(fx) = small_and_big() else {
        return;
    };
    let (before, after, free_before, free_after) = failed_reserve(&fx);
    assert_eq!(after, before, "the file's allocation is what it was");
    assert!(
        free_after + 4 * MIB >= free_before,
        "the filesystem is left full: {} MiB free before, {} MiB after",
        free_before / MIB,
        free_after / MIB
    );
}
