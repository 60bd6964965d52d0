//! Each clone mode on each filesystem: sharing, thickness, thinness, content.

use openvaai_engine::{AllocType, ErrorKind};

use crate::util::*;

/// 1 MiB data, 2 MiB hole, 1 MiB explicit zeros, 1 MiB data, 300 KiB + 17 bytes data.
fn source_layout() -> Vec<Run> {
    vec![
        Run::Data(MIB),
        Run::Hole(2 * MIB),
        Run::Zero(MIB),
        Run::Data(MIB),
        Run::Hole(MIB),
        Run::Data(300 * KIB + 17),
    ]
}

mod lazy_shares_extents_or_is_not_supported {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let size = write_layout(&env.p("src"), &source_layout(), 1).unwrap();
        let before = env.statx_synced("src");
        let saved = env.zfs().then(|| env.bclone_saved());
        let r = env.clone("src", "dst", flags(false, true, false, false));
        if !env.kind().reflinks() {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::NotSupported);
            assert_eq!(
                names(env.export.root()),
                vec!["src"],
                "no destination, no temporary"
            );
            return;
        }
        let out = r.unwrap();
        assert_eq!(out.bytes, size);
        // The bytes the source has on disk: ZFS stored the zero run as a hole.
        let on_disk = if env.zfs() {
            2 * MIB + 300 * KIB
        } else {
            3 * MIB
        };
        assert!(out.copied >= on_disk, "copied {}", out.copied);
        assert_same_content(&env.p("src"), &env.p("dst"));
        if let Some(saved) = saved {
            // A block clone: the pool shares every data block (the zeros were compressed
            // into holes). Unique bytes are always 0 there (nothing shows sharing per file).
            let data = 2 * MIB + 300 * KIB;
            let grew = env.bclone_saved() - saved;
            assert!(
                grew >= data,
                "bclonesaved grew by {grew}, the data is {data}"
            );
            let after = env.statx_synced("src");
            assert_eq!((before.unique_bytes, after.unique_bytes), (0, 0));
            assert_eq!(after.alloced_bytes, before.alloced_bytes);
            assert_eq!(env.export.statx("dst").unwrap().alloc_type, AllocType::Thin);
            return;
        }
        for f in ["src", "dst"] {
            let (total, shared, _) = extents(&env.p(f));
            assert!(
                total > 0 && shared == total,
                "{f}: {shared} of {total} bytes shared"
            );
        }
        // The source's unique bytes drop once its extents are shared.
        let after = env.export.statx("src").unwrap();
        assert!(before.unique_bytes >= 3 * MIB, "{before:?}");
        assert!(
            after.unique_bytes < before.unique_bytes / 4,
            "{before:?} -> {after:?}"
        );
        assert_eq!(after.alloced_bytes, before.alloced_bytes);
        // The clone stays thin where the source was.
        assert_eq!(env.export.statx("dst").unwrap().alloc_type, AllocType::Thin);
    });
}

mod full_copy_is_thick_and_unshared {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let size = write_layout(&env.p("src"), &source_layout(), 2).unwrap();
        let saved = env.zfs().then(|| env.bclone_saved());
        let out = env
            .clone("src", "dst", flags(false, false, false, false))
            .unwrap();
        assert_eq!(out.bytes, size);
        assert_same_content(&env.p("src"), &env.p("dst"));
        if let Some(saved) = saved {
            // On ZFS an independent copy, but not thick (docs/engine.md, On ZFS): fallocate
            // allocates nothing and the zeros compress into holes, so the holes stay.
            assert_eq!(env.bclone_saved(), saved, "a full copy shares blocks");
            let st = env.statx_synced("dst");
            assert_eq!(st.alloc_type, AllocType::Thin, "{st:?}");
            let data = 2 * MIB + 300 * KIB;
            assert!(
                st.alloced_bytes >= data && st.alloced_bytes < size,
                "{st:?}"
            );
            assert_eq!(st.unique_bytes, 0, "{st:?}");
            return;
        }
        let (total, shared, _) = extents(&env.p("dst"));
        assert_eq!(shared, 0, "a full copy shares nothing");
        assert!(
            total >= size,
            "every byte is provisioned: {total} of {size}"
        );
        let (_, src_shared, _) = extents(&env.p("src"));
        assert_eq!(src_shared, 0);
        let st = env.export.statx("dst").unwrap();
        assert_ne!(st.alloc_type, AllocType::Thin, "{st:?}");
        assert!(st.alloced_bytes >= size, "{st:?}");
        assert_eq!(st.unique_bytes, st.alloced_bytes);
    });
}

mod skip_zeroes_keeps_holes_and_zero_blocks_unallocated {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let size = write_layout(&env.p("src"), &source_layout(), 3).unwrap();
        let saved = env.zfs().then(|| env.bclone_saved());
        let out = env
            .clone("src", "dst", flags(false, false, false, true))
            .unwrap();
        assert_eq!(out.bytes, size);
        assert_same_content(&env.p("src"), &env.p("dst"));
        let data = 2 * MIB + 300 * KIB + 17;
        assert!(
            out.copied >= data && out.copied < data + 64 * KIB,
            "copied {}",
            out.copied
        );
        match saved {
            Some(saved) => assert_eq!(env.bclone_saved(), saved, "a copy shares blocks"),
            None => {
                let (total, shared, _) = extents(&env.p("dst"));
                assert_eq!(shared, 0);
                assert!(total < data + 256 * KIB, "extents {total}");
            }
        }
        // Only the data runs are allocated: not the hole, not the explicit zeros.
        let alloc = allocated(&env.p("dst"));
        assert!(alloc < data + 256 * KIB, "allocated {alloc}, data {data}");
        let st = env.export.statx("dst").unwrap();
        assert_eq!(st.alloc_type, AllocType::Thin);
        // The zero run at [3 MiB, 4 MiB) is a hole in the copy.
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(env.p("dst")).unwrap();
        let mut b = [1u8; 4096];
        f.read_exact_at(&mut b, 3 * MIB + 8192).unwrap();
        assert!(b.iter().all(|&x| x == 0));
        let data_at = rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(MIB)).unwrap();
        assert_eq!(
            data_at,
            4 * MIB,
            "next data after the first run is the second data run"
        );
    });
}

mod thick_copy_of_a_fully_sparse_file_has_no_holes {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Hole(8 * MIB + 5)], 0).unwrap();
        // ZFS counts the dnode: one sector.
        assert!(
            allocated(&env.p("src")) <= 512,
            "{}",
            allocated(&env.p("src"))
        );
        let out = env
            .clone("src", "dst", flags(true, false, false, false))
            .unwrap();
        assert_eq!(out.copied, 0);
        assert_same_content(&env.p("src"), &env.p("dst"));
        let st = env.statx_synced("dst");
        if env.zfs() {
            // fallocate allocates nothing on ZFS: the "thick" copy is a hole, and says so.
            assert_eq!(st.alloc_type, AllocType::Thin, "{st:?}");
            assert!(st.alloced_bytes < 64 * KIB, "{st:?}");
            return;
        }
        assert_ne!(st.alloc_type, AllocType::Thin, "{st:?}");
        assert!(st.alloced_bytes >= 8 * MIB);
    });
}

mod empty_file_clones_in_every_mode {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        std::fs::write(env.p("empty"), b"").unwrap();
        for (i, lazy) in [false, true].into_iter().enumerate() {
            if lazy && !env.kind().reflinks() {
                continue;
            }
            for (j, skip) in [false, true].into_iter().enumerate() {
                let dst = format!("e{i}{j}");
                let out = env
                    .clone("empty", &dst, flags(true, lazy, false, skip))
                    .unwrap();
                assert_eq!(
                    out,
                    openvaai_engine::CloneOutcome {
                        bytes: 0,
                        copied: 0
                    }
                );
                assert_eq!(std::fs::metadata(env.p(&dst)).unwrap().len(), 0);
            }
        }
    });
}

mod progress_is_cumulative_and_ends_at_total {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let runs = [
            Run::Data(40 * MIB),
            Run::Hole(100 * MIB),
            Run::Data(30 * MIB + 1),
        ];
        let size = write_layout(&env.p("src"), &runs, 4).unwrap();
        for skip in [false, true] {
            let mut log = Vec::new();
            let dst = format!("dst{skip}");
            env.export
                .clone_file(
                    &env.export,
                    "src",
                    &dst,
                    flags(true, false, false, skip),
                    &mut recorder(&mut log),
                    &Default::default(),
                )
                .unwrap();
            assert!(log.len() >= 3, "{log:?}");
            // No blocks beyond what the file needs (regression: XFS kept its speculative
            // preallocation past EOF on thick copies, which then ran the disk full).
            let alloc = allocated(&env.p(&dst));
            assert!(
                alloc <= size + 4 * MIB,
                "{dst}: {alloc} allocated for {size}"
            );
            assert!(log.windows(2).all(|w| w[0].done <= w[1].done), "{log:?}");
            assert!(log.iter().all(|p| p.total == size && p.done <= size));
            assert_eq!(log.last().unwrap().done, size);
            // Skipped holes count as done in one step; copied and provisioned bytes are
            // reported at least every 64 MiB.
            let mut last = 0;
            for p in log.iter().filter(|_| !skip) {
                assert!(p.done - last <= 64 * MIB + 8 * MIB, "gap before {p:?}");
                last = p.done;
            }
        }
    });
}
