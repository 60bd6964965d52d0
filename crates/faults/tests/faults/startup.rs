//! What a daemon start tidies after a crash, on datastores as they really are: thousands of
//! VM folders under a low descriptor limit, and a reservation killed half-way.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{write_layout, Daemon, FsKind, Run};

use crate::util::*;

#[test]
fn cleanup_walks_three_thousand_folders_under_a_low_descriptor_limit() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let root = fs.path().join("ds");
    const FOLDERS: usize = 3000;
    for i in 0..FOLDERS {
        let vm = root.join(format!("vm{i:04}"));
        std::fs::create_dir_all(&vm).unwrap();
        std::fs::write(vm.join(format!("{TEMP_PREFIX}{i}")), b"stale").unwrap();
        std::fs::write(vm.join("vm.vmx"), b"keep").unwrap();
    }
    // 128 descriptors: far fewer than folders.
    let d = Daemon::builder()
        .export(&root)
        .wrap(&["prlimit", "--nofile=128:128", "--"])
        .start();
    let log = d.log_text();
    let removed = log_lines(&log, &["removed stale temporaries"]);
    assert_eq!(removed.len(), 1, "{log}");
    assert!(
        removed[0].contains(&format!("removed={FOLDERS}")),
        "{}",
        removed[0]
    );
    assert!(
        !log.contains("cleaning stale temporaries:"),
        "problems reported: {log}"
    );
    assert_no_temporaries(&root);
    assert!(root.join("vm2999/vm.vmx").exists());
}

#[test]
fn a_reservation_killed_half_way_is_given_back_at_the_next_start() {
    let _machine = shared();
    // 1 GiB at 128 MiB/s: eight seconds, killed after about two.
    let Some(mut fx) = on_xfs(2 << 30, 1, "max_job_bytes_per_second = 134217728") else {
        return;
    };
    let path = fx.path(0, "thick-flat.vmdk");
    write_layout(&path, &[Run::Data(MIB), Run::Hole(1023 * MIB)], 6).unwrap();
    let sum = checksum(&path);
    let blocks_before = std::fs::metadata(&path).unwrap().blocks();
    let id = fx.session_with(0, Some(30_000));
    let pid = fx.daemon.pid();
    let (st, allocated_when_killed) = std::thread::scope(|s| {
        let call = s.spawn(|| {
            fx.plugin
                .reserve(id, &fx.s(0, "thick-flat.vmdk"), None)
                .unwrap()
        });
        // Kill once a good part is allocated.
        let deadline = Instant::now() + Duration::from_secs(20);
        let allocated = loop {
            let b = std::fs::metadata(&path).unwrap().blocks() * 512;
            if b >= 200 * MIB || Instant::now() > deadline {
                break b;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::Signal::KILL,
        );
        (call.join().unwrap(), allocated)
    });
    assert!(
        allocated_when_killed >= 200 * MIB,
        "the reservation never got going"
    );
    assert_ne!(
        st,
        vix::OK,
        "a reservation whose daemon died reported success"
    );
    fx.daemon.restart();
    let log = fx.daemon.log_text();
    let undone = log_lines(&log, &["interrupted reservation undone", "thick-flat.vmdk"]);
    assert_eq!(undone.len(), 1, "{log}");
    let md = std::fs::metadata(&path).unwrap();
    println!(
        "reserve killed half-way: {} MiB allocated when killed, {} KiB after the restart \
         ({} KiB before)",
        allocated_when_killed / MIB,
        md.blocks() / 2,
        blocks_before / 2
    );
    assert_eq!(
        md.blocks(),
        blocks_before,
        "what the reservation added is given back"
    );
    assert_eq!(md.len(), 1 << 30);
    assert_eq!(checksum(&path), sum, "data and size kept");
    assert!(
        listing(&fx.exports[0].join(".openvaai"))
            .iter()
            .all(|n| n == "access" || n == "lock"),
        "the journal entry is gone"
    );
    // And a reservation now completes as usual (paced: 8 s of work, so a timeout that a
    // loaded machine's slow first chunk cannot trip).
    let id = fx.session_with(0, Some(30_000));
    assert_vix(
        fx.plugin
            .reserve(id, &fx.s(0, "thick-flat.vmdk"), None)
            .unwrap(),
        vix::OK,
    );
    assert!(std::fs::metadata(&path).unwrap().blocks() * 512 >= 1 << 30);
}
