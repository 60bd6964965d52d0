//! cleanup_stale.

use std::fs;

use crate::util::*;

mod cleanup_removes_only_stale_temporaries {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        fs::create_dir_all(env.p("a/b/c")).unwrap();
        fs::create_dir_all(env.p(".openvaai")).unwrap();
        for p in [
            ".openvaai-tmp-1",
            "a/.openvaai-tmp-2",
            "a/b/c/.openvaai-tmp-3",
        ] {
            fs::write(env.p(p), b"stale").unwrap();
        }
        for p in [
            "keep",
            "a/b/.openvaai-tmpX",
            "a/openvaai-tmp-4",
            ".openvaai/.openvaai-tmp-5",
        ] {
            fs::write(env.p(p), b"keep").unwrap();
        }
        fs::create_dir(env.p("a/.openvaai-tmp-dir")).unwrap();
        std::os::unix::fs::symlink("../..", env.p("a/b/loop")).unwrap();
        assert_eq!(env.export.cleanup_stale().unwrap(), 3);
        assert_eq!(env.export.cleanup_stale().unwrap(), 0);
        let left = tree(env.export.root());
        assert!(
            left.iter()
                .all(|p| !p.ends_with("tmp-1") && !p.ends_with("tmp-2") && !p.ends_with("tmp-3")),
            "{left:?}"
        );
        for p in [
            "keep",
            "a/b/.openvaai-tmpX",
            "a/openvaai-tmp-4",
            ".openvaai/.openvaai-tmp-5",
            "a/.openvaai-tmp-dir",
        ] {
            assert!(env.p(p).exists(), "{p} removed");
        }
    });
}
