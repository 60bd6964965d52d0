//! A clone whose destination is its own source (the same path, a path through a symlinked
//! directory, a hard link) is refused, and the file is left exactly as it was.

use std::os::unix::fs::MetadataExt;

use openvaai_engine::ErrorKind;

use crate::util::*;

/// (inode, size, allocated bytes, checksum, mtime): everything a rewrite would change.
fn fingerprint(env: &Env, rel: &str) -> (u64, u64, u64, u64, i64, i64) {
    let m = std::fs::metadata(env.p(rel)).unwrap();
    (
        m.ino(),
        m.len(),
        allocated(&env.p(rel)),
        checksum(&env.p(rel)),
        m.mtime(),
        m.mtime_nsec(),
    )
}

mod clone_onto_itself_is_refused_and_changes_nothing {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        std::fs::create_dir(env.p("d")).unwrap();
        write_layout(&env.p("d/a"), &[Run::Data(MIB), Run::Hole(4 * MIB)], 3).unwrap();
        std::fs::hard_link(env.p("d/a"), env.p("d/link")).unwrap();
        // Another path to the same directory.
        std::os::unix::fs::symlink("d", env.p("e")).unwrap();
        let before = fingerprint(env, "d/a");
        let names_before = tree(env.export.root());
        for dst in ["d/a", "d/./a", "d//a", "e/a", "d/link"] {
            for lazy in [false, true] {
                for (guarded, dry_run, skip) in [
                    (false, false, false),
                    (true, false, false),
                    (false, true, true),
                ] {
                    let f = flags(guarded, lazy, dry_run, skip);
                    let e = env
                        .clone("d/a", dst, f)
                        .expect_err(&format!("clone d/a onto {dst} with {f:?}"));
                    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{dst} {f:?}: {e}");
                    assert!(e.to_string().contains("own source"), "{e}");
                    assert_eq!(fingerprint(env, "d/a"), before, "{dst} {f:?}");
                    assert_eq!(tree(env.export.root()), names_before, "{dst} {f:?}");
                }
            }
        }
        // Through the hard link as the source, too.
        let e = env
            .clone("d/link", "d/a", flags(false, false, false, false))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_eq!(fingerprint(env, "d/a"), before);
        // A copy elsewhere still works.
        env.clone("d/a", "d/b", flags(false, false, false, false))
            .unwrap();
        assert_same_content(&env.p("d/a"), &env.p("d/b"));
    });
}
