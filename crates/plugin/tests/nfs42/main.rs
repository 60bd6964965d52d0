//! The standard NFSv4.2 backend end to end: the real `libopenvaai.so` loaded as disklib loads
//! it (`openvaai_host::Plugin`), against real knfsd in the guest (`openvaai_testkit::guest`),
//! on XFS (reflink) and ext4 exports reached on 127.0.0.1 through qemu's port forward. Each
//! result is judged by the server's own view of the file (`Knfsd::view`, `stat` and FIEMAP in
//! the guest). Plus the decline of a datastore with neither marker, with no network at all.
//!
//! The tests of this binary run one at a time (the decline test counts the process's
//! sockets).

mod concurrent;
mod copy;
mod crash;
mod decline;
mod guest;
mod owner;
// The build of the CLI before a suite runs it (`openvaai check` on ZFS).
#[path = "../support/guest.rs"]
#[allow(dead_code)]
mod support;

use std::sync::{Mutex, MutexGuard};

use openvaai_host::Datastore;

/// Held by each test for its whole run.
pub fn serial() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A datastore as ESXi describes an NFS 4.1 mount of `export` from `remote_ip`, mounted at
/// `local` (here a directory that only holds the markers).
pub fn datastore(remote_ip: &str, export: &str, local: &std::path::Path) -> Datastore {
    Datastore {
        fs_type: "NFS41".into(),
        fs_version: 41,
        remote_ip: Some(remote_ip.into()),
        remote_mount_point: Some(export.into()),
        local_mount_point: Some(local.to_str().unwrap().into()),
    }
}

pub use openvaai_testkit::{assert_vix, vix_name as name};
