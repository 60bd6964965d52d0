//! The real `libopenvaai.so`, loaded as disklib loads it, with sessions on the bench's
//! datastore: the export directory is the datastore's local mount point, 127.0.0.1 the NAS
//! (or the NAS's address across an emulated link), and the export's path its remote mount
//! point (a shell on the NAS itself, or a host that mounts it at the same path).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use openvaai_abi::{vix, CloneFlags, SessionId, StatXResult, VixError};
use openvaai_host::{Plugin, Progress};
use openvaai_testkit::{datastore_at, vix_name};

use crate::plan::MIB;

/// Loads and initialises the plugin (the testkit's, as every suite loads it).
pub fn load() -> Result<Plugin> {
    openvaai_testkit::try_load_plugin().map_err(|e| anyhow!(e))
}

/// The plugin's warnings since the last call, for a failure's message.
fn plugin_log() -> String {
    let lines: Vec<String> = openvaai_host::take_log()
        .into_iter()
        .filter(|l| l.level > 0)
        .map(|l| l.text)
        .collect();
    lines.join("; ")
}

fn check(what: &str, err: VixError) -> Result<()> {
    if err == vix::OK {
        Ok(())
    } else {
        Err(anyhow!("{what}: {} {}", vix_name(err), plugin_log()))
    }
}

/// disklib's progress granularity for an operation on `bytes`: every 1%, at least 1 MiB.
pub fn update_bytes(bytes: u64) -> u64 {
    (bytes / 100).max(MIB)
}

/// One session on the bench's export.
pub struct Session<'p> {
    pub plugin: &'p Plugin,
    pub id: SessionId,
    pub root: PathBuf,
}

impl<'p> Session<'p> {
    pub fn start(plugin: &'p Plugin, export: &Path) -> Result<Session<'p>> {
        Session::start_at(plugin, export, "127.0.0.1")
    }

    /// A session on `export` served by the daemon at `nas_ip`.
    pub fn start_at(plugin: &'p Plugin, export: &Path, nas_ip: &str) -> Result<Session<'p>> {
        let id = plugin
            .start_session(&datastore_at(export, nas_ip), None)
            .map_err(|e| anyhow!("StartSession: {} {}", vix_name(e), plugin_log()))?;
        Ok(Session {
            plugin,
            id,
            root: export.to_owned(),
        })
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).to_str().expect("UTF-8").to_owned()
    }

    /// CLONEFILE `src` → `dst` (names in the export) with a progress record, as disklib
    /// calls it for a clone of `bytes`.
    pub fn clone_file(&self, src: &str, dst: &str, flags: CloneFlags, bytes: u64) -> Result<()> {
        let mut cb = |_delta: u64| true;
        let status = self
            .plugin
            .clone_file(
                self.id,
                &self.path(src),
                &self.path(dst),
                flags,
                None,
                Some(Progress {
                    update_bytes: update_bytes(bytes),
                    callback: &mut cb,
                }),
            )
            .context("CLONEFILE")?;
        check("CLONEFILE", status)
    }

    /// RESVSPACE on `file` (its size already set), with a progress record.
    pub fn reserve(&self, file: &str, bytes: u64) -> Result<()> {
        let mut cb = |_delta: u64| true;
        let status = self
            .plugin
            .reserve(
                self.id,
                &self.path(file),
                Some(Progress {
                    update_bytes: update_bytes(bytes),
                    callback: &mut cb,
                }),
            )
            .context("RESVSPACE")?;
        check("RESVSPACE", status)
    }

    pub fn statx(&self, file: &str) -> Result<StatXResult> {
        let r = self.plugin.statx(self.id, &self.path(file))?;
        check("STATX", r.common.status)?;
        Ok(r)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.plugin.end_session(self.id);
    }
}
