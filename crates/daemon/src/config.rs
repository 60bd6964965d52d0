//! The configuration: a TOML file and/or the command line, validated into [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::net::Network;

/// Where the daemon keeps its certificate and key unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/openvaaid";
/// The daemon's port unless told otherwise.
pub const DEFAULT_PORT: u16 = 7443;

/// The TOML file, as written. Every key is documented in docs/operations.md.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<Vec<String>>,
    pub state_dir: Option<PathBuf>,
    pub advertise: Option<Vec<IpAddr>>,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub metrics: FileMetrics,
    #[serde(default)]
    pub control: FileControl,
    #[serde(default)]
    pub export: Vec<FileExport>,
}

/// `[metrics]`: the Prometheus endpoint, off unless `listen` is given.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileMetrics {
    pub listen: Option<String>,
}

/// `[control]`: the control socket of `openvaai status`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileControl {
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_jobs: Option<usize>,
    pub max_queued_jobs: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_unauthenticated: Option<usize>,
    pub lease_seconds: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    pub handshake_timeout_seconds: Option<u64>,
    pub shutdown_timeout_seconds: Option<u64>,
    pub max_job_bytes_per_second: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExport {
    pub path: PathBuf,
    pub name: Option<String>,
    pub allowed_networks: Option<Vec<String>>,
    #[serde(default)]
    pub read_only: bool,
}

/// Limits on what clients can make the daemon hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Jobs running at once, all exports together; more wait in a queue.
    pub max_jobs: usize,
    /// Jobs waiting (in arrival order) for one of the `max_jobs` slots; more: OBJECT_IS_BUSY.
    /// 0: no queue.
    pub max_queued_jobs: usize,
    /// Authenticated connections open at once; one more that authenticates is closed.
    pub max_connections: usize,
    /// Connections between accept and their first AUTH (see `slots`): when all are taken,
    /// the oldest gives way to a new one after a second; until then new ones are closed.
    pub max_unauthenticated: usize,
    /// A job nobody WAITs on or CANCELs for this long is cancelled; finished jobs are kept
    /// this long for their last WAIT.
    pub lease: Duration,
    /// A connection silent for this long (or taking this long to send one record) is closed.
    pub idle_timeout: Duration,
    /// A connection must finish TLS and authenticate one export within this time.
    pub handshake_timeout: Duration,
    /// On SIGTERM, how long to wait for cancelled jobs to clean up.
    pub shutdown_timeout: Duration,
    /// Pace each job to at most this many bytes per second; `None`: as fast as it goes.
    pub max_job_bytes_per_second: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_jobs: 16,
            max_queued_jobs: 1024,
            max_connections: 1024,
            max_unauthenticated: 32,
            lease: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            max_job_bytes_per_second: None,
        }
    }
}

/// One export, validated.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The directory on this host.
    pub path: PathBuf,
    /// The name clients use: the NFS export path (ESXi's remoteMountPoint).
    pub name: String,
    /// Client networks allowed; empty never happens (the default is everything).
    pub allowed_networks: Vec<Network>,
    pub read_only: bool,
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub state_dir: PathBuf,
    /// Addresses written in access files; empty: clients use the NFS server's address.
    pub advertise: Vec<IpAddr>,
    pub limits: Limits,
    pub exports: Vec<ExportConfig>,
    /// Where `GET /metrics` is served; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The control socket (default: `control.sock` in the state directory).
    pub control_socket: PathBuf,
    /// What the daemon warns about at start: settings of the file that the command line
    /// replaced with another value.
    pub warnings: Vec<String>,
}

/// What the command line adds to (or overrides in) the file.
#[derive(Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub exports: Vec<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub control_socket: Option<PathBuf>,
}

impl Config {
    /// Reads the file named in `o` (if any) and applies the command line on top.
    pub fn load(o: &Overrides) -> anyhow::Result<Config> {
        let file = match &o.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        Config::build(file, o)
    }

    fn build(file: FileConfig, o: &Overrides) -> anyhow::Result<Config> {
        let file_listen: Option<Vec<SocketAddr>> = match &file.listen {
            Some(l) => Some(
                l.iter()
                    .map(|s| {
                        s.parse::<SocketAddr>()
                            .with_context(|| format!("listen address `{s}`"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            ),
            None => None,
        };
        let listen = if !o.listen.is_empty() {
            o.listen.clone()
        } else if let Some(l) = &file_listen {
            l.clone()
        } else {
            vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))]
        };
        if listen.is_empty() {
            bail!("no listen address");
        }
        let d = Limits::default();
        let l = &file.limits;
        let secs = |v: Option<u64>, def: Duration, what: &str| -> anyhow::Result<Duration> {
            match v {
                Some(0) => bail!("limits.{what} must be at least 1"),
                Some(s) => Ok(Duration::from_secs(s)),
                None => Ok(def),
            }
        };
        let limits = Limits {
            max_jobs: positive(l.max_jobs, d.max_jobs, "max_jobs")?,
            max_queued_jobs: l.max_queued_jobs.unwrap_or(d.max_queued_jobs),
            max_connections: positive(l.max_connections, d.max_connections, "max_connections")?,
            max_unauthenticated: positive(
                l.max_unauthenticated,
                d.max_unauthenticated,
                "max_unauthenticated",
            )?,
            lease: secs(l.lease_seconds, d.lease, "lease_seconds")?,
            idle_timeout: secs(
                l.idle_timeout_seconds,
                d.idle_timeout,
                "idle_timeout_seconds",
            )?,
            handshake_timeout: secs(
                l.handshake_timeout_seconds,
                d.handshake_timeout,
                "handshake_timeout_seconds",
            )?,
            shutdown_timeout: secs(
                l.shutdown_timeout_seconds,
                d.shutdown_timeout,
                "shutdown_timeout_seconds",
            )?,
            max_job_bytes_per_second: match l.max_job_bytes_per_second {
                Some(0) => bail!("limits.max_job_bytes_per_second must be at least 1"),
                v => v,
            },
        };
        let mut exports = Vec::new();
        for e in file.export {
            exports.push(export_config(
                e.path,
                e.name,
                e.allowed_networks,
                e.read_only,
            )?);
        }
        for p in &o.exports {
            exports.push(export_config(p.clone(), None, None, false)?);
        }
        if exports.is_empty() {
            bail!("no export: give --export DIR or [[export]] in the config file");
        }
        for (i, a) in exports.iter().enumerate() {
            for b in &exports[..i] {
                if a.name == b.name {
                    bail!("export name `{}` given twice", a.name);
                }
                if a.path == b.path {
                    bail!("export path {} given twice", a.path.display());
                }
                refuse_nested(a, b)?;
            }
        }
        let metrics_file = match &file.metrics.listen {
            Some(s) => Some(
                s.parse::<SocketAddr>()
                    .with_context(|| format!("metrics.listen address `{s}`"))?,
            ),
            None => None,
        };
        let metrics_listen = o.metrics_listen.or(metrics_file);
        // The command line wins over the file; a file's value it replaces with another is
        // said at start, not ignored in silence.
        let mut warnings = Vec::new();
        let mut replaced = |key: &str, flag: &str, cli: String, file: String| {
            if cli != file {
                warnings.push(format!(
                    "{flag} {cli} replaces {key} = {file} of {} (the command line wins)",
                    o.config
                        .as_deref()
                        .unwrap_or(Path::new("the file"))
                        .display()
                ));
            }
        };
        if let (Some(c), Some(f)) = (&o.state_dir, &file.state_dir) {
            replaced(
                "state_dir",
                "--state-dir",
                c.display().to_string(),
                f.display().to_string(),
            );
        }
        if let (Some(c), Some(f)) = (&o.control_socket, &file.control.socket) {
            replaced(
                "[control] socket",
                "--control-socket",
                c.display().to_string(),
                f.display().to_string(),
            );
        }
        if let (Some(c), Some(f)) = (o.metrics_listen, metrics_file) {
            replaced(
                "[metrics] listen",
                "--metrics-listen",
                c.to_string(),
                f.to_string(),
            );
        }
        if let (false, Some(f)) = (o.listen.is_empty(), &file_listen) {
            replaced("listen", "--listen", fmt_list(&o.listen), fmt_list(f));
        }
        let state_dir = o
            .state_dir
            .clone()
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let control_socket = o
            .control_socket
            .clone()
            .or(file.control.socket)
            .unwrap_or_else(|| state_dir.join(openvaai_control::SOCKET_NAME));
        check_socket_path(&control_socket)?;
        Ok(Config {
            listen,
            state_dir,
            advertise: file.advertise.unwrap_or_default(),
            limits,
            exports,
            metrics_listen,
            control_socket,
            warnings,
        })
    }

    /// The export called `name` by clients (trailing slashes do not matter).
    pub fn export_index(&self, name: &str) -> Option<usize> {
        let name = canonical_name(name);
        self.exports.iter().position(|e| e.name == name)
    }
}

/// Refuses two exports one of which lies inside the other: a client of the outer one could
/// reach the inner one's private directory (its access file and secret) by path.
pub fn refuse_nested(a: &ExportConfig, b: &ExportConfig) -> anyhow::Result<()> {
    nested_paths(&a.path, &b.path)
}

/// [`refuse_nested`] on two paths (as configured, or as resolved on disk).
pub fn nested_paths(a: &Path, b: &Path) -> anyhow::Result<()> {
    let (outer, inner) = if a.starts_with(b) { (b, a) } else { (a, b) };
    if inner.starts_with(outer) {
        bail!(
            "export {} lies inside export {}: exports must not nest (a client of the outer \
             one could reach the inner one's .openvaai and its secret); serve one of them, or \
             two sibling directories",
            inner.display(),
            outer.display()
        );
    }
    Ok(())
}

/// A unix socket's path must fit `sun_path` (108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

fn check_socket_path(p: &Path) -> anyhow::Result<()> {
    if !p.is_absolute() {
        bail!("control.socket {} is not absolute", p.display());
    }
    if p.as_os_str().len() > MAX_SOCKET_PATH {
        bail!(
            "control socket {} is longer than {MAX_SOCKET_PATH} bytes (a unix socket's limit): \
             set [control] socket to a shorter path",
            p.display()
        );
    }
    Ok(())
}

/// `a, b` for a list of addresses.
fn fmt_list(l: &[SocketAddr]) -> String {
    l.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn positive(v: Option<usize>, def: usize, what: &str) -> anyhow::Result<usize> {
    match v {
        Some(0) => bail!("limits.{what} must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(def),
    }
}

fn export_config(
    path: PathBuf,
    name: Option<String>,
    nets: Option<Vec<String>>,
    read_only: bool,
) -> anyhow::Result<ExportConfig> {
    if !path.is_absolute() {
        bail!("export path {} is not absolute", path.display());
    }
    let path = normalize(&path);
    let name = match name {
        Some(n) => canonical_name(&n).to_owned(),
        None => path
            .to_str()
            .with_context(|| format!("export path {} is not UTF-8", path.display()))?
            .to_owned(),
    };
    if name.is_empty() || name.len() > openvaai_proto::limits::MAX_PATH {
        bail!("export name `{name}` is empty or too long");
    }
    let allowed_networks = match nets {
        None => vec![Network::any_v4(), Network::any_v6()],
        Some(list) => {
            if list.is_empty() {
                bail!(
                    "export {}: allowed_networks is empty (omit it to allow all)",
                    path.display()
                );
            }
            list.iter()
                .map(|s| s.parse::<Network>())
                .collect::<anyhow::Result<_>>()
                .with_context(|| format!("export {}", path.display()))?
        }
    };
    Ok(ExportConfig {
        path,
        name,
        allowed_networks,
        read_only,
    })
}

/// An export name without trailing slashes (but `/` stays `/`): ESXi and exportfs do not
/// agree on them.
pub fn canonical_name(name: &str) -> &str {
    let t = name.trim_end_matches('/');
    if t.is_empty() && !name.is_empty() {
        "/"
    } else {
        t
    }
}

/// Drops trailing slashes and `.` components, so one directory has one spelling.
fn normalize(p: &Path) -> PathBuf {
    p.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::build(toml::from_str(text)?, &Overrides::default())
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
            listen = ["127.0.0.1:7443", "[::1]:7443"]
            state_dir = "/var/lib/x"
            advertise = ["192.0.2.1"]
            [limits]
            max_jobs = 2
            max_queued_jobs = 0
            max_connections = 3
            lease_seconds = 4
            idle_timeout_seconds = 5
            handshake_timeout_seconds = 6
            shutdown_timeout_seconds = 7
            max_job_bytes_per_second = 8
            [metrics]
            listen = "127.0.0.1:9477"
            [control]
            socket = "/run/openvaaid/control.sock"
            [[export]]
            path = "/srv/a/"
            name = "/a"
            allowed_networks = ["10.0.0.0/8", "fd00::/8"]
            read_only = true
            [[export]]
            path = "/srv/b"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.limits.max_jobs, 2);
        assert_eq!(c.limits.max_queued_jobs, 0);
        assert_eq!(c.limits.lease, Duration::from_secs(4));
        assert_eq!(c.exports[0].name, "/a");
        assert_eq!(c.exports[0].path, PathBuf::from("/srv/a"));
        assert!(c.exports[0].read_only);
        assert_eq!(c.exports[1].name, "/srv/b");
        assert_eq!(c.export_index("/srv/b"), Some(1));
        assert_eq!(c.export_index("/srv/b/"), Some(1));
        assert_eq!(c.export_index("/a//"), Some(0));
        assert_eq!(canonical_name("/"), "/");
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9477".parse().unwrap()));
        assert_eq!(
            c.control_socket,
            PathBuf::from("/run/openvaaid/control.sock")
        );
        // Defaults: no metrics endpoint, the socket in the state directory.
        let d = parse("[[export]]\npath = \"/a\"").unwrap();
        assert_eq!(d.metrics_listen, None);
        assert_eq!(
            d.control_socket,
            PathBuf::from(DEFAULT_STATE_DIR).join("control.sock")
        );
    }

    #[test]
    fn mistakes_are_refused() {
        // Each mistake with the reason it must be refused for: a case refused for another
        // reason (an earlier check tripping) would not test its own check.
        for (bad, reason) in [
            ("", "no export: give --export DIR"),
            (
                "[[export]]\npath = \"rel\"",
                "export path rel is not absolute",
            ),
            (
                "[[export]]\npath = \"/a\"\n[[export]]\npath = \"/a\"",
                "export name `/a` given twice",
            ),
            (
                "[[export]]\npath = \"/a\"\nallowed_networks = []",
                "export /a: allowed_networks is empty",
            ),
            (
                "[[export]]\npath = \"/a\"\nallowed_networks = [\"10.0.0.0/33\"]",
                "network `10.0.0.0/33`: bad prefix length",
            ),
            (
                "[[export]]\npath = \"/a\"\ncolour = 1",
                "unknown field `colour`",
            ),
            (
                "[limits]\nmax_jobs = 0\n[[export]]\npath = \"/a\"",
                "limits.max_jobs must be at least 1",
            ),
            (
                "listen = [\"nowhere\"]\n[[export]]\npath = \"/a\"",
                "listen address `nowhere`",
            ),
            (
                "[metrics]\nlisten = \"9477\"\n[[export]]\npath = \"/a\"",
                "metrics.listen address `9477`",
            ),
            (
                "[metrics]\nport = 1\n[[export]]\npath = \"/a\"",
                "unknown field `port`",
            ),
            (
                "[control]\nsocket = \"ctl\"\n[[export]]\npath = \"/a\"",
                "control.socket ctl is not absolute",
            ),
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
            let err = format!("{:#}", parse(bad).unwrap_err());
            assert!(
                err.contains(reason),
                "{bad:?}: refused for {err:?}, not {reason:?}"
            );
        }
    }

    #[test]
    fn the_command_line_wins_and_says_what_it_replaced() {
        let file = || toml::from_str("state_dir = \"/var/lib/a\"\n[[export]]\npath = \"/e\"");
        let o = Overrides {
            config: Some("/etc/openvaai/openvaaid.toml".into()),
            state_dir: Some("/var/lib/b".into()),
            ..Overrides::default()
        };
        let c = Config::build(file().unwrap(), &o).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/b"));
        assert_eq!(
            c.warnings,
            ["--state-dir /var/lib/b replaces state_dir = /var/lib/a of \
              /etc/openvaai/openvaaid.toml (the command line wins)"]
        );
        // The same value twice is no conflict.
        let o = Overrides {
            state_dir: Some("/var/lib/a".into()),
            ..Overrides::default()
        };
        assert!(Config::build(file().unwrap(), &o)
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn nested_exports_are_refused_naming_both() {
        for text in [
            "[[export]]\npath = \"/srv/n\"\n[[export]]\npath = \"/srv/n/inner\"",
            "[[export]]\npath = \"/srv/n/inner/\"\n[[export]]\npath = \"/srv/n\"",
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(
                err.contains("export /srv/n/inner lies inside export /srv/n"),
                "{err}"
            );
        }
        // Siblings that share a prefix of their names are fine.
        let c = parse("[[export]]\npath = \"/srv/n\"\n[[export]]\npath = \"/srv/nn\"").unwrap();
        assert_eq!(c.exports.len(), 2);
        assert!(nested_paths(Path::new("/"), Path::new("/srv")).is_err());
    }
}
