//! `openvaai reserve`: RESVSPACE, what ESXi does to make a thick disk on NFS.

use std::time::Instant;

use anyhow::{Context, Result};
use openvaai_host::Progress;
use serde_json::json;

use crate::progress::{Meter, UPDATE_BYTES};
use crate::target::{plugin_log, DatastoreArgs, Target};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ds: DatastoreArgs,
    /// The file: absolute, or relative to the datastore. It must exist with a non-zero size,
    /// unless --size is given.
    pub file: String,
    /// First create the file or set its size (like ESXi before RESVSPACE), e.g. 40G.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `123`, `4k`, `10M`, `2G`, `1T` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("unknown unit in {s:?} (use k, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub fn run(args: &Args) -> Result<u8> {
    let target = Target::open(&args.ds)?;
    let path = target.file(&args.file);
    if let Some(size) = args.size {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {path}"))?;
        f.set_len(size)
            .with_context(|| format!("setting the size of {path}"))?;
    }
    let total = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut meter = Meter::new(total, "reserve", !args.json);
    let t = Instant::now();
    let status = {
        let mut cb = meter.callback();
        target.plugin.reserve(
            target.id,
            &path,
            Some(Progress {
                update_bytes: UPDATE_BYTES,
                callback: &mut cb,
            }),
        )?
    };
    meter.finish();
    let took = t.elapsed();
    let report = json!({
        "operation": "reserve",
        "file": path,
        "status": super::vix_name(status),
        "code": status,
        "bytes": total,
        "seconds": super::secs(took),
        "progress_bytes": meter.reported,
    });
    if !args.json && status == openvaai_abi::vix::OK {
        println!(
            "reserved {} for {path} in {:.3} s",
            indicatif::HumanBytes(total),
            took.as_secs_f64()
        );
    }
    super::finish(args.json, report, "RESVSPACE", status, &plugin_log())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
