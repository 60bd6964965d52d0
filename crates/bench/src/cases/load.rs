//! Many lazy clones from many clients at once: throughput, latency, failures, and the
//! daemon's memory meanwhile. The peer is as many `cp --reflink=always` run in parallel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use openvaai_abi::clone_flag;

use super::clone::DENSE;
use super::Bench;
use crate::client::Session;
use crate::measure::{cmd, dur, percentile, proc_status_kib, s, size, times};
use crate::plan::KIB;
use crate::table::Row;

/// What one load run gave.
pub(crate) struct Load {
    pub wall: Duration,
    pub latencies: Vec<Duration>,
    pub failures: Vec<String>,
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `clients` threads sharing `total` operations: client `c` runs `op(c, i)` for `i` = `c`,
/// `c + clients`, ... below `total`; the clock starts when all are ready.
pub(crate) fn drive(
    clients: usize,
    total: usize,
    op: &(dyn Fn(usize, usize) -> Result<()> + Sync),
) -> Load {
    let ready = Barrier::new(clients + 1);
    let latencies = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let wall = std::thread::scope(|scope| {
        for c in 0..clients {
            let (ready, latencies, failures) = (&ready, &latencies, &failures);
            scope.spawn(move || {
                ready.wait();
                for i in (c..total).step_by(clients) {
                    let t = Instant::now();
                    match op(c, i) {
                        Ok(()) => latencies.lock().unwrap().push(t.elapsed()),
                        Err(e) => failures.lock().unwrap().push(format!("{e:#}")),
                    }
                }
            });
        }
        ready.wait();
        let start = Instant::now();
        // The scope joins every client before returning.
        start
    });
    Load {
        wall: wall.elapsed(),
        latencies: latencies.into_inner().unwrap(),
        failures: failures.into_inner().unwrap(),
    }
}

fn name(c: usize, k: usize) -> String {
    format!("load-{c:02}-{k:03}.vmdk")
}

fn clean(b: &Bench<'_>, clients: usize, per: usize) {
    for c in 0..clients {
        for k in 0..per {
            let _ = std::fs::remove_file(b.p(&name(c, k)));
        }
    }
}

/// Samples the daemon's VmRSS every 5 ms while `f` runs; returns `f`'s value and the peak.
pub(crate) fn sampling<T>(pid: i32, f: impl FnOnce() -> T) -> (T, u64) {
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(0);
    let v = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = proc_status_kib(Some(pid), "VmRSS") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let v = f();
        stop.store(true, Ordering::Relaxed);
        v
    });
    (v, peak.load(Ordering::Relaxed))
}

pub fn load(b: &mut Bench<'_>) -> Result<()> {
    let (clients, total) = (b.plan.clients, b.plan.clones);
    let per = total.div_ceil(clients);
    let bytes = b.plan.full;
    let pid = b.daemon_pid;
    let idle_kib = proc_status_kib(Some(pid), "VmRSS").unwrap_or(0);

    // Every client has its own session (its own connections), opened before the clock.
    let sessions: Vec<Session<'_>> = (0..clients)
        .map(|_| Session::start(b.plugin, &b.export))
        .collect::<Result<_>>()?;
    let sessions_kib = proc_status_kib(Some(pid), "VmRSS").unwrap_or(0);
    clean(b, clients, per);
    b.cold()?;
    let (ours, peak_kib) = sampling(pid, || {
        drive(clients, clients * per, &|c, i| {
            sessions[c].clone_file(DENSE, &name(c, i / clients), clone_flag::LAZY, bytes)
        })
    });
    drop(sessions);
    let hwm_kib = proc_status_kib(Some(pid), "VmHWM").unwrap_or(0);
    clean(b, clients, per);
    b.cold()?;
    let src = b.p(DENSE);
    let export = b.export.clone();
    let theirs = drive(clients, clients * per, &|c, i| {
        let dst = export.join(name(c, i / clients));
        cmd("cp", &["--reflink=always", s(&src), s(&dst)])?;
        cmd("sync", &[s(&dst)])?;
        Ok(())
    });
    clean(b, clients, per);

    let n = clients * per;
    let what = format!(
        "{n} lazy clones of the {} file from {clients} clients at once (a session each)",
        size(bytes)
    );
    let peer = format!("{clients} parallel loops of `cp --reflink=always` + `sync FILE`");
    let mut row = Row::new("load-throughput", what.clone())
        .ours(format!("{:.0} clones/s", ours.rate()))
        .peer(&peer, format!("{:.0} clones/s", theirs.rate()));
    if theirs.rate() > 0.0 && !ours.latencies.is_empty() {
        row = row.ratio(times(ours.rate() / theirs.rate()));
    }
    b.push(row);
    for (id, p) in [("load-p50", 50.0), ("load-p99", 99.0)] {
        let fig = |l: &Load| {
            if l.latencies.is_empty() {
                "none succeeded".to_owned()
            } else {
                dur(percentile(&l.latencies, p))
            }
        };
        let mut row = Row::new(id, format!("latency p{p:.0} of one clone under that load"))
            .ours(fig(&ours))
            .peer(&peer, fig(&theirs));
        if !ours.latencies.is_empty() && !theirs.latencies.is_empty() {
            let (o, t) = (
                percentile(&ours.latencies, p),
                percentile(&theirs.latencies, p),
            );
            row = row.ratio(times(t.as_secs_f64() / o.as_secs_f64()));
        }
        b.push(row);
    }
    let mut row = Row::new("load-failed", "failed operations under that load")
        .ours(format!("{} of {n}", ours.failures.len()))
        .peer(&peer, format!("{} of {n}", theirs.failures.len()))
        .target("0", ours.failures.is_empty());
    if let Some(first) = ours.failures.first() {
        row = row.failed(format!("{} failed, first: {first}", ours.failures.len()));
    }
    b.push(row);

    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / KIB as f64);
    b.push(
        Row::new("daemon-rss-idle", "openvaaid RSS, idle (VmRSS)").ours(format!(
            "{} at start; {} after the cases above; {} with {clients} more sessions open",
            mib(b.daemon_start_kib),
            mib(idle_kib),
            mib(sessions_kib)
        )),
    );
    b.push(
        Row::new(
            "daemon-rss-load",
            "openvaaid RSS under that load (VmRSS sampled every 5 ms; VmHWM over the whole run)",
        )
        .ours(format!("peak {}, VmHWM {}", mib(peak_kib), mib(hwm_kib)))
        .target("< 50 MiB", peak_kib.max(hwm_kib) < 50 * KIB),
    );
    // Checked at the end: a daemon that is gone now makes every figure above suspect.
    if proc_status_kib(Some(pid), "VmRSS").is_none() {
        anyhow::bail!("openvaaid (pid {pid}) is gone after the load");
    }
    Ok(())
}
