//! The `ar` archive format (common System V / GNU variant), as ESXi's VIB reader and dpkg
//! expect it: `!<arch>\n`, then per member a 60-byte header and the data padded to an even
//! length with `\n`. Members are written in the order given; names end with `/` (GNU style,
//! at most 15 bytes, no long-name table).

use anyhow::{bail, ensure, Result};

pub const MAGIC: &[u8; 8] = b"!<arch>\n";

/// One member: its name and its bytes.
pub struct Member<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// Writes the members in order, each owned by uid/gid 0 with mode 0644 and time `mtime`.
pub fn write(members: &[Member<'_>], mtime: u64) -> Result<Vec<u8>> {
    let mut out = MAGIC.to_vec();
    for m in members {
        ensure!(
            !m.name.is_empty()
                && m.name.len() <= 15
                && m.name.is_ascii()
                && !m.name.contains(['/', ' ', '\n']),
            "ar member name `{}` must be 1 to 15 ASCII bytes without `/`, space or newline",
            m.name
        );
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            format!("{}/", m.name),
            mtime,
            0,
            0,
            "100644",
            m.data.len()
        );
        ensure!(header.len() == 60, "ar header for `{}` overflows", m.name);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(m.data);
        if m.data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// A member read back: name (without the trailing `/`), the raw header fields and data.
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))] // the header fields are for the tests
pub struct Read {
    pub name: String,
    pub mtime: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Parses an archive strictly (magic, header terminators, decimal/octal fields, padding).
pub fn read(bytes: &[u8]) -> Result<Vec<Read>> {
    let Some(mut rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        bail!("not an ar archive (no !<arch> magic)");
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        ensure!(rest.len() >= 60, "truncated ar header");
        let (h, tail) = rest.split_at(60);
        ensure!(&h[58..60] == b"`\n", "bad ar header terminator");
        let field = |a: usize, b: usize| -> Result<&str> {
            Ok(std::str::from_utf8(&h[a..b])?.trim_end_matches(' '))
        };
        let name = field(0, 16)?;
        let name = name.strip_suffix('/').unwrap_or(name).to_owned();
        let mtime = field(16, 28)?.parse()?;
        let uid = field(28, 34)?.parse()?;
        let gid = field(34, 40)?.parse()?;
        let mode = u32::from_str_radix(field(40, 48)?, 8)?;
        let size: usize = field(48, 58)?.parse()?;
        ensure!(tail.len() >= size, "ar member `{name}` truncated");
        let (data, mut tail) = tail.split_at(size);
        if size % 2 == 1 {
            ensure!(
                tail.first() == Some(&b'\n'),
                "ar member `{name}` not padded"
            );
            tail = &tail[1..];
        }
        out.push(Read {
            name,
            mtime,
            uid,
            gid,
            mode,
            data: data.to_vec(),
        });
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_and_pads() {
        let a = write(
            &[
                Member {
                    name: "descriptor.xml",
                    data: b"abc",
                },
                Member {
                    name: "sig.pkcs7",
                    data: b"",
                },
                Member {
                    name: "payload1",
                    data: b"0123",
                },
            ],
            1234,
        )
        .unwrap();
        assert_eq!(a.len(), 8 + 3 * 60 + 4 + 4); // "abc" padded, "", "0123"
        assert_eq!(&a[8..24], b"descriptor.xml/ ");
        let r = read(&a).unwrap();
        let names: Vec<_> = r.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["descriptor.xml", "sig.pkcs7", "payload1"]);
        assert_eq!(r[0].data, b"abc");
        assert!(r[1].data.is_empty());
        assert_eq!(
            (r[2].mtime, r[2].uid, r[2].gid, r[2].mode),
            (1234, 0, 0, 0o100644)
        );
    }

    #[test]
    fn long_or_odd_names_are_refused() {
        for name in ["a-name-that-is-too-long", "a/b", ""] {
            assert!(write(&[Member { name, data: b"" }], 0).is_err(), "{name}");
        }
    }

    /// GNU ar (binutils, which CI installs for objdump) lists our archives in our order.
    #[test]
    fn gnu_ar_agrees() {
        let dir = crate::pkg::test_dir("ar");
        let path = dir.join("t.a");
        let bytes = write(
            &[
                Member {
                    name: "debian-binary",
                    data: b"2.0\n",
                },
                Member {
                    name: "odd",
                    data: b"x",
                },
            ],
            0,
        )
        .unwrap();
        std::fs::write(&path, bytes).unwrap();
        match std::process::Command::new("ar")
            .arg("t")
            .arg(&path)
            .output()
        {
            Ok(out) => {
                assert!(out.status.success());
                assert_eq!(String::from_utf8_lossy(&out.stdout), "debian-binary\nodd\n");
            }
            Err(e) => crate::pkg::tool_missing(&format!("GNU ar is not available ({e})")),
        }
    }
}
