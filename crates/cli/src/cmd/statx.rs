//! `openvaai statx`: extended statistics of files, as `vmkfstools --extendedstatinfo` gets
//! them.

use crate::out::outln;
use anyhow::Result;
use indicatif::HumanBytes;
use openvaai_abi::{alloc, vix, AllocType, StatXResult};
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

/// The header of the statistics table, for a name column of `width`.
pub fn header(width: usize) -> String {
    format!(
        "{:<width$} {:>11} {:>11} {:>11}  type",
        "file", "size", "allocated", "unique"
    )
}

/// One row of the statistics table.
pub fn row(name: &str, r: &StatXResult, width: usize) -> String {
    if r.common.status != vix::OK {
        return format!("{name:<width$} {}", super::vix_name(r.common.status));
    }
    format!(
        "{:<width$} {:>11} {:>11} {:>11}  {}",
        name,
        HumanBytes(r.total_bytes).to_string(),
        HumanBytes(r.alloced_bytes).to_string(),
        HumanBytes(r.unique_bytes).to_string(),
        alloc_name(r.alloc_type)
    )
}

/// One file's statistics for `--json`.
pub fn to_json(file: &str, r: &StatXResult) -> serde_json::Value {
    json!({
        "file": file,
        "status": super::vix_name(r.common.status),
        "code": r.common.status,
        "total_bytes": r.total_bytes,
        "alloced_bytes": r.alloced_bytes,
        "unique_bytes": r.unique_bytes,
        "alloc_type": alloc_name(r.alloc_type),
    })
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
        let files: Vec<_> = rows.iter().map(|(p, r)| to_json(p, r)).collect();
        return super::finish(true, json!({ "files": files }), "STATX", worst, &log);
    }
    outln!("{}", header(40));
    for (p, r) in &rows {
        let name = p
            .strip_prefix(target.mount())
            .unwrap_or(p)
            .trim_start_matches('/');
        outln!("{}", row(name, r, 40));
    }
    super::finish(false, json!(null), "STATX", worst, &log)
}
