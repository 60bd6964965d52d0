//! The network cut mid-clone: the daemon in its own namespace behind a veth pair, the plugin
//! in the root namespace; the link goes down in the middle of a paced clone and comes back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::netns::Netns;
use crate::util::*;

const SIZE: u64 = 256 * MIB;

#[test]
fn network_cut_mid_clone_bounds_every_call_and_leaves_all_or_nothing() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 1 << 30) else {
        return;
    };
    let Some(ns) = Netns::new() else {
        return;
    };
    let root = fs.path().join("ds0");
    std::fs::create_dir(&root).unwrap();
    write_layout(&root.join("src.vmdk"), &[Run::Data(SIZE)], 93).unwrap();
    write_layout(&root.join("small.vmdk"), &[Run::Data(MIB)], 94).unwrap();
    // 256 MiB at 64 MiB/s: four seconds.
    let daemon = ns.daemon(
        &[&root],
        "max_job_bytes_per_second = 67108864\nlease_seconds = 2",
    );
    let plugin = load_plugin();
    let ds = datastore_at(&root, &ns.ns_ip.to_string());
    let id = plugin
        .start_session(&ds, Some(TIMEOUT_MS))
        .unwrap_or_else(|e| panic!("StartSession: {}\n{}", name(e), daemon.log_text()));
    let p = |n: &str| root.join(n).to_str().unwrap().to_owned();
    let bound = Duration::from_millis(TIMEOUT_MS) + MARGIN;

    let cut_at: Mutex<Option<Instant>> = Mutex::new(None);
    let mut done = 0u64;
    let (st, _) = clone_with(
        &plugin,
        id,
        &p("src.vmdk"),
        &p("dst.vmdk"),
        0,
        None,
        16 * MIB,
        &mut |d| {
            done += d;
            let mut c = cut_at.lock().unwrap();
            if done >= 64 * MIB && c.is_none() {
                ns.link(false);
                *c = Some(Instant::now());
            }
            true
        },
    );
    let cut = cut_at.lock().unwrap().expect("the link was cut mid-clone");
    let took = cut.elapsed();
    println!("clone with the link cut: {} after {took:?}", name(st));
    assert!(
        st == vix::E_HOST_CONNECTION_LOST || st == vix::E_HOST_NOT_CONNECTED,
        "{}",
        name(st)
    );
    assert!(took < bound, "the clone returned {took:?} after the cut");

    // Every other call is bounded too while the link is down.
    let t = Instant::now();
    let sx = plugin.statx(id, &p("small.vmdk")).unwrap();
    assert_ne!(sx.common.status, vix::OK);
    assert!(t.elapsed() < bound, "STATX took {:?}", t.elapsed());
    let t = Instant::now();
    assert_ne!(plugin.reserve(id, &p("small.vmdk"), None).unwrap(), vix::OK);
    assert!(t.elapsed() < bound, "RESVSPACE took {:?}", t.elapsed());
    let t = Instant::now();
    assert!(plugin.start_session(&ds, Some(TIMEOUT_MS)).is_err());
    assert!(t.elapsed() < bound, "StartSession took {:?}", t.elapsed());

    ns.link(true);
    // Unreachable client, held clone: the lease ends the job. Either way it ends, and then
    // the destination is complete or absent, never half there.
    for needles in [["lease expired", "dst.vmdk"], ["job finished", "dst.vmdk"]] {
        assert!(
            wait_for_line(&daemon, &needles, Duration::from_secs(15)),
            "no `{}` line:\n{}",
            needles[0],
            daemon.log_text()
        );
    }
    let names = listing(&root);
    if names.contains(&"dst.vmdk".to_owned()) {
        assert_same_content(&root.join("src.vmdk"), &root.join("dst.vmdk"));
    } else {
        assert_eq!(names, ["small.vmdk", "src.vmdk"]);
    }
    assert_no_temporaries(&root);

    // A new clone over the restored link works, on the same session.
    let (st, _) = clone_with(
        &plugin,
        id,
        &p("small.vmdk"),
        &p("after.vmdk"),
        0,
        None,
        MIB,
        &mut |_| true,
    );
    assert_vix(st, vix::OK);
    assert_same_content(&root.join("small.vmdk"), &root.join("after.vmdk"));
    drop(plugin);
    drop(daemon);
    drop(ns);
    drop(fs);
}
