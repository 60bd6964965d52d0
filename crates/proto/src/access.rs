//! The access file, `<export>/.openvaai/access`: where the daemon listens, the SHA-256 of its
//! certificate and the export's secret. The daemon writes it at start; the plugin reads it
//! through the datastore's NFS mount.
//!
//! ```text
//! openvaai-access 1
//! port = 7443
//! addresses = 192.0.2.10, 2001:db8::10
//! cert-sha256 = <64 hex digits>
//! secret = <64 hex digits>
//! ```
//! The first line names the format and its version. Then one `key = value` per line, each key
//! at most once; `addresses` is optional (without it the client uses the NFS server's
//! address). Blank lines and lines starting with `#` are ignored. Anything else, an unknown
//! key included, is an error: a newer format bumps the version. At most
//! [`MAX_ACCESS_FILE`] bytes.

use std::net::IpAddr;

use crate::auth::Secret;
use crate::error::{Error, ErrorKind, Result};
use crate::hex;
pub use crate::limits::MAX_ACCESS_FILE;

/// The directory, under the export root, that holds the access file.
pub const ACCESS_DIR: &str = crate::layout::PRIVATE_DIR;
/// The access file's name in [`ACCESS_DIR`].
pub const ACCESS_FILE: &str = "access";
/// The magic word of the first line.
pub const ACCESS_MAGIC: &str = "openvaai-access";
/// The format version written and accepted.
pub const ACCESS_VERSION: u32 = 1;
/// Most addresses in `addresses`.
pub const MAX_ADDRESSES: usize = 16;

/// The contents of an access file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFile {
    /// The daemon's TCP port.
    pub port: u16,
    /// Where to connect; empty: the NFS server's own address.
    pub addresses: Vec<IpAddr>,
    /// SHA-256 of the daemon's certificate (DER), to pin.
    pub cert_sha256: [u8; 32],
    /// The export's secret for the HMAC handshake.
    pub secret: Secret,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::AccessFile, msg)
}

impl AccessFile {
    /// Parses the bytes of an access file, strictly.
    pub fn parse(bytes: &[u8]) -> Result<AccessFile> {
        if bytes.len() > MAX_ACCESS_FILE {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "access file of {} bytes, limit {MAX_ACCESS_FILE}",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.lines();
        let first = lines.next().ok_or_else(|| bad("empty"))?;
        let mut words = first.split_whitespace();
        if words.next() != Some(ACCESS_MAGIC) {
            return Err(bad(format!("first line is not `{ACCESS_MAGIC} N`")));
        }
        let version = words.next().ok_or_else(|| bad("no version"))?;
        if version != ACCESS_VERSION.to_string() || words.next().is_some() {
            return Err(bad(format!("unsupported version `{version}`")));
        }
        let (mut port, mut addresses, mut cert, mut secret) = (None, None, None, None);
        for (i, line) in lines.enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let lineno = i + 2;
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("line {lineno}: not `key = value`")))?;
            let (k, v) = (k.trim(), v.trim());
            let dup = || bad(format!("line {lineno}: `{k}` given twice"));
            match k {
                "port" => {
                    let p: u16 = v
                        .parse()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad(format!("line {lineno}: bad port")))?;
                    if port.replace(p).is_some() {
                        return Err(dup());
                    }
                }
                "addresses" => {
                    let list = parse_addresses(v)
                        .ok_or_else(|| bad(format!("line {lineno}: bad addresses")))?;
                    if addresses.replace(list).is_some() {
                        return Err(dup());
                    }
                }
                "cert-sha256" => {
                    let c = hex::decode::<32>(v)
                        .ok_or_else(|| bad(format!("line {lineno}: bad cert-sha256")))?;
                    if cert.replace(c).is_some() {
                        return Err(dup());
                    }
                }
                "secret" => {
                    let s = Secret::from_hex(v)
                        .ok_or_else(|| bad(format!("line {lineno}: bad secret")))?;
                    if secret.replace(s).is_some() {
                        return Err(dup());
                    }
                }
                _ => return Err(bad(format!("line {lineno}: unknown key `{k}`"))),
            }
        }
        Ok(AccessFile {
            port: port.ok_or_else(|| bad("no port"))?,
            addresses: addresses.unwrap_or_default(),
            cert_sha256: cert.ok_or_else(|| bad("no cert-sha256"))?,
            secret: secret.ok_or_else(|| bad("no secret"))?,
        })
    }

    /// Renders the file; [`AccessFile::parse`] reads it back unchanged.
    pub fn render(&self) -> String {
        let mut s = format!("{ACCESS_MAGIC} {ACCESS_VERSION}\n");
        s.push_str("# Written by openvaaid at start. Keep it private: it opens this export.\n");
        s.push_str(&format!("port = {}\n", self.port));
        if !self.addresses.is_empty() {
            let list: Vec<String> = self.addresses.iter().map(|a| a.to_string()).collect();
            s.push_str(&format!("addresses = {}\n", list.join(", ")));
        }
        s.push_str(&format!(
            "cert-sha256 = {}\n",
            hex::encode(&self.cert_sha256)
        ));
        s.push_str(&format!("secret = {}\n", self.secret.to_hex()));
        s
    }
}

fn parse_addresses(v: &str) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    for a in v.split(',') {
        if out.len() == MAX_ADDRESSES {
            return None;
        }
        out.push(a.trim().parse().ok()?);
    }
    Some(out)
}

/// Lower-case hex of a SHA-256 digest, as written in the access file.
pub fn sha256_hex(digest: &[u8; 32]) -> String {
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AccessFile {
        AccessFile {
            port: 7443,
            addresses: vec![
                "192.0.2.10".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
            cert_sha256: [0x5a; 32],
            secret: Secret::from_bytes([0xc3; 32]),
        }
    }

    #[test]
    fn render_then_parse_round_trips() {
        let a = sample();
        assert_eq!(AccessFile::parse(a.render().as_bytes()).unwrap(), a);
        let b = AccessFile {
            addresses: vec![],
            ..sample()
        };
        assert_eq!(AccessFile::parse(b.render().as_bytes()).unwrap(), b);
    }

    #[test]
    fn strictness() {
        let good = sample().render();
        let cases = [
            good.replace("openvaai-access 1", "openvaai-access 2"),
            good.replace("openvaai-access 1", "something 1"),
            good.replace("port = 7443", "port = 0"),
            good.replace("port = 7443", "port = 70000"),
            good.replace("port = 7443\n", ""),
            good.replace("port = 7443", "port = 7443\nport = 7444"),
            good.replace("port = 7443", "colour = blue"),
            good.replace("port = 7443", "port 7443"),
            good.replace("secret = c3", "secret = zz"),
            good.replace("cert-sha256 = 5a5a", "cert-sha256 = 5a"),
            good.replace("192.0.2.10", "example.com"),
        ];
        for c in cases {
            assert!(AccessFile::parse(c.as_bytes()).is_err(), "accepted:\n{c}");
        }
    }

    #[test]
    fn oversized_file_is_refused() {
        let mut s = sample().render();
        s.push_str(&"#".repeat(MAX_ACCESS_FILE));
        assert_eq!(
            AccessFile::parse(s.as_bytes()).unwrap_err().kind(),
            ErrorKind::TooLarge
        );
    }
}
