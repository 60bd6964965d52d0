//! Loop-mounted filesystem images.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
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
}

impl FsKind {
    /// All kinds, for tests that run on each.
    pub const ALL: [FsKind; 3] = [FsKind::Xfs, FsKind::Btrfs, FsKind::Ext4];

    /// The mkfs program.
    pub fn mkfs(self) -> &'static str {
        match self {
            FsKind::Xfs => "mkfs.xfs",
            FsKind::Btrfs => "mkfs.btrfs",
            FsKind::Ext4 => "mkfs.ext4",
        }
    }

    /// The name the kernel (and the engine) uses.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Ext4 => "ext4",
        }
    }

    /// Whether the filesystem supports FICLONE.
    pub fn reflinks(self) -> bool {
        matches!(self, FsKind::Xfs | FsKind::Btrfs)
    }

    fn mkfs_args(self, size: u64) -> Vec<&'static str> {
        match self {
            FsKind::Xfs => vec!["-q", "-f", "-m", "reflink=1"],
            FsKind::Btrfs if size < (256 << 20) => vec!["-q", "-f", "--mixed"],
            FsKind::Btrfs => vec!["-q", "-f"],
            FsKind::Ext4 => vec!["-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1"],
        }
    }
}

/// A filesystem on a sparse image file, loop-mounted on a temporary directory.
///
/// Dropping it (also while a test panics) unmounts, detaches the loop device and deletes
/// the image.
#[derive(Debug)]
pub struct TestFs {
    kind: FsKind,
    mount_point: PathBuf,
    loop_dev: String,
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

    /// Why a `kind` filesystem cannot be made here (not root, a tool missing), if it cannot.
    pub fn unavailable(kind: FsKind) -> Option<String> {
        if !rustix::process::geteuid().is_root() {
            return Some("not running as root (loop mounts need it)".into());
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
        run(Command::new(kind.mkfs())
            .args(kind.mkfs_args(size_bytes))
            .arg(&image))?;
        let loop_dev = attach(&image)?;
        let mut fs = TestFs {
            kind,
            mount_point,
            loop_dev,
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

    /// The loop device (`/dev/loopN`).
    pub fn loop_device(&self) -> &str {
        &self.loop_dev
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
