//! RESVSPACE and STATX.

use std::fs;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use openvaai_engine::{AllocType, CancelToken, ErrorKind, Export};

use crate::util::*;

mod reserve_keeps_data_and_fills_every_hole {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let runs = [
            Run::Data(64 * KIB),
            Run::Hole(3 * MIB),
            Run::Data(4 * KIB + 100),
            Run::Hole(MIB + 7),
        ];
        let size = write_layout(&env.p("f"), &runs, 21).unwrap();
        fs::copy(env.p("f"), env.p("reference")).unwrap();
        assert_eq!(env.export.statx("f").unwrap().alloc_type, AllocType::Thin);
        if !env.export.capabilities().fallocate {
            // ZFS: fallocate succeeds and allocates nothing, so RESVSPACE cannot hold and
            // says so (docs/engine.md, On ZFS); the file is left as it was.
            assert!(env.zfs(), "only ZFS lacks fallocate here");
            let before = env.statx_synced("f");
            let e = env
                .export
                .reserve("f", &mut |_| {}, &CancelToken::new())
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
            let text = e.to_string();
            assert!(
                text.contains("allocated nothing") && text.contains("refreservation"),
                "{text}"
            );
            assert_same_content(&env.p("reference"), &env.p("f"));
            assert_eq!(env.statx_synced("f"), before);
            return;
        }
        let mut log = Vec::new();
        env.export
            .reserve("f", &mut recorder(&mut log), &CancelToken::new())
            .unwrap();
        assert_eq!(log.last().map(|p| (p.done, p.total)), Some((size, size)));
        assert_same_content(&env.p("reference"), &env.p("f"));
        let st = env.export.statx("f").unwrap();
        assert_eq!(st.total_bytes, size);
        assert!(st.alloced_bytes >= size, "{st:?}");
        // Every filesystem here makes unwritten extents for fallocate: the file is lazy-zeroed.
        assert_eq!(st.alloc_type, AllocType::Lzt, "{st:?}");
        // Reserving again changes nothing.
        env.export
            .reserve("f", &mut |_| {}, &CancelToken::new())
            .unwrap();
        assert_eq!(env.export.statx("f").unwrap(), st);
        assert_same_content(&env.p("reference"), &env.p("f"));
    });
}

mod reserve_refuses_empty_missing_and_non_regular {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        fs::write(env.p("empty"), b"").unwrap();
        fs::create_dir(env.p("dir")).unwrap();
        let c = CancelToken::new();
        let kind = |p: &str| env.export.reserve(p, &mut |_| {}, &c).unwrap_err().kind();
        assert_eq!(kind("empty"), ErrorKind::InvalidArgument);
        assert_eq!(kind("missing"), ErrorKind::NotFound);
        assert_eq!(kind("dir"), ErrorKind::IncorrectFileType);
        write_layout(&env.p("big"), &[Run::Hole(300 * MIB)], 0).unwrap();
        c.cancel();
        assert_eq!(kind("big"), ErrorKind::Cancelled);
    });
}

mod statx_reports_thin_lzt_ezt {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("thin"), &[Run::Data(MIB), Run::Hole(MIB)], 1).unwrap();
        write_layout(&env.p("ezt"), &[Run::Data(MIB), Run::Zero(MIB)], 1).unwrap();
        let f = fs::File::create(env.p("lzt")).unwrap();
        rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, 2 * MIB).unwrap();
        f.sync_all().unwrap();
        let thin = env.statx_synced("thin");
        assert_eq!(thin.alloc_type, AllocType::Thin);
        assert_eq!(thin.total_bytes, 2 * MIB);
        assert!(
            thin.alloced_bytes >= MIB && thin.alloced_bytes < 2 * MIB,
            "{thin:?}"
        );
        if env.zfs() {
            // Nothing shows which blocks a snapshot or block clone shares: never over-report.
            assert_eq!(thin.unique_bytes, 0);
            // Written zeros compress into holes and fallocate allocates nothing: both THIN,
            // never LZT (docs/engine.md, On ZFS).
            for f in ["ezt", "lzt"] {
                let st = env.statx_synced(f);
                assert_eq!(st.alloc_type, AllocType::Thin, "{f}: {st:?}");
                assert!(st.alloced_bytes < MIB + 128 * KIB, "{f}: {st:?}");
            }
            f.write_all_at(&vec![7u8; 2 * MIB as usize], 0).unwrap();
            f.sync_all().unwrap();
            let st = env.statx_synced("lzt");
            // (lz4 stores the 2 MiB of 7s in a few KiB.)
            assert_eq!(st.alloc_type, AllocType::Ezt, "every byte written: {st:?}");
            assert!(st.alloced_bytes > 0, "{st:?}");
            return;
        }
        assert_eq!(thin.unique_bytes, thin.alloced_bytes);
        let ezt = env.export.statx("ezt").unwrap();
        assert_eq!(ezt.alloc_type, AllocType::Ezt, "{ezt:?}");
        assert_eq!(ezt.alloced_bytes, 2 * MIB);
        let lzt = env.export.statx("lzt").unwrap();
        assert_eq!(lzt.alloc_type, AllocType::Lzt, "{lzt:?}");
        // Writing every byte turns LZT into EZT.
        f.write_all_at(&vec![7u8; 2 * MIB as usize], 0).unwrap();
        f.sync_all().unwrap();
        assert_eq!(env.export.statx("lzt").unwrap().alloc_type, AllocType::Ezt);
        assert_eq!(
            env.export.statx("missing").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    });
}

mod statx_of_a_file_with_ten_thousand_extents_is_fast {
    use super::*;
    // Counts extents by FIEMAP, which ZFS does not have.
    per_fs!(not_zfs: SMALL, |env: &Env| {
        let f = fs::File::create(env.p("frag")).unwrap();
        let block = [0x55u8; 4096];
        f.set_len(10_000 * 8192).unwrap();
        for i in 0..10_000u64 {
            f.write_all_at(&block, i * 8192).unwrap();
        }
        f.set_len(10_000 * 8192).unwrap();
        f.sync_all().unwrap();
        let mut extents = 0;
        openvaai_engine::fiemap::for_each_extent(&f, 10_000 * 8192, |_| extents += 1).unwrap();
        assert_eq!(extents, 10_000);
        let start = Instant::now();
        let st = env.export.statx("frag").unwrap();
        let took = start.elapsed();
        assert_eq!(st.alloc_type, AllocType::Thin);
        // ext4 counts its extent tree blocks in st_blocks too.
        assert!(
            st.alloced_bytes >= 10_000 * 4096 && st.alloced_bytes < 10_000 * 4096 * 101 / 100,
            "{st:?}"
        );
        assert!(took.as_millis() < 500, "statx took {took:?}");
        eprintln!("{:?}: statx of 10,000 extents took {took:?}", env.kind());
    });
}

/// Where FIEMAP is missing (tmpfs) the type comes from SEEK_HOLE (see no_fiemap.rs) and,
/// without reflink, unique equals alloced.
#[test]
fn statx_without_fiemap_seeks_for_holes() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        return;
    };
    let export = Export::open(dir.path()).unwrap();
    if export.capabilities().fs_type != "tmpfs" {
        return;
    }
    assert!(!export.capabilities().fiemap && !export.capabilities().reflink);
    write_layout(&dir.path().join("f"), &[Run::Data(MIB), Run::Hole(MIB)], 1).unwrap();
    let st = export.statx("f").unwrap();
    assert_eq!(st.alloc_type, AllocType::Thin);
    assert_eq!(st.unique_bytes, st.alloced_bytes);
    assert_eq!(st.total_bytes, 2 * MIB);
    // LAZY is not supported there, a full copy is.
    let c = CancelToken::new();
    let e = export.clone_file(
        &export,
        "f",
        "g",
        flags(false, true, false, false),
        &mut |_| {},
        &c,
    );
    assert_eq!(e.unwrap_err().kind(), ErrorKind::NotSupported);
    export
        .clone_file(
            &export,
            "f",
            "g",
            flags(false, false, false, true),
            &mut |_| {},
            &c,
        )
        .unwrap();
    assert_same_content(&dir.path().join("f"), &dir.path().join("g"));
}

mod reserving_an_already_reserved_file_on_a_nearly_full_filesystem_succeeds {
    use super::*;
    // Nothing can be reserved on ZFS (reserve_keeps_data_and_fills_every_hole::zfs).
    per_fs!(not_zfs: SMALL, |env: &Env| {
        write_layout(&env.p("f"), &[Run::Data(MIB), Run::Hole(159 * MIB)], 5).unwrap();
        let c = CancelToken::new();
        env.export.reserve("f", &mut |_| {}, &c).unwrap();
        let st = env.export.statx("f").unwrap();
        assert_eq!(st.alloc_type, AllocType::Lzt);
        // Leave less free space than the file's size: its blocks are already allocated, so
        // reserving it again needs nothing and must not fail.
        let v = rustix::fs::statvfs(env.export.root()).unwrap();
        let free = v.f_bavail * v.f_frsize;
        let filler = fs::File::create(env.p("filler")).unwrap();
        rustix::fs::fallocate(
            &filler,
            rustix::fs::FallocateFlags::empty(),
            0,
            free - 100 * MIB,
        )
        .unwrap();
        filler.sync_all().unwrap();
        env.export.reserve("f", &mut |_| {}, &c).unwrap();
        assert_eq!(env.export.statx("f").unwrap(), st);
    });
}
