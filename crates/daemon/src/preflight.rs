//! The checks of a configuration against the disk, before anything is opened or written:
//! every export is a directory this process may serve, and no two exports nest, judged by
//! where their directories really are. `--check-config` and the start run this one function,
//! so a configuration that `--check-config` passes is not refused at the start for any of
//! these; a failure is a configuration error (exit code 2, which systemd does not restart).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::Config;

/// Checks `config`'s exports on disk.
pub fn check(config: &Config) -> anyhow::Result<()> {
    let me = rustix::process::geteuid();
    let mut real = Vec::new();
    for e in &config.exports {
        let md =
            std::fs::metadata(&e.path).with_context(|| format!("export {}", e.path.display()))?;
        if !md.is_dir() {
            bail!("export {} is not a directory", e.path.display());
        }
        if !me.is_root() && md.uid() != me.as_raw() {
            bail!(
                "export {} is owned by uid {} and openvaaid runs as uid {}: run openvaaid as \
                 root (as its systemd unit does), or as the owner of every export",
                e.path.display(),
                md.uid(),
                me.as_raw()
            );
        }
        let resolved = std::fs::canonicalize(&e.path)
            .with_context(|| format!("resolving export {}", e.path.display()))?;
        real.push((e.path.as_path(), resolved));
    }
    for (i, (a, ra)) in real.iter().enumerate() {
        for (b, rb) in &real[..i] {
            refuse_nested(a, ra, b, rb)?;
        }
    }
    Ok(())
}

/// An export as configured, with where it resolves to when that differs.
fn shown(configured: &Path, resolved: &Path) -> String {
    if configured == resolved {
        configured.display().to_string()
    } else {
        format!(
            "{} (resolved: {})",
            configured.display(),
            resolved.display()
        )
    }
}

/// Refuses exports `a` and `b` (as configured, and as resolved) that are one directory or
/// of which one lies inside the other.
fn refuse_nested(a: &Path, ra: &PathBuf, b: &Path, rb: &PathBuf) -> anyhow::Result<()> {
    if ra == rb {
        bail!(
            "exports {} and {} are the same directory: serve it once",
            shown(b, rb),
            shown(a, ra)
        );
    }
    let ((outer, router), (inner, rinner)) = if ra.starts_with(rb) {
        ((b, rb), (a, ra))
    } else {
        ((a, ra), (b, rb))
    };
    if rinner.starts_with(router) {
        bail!(
            "export {} lies inside export {}: exports must not nest (a client of the outer \
             one could reach the inner one's .openvaai and its secret); serve one of them, or \
             two sibling directories",
            shown(inner, rinner),
            shown(outer, router)
        );
    }
    Ok(())
}
