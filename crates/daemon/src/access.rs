//! Writes each export's access file, `<export>/.openvaai/access` (see `openvaai_proto::access`),
//! and holds the export's lock, `<export>/.openvaai/lock`: one export, one daemon.
//!
//! A fresh secret is drawn at every start: restarting the daemon revokes every earlier copy
//! of the file, and nothing secret is kept in the state directory. Both files are written
//! through the engine's [`PrivateDir`](openvaai_engine::PrivateDir), which never follows a
//! symlink and never writes by path.

use std::net::IpAddr;

use anyhow::Context;
use openvaai_engine::{Export, ExportLock, LockError};
use openvaai_proto::access::{AccessFile, ACCESS_FILE};
use openvaai_proto::auth::Secret;

/// The lock file in the private directory.
pub const LOCK_FILE: &str = "lock";

/// Takes the lock of `export` (called `name`) for this process, or says which daemon has it.
pub fn lock(export: &Export, name: &str) -> anyhow::Result<ExportLock> {
    let dir = export
        .private_dir()
        .with_context(|| format!("export {name}"))?;
    let me = format!("pid {} (starting)", std::process::id());
    if export.capabilities().fs_type == "nfs" {
        tracing::info!(
            export = name,
            "taking the export lock on an NFS mount: this waits while the NFS server is in \
             its grace period (up to 90 s after it restarts)"
        );
    }
    match dir.lock(LOCK_FILE, &me) {
        Ok(lock) => Ok(lock),
        Err(LockError::Held(holder)) => anyhow::bail!(
            "export {name} is already served by another openvaaid ({holder}): stop that one \
             first (one export, one daemon), or serve another directory"
        ),
        Err(LockError::Failed(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking export {name}")))
        }
    }
}

/// Says in the lock of `export` where this daemon listens.
pub fn label(export: &Export, lock: &ExportLock, listening: &str) -> anyhow::Result<()> {
    let text = format!("pid {}, listening on {listening}", std::process::id());
    export.private_dir()?.relabel(lock, &text)?;
    Ok(())
}

/// Writes the access file of `export` and returns the secret in it.
pub fn publish(
    export: &Export,
    port: u16,
    addresses: &[IpAddr],
    cert_sha256: [u8; 32],
) -> anyhow::Result<Secret> {
    let secret = Secret::generate();
    let file = AccessFile {
        port,
        addresses: addresses.to_vec(),
        cert_sha256,
        secret: secret.clone(),
    };
    export
        .private_dir()?
        .write_atomic(ACCESS_FILE, file.render().as_bytes(), 0o600)
        .with_context(|| format!("writing the access file of {}", export.root().display()))?;
    Ok(secret)
}
