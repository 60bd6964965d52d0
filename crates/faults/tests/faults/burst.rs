//! Bursts: many lazy clones at once from as many sessions (a linked-clone pool deploy) with
//! `max_jobs` = 16. Every one succeeds: the jobs past the limit wait their turn in the
//! daemon's queue, none is refused with OBJECT_IS_BUSY, and a clone queued for longer than
//! its session timeout is not given up by the plugin. A session the daemon's connection
//! limit turns away at accept tries again within its timeout.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use openvaai_abi::{clone_flag as f, vix};
use openvaai_testkit::{assert_same_content, write_layout, Run};

use crate::util::*;

/// The session timeout of the burst's clients.
const BURST_TIMEOUT_MS: u64 = 10_000;

/// `n` sessions opened at once, then `n` lazy clones of one template at once, one per session.
fn burst(n: usize) {
    let _machine = exclusive();
    // The daemon's other limits are its defaults: a burst of hundreds must fit them.
    let Some(fx) = on_xfs(1 << 30, 1, "max_jobs = 16") else {
        return;
    };
    let root = fx.exports[0].clone();
    write_layout(
        &root.join("template.vmdk"),
        &[Run::Data(MIB), Run::Hole(MIB)],
        140,
    )
    .unwrap();
    let ds = datastore(&root);
    let template = fx.s(0, "template.vmdk");
    let opened = Barrier::new(n);
    let began = Instant::now();
    let outcomes: Vec<Result<Duration, String>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (fx, ds, template, opened) = (&fx, &ds, &template, &opened);
                s.spawn(move || {
                    let session = fx.plugin.start_session(ds, Some(BURST_TIMEOUT_MS));
                    opened.wait();
                    let id = session.map_err(|e| format!("StartSession: {}", name(e)))?;
                    let t = Instant::now();
                    let st = fx
                        .plugin
                        .clone_file(
                            id,
                            template,
                            &fx.s(0, &format!("vm{i}.vmdk")),
                            f::LAZY,
                            None,
                            None,
                        )
                        .unwrap();
                    let took = t.elapsed();
                    assert_vix(fx.plugin.end_session(id), vix::OK);
                    if st == vix::OK {
                        Ok(took)
                    } else {
                        Err(format!("clone: {}", name(st)))
                    }
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let elapsed = began.elapsed();
    let failures: Vec<(usize, &String)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().err().map(|e| (i, e)))
        .collect();
    let log = fx.daemon.log_text();
    assert!(
        failures.is_empty(),
        "{} of {n} failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        log_lines(&log, &["WARN"]).join("\n")
    );
    let slowest = outcomes.iter().flatten().max().copied().unwrap_or_default();
    println!("{n} lazy clones from {n} sessions in {elapsed:?}, the slowest clone {slowest:?}");
    // More than max_jobs were in flight at once: the queue was used, and never refused.
    assert!(
        !log_lines(&log, &["job queued"]).is_empty(),
        "no job waited: the burst did not exceed max_jobs"
    );
    assert!(log_lines(&log, &["job refused"]).is_empty());
    let mut want: Vec<String> = (0..n).map(|i| format!("vm{i}.vmdk")).collect();
    want.push("template.vmdk".into());
    want.sort();
    assert_eq!(listing(&root), want);
    for i in 0..n {
        assert_same_content(
            &root.join("template.vmdk"),
            &root.join(format!("vm{i}.vmdk")),
        );
    }
    assert_no_temporaries(&root);
}

#[test]
fn a_burst_of_64_lazy_clones_from_64_sessions_all_succeed() {
    burst(64);
}

#[test]
fn a_burst_of_512_lazy_clones_from_512_sessions_all_succeed() {
    burst(512);
}

#[test]
fn a_clone_queued_longer_than_its_session_timeout_is_not_given_up() {
    let _machine = shared();
    // One slot, held by a full clone paced to about three seconds.
    let limits = "max_jobs = 1\nmax_job_bytes_per_second = 33554432";
    let Some(fx) = on_xfs(1 << 30, 1, limits) else {
        return;
    };
    let root = fx.exports[0].clone();
    write_layout(&root.join("big.vmdk"), &[Run::Data(96 * MIB)], 141).unwrap();
    write_layout(&root.join("small.vmdk"), &[Run::Data(MIB)], 142).unwrap();
    let full = fx.session_with(0, Some(TIMEOUT_MS));
    // A session timeout far shorter than the wait behind the full clone.
    let lazy = fx.session_with(0, Some(1000));
    let (full_st, (lazy_st, lazy_took)) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            clone_with(
                &fx.plugin,
                full,
                &fx.s(0, "big.vmdk"),
                &fx.s(0, "big-copy.vmdk"),
                0,
                None,
                8 * MIB,
                &mut |_| true,
            )
            .0
        });
        assert!(wait_for_line(
            &fx.daemon,
            &["job started", "big.vmdk"],
            Duration::from_secs(10)
        ));
        let (st, took) = clone_with(
            &fx.plugin,
            lazy,
            &fx.s(0, "small.vmdk"),
            &fx.s(0, "small-copy.vmdk"),
            f::LAZY,
            None,
            MIB,
            &mut |_| true,
        );
        (first.join().unwrap(), (st, took))
    });
    assert_vix(full_st, vix::OK);
    assert_vix(lazy_st, vix::OK);
    assert!(
        lazy_took > Duration::from_millis(1500),
        "the lazy clone waited behind the full one: {lazy_took:?}"
    );
    assert!(!log_lines(&fx.daemon.log_text(), &["job queued", "small.vmdk"]).is_empty());
    assert_same_content(&root.join("small.vmdk"), &root.join("small-copy.vmdk"));
    assert_same_content(&root.join("big.vmdk"), &root.join("big-copy.vmdk"));
}

#[test]
fn a_session_refused_at_accept_tries_again_and_gets_in_once_a_connection_frees() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 1, "max_connections = 1") else {
        return;
    };
    // The one connection the daemon takes is this session's.
    let first = fx.session(0);
    let ds = datastore(&fx.exports[0]);
    let (second, took) = std::thread::scope(|s| {
        let t = s.spawn(|| {
            let began = Instant::now();
            let id = fx.plugin.start_session(&ds, Some(5000));
            (id, began.elapsed())
        });
        assert!(wait_for_line(
            &fx.daemon,
            &["too many connections"],
            Duration::from_secs(5)
        ));
        std::thread::sleep(Duration::from_millis(500));
        assert_vix(fx.plugin.end_session(first), vix::OK);
        t.join().unwrap()
    });
    let second = second.unwrap_or_else(|e| panic!("StartSession after {took:?}: {}", name(e)));
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let sx = fx.plugin.statx(second, &fx.s(0, ".")).unwrap();
    assert!(
        sx.common.status != vix::E_HOST_NOT_CONNECTED,
        "{}",
        name(sx.common.status)
    );
}
