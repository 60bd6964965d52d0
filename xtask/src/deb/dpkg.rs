//! Cross-checking a package with dpkg-deb.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Result};

use crate::pkg::Entry;

/// `dpkg-deb --info` and `--contents` of a package, if dpkg-deb is installed.
pub fn dpkg_deb(deb: &Path) -> Result<Option<(String, String)>> {
    let run = |flag: &str| -> Result<Option<String>> {
        let out = match Command::new("dpkg-deb").arg(flag).arg(deb).output() {
            Ok(o) => o,
            Err(_) => return Ok(None),
        };
        ensure!(
            out.status.success(),
            "dpkg-deb {flag} {}: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    };
    Ok(match (run("--info")?, run("--contents")?) {
        (Some(i), Some(c)) => Some((i, c)),
        _ => None,
    })
}

/// Checks what dpkg-deb says about `deb` against the files it must install.
pub fn check_with_dpkg(deb: &Path, expected: &[Entry]) -> Result<bool> {
    let Some((info, contents)) = dpkg_deb(deb)? else {
        return Ok(false);
    };
    for field in [
        "Package: openvaai",
        "Architecture: amd64",
        "Depends: libc6 (>= ",
    ] {
        ensure!(
            info.contains(field),
            "dpkg-deb --info lacks `{field}`:\n{info}"
        );
    }
    for script in ["postinst", "prerm", "postrm", "conffiles", "control"] {
        ensure!(
            info.lines()
                .any(|l| l.split_whitespace().any(|w| w == script)),
            "dpkg-deb --info lists no {script}:\n{info}"
        );
    }
    // `-rwxr-xr-x root/root   123 2026-01-01 00:00 ./usr/bin/openvaaid`
    let listed: Vec<(String, String, String)> = contents
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].to_owned(),
                w[1].to_owned(),
                w.last().copied().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mode_string = |e: &Entry| {
        let mut s = String::from(if e.data.is_some() { "-" } else { "d" });
        for shift in [6, 3, 0] {
            let m = (e.mode >> shift) & 7;
            s.push(if m & 4 != 0 { 'r' } else { '-' });
            s.push(if m & 2 != 0 { 'w' } else { '-' });
            s.push(if m & 1 != 0 { 'x' } else { '-' });
        }
        s
    };
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|e| (mode_string(e), "root/root".to_owned(), e.path.clone()))
        .collect();
    ensure!(
        listed == want,
        "dpkg-deb --contents differs:\n got {listed:#?}\nwant {want:#?}"
    );
    let out = Command::new("dpkg-deb")
        .args(["--field"])
        .arg(deb)
        .arg("Version")
        .output()?;
    ensure!(out.status.success(), "dpkg-deb --field failed");
    let conf = Command::new("dpkg-deb")
        .arg("--ctrl-tarfile")
        .arg(deb)
        .output()?;
    ensure!(conf.status.success(), "dpkg-deb --ctrl-tarfile failed");
    let mut a = tar::Archive::new(conf.stdout.as_slice());
    let mut conffiles = None;
    for e in a.entries()? {
        let mut e = e?;
        if e.path()?.as_os_str() == "./conffiles" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s)?;
            conffiles = Some(s);
        }
    }
    ensure!(
        conffiles.as_deref() == Some("/etc/openvaai/openvaaid.toml\n"),
        "conffiles: {conffiles:?}"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::tests::{inputs, DATE};
    use crate::deb::{build_deb, data_files};
    use crate::pkg;

    /// dpkg-deb (on every Debian machine) reads the package and agrees on every path, mode,
    /// owner and the conffile.
    #[test]
    fn dpkg_deb_agrees() {
        let dir = pkg::test_dir("deb");
        let path = dir.join("t.deb");
        let i = inputs();
        std::fs::write(&path, build_deb(&i, "0.1.0-1", DATE).unwrap()).unwrap();
        let checked = check_with_dpkg(&path, &pkg::with_parents(&data_files(&i), "./")).unwrap();
        if !checked {
            pkg::tool_missing("dpkg-deb is not installed");
        }
    }
}
