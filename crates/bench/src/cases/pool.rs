//! A pool deploy: `pool_jobs` full clones of one template at once, as a Horizon or vCloud
//! pool deploy sends them, from as many sessions, and from one session on as many threads
//! (as hostd runs them); against as many `cp` + `sync` at once, and against the disk's copy
//! limit. Aggregate throughput, the slowest and fastest job, and the daemon's peak memory
//! and CPU meanwhile.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use openvaai_testkit::{write_layout, Run};

use super::load::sampling;
use super::{limit, Bench, Contender};
use crate::client::Session;
use crate::measure::{self, cmd, dur, mib, proc_status_kib, rate, s, size, times};
use crate::plan::{GIB, KIB};
use crate::table::Row;

/// The template of the pool and of the storm.
pub const TEMPLATE: &str = "template-flat.vmdk";

/// Writes the template (outside any timing), unless it is there already.
pub fn make_template(b: &Bench<'_>) -> Result<()> {
    let p = b.p(TEMPLATE);
    if std::fs::metadata(&p).is_ok_and(|m| m.len() == b.plan.pool_size) {
        return Ok(());
    }
    write_layout(&p, &[Run::Data(b.plan.pool_size)], 6)?;
    Ok(())
}

fn out(i: usize) -> String {
    format!("pool-{i:02}.vmdk")
}

/// Runs `job(i)` for every job at once on threads of its own, started together; returns
/// each one's duration, or the first failure.
fn at_once(jobs: usize, job: &(dyn Fn(usize) -> Result<()> + Sync)) -> Result<Vec<Duration>> {
    let ready = std::sync::Barrier::new(jobs);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for i in 0..jobs {
            let (ready, results) = (&ready, &results);
            scope.spawn(move || {
                ready.wait();
                let t = Instant::now();
                let r = job(i).map(|()| t.elapsed());
                results
                    .lock()
                    .unwrap()
                    .push(r.map_err(|e| format!("job {i}: {e:#}")));
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)
}

/// The slowest job's time over the fastest's.
fn spread(t: &[Duration]) -> f64 {
    let (lo, hi) = (t.iter().min(), t.iter().max());
    match (lo, hi) {
        (Some(lo), Some(hi)) => hi.as_secs_f64() / lo.as_secs_f64().max(1e-9),
        _ => f64::NAN,
    }
}

/// What one contender's runs gave beyond their wall times: per-job spreads and CPU.
struct Runs {
    /// Who ran, for the progress lines.
    who: &'static str,
    spreads: Vec<f64>,
    cpu: Duration,
}

impl Runs {
    fn new(who: &'static str) -> RefCell<Runs> {
        RefCell::new(Runs {
            who,
            spreads: Vec::new(),
            cpu: Duration::ZERO,
        })
    }

    /// Keeps a run's spread, and prints its slowest and fastest job: each run on its own,
    /// for reading a run that the median hides.
    fn note(&mut self, jobs: &[Duration]) {
        self.spreads.push(spread(jobs));
        if let (Some(lo), Some(hi)) = (jobs.iter().min(), jobs.iter().max()) {
            println!(
                "  pool-16 ({}): run {}: slowest job {}, fastest {}",
                self.who,
                self.spreads.len(),
                dur(*hi),
                dur(*lo)
            );
        }
    }

    /// The median spread of the runs.
    fn spread(&self) -> f64 {
        let mut v = self.spreads.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

pub fn pool(b: &mut Bench<'_>) -> Result<()> {
    let (jobs, bytes) = (b.plan.pool_jobs, b.plan.pool_size);
    // Every job's copy exists at once, beside the template: make sure the host's disk
    // holds them, before the case and before each run (a full host disk fails the image's
    // writes, and the run with them).
    let room = || -> Result<()> {
        let need = jobs as u64 * bytes + bytes + 2 * GIB;
        let host = std::env::temp_dir();
        match measure::free_bytes(&host) {
            Some(free) if free < need => bail!(
                "{jobs} copies of {} at once need {} free on the disk under the image ({}), \
                 {} are: free some space there, point TMPDIR elsewhere, or use --quick",
                size(bytes),
                size(need),
                host.display(),
                size(free)
            ),
            _ => Ok(()),
        }
    };
    room()?;
    make_template(b)?;
    let pid = b.daemon_pid;
    let sessions: Vec<Session<'_>> = (0..jobs)
        .map(|_| Session::start(b.plugin, &b.export))
        .collect::<Result<_>>()?;
    let src = b.p(TEMPLATE);
    let export = b.export.clone();
    let dst = |i: usize| -> PathBuf { export.join(out(i)) };
    let (many, one, cps) = (Runs::new("sessions"), Runs::new("threads"), Runs::new("cp"));
    let pipe_cpu = Cell::default();
    let session = &b.session;
    let rss_before = proc_status_kib(Some(pid), "VmRSS").unwrap_or(0);
    measure::reset_peak_rss(pid)?;
    let daemon_cpu = |runs: &RefCell<Runs>, f: &dyn Fn() -> Result<Vec<Duration>>| -> Result<()> {
        let cpu = Cell::default();
        let mut got = Ok(Vec::new());
        limit::counting_cpu(Some(pid), &cpu, || {
            got = f();
            Ok(())
        })?;
        let mut r = runs.borrow_mut();
        r.cpu += cpu.get();
        r.note(&got?);
        Ok(())
    };
    let (race, peak_kib) = {
        let mut contenders: Vec<Contender<'_>> = vec![
            Box::new(|| {
                room()?;
                daemon_cpu(&many, &|| {
                    at_once(jobs, &|i| {
                        sessions[i].clone_file(TEMPLATE, &out(i), 0, bytes)
                    })
                })
            }),
            Box::new(|| {
                room()?;
                daemon_cpu(&one, &|| {
                    at_once(jobs, &|i| session.clone_file(TEMPLATE, &out(i), 0, bytes))
                })
            }),
            Box::new(|| {
                room()?;
                let cpu = Cell::default();
                let mut got = Ok(Vec::new());
                limit::counting_cpu(None, &cpu, || {
                    got = at_once(jobs, &|i| {
                        cmd("cp", &["--reflink=never", s(&src), s(&dst(i))])?;
                        cmd("sync", &[s(&dst(i))])?;
                        Ok(())
                    });
                    Ok(())
                })?;
                let mut r = cps.borrow_mut();
                r.cpu += cpu.get();
                r.note(&got?);
                Ok(())
            }),
            Box::new(|| limit::counting_cpu(None, &pipe_cpu, || limit::pipe(&src, &dst(0)))),
        ];
        let reset = &mut || {
            for i in 0..jobs {
                let _ = std::fs::remove_file(dst(i));
            }
        };
        let (t, peak) = sampling(pid, || b.race(&mut contenders, reset));
        (t?, peak)
    };
    let hwm_kib = proc_status_kib(Some(pid), "VmHWM").context("the daemon's VmHWM")?;
    drop(sessions);

    let total = jobs as u64 * bytes;
    let agg = |t: &Result<Duration, String>| match t {
        Ok(d) => rate(total, *d),
        Err(_) => "failed".to_owned(),
    };
    let limit_rate = race[3]
        .as_ref()
        .ok()
        .map(|d| bytes as f64 / d.as_secs_f64());
    let peer = format!("{jobs} × `cp --reflink=never` + `sync FILE` at once");
    for (id, who, t) in [
        ("pool-16", format!("{jobs} sessions"), &race[0]),
        (
            "pool-16-threads",
            format!("one session on {jobs} threads"),
            &race[1],
        ),
    ] {
        let what = format!(
            "{jobs} full clones of one {} template at once from {who}: aggregate throughput \
             ({} written)",
            size(bytes),
            size(total)
        );
        let mut row = Row::new(id, what).ours(agg(t)).peer(&peer, agg(&race[2]));
        match (t, &race[2]) {
            (Ok(o), Ok(c)) => row = row.ratio(times(c.as_secs_f64() / o.as_secs_f64())),
            (Err(e), _) => row = row.failed(e.clone()),
            (_, Err(e)) => row = row.failed(format!("the peer: {e}")),
        }
        if let (Ok(o), Some(lim)) = (t, limit_rate) {
            let ours = total as f64 / o.as_secs_f64();
            row = row.target(
                format!(
                    "≥ 0.9× the limit ({}: {:.2}×)",
                    rate(bytes, *race[3].as_ref().unwrap()),
                    ours / lim
                ),
                ours >= 0.9 * lim,
            );
        } else if let Err(e) = &race[3] {
            row = row.failed(format!("the limit pipe: {e}"));
        }
        b.push(row);
    }
    let (m, o, c) = (many.borrow(), one.borrow(), cps.borrow());
    b.push(
        Row::new(
            "pool-16-spread",
            format!(
                "slowest ÷ fastest job of those {jobs} (median over the runs); one session on \
                 {jobs} threads: {:.2}",
                o.spread()
            ),
        )
        .ours(format!("{:.2}", m.spread()))
        .peer(&peer, format!("{:.2}", c.spread()))
        .target("≤ 1.3", m.spread() <= 1.3 && o.spread() <= 1.3),
    );
    b.push(
        Row::new(
            "pool-16-rss",
            "openvaaid's peak RSS during those pools (VmHWM, reset before; VmRSS sampled every \
             5 ms)",
        )
        .ours(format!(
            "VmHWM {}, sampled peak {} (before: {})",
            mib(hwm_kib),
            mib(peak_kib),
            mib(rss_before)
        ))
        .target("≤ 64 MiB", hwm_kib.max(peak_kib) <= 64 * KIB),
    );
    let copied = total * b.plan.runs as u64;
    b.push(limit::cpu_row(
        "pool-16-cpu",
        format!(
            "CPU per GiB copied in those pools: openvaaid's, {jobs} sessions (one session on \
             {jobs} threads: {}), against the `cp`s' and `sync`s' (the kernel's writeback \
             threads are not counted); openvaaid's CPU seconds per pool: {}",
            limit::per_gib(o.cpu, copied),
            dur(m.cpu / b.plan.runs as u32)
        ),
        m.cpu,
        &peer,
        c.cpu,
        copied,
        Some(pipe_cpu.get() * jobs as u32),
    ));
    Ok(())
}
