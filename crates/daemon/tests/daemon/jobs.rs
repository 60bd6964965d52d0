//! Jobs over the wire: leases, the queue behind max_jobs, cancellation at SIGTERM.

use super::*;

/// Limits for tests that need a job to run for a while: a 1 GiB sparse source cloned thick,
/// paced to 16 MiB/s, takes a minute unless something stops it.
const SLOW: &str = "max_job_bytes_per_second = 16777216";
const BIG: u64 = 1 << 30;

#[test]
fn lease_expiry_cancels_an_abandoned_job() {
    let d = Daemon::start_with(
        &format!("{SLOW}\nlease_seconds = 1"),
        &[ExportSpec::plain()],
    );
    sparse(&d.exports[0].join("big"), BIG);
    let mut c = d.authed(0);
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", 0))
        .unwrap()
        .unwrap();
    assert_eq!(c.wait(job, 0, 0).unwrap().unwrap().state, JobState::Running);
    // The client goes quiet (the connection stays open).
    assert!(d.wait_for_log("lease expired", Duration::from_secs(10)));
    assert!(d.wait_for_log("status=Cancelled", Duration::from_secs(10)));
    // Kept briefly for a last WAIT, which shows the cancellation, or already forgotten.
    match c.wait(job, 0, 0).unwrap() {
        Ok(i) => assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled)),
        Err(s) => assert_eq!(s, Status::ObjectNotFound),
    }
    assert!(!d.exports[0].join("copy").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&d.exports[0])
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}"); // big, .openvaai
}

#[test]
fn past_max_jobs_a_job_is_queued_and_past_the_queue_object_is_busy() {
    let d = Daemon::start_with(
        &format!("{SLOW}\nmax_jobs = 1\nmax_queued_jobs = 1"),
        &[ExportSpec::plain()],
    );
    sparse(&d.exports[0].join("big"), BIG);
    let mut c = d.authed(0);
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", 0))
        .unwrap()
        .unwrap();
    // The second waits its turn: RUNNING, nothing done, OBJECT_IS_BUSY.
    let queued = c
        .clone_start(&clone_args(&d, "big", "copy2", 0))
        .unwrap()
        .unwrap();
    let i = c.wait(queued, 1, 0).unwrap().unwrap();
    assert_eq!(
        (i.state, i.done, i.result),
        (JobState::Running, 0, Status::ObjectIsBusy)
    );
    assert_eq!(
        c.clone_start(&clone_args(&d, "big", "copy3", 0)).unwrap(),
        Err(Status::ObjectIsBusy)
    );
    assert_eq!(
        status_of(c.reserve_start(&d.name(0), "big").unwrap()),
        Status::ObjectIsBusy
    );
    // Progress shows while it runs; CANCEL waits for the cleanup.
    let i = c.wait(job, 1, 10_000).unwrap().unwrap();
    assert!(i.done >= 1 && i.total == BIG, "{i:?}");
    let i = c.cancel(job).unwrap().unwrap();
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    assert!(!d.exports[0].join("copy").exists());
    // The queued one runs now; cancelled too, it frees the slot.
    let i = c.wait(queued, 1, 10_000).unwrap().unwrap();
    assert!(i.done >= 1 && i.result == Status::Ok, "{i:?}");
    let i = c.cancel(queued).unwrap().unwrap();
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    // The slot is free again.
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", CLONE_DRY_RUN))
        .unwrap()
        .unwrap();
    assert_eq!(wait_done(&mut c, job).result, Status::Ok);
}

#[test]
fn sigterm_cancels_jobs_and_exits_zero_promptly() {
    let mut d = Daemon::start_with(SLOW, &[ExportSpec::plain()]);
    sparse(&d.exports[0].join("big"), BIG);
    let mut c = d.authed(0);
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", 0))
        .unwrap()
        .unwrap();
    assert_eq!(c.wait(job, 0, 0).unwrap().unwrap().state, JobState::Running);
    let start = Instant::now();
    let st = d
        .terminate(Duration::from_secs(10))
        .expect("openvaaid did not exit");
    assert!(st.success(), "exit status {st}\n{}", d.log_text());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!d.exports[0].join("copy").exists());
    // Its connections were closed.
    assert!(c.null().is_err());
}
