//! A clone's two phases as a value: staged (every byte in place, nothing visible), then
//! published or dropped (discarded), after the code that staged it has returned.

use std::fs;

use openvaai_engine::{CancelToken, ErrorKind, Export, Progress, StagedClone};

use crate::util::*;

fn stage(export: &Export, dst: &str, guarded: bool, seen: &mut Vec<Progress>) -> StagedClone {
    export
        .stage_clone(
            export,
            "src",
            dst,
            flags(guarded, false, false, false),
            &mut |p| seen.push(p),
            &CancelToken::new(),
        )
        .unwrap()
}

mod a_staged_clone_is_invisible_until_published_and_gone_when_dropped {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(3 * MIB + 5)], 11).unwrap();
        let mut seen = Vec::new();
        let staged = stage(&env.export, "dst", true, &mut seen);
        // The last report came with every byte done, and nothing has a name yet.
        let total = 3 * MIB + 5;
        assert_eq!(seen.last(), Some(&Progress { done: total, total }));
        assert_eq!(staged.outcome().bytes, total);
        assert_eq!(names(env.export.root()), vec!["src"]);
        drop(staged);
        assert_eq!(names(env.export.root()), vec!["src"], "discarded");

        // Kept across threads, then published.
        let staged = stage(&env.export, "dst", true, &mut Vec::new());
        let outcome = std::thread::spawn(move || staged.publish())
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(outcome.bytes, total);
        assert_same_content(&env.p("src"), &env.p("dst"));
        assert_eq!(names(env.export.root()), vec!["dst", "src"]);
    });
}

mod a_guarded_publish_loses_to_a_name_that_appeared_while_staged {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(100 * KIB)], 12).unwrap();
        let guarded = stage(&env.export, "dst", true, &mut Vec::new());
        let replacing = stage(&env.export, "other", false, &mut Vec::new());
        fs::write(env.p("dst"), b"came first").unwrap();
        fs::write(env.p("other"), b"replaced").unwrap();
        let e = guarded.publish().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert_eq!(fs::read(env.p("dst")).unwrap(), b"came first");
        replacing.publish().unwrap();
        assert_same_content(&env.p("src"), &env.p("other"));
        assert_eq!(names(env.export.root()), vec!["dst", "other", "src"]);
    });
}

mod a_staged_dry_run_creates_nothing {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        write_layout(&env.p("src"), &[Run::Data(100 * KIB)], 13).unwrap();
        let staged = env
            .export
            .stage_clone(
                &env.export,
                "src",
                "dst",
                flags(true, false, true, false),
                &mut |_| {},
                &CancelToken::new(),
            )
            .unwrap();
        assert_eq!(staged.publish().unwrap().copied, 0);
        assert_eq!(names(env.export.root()), vec!["src"]);
    });
}
