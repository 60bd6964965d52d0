//! A failed plugin call, with what the plugin logged about it and a hint at the fix. `main`
//! turns it into exit code 1 (3 for a cancelled operation); any other error is exit code 2.

use openvaai_abi::{vix, VixError};

#[derive(Debug)]
pub struct Failed {
    pub what: String,
    pub vix: VixError,
    pub log: Vec<String>,
}

impl Failed {
    pub fn vix(what: &str, vix: VixError, log: &[String]) -> anyhow::Error {
        anyhow::Error::new(Failed {
            what: what.to_owned(),
            vix,
            log: log.to_vec(),
        })
    }

    pub fn name(&self) -> &'static str {
        vix::name(self.vix).unwrap_or("unknown VixError")
    }
}

/// What an admin can do about an error code.
pub fn hint(code: VixError) -> Option<&'static str> {
    Some(match code {
        vix::E_NOT_SUPPORTED => {
            "the datastore is not served by openvaaid, or the filesystem cannot do this \
             (lazy clones need XFS with reflink, Btrfs or ZFS; both files on one filesystem)"
        }
        vix::E_HOST_NOT_CONNECTED => {
            "is openvaaid running on the NAS, and is its port (the access file's) open from \
             this host?"
        }
        vix::E_AUTHENTICATION_FAIL => {
            "the access file does not match the running daemon (stale copy or another \
             daemon), or this host is outside the export's allowed_networks"
        }
        vix::E_HOST_CONNECTION_LOST => {
            "the daemon stopped answering within the timeout (overloaded, frozen, or the \
             network dropped)"
        }
        vix::E_FILE_ACCESS_ERROR => {
            "the path leaves the export (a symlink or '..'), or the file cannot be read"
        }
        vix::E_FILE_READ_ONLY => "the export is read-only in openvaaid's configuration",
        vix::E_FILE_ALREADY_EXISTS => "the destination exists; drop --guarded to replace it",
        vix::E_DISK_FULL => "the NAS filesystem is full",
        vix::E_OBJECT_IS_BUSY => "openvaaid runs its maximum number of jobs; retry later",
        vix::E_INVALID_ARG => "a path outside the datastore, or an empty file to reserve",
        _ => return None,
    })
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.what, self.name(), self.vix)?;
        // The plugin's last words say why, in detail.
        if let Some(line) = self
            .log
            .iter()
            .rev()
            .find(|l| !l.contains(" loaded (interface"))
        {
            write!(f, "\n  plugin: {}", line.trim_start_matches("openvaai: "))?;
        }
        if let Some(h) = hint(self.vix) {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failed {}
