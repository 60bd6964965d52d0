//! Random sparse layouts: every clone mode reads back identical.

use openvaai_engine::{AllocType, CancelToken};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::util::*;

fn run_strategy() -> impl Strategy<Value = Run> {
    // Lengths are deliberately not multiples of the block size.
    prop_oneof![
        (1u64..400_000).prop_map(Run::Data),
        (1u64..400_000).prop_map(Run::Zero),
        (1u64..2_000_000).prop_map(Run::Hole),
    ]
}

fn check(env: &Env, runs: &[Run], seed: u64) -> Result<(), TestCaseError> {
    let size = write_layout(&env.p("src"), runs, seed).unwrap();
    let c = CancelToken::new();
    let saved = env.zfs().then(|| env.bclone_saved());
    let mut modes = vec![("full", false, false), ("thin", false, true)];
    if env.kind().reflinks() {
        modes.push(("lazy", true, false));
    }
    for (name, lazy, skip) in modes {
        let out = env
            .export
            .clone_file(
                &env.export,
                "src",
                name,
                flags(false, lazy, false, skip),
                &mut |_| {},
                &c,
            )
            .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        prop_assert_eq!(out.bytes, size);
        assert_same_content(&env.p("src"), &env.p(name));
        if !lazy && !env.zfs() {
            prop_assert_eq!(extents(&env.p(name)).1, 0, "{} shares extents", name);
        }
        if let Some(saved) = saved.filter(|_| !lazy) {
            prop_assert_eq!(env.bclone_saved(), saved, "{} shares blocks", name);
        }
        if name == "full" && size > 0 && env.zfs() {
            // Not thick on ZFS, and never reported as reserved-but-unwritten.
            let st = env.statx_synced(name);
            prop_assert!(st.alloc_type != AllocType::Lzt, "{:?}", st);
        } else if name == "full" && size > 0 {
            let st = env.export.statx(name).unwrap();
            prop_assert!(
                st.alloc_type != AllocType::Thin,
                "thick copy has a hole: {:?}",
                st
            );
        }
        if name == "thin" {
            // Never more allocated than the source's non-zero data plus a block per run edge.
            let data: u64 = runs
                .iter()
                .map(|r| if let Run::Data(n) = r { *n } else { 0 })
                .sum();
            let slack = 2 * 65536 * (runs.len() as u64 + 1);
            prop_assert!(allocated(&env.p(name)) <= data + slack, "thin copy too big");
        }
    }
    Ok(())
}

mod random_layouts_clone_identically {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let config = Config {
            cases: 16,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let strategy = (
            proptest::collection::vec(run_strategy(), 0..8),
            any::<u64>(),
        );
        runner
            .run(&strategy, |(runs, seed)| check(env, &runs, seed))
            .unwrap();
    });
}
