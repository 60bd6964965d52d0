//! Sessions under stress: timeouts, restarts, many threads, racing clones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openvaai_abi::{clone_flag as f, vix};
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

#[test]
fn every_call_returns_within_the_timeout_when_the_daemon_is_frozen() {
    let Some(env) = Env::build(&[(FsKind::Xfs, 1)], "", Some(1500)) else {
        return;
    };
    write_layout(&env.path(0, "big.vmdk"), &[Run::Data(256 * MIB)], 20).unwrap();
    write_layout(&env.path(0, "small.vmdk"), &[Run::Data(MIB)], 21).unwrap();
    // Warm: a connection sits in the pool.
    assert_vix(env.statx("small.vmdk").common.status, vix::OK);

    env.daemon.freeze();
    let margin = Duration::from_millis(1500 + 1000);
    let t = Instant::now();
    let sx = env.statx("small.vmdk");
    assert_vix(sx.common.status, vix::E_HOST_CONNECTION_LOST);
    assert!(t.elapsed() < margin, "statx took {:?}", t.elapsed());

    let t = Instant::now();
    let st = env.clone_file("big.vmdk", "copy.vmdk", 0);
    assert!(t.elapsed() < margin, "clone took {:?}", t.elapsed());
    assert!(
        st == vix::E_HOST_CONNECTION_LOST || st == vix::E_HOST_NOT_CONNECTED,
        "{}",
        name(st)
    );
    let t = Instant::now();
    let id = env
        .plugin
        .start_session(&datastore(&env.exports[0]), Some(1500));
    assert!(id.is_err());
    assert!(t.elapsed() < margin, "StartSession took {:?}", t.elapsed());
    env.daemon.thaw();
    // Nothing half there once the daemon runs again; the session works again.
    let sx = env.statx("small.vmdk");
    assert_vix(sx.common.status, vix::OK);
    let names = env.listing(0);
    assert!(names == ["big.vmdk", "small.vmdk"] || names.contains(&"copy.vmdk".to_owned()));
}

#[test]
fn a_frozen_daemon_mid_clone_fails_the_clone_within_the_timeout() {
    let Some(env) = Env::build(&[(FsKind::Xfs, 1)], "", Some(1500)) else {
        return;
    };
    write_layout(&env.path(0, "big.vmdk"), &[Run::Data(384 * MIB)], 22).unwrap();
    let daemon = &env.daemon;
    let t = Instant::now();
    let mut frozen_at = None;
    let (st, _) = env.clone_with_progress("big.vmdk", "copy.vmdk", 0, 16 * MIB, |n| {
        if n == 1 {
            daemon.freeze();
            frozen_at = Some(Instant::now());
        }
        false
    });
    let frozen_for = frozen_at.map(|f| f.elapsed());
    env.daemon.thaw();
    if let Some(d) = frozen_for {
        assert!(
            d < Duration::from_millis(1500 + 1000),
            "returned {d:?} after the freeze"
        );
        assert!(
            st == vix::E_HOST_CONNECTION_LOST || st == vix::OK,
            "{} after {:?}",
            name(st),
            t.elapsed()
        );
    }
}

#[test]
fn a_session_outlives_a_daemon_restart() {
    let Some(mut env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 23).unwrap();
    assert_vix(env.statx("a.vmdk").common.status, vix::OK);
    env.daemon.restart();
    // The pooled connection is dead and the secret is new: the plugin reconnects with the
    // rewritten access file.
    assert_vix(env.statx("a.vmdk").common.status, vix::OK);
    assert_vix(env.clone_file("a.vmdk", "b.vmdk", f::LAZY), vix::OK);
    assert_same_content(&env.path(0, "a.vmdk"), &env.path(0, "b.vmdk"));
}

#[test]
fn many_threads_share_one_session() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    write_layout(
        &env.path(0, "a.vmdk"),
        &[Run::Data(2 * MIB), Run::Hole(2 * MIB)],
        24,
    )
    .unwrap();
    let env = Arc::new(env);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let env = env.clone();
            std::thread::spawn(move || {
                for i in 0..6 {
                    let dst = format!("t{t}-{i}.vmdk");
                    let flags = if i % 2 == 0 { f::LAZY } else { f::SKIPZEROES };
                    assert_vix(env.clone_file("a.vmdk", &dst, flags | f::GUARDED), vix::OK);
                    let sx = env.statx(&dst);
                    assert_vix(sx.common.status, vix::OK);
                    assert_eq!(sx.total_bytes, 4 * MIB);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(env.listing(0).len(), 1 + 8 * 6);
}

#[test]
fn guarded_clones_racing_for_one_destination_have_one_winner() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    for i in 0..6 {
        write_layout(
            &env.path(0, &format!("src{i}.vmdk")),
            &[Run::Data(4 * MIB)],
            30 + i,
        )
        .unwrap();
    }
    let env = Arc::new(env);
    let barrier = Arc::new(std::sync::Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let (env, barrier) = (env.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let flags = if i % 2 == 0 {
                    f::GUARDED
                } else {
                    f::GUARDED | f::LAZY
                };
                (
                    i,
                    env.clone_file(&format!("src{i}.vmdk"), "dst.vmdk", flags),
                )
            })
        })
        .collect();
    let results: Vec<(u64, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter(|(_, st)| *st == vix::OK).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, st) in &results {
        assert!(
            *st == vix::OK || *st == vix::E_FILE_ALREADY_EXISTS,
            "{}",
            name(*st)
        );
    }
    let winner = winners[0].0;
    assert_same_content(
        &env.path(0, &format!("src{winner}.vmdk")),
        &env.path(0, "dst.vmdk"),
    );
    assert_eq!(env.listing(0).len(), 7, "no temporaries left");
}

#[test]
fn start_session_maps_each_failure_to_its_own_error() {
    let Some(env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    let ds = datastore(&env.exports[0]);
    // An export the daemon does not serve (its path differs), reached through a mount point
    // that holds a valid access file.
    let mut unknown = ds.clone();
    unknown.remote_mount_point = Some("/srv/not-served".into());
    assert_vix(
        env.plugin.start_session(&unknown, None).unwrap_err(),
        vix::E_NOT_SUPPORTED,
    );

    // A stale secret: authentication fails.
    let dir = tempfile::tempdir().unwrap();
    let access = openvaai_testkit::access_path(dir.path());
    std::fs::create_dir_all(access.parent().unwrap()).unwrap();
    let mut a = env.daemon.access(0);
    a.secret = openvaai_proto::auth::Secret::from_bytes([9; 32]);
    std::fs::write(&access, a.render()).unwrap();
    let mut stale = ds.clone();
    stale.local_mount_point = Some(dir.path().to_str().unwrap().into());
    assert_vix(
        env.plugin.start_session(&stale, None).unwrap_err(),
        vix::E_AUTHENTICATION_FAIL,
    );

    // A certificate that is not the pinned one.
    let mut a = env.daemon.access(0);
    a.cert_sha256 = [7; 32];
    std::fs::write(&access, a.render()).unwrap();
    assert_vix(
        env.plugin.start_session(&stale, None).unwrap_err(),
        vix::E_AUTHENTICATION_FAIL,
    );

    // Nobody listening on the port.
    let mut a = env.daemon.access(0);
    a.port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(&access, a.render()).unwrap();
    // Retried (the daemon may be restarting) until the session timeout is spent, no longer.
    let t = Instant::now();
    assert_vix(
        env.plugin.start_session(&stale, Some(1000)).unwrap_err(),
        vix::E_HOST_NOT_CONNECTED,
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(1500),
        "{took:?}"
    );

    // A garbled access file.
    std::fs::write(&access, "openvaai-access 99\n").unwrap();
    assert_vix(
        env.plugin.start_session(&stale, None).unwrap_err(),
        vix::E_NOT_SUPPORTED,
    );

    // EndSession, then the ID is dead.
    let id = env.session(0);
    assert_vix(env.plugin.end_session(id), vix::OK);
    assert_vix(env.plugin.end_session(id), vix::E_INVALID_ARG);
    let sx = env.plugin.statx(id, &env.s(0, "a.vmdk")).unwrap();
    assert_vix(sx.common.status, vix::E_INVALID_ARG);
}

#[test]
fn a_pooled_connection_the_daemon_closed_is_replaced_before_a_job_starts() {
    let limits = "idle_timeout_seconds = 1";
    let Some(env) = Env::build(&[(FsKind::Xfs, 1)], limits, None) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 25).unwrap();
    assert_vix(env.statx("a.vmdk").common.status, vix::OK);
    // The daemon closes the idle pooled connection; a clone (whose start cannot be retried
    // blindly) must not fail because of it.
    std::thread::sleep(Duration::from_millis(2500));
    assert_vix(env.clone_file("a.vmdk", "b.vmdk", f::GUARDED), vix::OK);
    std::thread::sleep(Duration::from_millis(2500));
    assert_vix(
        env.plugin
            .reserve(env.id, &env.s(0, "b.vmdk"), None)
            .unwrap(),
        vix::OK,
    );
    assert_same_content(&env.path(0, "a.vmdk"), &env.path(0, "b.vmdk"));
}

#[test]
fn end_session_closes_its_connections_with_tls_close_notify() {
    let Some(env) = Env::build(&[(FsKind::Xfs, 1)], "", None) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 30).unwrap();
    assert_vix(env.statx("a.vmdk").common.status, vix::OK);
    assert_vix(env.plugin.end_session(env.id), vix::OK);
    // The daemon sees a clean close, not a connection lost without close_notify.
    assert!(
        env.daemon
            .wait_for_log("client closed the connection", Duration::from_secs(5)),
        "{}",
        env.daemon.log_text()
    );
    assert!(
        !env.daemon.log_text().contains("close_notify"),
        "{}",
        env.daemon.log_text()
    );
}
