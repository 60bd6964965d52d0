//! Full clones that outlive their process: a clone staged for a job, its process killed half
//! way (a real exit, in a child process, with nothing cleaned up), then resumed by another
//! process from its record's checkpoint.

use std::fs;
use std::path::Path;
use std::process::Command;

use openvaai_engine::{CancelToken, CloneJob, CloneRecord, ErrorKind, Export, Progress};

use crate::util::*;

const JOB: u64 = 0x5eed_0000_0000_0001;
const CHILD: &str = "OPENVAAI_RESUME_CHILD";

/// The child's half: stages a clone of `src` to `dst` for job [`JOB`] in the export at
/// `$OPENVAAI_RESUME_CHILD` and exits, as a kill would stop it, once `$…_AT` bytes are done.
#[test]
#[ignore = "the child process of the resume tests"]
fn child() {
    let Ok(root) = std::env::var(CHILD) else {
        return;
    };
    let at: u64 = std::env::var(format!("{CHILD}_AT"))
        .unwrap()
        .parse()
        .unwrap();
    let thin = std::env::var(format!("{CHILD}_THIN")).is_ok();
    let export = Export::open(Path::new(&root)).unwrap();
    let job = CloneJob {
        id: JOB,
        src_export: None,
        hold: true,
    };
    let staged = export.stage_clone_job(
        &export,
        job,
        "src",
        "dir/dst",
        flags(true, false, false, thin),
        &mut |p| {
            if p.done >= at {
                // No destructor runs: the partial file and its record stay, as after a kill.
                std::process::exit(9);
            }
        },
        &CancelToken::new(),
    );
    panic!(
        "the clone ended before {at} bytes: {:?}",
        staged.map(|s| s.outcome())
    );
}

/// Runs [`child`] on `env`'s export until `at` bytes are done; it must have exited as told.
fn killed_at(env: &Env, at: u64, thin: bool) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "resume::child", "--ignored", "--test-threads=1"])
        .env(CHILD, env.export.root())
        .env(format!("{CHILD}_AT"), at.to_string());
    if thin {
        cmd.env(format!("{CHILD}_THIN"), "1");
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(9),
        "the child: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn record(env: &Env) -> CloneRecord {
    let records = env.export.clone_records().unwrap();
    assert!(records.unreadable.is_empty(), "{records:?}");
    assert_eq!(records.found.len(), 1, "{records:?}");
    records.found.into_iter().next().unwrap()
}

fn private(env: &Env) -> Vec<String> {
    names(&env.p(".openvaai"))
        .into_iter()
        .filter(|n| n.starts_with("clone-"))
        .collect()
}

fn resume(
    env: &Env,
    record: &CloneRecord,
    seen: &mut Vec<Progress>,
) -> openvaai_engine::StagedClone {
    env.export
        .resume_clone(
            &env.export,
            record,
            &mut |p| seen.push(p),
            &CancelToken::new(),
        )
        .unwrap()
}

/// 96 MiB + 5 of data with two holes: past the first checkpoint (32 MiB) at the kill.
fn source(env: &Env, seed: u64) -> u64 {
    fs::create_dir_all(env.p("dir")).unwrap();
    let layout = [
        Run::Data(40 * MIB),
        Run::Hole(8 * MIB),
        Run::Data(40 * MIB),
        Run::Hole(8 * MIB),
        Run::Data(5),
    ];
    write_layout(&env.p("src"), &layout, seed).unwrap();
    96 * MIB + 5
}

mod a_killed_clone_resumes_from_its_checkpoint_and_publishes_the_same_bytes {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        for thin in [false, true] {
            let total = source(env, 41);
            killed_at(env, 80 * MIB, thin);
            let rec = record(env);
            assert_eq!(rec.job, JOB);
            assert_eq!(rec.source.size, total);
            // A checkpoint after the first segment (32 MiB), and none past the kill.
            assert!((32 * MIB..=80 * MIB).contains(&rec.done), "thin {thin}: {rec:?}");
            assert_eq!(rec.done % MIB, 0);
            assert!(rec.hold && rec.flags.guarded && rec.flags.skip_zeroes == thin);
            assert!(!env.p("dir/dst").exists(), "nothing visible before the publish");
            assert_eq!(private(env).len(), 2, "the partial file and its record");

            let mut seen = Vec::new();
            let staged = resume(env, &rec, &mut seen);
            // Reports go on from the checkpoint, never back and never past the size.
            assert!(seen.first().unwrap().done > rec.done, "{seen:?}");
            assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
            assert_eq!(seen.last(), Some(&Progress { done: total, total }));
            assert!(staged.is_resumable());
            staged.publish().unwrap();
            assert_same_content(&env.p("src"), &env.p("dir/dst"));
            if thin {
                assert!(allocated(&env.p("dir/dst")) < 90 * MIB, "the holes stay holes");
            } else {
                assert!(allocated(&env.p("dir/dst")) >= 96 * MIB, "thick: no holes");
            }
            assert!(private(env).is_empty(), "{:?}", private(env));
            fs::remove_file(env.p("dir/dst")).unwrap();
        }
    });
}

mod a_source_changed_while_interrupted_is_copied_again_from_the_start {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        let total = source(env, 42);
        killed_at(env, 80 * MIB, false);
        let rec = record(env);
        assert!(rec.done >= 32 * MIB, "{rec:?}");
        // Rewritten in place during the outage: same size, other bytes.
        source(env, 43);
        let mut seen = Vec::new();
        let staged = resume(env, &rec, &mut seen);
        assert!(seen.first().unwrap().done <= 16 * MIB, "started over: {seen:?}");
        assert_eq!(seen.last().unwrap().done, total);
        staged.publish().unwrap();
        assert_same_content(&env.p("src"), &env.p("dir/dst"));
        assert!(private(env).is_empty());
    });
}

mod a_clone_killed_when_ready_is_published_after_the_restart {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        let total = source(env, 44);
        killed_at(env, total, false);
        let rec = record(env);
        assert_eq!(rec.done, total, "every byte checkpointed");
        let mut seen = Vec::new();
        let staged = resume(env, &rec, &mut seen);
        assert_eq!(seen, vec![Progress { done: total, total }], "nothing copied again");
        assert_eq!(staged.outcome().copied, 0);
        staged.publish().unwrap();
        assert_same_content(&env.p("src"), &env.p("dir/dst"));
        assert!(private(env).is_empty());
    });
}

mod a_resumed_guarded_clone_loses_to_a_name_that_appeared_and_leaves_nothing {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        source(env, 45);
        killed_at(env, 80 * MIB, false);
        let rec = record(env);
        fs::write(env.p("dir/dst"), b"came first").unwrap();
        let e = env
            .export
            .resume_clone(&env.export, &rec, &mut |_| {}, &CancelToken::new())
            .err()
            .expect("GUARDED");
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert_eq!(fs::read(env.p("dir/dst")).unwrap(), b"came first");
        // The caller gives up on the job: its files go.
        env.export.discard_clone(rec.job).unwrap();
        assert!(private(env).is_empty(), "{:?}", private(env));
    });
}

mod a_kept_clone_is_found_again_and_a_dropped_one_leaves_nothing {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        let total = source(env, 46);
        let stage = |hold| {
            env.export
                .stage_clone_job(
                    &env.export,
                    CloneJob {
                        id: JOB,
                        src_export: None,
                        hold,
                    },
                    "src",
                    "dir/dst",
                    flags(false, false, false, false),
                    &mut |_| {},
                    &CancelToken::new(),
                )
                .unwrap()
        };
        drop(stage(false));
        assert!(private(env).is_empty(), "discarded: {:?}", private(env));
        stage(false).keep_for_restart();
        let rec = record(env);
        assert_eq!((rec.done, rec.hold, rec.flags.guarded), (total, false, false));
        // A dry run has nothing to resume.
        let dry = env.export.stage_clone_job(
            &env.export,
            CloneJob {
                id: JOB + 1,
                src_export: None,
                hold: false,
            },
            "src",
            "dir/dry",
            flags(false, false, true, false),
            &mut |_| {},
            &CancelToken::new(),
        );
        assert!(!dry.unwrap().is_resumable());
        resume(env, &rec, &mut Vec::new()).publish().unwrap();
        assert_same_content(&env.p("src"), &env.p("dir/dst"));
        assert!(private(env).is_empty());
    });
}

mod records_that_are_not_exactly_ours_are_refused_and_orphans_removed {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        env.export.private_dir().unwrap();
        let dir = env.p(".openvaai");
        fs::write(dir.join("clone-00000000000000aa.job"), "openvaai clone job 9\n").unwrap();
        fs::write(dir.join("clone-00000000000000bb.part"), b"orphan").unwrap();
        fs::write(dir.join("unrelated"), b"kept").unwrap();
        let records = env.export.clone_records().unwrap();
        assert!(records.found.is_empty());
        assert_eq!(records.unreadable.len(), 1, "{records:?}");
        assert_eq!(records.unreadable[0].0, "clone-00000000000000aa.job");
        assert!(!dir.join("clone-00000000000000bb.part").exists(), "an orphan part");
        assert!(dir.join("unrelated").exists());
    });
}

mod a_clone_killed_between_its_record_and_its_first_byte_resumes_from_zero {
    use super::*;
    per_fs!(not_zfs: SMALL, |env: &Env| {
        let total = source(env, 47);
        killed_at(env, 80 * MIB, false);
        let rec = record(env);
        // The state a kill leaves right after the record is first written: done 0, and the
        // partial file not sized yet.
        let dir = env.p(".openvaai");
        let job = dir.join(format!("clone-{JOB:016x}.job"));
        let text = fs::read_to_string(&job).unwrap();
        let text = text.replace(&format!("done {}", rec.done), "done 0");
        fs::write(&job, text).unwrap();
        fs::File::options()
            .write(true)
            .open(dir.join(format!("clone-{JOB:016x}.part")))
            .unwrap()
            .set_len(0)
            .unwrap();
        let rec = record(env);
        assert_eq!(rec.done, 0);
        let mut seen = Vec::new();
        resume(env, &rec, &mut seen).publish().unwrap();
        assert_eq!(seen.last().unwrap().done, total);
        assert_same_content(&env.p("src"), &env.p("dir/dst"));
        assert!(private(env).is_empty());
    });
}
