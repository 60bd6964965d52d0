//! The daemon stopped and started again around the plugin's calls: a clone started while it
//! is down succeeds once it is back (within the session timeout); a session used after a
//! restart proves the new secret at once; a SIGTERM in the middle of a clone stops the daemon
//! within two seconds, keeping the clone for the next start: with none, the call ends within
//! its session timeout, nothing visible, and a later start removes the partial file when the
//! job's lease ends.

use std::time::{Duration, Instant};

use openvaai_abi::{clone_flag as f, vix};
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

const TIMEOUT_MS: u64 = 10_000;

#[test]
fn a_clone_started_while_the_daemon_restarts_succeeds_within_its_timeout() {
    let Some(mut env) = Env::build(&[(FsKind::Xfs, 1)], "", Some(TIMEOUT_MS)) else {
        return;
    };
    write_layout(&env.path(0, "src.vmdk"), &[Run::Data(4 * MIB)], 150).unwrap();
    // The session has a pooled connection to the daemon about to stop.
    assert_vix(env.statx("src.vmdk").common.status, vix::OK);
    let st = env.daemon.terminate(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "openvaaid stopped: {st:?}");
    let (src, a, b) = (env.s(0, "src.vmdk"), env.s(0, "a.vmdk"), env.s(0, "b.vmdk"));
    let id = env.id;
    let fx = &mut env.fx;
    let (plugin, ds, daemon) = (&fx.plugin, datastore(&fx.exports[0]), &mut fx.daemon);
    let began = Instant::now();
    let (old_session, new_session) = std::thread::scope(|s| {
        // A clone on the session opened before the stop, and a new session (StartSession
        // reads the stale access file and finds nobody listening) with its clone.
        let old = s.spawn(|| {
            let st = plugin
                .clone_file(id, &src, &a, f::LAZY, None, None)
                .unwrap();
            (st, began.elapsed())
        });
        let new = s.spawn(|| {
            let st = match plugin.start_session(&ds, Some(TIMEOUT_MS)) {
                Ok(id2) => {
                    let st = plugin.clone_file(id2, &src, &b, 0, None, None).unwrap();
                    assert_vix(plugin.end_session(id2), vix::OK);
                    st
                }
                Err(e) => e,
            };
            (st, began.elapsed())
        });
        std::thread::sleep(Duration::from_secs(2));
        daemon.restart();
        (old.join().unwrap(), new.join().unwrap())
    });
    for (what, (st, took)) in [("old session", old_session), ("new session", new_session)] {
        assert_eq!(name(st), name(vix::OK), "{what} after {took:?}");
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(TIMEOUT_MS),
            "{what}: {took:?}"
        );
    }
    assert_same_content(&env.path(0, "src.vmdk"), &env.path(0, "a.vmdk"));
    assert_same_content(&env.path(0, "src.vmdk"), &env.path(0, "b.vmdk"));
}

#[test]
fn a_session_used_after_a_restart_proves_the_new_secret_first() {
    let Some(mut env) = Env::new(FsKind::Xfs, 1) else {
        return;
    };
    write_layout(&env.path(0, "a.vmdk"), &[Run::Data(MIB)], 151).unwrap();
    assert_vix(env.statx("a.vmdk").common.status, vix::OK);
    env.daemon.restart();
    assert_vix(env.statx("a.vmdk").common.status, vix::OK);
    assert_vix(env.clone_file("a.vmdk", "b.vmdk", f::LAZY), vix::OK);
    let log = env.daemon.log_text();
    assert!(
        !log.contains("wrong proof"),
        "the plugin tried the old secret:\n{log}"
    );
}

#[test]
fn sigterm_mid_clone_with_no_restart_ends_the_call_in_time_and_a_later_start_cleans_up() {
    // 512 MiB at 64 MiB/s: eight seconds unless the shutdown stops it.
    let limits = "max_job_bytes_per_second = 67108864\nlease_seconds = 2";
    let Some(mut env) = Env::build(&[(FsKind::Xfs, 1)], limits, Some(TIMEOUT_MS)) else {
        return;
    };
    write_layout(&env.path(0, "src.vmdk"), &[Run::Data(512 * MIB)], 152).unwrap();
    let pid = env.daemon.pid();
    let mut terminated_at = None;
    let (st, reports) = env.clone_with_progress("src.vmdk", "dst.vmdk", 0, 16 * MIB, |n| {
        if n == 1 {
            let kill = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            assert!(kill.is_ok_and(|s| s.success()));
            terminated_at = Some(Instant::now());
        }
        false
    });
    let terminated_at = terminated_at.expect("a progress report came");
    let took = terminated_at.elapsed();
    // The daemon might have been restarting: the plugin waits for it, up to its timeout.
    assert!(
        st == vix::E_HOST_NOT_CONNECTED || st == vix::E_HOST_CONNECTION_LOST,
        "{}",
        name(st)
    );
    assert!(
        took >= Duration::from_millis(TIMEOUT_MS / 2)
            && took < Duration::from_millis(TIMEOUT_MS + 3000),
        "the call returned {took:?} after the SIGTERM (session timeout {TIMEOUT_MS} ms)"
    );
    assert!(reports.iter().sum::<u64>() < 512 * MIB, "{reports:?}");
    let exit = env.daemon.terminate(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "openvaaid exit: {exit:?}"
    );
    let log = env.daemon.log_text();
    assert!(log.contains("job suspended"), "{log}");
    assert!(!log.contains("status=HostNotConnected"), "{log}");
    // Nothing visible; the partial file and its record kept for the next start.
    assert_eq!(env.listing(0), ["src.vmdk"]);
    let private = env.path(0, ".openvaai");
    let kept = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("clone-"))
            .count()
    };
    assert_eq!(kept(&private), 2, "the partial file and its record");
    // The next start resumes it for its client, who is gone: the lease ends it.
    env.daemon.restart();
    assert!(env
        .daemon
        .wait_for_log("lease expired", Duration::from_secs(20)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while kept(&private) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(kept(&private), 0);
    assert_eq!(env.listing(0), ["src.vmdk"]);
}
