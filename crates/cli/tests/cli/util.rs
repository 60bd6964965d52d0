//! Running `openvaai`, and a datastore served by a real daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use openvaai_testkit::{Daemon, FsKind, TestFs};

pub use openvaai_testkit::plugin_so;

pub fn openvaai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args(args)
        .env("OPENVAAI_PLUGIN", plugin_so())
        .output()
        .unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A JSON report from stdout.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

/// An export on a fresh filesystem, served by openvaaid.
pub struct Served {
    pub daemon: Daemon,
    pub export: PathBuf,
    _fs: TestFs,
}

impl Served {
    pub fn new(kind: FsKind) -> Option<Served> {
        Served::with_limits(kind, "")
    }

    /// With the body of the daemon's `[limits]` table.
    pub fn with_limits(kind: FsKind, limits: &str) -> Option<Served> {
        let fs = TestFs::new(kind, 1 << 30).unwrap()?;
        let export = fs.path().join("ds");
        std::fs::create_dir(&export).unwrap();
        let daemon = Daemon::builder().export(&export).limits(limits).start();
        Some(Served {
            daemon,
            export,
            _fs: fs,
        })
    }

    pub fn ds(&self) -> &str {
        s(&self.export)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.export.join(name)
    }
}
