//! The control socket's file: bound mode 0600 at start (a stale one replaced, a live one or
//! any other file refused), removed on drop if it is still ours. What is served on it is
//! `control.rs`.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The bound socket; its file is removed on drop (if it is still this one).
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    id: (u64, u64),
}

impl ControlSocket {
    /// Binds `path`, mode 0600. A socket file left by a daemon that is gone is replaced; one
    /// that a running daemon answers on, or any other file, stops the start.
    pub fn bind(path: &Path) -> anyhow::Result<ControlSocket> {
        if let Ok(md) = std::fs::symlink_metadata(path) {
            if !md.file_type().is_socket() {
                bail!(
                    "control socket {}: a file that is not a socket is in the way; remove it, \
                     or set [control] socket to another path",
                    path.display()
                );
            }
            match UnixStream::connect(path) {
                Ok(_) => bail!(
                    "control socket {} is in use by another openvaaid (same state directory?): \
                     stop it first, or set [control] socket to another path",
                    path.display()
                ),
                Err(_) => std::fs::remove_file(path).with_context(|| {
                    format!("removing the stale control socket {}", path.display())
                })?,
            }
        }
        // Made 0600 from the start (the umask), then checked: nobody else can connect in
        // between. The start runs on one thread: the umask is changed for no other.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener = bound.with_context(|| {
            format!(
                "binding the control socket {} (its directory must exist)",
                path.display()
            )
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let md = std::fs::symlink_metadata(path)?;
        tracing::info!(path = %path.display(), "control socket ready (root only)");
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
            id: (md.dev(), md.ino()),
        })
    }
}

impl ControlSocket {
    /// The listening socket (non-blocking).
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|md| (md.dev(), md.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
