//! Writes each export's access file, `<export>/.openvaai/access` (see `openvaai_proto::access`).
//!
//! A fresh secret is drawn at every start: restarting the daemon revokes every earlier copy
//! of the file, and nothing secret is kept in the state directory.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use openvaai_proto::access::{AccessFile, ACCESS_DIR, ACCESS_FILE};
use openvaai_proto::auth::Secret;

use crate::fsutil::{ensure_dir, write_atomic};

/// Writes the access file of the export at `root` and returns the secret in it.
pub fn publish(
    root: &Path,
    port: u16,
    addresses: &[IpAddr],
    cert_sha256: [u8; 32],
) -> anyhow::Result<Secret> {
    let dir = root.join(ACCESS_DIR);
    if dir.is_symlink() {
        anyhow::bail!(
            "{} is a symlink: refusing to write through it",
            dir.display()
        );
    }
    ensure_dir(&dir, 0o700)?;
    let secret = Secret::generate();
    let file = AccessFile {
        port,
        addresses: addresses.to_vec(),
        cert_sha256,
        secret: secret.clone(),
    };
    let path = dir.join(ACCESS_FILE);
    write_atomic(&path, file.render().as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}
