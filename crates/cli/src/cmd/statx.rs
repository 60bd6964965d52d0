//! `openvaai statx`: extended statistics of files, as `vmkfstools --extendedstatinfo` gets
//! them.

use anyhow::Result;
use indicatif::HumanBytes;
use openvaai_abi::{alloc, vix, AllocType};
use serde_json::json;

use crate::target::{plugin_log, DatastoreArgs, Target};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ds: DatastoreArgs,
    /// Files: absolute, or relative to the datastore.
    #[arg(required = true)]
    pub files: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn alloc_name(t: AllocType) -> &'static str {
    match t {
        alloc::EZT => "eager-zeroed thick",
        alloc::LZT => "lazy-zeroed thick",
        alloc::THIN => "thin",
        _ => "unknown",
    }
}

pub fn run(args: &Args) -> Result<u8> {
    let target = Target::open(&args.ds)?;
    let mut rows = Vec::new();
    let mut worst = vix::OK;
    for f in &args.files {
        let path = target.file(f);
        let r = target.plugin.statx(target.id, &path)?;
        if r.common.status != vix::OK && worst == vix::OK {
            worst = r.common.status;
        }
        rows.push((path, r));
    }
    let log = plugin_log();
    if args.json {
        let files: Vec<_> = rows
            .iter()
            .map(|(p, r)| {
                json!({
                    "file": p,
                    "status": super::vix_name(r.common.status),
                    "code": r.common.status,
                    "total_bytes": r.total_bytes,
                    "alloced_bytes": r.alloced_bytes,
                    "unique_bytes": r.unique_bytes,
                    "alloc_type": alloc_name(r.alloc_type),
                })
            })
            .collect();
        return super::finish(true, json!({ "files": files }), "STATX", worst, &log);
    }
    println!(
        "{:<40} {:>11} {:>11} {:>11}  type",
        "file", "size", "allocated", "unique"
    );
    for (p, r) in &rows {
        let name = p
            .strip_prefix(target.mount())
            .unwrap_or(p)
            .trim_start_matches('/');
        if r.common.status == vix::OK {
            println!(
                "{:<40} {:>11} {:>11} {:>11}  {}",
                name,
                HumanBytes(r.total_bytes).to_string(),
                HumanBytes(r.alloced_bytes).to_string(),
                HumanBytes(r.unique_bytes).to_string(),
                alloc_name(r.alloc_type)
            );
        } else {
            println!("{name:<40} {}", super::vix_name(r.common.status));
        }
    }
    super::finish(false, json!(null), "STATX", worst, &log)
}
