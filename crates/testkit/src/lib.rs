//! Shared test helpers: loop-mounted filesystem images, and files with a chosen layout of
//! data, zero and hole runs.
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

mod layout;
mod testfs;

pub use layout::{assert_same_content, data_byte, write_layout, Run};
pub use testfs::{require_fs_tests, FsKind, TestFs};
