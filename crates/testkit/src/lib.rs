//! Shared test helpers: loop-mounted filesystem images, files with a chosen layout of data,
//! zero and hole runs, the workspace's built programs, a real `openvaaid` to test against, and
//! the fixture of the suites that drive the real plugin against it (`Fixture`).
//!
//! ```no_run
//! use openvaai_testkit::{FsKind, TestFs};
//! let Some(fs) = TestFs::new(FsKind::Xfs, 512 << 20).unwrap() else { return };
//! std::fs::write(fs.path().join("f"), b"hello").unwrap();
//! ```
//!
//! Filesystem tests need root and the mkfs tools (xfsprogs, btrfs-progs, e2fsprogs). Without
//! them [`TestFs::new`] prints why and returns `None`; with `OPENVAAI_REQUIRE_FS_TESTS=1` (CI)
//! it panics instead, so a missing tool cannot turn into a silently green run.
#![deny(unsafe_code)]

mod artifacts;
mod daemon;
pub mod dns;
mod fixture;
pub mod guest;
mod layout;
pub mod replay;
mod testfs;

pub use artifacts::{cli_bin, daemon_bin, plugin_so, profile_dir};
pub use daemon::{access_path, export_listing, log_lines, wait_for_line, Daemon, DaemonBuilder};
pub use fixture::{
    assert_no_temporaries, assert_vix, clone_with, datastore, datastore_at, free_bytes,
    load_plugin, temporaries, try_load_plugin, vix_name, wait_free_back, Fixture,
};
pub use layout::{assert_same_content, data_byte, host_copy, write_layout, Run};
pub use testfs::{require_fs_tests, FsKind, TestFs, ZFS_BCLONE_PARAM};
