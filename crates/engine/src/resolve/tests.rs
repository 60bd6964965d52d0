//! The walk and `openat2` agree, errno for errno and inode for inode, on a tree of hostile
//! and ordinary paths, with every flag combination the engine uses; and the walk refuses a
//! bind mount of the same filesystem (same `st_dev`) as `RESOLVE_NO_XDEV` does.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::symlink;
use std::path::Path;

use rustix::fs::{fstat, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{open_with, resolve_error, Resolver, RESOLVE};

fn id(r: Result<OwnedFd, Errno>) -> Result<(u64, u64), Errno> {
    r.map(|fd| {
        let st = fstat(&fd).unwrap();
        (st.st_dev, st.st_ino)
    })
}

fn tree(base: &Path) -> OwnedFd {
    let root = base.join("root");
    std::fs::create_dir_all(root.join("d/e")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("outside/secret"), b"s").unwrap();
    std::fs::write(root.join("f"), b"f").unwrap();
    std::fs::write(root.join("d/e/g"), b"g").unwrap();
    for (target, link) in [
        ("d", "in"),
        ("../f", "d/up"),
        ("e/../../f", "d/updown"),
        ("..", "d/e/parent"),
        ("../outside", "esc"),
        ("../../outside/secret", "d/esc"),
        ("/etc/passwd", "abs"),
        ("/proc/self/fd/0", "magic"),
        ("loop2", "loop1"),
        ("loop1", "loop2"),
        ("nowhere", "dangling"),
        ("f/x", "through-file"),
        (".", "dot"),
    ] {
        symlink(target, root.join(link)).unwrap();
    }
    rustix::fs::open(
        &root,
        OFlags::PATH | OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap()
}

const PATHS: &[&str] = &[
    "f",
    "d",
    "d/e/g",
    "d/e",
    ".",
    "d/.",
    "in/e/g",
    "d/up",
    "d/updown",
    "d/e/parent/up",
    "d/e/parent",
    "esc",
    "esc/secret",
    "d/esc",
    "abs",
    "magic",
    "loop1",
    "dangling",
    "missing",
    "f/x",
    "through-file",
    "dot/f",
    "dot",
    "d/e/g/",
    "in",
    "..",
    "d/../..",
    "/etc",
];

#[test]
fn walk_and_openat2_agree_on_every_path_and_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path());
    let nosym = RESOLVE | ResolveFlags::NO_SYMLINKS;
    let cases: &[(OFlags, ResolveFlags)] = &[
        (OFlags::PATH | OFlags::CLOEXEC, RESOLVE),
        (
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            RESOLVE,
        ),
        (
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            RESOLVE,
        ),
        (OFlags::RDWR | OFlags::CLOEXEC, RESOLVE),
        (
            OFlags::PATH | OFlags::CLOEXEC,
            RESOLVE.difference(ResolveFlags::NO_XDEV),
        ),
        (
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            nosym,
        ),
        (OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, nosym),
        (OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, RESOLVE),
    ];
    let mut compared = 0;
    for &(oflags, how) in cases {
        for p in PATHS {
            let a = id(open_with(
                Resolver::Openat2,
                root.as_fd(),
                p.as_bytes(),
                oflags,
                how,
            ));
            let w = id(open_with(
                Resolver::Walk,
                root.as_fd(),
                p.as_bytes(),
                oflags,
                how,
            ));
            assert_eq!(w, a, "{p:?} with {oflags:?} {how:?}: walk vs openat2");
            compared += 1;
        }
    }
    assert_eq!(compared, cases.len() * PATHS.len());
}

/// `..` above the root and absolute targets are refused as leaving the export, and the
/// message says so, through the walk too.
#[test]
fn the_walk_reports_escapes_as_openat2_does() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path());
    for p in ["esc/secret", "d/esc", "abs"] {
        let e = open_with(
            Resolver::Walk,
            root.as_fd(),
            p.as_bytes(),
            OFlags::PATH,
            RESOLVE,
        )
        .unwrap_err();
        assert_eq!(e, Errno::XDEV, "{p}");
        let err = resolve_error(root.as_fd(), "open", p, e);
        assert_eq!(err.kind(), crate::ErrorKind::AccessDenied);
        assert!(
            err.to_string().contains("leads outside the export"),
            "{err}"
        );
    }
}

/// A bind mount of a directory of the same filesystem has the root's `st_dev`: only the
/// mount id tells it apart, and the walk refuses to cross it (and the error says crossing).
#[test]
fn the_walk_refuses_a_bind_mount_of_the_same_filesystem() {
    let Some(fs) = openvaai_testkit::TestFs::new(openvaai_testkit::FsKind::Ext4, 64 << 20).unwrap()
    else {
        return;
    };
    let root = tree(fs.path());
    let mnt = fs.path().join("root/mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .arg("--bind")
        .arg(fs.path().join("outside"))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount --bind");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&mnt);
    let dev = |p: &str| {
        std::fs::metadata(fs.path().join(p))
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
            .unwrap()
    };
    assert_eq!(
        dev("root"),
        dev("root/mnt"),
        "a bind mount of the same filesystem"
    );
    for r in [Resolver::Openat2, Resolver::Walk] {
        for p in ["mnt", "mnt/secret"] {
            let e = open_with(r, root.as_fd(), p.as_bytes(), OFlags::PATH, RESOLVE).unwrap_err();
            assert_eq!(e, Errno::XDEV, "{r:?} {p}");
        }
        // Without NO_XDEV it is reachable: the error then names the crossing.
        let how = RESOLVE.difference(ResolveFlags::NO_XDEV);
        assert!(open_with(r, root.as_fd(), b"mnt/secret", OFlags::PATH, how).is_ok());
    }
    let err = resolve_error(root.as_fd(), "open", "mnt/secret", Errno::XDEV);
    assert!(
        err.to_string()
            .contains("crosses into another mounted filesystem"),
        "{err}"
    );
}
