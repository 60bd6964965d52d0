//! `openvaai clone`: CLONEFILE of one file, with every flag ESXi uses.

use crate::out::outln;
use std::time::Instant;

use anyhow::Result;
use openvaai_abi::{clone_flag, vix, CloneFlags, VixError};
use openvaai_host::{Datastore, Progress};
use serde_json::json;

use crate::progress::{Meter, UPDATE_BYTES};
use crate::target::{plugin_log, DatastoreArgs, Target};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ds: DatastoreArgs,
    /// The source: absolute, or relative to its datastore.
    pub src: String,
    /// The destination: absolute, or relative to the datastore.
    pub dst: String,
    /// Copy-on-write clone (LAZY): instant, shares blocks; needs reflink.
    #[arg(long)]
    pub lazy: bool,
    /// Keep the clone thin (SKIPZEROES): holes and zero blocks are not written.
    #[arg(long)]
    pub thin: bool,
    /// Replace the destination if it exists. Without it the clone is GUARDED: an existing
    /// destination is refused (FILE_ALREADY_EXISTS) and left alone.
    #[arg(long)]
    pub force: bool,
    /// The default (GUARDED); kept for scripts written when replacing was the default.
    #[arg(long, hide = true, conflicts_with = "force")]
    pub guarded: bool,
    /// Only check that the clone would work (DRYRUN).
    #[arg(long)]
    pub dry_run: bool,
    /// The source is on another datastore: its local mount point (SRCDATASTORE_VALID).
    #[arg(long, value_name = "DIR")]
    pub src_datastore: Option<String>,
    /// The NAS path of --src-datastore (default: its mount point).
    #[arg(long, value_name = "PATH", requires = "src_datastore")]
    pub src_nas_path: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The flags' names, for reports.
pub fn flag_names(flags: CloneFlags) -> Vec<&'static str> {
    [
        (clone_flag::GUARDED, "GUARDED"),
        (clone_flag::LAZY, "LAZY"),
        (clone_flag::SRCDATASTORE_VALID, "SRCDATASTORE_VALID"),
        (clone_flag::DRYRUN, "DRYRUN"),
        (clone_flag::SKIPZEROES, "SKIPZEROES"),
    ]
    .into_iter()
    .filter(|(f, _)| flags & f != 0)
    .map(|(_, n)| n)
    .collect()
}

/// What a clone with `flags` makes, in words: "lazy", "full, thin" or "full, thick".
pub fn kind_of_clone(flags: CloneFlags) -> &'static str {
    if flags & clone_flag::LAZY != 0 {
        "lazy"
    } else if flags & clone_flag::SKIPZEROES != 0 {
        "full, thin"
    } else {
        "full, thick"
    }
}

/// One clone through the plugin with a progress meter: (status, bytes reported, meter).
pub fn clone_with_meter(
    target: &Target,
    src: &str,
    dst: &str,
    flags: CloneFlags,
    src_ds: Option<&Datastore>,
    label: &str,
    show: bool,
) -> Result<(VixError, Meter)> {
    let total = std::fs::metadata(src).map(|m| m.len()).unwrap_or(0);
    let mut meter = Meter::new(total, label, show);
    let status = {
        let mut cb = meter.callback();
        target.plugin.clone_file(
            target.id,
            src,
            dst,
            flags,
            src_ds,
            Some(Progress {
                update_bytes: UPDATE_BYTES,
                callback: &mut cb,
            }),
        )?
    };
    meter.finish();
    Ok((status, meter))
}

pub fn run(args: &Args) -> Result<u8> {
    let target = Target::open(&args.ds)?;
    let mut flags = 0;
    for (on, f) in [
        (args.lazy, clone_flag::LAZY),
        (args.thin, clone_flag::SKIPZEROES),
        (!args.force, clone_flag::GUARDED),
        (args.dry_run, clone_flag::DRYRUN),
    ] {
        if on {
            flags |= f;
        }
    }
    let src_ds = match &args.src_datastore {
        Some(dir) => {
            flags |= clone_flag::SRCDATASTORE_VALID;
            let a = DatastoreArgs {
                datastore: dir.clone(),
                nas_ip: args.ds.nas_ip.clone(),
                nas_path: args.src_nas_path.clone(),
                timeout_ms: 0,
                plugin: args.ds.plugin.clone(),
            };
            Some(a.datastore()?)
        }
        None => None,
    };
    let src = match &src_ds {
        Some(ds) if !args.src.starts_with('/') => {
            format!(
                "{}/{}",
                ds.local_mount_point.as_deref().unwrap_or(""),
                args.src
            )
        }
        _ => target.file(&args.src),
    };
    let dst = target.file(&args.dst);
    let t = Instant::now();
    let (status, meter) = clone_with_meter(
        &target,
        &src,
        &dst,
        flags,
        src_ds.as_ref(),
        "clone",
        !args.json,
    )?;
    let took = t.elapsed();
    let bytes = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
    if meter.interrupted() && status == vix::E_CANCELLED && !args.json {
        eprintln!("openvaai: interrupted; the clone was cancelled and nothing was left behind");
    }
    if !args.json && status == vix::OK {
        // A dry run moves nothing: no time or rate to speak of.
        let how = if args.dry_run {
            String::new()
        } else {
            format!(
                " in {:.3} s ({})",
                took.as_secs_f64(),
                super::rate(bytes, took)
            )
        };
        outln!(
            "{} {src} -> {dst} ({}; flags {}) {}{how}",
            if args.dry_run {
                "would clone"
            } else {
                "cloned"
            },
            kind_of_clone(flags),
            match flag_names(flags).join(" ") {
                names if names.is_empty() => "none".to_owned(),
                names => names,
            },
            indicatif::HumanBytes(bytes),
        );
    }
    let report = json!({
        "operation": "clone",
        "src": src,
        "dst": dst,
        "flags": flag_names(flags),
        "status": super::vix_name(status),
        "code": status,
        "bytes": bytes,
        "seconds": super::secs(took),
        "progress_bytes": meter.reported,
        "progress_callbacks": meter.callbacks,
    });
    super::finish(args.json, report, "CLONEFILE", status, &plugin_log())
}
