//! What a command works on: the plugin library, and a datastore as ESXi would describe it to
//! the plugin, given by flags or by name from a small config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use openvaai_abi::{vix, SessionId};
use openvaai_host::{Datastore, Plugin};

use crate::fail::Failed;

/// The flags every datastore command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct DatastoreArgs {
    /// The datastore: its local mount point (a directory), or a name from the config file.
    #[arg(long, short = 'd', value_name = "DIR|NAME")]
    pub datastore: String,
    /// The NAS address ESXi mounts it from (remoteIP). Default: 127.0.0.1, for a shell on the
    /// NAS itself.
    #[arg(long, value_name = "IP")]
    pub nas_ip: Option<String>,
    /// The path the NAS exports (remoteMountPoint). Default: the mount point itself, which is
    /// right on the NAS.
    #[arg(long, value_name = "PATH")]
    pub nas_path: Option<String>,
    /// Per-exchange network timeout in milliseconds (ESXi's timeoutMS; 0: the plugin's default).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub plugin: PluginArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PluginArgs {
    /// The plugin library. Default: $OPENVAAI_PLUGIN, else libopenvaai.so beside this program,
    /// in /usr/lib/openvaai, or where ESXi installs it.
    #[arg(long, value_name = "SO", global = true)]
    pub plugin: Option<PathBuf>,
    /// Datastore names for --datastore NAME (TOML: [datastore.NAME] mount, nas_ip, nas_path).
    #[arg(long, value_name = "FILE", global = true, env = "OPENVAAI_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Where the plugin library is, in the documented order.
pub fn plugin_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("OPENVAAI_PLUGIN") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        candidates.push(dir.join("libopenvaai.so"));
        candidates.push(dir.join("../lib/openvaai/libopenvaai.so"));
    }
    candidates.push("/usr/lib/openvaai/libopenvaai.so".into());
    candidates.push("/usr/lib/vmware/nas_plugins/lib64/libopenvaai.so".into());
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "no plugin library found (looked at {}); pass --plugin",
                list.join(", ")
            )
        })
}

/// Loads the plugin and calls Init, as disklib does.
pub fn load_plugin(args: &PluginArgs) -> Result<Plugin> {
    let path = plugin_path(args.plugin.as_deref())?;
    let mut plugin = Plugin::load(&path)?;
    let init = plugin.init();
    if init != vix::OK {
        bail!(
            "the plugin's Init returned {}",
            vix::name(init).unwrap_or("an unknown VixError")
        );
    }
    Ok(plugin)
}

#[derive(serde::Deserialize, Debug, Default)]
struct ConfigFile {
    #[serde(default)]
    datastore: BTreeMap<String, NamedDatastore>,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct NamedDatastore {
    mount: PathBuf,
    nas_ip: Option<String>,
    nas_path: Option<String>,
}

impl DatastoreArgs {
    /// The datastore as the plugin will see it.
    pub fn datastore(&self) -> Result<Datastore> {
        let (mount, ip, path) = match self.named()? {
            Some(n) => (n.mount, n.nas_ip, n.nas_path),
            None => (PathBuf::from(&self.datastore), None, None),
        };
        let mount = std::path::absolute(&mount)
            .with_context(|| format!("datastore {}", mount.display()))?;
        match std::fs::metadata(&mount) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => bail!("datastore {}: not a directory", mount.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "datastore {}: no such directory (give the datastore's mount point, or a name \
                 from --config)",
                mount.display()
            ),
            Err(e) => bail!("datastore {}: {e}", mount.display()),
        }
        let mount_s = mount
            .to_str()
            .with_context(|| format!("{} is not UTF-8", mount.display()))?
            .trim_end_matches('/')
            .to_owned();
        Ok(Datastore {
            fs_type: "NFS".into(),
            fs_version: 3,
            remote_ip: Some(
                self.nas_ip
                    .clone()
                    .or(ip)
                    .unwrap_or_else(|| "127.0.0.1".into()),
            ),
            remote_mount_point: Some(
                self.nas_path
                    .clone()
                    .or(path)
                    .unwrap_or_else(|| mount_s.clone()),
            ),
            local_mount_point: Some(mount_s),
        })
    }

    /// The named datastore, when `--datastore` is not a directory: a name the config must
    /// have (a plain word without a config, or one the config lacks, is an error that says
    /// so, rather than a path that is not a directory).
    fn named(&self) -> Result<Option<NamedDatastore>> {
        if Path::new(&self.datastore).is_dir() {
            return Ok(None);
        }
        let looks_like_a_path = self.datastore.contains('/');
        let Some(config) = &self.plugin.config else {
            if looks_like_a_path {
                return Ok(None);
            }
            bail!(
                "datastore {:?}: no such directory, and no --config (or $OPENVAAI_CONFIG) to \
                 look the name up in",
                self.datastore
            );
        };
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("reading {}", config.display()))?;
        let mut file: ConfigFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", config.display()))?;
        match file.datastore.remove(&self.datastore) {
            Some(n) => Ok(Some(n)),
            None if looks_like_a_path => Ok(None),
            None => {
                let known: Vec<&str> = file.datastore.keys().map(String::as_str).collect();
                bail!(
                    "datastore {:?}: no such directory, and {} has no [datastore.{}] (it names: {})",
                    self.datastore,
                    config.display(),
                    self.datastore,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            }
        }
    }

    /// `timeoutMS` as disklib would pass it (None: no session parameters).
    pub fn timeout(&self) -> Option<u64> {
        (self.timeout_ms != 0).then_some(self.timeout_ms)
    }
}

/// A loaded plugin with a session on one datastore; ends the session on drop.
pub struct Target {
    pub plugin: Plugin,
    pub datastore: Datastore,
    pub id: SessionId,
}

impl Target {
    pub fn open(args: &DatastoreArgs) -> Result<Target> {
        let datastore = args.datastore()?;
        let plugin = load_plugin(&args.plugin)?;
        let id = plugin
            .start_session(&datastore, args.timeout())
            .map_err(|e| Failed::vix("StartSession", e, &plugin_log()))?;
        Ok(Target {
            plugin,
            datastore,
            id,
        })
    }

    pub fn mount(&self) -> &str {
        self.datastore.local_mount_point.as_deref().unwrap_or("")
    }

    /// A file argument as the absolute ESXi-style path the plugin takes: relative paths are
    /// taken inside the datastore.
    pub fn file(&self, arg: &str) -> String {
        if arg.starts_with('/') {
            arg.to_owned()
        } else {
            format!("{}/{arg}", self.mount())
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.plugin.end_session(self.id);
    }
}

/// What the plugin logged since the last call, for error messages.
pub fn plugin_log() -> Vec<String> {
    openvaai_host::take_log()
        .into_iter()
        .map(|l| l.text)
        .collect()
}
