//! Progress reports and aborts through disklib's progress record.

use openvaai_abi::{clone_flag as f, vix};
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

const SIZE: u64 = 192 * MIB;

fn big_source(env: &Env) {
    write_layout(&env.path(0, "big.vmdk"), &[Run::Data(SIZE)], 11).unwrap();
}

#[test]
fn progress_deltas_add_up_to_the_file_and_respect_update_bytes() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    big_source(&env);
    for (flags, update) in [(0, 8 * MIB), (f::SKIPZEROES, 32 * MIB), (f::LAZY, MIB)] {
        let dst = format!("copy-{flags}.vmdk");
        let (status, deltas) = env.clone_with_progress("big.vmdk", &dst, flags, update, |_| false);
        assert_vix(status, vix::OK);
        assert_eq!(
            deltas.iter().sum::<u64>(),
            SIZE,
            "flags {flags}: {deltas:?}"
        );
        let (last, rest) = deltas.split_last().unwrap();
        assert!(
            rest.iter().all(|&d| d == update),
            "flags {flags}: {deltas:?}"
        );
        assert!(*last > 0);
        if flags == 0 {
            assert!(
                deltas.len() >= 2,
                "a 192 MiB copy reports more than once: {deltas:?}"
            );
        }
        assert_same_content(&env.path(0, "big.vmdk"), &env.path(0, &dst));
    }
}

/// 256 MiB of which 64 + 160 MiB are holes: a thick copy provisions each hole in one step.
fn holey_source(env: &Env) -> u64 {
    let runs = [
        Run::Data(8 * MIB),
        Run::Hole(64 * MIB),
        Run::Data(8 * MIB),
        Run::Hole(160 * MIB),
        Run::Data(16 * MIB),
    ];
    write_layout(&env.path(0, "holes.vmdk"), &runs, 12).unwrap()
}

#[test]
fn progress_over_holes_comes_in_update_bytes_steps() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let size = holey_source(&env);
    assert_eq!(size, 256 * MIB);
    for flags in [0, f::SKIPZEROES, f::LAZY] {
        let dst = format!("copy-{flags}.vmdk");
        let (status, deltas) = env.clone_with_progress("holes.vmdk", &dst, flags, MIB, |_| false);
        assert_vix(status, vix::OK);
        // One callback per updateBytes done, as the header says: never a lump.
        assert_eq!(deltas.len(), 256, "flags {flags}: {deltas:?}");
        assert!(
            deltas.iter().all(|&d| d == MIB),
            "flags {flags}: {deltas:?}"
        );
        assert_same_content(&env.path(0, "holes.vmdk"), &env.path(0, &dst));
    }
    // A size that is not a multiple of updateBytes: the rest comes last, once.
    let (status, deltas) = env.clone_with_progress("holes.vmdk", "odd.vmdk", 0, 3 * MIB, |_| false);
    assert_vix(status, vix::OK);
    let (last, rest) = deltas.split_last().unwrap();
    assert_eq!((rest.len(), *last), (85, MIB), "{deltas:?}");
    assert!(rest.iter().all(|&d| d == 3 * MIB), "{deltas:?}");
}

#[test]
fn an_abort_inside_a_hole_stops_the_callbacks_at_once() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    holey_source(&env);
    // The 20th MiB lies in the first hole, which the NAS provisions in one step.
    let (status, deltas) = env.clone_with_progress("holes.vmdk", "copy.vmdk", 0, MIB, |n| n == 20);
    assert_vix(status, vix::E_CANCELLED);
    assert_eq!(deltas, vec![MIB; 20], "no callback after the abort");
    assert_eq!(
        env.listing(0),
        ["holes.vmdk"],
        "no destination, no temporary"
    );
}

#[test]
fn aborting_at_the_first_or_a_middle_callback_leaves_nothing() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    big_source(&env);
    for abort_at in [1, 3] {
        let (status, deltas) =
            env.clone_with_progress("big.vmdk", "copy.vmdk", 0, 4 * MIB, |n| n == abort_at);
        assert_vix(status, vix::E_CANCELLED);
        assert_eq!(deltas.len(), abort_at, "no callback after the abort");
        assert_eq!(env.listing(0), ["big.vmdk"], "no destination, no temporary");
    }
    // The session is still good afterwards.
    assert_vix(env.clone_file("big.vmdk", "copy.vmdk", f::GUARDED), vix::OK);
}

#[test]
fn aborting_at_the_last_callback_leaves_nothing() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    big_source(&env);
    // A first run counts the callbacks; the second aborts at the last one.
    let (status, deltas) = env.clone_with_progress("big.vmdk", "count.vmdk", 0, 4 * MIB, |_| false);
    assert_vix(status, vix::OK);
    let last = deltas.len();
    let (status, seen) =
        env.clone_with_progress("big.vmdk", "copy.vmdk", 0, 4 * MIB, |n| n >= last);
    assert_vix(status, vix::E_CANCELLED);
    assert!(seen.len() <= last);
    assert_eq!(env.listing(0), ["big.vmdk", "count.vmdk"]);
    // And a lazy clone, whose one callback is its last.
    let (status, seen) = env.clone_with_progress("big.vmdk", "lazy.vmdk", f::LAZY, MIB, |_| true);
    assert_vix(status, vix::E_CANCELLED);
    assert_eq!(seen.len(), 1);
    assert_eq!(env.listing(0), ["big.vmdk", "count.vmdk"]);
}

#[test]
fn reserve_reports_its_progress() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let file = env.path(0, "thick.vmdk");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(256 * MIB)
        .unwrap();
    let mut sum = 0;
    let mut cb = |d: u64| {
        sum += d;
        true
    };
    let status = env
        .plugin
        .reserve(
            env.id,
            &env.s(0, "thick.vmdk"),
            Some(openvaai_host::Progress {
                update_bytes: 16 * MIB,
                callback: &mut cb,
            }),
        )
        .unwrap();
    assert_vix(status, vix::OK);
    assert_eq!(sum, 256 * MIB);
}
