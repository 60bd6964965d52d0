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

use std::path::Path;

use openvaai_abi::vix;
use openvaai_client::datastore::read_marker;
use openvaai_client::Failure;

/// The largest marker read.
const MAX_MARKER: usize = 4096;
/// NFS's port.
pub const NFS_PORT: u16 = 2049;

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
    /// Reads and parses the marker at `path`.
    pub fn read(path: &Path) -> Result<Config, Failure> {
        let bytes = read_marker(path, MAX_MARKER)?;
        Config::parse(&bytes).map_err(|e| {
            Failure::new(
                vix::E_NOT_SUPPORTED,
                format!(
                    "{}: {e} (it may be empty, or TOML with `port = N`)",
                    path.display()
                ),
            )
        })
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
}
