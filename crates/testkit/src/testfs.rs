//! Loop-mounted filesystem images, and ZFS pools on a file where OpenZFS is loaded (the ZFS
//! guest: `crates/plugin/tests/zfs`).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::Duration;

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "OPENVAAI_REQUIRE_FS_TESTS";

/// Whether filesystem tests must run (`OPENVAAI_REQUIRE_FS_TESTS=1`).
pub fn require_fs_tests() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// A filesystem type the tests can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsKind {
    /// XFS with reflink (`mkfs.xfs -m reflink=1`).
    Xfs,
    /// Btrfs (`mkfs.btrfs`, `--mixed` below 256 MiB).
    Btrfs,
    /// ext4 (`mkfs.ext4`): no reflink.
    Ext4,
    /// OpenZFS: a pool (lz4, as TrueNAS makes them) on a sparse file vdev, its root dataset
    /// mounted. Only where the `zfs` module is loaded (the ZFS guest), never in [`FsKind::ALL`].
    Zfs,
}

/// OpenZFS's switch for block cloning (`FICLONE`): 1 by default in 2.2.4+, 0 in 2.2.1-2.2.3.
pub const ZFS_BCLONE_PARAM: &str = "/sys/module/zfs/parameters/zfs_bclone_enabled";

impl FsKind {
    /// The kinds the host can make (loop-mounted images), for tests that run on each. Not
    /// ZFS, which needs its kernel module: see [`FsKind::Zfs`].
    pub const ALL: [FsKind; 3] = [FsKind::Xfs, FsKind::Btrfs, FsKind::Ext4];

    /// The mkfs program.
    pub fn mkfs(self) -> &'static str {
        match self {
            FsKind::Xfs => "mkfs.xfs",
            FsKind::Btrfs => "mkfs.btrfs",
            FsKind::Ext4 => "mkfs.ext4",
            FsKind::Zfs => "zpool",
        }
    }

    /// The name the kernel (and the engine) uses.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Ext4 => "ext4",
            FsKind::Zfs => "zfs",
        }
    }

    /// Whether the filesystem supports FICLONE: ZFS where block cloning is on
    /// ([`ZFS_BCLONE_PARAM`] is 1; new pools have `feature@block_cloning`).
    pub fn reflinks(self) -> bool {
        match self {
            FsKind::Xfs | FsKind::Btrfs => true,
            FsKind::Ext4 => false,
            FsKind::Zfs => std::fs::read_to_string(ZFS_BCLONE_PARAM).is_ok_and(|v| v.trim() == "1"),
        }
    }

    fn mkfs_args(self, size: u64) -> Vec<&'static str> {
        match self {
            FsKind::Xfs => vec!["-q", "-f", "-m", "reflink=1"],
            FsKind::Btrfs if size < (256 << 20) => vec!["-q", "-f", "--mixed"],
            FsKind::Btrfs => vec!["-q", "-f"],
            FsKind::Ext4 => vec!["-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1"],
            FsKind::Zfs => unreachable!("a ZFS pool is made by zpool create, not mkfs"),
        }
    }
}

/// A filesystem on a sparse image file, loop-mounted on a temporary directory (ZFS: a pool
/// with the image as its vdev, its root dataset mounted there).
///
/// Dropping it (also while a test panics) unmounts, detaches the loop device (ZFS: destroys
/// the pool) and deletes the image.
#[derive(Debug)]
pub struct TestFs {
    kind: FsKind,
    mount_point: PathBuf,
    /// Empty for ZFS.
    loop_dev: String,
    /// The pool, for ZFS.
    pool: Option<String>,
    // Last, so that the image and mount point go after the unmount in Drop.
    _dir: tempfile::TempDir,
}

fn skip_or_panic(reason: String) -> io::Result<Option<TestFs>> {
    if require_fs_tests() {
        panic!("{REQUIRE_ENV}=1 but filesystem tests cannot run: {reason}");
    }
    eprintln!("skipping filesystem test: {reason}");
    Ok(None)
}

fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn have_program(name: &str) -> bool {
    [
        "/usr/sbin",
        "/sbin",
        "/usr/bin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .any(|dir| Path::new(dir).join(name).exists())
}

impl TestFs {
    /// Makes a `kind` filesystem of `size_bytes` (a sparse image) and mounts it.
    ///
    /// `Ok(None)` (with the reason on stderr) when not root or the mkfs tool is missing;
    /// panics instead when `OPENVAAI_REQUIRE_FS_TESTS=1`.
    pub fn new(kind: FsKind, size_bytes: u64) -> io::Result<Option<TestFs>> {
        match TestFs::unavailable(kind) {
            Some(reason) => skip_or_panic(reason),
            None => TestFs::mount_new(kind, size_bytes).map(Some),
        }
    }

    /// Why a `kind` filesystem cannot be made here (not root, a tool missing, ZFS not
    /// loaded), if it cannot.
    pub fn unavailable(kind: FsKind) -> Option<String> {
        if !rustix::process::geteuid().is_root() {
            return Some("not running as root (loop mounts need it)".into());
        }
        if kind == FsKind::Zfs {
            if !Path::new("/sys/module/zfs").exists() {
                return Some(
                    "the zfs kernel module is not loaded (the ZFS tests run in the ZFS guest: \
                     cargo test -p openvaai-plugin --test zfs)"
                        .into(),
                );
            }
            return (!have_program("zpool")).then(|| "zpool not found".into());
        }
        [kind.mkfs(), "losetup", "mount", "umount"]
            .into_iter()
            .find(|tool| !have_program(tool))
            .map(|tool| format!("{tool} not found"))
    }

    /// Makes and mounts a `kind` filesystem, whatever the environment says about tests (see
    /// [`TestFs::unavailable`] first). For programs, such as `openvaai demo`.
    pub fn mount_new(kind: FsKind, size_bytes: u64) -> io::Result<TestFs> {
        let dir = tempfile::Builder::new()
            .prefix("openvaai-testfs-")
            .tempdir()?;
        let image = dir.path().join("image");
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point)?;
        std::fs::File::create(&image)?.set_len(size_bytes)?;
        if kind == FsKind::Zfs {
            return TestFs::create_pool(mount_point, &image, dir);
        }
        run(Command::new(kind.mkfs())
            .args(kind.mkfs_args(size_bytes))
            .arg(&image))?;
        let loop_dev = attach(&image)?;
        let mut fs = TestFs {
            kind,
            mount_point,
            loop_dev,
            pool: None,
            _dir: dir,
        };
        // From here on Drop cleans up, also if mounting fails.
        let mut last = None;
        for attempt in 0..5 {
            match run(Command::new("mount")
                .arg("-t")
                .arg(kind.name())
                .arg(&fs.loop_dev)
                .arg(&fs.mount_point))
            {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            sleep(Duration::from_millis(50 * (attempt + 1)));
        }
        if let Some(e) = last {
            // Nothing is mounted; make Drop skip the unmount.
            fs.mount_point = PathBuf::new();
            return Err(e);
        }
        Ok(fs)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// The filesystem type.
    pub fn kind(&self) -> FsKind {
        self.kind
    }

    /// The loop device (`/dev/loopN`); empty for ZFS.
    pub fn loop_device(&self) -> &str {
        &self.loop_dev
    }

    /// `zpool create` of a pool named uniquely (tests run in parallel) on `image`, lz4 as
    /// TrueNAS makes datasets, its root dataset mounted on `mount_point`.
    fn create_pool(
        mount_point: PathBuf,
        image: &Path,
        dir: tempfile::TempDir,
    ) -> io::Result<TestFs> {
        static POOLS: AtomicU32 = AtomicU32::new(0);
        let pool = format!(
            "openvaai-test-{}-{}",
            std::process::id(),
            POOLS.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("zpool")
            .args([
                "create",
                "-f",
                "-o",
                "cachefile=none",
                "-O",
                "compression=lz4",
                "-O",
            ])
            .arg(format!("mountpoint={}", mount_point.display()))
            .arg(&pool)
            .arg(image))?;
        Ok(TestFs {
            kind: FsKind::Zfs,
            mount_point,
            loop_dev: String::new(),
            pool: Some(pool),
            _dir: dir,
        })
    }

    /// The ZFS pool's name, for ZFS.
    pub fn zfs_pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// `zpool sync` of the pool, for ZFS (`st_blocks` and the pool's counters change only when
    /// a transaction group syncs); `syncfs` otherwise.
    pub fn sync(&self) -> io::Result<()> {
        match &self.pool {
            Some(pool) => run(Command::new("zpool").arg("sync").arg(pool)).map(drop),
            None => {
                let dir = std::fs::File::open(&self.mount_point)?;
                rustix::fs::syncfs(&dir).map_err(io::Error::from)
            }
        }
    }

    /// ZFS: the pool's `(bcloneused, bclonesaved)` in bytes after a `zpool sync`: what block
    /// clones (LAZY) share, the truth FIEMAP cannot tell there. `None` for other kinds.
    pub fn block_clones(&self) -> Option<(u64, u64)> {
        let pool = self.pool.as_deref()?;
        self.sync().expect("zpool sync");
        let out = run(Command::new("zpool")
            .args(["get", "-Hp", "-o", "value", "bcloneused,bclonesaved"])
            .arg(pool))
        .expect("zpool get bcloneused,bclonesaved");
        let v: Vec<u64> = out
            .split_whitespace()
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("zpool get said {out:?}"))
            })
            .collect();
        assert_eq!(v.len(), 2, "zpool get said {out:?}");
        Some((v[0], v[1]))
    }
}

/// `losetup --find --show IMAGE`, retried: parallel tests race for free loop devices.
fn attach(image: &Path) -> io::Result<String> {
    let mut last = None;
    for attempt in 0..20 {
        match run(Command::new("losetup")
            .arg("--find")
            .arg("--show")
            .arg(image))
        {
            Ok(dev) if !dev.is_empty() => return Ok(dev),
            Ok(_) => last = Some(io::Error::other("losetup printed no device")),
            Err(e) => last = Some(e),
        }
        sleep(Duration::from_millis(20 * (attempt + 1)));
    }
    Err(last.unwrap_or_else(|| io::Error::other("losetup failed")))
}

impl Drop for TestFs {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            // Unmounts the dataset and lets go of the file vdev; retried while busy.
            for attempt in 0..10 {
                if run(Command::new("zpool").args(["destroy", "-f"]).arg(pool)).is_ok() {
                    break;
                }
                sleep(Duration::from_millis(100 * (attempt + 1)));
            }
            return;
        }
        if !self.mount_point.as_os_str().is_empty() {
            let mut unmounted = false;
            for attempt in 0..10 {
                if run(Command::new("umount").arg(&self.mount_point)).is_ok() {
                    unmounted = true;
                    break;
                }
                sleep(Duration::from_millis(50 * (attempt + 1)));
            }
            if !unmounted {
                let _ = run(Command::new("umount").arg("-l").arg(&self.mount_point));
            }
        }
        for attempt in 0..10 {
            if run(Command::new("losetup").arg("-d").arg(&self.loop_dev)).is_ok() {
                break;
            }
            sleep(Duration::from_millis(50 * (attempt + 1)));
        }
    }
}
