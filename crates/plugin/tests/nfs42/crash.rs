//! The temporaries of the standard backend when hosts race, crash or lose the server: a
//! crashed host's temporary is removed at the next StartSession while one a live session
//! is writing is kept; four sessions racing GUARDED clones to one name have one winner and
//! leave nothing; a server frozen mid-copy (qemu stopped with SIGSTOP) fails the clone
//! within the bound, and what it left is gone after the next StartSession.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use openvaai_abi::clone_flag::GUARDED;
use openvaai_abi::vix;
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::FsKind;

use crate::copy::{guest, loaded, prepare, Store};
use crate::{assert_vix, name, serial};

const MIB: u64 = 1 << 20;

/// Sends `signal` (`STOP`, `CONT`) to the guest's qemu (started by this test's fixture).
fn signal_guest(nfs: &Knfsd, signal: &str) {
    let pid = std::fs::read_to_string(nfs.dir().join("qemu.pid")).unwrap();
    let st = std::process::Command::new("kill")
        .args([&format!("-{signal}"), pid.trim()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{signal} {pid}");
}

#[test]
fn temporaries_races_and_a_frozen_server_on_knfsd() {
    let _one = serial();
    let Some(nfs) = guest(&[("ext4", FsKind::Ext4)]) else {
        return;
    };
    let plugin = loaded();
    let export = nfs.export("ext4");
    prepare(&nfs, &export);
    crashed_and_live(&nfs, &plugin, &export);
    racing_guarded(&nfs, &plugin);
    frozen_server(&nfs, &plugin);
}

/// A temporary nobody holds open (its host crashed) goes at StartSession; other files of
/// `.openvaai/` stay; a temporary a live session writes stays too.
fn crashed_and_live(nfs: &Knfsd, plugin: &openvaai_host::Plugin, export: &str) {
    nfs.run(&format!(
        "cd {export}/.openvaai && dd if=/dev/zero of=nfs42-tmp-dead-1 bs=1M count=1 \
         2>/dev/null && : > nfs42-tmp-dead-2 && : > unrelated"
    ))
    .unwrap();
    let _ = openvaai_host::take_log();
    let s = Store::open(nfs, plugin, "ext4");
    let said: Vec<String> = openvaai_host::take_log()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert!(s.temporaries().is_empty(), "{:?}", s.temporaries());
    assert_eq!(s.listing(".openvaai"), ["nfs42", "unrelated"]);
    assert!(
        said.iter().any(|l| l.contains("removed 2 temporaries")),
        "{said:?}"
    );

    // While a clone runs (at its first report), another session starts on the datastore:
    // the clone's temporary is open for writing, so it is kept, and the clone succeeds.
    let mut seen = Vec::new();
    let mut statx_between = None;
    let (st, _) = std::thread::scope(|scope| {
        s.clone_with(s.id, "dense", "live", GUARDED, None, &mut |n| {
            if n == 2 {
                // Another thread's STATX on the same session is answered during the copy (the
                // session is locked per call, not for the whole clone).
                let (tx, rx) = std::sync::mpsc::channel();
                let (plugin, id, path) = (s.plugin, s.id, s.esx("dense"));
                scope.spawn(move || {
                    let _ = tx.send(plugin.statx(id, &path).unwrap().common.status);
                });
                statx_between = Some(rx.recv_timeout(Duration::from_secs(10)));
            }
            if n == 1 {
                seen.push(s.temporaries());
                let _ = openvaai_host::take_log();
                let started = Instant::now();
                let other = Store::open(nfs, plugin, "ext4");
                let kept: Vec<String> = openvaai_host::take_log()
                    .into_iter()
                    .map(|l| l.text)
                    .filter(|l| l.contains("kept"))
                    .collect();
                eprintln!(
                    "StartSession beside a live clone: {:?}, {kept:?}",
                    started.elapsed()
                );
                seen.push(other.temporaries());
            }
            true
        })
    });
    assert_vix(st, vix::OK);
    match statx_between {
        Some(Ok(st)) => assert_vix(st, vix::OK),
        other => panic!("no STATX answer on the session during the clone: {other:?}"),
    }
    assert_eq!(seen[0].len(), 1, "the clone's temporary: {seen:?}");
    assert_eq!(seen[1], seen[0], "a live temporary was removed");
    assert_eq!(s.sha("live"), s.sha("dense"));
    assert!(s.temporaries().is_empty(), "{:?}", s.temporaries());
    s.remove(&["live", ".openvaai/unrelated"]);
}

/// Four sessions clone to one name with GUARDED at once: exactly one wins, the others get
/// FILE_ALREADY_EXISTS, and no temporary is left.
fn racing_guarded(nfs: &Knfsd, plugin: &openvaai_host::Plugin) {
    let stores: Vec<Store<'_>> = (0..4).map(|_| Store::open(nfs, plugin, "ext4")).collect();
    let before = stores[0].listing(".");
    let start = Barrier::new(stores.len());
    let results: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = stores
            .iter()
            .map(|s| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    s.clone("dense", "race", GUARDED, 0).0
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let won = results.iter().filter(|&&r| r == vix::OK).count();
    let lost = results
        .iter()
        .filter(|&&r| r == vix::E_FILE_ALREADY_EXISTS)
        .count();
    assert_eq!(
        (won, lost),
        (1, 3),
        "{:?}",
        results.iter().map(|&r| name(r)).collect::<Vec<_>>()
    );
    let s = &stores[0];
    assert_eq!(s.sha("race"), s.sha("dense"));
    let mut want = before;
    want.push("race".into());
    want.sort();
    assert_eq!(s.listing("."), want);
    assert!(s.temporaries().is_empty(), "{:?}", s.temporaries());
    s.remove(&["race"]);
}

/// The server stops (qemu frozen) after the first range: the clone fails within the bound
/// (one session timeout for the stalled COPY, at most one more to try to discard the
/// temporary); once it runs again, the next StartSession leaves nothing of that clone.
fn frozen_server(nfs: &Knfsd, plugin: &openvaai_host::Plugin) {
    const TIMEOUT: Duration = Duration::from_secs(4);
    let s = Store::open_with(nfs, plugin, "ext4", TIMEOUT.as_millis() as u64);
    let mut frozen_at = None;
    let (st, deltas) = s.clone_with(s.id, "dense", "frozen", GUARDED, None, &mut |n| {
        if n == 1 {
            signal_guest(nfs, "STOP");
            frozen_at = Some(Instant::now());
        }
        true
    });
    let took = frozen_at.expect("no progress report").elapsed();
    signal_guest(nfs, "CONT");
    eprintln!(
        "frozen server: {} after {took:?} ({} reports)",
        name(st),
        deltas.len()
    );
    assert!(
        st == vix::E_HOST_CONNECTION_LOST || st == vix::E_HOST_NOT_CONNECTED,
        "{}",
        name(st)
    );
    assert!(
        took < 2 * TIMEOUT + Duration::from_secs(3),
        "the frozen server's clone failed only after {took:?}"
    );
    assert!(deltas.iter().sum::<u64>() < 6 * MIB);
    eprintln!("left after the thaw: {:?}", s.temporaries());
    // The frozen session is not ended (a crashed host never ends it): once its lease ran out
    // (10 s in the guest) the server no longer holds its open, and a StartSession removes
    // its temporary.
    let thawed = Instant::now();
    let deadline = thawed + Duration::from_secs(60);
    loop {
        let next = Store::open(nfs, plugin, "ext4");
        let left = next.temporaries();
        if left.is_empty() {
            eprintln!(
                "the frozen clone's temporary removed {:?} after the thaw",
                thawed.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frozen clone's temporary is still there: {left:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(!s.exists("frozen"), "a partial clone was published");
}
