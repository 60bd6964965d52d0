//! CLONEFILE: full, thin (SKIPZEROES) and lazy clones through the plugin, against `cp` and
//! against the host copying every byte itself.

use std::cell::Cell;
use std::path::Path;

use anyhow::Result;
use openvaai_abi::clone_flag;
use openvaai_testkit::{write_layout, Run};

use super::{compare, limit, Bench, Contender};
use crate::measure::{self, cmd, s, size};
use crate::table::Row;

/// The dense source of the full and lazy clones and of the load.
pub const DENSE: &str = "dense-flat.vmdk";
/// The fragmented source of the lazy clone and statx (made by `statx::make_fragmented`).
pub const FRAG: &str = "frag-flat.vmdk";

/// Writes the dense source (outside any timing).
pub fn make_dense(b: &Bench<'_>) -> Result<()> {
    write_layout(&b.p(DENSE), &[Run::Data(b.plan.full)], 1)?;
    Ok(())
}

/// What ESXi does without offload (see [`openvaai_testkit::host_copy`]).
pub fn host_copy(src: &Path, dst: &Path) -> Result<()> {
    Ok(openvaai_testkit::host_copy(src, dst)?)
}

/// `cp ARGS src dst && sync dst`: every openvaai clone is durable when it returns, so each
/// `cp` is followed by `sync FILE` (an fsync of the copy).
fn cp(args: &[&str], src: &Path, dst: &Path) -> Result<()> {
    let mut all = args.to_vec();
    all.extend([s(src), s(dst)]);
    cmd("cp", &all)?;
    cmd("sync", &[s(dst)])?;
    Ok(())
}

/// Full clone of the dense file vs `cp --reflink=never`, vs the host copy on the NAS
/// itself (a local loop: what any host copy costs before the network), and vs the disk's
/// copy limit (`limit::pipe`); with the CPU the daemon and `cp` spend on it.
pub fn full(b: &mut Bench<'_>) -> Result<()> {
    let bytes = b.plan.full;
    let (src, d_cp, d_host, d_dd) = (
        b.p(DENSE),
        b.p("full-cp.vmdk"),
        b.p("full-host.vmdk"),
        b.p("full-dd.vmdk"),
    );
    let session = &b.session;
    let (daemon_cpu, cp_cpu, dd_cpu) = (Cell::default(), Cell::default(), Cell::default());
    let pid = Some(b.daemon_pid);
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| {
            limit::counting_cpu(pid, &daemon_cpu, || {
                session.clone_file(DENSE, "full-clone.vmdk", 0, bytes)
            })
        }),
        Box::new(|| limit::counting_cpu(None, &cp_cpu, || cp(&["--reflink=never"], &src, &d_cp))),
        Box::new(|| host_copy(&src, &d_host)),
        Box::new(|| limit::counting_cpu(None, &dd_cpu, || limit::pipe(&src, &d_dd))),
    ];
    let export = b.export.clone();
    let times = b.race(&mut contenders, &mut || {
        super::rm(
            &export,
            &[
                "full-clone.vmdk",
                "full-cp.vmdk",
                "full-host.vmdk",
                "full-dd.vmdk",
            ],
        )
    })?;
    drop(contenders);
    let what = format!("full clone, {} file", size(bytes));
    b.push(compare(
        "full-cp",
        what.clone(),
        &times[0],
        "`cp --reflink=never` + `sync FILE`",
        &times[1],
        Some(bytes),
        "≥ 0.9× the throughput",
        |o, t| t.as_secs_f64() / o.as_secs_f64() >= 0.9,
    ));
    b.push(compare(
        "full-host",
        what.clone(),
        &times[0],
        "host-side copy through the datastore path on the NAS itself, no network (1 MiB \
         read/write, fsync): the ≥ 2× target is judged across a link, `full-nfs-*`",
        &times[2],
        Some(bytes),
        "",
        |_, _| true,
    ));
    b.push(limit::row(what.clone(), &times[0], &times[3], bytes));
    checkpoints(b, what)?;
    let copied = bytes * b.plan.runs as u64;
    b.push(limit::cpu_row(
        "cpu-per-gib",
        "CPU (user + system) per GiB copied in the full clones above: openvaaid's \
         (/proc/PID/stat) against the peer's processes' (cutime + cstime; the kernel's \
         writeback threads, which write cp's page cache back, are not counted)"
            .to_owned(),
        daemon_cpu.get(),
        "`cp --reflink=never` + `sync FILE`",
        cp_cpu.get(),
        copied,
        Some(dd_cpu.get()),
    ));
    Ok(())
}

/// What a full clone's checkpoints cost: the engine's clone of the dense file staged for a
/// job (built in `.openvaai/` with a record, a checkpoint about every second, so that it
/// outlives a restart of the daemon: how openvaaid clones) against the same clone without a
/// job (no checkpoints), both in this process on the same export.
fn checkpoints(b: &mut Bench<'_>, what: String) -> Result<()> {
    use openvaai_engine::{CancelToken, CloneFlags, CloneJob, Export};
    let export = Export::open(&b.export)?;
    let flags = CloneFlags::default();
    let cancel = CancelToken::new();
    let mut job = 0u64;
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| {
            job += 1;
            let id = CloneJob {
                id: 0xbe4c_0000_0000_0000 | job,
                src_export: None,
                hold: false,
            };
            let dst = "ckpt-job.vmdk";
            export
                .stage_clone_job(&export, id, DENSE, dst, flags, &mut |_| {}, &cancel)?
                .publish()?;
            Ok(())
        }),
        Box::new(|| {
            let dst = "ckpt-none.vmdk";
            export.clone_file(&export, DENSE, dst, flags, &mut |_| {}, &cancel)?;
            Ok(())
        }),
    ];
    let root = b.export.clone();
    let times = b.race(&mut contenders, &mut || {
        super::rm(&root, &["ckpt-job.vmdk", "ckpt-none.vmdk"])
    })?;
    drop(contenders);
    b.push(compare(
        "checkpoints",
        format!("{what}, staged for a job with checkpoints (the engine, in-process)"),
        &times[0],
        "the same clone without a job: no checkpoints",
        &times[1],
        Some(b.plan.full),
        "≥ 0.97× the throughput",
        |o, t| t.as_secs_f64() / o.as_secs_f64() >= 0.97,
    ));
    Ok(())
}

/// A thin disk (SKIPZEROES clone) vs `cp --sparse=always`, and vs copying its data alone.
pub fn thin(b: &mut Bench<'_>) -> Result<()> {
    let plan = b.plan.clone();
    let piece = plan.thin_data / plan.thin_runs;
    let runs: Vec<Run> = (0..plan.thin_runs)
        .flat_map(|_| {
            [
                Run::Data(piece),
                Run::Hole(plan.thin / plan.thin_runs - piece),
            ]
        })
        .collect();
    write_layout(&b.p("thin-flat.vmdk"), &runs, 2)?;
    write_layout(&b.p("data-flat.vmdk"), &[Run::Data(plan.thin_data)], 3)?;
    let (src, d_cp) = (b.p("thin-flat.vmdk"), b.p("thin-cp.vmdk"));
    let session = &b.session;
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| {
            session.clone_file(
                "thin-flat.vmdk",
                "thin-clone.vmdk",
                clone_flag::SKIPZEROES,
                plan.thin,
            )
        }),
        Box::new(|| cp(&["--sparse=always", "--reflink=never"], &src, &d_cp)),
        Box::new(|| session.clone_file("data-flat.vmdk", "data-clone.vmdk", 0, plan.thin_data)),
    ];
    let export = b.export.clone();
    let times = b.race(&mut contenders, &mut || {
        super::rm(
            &export,
            &["thin-clone.vmdk", "thin-cp.vmdk", "data-clone.vmdk"],
        )
    })?;
    drop(contenders);
    let what = format!(
        "thin clone (SKIPZEROES) of a {} disk holding {} of data",
        size(plan.thin),
        size(plan.thin_data)
    );
    b.push(compare(
        "thin-cp",
        what.clone(),
        &times[0],
        "`cp --sparse=always --reflink=never` + `sync FILE`",
        &times[1],
        Some(plan.thin_data),
        "",
        |_, _| true,
    ));
    b.push(compare(
        "thin-data",
        what,
        &times[0],
        &format!(
            "full clone of a {} file of data alone (same path)",
            size(plan.thin_data)
        ),
        &times[2],
        Some(plan.thin_data),
        "time ≤ 1.5× the data alone",
        |o, t| o.as_secs_f64() <= 1.5 * t.as_secs_f64(),
    ));
    b.rm(&["thin-flat.vmdk", "data-flat.vmdk"]);
    Ok(())
}

/// Lazy clone of `src` vs `cp --reflink=always`; the target allows one round trip more.
pub fn lazy(b: &mut Bench<'_>, id: &'static str, src: &str, what: String) -> Result<()> {
    let bytes = std::fs::metadata(b.p(src))?.len();
    let (src_p, d_cp) = (b.p(src), b.p("lazy-cp.vmdk"));
    let session = &b.session;
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| session.clone_file(src, "lazy-clone.vmdk", clone_flag::LAZY, bytes)),
        Box::new(|| cp(&["--reflink=always"], &src_p, &d_cp)),
    ];
    let export = b.export.clone();
    let times = b.race(&mut contenders, &mut || {
        super::rm(&export, &["lazy-clone.vmdk", "lazy-cp.vmdk"])
    })?;
    drop(contenders);
    let rtt = b.rtt;
    let strict = id == "lazy";
    let row = compare(
        id,
        what,
        &times[0],
        "`cp --reflink=always` + `sync FILE`",
        &times[1],
        None,
        &if strict {
            format!("time ≤ 2× the peer + 1 round trip ({})", measure::dur(rtt))
        } else {
            String::new()
        },
        |o, t| o <= 2 * t + rtt,
    );
    b.push(row);
    Ok(())
}

/// The round trip the lazy target allows: the median of warm STATX calls on a 4 KiB file
/// through the plugin (TLS, ONC RPC, the daemon's dispatch, one FIEMAP).
pub fn round_trip(b: &mut Bench<'_>) -> Result<()> {
    write_layout(&b.p("tiny.vmdk"), &[Run::Data(4096)], 4)?;
    let mut t = Vec::new();
    for _ in 0..200 {
        let (d, _) = measure::time(|| b.session.statx("tiny.vmdk"))?;
        t.push(d);
    }
    b.rm(&["tiny.vmdk"]);
    b.rtt = measure::median(&t);
    b.push(
        Row::new(
            "rtt",
            "one round trip: STATX of a 4 KiB file through the plugin, warm, median of 200",
        )
        .ours(measure::dur(b.rtt)),
    );
    Ok(())
}
