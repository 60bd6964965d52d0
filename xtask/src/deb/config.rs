//! The shipped daemon configuration, and its check with the real daemon.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// The shipped default configuration: every key commented out.
pub const DEFAULT_CONFIG: &str = include_str!("../../../packaging/deb/openvaaid.toml");

/// The shipped configuration with every commented setting (`#key`, `#[table]`) enabled.
pub fn uncommented(config: &str) -> String {
    config
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[') => rest,
            _ => l,
        })
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// Runs the real `openvaaid --check-config` on the shipped configuration: as shipped it
/// must be refused for having no export (exit 2) and accepted with an export added; with
/// every setting uncommented (example exports pointed at scratch directories) it must pass.
pub fn check_default_config(openvaaid: &Path, scratch: &Path) -> Result<()> {
    let run = |config: &Path, extra: &[&str]| -> Result<(Option<i32>, String)> {
        let out = Command::new(openvaaid)
            .arg("--config")
            .arg(config)
            .args(extra)
            .arg("--check-config")
            .env("RUST_LOG", "error")
            .output()
            .with_context(|| format!("running {}", openvaaid.display()))?;
        Ok((
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    std::fs::create_dir_all(scratch)?;
    let shipped = scratch.join("openvaaid.toml");
    std::fs::write(&shipped, DEFAULT_CONFIG)?;
    let (code, out) = run(&shipped, &[])?;
    ensure!(
        code == Some(2) && out.contains("no export"),
        "the shipped config should be refused with `no export` (exit 2); got {code:?}: {out}"
    );
    let export = scratch.join("export");
    std::fs::create_dir_all(&export)?;
    let (code, out) = run(
        &shipped,
        &["--export", export.to_str().context("UTF-8 path")?],
    )?;
    ensure!(
        code == Some(0) && out.contains("configuration OK"),
        "the shipped config plus --export should pass; got {code:?}: {out}"
    );
    let mut all = uncommented(DEFAULT_CONFIG);
    for name in ["vmstore", "templates"] {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir)?;
        all = all.replace(
            &format!("\"/srv/nfs/{name}\""),
            &format!("\"{}\"", dir.display()),
        );
    }
    let full = scratch.join("uncommented.toml");
    std::fs::write(&full, &all)?;
    let (code, out) = run(&full, &[])?;
    ensure!(
        code == Some(0) && out.contains("configuration OK"),
        "the shipped config with every setting uncommented should pass; got {code:?}: {out}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_comments_out_every_key() {
        // Nothing active as shipped.
        for line in DEFAULT_CONFIG.lines() {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "active line: {line}"
            );
        }
        let all = uncommented(DEFAULT_CONFIG);
        for key in [
            "listen",
            "state_dir",
            "advertise",
            "[limits]",
            "max_jobs",
            "max_connections",
            "lease_seconds",
            "idle_timeout_seconds",
            "handshake_timeout_seconds",
            "shutdown_timeout_seconds",
            "max_job_bytes_per_second",
            "[[export]]",
            "path",
            "name",
            "allowed_networks",
            "read_only",
        ] {
            assert!(
                all.lines()
                    .any(|l| l == key || l.starts_with(&format!("{key} = "))),
                "{key} is not in the shipped config"
            );
        }
        // The keys the daemon accepts are exactly the documented ones.
        let src = include_str!("../../../crates/daemon/src/config.rs");
        for key in ["max_job_bytes_per_second", "allowed_networks", "advertise"] {
            assert!(
                src.contains(&format!("pub {key}:")),
                "{key} gone from the daemon"
            );
        }
    }
}
