//! Hostile paths: everything resolves beneath the export, the private directory is off limits.

use std::fs;
use std::os::unix::fs::symlink;

use openvaai_engine::{CancelToken, ErrorKind};

use crate::util::*;

/// The kinds of error for `path` as a source (full and lazy), for statx and for reserve.
fn kinds_of(env: &Env, path: &str) -> [ErrorKind; 4] {
    let c = CancelToken::new();
    let err = |r: Result<(), openvaai_engine::Error>| r.unwrap_err().kind();
    [
        err(env
            .clone(path, "out", flags(false, false, false, false))
            .map(|_| ())),
        err(env
            .clone(path, "out", flags(false, true, false, false))
            .map(|_| ())),
        err(env.export.statx(path).map(|_| ())),
        err(env.export.reserve(path, &mut |_| {}, &c)),
    ]
}

/// The kind of error for `path` as a destination, if any.
fn dst_kind(env: &Env, path: &str) -> Option<ErrorKind> {
    env.clone("ok", path, flags(false, false, false, false))
        .err()
        .map(|e| e.kind())
}

fn setup(env: &Env) {
    let outside = env.fs.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    fs::write(env.p("ok"), b"fine").unwrap();
    fs::create_dir(env.p("sub")).unwrap();
    fs::create_dir(env.p(".openvaai")).unwrap();
    fs::write(env.p(".openvaai/access"), b"port secret").unwrap();
    // Symlinks leaving the export, at the first, a middle and the last component.
    symlink("../outside", env.p("esc")).unwrap();
    symlink("../../outside", env.p("sub/esc")).unwrap();
    symlink("../outside/secret", env.p("esc-file")).unwrap();
    symlink(env.fs.path().join("outside"), env.p("abs")).unwrap();
    symlink("/proc/self/root/etc/passwd", env.p("magic")).unwrap();
    symlink("/proc/self/fd/0", env.p("magic-fd")).unwrap();
    // Ways to reach the private directory other than by its name.
    symlink(".openvaai/access", env.p("to-access")).unwrap();
    symlink(".openvaai", env.p("to-private")).unwrap();
    fs::hard_link(env.p(".openvaai/access"), env.p("hardlink-access")).unwrap();
    // Symlinks that stay inside are fine.
    symlink("sub", env.p("in")).unwrap();
    symlink("../ok", env.p("sub/up-ok")).unwrap();
}

mod hostile_paths_are_refused_with_the_right_kind {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        setup(env);
        let denied = [ErrorKind::AccessDenied; 4];
        let hostile = [
            "esc/secret",
            "sub/esc/secret",
            "esc-file",
            "abs/secret",
            "magic",
            "magic-fd",
        ];
        let private = [
            ".openvaai/access",
            "./.openvaai/access",
            "to-access",
            "to-private/access",
            "hardlink-access",
        ];
        for p in hostile.iter().chain(&private) {
            assert_eq!(kinds_of(env, p), denied, "{p}");
        }
        for p in ["../ok", "sub/../../ok", "/etc/passwd", "", "a\0b", "."] {
            assert_eq!(kinds_of(env, p), [ErrorKind::InvalidArgument; 4], "{p:?}");
            assert_eq!(dst_kind(env, p), Some(ErrorKind::InvalidArgument), "{p:?}");
        }
        let long = "n".repeat(300);
        assert_eq!(kinds_of(env, &long), [ErrorKind::NameInvalid; 4]);
        assert_eq!(dst_kind(env, &long), Some(ErrorKind::NameInvalid));
        // As a destination, the directory part must stay inside; a symlink as the last
        // component is replaced (never followed).
        for p in [
            "esc/new",
            "sub/esc/new",
            "abs/new",
            "to-private/new",
            ".openvaai/new",
        ] {
            assert_eq!(dst_kind(env, p), Some(ErrorKind::AccessDenied), "{p}");
        }
        for p in ["esc-file", "magic", "to-access"] {
            assert_eq!(dst_kind(env, p), None, "{p}");
            assert_eq!(fs::read(env.p(p)).unwrap(), b"fine");
        }
        // Non-regular files.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            env.p("fifo").as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            env.p("null").as_path(),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        for p in ["fifo", "null", "sub", "in"] {
            assert_eq!(kinds_of(env, p), [ErrorKind::IncorrectFileType; 4], "{p}");
        }
        // Symlinks that stay inside resolve.
        let lazy = env.kind().reflinks();
        env.clone("sub/up-ok", "in/copy", flags(true, lazy, false, false))
            .unwrap();
        assert_eq!(fs::read(env.p("sub/copy")).unwrap(), b"fine");
        assert_eq!(env.export.statx("sub/up-ok").unwrap().total_bytes, 4);
        // Nothing was created outside or in the private directory.
        assert_eq!(names(&env.fs.path().join("outside")), vec!["secret"]);
        assert_eq!(names(&env.p(".openvaai")), vec!["access"]);
        assert_eq!(fs::read(env.p(".openvaai/access")).unwrap(), b"port secret");
        assert_eq!(
            fs::read(env.fs.path().join("outside/secret")).unwrap(),
            b"secret"
        );
    });
}

/// The suite runs twice in CI, the second time with `OPENVAAI_RESOLVER=walk`: make sure the
/// switch took, and that on this kernel (5.6+) the default is openat2.
#[test]
fn the_resolver_is_the_one_asked_for() {
    let forced = std::env::var(openvaai_engine::RESOLVER_ENV).is_ok_and(|v| v == "walk");
    let want = if forced {
        openvaai_engine::Resolver::Walk
    } else {
        openvaai_engine::Resolver::Openat2
    };
    assert_eq!(openvaai_engine::Resolver::current(), want);
}
