//! The undo of a failed reservation never loses what a client wrote meanwhile, even when
//! that is still in the page cache (knfsd's UNSTABLE writes, a VM's buffered writes).

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};

use openvaai_engine::{CancelToken, ErrorKind};
use rustix::fs::{fadvise, Advice};

use crate::util::*;

/// Size of the sparse file reserved; the first progress report comes after 64 MiB.
const SIZE: u64 = 256 * MIB;

fn pattern(seed: u8, len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Writes the page cache back and drops it, so what is read next comes from the disk.
fn drop_cache(path: &std::path::Path) {
    let f = fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    fadvise(f.as_fd(), 0, None, Advice::DontNeed).unwrap();
}

fn read_at(path: &std::path::Path, off: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, off)
        .unwrap();
    buf
}

/// The scenario: a sparse file, a reservation cancelled from its progress callback
/// after a client wrote 1 MiB into the reserved range through the page cache (no fsync) and
/// closed the file. The undo gives the rest back, and the mebibyte reads back from disk.
mod a_page_cache_write_survives_the_undo {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        let path = env.p("disk");
        write_layout(&path, &[Run::Hole(SIZE)], 0).unwrap();
        let data = pattern(0x5a, MIB);
        let cancel = CancelToken::new();
        let mut progress = |_| {
            if !cancel.is_cancelled() {
                let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(&data, 8 * MIB).unwrap();
                cancel.cancel();
            }
        };
        let e = env
            .export
            .reserve("disk", &mut progress, &cancel)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
        drop_cache(&path);
        assert!(
            read_at(&path, 8 * MIB, MIB) == data,
            "{:?}: the mebibyte written into the reserved range reads back",
            env.kind()
        );
        let allocated = fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            (MIB..8 * MIB).contains(&allocated),
            "{:?}: the written mebibyte kept, the rest given back: {allocated}",
            env.kind()
        );
    });
}

/// A client that holds the file open and goes on writing while the undo runs: no punch can
/// be made safe against it, so the reservation's blocks stay allocated, and nothing it wrote
/// (before or during the undo) is lost.
mod an_open_writer_keeps_the_reservation_and_its_data {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        let path = env.p("disk");
        write_layout(&path, &[Run::Hole(SIZE)], 0).unwrap();
        let first = pattern(0x11, MIB);
        let second = pattern(0x22, MIB);
        let writer = fs::OpenOptions::new().write(true).open(&path).unwrap();
        let cancel = CancelToken::new();
        std::thread::scope(|s| {
            let mut progress = |_| {
                if cancel.is_cancelled() {
                    return;
                }
                writer.write_all_at(&first, 8 * MIB).unwrap();
                // Goes on writing, 64 KiB at a time, while the undo runs.
                s.spawn(|| {
                    for (i, piece) in second.chunks(64 << 10).enumerate() {
                        writer
                            .write_all_at(piece, 16 * MIB + (i as u64) * (64 << 10))
                            .unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                });
                cancel.cancel();
            };
            let e = env
                .export
                .reserve("disk", &mut progress, &cancel)
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
        });
        drop(writer);
        drop_cache(&path);
        assert!(
            read_at(&path, 8 * MIB, MIB) == first,
            "{:?}: written before the undo",
            env.kind()
        );
        assert!(
            read_at(&path, 16 * MIB, MIB) == second,
            "{:?}: written during the undo",
            env.kind()
        );
        let allocated = fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            allocated >= 64 * MIB,
            "{:?}: nothing punched while a writer had the file open: {allocated}",
            env.kind()
        );
    });
}
