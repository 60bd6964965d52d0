//! The daemon killed (SIGKILL) at the start, the middle and the end of a full clone, and
//! frozen (SIGSTOP) in the middle of one: the plugin gives up within its session timeout,
//! nothing is left on the filesystem, the restarted daemon cleans up after the crash and
//! serves the same clone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{assert_same_content, write_layout, Run};

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
    let free_after = wait_free_back(&root, free_before, 8 * MIB);
    assert!(
        free_after + 8 * MIB >= free_before,
        "{when:?}: {} MiB free before, {} MiB after",
        free_before / MIB,
        free_after / MIB
    );

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
