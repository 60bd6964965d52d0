//! The suite's side of the testkit fixture (`openvaai_testkit::Fixture`: loop-mounted
//! filesystems, exports on them served by a real openvaaid, the real plugin library loaded by
//! the disklib stand-in, datastores, assertions): a session on export 0 and calls on it.

use std::ops::{Deref, DerefMut};

use openvaai_abi::{SessionId, VixError};
use openvaai_testkit::{Fixture, FsKind};

pub use openvaai_testkit::vix_name as name;
pub use openvaai_testkit::{assert_vix, datastore};

pub const MIB: u64 = 1 << 20;

/// The fixture and a session on export 0.
pub struct Env {
    pub fx: Fixture,
    /// A session on export 0.
    pub id: SessionId,
}

impl Deref for Env {
    type Target = Fixture;
    fn deref(&self) -> &Fixture {
        &self.fx
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut Fixture {
        &mut self.fx
    }
}

impl Env {
    /// One filesystem of `kind` with `n` exports on it (directories ds0, ds1, ...).
    pub fn new(kind: FsKind, n: usize) -> Option<Env> {
        Env::build(&[(kind, n)], "", None)
    }

    /// Exports on several filesystems (1 GiB each), daemon limits, and the timeout of the
    /// session on export 0 (others get the plugin's default).
    pub fn build(layout: &[(FsKind, usize)], limits: &str, timeout_ms: Option<u64>) -> Option<Env> {
        let fx = Fixture::on(layout, 1 << 30, limits)?;
        let id = fx.session_with(0, timeout_ms);
        Some(Env { fx, id })
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
        let (status, _) = openvaai_testkit::clone_with(
            &self.plugin,
            self.id,
            &self.s(0, src),
            &self.s(0, dst),
            flags,
            None,
            update_bytes,
            &mut cb,
        );
        (status, deltas)
    }
}
