//! Load: 16 plugin sessions × 16 threads each, lazy and full clones, STATX and RESVSPACE for
//! a bounded time on loopback. No failure, no leaked descriptor in the daemon, no temporary;
//! the latency percentiles per operation are printed (and kept in docs/reliability.md).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openvaai_abi::{clone_flag as f, vix, VixError};
use openvaai_testkit::{assert_same_content, write_layout, Run};

use crate::util::*;

const CLIENTS: usize = 16;
const PER_CLIENT: usize = 16;
const RUN_FOR: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    LazyClone,
    FullClone,
    Statx,
    Reserve,
}

const OPS: [Op; 4] = [Op::LazyClone, Op::FullClone, Op::Statx, Op::Reserve];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[test]
fn sixteen_clients_times_sixteen_operations_without_a_failure_or_a_leak() {
    let _machine = exclusive();
    let Some(fx) = on_xfs(2 << 30, 1, "max_jobs = 512\nmax_connections = 1024") else {
        return;
    };
    let root = fx.exports[0].clone();
    write_layout(
        &root.join("lazy-src.vmdk"),
        &[Run::Data(8 * MIB), Run::Hole(8 * MIB)],
        108,
    )
    .unwrap();
    write_layout(
        &root.join("full-src.vmdk"),
        &[Run::Data(MIB), Run::Hole(MIB)],
        109,
    )
    .unwrap();
    for c in 0..CLIENTS {
        std::fs::create_dir(root.join(format!("c{c}"))).unwrap();
        for w in 0..PER_CLIENT {
            std::fs::File::create(root.join(format!("c{c}/w{w}.resv")))
                .unwrap()
                .set_len(2 * MIB)
                .unwrap();
        }
    }
    let pid = fx.daemon.pid();
    let fds_before = fd_count(pid);
    // This process's descriptors too: the plugin must not leak sockets either (the other
    // tests wait for the exclusive lock before they open anything).
    let own = std::process::id() as i32;
    let own_before = fd_count(own);
    let sessions: Vec<_> = (0..CLIENTS).map(|_| fx.session_with(0, None)).collect();
    let samples: Mutex<Vec<(Op, Duration)>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<(Op, String, VixError)>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for (c, &id) in sessions.iter().enumerate() {
            for w in 0..PER_CLIENT {
                let (fx, samples, failures) = (&fx, &samples, &failures);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    let mut i = c + w;
                    while start.elapsed() < RUN_FOR {
                        let op = OPS[i % OPS.len()];
                        i += 1;
                        let t = Instant::now();
                        let (what, st) = match op {
                            Op::LazyClone => {
                                let dst = format!("c{c}/w{w}.lazy");
                                let st = fx.plugin.clone_file(
                                    id,
                                    &fx.s(0, "lazy-src.vmdk"),
                                    &fx.s(0, &dst),
                                    f::LAZY,
                                    None,
                                    None,
                                );
                                (dst, st.unwrap())
                            }
                            Op::FullClone => {
                                let dst = format!("c{c}/w{w}.full");
                                let st = fx.plugin.clone_file(
                                    id,
                                    &fx.s(0, "full-src.vmdk"),
                                    &fx.s(0, &dst),
                                    0,
                                    None,
                                    None,
                                );
                                (dst, st.unwrap())
                            }
                            Op::Statx => {
                                let sx = fx.plugin.statx(id, &fx.s(0, "lazy-src.vmdk")).unwrap();
                                let st =
                                    if sx.common.status == vix::OK && sx.total_bytes != 16 * MIB {
                                        vix::E_FAIL
                                    } else {
                                        sx.common.status
                                    };
                                ("lazy-src.vmdk".to_owned(), st)
                            }
                            Op::Reserve => {
                                let file = format!("c{c}/w{w}.resv");
                                (
                                    file.clone(),
                                    fx.plugin.reserve(id, &fx.s(0, &file), None).unwrap(),
                                )
                            }
                        };
                        mine.push((op, t.elapsed()));
                        if st != vix::OK {
                            failures.lock().unwrap().push((op, what, st));
                        }
                    }
                    samples.lock().unwrap().extend(mine);
                });
            }
        }
    });
    let elapsed = start.elapsed();
    for id in sessions {
        assert_vix(fx.plugin.end_session(id), vix::OK);
    }
    let own_after = fd_count(own);
    let failures = failures.into_inner().unwrap();
    let mut samples = samples.into_inner().unwrap();
    samples.sort();
    let mut report = format!(
        "load: {CLIENTS} clients x {PER_CLIENT} threads for {:.1} s, {} operations ({:.0}/s), {} failed\n\
         | operation | count | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n",
        elapsed.as_secs_f64(),
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        failures.len()
    );
    for op in OPS {
        let mut d: Vec<Duration> = samples
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, d)| *d)
            .collect();
        d.sort();
        report.push_str(&format!(
            "| {op:?} | {} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            d.len(),
            percentile(&d, 0.5).as_secs_f64() * 1e3,
            percentile(&d, 0.99).as_secs_f64() * 1e3,
            d.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        ));
    }
    println!("{report}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("load-latency.md"),
        &report,
    );
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    for op in OPS {
        assert!(
            samples.iter().filter(|(o, _)| *o == op).count() >= CLIENTS,
            "{op:?} ran"
        );
    }
    // The results are right, and nothing is left over.
    assert_same_content(&root.join("lazy-src.vmdk"), &root.join("c3/w5.lazy"));
    assert_same_content(&root.join("full-src.vmdk"), &root.join("c7/w2.full"));
    assert_no_temporaries(&root);
    let fds_after = wait_fds_at_most(pid, fds_before + 2, Duration::from_secs(15));
    let (rss, hwm) = memory(pid);
    println!(
        "daemon fds: {fds_before} before, {fds_after} after; VmRSS {} MiB, VmHWM {} MiB; \
         plugin side fds: {own_before} before, {own_after} after",
        rss / MIB,
        hwm / MIB
    );
    assert!(
        own_after <= own_before + 2,
        "plugin fds {own_before} -> {own_after}"
    );
    assert!(
        fds_after <= fds_before + 2,
        "fds {fds_before} -> {fds_after}"
    );
}
