//! A failed plugin call, with what the plugin logged about it and a hint at the fix. `main`
//! turns it into exit code 1 (3 for a cancelled operation); any other error is exit code 2.

use openvaai_abi::{vix, VixError};
use openvaai_proto::Side;

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

    /// The plugin's last words about the failure: its last line with a reason, rather than
    /// the closing summary ("CLONEFILE on MOUNT: VIX_E_...") or its load message.
    fn why(&self) -> Option<&str> {
        let summary = |l: &str| {
            l.rsplit(": ").next().is_some_and(|last| {
                last.starts_with("VIX_E_")
                    && last.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            })
        };
        let lines = || {
            self.log
                .iter()
                .rev()
                .filter(|l| !l.contains(" loaded (interface"))
        };
        lines()
            .find(|l| !summary(l))
            .or_else(|| lines().next())
            .map(|l| l.trim_start_matches("openvaai: "))
    }
}

/// What failed, for choosing a hint: the call as `Failed::what` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    StartSession,
    Clone,
    Reserve,
    Statx,
    Other,
}

impl Call {
    fn of(what: &str) -> Call {
        if what.starts_with("StartSession") {
            Call::StartSession
        } else if what.starts_with("CLONEFILE") {
            Call::Clone
        } else if what.starts_with("RESVSPACE") {
            Call::Reserve
        } else if what.starts_with("STATX") {
            Call::Statx
        } else {
            Call::Other
        }
    }
}

/// What an admin can do about `code` from the call `what` ("StartSession", "CLONEFILE", ...),
/// given the plugin's explanation `why` (its last log line: it names the failing side, the
/// refused address, the unreadable file).
pub fn hint(what: &str, code: VixError, why: &str) -> Option<&'static str> {
    let call = Call::of(what);
    Some(match (code, call) {
        (vix::E_NOT_SUPPORTED, Call::StartSession) => {
            "openvaaid does not serve this datastore as given: --nas-path must be the path \
             openvaaid exports (its --export, ESXi's remoteMountPoint), and openvaaid must run \
             with that export"
        }
        (vix::E_NOT_SUPPORTED, Call::Reserve) => {
            "the NAS filesystem cannot reserve space (no fallocate), or the file is not on it"
        }
        (vix::E_NOT_SUPPORTED, _) => {
            "the datastore is not served by openvaaid, or the filesystem cannot do this \
             (lazy clones need XFS with reflink, Btrfs or ZFS; both files on one filesystem)"
        }
        // The plugin's own line says it all (a refused start during a shutdown, or a job
        // whose daemon went away and did not come back in time).
        (vix::E_HOST_NOT_CONNECTED | vix::E_HOST_CONNECTION_LOST, _)
            if why.contains("shut down") || why.contains("was not back") =>
        {
            "retry once openvaaid on the NAS is back (systemctl status openvaaid there); a              restart within the session timeout (--timeout-ms) does not fail the clone"
        }
        (vix::E_HOST_NOT_CONNECTED, _) => {
            "is openvaaid running on the NAS, and is its port (the access file's) open from \
             this host?"
        }
        (vix::E_AUTHENTICATION_FAIL, _) => {
            "the access file does not match the running daemon (a stale copy, or another \
             daemon's): restart openvaaid or re-read the file from the export"
        }
        (vix::E_HOST_CONNECTION_LOST, _) => {
            "the daemon stopped answering within the timeout (overloaded, frozen, or the \
             network dropped)"
        }
        (vix::E_FILE_ACCESS_ERROR, Call::StartSession) if why.contains("does not allow") => {
            "this host's address is not in the export's allowed_networks (openvaaid's \
             configuration on the NAS)"
        }
        (vix::E_FILE_ACCESS_ERROR, Call::StartSession) => {
            "the access file exists but cannot be read: run openvaai as root (ESXi reads it \
             as root)"
        }
        (vix::E_FILE_ACCESS_ERROR, _) => {
            "the path leaves the export (a symlink or '..'), or the file cannot be read"
        }
        (vix::E_FILE_READ_ONLY, _) => "the export is read-only in openvaaid's configuration",
        (vix::E_FILE_ALREADY_EXISTS, _) => "the destination exists; pass --force to replace it",
        (vix::E_FILE_NOT_FOUND, Call::Clone) if why.contains(Side::DestinationDir.describe()) => {
            "the destination's directory does not exist: create it first (e.g. mkdir on the \
             datastore)"
        }
        (vix::E_FILE_NOT_FOUND, Call::Clone) if why.contains(Side::Source.describe()) => {
            "the source file does not exist: check its path (relative paths are taken inside \
             the datastore)"
        }
        (vix::E_FILE_NOT_FOUND, Call::Reserve) => {
            "the file does not exist: give --size to create it first"
        }
        (vix::E_FILE_NOT_FOUND, Call::Statx) => {
            "the file does not exist: check its path (relative paths are taken inside the \
             datastore)"
        }
        (vix::E_FILE_NOT_FOUND, _) => "the source or the destination's directory does not exist",
        (vix::E_DISK_FULL, _) => "the NAS filesystem is full",
        (vix::E_OBJECT_IS_BUSY, _) => "openvaaid runs its maximum number of jobs; retry later",
        (vix::E_OBJECT_NOT_FOUND, Call::Clone | Call::Reserve) => {
            "the NAS lost the job (openvaaid restarted mid-operation, or the job outlived its \
             lease); retry"
        }
        (vix::E_INVALID_ARG, Call::Clone) => {
            "a path outside the datastore, or a clone onto its own source (the same file, by \
             another name or a hard link)"
        }
        (vix::E_INVALID_ARG, Call::Reserve) => {
            "a path outside the datastore, or an empty file to reserve (give --size)"
        }
        (vix::E_INVALID_ARG, _) => "a path outside the datastore",
        // Not the user's Ctrl-C (the plugin says "aborted by the user" then): the job ended
        // CANCELLED on the NAS.
        (vix::E_CANCELLED, Call::Clone | Call::Reserve) if why.contains("failed: Cancelled") => {
            "the NAS's admin cancelled this job (openvaai status --cancel on the NAS); nothing \
             of it was published"
        }
        _ => return None,
    })
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.what, self.name(), self.vix)?;
        // The plugin's last words say why, in detail.
        let why = self.why();
        if let Some(line) = why {
            write!(f, "\n  plugin: {line}")?;
        }
        if let Some(h) = hint(&self.what, self.vix, why.unwrap_or("")) {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_call_and_the_side() {
        let dir = r#"CLONEFILE: job 0x1 failed: FileNotFound: the destination's directory "d" does not exist"#;
        let src = r#"CLONEFILE: job 0x1 failed: FileNotFound: the source "a" does not exist"#;
        let h = |what, code, why| hint(what, code, why).unwrap();
        assert!(h("CLONEFILE", vix::E_FILE_NOT_FOUND, dir).contains("create it first"));
        assert!(h("CLONEFILE", vix::E_FILE_NOT_FOUND, src).contains("source file"));
        assert!(h("RESVSPACE", vix::E_INVALID_ARG, "").contains("empty file"));
        assert!(!h("CLONEFILE", vix::E_INVALID_ARG, "").contains("empty file"));
        assert!(h("StartSession", vix::E_NOT_SUPPORTED, "").contains("--nas-path"));
        assert!(!h("StartSession", vix::E_NOT_SUPPORTED, "").contains("reflink"));
        assert!(h("CLONEFILE", vix::E_OBJECT_NOT_FOUND, "").contains("retry"));
    }

    #[test]
    fn the_reason_is_preferred_to_the_closing_summary() {
        let f = Failed {
            what: "CLONEFILE".into(),
            vix: vix::E_FILE_NOT_FOUND,
            log: vec![
                "openvaai: openvaai 0.1.0 loaded (interface 1.2)".into(),
                "openvaai: CLONEFILE: VIX_E_FILE_NOT_FOUND: job 0x1 failed: FileNotFound".into(),
                "openvaai: CLONEFILE on /ds: VIX_E_FILE_NOT_FOUND".into(),
            ],
        };
        assert_eq!(
            f.why(),
            Some("CLONEFILE: VIX_E_FILE_NOT_FOUND: job 0x1 failed: FileNotFound")
        );
    }
}
