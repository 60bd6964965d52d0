//! The daemon killed (SIGKILL) at the start, the middle and the end of a full clone, and
//! frozen (SIGSTOP) in the middle of one. Not back within the session timeout: the plugin
//! gives up in time, nothing is visible on the filesystem, and the restarted daemon ends the
//! interrupted clone by its lease and removes its partial file. Back within the timeout (a
//! restart, an upgrade): the clone goes on from its last checkpoint and ends VIX_OK.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{assert_same_content, write_layout, Run};
use rustix::process::Signal;

use crate::util::*;

const SIZE: u64 = 256 * MIB;
/// 256 MiB at 128 MiB/s: two seconds, long enough to be caught at any point.
const PACED: &str = "max_job_bytes_per_second = 134217728\nlease_seconds = 2";

#[derive(Clone, Copy, Debug, PartialEq)]
enum When {
    /// As soon as the daemon logs the job's start.
    Start,
    /// At the progress report that passes half the file.
    Middle,
    /// At the last progress report (the clone READY, unpublished).
    End,
}

fn sigkill(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

fn killed_during_a_clone(when: When) {
    let _machine = shared();
    let Some(mut fx) = on_xfs(1 << 30, 1, PACED) else {
        return;
    };
    let root = fx.exports[0].clone();
    std::fs::create_dir(root.join("vm")).unwrap();
    write_layout(&root.join("vm/src.vmdk"), &[Run::Data(SIZE)], 90).unwrap();
    std::fs::write(root.join("vm/keep.txt"), b"not a temporary").unwrap();
    // The clone replaces an older destination: a crash must leave the old one whole.
    write_layout(&root.join("vm/dst.vmdk"), &[Run::Data(4 * MIB)], 89).unwrap();
    let old = checksum(&root.join("vm/dst.vmdk"));
    let id = fx.session(0);
    let free_before = free_bytes(&root);
    let pid = fx.daemon.pid();
    let killed_at: Mutex<Option<Instant>> = Mutex::new(None);
    let kill_now = || {
        let mut k = killed_at.lock().unwrap();
        if k.is_none() {
            sigkill(pid);
            *k = Some(Instant::now());
        }
    };

    let log = fx.daemon.log.clone();
    let (status, reports) = std::thread::scope(|s| {
        if when == When::Start {
            s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("job started") {
                        kill_now();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        let mut done = 0u64;
        let mut reports = Vec::new();
        let mut on_report = |delta: u64| {
            done += delta;
            reports.push(done);
            match when {
                When::Middle if done >= SIZE / 2 => kill_now(),
                When::End if done == SIZE => kill_now(),
                _ => {}
            }
            true
        };
        let (st, _) = clone_with(
            &fx.plugin,
            id,
            &fx.s(0, "vm/src.vmdk"),
            &fx.s(0, "vm/dst.vmdk"),
            0,
            None,
            16 * MIB,
            &mut on_report,
        );
        (st, reports)
    });
    let returned = Instant::now();
    let killed = killed_at
        .lock()
        .unwrap()
        .unwrap_or_else(|| panic!("{when:?}: never killed; reports {reports:?}"));
    let took = returned - killed;
    println!(
        "killed at {when:?} after reports {reports:?}: {} in {took:?}",
        name(status)
    );
    assert!(
        status == vix::E_HOST_CONNECTION_LOST || status == vix::E_HOST_NOT_CONNECTED,
        "{when:?}: {}",
        name(status)
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "{when:?}: the plugin returned {took:?} after the kill"
    );
    if when == When::End {
        assert_eq!(reports.last(), Some(&SIZE), "killed at the last report");
    }

    // Nothing of the new destination: the old one, no temporary, and the space comes back.
    assert_eq!(
        listing(&root.join("vm")),
        ["dst.vmdk", "keep.txt", "src.vmdk"]
    );
    assert_eq!(
        checksum(&root.join("vm/dst.vmdk")),
        old,
        "{when:?}: the old destination is untouched"
    );
    assert_no_temporaries(&root);

    // A crash between the link and the rename of a replacing publish, or on a filesystem
    // without O_TMPFILE, leaves named temporaries: plant two, as publish.rs names them.
    let fakes = [
        root.join(".openvaai-tmp-0123456789abcdef"),
        root.join("vm/.openvaai-tmp-00000000deadbeef"),
    ];
    for f in &fakes {
        std::fs::write(f, vec![7u8; 1 << 20]).unwrap();
    }
    fx.daemon.kill();
    fx.daemon.restart();
    for f in &fakes {
        assert!(!f.exists(), "{} survived the restart", f.display());
    }
    assert!(root.join("vm/keep.txt").exists());
    assert!(
        fx.daemon.log_text().contains("removed stale temporaries"),
        "start-up cleanup is logged"
    );
    // The interrupted clone, if it was recorded before the kill, was resumed for its client,
    // which gave up: its lease ends it, its partial file goes, and the space comes back.
    if fx.daemon.log_text().contains("interrupted clone resumed") {
        assert!(
            fx.daemon
                .wait_for_log("lease expired", Duration::from_secs(10)),
            "{when:?}: {}",
            fx.daemon.log_text()
        );
    } else {
        assert_eq!(
            when,
            When::Start,
            "only a kill at the start can beat the record"
        );
    }
    let free_after = wait_free_back(&root, free_before, 8 * MIB);
    assert!(
        free_after + 8 * MIB >= free_before,
        "{when:?}: {} MiB free before, {} MiB after",
        free_before / MIB,
        free_after / MIB
    );
    assert!(clone_files(&root).is_empty(), "{:?}", clone_files(&root));

    // The same session (it reads the new access file) and the same clone: it works now.
    let (st, _) = clone_with(
        &fx.plugin,
        id,
        &fx.s(0, "vm/src.vmdk"),
        &fx.s(0, "vm/dst.vmdk"),
        0,
        None,
        64 * MIB,
        &mut |_| true,
    );
    assert_vix(st, vix::OK);
    assert_same_content(&root.join("vm/src.vmdk"), &root.join("vm/dst.vmdk"));
    assert_eq!(
        listing(&root.join("vm")),
        ["dst.vmdk", "keep.txt", "src.vmdk"]
    );
    assert_no_temporaries(&root);
}

#[test]
fn daemon_killed_at_the_start_of_a_clone_leaves_nothing() {
    killed_during_a_clone(When::Start);
}

#[test]
fn daemon_killed_in_the_middle_of_a_clone_leaves_nothing() {
    killed_during_a_clone(When::Middle);
}

#[test]
fn daemon_killed_after_the_last_progress_report_leaves_nothing() {
    killed_during_a_clone(When::End);
}

/// The files of clones in progress in the export's private directory.
fn clone_files(root: &std::path::Path) -> Vec<String> {
    listing(&root.join(".openvaai"))
        .into_iter()
        .filter(|n| n.starts_with(openvaai_engine::JOB_PREFIX))
        .collect()
}

/// `write_bytes` of process `pid` (`/proc/PID/io`): what it sent to the storage layer.
fn write_bytes(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

const RESUMED_SIZE: u64 = 512 * MIB;
/// 512 MiB at 256 MiB/s: two seconds of work, a checkpoint about every second.
const RESUMED_PACE: &str = "max_job_bytes_per_second = 268435456\nlease_seconds = 10";

/// The daemon stopped by `signal` at `when` (SIGKILL: a crash; SIGTERM: a stop for a restart
/// or an upgrade, which must exit within 2 s) and started again 2 s later, within the session
/// timeout (20 s): the clone ends VIX_OK with the source's bytes, its progress exactly the
/// size, nothing else left, and the work resumed, not redone.
fn restarted_during_a_clone(when: When, signal: Signal) {
    restarted_during_a_clone_with(when, signal, false)
}

/// [`restarted_during_a_clone`]; `rewrite`: the source is rewritten (same size, other bytes)
/// while the daemon is away, and the clone must be of the new content, never a mix.
fn restarted_during_a_clone_with(when: When, signal: Signal, rewrite: bool) {
    let _machine = shared();
    let Some(mut fx) = on_xfs(2 << 30, 1, RESUMED_PACE) else {
        return;
    };
    let root = fx.exports[0].clone();
    std::fs::create_dir(root.join("vm")).unwrap();
    write_layout(&root.join("vm/src.vmdk"), &[Run::Data(RESUMED_SIZE)], 91).unwrap();
    let id = fx.session_with(0, Some(20_000));
    let first = fx.daemon.pid();
    let killed: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    let kill_now = || {
        let mut k = killed.lock().unwrap();
        if k.is_none() {
            let wrote = write_bytes(first);
            let pid = rustix::process::Pid::from_raw(first).unwrap();
            let _ = rustix::process::kill_process(pid, signal);
            *k = Some((Instant::now(), wrote));
        }
    };
    let log = fx.daemon.log.clone();
    let (src, dst) = (fx.s(0, "vm/src.vmdk"), fx.s(0, "vm/dst.vmdk"));
    let src_path = root.join("vm/src.vmdk");
    let (plugin, daemon) = (&fx.plugin, &mut fx.daemon);
    let (status, reports) = std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if when == When::Start
                    && std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .contains("job started")
                {
                    kill_now();
                }
                let at = killed.lock().unwrap().map(|(t, _)| t);
                if let Some(at) = at {
                    if signal == Signal::TERM {
                        let exit = daemon.terminate(Duration::from_secs(10));
                        assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
                        let took = at.elapsed();
                        assert!(took < Duration::from_secs(2), "SIGTERM: exited in {took:?}");
                    }
                    if rewrite {
                        write_layout(&src_path, &[Run::Data(RESUMED_SIZE)], 92).unwrap();
                    }
                    std::thread::sleep(Duration::from_secs(2).saturating_sub(at.elapsed()));
                    daemon.restart();
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let mut done = 0u64;
        let mut reports = Vec::new();
        let mut on_report = |delta: u64| {
            done += delta;
            reports.push(delta);
            match when {
                When::Middle if done >= RESUMED_SIZE / 2 => kill_now(),
                When::End if done == RESUMED_SIZE => kill_now(),
                _ => {}
            }
            true
        };
        let (st, _) = clone_with(plugin, id, &src, &dst, 0, None, 16 * MIB, &mut on_report);
        (st, reports)
    });
    let (killed_at, first_wrote) = killed
        .lock()
        .unwrap()
        .unwrap_or_else(|| panic!("{when:?}: never killed"));
    println!(
        "{when:?} {signal:?}: {} {:?} after the signal",
        name(status),
        killed_at.elapsed()
    );
    assert_vix(status, vix::OK);
    assert_same_content(&root.join("vm/src.vmdk"), &root.join("vm/dst.vmdk"));
    // Every report a whole step (the last may be short), adding up to the size exactly.
    assert_eq!(
        reports.iter().sum::<u64>(),
        RESUMED_SIZE,
        "{when:?}: {reports:?}"
    );
    assert!(
        reports.iter().all(|&d| d > 0 && d <= 16 * MIB),
        "{reports:?}"
    );
    assert_eq!(listing(&root.join("vm")), ["dst.vmdk", "src.vmdk"]);
    assert_no_temporaries(&root);
    assert!(clone_files(&root).is_empty(), "{:?}", clone_files(&root));
    let second_wrote = write_bytes(fx.daemon.pid());
    println!(
        "{when:?}: the killed daemon wrote {} MiB, the restarted one {} MiB",
        first_wrote / MIB,
        second_wrote / MIB
    );
    if rewrite {
        let log = fx.daemon.log_text();
        assert!(
            log.contains("the source changed while the clone was interrupted"),
            "{log}"
        );
        // Copied again from zero: the write bound below does not apply.
        return;
    }
    assert!(
        first_wrote + second_wrote <= RESUMED_SIZE * 3 / 2,
        "{when:?}: {} + {} MiB written for {} MiB",
        first_wrote / MIB,
        second_wrote / MIB,
        RESUMED_SIZE / MIB
    );
    // Killed at the start, the job may not be recorded yet: then the plugin starts it again.
    // Else the restarted daemon went on from a checkpoint, and wrote only what was left.
    let log = fx.daemon.log_text();
    if when == When::End && !log.contains("from byte ") {
        // COMMIT won the race with the signal: the first daemon published it.
        assert!(second_wrote < 16 * MIB, "{} MiB", second_wrote / MIB);
    } else if when != When::Start {
        let from: u64 = log
            .split("from byte ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{when:?}: no resumed clone in the log:\n{log}"));
        assert!(from >= 32 * MIB, "{when:?}: resumed from byte {from}");
        assert!(
            second_wrote <= RESUMED_SIZE - from + 16 * MIB,
            "{when:?}: resumed from {} MiB, yet wrote {} MiB",
            from / MIB,
            second_wrote / MIB
        );
    }
}

#[test]
fn daemon_killed_at_the_start_of_a_clone_and_back_in_2_s_finishes_it() {
    restarted_during_a_clone(When::Start, Signal::KILL);
}

#[test]
fn daemon_killed_in_the_middle_of_a_clone_and_back_in_2_s_finishes_it_from_its_checkpoint() {
    restarted_during_a_clone(When::Middle, Signal::KILL);
}

#[test]
fn daemon_killed_with_the_clone_ready_and_back_in_2_s_publishes_it() {
    restarted_during_a_clone(When::End, Signal::KILL);
}

#[test]
fn a_source_rewritten_while_the_daemon_is_away_is_cloned_anew_never_mixed() {
    restarted_during_a_clone_with(When::Middle, Signal::KILL, true);
}

#[test]
fn daemon_restarted_by_sigterm_at_the_start_of_a_clone_finishes_it() {
    restarted_during_a_clone(When::Start, Signal::TERM);
}

#[test]
fn daemon_restarted_by_sigterm_in_the_middle_of_a_clone_finishes_it_from_its_checkpoint() {
    restarted_during_a_clone(When::Middle, Signal::TERM);
}

#[test]
fn daemon_restarted_by_sigterm_with_the_clone_ready_publishes_it() {
    restarted_during_a_clone(When::End, Signal::TERM);
}

#[test]
fn daemon_frozen_mid_clone_fails_it_in_time_and_leaves_nothing_half_there() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 1, PACED) else {
        return;
    };
    let root = fx.exports[0].clone();
    write_layout(&root.join("src.vmdk"), &[Run::Data(SIZE)], 91).unwrap();
    write_layout(&root.join("small.vmdk"), &[Run::Data(MIB)], 92).unwrap();
    let free_before = free_bytes(&root);
    let id = fx.session(0);
    let frozen = AtomicBool::new(false);
    let frozen_at: Mutex<Option<Instant>> = Mutex::new(None);
    let mut done = 0u64;
    let (st, _) = clone_with(
        &fx.plugin,
        id,
        &fx.s(0, "src.vmdk"),
        &fx.s(0, "dst.vmdk"),
        0,
        None,
        16 * MIB,
        &mut |d| {
            done += d;
            if done >= SIZE / 2 && !frozen.swap(true, Ordering::SeqCst) {
                fx.daemon.freeze();
                *frozen_at.lock().unwrap() = Some(Instant::now());
            }
            true
        },
    );
    let at = frozen_at.lock().unwrap().expect("frozen mid-clone");
    let took = at.elapsed();
    // No reply within the timeout (LOST), or the reconnect's TLS handshake unanswered.
    assert!(
        st == vix::E_HOST_CONNECTION_LOST || st == vix::E_HOST_NOT_CONNECTED,
        "{}",
        name(st)
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "returned {took:?} after the freeze"
    );
    // Still frozen: a STATX is bounded too.
    let t = Instant::now();
    let sx = fx.plugin.statx(id, &fx.s(0, "small.vmdk")).unwrap();
    let st = sx.common.status;
    assert!(
        st == vix::E_HOST_CONNECTION_LOST || st == vix::E_HOST_NOT_CONNECTED,
        "{}",
        name(st)
    );
    assert!(t.elapsed() < Duration::from_millis(TIMEOUT_MS) + MARGIN);
    fx.daemon.thaw();

    // The job goes on, reaches READY (held) and its lease ends it: never half there.
    for needles in [["lease expired", "dst.vmdk"], ["job finished", "dst.vmdk"]] {
        assert!(
            wait_for_line(&fx.daemon, &needles, Duration::from_secs(15)),
            "no `{}` line:\n{}",
            needles[0],
            fx.daemon.log_text()
        );
    }
    let names = listing(&root);
    if names.contains(&"dst.vmdk".to_owned()) {
        assert_same_content(&root.join("src.vmdk"), &root.join("dst.vmdk"));
    } else {
        assert_eq!(names, ["small.vmdk", "src.vmdk"]);
        let free_after = wait_free_back(&root, free_before, 8 * MIB);
        assert!(
            free_after + 8 * MIB >= free_before,
            "{} MiB free before, {} MiB after",
            free_before / MIB,
            free_after / MIB
        );
    }
    assert_no_temporaries(&root);
    // And the session works again.
    let (st, _) = clone_with(
        &fx.plugin,
        id,
        &fx.s(0, "small.vmdk"),
        &fx.s(0, "copy.vmdk"),
        0,
        None,
        MIB,
        &mut |_| true,
    );
    assert_vix(st, vix::OK);
    assert_same_content(&root.join("small.vmdk"), &root.join("copy.vmdk"));
}

#[test]
fn a_reservation_whose_daemon_is_killed_and_back_in_2_s_completes() {
    let _machine = shared();
    // 1 GiB at 128 MiB/s: eight seconds, killed after about two.
    let Some(mut fx) = on_xfs(2 << 30, 1, "max_job_bytes_per_second = 134217728") else {
        return;
    };
    let path = fx.exports[0].join("thick-flat.vmdk");
    write_layout(&path, &[Run::Data(MIB), Run::Hole(1023 * MIB)], 6).unwrap();
    let sum = checksum(&path);
    let id = fx.session_with(0, Some(30_000));
    let file = fx.s(0, "thick-flat.vmdk");
    let (plugin, daemon) = (&fx.plugin, &mut fx.daemon);
    let pid = daemon.pid();
    let st = std::thread::scope(|s| {
        let call = s.spawn(|| plugin.reserve(id, &file, None).unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&path).unwrap().len() > 0
            && std::fs::metadata(&path).unwrap().blocks() * 512 < 200 * MIB
        {
            assert!(Instant::now() < deadline, "the reservation never got going");
            std::thread::sleep(Duration::from_millis(20));
        }
        sigkill(pid);
        let killed = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        daemon.restart();
        let st = call.join().unwrap();
        println!(
            "reservation: {} {:?} after the kill",
            name(st),
            killed.elapsed()
        );
        st
    });
    // The restarted daemon gave back the interrupted reservation; the plugin, finding the
    // job unknown there, started it again: reserved, the data and size kept.
    assert_vix(st, vix::OK);
    let md = std::fs::metadata(&path).unwrap();
    assert!(md.blocks() * 512 >= 1 << 30, "{} KiB", md.blocks() / 2);
    assert_eq!(md.len(), 1 << 30);
    assert_eq!(checksum(&path), sum, "data and size kept");
    assert!(fx
        .daemon
        .log_text()
        .contains("interrupted reservation undone"));
}

/// A cross-export clone's record is not resumed (a record is a file any root client of the
/// export can write: one naming another export as its source is not trusted), and its
/// client starts it again at the new daemon: VIX_OK all the same.
#[test]
fn a_cross_export_clone_whose_daemon_is_killed_is_started_again_not_resumed() {
    let _machine = shared();
    let Some(mut fx) = on_xfs(2 << 30, 2, RESUMED_PACE) else {
        return;
    };
    let (from, to) = (fx.exports[0].clone(), fx.exports[1].clone());
    write_layout(&from.join("src.vmdk"), &[Run::Data(RESUMED_SIZE)], 96).unwrap();
    let id = fx.session_with(1, Some(20_000));
    let (src, dst) = (fx.s(0, "src.vmdk"), fx.s(1, "dst.vmdk"));
    let src_ds = openvaai_testkit::datastore(&from);
    let pid = fx.daemon.pid();
    let killed: Mutex<Option<Instant>> = Mutex::new(None);
    let (plugin, daemon) = (&fx.plugin, &mut fx.daemon);
    let st = std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while killed.lock().unwrap().is_none() {
                assert!(Instant::now() < deadline, "never killed");
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_secs(2));
            daemon.restart();
        });
        let mut done = 0;
        clone_with(
            plugin,
            id,
            &src,
            &dst,
            openvaai_abi::clone_flag::SRCDATASTORE_VALID,
            Some(&src_ds),
            16 * MIB,
            &mut |d| {
                done += d;
                let mut k = killed.lock().unwrap();
                if done >= RESUMED_SIZE / 2 && k.is_none() {
                    sigkill(pid);
                    *k = Some(Instant::now());
                }
                true
            },
        )
        .0
    });
    assert_vix(st, vix::OK);
    assert_same_content(&from.join("src.vmdk"), &to.join("dst.vmdk"));
    let log = fx.daemon.log_text();
    assert!(
        log.contains("interrupted cross-export clone not resumed"),
        "{log}"
    );
    assert!(clone_files(&to).is_empty(), "{:?}", clone_files(&to));
    assert_eq!(listing(&to), ["dst.vmdk"]);
}
