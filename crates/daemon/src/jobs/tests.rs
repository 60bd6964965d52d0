//! The job table's unit tests: limits, WAIT, CANCEL, leases, holds, the queue, shutdown.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

fn slow() -> Work {
    Box::new(|progress, cancel| {
        for i in 0..1000u64 {
            if cancel.is_cancelled() {
                return Status::Cancelled.into();
            }
            progress(Progress {
                done: i,
                total: 1000,
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        Status::Ok.into()
    })
}

#[test]
fn without_a_queue_the_limit_refuses_and_wait_cancel_lease_work() {
    let t = JobTable::new(1, 0, Duration::from_millis(200));
    let a = t.start(vec![0], "a".into(), false, slow()).unwrap();
    assert_eq!(
        t.start(vec![0], "b".into(), false, slow()),
        Err(Status::ObjectIsBusy)
    );
    let job = t.get(a).unwrap();
    let i = job.wait(3, Duration::from_secs(5));
    assert!(i.done >= 3 && i.state == JobState::Running);
    let i = job.cancel(Duration::from_secs(5));
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));

    let b = t.start(vec![0], "c".into(), false, slow()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    t.reap();
    let i = t.get(b).unwrap().wait(u64::MAX, Duration::from_secs(5));
    assert_eq!(i.result, Status::Cancelled);
    std::thread::sleep(Duration::from_millis(300));
    t.reap();
    assert!(t.get(b).is_none() && t.get(a).is_none());
}

#[test]
fn finished_jobs_are_forgotten_past_the_cap() {
    let t = JobTable::new(4, 0, Duration::from_secs(3600));
    let mut last = 0;
    for _ in 0..t.keep + 10 {
        last = t
            .start(
                vec![0],
                "quick".into(),
                false,
                Box::new(|_, _| Status::Ok.into()),
            )
            .unwrap();
        t.get(last).unwrap().wait(u64::MAX, Duration::from_secs(5));
    }
    assert!(lock(&t.jobs).len() <= t.keep);
    assert!(t.get(last).is_some());
}

/// A held job: progress up to the total, then its result staged, READY until COMMIT or
/// CANCEL.
fn held() -> Work {
    staging(&Arc::new(Mutex::new(Vec::new())))
}

/// Like [`held`], noting in `fate` what became of the staged result: "published" or
/// "discarded" (dropped unpublished), and on which thread.
fn staging(fate: &Arc<Mutex<Vec<(&'static str, String)>>>) -> Work {
    struct Result(Arc<Mutex<Vec<(&'static str, String)>>>, bool);
    impl Drop for Result {
        fn drop(&mut self) {
            let what = if self.1 { "published" } else { "discarded" };
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            lock(&self.0).push((what, thread));
        }
    }
    let fate = fate.clone();
    Box::new(move |progress, cancel| {
        progress(Progress { done: 4, total: 10 });
        progress(Progress {
            done: 10,
            total: 10,
        });
        if cancel.is_cancelled() {
            return Status::Cancelled.into();
        }
        let result = Result(fate, false);
        Worked::Staged(Staged {
            bytes: 10,
            publish: Box::new(move || {
                let mut result = result;
                result.1 = true;
                Status::Ok.into()
            }),
        })
    })
}

#[test]
fn a_held_job_waits_ready_for_commit_or_cancel() {
    let t = JobTable::new(4, 0, Duration::from_secs(30));
    let a = t.start(vec![0], "a".into(), true, held()).unwrap();
    let job = t.get(a).unwrap();
    let i = job.wait(u64::MAX, Duration::from_secs(5));
    assert_eq!((i.state, i.done), (JobState::Ready, 10));
    // Still READY a while later: nothing publishes without COMMIT.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(job.wait(0, Duration::ZERO).state, JobState::Ready);
    let i = job.commit(Duration::from_secs(5)).unwrap();
    assert_eq!((i.state, i.result), (JobState::Done, Status::Ok));
    // A COMMIT retried after the end reports the end.
    assert_eq!(job.commit(Duration::ZERO).unwrap().state, JobState::Done);

    let b = t.start(vec![0], "b".into(), true, held()).unwrap();
    let job = t.get(b).unwrap();
    assert_eq!(
        job.wait(u64::MAX, Duration::from_secs(5)).state,
        JobState::Ready
    );
    let i = job.cancel(Duration::from_secs(5));
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));

    let c = t.start(vec![0], "c".into(), false, slow()).unwrap();
    assert_eq!(
        t.get(c).unwrap().commit(Duration::ZERO),
        Err(Status::InvalidArg)
    );
}

#[test]
fn a_ready_job_keeps_its_staged_result_and_its_slot_but_no_thread() {
    let t = JobTable::new(1, 4, Duration::from_secs(30));
    let fate = Arc::new(Mutex::new(Vec::new()));
    let a = t.start(vec![0], "a".into(), true, staging(&fate)).unwrap();
    let job = t.get(a).unwrap();
    // Before READY a WAIT never sees the last bytes as RUNNING: they come with READY.
    let i = job.wait(10, Duration::from_secs(5));
    assert_eq!((i.state, i.done, i.total), (JobState::Ready, 10, 10));
    let deadline = Instant::now() + Duration::from_secs(5);
    while job_threads().contains(&thread_name(a)) {
        assert!(
            Instant::now() < deadline,
            "the READY job's thread is still there"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Its slot is still taken: the next job waits its turn.
    let g = Gate::new();
    g.open();
    let b = start(&t, g.job(0)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(seen(t.get(b).unwrap().wait(1, Duration::ZERO)), QUEUED);
    assert!(lock(&fate).is_empty(), "nothing published or discarded yet");
    // COMMIT publishes it on the committing thread, and the slot passes on.
    let committer = std::thread::Builder::new()
        .name("committer".into())
        .spawn(move || job.commit(Duration::from_secs(5)).unwrap())
        .unwrap();
    assert_eq!(committer.join().unwrap().state, JobState::Done);
    assert_eq!(*lock(&fate), [("published", "committer".to_owned())]);
    assert_eq!(end(&t, b).state, JobState::Done);

    // CANCEL discards it.
    let c = t.start(vec![0], "c".into(), true, staging(&fate)).unwrap();
    let job = t.get(c).unwrap();
    assert_eq!(
        job.wait(u64::MAX, Duration::from_secs(5)).state,
        JobState::Ready
    );
    let i = job.cancel(Duration::from_secs(5));
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    assert_eq!(lock(&fate)[1].0, "discarded");
    assert_eq!(
        job.commit(Duration::ZERO).unwrap().result,
        Status::Cancelled
    );
}

#[test]
fn a_job_reported_ended_has_given_back_its_slot() {
    // No queue: a START while the slot is still taken would be OBJECT_IS_BUSY.
    let t = JobTable::new(1, 0, Duration::from_secs(30));
    for i in 0..2000 {
        let work: Work = Box::new(|_, _| Status::Ok.into());
        let id = t
            .start(vec![0], "r".into(), false, work)
            .unwrap_or_else(|s| panic!("job {i}: {s:?} right after the previous one ended"));
        assert_eq!(end(&t, id).state, JobState::Done);
    }
}

#[test]
fn job_threads_are_reused_not_one_spawned_per_job() {
    let t = JobTable::new(2, 0, Duration::from_secs(30));
    let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
    for _ in 0..20 {
        let seen = threads.clone();
        let work: Work = Box::new(move |_, _| {
            lock(&seen).insert(std::thread::current().id());
            Status::Ok.into()
        });
        let id = t.start(vec![0], "r".into(), false, work).unwrap();
        assert_eq!(end(&t, id).state, JobState::Done);
        // The job has ended; its thread is about to wait for the next one.
        let deadline = Instant::now() + Duration::from_secs(2);
        while t.runner.idle_threads() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(
        lock(&threads).len(),
        1,
        "20 jobs one after another, one thread"
    );
}

#[test]
fn a_job_without_hold_publishes_its_staged_result_at_once() {
    let t = JobTable::new(1, 0, Duration::from_secs(30));
    let fate = Arc::new(Mutex::new(Vec::new()));
    let a = t.start(vec![0], "a".into(), false, staging(&fate)).unwrap();
    let i = end(&t, a);
    assert_eq!((i.state, i.done, i.total), (JobState::Done, 10, 10));
    assert_eq!(*lock(&fate), [("published", format!("job-{a:016x}"))]);
}

#[test]
fn a_held_job_whose_client_vanishes_is_cancelled_by_its_lease() {
    let t = JobTable::new(4, 0, Duration::from_millis(100));
    let a = t.start(vec![0], "a".into(), true, held()).unwrap();
    let job = t.get(a).unwrap();
    assert_eq!(
        job.wait(u64::MAX, Duration::from_secs(5)).state,
        JobState::Ready
    );
    std::thread::sleep(Duration::from_millis(200));
    t.reap();
    let i = job.wait(u64::MAX, Duration::from_secs(5));
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    // Its slot was given back with it.
    let b = t.start(vec![0], "b".into(), false, slow()).unwrap();
    assert_eq!(t.get(b).unwrap().wait(0, Duration::ZERO).result, Status::Ok);
}

#[test]
fn shutdown_cancels_and_refuses() {
    let t = JobTable::new(4, 0, Duration::from_secs(30));
    t.start(vec![0], "a".into(), false, slow()).unwrap();
    assert_eq!(t.shutdown(Duration::from_secs(5)), 0);
    assert!(t.start(vec![0], "b".into(), false, slow()).is_err());
}

/// A job that runs once `open` is set (or ends CANCELLED when cancelled first), and notes its
/// number in `ran` when it starts.
fn gated(open: &Arc<AtomicBool>, ran: &Arc<Mutex<Vec<usize>>>, n: usize) -> Work {
    let (open, ran) = (open.clone(), ran.clone());
    Box::new(move |progress, cancel| {
        lock(&ran).push(n);
        while !open.load(Ordering::SeqCst) {
            if cancel.is_cancelled() {
                return Status::Cancelled.into();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        progress(Progress { done: 1, total: 1 });
        Status::Ok.into()
    })
}

struct Gate {
    open: Arc<AtomicBool>,
    ran: Arc<Mutex<Vec<usize>>>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            open: Arc::new(AtomicBool::new(false)),
            ran: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn job(&self, n: usize) -> Work {
        gated(&self.open, &self.ran, n)
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    fn ran(&self) -> Vec<usize> {
        lock(&self.ran).clone()
    }
}

fn start(t: &JobTable, work: Work) -> Result<u64, Status> {
    t.start(vec![0], "test".into(), false, work)
}

/// Waits for job `id` to end; its final state.
fn end(t: &JobTable, id: u64) -> JobInfo {
    t.get(id).unwrap().wait(u64::MAX, Duration::from_secs(10))
}

/// Waits until `n` works have started.
fn until_ran(g: &Gate, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while g.ran().len() < n {
        assert!(Instant::now() < deadline, "only {:?} ran", g.ran());
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The kernel's name of a job's thread (15 bytes of it).
fn thread_name(id: u64) -> String {
    format!("job-{id:016x}")[..15].to_owned()
}

/// The names of this process's threads.
fn job_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim_end().to_owned())
        .collect()
}

const QUEUED: (JobState, u64, Status) = (JobState::Running, 0, Status::ObjectIsBusy);

fn seen(i: JobInfo) -> (JobState, u64, Status) {
    (i.state, i.done, i.result)
}

#[test]
fn jobs_past_the_limit_wait_their_turn_in_arrival_order() {
    // One slot, so that the order in which works start is the order of the queue.
    let t = JobTable::new(1, 16, Duration::from_secs(30));
    let g = Gate::new();
    let ids: Vec<u64> = (0..10).map(|n| start(&t, g.job(n)).unwrap()).collect();
    until_ran(&g, 1);
    // One runs; the other nine wait without a thread, and say so to WAIT.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(g.ran(), [0]);
    for &id in &ids[1..] {
        let i = t.get(id).unwrap().wait(1, Duration::from_millis(1));
        assert_eq!(seen(i), QUEUED);
    }
    let threads = job_threads();
    assert!(threads.contains(&thread_name(ids[0])), "{threads:?}");
    for &id in &ids[1..] {
        assert!(
            !threads.contains(&thread_name(id)),
            "{id:016x} has a thread"
        );
    }
    g.open();
    for &id in &ids {
        assert_eq!(end(&t, id).state, JobState::Done);
    }
    assert_eq!(
        g.ran(),
        (0..10).collect::<Vec<_>>(),
        "first come, first run"
    );
}

#[test]
fn a_full_queue_is_object_is_busy_and_room_comes_back() {
    let t = JobTable::new(1, 2, Duration::from_secs(30));
    let g = Gate::new();
    let running = start(&t, g.job(0)).unwrap();
    let a = start(&t, g.job(1)).unwrap();
    let _b = start(&t, g.job(2)).unwrap();
    assert_eq!(start(&t, g.job(3)), Err(Status::ObjectIsBusy));
    // A cancelled waiter leaves the queue: there is room again.
    t.get(a).unwrap().cancel(Duration::from_secs(5));
    let c = start(&t, g.job(4)).unwrap();
    assert_eq!(start(&t, g.job(5)), Err(Status::ObjectIsBusy));
    until_ran(&g, 1);
    g.open();
    for id in [running, c] {
        assert_eq!(end(&t, id).state, JobState::Done);
    }
    until_ran(&g, 3);
    assert_eq!(g.ran(), [0, 2, 4]);
}

#[test]
fn a_queued_job_cancelled_ends_at_once_and_never_runs() {
    let t = JobTable::new(1, 8, Duration::from_secs(30));
    let g = Gate::new();
    let running = start(&t, g.job(0)).unwrap();
    let queued = start(&t, g.job(1)).unwrap();
    let next = start(&t, g.job(2)).unwrap();
    let began = Instant::now();
    let i = t.get(queued).unwrap().cancel(Duration::from_secs(5));
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    g.open();
    assert_eq!(end(&t, running).state, JobState::Done);
    assert_eq!(end(&t, next).state, JobState::Done);
    assert_eq!(g.ran(), [0, 2]);
    assert_eq!(end(&t, queued).result, Status::Cancelled);
}

#[test]
fn a_queued_job_whose_client_vanished_is_cancelled_by_its_lease() {
    let t = JobTable::new(1, 8, Duration::from_millis(100));
    let g = Gate::new();
    let running = start(&t, g.job(0)).unwrap();
    let abandoned = t.get(start(&t, g.job(1)).unwrap()).unwrap();
    let polled = start(&t, g.job(2)).unwrap();
    // The clients of the running job and of the second waiter keep polling; the first
    // waiter's client is gone.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(50));
        for id in [running, polled] {
            t.get(id).unwrap().wait(u64::MAX, Duration::ZERO);
        }
        t.reap();
    }
    // Ended, and already forgotten a lease later.
    let i = abandoned.wait(0, Duration::ZERO);
    assert!(t.get(abandoned.id).is_none());
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    assert_eq!(seen(t.get(polled).unwrap().wait(1, Duration::ZERO)), QUEUED);
    g.open();
    assert_eq!(end(&t, polled).state, JobState::Done);
    assert_eq!(g.ran(), [0, 2]);
}

#[test]
fn shutdown_suspends_running_and_queued_jobs_without_ending_them() {
    let t = Arc::new(JobTable::new(1, 8, Duration::from_secs(30)));
    let suspended = Arc::new(AtomicBool::new(false));
    let seen = suspended.clone();
    let running = start(
        &t,
        Box::new(move |_, cancel| {
            while !cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            seen.store(cancel.is_suspended(), Ordering::SeqCst);
            Status::Cancelled.into()
        }),
    )
    .unwrap();
    let g = Gate::new();
    let queued = start(&t, g.job(1)).unwrap();
    // Clients polling both are answered as soon as the shutdown comes: still RUNNING (the
    // daemon is going away, the job is not over: the client finds it, or starts it again,
    // at the next daemon).
    let waiters: Vec<_> = [running, queued]
        .into_iter()
        .map(|id| {
            let job = t.get(id).unwrap();
            let w = std::thread::spawn({
                let job = job.clone();
                move || job.wait(u64::MAX, Duration::from_secs(20))
            });
            while lock(&job.state).waiters == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            w
        })
        .collect();
    let began = Instant::now();
    assert_eq!(t.shutdown(Duration::from_secs(5)), 0);
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    for w in waiters {
        let i = w.join().unwrap();
        assert_eq!(i.state, JobState::Running, "{i:?}");
    }
    assert!(
        suspended.load(Ordering::SeqCst),
        "the work was suspended, not cancelled"
    );
    assert!(
        g.ran().is_empty(),
        "nothing starts from the queue on shutdown"
    );
    assert_eq!(start(&t, g.job(2)), Err(Status::HostNotConnected));
}

#[test]
fn shutdown_waits_for_a_polling_client_to_collect_an_end_but_not_for_a_gone_one() {
    let t = Arc::new(JobTable::new(2, 0, Duration::from_secs(30)));
    // A job that finishes on its own during the shutdown (its last step cannot stop).
    let polled = start(
        &t,
        Box::new(|_, _| {
            std::thread::sleep(Duration::from_millis(200));
            Status::Ok.into()
        }),
    )
    .unwrap();
    let g = Gate::new();
    let gone = start(&t, g.job(1)).unwrap();
    until_ran(&g, 1);
    // The client of `polled` called WAIT a moment ago and is about to call again.
    t.get(polled).unwrap().wait(0, Duration::ZERO);
    let collector = {
        let job = t.get(polled).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            job.wait(u64::MAX, Duration::from_secs(5))
        })
    };
    let began = Instant::now();
    assert_eq!(t.shutdown(Duration::from_secs(5)), 0);
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < DRAIN_BOUND + Duration::from_millis(500),
        "shutdown took {took:?}"
    );
    assert_eq!(collector.join().unwrap().result, Status::Ok);
    // The gone client's job was suspended: no end, and nobody waited for it.
    let i = t.get(gone).unwrap().wait(u64::MAX, Duration::ZERO);
    assert_eq!((i.state, i.result), (JobState::Running, Status::Ok));
}
