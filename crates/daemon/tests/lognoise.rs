//! What ordinary sessions write to the daemon's log: a client that leaves without TLS
//! close_notify (most do) is not news.

// The shared helpers, of which this file uses a few.
#[allow(dead_code, unused_imports)]
mod util;

use std::time::Duration;

use util::*;

/// Lines of the log at INFO or above, after the start-up lines.
fn noisy_lines(log: &str) -> Vec<&str> {
    log.lines()
        .skip_while(|l| !l.contains("openvaaid ready"))
        .skip(1)
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

#[test]
fn sessions_that_end_without_close_notify_log_nothing_above_debug() {
    let d = Daemon::start();
    for _ in 0..10 {
        let mut c = d.authed(0);
        c.null().unwrap();
        // Dropped: the TCP connection closes without a TLS close_notify.
        drop(c);
    }
    // Let the daemon notice the closes (at DEBUG now; as "connection lost" at INFO before).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !["client went away", "connection lost"]
        .iter()
        .any(|n| d.log_text().matches(n).count() >= 10)
    {
        assert!(std::time::Instant::now() < deadline, "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = d.log_text();
    let noisy: Vec<&str> = noisy_lines(&log)
        .into_iter()
        .filter(|l| !l.contains("authenticated"))
        .collect();
    assert!(noisy.is_empty(), "ordinary session ends logged: {noisy:#?}");
}

#[test]
fn jobs_that_succeed_log_nothing_above_debug() {
    let d = Daemon::start();
    write_data(&d.exports[0].join("src"), 64 << 10);
    let mut c = d.authed(0);
    for i in 0..5 {
        let args = openvaai_proto::CloneArgs {
            export: d.name(0),
            src_export: None,
            src: "src".into(),
            dst: format!("copy{i}"),
            flags: 0,
        };
        let job = c.clone_start(&args).unwrap().unwrap();
        assert_eq!(wait_done(&mut c, job).state, openvaai_proto::JobState::Done);
    }
    // Their lines are there, at DEBUG: a storm of clones runs thousands of jobs a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while d.log_text().matches("job finished").count() < 5 {
        assert!(std::time::Instant::now() < deadline, "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = d.log_text();
    let noisy: Vec<&str> = noisy_lines(&log)
        .into_iter()
        .filter(|l| !l.contains("authenticated"))
        .collect();
    assert!(noisy.is_empty(), "successful jobs logged: {noisy:#?}");
}
