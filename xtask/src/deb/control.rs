//! The control archive: the `control` file, the conffiles, the maintainer scripts, and the
//! Depends field read from the binaries.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::pkg::Entry;

use super::{ARCH, CONFFILE, HOMEPAGE, MAINTAINER, PACKAGE};

const POSTINST: &str = include_str!("../../../packaging/deb/postinst");
const PRERM: &str = include_str!("../../../packaging/deb/prerm");
const POSTRM: &str = include_str!("../../../packaging/deb/postrm");

pub fn control(version: &str, installed_kib: u64, depends: &str) -> String {
    format!(
        "Package: {PACKAGE}
Version: {version}
Architecture: {ARCH}
Maintainer: {MAINTAINER}
Installed-Size: {installed_kib}
Depends: {depends}
Section: admin
Priority: optional
Homepage: {HOMEPAGE}
Description: VAAI-NAS offloads for VMware ESXi on Linux NFS servers
 openvaaid runs on the NFS server and does the work ESXi offloads through
 the openvaai NAS plugin: full and copy-on-write file clones (reflink),
 space reservation for thick disks (fallocate) and extended file statistics
 (FIEMAP), on XFS, Btrfs, ZFS and ext4, over ONC RPC and TLS (TCP 7443).
 .
 Also included: the openvaai admin tool and a Linux build of the plugin it
 loads (openvaai check). The ESXi side is the openvaai VIB.
 .
 The service is enabled but not started on installation: configure exports
 in /etc/openvaai/openvaaid.toml and their ReadWritePaths= first.
"
    )
}

/// The files of `control.tar.gz`.
pub fn control_files(version: &str, installed_kib: u64, depends: &str) -> [Entry; 5] {
    [
        Entry::file("control", 0o644, control(version, installed_kib, depends)),
        Entry::file("conffiles", 0o644, format!("{CONFFILE}\n")),
        Entry::file("postinst", 0o755, POSTINST),
        Entry::file("prerm", 0o755, PRERM),
        Entry::file("postrm", 0o755, POSTRM),
    ]
}

/// The Debian packages providing the shared libraries `binaries` need, with the minimum
/// version their symbol versions call for, as dpkg-shlibdeps would say it (for the libraries
/// a Rust program uses: glibc and libgcc_s).
pub fn shlib_depends(binaries: &[&Path]) -> Result<String> {
    let mut glibc = crate::glibc::MAX_GLIBC;
    let mut gcc: Option<(u32, u32)> = None;
    for b in binaries {
        let out = Command::new("objdump")
            .arg("-p")
            .arg(b)
            .output()
            .context("running objdump -p")?;
        ensure!(out.status.success(), "objdump -p {} failed", b.display());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut w = line.split_whitespace();
            if w.next() != Some("NEEDED") {
                continue;
            }
            let lib = w.next().unwrap_or_default();
            let from_glibc = [
                "libc.so.6",
                "libm.so.6",
                "libpthread.so.0",
                "libdl.so.2",
                "librt.so.1",
                "libutil.so.1",
            ]
            .contains(&lib)
                || lib.starts_with("ld-linux");
            if lib == "libgcc_s.so.1" {
                gcc.get_or_insert((3, 0));
            } else if !from_glibc {
                bail!(
                    "{} needs {lib}: add its package to Depends in xtask/src/deb/control.rs",
                    b.display()
                );
            }
        }
        let dump = crate::glibc::objdump_t(b)?;
        for (ma, mi, _) in crate::glibc::versions(&dump) {
            glibc = glibc.max((ma, mi));
        }
        for word in dump.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
            if let Some(v) = word.strip_prefix("GCC_") {
                let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
                let v = (p.next().unwrap_or(0), p.next().unwrap_or(0));
                gcc = Some(gcc.map_or(v, |g| g.max(v)));
            }
        }
    }
    let mut deps = format!("libc6 (>= {}.{})", glibc.0, glibc.1);
    if let Some((ma, mi)) = gcc {
        deps.push_str(&format!(", libgcc-s1 (>= {ma}.{mi})"));
    }
    Ok(deps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg;

    #[test]
    fn maintainer_scripts_are_guarded_and_valid_sh() {
        for (name, s) in [("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)] {
            assert!(
                s.contains("set -e") && s.trim_end().ends_with("exit 0"),
                "{name}"
            );
            // Every systemctl call is guarded by a check that systemd runs or exists.
            for (n, line) in s.lines().enumerate() {
                let l = line.trim_start();
                if l.starts_with("systemctl ") {
                    assert!(l.ends_with("|| true"), "{name}:{}: {line}", n + 1);
                }
            }
            assert!(s.contains("/run/systemd/system"), "{name}");
            if let Ok(out) = Command::new("sh").arg("-n").arg("-c").arg(s).output() {
                assert!(
                    out.status.success(),
                    "{name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // Enabled, never started, on installation.
        assert!(!POSTINST
            .lines()
            .any(|l| l.trim_start().starts_with("systemctl start")));
        assert!(PRERM.contains("systemctl stop openvaaid.service"));
    }

    /// Run the maintainer scripts as dpkg would, with no systemd, systemctl or
    /// deb-systemd-helper on PATH (a container): they must succeed and do nothing harmful.
    #[test]
    fn maintainer_scripts_work_without_systemd() {
        let dir = pkg::test_dir("scripts");
        for (name, s, args) in [
            ("postinst", POSTINST, vec!["configure", ""]),
            ("postinst", POSTINST, vec!["configure", "0.0.9-1"]),
            ("prerm", PRERM, vec!["remove"]),
            ("prerm", PRERM, vec!["upgrade", "0.1.1-1"]),
            ("postrm", POSTRM, vec!["remove"]),
        ] {
            let script = dir.join(name);
            std::fs::write(&script, s).unwrap();
            let out = Command::new("/bin/sh")
                .arg(&script)
                .args(args.iter().filter(|a| !a.is_empty()))
                .env_clear()
                .env("PATH", dir.as_os_str()) // nothing but the script's directory: no systemctl
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
