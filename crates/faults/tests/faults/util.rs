//! The fixture: loop-mounted filesystems, exports on them served by a real openvaaid, the
//! real plugin loaded by the disklib stand-in, and what the tests look at afterwards (the
//! directory listing, temporaries, free space, the daemon's descriptors and memory).

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use openvaai_abi::{vix, SessionId, VixError};
use openvaai_host::{Datastore, Plugin, Progress};
use openvaai_testkit::{Daemon, FsKind, TestFs};

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

/// A datastore as ESXi would describe an export (the "local mount point" is the export
/// directory itself, so the plugin reads the access file directly), mounted from `ip`.
pub fn datastore_at(export: &Path, ip: &str) -> Datastore {
    Datastore {
        fs_type: "NFS".into(),
        fs_version: 3,
        remote_ip: Some(ip.into()),
        remote_mount_point: Some(export.to_str().unwrap().into()),
        local_mount_point: Some(export.to_str().unwrap().into()),
    }
}

pub fn datastore(export: &Path) -> Datastore {
    datastore_at(export, "127.0.0.1")
}

pub fn load_plugin() -> Plugin {
    let mut plugin = Plugin::load(&openvaai_testkit::plugin_so()).expect("loading the plugin");
    assert_eq!(plugin.init(), vix::OK);
    plugin
}

/// A daemon on loopback serving exports, and the plugin.
pub struct Fixture {
    pub plugin: Plugin,
    pub daemon: Daemon,
    pub exports: Vec<PathBuf>,
    // Last: unmounted after the daemon is gone.
    _fs: Vec<TestFs>,
}

impl Fixture {
    /// `exports`: directories to create and serve, with extra lines for their tables.
    pub fn start(fs: Vec<TestFs>, exports: &[(PathBuf, &str)], limits: &str) -> Fixture {
        let mut b = Daemon::builder().limits(limits);
        for (p, extra) in exports {
            std::fs::create_dir_all(p).unwrap();
            b = b.export_with(p, extra);
        }
        Fixture {
            plugin: load_plugin(),
            daemon: b.start(),
            exports: exports.iter().map(|(p, _)| p.clone()).collect(),
            _fs: fs,
        }
    }

    /// One XFS filesystem of `size` with `n` plain exports `ds0`, `ds1`, ...
    pub fn xfs(size: u64, n: usize, limits: &str) -> Option<Fixture> {
        let fs = test_fs(FsKind::Xfs, size)?;
        let exports: Vec<(PathBuf, &str)> = (0..n)
            .map(|i| (fs.path().join(format!("ds{i}")), ""))
            .collect();
        Some(Fixture::start(vec![fs], &exports, limits))
    }

    pub fn session(&self, i: usize) -> SessionId {
        self.session_with(i, Some(TIMEOUT_MS))
    }

    pub fn session_with(&self, i: usize, timeout_ms: Option<u64>) -> SessionId {
        self.plugin
            .start_session(&datastore(&self.exports[i]), timeout_ms)
            .unwrap_or_else(|e| {
                panic!(
                    "StartSession on export {i}: {}\n{}",
                    name(e),
                    self.daemon.log_text()
                )
            })
    }

    /// `name` in export `i`, as an ESXi path.
    pub fn path(&self, i: usize, name: &str) -> PathBuf {
        self.exports[i].join(name)
    }

    pub fn s(&self, i: usize, name: &str) -> String {
        self.path(i, name).to_str().unwrap().to_owned()
    }
}

/// A clone through the plugin with a progress record; `on_report(delta)` decides whether to
/// go on. Returns the status and how long the call took.
#[allow(clippy::too_many_arguments)]
pub fn clone_with(
    plugin: &Plugin,
    id: SessionId,
    src: &str,
    dst: &str,
    flags: i32,
    src_ds: Option<&Datastore>,
    update_bytes: u64,
    on_report: &mut dyn FnMut(u64) -> bool,
) -> (VixError, Duration) {
    let t = Instant::now();
    let st = plugin
        .clone_file(
            id,
            src,
            dst,
            flags,
            src_ds,
            Some(Progress {
                update_bytes,
                callback: on_report,
            }),
        )
        .unwrap();
    (st, t.elapsed())
}

pub fn name(err: VixError) -> String {
    format!("{} ({err})", vix::name(err).unwrap_or("?"))
}

#[track_caller]
pub fn assert_vix(got: VixError, want: VixError) {
    assert_eq!(name(got), name(want));
}

/// The names in `dir`, sorted, without the daemon's `.openvaai`.
pub use openvaai_testkit::export_listing as listing;

/// Every path under `dir` (recursively, not following symlinks) whose name is a temporary.
pub fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found
}

#[track_caller]
pub fn assert_no_temporaries(dir: &Path) {
    let t = temporaries(dir);
    assert!(t.is_empty(), "temporaries left: {t:?}");
}

/// Bytes available to unprivileged users on the filesystem of `path`.
pub fn free_bytes(path: &Path) -> u64 {
    let s = rustix::fs::statvfs(path).expect("statvfs");
    s.f_bavail * s.f_frsize
}

/// Waits (up to 10 s, syncing) until the free space of `path` is back within `slack` bytes
/// of `before`: an unnamed O_TMPFILE that was never published gives its blocks back when its
/// last descriptor closes (XFS frees it in the background). Returns the free space seen.
pub fn wait_free_back(path: &Path, before: u64, slack: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(f) = std::fs::File::open(path) {
            let _ = rustix::fs::syncfs(&f);
        }
        let now = free_bytes(path);
        if now + slack >= before || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

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

/// Lines of the daemon log containing every one of `needles`.
pub fn log_lines(log: &str, needles: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// Waits (up to `within`) for a log line containing every one of `needles`.
pub fn wait_for_line(daemon: &Daemon, needles: &[&str], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !log_lines(&daemon.log_text(), needles).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
