//! The plugin's memory in its host: a small host process (this program, `--probe-plugin`)
//! measures its own VmRSS before loading the plugin, after `Init`, and after sessions and
//! operations from several threads, as disklib's host would run them.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use openvaai_abi::clone_flag;
use serde_json::{json, Value};

use super::clone::DENSE;
use super::Bench;
use crate::client::{self, Session};
use crate::measure::proc_status_kib;
use crate::plan::KIB;
use crate::table::Row;

/// Clones per client in the probe.
const PER_CLIENT: usize = 4;

/// The probe itself (in the child): prints one JSON object.
pub fn probe(export: &Path, clients: usize, bytes: u64) -> Result<()> {
    let rss = || proc_status_kib(None, "VmRSS").unwrap_or(0);
    let before = rss();
    let plugin = client::load()?;
    let loaded = rss();
    let sessions: Vec<Session<'_>> = (0..clients)
        .map(|_| Session::start(&plugin, export))
        .collect::<Result<_>>()?;
    let failures = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (c, session) in sessions.iter().enumerate() {
            let failures = &failures;
            scope.spawn(move || {
                for k in 0..PER_CLIENT {
                    let dst = format!("probe-{c:02}-{k}.vmdk");
                    let ok = session
                        .clone_file(DENSE, &dst, clone_flag::LAZY, bytes)
                        .and_then(|()| session.statx(&dst))
                        .is_ok();
                    if !ok {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let _ = std::fs::remove_file(export.join(&dst));
                }
            });
        }
    });
    let after = rss();
    let hwm = proc_status_kib(None, "VmHWM").unwrap_or(0);
    drop(sessions);
    drop(plugin);
    println!(
        "{}",
        json!({
            "before_kib": before,
            "loaded_kib": loaded,
            "after_kib": after,
            "hwm_kib": hwm,
            "operations": 2 * clients * PER_CLIENT,
            "failed": failures.into_inner(),
        })
    );
    Ok(())
}

/// Runs the probe as a child process and adds its row.
pub fn plugin_rss(b: &mut Bench<'_>) -> Result<()> {
    let exe = std::env::current_exe()?;
    let clients = b.plan.clients;
    let out = Command::new(exe)
        .arg("--probe-plugin")
        .arg(&b.export)
        .arg("--probe-clients")
        .arg(clients.to_string())
        .arg("--probe-bytes")
        .arg(b.plan.full.to_string())
        .output()
        .context("running the plugin probe")?;
    if !out.status.success() {
        bail!(
            "the plugin probe failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("the probe's output")?;
    let k = |f: &str| v[f].as_u64().unwrap_or(0);
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / KIB as f64);
    let mut row = Row::new(
        "plugin-rss",
        format!(
            "plugin in its host: VmRSS growth of a host process from before dlopen to after {} \
             sessions and {} operations from {clients} threads",
            clients,
            k("operations")
        ),
    )
    .ours(format!(
        "+{} (+{} at Init; host {} → {}, VmHWM {})",
        mib(k("after_kib").saturating_sub(k("before_kib"))),
        mib(k("loaded_kib").saturating_sub(k("before_kib"))),
        mib(k("before_kib")),
        mib(k("after_kib")),
        mib(k("hwm_kib"))
    ));
    if k("failed") > 0 {
        row = row.failed(format!("{} probe operations failed", k("failed")));
    }
    b.push(row);
    Ok(())
}
