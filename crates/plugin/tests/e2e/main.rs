//! The plugin end to end, as ESXi drives it: the real `libopenvaai.so` loaded by the disklib
//! stand-in (and by the C host), a real `openvaaid` on loopback, real XFS, Btrfs and ext4.
//! Each test checks the result on the filesystem itself.

mod c_host;
mod cross;
mod paths;
mod primitives;
mod progress;
mod reconnect;
mod restart;
mod sessions;
mod util;

#[path = "../support/chost.rs"]
mod chost;

fn c_host_build(out: &std::path::Path) -> std::path::PathBuf {
    chost::build(out)
}
