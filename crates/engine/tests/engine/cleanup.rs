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
        let report = env.export.cleanup_stale();
        let mut removed = report.removed_paths.clone();
        removed.sort();
        assert_eq!(
            removed,
            [
                ".openvaai-tmp-1",
                "a/.openvaai-tmp-2",
                "a/b/c/.openvaai-tmp-3"
            ]
        );
        assert_eq!((report.removed, report.problem_count), (3, 0), "{report:?}");
        assert_eq!(env.export.cleanup_stale().removed, 0);
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

mod cleanup_reports_what_it_did_not_look_at {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        // One level deeper than the walk goes, with a temporary at the bottom.
        let deep = vec!["d"; openvaai_engine::CLEANUP_MAX_DEPTH + 1].join("/");
        fs::create_dir_all(env.p(&deep)).unwrap();
        fs::write(env.p(&format!("{deep}/.openvaai-tmp-deep")), b"x").unwrap();
        fs::write(env.p("d/.openvaai-tmp-shallow"), b"x").unwrap();
        let report = env.export.cleanup_stale();
        assert_eq!(report.removed_paths, ["d/.openvaai-tmp-shallow"]);
        assert_eq!(report.problem_count, 1, "{report:?}");
        let deepest_seen = vec!["d"; openvaai_engine::CLEANUP_MAX_DEPTH + 1].join("/");
        assert_eq!(
            report.problems,
            [format!(
                "{deepest_seen}: deeper than {} levels: not looked at",
                openvaai_engine::CLEANUP_MAX_DEPTH
            )]
        );
    });
}
