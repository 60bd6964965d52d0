//! Shared helpers: one mounted filesystem per test, exports on it, extent inspection.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use openvaai_engine::{fiemap, CancelToken, CloneFlags, CloneOutcome, Error, Export, Progress};
pub use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run, TestFs};

/// A mounted filesystem with one export directory `export/` on it.
pub struct Env {
    pub fs: TestFs,
    pub export: Export,
}

impl Env {
    /// Path of `rel` inside the export.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.export.root().join(rel)
    }

    pub fn kind(&self) -> FsKind {
        self.fs.kind()
    }

    /// Whether this is ZFS (no FIEMAP: sharing is judged by the pool's counters instead).
    pub fn zfs(&self) -> bool {
        self.kind() == FsKind::Zfs
    }

    /// ZFS: `bclonesaved` of the pool after a sync, the bytes block clones share.
    pub fn bclone_saved(&self) -> u64 {
        self.fs.block_clones().expect("a ZFS pool").1
    }

    /// statx after the filesystem synced: ZFS counts a file's blocks only once its
    /// transaction group is written.
    pub fn statx_synced(&self, rel: &str) -> openvaai_engine::StatX {
        self.fs.sync().unwrap();
        self.export.statx(rel).unwrap()
    }

    /// A second export directory on the same filesystem.
    pub fn second_export(&self, name: &str) -> Export {
        let root = self.fs.path().join(name);
        fs::create_dir_all(&root).unwrap();
        Export::open(&root).unwrap()
    }

    /// Clones within the export with no progress callback and a fresh token.
    pub fn clone(&self, src: &str, dst: &str, flags: CloneFlags) -> Result<CloneOutcome, Error> {
        self.export.clone_file(
            &self.export,
            src,
            dst,
            flags,
            &mut |_| {},
            &CancelToken::new(),
        )
    }
}

/// Makes a `kind` filesystem of `size` bytes with an export on it, or `None` (skip).
pub fn env(kind: FsKind, size: u64) -> Option<Env> {
    let fs = TestFs::new(kind, size).expect("make test filesystem")?;
    let root = fs.path().join("export");
    fs::create_dir(&root).unwrap();
    let export = Export::open(&root).expect("open export");
    Some(Env { fs, export })
}

/// Runs `body` on a fresh `kind` filesystem of `size` bytes (skipped without root).
pub fn on(kind: FsKind, size: u64, body: impl FnOnce(&Env)) {
    if let Some(env) = env(kind, size) {
        body(&env);
    }
}

/// Generates `xfs`, `btrfs`, `ext4` and `zfs` test functions that call `body(&Env)`;
/// `per_fs!(not_zfs: ...)` only the first three, for a test whose subject ZFS does not have.
///
/// The `zfs` one is `#[ignore]`d: the host has no ZFS, so it runs only in the ZFS guest
/// (`cargo test -p openvaai-plugin --test zfs` runs this binary there with `--ignored zfs`),
/// where a missing ZFS fails it under `OPENVAAI_REQUIRE_FS_TESTS=1`. The host's runs
/// (`OPENVAAI_REQUIRE_FS_TESTS=1` too) list it as ignored rather than skip it silently.
macro_rules! per_fs {
    (not_zfs: $size:expr, $body:expr) => {
        per_fs!(@host $size, $body);
    };
    ($size:expr, $body:expr) => {
        per_fs!(@host $size, $body);
        #[test]
        #[ignore = "needs ZFS: runs in the ZFS guest (cargo test -p openvaai-plugin --test zfs)"]
        fn zfs() {
            $crate::util::on($crate::util::FsKind::Zfs, $size, $body);
        }
    };
    (@host $size:expr, $body:expr) => {
        #[test]
        fn xfs() {
            $crate::util::on($crate::util::FsKind::Xfs, $size, $body);
        }
        #[test]
        fn btrfs() {
            $crate::util::on($crate::util::FsKind::Btrfs, $size, $body);
        }
        #[test]
        fn ext4() {
            $crate::util::on($crate::util::FsKind::Ext4, $size, $body);
        }
    };
}

/// Default image size for most tests.
pub const SMALL: u64 = 512 << 20;

pub const MIB: u64 = 1 << 20;
pub const KIB: u64 = 1 << 10;

/// Flags shorthand.
pub fn flags(guarded: bool, lazy: bool, dry_run: bool, skip_zeroes: bool) -> CloneFlags {
    CloneFlags {
        guarded,
        lazy,
        dry_run,
        skip_zeroes,
    }
}

/// Extent summary from FIEMAP: (bytes in extents, bytes flagged SHARED, bytes UNWRITTEN).
pub fn extents(path: &Path) -> (u64, u64, u64) {
    let f = fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    let len = f.metadata().unwrap().len().max(1);
    let (mut total, mut shared, mut unwritten) = (0, 0, 0);
    fiemap::for_each_extent(&f, len, |e| {
        total += e.length;
        if e.flags & fiemap::EXTENT_SHARED != 0 {
            shared += e.length;
        }
        if e.flags & fiemap::EXTENT_UNWRITTEN != 0 {
            unwritten += e.length;
        }
    })
    .unwrap();
    (total, shared, unwritten)
}

/// `statfs.f_type` of ZFS.
const ZFS_MAGIC: i64 = 0x2fc1_2fc1;

/// `st_blocks * 512` (on ZFS after `zpool sync`: it counts blocks only once they are written).
pub fn allocated(path: &Path) -> u64 {
    if rustix::fs::statfs(path).is_ok_and(|s| s.f_type == ZFS_MAGIC) {
        let ok = std::process::Command::new("zpool").arg("sync").status();
        assert!(ok.is_ok_and(|s| s.success()), "zpool sync failed");
    }
    fs::metadata(path).unwrap().blocks() * 512
}

/// Names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// All names under `dir`, recursively, relative and sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// A cheap checksum of a file's contents.
pub fn checksum(path: &Path) -> u64 {
    let data = fs::read(path).unwrap();
    data.chunks(8).fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5)
    })
}

/// Records every progress report.
pub fn recorder(log: &mut Vec<Progress>) -> impl FnMut(Progress) + '_ {
    move |p| log.push(p)
}
