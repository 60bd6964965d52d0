//! The suite's side of the testkit fixture (`openvaai_testkit::Fixture`: filesystems, a real
//! openvaaid, the real plugin, datastores, assertions): the session timeout and margins of
//! the fault tests, the machine lock, and what only these tests look at (the daemon's
//! descriptors and memory, checksums).

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use openvaai_testkit::{FsKind, TestFs};

pub const MIB: u64 = 1 << 20;
/// The session timeout of the fault tests.
pub const TIMEOUT_MS: u64 = 2000;
/// What a call may take beyond the session timeout.
pub const MARGIN: Duration = Duration::from_millis(1500);
/// The prefix of the engine's named temporaries.
pub use openvaai_proto::layout::TEMP_PREFIX;

/// Tests that load the machine (the load test, the connection flood) run alone; the others
/// share. A timing assertion must not fail because 256 threads were cloning next door.
static MACHINE: RwLock<()> = RwLock::new(());

pub fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// A filesystem of `kind` and `size` bytes, or `None` (skipped, reason printed) without root.
pub fn test_fs(kind: FsKind, size: u64) -> Option<TestFs> {
    TestFs::new(kind, size).expect("making a test filesystem")
}

/// [`Fixture::start`] with the fault tests' session timeout.
pub fn fixture(fs: Vec<TestFs>, exports: &[(PathBuf, &str)], limits: &str) -> Fixture {
    Fixture::start(fs, exports, limits).with_timeout(Some(TIMEOUT_MS))
}

/// [`Fixture::xfs`] (one XFS filesystem of `size` with `n` plain exports `ds0`, `ds1`, ...)
/// with the fault tests' session timeout.
pub fn on_xfs(size: u64, n: usize, limits: &str) -> Option<Fixture> {
    Some(Fixture::xfs(size, n, limits)?.with_timeout(Some(TIMEOUT_MS)))
}

pub use openvaai_testkit::vix_name as name;
pub use openvaai_testkit::{
    assert_no_temporaries, assert_vix, clone_with, datastore, datastore_at, free_bytes,
    load_plugin, log_lines, wait_for_line, wait_free_back, Fixture,
};

/// The names in `dir`, sorted, without the daemon's `.openvaai`.
pub use openvaai_testkit::export_listing as listing;

/// Open descriptors of process `pid`.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (up to `within`) until `pid` has at most `max` descriptors; returns the last count.
pub fn wait_fds_at_most(pid: i32, max: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = fd_count(pid);
        if n <= max || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in bytes.
pub fn memory(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A cheap checksum of a file's bytes (FNV-1a over 64-bit words).
pub fn checksum(path: &Path) -> (u64, u64) {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    let (mut h, mut len) = (0xcbf2_9ce4_8422_2325u64, 0u64);
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return (h, len);
        }
        len += n as u64;
        for c in buf[..n].chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
