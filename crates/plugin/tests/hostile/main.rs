//! The standard NFSv4.2 backend against a hostile or flaky server: the real `libopenvaai.so`,
//! loaded as disklib loads it (`openvaai_host::Plugin`), talks to [`peer::Peer`], an NFSv4.2
//! server on loopback whose answers a test scripts operation by operation. Each scenario
//! asserts what the plugin must do whatever the server says: end within its session timeout
//! with a clear VixError, never publish a wrong or partial file, never run an operation that
//! is not idempotent twice, and leave no client id or session behind on the server.
//!
//! The tests of this binary run one at a time ([`serial`]): they share the process's
//! environment (`OPENVAAI_NFS42_PORTS`) and the host's log.

mod fs;
mod lock;
mod peer;
mod scenarios;
mod session;
mod uncertain;
mod wire;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openvaai_abi::{vix, SessionId, VixError};
use openvaai_host::{Datastore, Plugin, Progress};

use fs::Fs;
use peer::Peer;

pub const MIB: usize = 1 << 20;
/// The session timeout of these tests.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Held by each test for its whole run.
pub fn serial() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

pub use openvaai_testkit::{assert_vix, vix_name as name};

/// `n` bytes of a pattern that differs at every offset of a MiB.
pub fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

/// A peer, the plugin and a datastore on the peer's `/export`, as ESXi would describe it.
pub struct Rig {
    pub peer: Peer,
    pub plugin: Plugin,
    pub local: tempfile::TempDir,
    pub ds: Datastore,
}

impl Rig {
    /// A peer serving `files` under `/export`; its port allowed as the ESXi admin would.
    pub fn new(files: &[(&str, Vec<u8>)]) -> Rig {
        Rig::with(Fs::new(b"", files), true)
    }

    pub fn with(fs: Fs, allow_port: bool) -> Rig {
        let peer = Peer::start(fs);
        let local = tempfile::Builder::new()
            .prefix("openvaai-hostile-")
            .tempdir()
            .unwrap();
        let marker = local.path().join(".openvaai/nfs42");
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        std::fs::write(&marker, format!("port = {}\n", peer.addr.port())).unwrap();
        if allow_port {
            openvaai_testkit::guest::allow_nfs42_port(peer.addr.port());
        }
        let ds = Datastore {
            fs_type: "NFS41".into(),
            fs_version: 41,
            remote_ip: Some("127.0.0.1".into()),
            remote_mount_point: Some("/export".into()),
            local_mount_point: Some(local.path().to_str().unwrap().into()),
        };
        let mut plugin = Plugin::load(&openvaai_testkit::plugin_so()).unwrap();
        assert_vix(plugin.init(), vix::OK);
        let _ = openvaai_host::take_log();
        Rig {
            peer,
            plugin,
            local,
            ds,
        }
    }

    pub fn start(&self) -> Result<SessionId, VixError> {
        self.plugin
            .start_session(&self.ds, Some(TIMEOUT.as_millis() as u64))
    }

    /// StartSession, which must succeed.
    pub fn session(&self) -> SessionId {
        self.start()
            .unwrap_or_else(|e| panic!("StartSession: {}", name(e)))
    }

    pub fn esx(&self, name: &str) -> String {
        self.local.path().join(name).to_str().unwrap().to_owned()
    }

    /// CLONEFILE with `flags`, `update_bytes` 1 MiB: the status, the progress deltas and
    /// how long it took.
    pub fn clone(
        &self,
        id: SessionId,
        src: &str,
        dst: &str,
        flags: i32,
    ) -> (VixError, Vec<u64>, Duration) {
        let mut deltas = Vec::new();
        let mut cb = |d: u64| {
            deltas.push(d);
            // A runaway copy (more reports than any file here needs) is stopped by the
            // test, so that a failing test ends.
            deltas.len() < 64
        };
        let t = Instant::now();
        let st = self
            .plugin
            .clone_file(
                id,
                &self.esx(src),
                &self.esx(dst),
                flags,
                None,
                Some(Progress {
                    update_bytes: MIB as u64,
                    callback: &mut cb,
                }),
            )
            .unwrap();
        (st, deltas, t.elapsed())
    }

    /// STATX: its status and how long it took.
    pub fn statx(&self, id: SessionId, name: &str) -> (VixError, Duration) {
        let t = Instant::now();
        let r = self.plugin.statx(id, &self.esx(name)).unwrap();
        (r.common.status, t.elapsed())
    }

    /// EndSession, then: the server holds no client id and no session of the plugin.
    #[track_caller]
    pub fn end_and_check_nothing_left(&self, id: SessionId) {
        assert_vix(self.plugin.end_session(id), vix::OK);
        let st = self.peer.state();
        assert!(
            st.clients.is_empty() && st.sessions.is_empty(),
            "left on the server: clients {:?}, sessions {:?}",
            st.clients,
            st.sessions.keys().collect::<Vec<_>>()
        );
    }

    /// The names under `/export/.openvaai` that are the backend's temporaries.
    pub fn temporaries(&self) -> Vec<String> {
        self.peer
            .state()
            .fs
            .names(".openvaai")
            .into_iter()
            .filter(|n| n.starts_with("nfs42-tmp-"))
            .collect()
    }

    /// The host's log since the last call, one string per message.
    pub fn log(&self) -> Vec<String> {
        openvaai_host::take_log()
            .into_iter()
            .map(|l| l.text)
            .collect()
    }
}

/// A call must end within its session timeout (and a little for the test's own work).
#[track_caller]
pub fn assert_bounded(took: Duration, what: &str) {
    assert!(
        took <= TIMEOUT + Duration::from_millis(1500),
        "{what} took {took:?}, past the session timeout {TIMEOUT:?}"
    );
}
