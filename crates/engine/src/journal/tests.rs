//! Replaying the journal at start: a genuine entry is given back; planted ones are refused
//! and punch nothing.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use openvaai_testkit::{FsKind, TestFs};
use rustix::fs::{fallocate, FallocateFlags};

use super::*;

const MIB: u64 = 1 << 20;

/// A file of `size` bytes whose every block is allocated and unwritten, as a reservation
/// leaves it.
fn reserved_file(path: &Path, size: u64) -> fs::File {
    let f = fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    f.set_len(size).unwrap();
    fallocate(f.as_fd(), FallocateFlags::empty(), 0, size).unwrap();
    f.sync_all().unwrap();
    f
}

fn entry_for(path: &str, file: &fs::File, size: u64) -> Entry {
    let st = file.metadata().unwrap();
    Entry {
        path: path.into(),
        dev: st.dev(),
        ino: st.ino(),
        size,
        born: birth(file.as_fd()),
        holes: vec![(0, size)],
    }
}

fn blocks(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks()
}

/// Writes `entry` into the private directory as a client of the export could, with the
/// daemon's mark when `marked` (a test standing in for a mark it could not make).
fn plant(private: &Path, name: &str, entry: &Entry, marked: bool, dir: &PrivateDir) {
    let text = entry.render();
    fs::write(private.join(name), &text).unwrap();
    if marked {
        mark(dir, name, text.as_bytes()).unwrap();
    }
}

fn each_fs(body: impl Fn(&TestFs)) {
    for kind in [FsKind::Xfs, FsKind::Ext4, FsKind::Btrfs] {
        let Some(fs) = TestFs::new(kind, 512 << 20).unwrap() else {
            return;
        };
        body(&fs);
    }
}

#[test]
fn a_crashed_reservation_is_given_back_at_start() {
    each_fs(|tfs| {
        let root = tfs.path().join("export");
        fs::create_dir_all(root.join("vm")).unwrap();
        let export = crate::Export::open(&root).unwrap();
        let private = export.private_dir().unwrap();
        let file = reserved_file(&root.join("vm/disk"), 64 * MIB);
        let entry = entry_for("vm/disk", &file, 64 * MIB);
        drop(file);
        // A client hard-links an entry of a reservation that then ends normally: the link
        // must not be replayed.
        let ended = begin(private, &entry).unwrap();
        fs::hard_link(
            root.join(PRIVATE_DIR).join(&ended.name),
            root.join(PRIVATE_DIR).join("reserve-9-9"),
        )
        .unwrap();
        ended.done();
        // The daemon dies between `begin` and `done`.
        std::mem::forget(begin(private, &entry).unwrap());
        let report = export.recover_reserves();
        assert_eq!(report.given_back.len(), 1, "{report:?}");
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert!(
            report.problems[0].contains("reserve-9-9: not written by this daemon"),
            "{report:?}"
        );
        assert!(
            blocks(&root.join("vm/disk")) * 512 < MIB,
            "the interrupted reservation was given back"
        );
        assert!(names(&root.join(PRIVATE_DIR)).is_empty(), "entry removed");
    });
}

fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(PREFIX))
        .collect()
}

#[test]
fn planted_journal_entries_are_refused_and_punch_nothing() {
    each_fs(|tfs| {
        let root = tfs.path().join("export");
        fs::create_dir_all(root.join("vm")).unwrap();
        let export = crate::Export::open(&root).unwrap();
        let dir = export.private_dir().unwrap();
        let private = root.join(PRIVATE_DIR);
        let size = 16 * MIB;
        let disk = reserved_file(&root.join("vm/disk"), size);
        let other = reserved_file(&root.join("vm/other"), size);
        let victim = reserved_file(&private.join("victim"), size);
        fs::hard_link(private.join("victim"), root.join("vm/link")).unwrap();
        let outside = reserved_file(&tfs.path().join("outside"), size);
        let genuine = entry_for("vm/disk", &disk, size);

        // Forged: the right file, written through the export, without the daemon's mark.
        plant(&private, "reserve-1-0", &genuine, false, dir);
        // Altered: a marked entry whose bytes were changed afterwards.
        plant(&private, "reserve-1-1", &genuine, true, dir);
        let altered = Entry {
            holes: vec![(0, size), (size, size + 1)],
            ..genuine.clone()
        };
        fs::write(private.join("reserve-1-1"), altered.render()).unwrap();
        // Into the private directory, by name and through a hard link (marked, so that only
        // the path checks stand in the way).
        plant(
            &private,
            "reserve-1-2",
            &entry_for(".openvaai/victim", &victim, size),
            true,
            dir,
        );
        plant(
            &private,
            "reserve-1-3",
            &entry_for("vm/link", &victim, size),
            true,
            dir,
        );
        // Out of the export.
        plant(
            &private,
            "reserve-1-4",
            &entry_for("../outside", &outside, size),
            true,
            dir,
        );
        // Another file's inode under the name.
        plant(
            &private,
            "reserve-1-5",
            &Entry {
                path: "vm/disk".into(),
                ..entry_for("vm/other", &other, size)
            },
            true,
            dir,
        );
        // The inode number of an earlier file, reused: the birth time differs.
        if let Some((sec, nsec)) = genuine.born {
            plant(
                &private,
                "reserve-1-6",
                &Entry {
                    born: Some((sec, nsec ^ 1)),
                    ..genuine.clone()
                },
                true,
                dir,
            );
        }
        drop((disk, other, victim, outside));
        let files = [
            root.join("vm/disk"),
            root.join("vm/other"),
            private.join("victim"),
            tfs.path().join("outside"),
        ];
        let before: Vec<u64> = files.iter().map(|p| blocks(p)).collect();
        let planted = names(&private).len();

        let report = export.recover_reserves();
        assert_eq!(report.given_back, Vec::<String>::new(), "{report:?}");
        assert_eq!(report.problems.len(), planted, "{report:?}");
        for p in &report.problems {
            assert!(p.contains("nothing given back"), "{p}");
        }
        assert_eq!(
            report
                .problems
                .iter()
                .filter(|p| p.contains("not written by this daemon"))
                .count(),
            2,
            "{report:?}"
        );
        let after: Vec<u64> = files.iter().map(|p| blocks(p)).collect();
        assert_eq!(after, before, "no block of any file was given back");
        assert!(names(&private).is_empty(), "every planted entry removed");
    });
}
