//! The fixture of the end-to-end tests: a loop-mounted filesystem, exports on it served by a
//! real openvaaid, and the real plugin library loaded by the disklib stand-in.

use std::path::{Path, PathBuf};

use openvaai_abi::{vix, SessionId, VixError};
use openvaai_host::{Datastore, Plugin, Progress};
use openvaai_testkit::{Daemon, FsKind, TestFs};

pub const MIB: u64 = 1 << 20;

/// A datastore as ESXi would describe an export of the daemon (no NFS here: the "local mount
/// point" is the export directory itself, so the plugin reads the access file directly).
pub fn datastore(export: &Path) -> Datastore {
    Datastore {
        fs_type: "NFS".into(),
        fs_version: 3,
        remote_ip: Some("127.0.0.1".into()),
        remote_mount_point: Some(export.to_str().unwrap().into()),
        local_mount_point: Some(export.to_str().unwrap().into()),
    }
}

pub struct Env {
    pub plugin: Plugin,
    pub daemon: Daemon,
    /// The export directories, each a datastore.
    pub exports: Vec<PathBuf>,
    /// A session on export 0.
    pub id: SessionId,
    // Last: unmounted after the daemon is gone.
    _fs: Vec<TestFs>,
}

impl Env {
    /// One filesystem of `kind` with `n` exports on it (directories ds0, ds1, ...).
    pub fn new(kind: FsKind, n: usize) -> Option<Env> {
        Env::build(&[(kind, n)], "", None)
    }

    /// Exports on several filesystems, daemon limits, and the session timeout.
    pub fn build(layout: &[(FsKind, usize)], limits: &str, timeout_ms: Option<u64>) -> Option<Env> {
        let mut fs = Vec::new();
        let mut exports = Vec::new();
        for &(kind, n) in layout {
            let f = TestFs::new(kind, 1 << 30).expect("making a test filesystem")?;
            for i in 0..n {
                let e = f.path().join(format!("ds{}", exports.len() + i));
                std::fs::create_dir(&e).unwrap();
                exports.push(e);
            }
            fs.push(f);
        }
        let mut b = Daemon::builder().limits(limits);
        for e in &exports {
            b = b.export(e);
        }
        let daemon = b.start();
        let mut plugin = Plugin::load(&openvaai_testkit::plugin_so()).unwrap();
        assert_eq!(plugin.init(), vix::OK);
        let id = plugin
            .start_session(&datastore(&exports[0]), timeout_ms)
            .unwrap_or_else(|e| panic!("StartSession: {}\n{}", name(e), daemon.log_text()));
        Some(Env {
            plugin,
            daemon,
            exports,
            id,
            _fs: fs,
        })
    }

    /// `name` in export `i`, as an ESXi path.
    pub fn path(&self, i: usize, name: &str) -> PathBuf {
        self.exports[i].join(name)
    }

    pub fn s(&self, i: usize, name: &str) -> String {
        self.path(i, name).to_str().unwrap().to_owned()
    }

    /// A session on export `i`.
    pub fn session(&self, i: usize) -> SessionId {
        self.plugin
            .start_session(&datastore(&self.exports[i]), None)
            .unwrap_or_else(|e| panic!("StartSession on export {i}: {}", name(e)))
    }

    /// STATX of `name` in export 0 on the session of export 0.
    pub fn statx(&self, name: &str) -> openvaai_abi::StatXResult {
        self.plugin.statx(self.id, &self.s(0, name)).unwrap()
    }

    pub fn clone_file(&self, src: &str, dst: &str, flags: i32) -> VixError {
        self.plugin
            .clone_file(self.id, &self.s(0, src), &self.s(0, dst), flags, None, None)
            .unwrap()
    }

    /// A clone with a progress record: returns the status and every delta reported.
    pub fn clone_with_progress(
        &self,
        src: &str,
        dst: &str,
        flags: i32,
        update_bytes: u64,
        mut abort_at: impl FnMut(usize) -> bool,
    ) -> (VixError, Vec<u64>) {
        let mut deltas = Vec::new();
        let mut cb = |delta: u64| {
            deltas.push(delta);
            !abort_at(deltas.len())
        };
        let status = self
            .plugin
            .clone_file(
                self.id,
                &self.s(0, src),
                &self.s(0, dst),
                flags,
                None,
                Some(Progress {
                    update_bytes,
                    callback: &mut cb,
                }),
            )
            .unwrap();
        (status, deltas)
    }

    /// The names in export `i`, sorted, without the daemon's `.openvaai`.
    pub fn listing(&self, i: usize) -> Vec<String> {
        openvaai_testkit::export_listing(&self.exports[i])
    }
}

pub fn name(err: VixError) -> String {
    format!("{} ({err})", vix::name(err).unwrap_or("?"))
}

/// Asserts a VixError by name, for readable failures.
#[track_caller]
pub fn assert_vix(got: VixError, want: VixError) {
    assert_eq!(name(got), name(want));
}
