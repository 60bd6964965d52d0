//! One module per command.

pub mod check;
pub mod clone;
pub mod clone_vmdk;
pub mod demo;
pub mod plugin_info;
pub mod reserve;
pub mod status;
pub mod statx;

use crate::out::outln;
use openvaai_abi::{vix, VixError};
use serde_json::Value;

use crate::fail::Failed;

/// Ends a command on the plugin's status: with `--json` the report goes to stdout whatever
/// the outcome (and the exit code tells); without, a failure becomes an error for `main`.
pub fn finish(
    json: bool,
    report: Value,
    what: &str,
    status: VixError,
    log: &[String],
) -> anyhow::Result<u8> {
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(crate::exit::of_vix(status));
    }
    if status == vix::OK {
        Ok(crate::exit::OK)
    } else {
        Err(Failed::vix(what, status, log))
    }
}

/// `"VIX_E_..."` for a status.
pub fn vix_name(status: VixError) -> &'static str {
    vix::name(status).unwrap_or("unknown VixError")
}

/// Seconds with millisecond precision, for reports.
pub fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Bytes per second as a human figure.
pub fn rate(bytes: u64, d: std::time::Duration) -> String {
    let s = d.as_secs_f64().max(1e-6);
    format!("{}/s", indicatif::HumanBytes((bytes as f64 / s) as u64))
}
