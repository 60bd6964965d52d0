//! `openvaai-bench`: the offloads through the real plugin, daemon and engine, each beside
//! what users would do instead, in one run on one machine, as ratios.
//!
//! ```text
//! sudo cargo run --release -p openvaai-bench -- [--quick | --smoke] [--runs N] [--out FILE] [--no-build]
//! ```
//!
//! It makes its own XFS reflink image (a sparse file, loop-mounted), starts `openvaaid` on
//! loopback with the image's export, loads `libopenvaai.so` as disklib does, and runs every
//! case against its peers with caches dropped before each timed run, interleaved, `--runs`
//! times; the table (medians) goes to stdout and, with `--out`, to a markdown file. Needs
//! root (loop mounts, `drop_caches`) and xfsprogs. Exit status: 0 every operation
//! succeeded (targets missed or not), 1 an operation or a case failed, 2 it cannot run here.
#![deny(unsafe_code)]

mod cases;
mod client;
mod machine;
mod measure;
mod plan;
mod table;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use openvaai_testkit::{Daemon, FsKind, TestFs};

use cases::clone::{DENSE, FRAG};
use cases::Bench;
use plan::Plan;
use table::ROW_IDS;

#[derive(clap::Parser)]
#[command(
    name = "openvaai-bench",
    about = "openvaai's offloads against their peers, as ratios"
)]
struct Args {
    /// One run and smaller files (1 GiB dense, 16 GiB thin): minutes instead of a quarter hour.
    #[arg(long)]
    quick: bool,
    /// Sizes in MiB, one run, caches kept: every case in seconds (CI).
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// Timed runs of each case (the table shows medians); default 3, 1 with --quick/--smoke.
    #[arg(long)]
    runs: Option<usize>,
    /// Use the plugin and daemon already built beside this program, without asking cargo to
    /// bring them up to date first.
    #[arg(long)]
    no_build: bool,
    /// Run only these cases (repeatable): full (with limit, cpu-per-gib and checkpoints),
    /// full-nfs (both links; or full-nfs-10g, full-nfs-1g), lazy, thin, statx, lazy-frag,
    /// reserve, load,
    /// plugin-rss, pool-16, storm-1000, statx-1m, backends (openvaaid against the standard
    /// NFSv4.2 backend in a knfsd guest). The report then lacks the other rows and the run
    /// exits 1.
    #[arg(long, value_name = "CASE")]
    only: Vec<String>,
    /// Put the loop device in direct-I/O mode, so that the image file is not cached a second
    /// time by the host's filesystem (closer to XFS on a disk of its own).
    #[arg(long)]
    loop_dio: bool,
    /// Also write the report (markdown) to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// (internal) The plugin's memory in a host process: the export to use.
    #[arg(long, hide = true)]
    probe_plugin: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 16)]
    probe_clients: usize,
    #[arg(long, hide = true, default_value_t = 0)]
    probe_bytes: u64,
    /// (internal) The backends case inside the knfsd guest: the disk to use.
    #[arg(long, hide = true)]
    probe_backends: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = clap::Parser::parse();
    if let Some(export) = &args.probe_plugin {
        return match cases::memory::probe(export, args.probe_clients, args.probe_bytes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("openvaai-bench probe: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(root) = &args.probe_backends {
        return match cases::backends::probe(root, args.quick, args.runs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("openvaai-bench probe: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("openvaai-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Under cargo, builds the plugin and the daemon of this profile first, so that the figures
/// are of the code in the tree (cargo builds only this program's dependencies). Elsewhere,
/// `openvaai_testkit` finds them beside this program.
fn build_artifacts() -> Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "openvaai-plugin", "-p", "openvaai-daemon"]);
    if openvaai_testkit::profile_dir().ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of the plugin and the daemon failed");
    }
    Ok(())
}

fn run(args: &Args) -> Result<ExitCode> {
    let mut plan = if args.smoke {
        Plan::smoke()
    } else if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(n) = args.runs {
        plan.runs = n.max(1);
    }
    if let Some(reason) = TestFs::unavailable(FsKind::Xfs) {
        eprintln!("openvaai-bench cannot run here: {reason} (it needs root and xfsprogs)");
        return Ok(ExitCode::from(2));
    }
    if !args.smoke && !args.no_build {
        build_artifacts()?;
    }
    let started = measure::cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"])?;
    let load_start = machine::loadavg();
    let image = plan.image_size();
    println!(
        "openvaai-bench ({} run): {} GiB XFS image, median of {}",
        plan.name,
        image >> 30,
        plan.runs
    );
    let fs = TestFs::mount_new(FsKind::Xfs, image).context("making the XFS image")?;
    if args.loop_dio {
        // LOOP_SET_DIRECT_IO on the bound device: no second page cache for the image file.
        measure::cmd("losetup", &["--direct-io=on", fs.loop_device()])?;
    }
    let facts = machine::describe(&std::env::temp_dir(), image, fs.loop_device());
    let export = fs.path().join("datastore1");
    std::fs::create_dir(&export)?;
    // At the daemon's default log level, as users run it (tests run it at `debug`).
    let daemon = Daemon::builder()
        .export(&export)
        .default_log_level()
        .start();
    let plugin = client::load()?;
    let session = client::Session::start(&plugin, &export)?;
    let mut b = Bench {
        plan: plan.clone(),
        mount: fs.path().to_owned(),
        export: export.clone(),
        plugin: &plugin,
        session,
        daemon_pid: daemon.pid(),
        daemon_start_kib: measure::proc_status_kib(Some(daemon.pid()), "VmRSS").unwrap_or(0),
        table: table::Table::default(),
        rtt: std::time::Duration::ZERO,
    };
    let errors = cases(&mut b, &args.only);
    let table = std::mem::take(&mut b.table);
    drop(b);
    drop(plugin);
    let daemon_log = daemon.log_text();
    drop(daemon);
    drop(fs);

    let mut report = format!(
        "## openvaai-bench, {} run, {}\n\n",
        plan.name,
        started.trim()
    );
    for (k, v) in &facts {
        report.push_str(&format!("- {k}: {v}\n"));
    }
    report.push_str(&format!(
        "- method: {}; contenders interleaved, each round starting with the next; median of {} run(s)\n\
         - load average (1, 5, 15 min) at start: {load_start}; at end: {}\n\
         - ratio: the peer's time ÷ openvaai's (above 1: openvaai is faster); for clones/s, \
         openvaai's rate ÷ the peer's. Rates are of logical bytes (of data bytes for the thin disk).\n\n",
        if plan.drop_caches {
            "`sync`, `fstrim` of the image, `echo 3 > /proc/sys/vm/drop_caches` and a pause before each timed run"
        } else {
            "caches not dropped (smoke run)"
        },
        plan.runs,
        machine::loadavg()
    ));
    report.push_str(&table.markdown());
    println!("\n{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }

    let missing: Vec<&&str> = ROW_IDS
        .iter()
        .filter(|id| !table.rows.iter().any(|r| r.id == **id))
        .collect();
    let failed = table.failures();
    for e in &errors {
        eprintln!("openvaai-bench: case failed: {e}");
    }
    for r in &failed {
        eprintln!("openvaai-bench: {} failed: {:?}", r.id, r.verdict);
    }
    if !missing.is_empty() {
        eprintln!("openvaai-bench: rows missing: {missing:?}");
    }
    if !errors.is_empty() || !failed.is_empty() || !missing.is_empty() {
        eprintln!("openvaai-bench: the daemon's last log lines:");
        for l in measure::last_lines(&daemon_log, 20) {
            eprintln!("  | {l}");
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every case in order (those in `only`, if any); a case that fails is reported and the
/// others still run.
fn cases(b: &mut Bench<'_>, only: &[String]) -> Vec<String> {
    use cases::{backends, clone, extents, link, load, memory, nfs, pool, reserve, statx, storm};
    let want = |case: &str| only.is_empty() || only.iter().any(|o| o == case);
    // `full-nfs` runs every link; `full-nfs-10g` one.
    let links: Vec<&link::LinkSpec> = link::LINKS
        .iter()
        .filter(|l| want("full-nfs") || want(l.row))
        .collect();
    let mut errors = Vec::new();
    let mut step = |name: &str, r: Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{name}: {e:#}"));
        }
    };
    println!("measuring (id, openvaai | peer | result):");
    step("round trip", clone::round_trip(b));
    let need_dense = !links.is_empty()
        || ["full", "lazy", "load", "plugin-rss"]
            .iter()
            .any(|c| want(c));
    let dense = if need_dense {
        clone::make_dense(b)
    } else {
        Ok(())
    };
    let have_dense = need_dense && dense.is_ok();
    step("dense source", dense);
    if have_dense && want("full") {
        step("full clone", clone::full(b));
    }
    if have_dense && !links.is_empty() {
        step("full clone vs NFS", nfs::full_nfs(b, &links));
    }
    if have_dense && want("lazy") {
        let what = format!("lazy clone of the {} file", measure::size(b.plan.full));
        step("lazy clone", clone::lazy(b, "lazy", DENSE, what));
    }
    if want("thin") {
        step("thin clone", clone::thin(b));
    }
    if want("statx") || want("lazy-frag") {
        match statx::make_fragmented(b) {
            Ok(extents) => {
                if want("statx") {
                    step("statx", statx::statx(b, extents));
                }
                if want("lazy-frag") {
                    let what = format!(
                        "lazy clone of a {} file of {extents} extents",
                        measure::size(b.plan.frag)
                    );
                    step(
                        "lazy clone, fragmented",
                        clone::lazy(b, "lazy-frag", FRAG, what),
                    );
                }
            }
            Err(e) => step("fragmented source", Err(e)),
        }
        b.rm(&[FRAG]);
    }
    if want("reserve") {
        step("reserve", reserve::reserve(b));
    }
    if have_dense && want("load") {
        step("load", load::load(b));
    }
    if have_dense && want("plugin-rss") {
        step("plugin memory", memory::plugin_rss(b));
    }
    b.rm(&[DENSE]);
    // Last: they reset the daemon's VmHWM, which `daemon-rss-load` reads over the run.
    if want("pool-16") {
        step("pool deploy", pool::pool(b));
    }
    if want("storm-1000") {
        step("storm of lazy clones", storm::storm(b));
    }
    b.rm(&[pool::TEMPLATE]);
    if want("statx-1m") {
        step("statx of a million extents", extents::statx_1m(b));
    }
    if want("backends") {
        step("openvaaid vs the standard backend", backends::backends(b));
    }
    errors
}
