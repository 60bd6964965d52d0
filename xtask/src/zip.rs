//! A minimal zip writer (stored members, no compression: the VIB inside is already gzip, the
//! XML is small) and a strict reader for the tests. Enough for ESXi's offline bundles.

use anyhow::{bail, ensure, Result};

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;

/// MS-DOS date and time fields for a Unix time (UTC), as zip stores them.
fn dos_time(t: u64) -> (u16, u16) {
    let (y, mo, d, h, mi, s) = crate::pkg::utc(t.max(315_532_800)); // not before 1980
    let date = (((y - 1980) as u16) << 9) | ((mo as u16) << 5) | d as u16;
    let time = ((h as u16) << 11) | ((mi as u16) << 5) | (s as u16 / 2);
    (date, time)
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

/// A zip of `(name, data)` in the order given, every member stored with mode 0644 and time
/// `mtime`.
pub fn write(members: &[(&str, &[u8])], mtime: u64) -> Result<Vec<u8>> {
    let (date, time) = dos_time(mtime);
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        ensure!(
            data.len() < u32::MAX as usize && out.len() < u32::MAX as usize,
            "zip64 not supported"
        );
        let crc = crc32(data);
        let offset = out.len() as u32;
        let size = data.len() as u32;
        let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
        let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
        // Local file header.
        le32(&mut out, LOCAL);
        le16(&mut out, 10); // version needed: 1.0 (stored)
        le16(&mut out, 0x0800); // flags: UTF-8 names
        le16(&mut out, 0); // method: stored
        le16(&mut out, time);
        le16(&mut out, date);
        le32(&mut out, crc);
        le32(&mut out, size);
        le32(&mut out, size);
        le16(&mut out, name.len() as u16);
        le16(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // Central directory record.
        le32(&mut central, CENTRAL);
        le16(&mut central, (3 << 8) | 20); // made by: Unix, 2.0
        le16(&mut central, 10);
        le16(&mut central, 0x0800);
        le16(&mut central, 0);
        le16(&mut central, time);
        le16(&mut central, date);
        le32(&mut central, crc);
        le32(&mut central, size);
        le32(&mut central, size);
        le16(&mut central, name.len() as u16);
        le16(&mut central, 0); // extra
        le16(&mut central, 0); // comment
        le16(&mut central, 0); // disk
        le16(&mut central, 0); // internal attributes
        le32(&mut central, (0o100644u32) << 16); // external: Unix mode
        le32(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let n = members.len() as u16;
    out.extend_from_slice(&central);
    out.extend_from_slice(&END.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // disk numbers
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]); // comment length
    Ok(out)
}

/// Reads a zip of stored members through its central directory, checking each local header
/// and CRC; returns `(name, data)` in central-directory order.
pub fn read(z: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let u16at = |i: usize| -> Result<u16> {
        Ok(u16::from_le_bytes(
            z.get(i..i + 2)
                .ok_or_else(|| anyhow::anyhow!("truncated zip"))?
                .try_into()?,
        ))
    };
    let u32at = |i: usize| -> Result<u32> {
        Ok(u32::from_le_bytes(
            z.get(i..i + 4)
                .ok_or_else(|| anyhow::anyhow!("truncated zip"))?
                .try_into()?,
        ))
    };
    ensure!(z.len() >= 22, "too short for a zip");
    let eocd = z.len() - 22; // we write no archive comment
    ensure!(u32at(eocd)? == END, "no end of central directory record");
    let n = u16at(eocd + 10)? as usize;
    let mut p = u32at(eocd + 16)? as usize;
    let mut out = Vec::new();
    for _ in 0..n {
        ensure!(u32at(p)? == CENTRAL, "bad central directory record");
        let method = u16at(p + 10)?;
        let crc = u32at(p + 16)?;
        let csize = u32at(p + 20)? as usize;
        let size = u32at(p + 24)? as usize;
        let name_len = u16at(p + 28)? as usize;
        let extra = u16at(p + 30)? as usize;
        let comment = u16at(p + 32)? as usize;
        let local = u32at(p + 42)? as usize;
        let name = String::from_utf8(z[p + 46..p + 46 + name_len].to_vec())?;
        p += 46 + name_len + extra + comment;
        if method != 0 || csize != size {
            bail!("{name}: only stored members are read here");
        }
        ensure!(u32at(local)? == LOCAL, "{name}: bad local header");
        ensure!(u32at(local + 14)? == crc, "{name}: local CRC differs");
        let lname = u16at(local + 26)? as usize;
        let lextra = u16at(local + 28)? as usize;
        ensure!(
            &z[local + 30..local + 30 + lname] == name.as_bytes(),
            "{name}: local name"
        );
        let start = local + 30 + lname + lextra;
        let data = z
            .get(start..start + size)
            .ok_or_else(|| anyhow::anyhow!("{name}: truncated"))?
            .to_vec();
        ensure!(crc32(&data) == crc, "{name}: CRC mismatch");
        out.push((name, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let z = write(
            &[("a.xml", b"<a/>"), ("d/b.bin", &[0u8, 1, 2])],
            1_700_000_000,
        )
        .unwrap();
        let r = read(&z).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], ("a.xml".to_owned(), b"<a/>".to_vec()));
        assert_eq!(r[1].0, "d/b.bin");
        // Clamped to 1980-01-01 00:00: year 0, month 1, day 1.
        assert_eq!(dos_time(0), ((1 << 5) | 1, 0));
    }

    /// Python's zipfile (python3 is on every CI machine: it installs ziglang) reads our zips.
    #[test]
    fn python_zipfile_agrees() {
        let dir = crate::pkg::test_dir("zip");
        let path = dir.join("t.zip");
        std::fs::write(
            &path,
            write(&[("x/y.txt", b"hello"), ("z", b"")], 1_700_000_000).unwrap(),
        )
        .unwrap();
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(' '.join(f'{i.filename}:{i.file_size}:{oct(i.external_attr >> 16)}' for i in z.infolist()))\nprint(z.read('x/y.txt').decode())";
        match std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
        {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    "x/y.txt:5:0o100644 z:0:0o100644\nhello\n"
                );
            }
            Err(e) => crate::pkg::tool_missing(&format!("python3 is not available ({e})")),
        }
    }
}
