//! A linked-clone pool deploy: `storm_clones` lazy clones of one template from
//! `storm_clients` sessions at once (more than the daemon's 16 running jobs: the rest wait
//! in its queue). Latency p50, p99 and max, failures, and afterwards every clone checked:
//! its size, and its extent map the template's (the same physical blocks, shared). The peer
//! is as many parallel loops of `cp --reflink=always` + `sync FILE`.

use std::time::Duration;

use anyhow::{bail, Result};
use openvaai_abi::clone_flag;

use super::load::{drive, Load};
use super::pool::{make_template, TEMPLATE};
use super::Bench;
use crate::client::Session;
use crate::measure::{cmd, cpu, dur, percentile, s, size, times};
use crate::table::Row;

fn name(i: usize) -> String {
    format!("storm-{i:04}.vmdk")
}

fn clean(b: &Bench<'_>, n: usize) {
    for i in 0..n {
        let _ = std::fs::remove_file(b.p(&name(i)));
    }
}

/// The extents `filefrag -v` lists for `path`: (logical, physical, length) in blocks.
fn extent_map(path: &str) -> Result<Vec<(String, String, String)>> {
    let out = cmd("filefrag", &["-v", path])?;
    let map: Vec<_> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').map(str::trim).collect();
            let numbered = f
                .first()
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()));
            (numbered && f.len() >= 4).then(|| (f[1].to_owned(), f[2].to_owned(), f[3].to_owned()))
        })
        .collect();
    Ok(map)
}

/// Every clone: there, the template's size, the template's extents. Returns how many are
/// wrong, with the first reason.
fn verify(b: &Bench<'_>, n: usize) -> Result<(usize, Option<String>)> {
    let template = b.p(TEMPLATE);
    let want_len = std::fs::metadata(&template)?.len();
    let want = extent_map(s(&template))?;
    if want.is_empty() {
        bail!("filefrag -v listed no extent of the template");
    }
    let (mut wrong, mut first) = (0, None);
    for i in 0..n {
        let p = b.p(&name(i));
        let why = match std::fs::metadata(&p) {
            Err(e) => Some(format!("{}: {e}", name(i))),
            Ok(m) if m.len() != want_len => {
                Some(format!("{}: size {} not {want_len}", name(i), m.len()))
            }
            Ok(_) => {
                let got = extent_map(s(&p))?;
                (got != want).then(|| {
                    format!(
                        "{}: its extents are not the template's ({} vs {})",
                        name(i),
                        got.len(),
                        want.len()
                    )
                })
            }
        };
        if let Some(why) = why {
            wrong += 1;
            first.get_or_insert(why);
        }
    }
    Ok((wrong, first))
}

pub fn storm(b: &mut Bench<'_>) -> Result<()> {
    let (n, clients) = (b.plan.storm_clones, b.plan.storm_clients);
    make_template(b)?;
    let bytes = b.plan.pool_size;
    let sessions: Vec<Session<'_>> = (0..clients)
        .map(|_| Session::start(b.plugin, &b.export))
        .collect::<Result<_>>()?;
    clean(b, n);
    b.cold()?;
    // CPU (user + system) of the daemon and of this process (the plugin and its callers)
    // over the storm: on a shared machine a steadier figure than the wall clock's.
    let cpu_now = || (cpu(Some(b.daemon_pid), false), cpu(None, false));
    let cpu_before = cpu_now();
    let ours = drive(clients, n, &|c, i| {
        sessions[c].clone_file(TEMPLATE, &name(i), clone_flag::LAZY, bytes)
    });
    let cpu_after = cpu_now();
    let per_clone = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if n > 0 => format!("{:.0} µs", (b - a).as_secs_f64() * 1e6 / n as f64),
        _ => "?".to_owned(),
    };
    let cpu_text = format!(
        "CPU per clone: the daemon {}, the plugin's host {}",
        per_clone(cpu_before.0, cpu_after.0),
        per_clone(cpu_before.1, cpu_after.1)
    );
    println!("  storm-1000: {cpu_text}");
    drop(sessions);
    let (wrong, first_wrong) = verify(b, n)?;
    clean(b, n);
    b.cold()?;
    let src = b.p(TEMPLATE);
    let export = b.export.clone();
    let theirs = drive(clients, n, &|_, i| {
        let dst = export.join(name(i));
        cmd("cp", &["--reflink=always", s(&src), s(&dst)])?;
        cmd("sync", &[s(&dst)])?;
        Ok(())
    });
    clean(b, n);

    let what = format!(
        "{n} lazy clones of one {} template from {clients} sessions at once",
        size(bytes)
    );
    let peer = format!("{clients} parallel loops of `cp --reflink=always` + `sync FILE`");
    let fig = |l: &Load, p: f64| {
        if l.latencies.is_empty() {
            "none succeeded".to_owned()
        } else {
            dur(percentile(&l.latencies, p))
        }
    };
    for (id, label, p) in [
        ("storm-1000", "p50", 50.0),
        ("storm-1000-p99", "p99", 99.0),
        ("storm-1000-max", "max", 100.0),
    ] {
        let mut row = Row::new(
            id,
            format!(
                "{what}: latency {label} of one clone ({:.0} clones/s; the peer {:.0}/s; {cpu_text})",
                ours.rate(),
                theirs.rate()
            ),
        )
        .ours(fig(&ours, p))
        .peer(&peer, fig(&theirs, p));
        if !ours.latencies.is_empty() && !theirs.latencies.is_empty() {
            let (o, t) = (
                percentile(&ours.latencies, p),
                percentile(&theirs.latencies, p),
            );
            row = row.ratio(times(t.as_secs_f64() / o.as_secs_f64()));
            if id == "storm-1000-p99" {
                row = row.target("≤ 25 ms", o.as_secs_f64() <= 0.025);
            }
        }
        b.push(row);
    }
    let mut row = Row::new(
        "storm-1000-failed",
        format!("{what}: failed clones, and clones found wrong afterwards (size, or `filefrag -v` extents not the template's)"),
    )
    .ours(format!("{} of {n} failed, {wrong} wrong", ours.failures.len()))
    .peer(&peer, format!("{} of {n} failed", theirs.failures.len()))
    .target("0", ours.failures.is_empty() && wrong == 0);
    if let Some(first) = ours.failures.first() {
        row = row.failed(format!("{} failed, first: {first}", ours.failures.len()));
    } else if let Some(why) = first_wrong {
        row = row.failed(format!("{wrong} wrong, first: {why}"));
    }
    b.push(row);
    Ok(())
}
