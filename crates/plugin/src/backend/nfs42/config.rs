//! `<localMountPoint>/.openvaai/nfs42`: the marker that puts a datastore on the standard
//! backend. Empty, or TOML with these optional keys:
//!
//! ```toml
//! port = 2049   # the server's NFS port (default 2049)
//! ```
//!
//! The server is always the datastore's `remoteIP`, the address ESXi mounted it from: the
//! marker, writable by whoever can write to the export, can never send the plugin elsewhere.
//! Unknown keys are refused (a typo is said, not ignored).
//!
//! Nor can it send the plugin's root AUTH_SYS client to just any port of the server: only
//! to 2049 (NFS's own, which the server's nfsd holds) and to privileged ports (below 1024,
//! which only the server's root can listen on). Any other port must also be listed by the
//! ESXi host's administrator in the environment of the process that loads the plugin,
//! [`PORTS_ENV`] (`OPENVAAI_NFS42_PORTS=20490,30000-30009`): a port an unprivileged user of
//! the NAS could listen on is never used because someone who can write the export said so.

use std::path::Path;

use openvaai_abi::vix;
use openvaai_client::datastore::read_marker;
use openvaai_client::Failure;

/// The largest marker read.
const MAX_MARKER: usize = 4096;
/// NFS's port.
pub const NFS_PORT: u16 = 2049;
/// The environment variable with the other ports the ESXi host's administrator allows:
/// comma-separated ports and ranges (`20490,30000-30009`).
pub const PORTS_ENV: &str = "OPENVAAI_NFS42_PORTS";

/// What the marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub port: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config { port: NFS_PORT }
    }
}

impl Config {
    /// Reads and parses the marker at `path`, and checks its port against [`PORTS_ENV`].
    pub fn read(path: &Path) -> Result<Config, Failure> {
        let bytes = read_marker(path, MAX_MARKER)?;
        let config = Config::parse(&bytes).map_err(|e| {
            Failure::new(
                vix::E_NOT_SUPPORTED,
                format!(
                    "{}: {e} (it may be empty, or TOML with `port = N`)",
                    path.display()
                ),
            )
        })?;
        let allowed = std::env::var(PORTS_ENV).ok();
        config
            .check_port(allowed.as_deref())
            .map_err(|e| Failure::new(vix::E_NOT_SUPPORTED, format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// The port is 2049, privileged, or in `allowed` (the value of [`PORTS_ENV`]).
    pub fn check_port(&self, allowed: Option<&str>) -> Result<(), String> {
        let port = self.port;
        if port == NFS_PORT || port < 1024 {
            return Ok(());
        }
        let listed = allowed.unwrap_or("");
        for item in listed.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) else {
                return Err(format!(
                    "{PORTS_ENV}={listed:?} is not a list of ports and ranges (e.g. \
                     20490,30000-30009): fix it on the ESXi host"
                ));
            };
            if (lo..=hi).contains(&port) {
                return Ok(());
            }
        }
        Err(format!(
            "port {port} is neither NFS's 2049 nor privileged (below 1024): anyone who can \
             write to the export may have written it, and an unprivileged user of the NAS \
             could listen there. If the server really serves NFS on {port}, allow it on the \
             ESXi host: {PORTS_ENV}={port} in the environment of the process that loads the \
             plugin"
        ))
    }

    pub fn parse(bytes: &[u8]) -> Result<Config, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_owned())?;
        let mut config = Config::default();
        for (key, value) in &table {
            match key.as_str() {
                "port" => {
                    config.port = value
                        .as_integer()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|&p| p != 0)
                        .ok_or_else(|| format!("port {value} is not a port number (1 to 65535)"))?
                }
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_port_and_refusals() {
        assert_eq!(Config::parse(b"").unwrap(), Config { port: 2049 });
        assert_eq!(Config::parse(b"\n# comment\n").unwrap().port, 2049);
        assert_eq!(Config::parse(b"port = 20490\n").unwrap().port, 20490);
        for bad in [
            &b"port = 0"[..],
            b"port = 70000",
            b"port = \"2049\"",
            b"address = \"10.0.0.1\"",
            b"port = ",
            b"\xff",
        ] {
            assert!(
                Config::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_nfs_and_privileged_ports_unless_the_esxi_admin_allows_more() {
        let at = |port| Config { port };
        for ok in [2049, 1023, 1, 665] {
            assert_eq!(at(ok).check_port(None), Ok(()), "{ok}");
        }
        for refused in [1024, 2050, 20490, 65535] {
            let e = at(refused).check_port(None).unwrap_err();
            assert!(e.contains(&format!("{PORTS_ENV}={refused}")), "{e}");
            assert!(at(refused).check_port(Some("")).is_err());
        }
        let list = Some(" 20490, 30000-30009 ");
        assert_eq!(at(20490).check_port(list), Ok(()));
        assert_eq!(at(30005).check_port(list), Ok(()));
        assert!(at(30010).check_port(list).is_err());
        assert!(at(20491).check_port(list).is_err());
        let e = at(20490).check_port(Some("20490;x")).unwrap_err();
        assert!(e.contains("not a list of ports"), "{e}");
    }
}
