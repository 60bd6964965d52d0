//! `openvaai reserve`: RESVSPACE, what ESXi does to make a thick disk on NFS.

use crate::out::outln;
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
    /// First create the file or set its size (like ESXi before RESVSPACE), e.g. 40G or
    /// 1.5T. A file this command created is removed again if the reservation fails.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `123`, `4k`, `10M`, `2G`, `1.5T` (binary units; a decimal fraction must come to whole
/// bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() || frac.contains('.') || (num.contains('.') && frac.is_empty()) {
        return Err(format!("not a size: {s:?} (e.g. 40G, 1.5T)"));
    }
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
    let too_large = || format!("{s:?} is too large");
    let n: u64 = whole.parse().map_err(|_| too_large())?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(too_large)?;
    if frac.is_empty() {
        return Ok(bytes);
    }
    // frac / 10^digits of the unit, exactly: at most 12 digits keep it within u128.
    if frac.len() > 12 {
        return Err(format!("{s:?}: too many decimals"));
    }
    let num = frac.parse::<u128>().map_err(|_| too_large())? << shift;
    let den = 10u128.pow(frac.len() as u32);
    if num % den != 0 {
        return Err(format!(
            "{s:?} is not a whole number of bytes (use a smaller unit)"
        ));
    }
    bytes.checked_add((num / den) as u64).ok_or_else(too_large)
}

/// What `--size` changed, to be put back when the reservation fails: a file it created is
/// removed; a file it grew gets its old length back.
enum Undo {
    Remove,
    Truncate(u64),
    Nothing,
}

impl Undo {
    fn run(self, path: &str) {
        let result = match self {
            Undo::Remove => std::fs::remove_file(path),
            Undo::Truncate(len) => std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(len)),
            Undo::Nothing => Ok(()),
        };
        if let Err(e) = result {
            eprintln!("openvaai: could not undo --size on {path}: {e}");
        }
    }
}

/// Creates `path` (if absent) and sets its length, as ESXi does before RESVSPACE.
fn set_size(path: &str, size: u64) -> Result<Undo> {
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path);
    let (f, undo) = match f {
        Ok(f) => (f, Undo::Remove),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {path}"))?;
            let len = f.metadata()?.len();
            let undo = if len < size {
                Undo::Truncate(len)
            } else {
                Undo::Nothing
            };
            (f, undo)
        }
        Err(e) => return Err(e).with_context(|| format!("creating {path}")),
    };
    if let Err(e) = f.set_len(size) {
        undo.run(path);
        return Err(e).with_context(|| format!("setting the size of {path}"));
    }
    Ok(undo)
}

pub fn run(args: &Args) -> Result<u8> {
    if args.size == Some(0) {
        anyhow::bail!("--size 0: a reservation needs a size of at least one byte (e.g. 40G)");
    }
    let target = Target::open(&args.ds)?;
    let path = target.file(&args.file);
    let undo = match args.size {
        Some(size) => Some(set_size(&path, size)?),
        None => None,
    };
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
    if status != openvaai_abi::vix::OK {
        if let Some(undo) = undo {
            undo.run(&path);
        }
    }
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
        outln!(
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

    #[test]
    fn sizes_take_decimals_that_come_to_whole_bytes() {
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5k"), Ok(512));
        assert_eq!(parse_size("2.25T"), Ok(9 << 38));
        let e = parse_size("0.1k").unwrap_err();
        assert!(e.contains("whole number of bytes"), "{e}");
        assert!(parse_size("1.G").is_err());
        assert!(parse_size(".5G").is_err());
        assert!(parse_size("1.2.3G").is_err());
        assert!(parse_size("1.5").is_err(), "a fraction of a byte");
    }
}
