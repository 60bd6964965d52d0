//! The fixture of the suites that drive the real plugin (the plugin's end-to-end tests, the
//! faults suite, the benchmarks): loop-mounted filesystems, exports on them served by a real
//! `openvaaid`, the real `libopenvaai.so` loaded by the disklib stand-in, the datastores ESXi
//! would describe, and the assertions the suites make afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openvaai_abi::{vix, SessionId, VixError};
use openvaai_host::{Datastore, Plugin, Progress};
use openvaai_proto::layout::TEMP_PREFIX;

use crate::{export_listing, plugin_so, Daemon, FsKind, TestFs};

/// A datastore as ESXi would describe an export of a daemon at `ip` (no NFS here: the "local
/// mount point" is the export directory itself, so the plugin reads the access file
/// directly).
pub fn datastore_at(export: &Path, ip: &str) -> Datastore {
    let p = export.to_str().expect("export path is UTF-8").to_owned();
    Datastore {
        fs_type: "NFS".into(),
        fs_version: 3,
        remote_ip: Some(ip.into()),
        remote_mount_point: Some(p.clone()),
        local_mount_point: Some(p),
    }
}

/// [`datastore_at`] a daemon on 127.0.0.1.
pub fn datastore(export: &Path) -> Datastore {
    datastore_at(export, "127.0.0.1")
}

/// The plugin loaded (by `dlopen`, as disklib does) and initialised; an error naming what
/// failed.
pub fn try_load_plugin() -> Result<Plugin, String> {
    let so = plugin_so();
    let mut plugin = Plugin::load(&so).map_err(|e| format!("loading {}: {e:#}", so.display()))?;
    match plugin.init() {
        vix::OK => Ok(plugin),
        err => Err(format!("Init of {}: {}", so.display(), vix_name(err))),
    }
}

/// [`try_load_plugin`], panicking on failure.
pub fn load_plugin() -> Plugin {
    try_load_plugin().unwrap_or_else(|e| panic!("{e}"))
}

/// A VixError as its name and number, for messages.
pub fn vix_name(err: VixError) -> String {
    format!("{} ({err})", vix::name(err).unwrap_or("unknown VixError"))
}

/// Asserts a VixError by name, for readable failures.
#[track_caller]
pub fn assert_vix(got: VixError, want: VixError) {
    assert_eq!(vix_name(got), vix_name(want));
}

/// Filesystems, a daemon serving exports on them, and the plugin.
pub struct Fixture {
    pub plugin: Plugin,
    pub daemon: Daemon,
    /// The export directories, each a datastore.
    pub exports: Vec<PathBuf>,
    /// The session timeout [`Fixture::session`] asks for (`None`: the plugin's default).
    pub timeout_ms: Option<u64>,
    // Last: unmounted after the daemon is gone.
    _fs: Vec<TestFs>,
}

impl Fixture {
    /// Serves `exports` (directories, created here, with extra lines for their `[[export]]`
    /// tables) on the filesystems `fs` with the daemon limits `limits`.
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
            timeout_ms: None,
            _fs: fs,
        }
    }

    /// For each `(kind, n)` of `layout` a filesystem of `size` bytes with `n` plain exports
    /// (`ds0`, `ds1`, ... numbered across them); `None` (skipped, reason printed) without
    /// root.
    pub fn on(layout: &[(FsKind, usize)], size: u64, limits: &str) -> Option<Fixture> {
        let mut fs = Vec::new();
        let mut exports = Vec::new();
        for &(kind, n) in layout {
            let f = TestFs::new(kind, size).expect("making a test filesystem")?;
            for _ in 0..n {
                exports.push((f.path().join(format!("ds{}", exports.len())), ""));
            }
            fs.push(f);
        }
        Some(Fixture::start(fs, &exports, limits))
    }

    /// One XFS filesystem of `size` bytes with `n` plain exports.
    pub fn xfs(size: u64, n: usize, limits: &str) -> Option<Fixture> {
        Fixture::on(&[(FsKind::Xfs, n)], size, limits)
    }

    /// Sessions from [`Fixture::session`] ask for `timeout_ms`.
    pub fn with_timeout(mut self, timeout_ms: Option<u64>) -> Fixture {
        self.timeout_ms = timeout_ms;
        self
    }

    /// A session on export `i` with the fixture's timeout.
    pub fn session(&self, i: usize) -> SessionId {
        self.session_with(i, self.timeout_ms)
    }

    /// A session on export `i`; panics with the daemon's log if StartSession fails.
    pub fn session_with(&self, i: usize, timeout_ms: Option<u64>) -> SessionId {
        self.plugin
            .start_session(&datastore(&self.exports[i]), timeout_ms)
            .unwrap_or_else(|e| {
                panic!(
                    "StartSession on export {i}: {}\n{}",
                    vix_name(e),
                    self.daemon.log_text()
                )
            })
    }

    /// `name` in export `i`, as an ESXi path.
    pub fn path(&self, i: usize, name: &str) -> PathBuf {
        self.exports[i].join(name)
    }

    /// [`Fixture::path`] as a string.
    pub fn s(&self, i: usize, name: &str) -> String {
        self.path(i, name).to_str().unwrap().to_owned()
    }

    /// The names in export `i`, sorted, without the daemon's `.openvaai`.
    pub fn listing(&self, i: usize) -> Vec<String> {
        export_listing(&self.exports[i])
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

/// Every path under `dir` (recursively, not following symlinks) whose name is one of the
/// engine's temporaries.
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

/// Asserts that no temporary is left anywhere under `dir`.
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
