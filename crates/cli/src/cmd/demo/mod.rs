//! `openvaai demo`: the whole offload story in one command, on a scratch datastore it makes
//! and removes: openvaaid on loopback, a sample thin disk, and through the plugin (loaded as
//! disklib loads it) a support check, a lazy clone, a full clone with progress, a thin clone,
//! a reserved thick disk, and statx of each, beside a plain host-side copy for comparison.
//! Then the same through the standard NFSv4.2 backend against real knfsd in a qemu guest,
//! where the guest can run here ([`nfs42`]).

mod nfs42;

use crate::out::outln;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::HumanBytes;
use openvaai_abi::{clone_flag, prim, vix, CloneFlags};
use openvaai_testkit::{write_layout, Daemon, FsKind, Run, TestFs};
use serde_json::{json, Value};

use super::clone::clone_with_meter;
use super::reserve::parse_size;
use super::statx;
use crate::target::{plugin_log, DatastoreArgs, PluginArgs, Target};

#[derive(clap::Args)]
pub struct Args {
    /// The sample disk's logical size.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub size: u64,
    /// How much of it holds data (the rest is holes).
    #[arg(long, default_value = "128M", value_parser = parse_size)]
    pub data: u64,
    /// Use a plain temporary directory even where an XFS image could be mounted.
    #[arg(long)]
    pub no_image: bool,
    /// Skip the part on the standard NFSv4.2 backend (knfsd in a qemu guest, which takes a
    /// minute to boot under software emulation).
    #[arg(long)]
    pub no_nfs42: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub plugin: PluginArgs,
}

/// Where the demo runs: a loop-mounted XFS with reflink, or a temporary directory.
enum Workspace {
    Image(TestFs),
    Dir(tempfile::TempDir),
}

impl Workspace {
    fn make(args: &Args) -> (Workspace, String) {
        if !args.no_image {
            match TestFs::unavailable(FsKind::Xfs) {
                None => match TestFs::mount_new(FsKind::Xfs, (args.size * 4).max(2 << 30)) {
                    Ok(fs) => {
                        let why = "XFS with reflink on a loop-mounted sparse image".to_owned();
                        return (Workspace::Image(fs), why);
                    }
                    Err(e) => return Workspace::dir(&format!("mounting an XFS image failed: {e}")),
                },
                Some(reason) => return Workspace::dir(&reason),
            }
        }
        Workspace::dir("--no-image")
    }

    fn dir(reason: &str) -> (Workspace, String) {
        let d = tempfile::Builder::new()
            .prefix("openvaai-demo-")
            .tempdir()
            .expect("a temporary directory");
        let why = format!(
            "a temporary directory on the local filesystem (no XFS image: {reason}); lazy \
             clones work only if that filesystem can reflink"
        );
        (Workspace::Dir(d), why)
    }

    fn root(&self) -> &Path {
        match self {
            Workspace::Image(fs) => fs.path(),
            Workspace::Dir(d) => d.path(),
        }
    }
}

/// A plain copy by the host through the datastore path, every byte read and written: what
/// ESXi does when nothing is offloaded.
fn host_copy(src: &Path, dst: &Path) -> Result<Duration> {
    let t = Instant::now();
    openvaai_testkit::host_copy(src, dst)?;
    Ok(t.elapsed())
}

struct Step {
    name: &'static str,
    file: &'static str,
    status: u64,
    took: Duration,
    bytes: u64,
}

/// The primitives SupportStatus answers for, as (name, supported), and their line.
fn support(target: &Target, say: &dyn Fn(String)) -> Vec<(&'static str, bool)> {
    let support: Vec<(&str, bool)> = [
        ("CLONEFILE", prim::CLONEFILE),
        ("RESVSPACE", prim::RESVSPACE),
        ("STATX", prim::STATX),
    ]
    .into_iter()
    .map(|(n, p)| (n, target.plugin.support_status(target.id, p) == vix::OK))
    .collect();
    say(format!(
        "support    {}\n",
        support
            .iter()
            .map(|(n, ok)| format!("{n} {}", if *ok { "yes" } else { "no" }))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    support
}

fn support_json(support: &[(&str, bool)]) -> Value {
    support
        .iter()
        .map(|(n, ok)| json!({ "primitive": n, "supported": ok }))
        .collect()
}

/// The steps as a table.
fn steps_table(steps: &[Step], say: &dyn Fn(String)) {
    say(format!(
        "{:<11} {:<17} {:>10} {:>12}   {}",
        "step", "file", "time", "rate", "result"
    ));
    for st in steps {
        say(format!(
            "{:<11} {:<17} {:>8.3} s {:>12}   {}",
            st.name,
            st.file,
            st.took.as_secs_f64(),
            // A step that failed (a lazy clone where reflink is missing) moved nothing.
            if st.status == vix::OK {
                super::rate(st.bytes, st.took)
            } else {
                "-".to_owned()
            },
            super::vix_name(st.status)
        ));
    }
}

fn steps_json(steps: &[Step]) -> Value {
    steps
        .iter()
        .map(|s| {
            json!({
                "step": s.name,
                "file": s.file,
                "status": super::vix_name(s.status),
                "seconds": super::secs(s.took),
            })
        })
        .collect()
}

/// STATX of each of `files` (in the target's datastore) as a table; their JSON.
fn statx_table(target: &Target, files: &[&str], say: &dyn Fn(String)) -> Result<Vec<Value>> {
    say(format!("\n{}", statx::header(19)));
    let mut out = Vec::new();
    for name in files {
        let r = target.plugin.statx(target.id, &target.file(name))?;
        say(statx::row(name, &r, 19));
        out.push(statx::to_json(name, &r));
    }
    Ok(out)
}

pub fn run(args: &Args) -> Result<u8> {
    if args.data > args.size {
        bail!(
            "--data ({}) is larger than --size ({})",
            args.data,
            args.size
        );
    }
    let say = |s: String| {
        if !args.json {
            outln!("{s}");
        }
    };
    say("openvaai demo: VAAI-NAS offloads on a scratch datastore\n".into());
    let (ws, why) = Workspace::make(args);
    let export = ws.root().join("datastore1");
    std::fs::create_dir(&export).context("creating the export directory")?;
    say(format!(
        "workspace  {why}\n           {}",
        ws.root().display()
    ));

    let mut daemon = Daemon::serve(&export);
    say(format!(
        "daemon     openvaaid on 127.0.0.1:{}, exporting {}",
        daemon.port(),
        export.display()
    ));
    let result = story(args, &export, &say);
    let stopped = daemon.terminate(Duration::from_secs(10));
    if let Err(e) = &result {
        eprintln!(
            "openvaai demo: {e:#}\n  daemon log: {}",
            daemon.log.display()
        );
        if let Ok(log) = std::fs::read_to_string(&daemon.log) {
            for line in log
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                eprintln!("  | {line}");
            }
        }
    }
    drop(daemon);
    drop(ws);
    let mut report = result?;
    if !args.no_nfs42 {
        report["nfs42"] = nfs42::part(args, &say)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "\ncleaned up: openvaaid stopped ({}), scratch datastore removed",
            match stopped {
                Some(s) if s.success() => "exit 0".to_owned(),
                Some(s) => s.to_string(),
                None => "killed".to_owned(),
            }
        );
    }
    Ok(crate::exit::OK)
}

fn story(args: &Args, export: &Path, say: &dyn Fn(String)) -> Result<Value> {
    // The sample: a thin disk, its data in 8 runs between holes.
    let sample = export.join("web01-flat.vmdk");
    let runs: Vec<Run> = (0..8)
        .flat_map(|_| {
            [
                Run::Data(args.data / 8),
                Run::Hole((args.size - args.data) / 8),
            ]
        })
        .collect();
    write_layout(&sample, &runs, 7).context("writing the sample disk")?;
    let size = std::fs::metadata(&sample)?.len();
    say(format!(
        "sample     web01-flat.vmdk: a {} thin disk holding {} of data",
        HumanBytes(size),
        HumanBytes(args.data)
    ));

    // The export as a datastore seen from a shell on the NAS: the target's defaults.
    let target = Target::open(&DatastoreArgs {
        datastore: export.to_str().context("path not UTF-8")?.to_owned(),
        nas_ip: None,
        nas_path: None,
        timeout_ms: 0,
        plugin: args.plugin.clone(),
    })?;
    let id = target.id;
    say(format!(
        "plugin     {} (loaded as disklib loads it)",
        target.plugin.path().display()
    ));
    let support = support(&target, say);

    let path = |name: &str| export.join(name);
    let s = |p: PathBuf| p.to_str().unwrap_or_default().to_owned();
    let mut steps = Vec::new();
    let mut clone = |name: &'static str, file: &'static str, flags: CloneFlags| -> Result<()> {
        let t = Instant::now();
        let (status, _) = clone_with_meter(
            &target,
            &s(sample.clone()),
            &s(path(file)),
            flags,
            None,
            name,
            !args.json,
        )?;
        steps.push(Step {
            name,
            file,
            status,
            took: t.elapsed(),
            bytes: size,
        });
        Ok(())
    };
    clone("lazy clone", "web01-lazy.vmdk", clone_flag::LAZY)?;
    clone("full clone", "web01-full.vmdk", 0)?;
    clone("thin clone", "web01-thin.vmdk", clone_flag::SKIPZEROES)?;

    // A thick disk: ESXi creates it and sets its length, then asks for RESVSPACE.
    let thick = path("db01-flat.vmdk");
    std::fs::File::create(&thick)?.set_len(size)?;
    let t = Instant::now();
    let status = target.plugin.reserve(id, &s(thick.clone()), None)?;
    steps.push(Step {
        name: "reserve",
        file: "db01-flat.vmdk",
        status,
        took: t.elapsed(),
        bytes: size,
    });

    // The same copy done by the host.
    let host = path("web01-hostcopy.vmdk");
    let host_took = host_copy(&sample, &host)?;
    std::fs::remove_file(&host)?;

    steps_table(&steps, say);
    say(format!(
        "{:<11} {:<17} {:>8.3} s {:>12}   every byte read and written by the host, as without offload",
        "host copy",
        "(for comparison)",
        host_took.as_secs_f64(),
        super::rate(size, host_took)
    ));

    let files = statx_table(
        &target,
        &[
            "web01-flat.vmdk",
            "web01-lazy.vmdk",
            "web01-full.vmdk",
            "web01-thin.vmdk",
            "db01-flat.vmdk",
        ],
        say,
    )?;
    let lazy_failed = steps
        .iter()
        .any(|s| s.name == "lazy clone" && s.status == vix::E_NOT_SUPPORTED);
    if lazy_failed {
        say("\nnote: the lazy clone is NOT_SUPPORTED here: this filesystem cannot reflink (run as root with xfsprogs for an XFS image)".into());
    }
    let failed: Vec<&Step> = steps
        .iter()
        .filter(|s| s.status != vix::OK && !(s.name == "lazy clone" && lazy_failed))
        .collect();
    if let Some(f) = failed.first() {
        return Err(crate::fail::Failed::vix(f.name, f.status, &plugin_log()));
    }
    Ok(json!({
        "support": support_json(&support),
        "steps": steps_json(&steps),
        "host_copy_seconds": super::secs(host_took),
        "files": files,
    }))
}
