//! The client that starts clones and never comes back: with a two-second lease both its jobs
//! (one held READY, one still copying) are cancelled by the lease, logged, and their files
//! never appear.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use openvaai_proto::{CloneArgs, JobState, CLONE_HOLD};
use openvaai_testkit::{write_layout, Run};

use crate::raw;
use crate::util::*;

#[test]
fn jobs_of_a_client_that_vanishes_end_by_lease_and_leave_nothing() {
    let _machine = shared();
    let Some(fx) = on_xfs(
        1 << 30,
        1,
        "lease_seconds = 2\nmax_job_bytes_per_second = 67108864",
    ) else {
        return;
    };
    let root = &fx.exports[0];
    write_layout(&root.join("small.vmdk"), &[Run::Data(4 * MIB)], 98).unwrap();
    // 1 GiB thick at 64 MiB/s: sixteen seconds unless something stops it.
    std::fs::File::create(root.join("big.vmdk"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let free_before = free_bytes(root);
    let export = root.to_str().unwrap().to_owned();
    let access = fx.daemon.access(0);
    let to = raw::addr(IpAddr::from([127, 0, 0, 1]), &access);
    let mut c = raw::authed(to, &export, &access);
    let args = |src: &str, dst: &str, flags| CloneArgs {
        export: export.clone(),
        src_export: None,
        src: src.into(),
        dst: dst.into(),
        flags,
    };
    let held = c
        .clone_start(&args("small.vmdk", "held.vmdk", CLONE_HOLD))
        .unwrap()
        .unwrap();
    let running = c
        .clone_start(&args("big.vmdk", "running.vmdk", 0))
        .unwrap()
        .unwrap();
    // The held clone reaches READY: every byte copied, nothing published.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let i = c.wait(held, u64::MAX, 2000).unwrap().unwrap();
        if i.state == JobState::Ready {
            break;
        }
        assert_eq!(i.state, JobState::Running);
        assert!(Instant::now() < deadline, "never READY");
    }
    assert_eq!(
        c.wait(running, 0, 0).unwrap().unwrap().state,
        JobState::Running
    );
    // Gone without a WAIT, a CANCEL or a COMMIT.
    drop(c);
    let gone = Instant::now();
    for job in [held, running] {
        let id = format!("{job:016x}");
        assert!(
            wait_for_line(&fx.daemon, &["lease expired", &id], Duration::from_secs(6)),
            "no lease expiry for {id}:\n{}",
            fx.daemon.log_text()
        );
        assert!(
            wait_for_line(
                &fx.daemon,
                &["job finished", &id, "status=Cancelled"],
                Duration::from_secs(6)
            ),
            "job {id} did not end cancelled:\n{}",
            fx.daemon.log_text()
        );
    }
    let took = gone.elapsed();
    println!("both jobs ended by lease {took:?} after the client left");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(listing(root), ["big.vmdk", "small.vmdk"]);
    assert_no_temporaries(root);
    // The unnamed files of both jobs are gone with them.
    let free_after = wait_free_back(root, free_before, 2 * MIB);
    assert!(
        free_after + 2 * MIB >= free_before,
        "{} MiB free before, {} MiB after",
        free_before / MIB,
        free_after / MIB
    );
    // A client that comes back later finds the jobs cancelled or forgotten, not published.
    let mut c = raw::authed(to, &export, &access);
    for job in [held, running] {
        match c.wait(job, 0, 0).unwrap() {
            Ok(i) => assert_eq!(i.state, JobState::Failed, "{i:?}"),
            Err(s) => assert_eq!(s, openvaai_proto::Status::ObjectNotFound),
        }
        match c.commit(job).unwrap() {
            Ok(i) => assert_eq!(i.state, JobState::Failed, "{i:?}"),
            Err(s) => assert_eq!(s, openvaai_proto::Status::ObjectNotFound),
        }
    }
    assert_eq!(listing(root), ["big.vmdk", "small.vmdk"]);
}
