//! The offloads on a local filesystem: clone, reserve, statx, capability probes, confinement
//! to an export, atomic publish.
//!
//! Everything starts from an [`Export`], a directory opened once; every path handed to it is
//! relative and resolves beneath it (see `resolve`). The semantics follow DESIGN.md,
//! "Semantics the engine must keep"; `docs/engine.md` describes them per filesystem.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod caps;
mod cleanup;
mod clone;
mod copy;
mod error;
mod export;
pub mod fiemap;
mod journal;
mod lease;
mod path;
mod private;
mod progress;
mod publish;
mod reserve;
mod resolve;
mod resume;
mod statx;

pub use caps::Capabilities;
pub use cleanup::{CleanupReport, MAX_DEPTH as CLEANUP_MAX_DEPTH};
pub use clone::{CloneFlags, CloneOutcome, StagedClone};
pub use error::{kind_of_errno, Error, ErrorKind, Side};
pub use export::Export;
pub use journal::RecoveryReport;
pub use path::{PRIVATE_DIR, TEMP_PREFIX};
pub use private::{ExportLock, LockError, PrivateDir};
pub use progress::{CancelToken, Progress};
pub use resolve::{Resolver, RESOLVER_ENV};
pub use resume::{CloneJob, CloneRecord, CloneRecords, SourceId, CHECKPOINT_EVERY, JOB_PREFIX};
pub use statx::{AllocType, StatX};

#[cfg(test)]
mod tests {
    /// The daemon shares exports and tokens across worker threads.
    #[test]
    fn public_types_are_send_and_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<crate::Export>();
        assert::<crate::CancelToken>();
        assert::<crate::Error>();
        assert::<crate::Capabilities>();
        // A held job keeps its staged clone until its client's COMMIT, on another thread.
        fn assert_send<T: Send + 'static>() {}
        assert_send::<crate::StagedClone>();
    }
}
