//! `cargo xtask rpm`: the NAS side for RHEL, Rocky and Alma Linux, with the .deb's contents
//! (the portable build: glibc 2.17 symbols at most), built by `rpmbuild` (Debian's `rpm`
//! package) from a generated spec and a staged tree.
//!
//! Differences from the .deb, all of them the RPM way: the unit is under
//! `/usr/lib/systemd/system`, zsh completions under `site-functions`; the configuration is
//! `%config(noreplace)` (an edited one is kept on upgrade, and saved as `.rpmsave` on erase);
//! the scriptlets (packaging/rpm/) enable the service on first installation without starting
//! it, restart it on upgrade only if it runs, and stop and disable it on erase; nothing else
//! is removed (the state directory `/var/lib/openvaaid` is not the package's).

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::deb::{self, CONFFILE, HOMEPAGE, PACKAGE};
use crate::pkg::{self, Entry};

const POST: &str = include_str!("../../packaging/rpm/post");
const PREUN: &str = include_str!("../../packaging/rpm/preun");
const POSTUN: &str = include_str!("../../packaging/rpm/postun");

/// The directories the package owns (the rest, such as /usr/bin, belong to the system).
const OWNED_DIRS: [&str; 3] = ["etc/openvaai", "usr/lib/openvaai", "usr/share/doc/openvaai"];

/// The .deb's files at their RPM paths.
pub fn files(i: &deb::Inputs) -> Vec<Entry> {
    let mut files = deb::data_files(i);
    for f in &mut files {
        if let Some(rest) = f.path.strip_prefix("lib/systemd/") {
            f.path = format!("usr/lib/systemd/{rest}");
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// `libc6 (>= 2.17), libgcc-s1 (>= 3.0)` as RPM requirements.
pub fn requires(depends: &str) -> Vec<String> {
    depends
        .split(',')
        .map(|d| {
            let d = d.trim();
            let (name, ver) = d.split_once(" (>= ").unwrap_or((d, ""));
            let name = match name {
                "libc6" => "glibc",
                "libgcc-s1" => "libgcc",
                other => other,
            };
            match ver.strip_suffix(')') {
                Some(v) => format!("{name} >= {v}"),
                None => name.to_owned(),
            }
        })
        .collect()
}

/// The spec: `version` is `0.1.0-1` (version and release).
pub fn spec(version: &str, files: &[Entry], requires: &[String], stage: &Path) -> String {
    let (ver, release) = version.split_once('-').unwrap_or((version, "1"));
    let mut s = format!(
        "Name: {PACKAGE}
Version: {ver}
Release: {release}
Summary: VAAI-NAS offloads for VMware ESXi on Linux NFS servers
License: Apache-2.0
URL: {HOMEPAGE}
BuildArch: x86_64
AutoReqProv: no
"
    );
    for r in requires {
        s.push_str(&format!("Requires: {r}\n"));
    }
    s.push_str(&format!(
        "
%global debug_package %{{nil}}
%global __os_install_post %{{nil}}
%define _build_id_links none
%define _binary_payload w6.xzdio

%description
openvaaid runs on the NFS server and does the work ESXi offloads through
the openvaai NAS plugin: full and copy-on-write file clones (reflink),
space reservation for thick disks (fallocate) and extended file statistics
(FIEMAP), on XFS, Btrfs, ZFS and ext4, over ONC RPC and TLS (TCP 7443).
Also included: the openvaai admin tool and a Linux build of the plugin it
loads (openvaai check). The service is enabled but not started on
installation: configure exports in {CONFFILE} first.

%install
mkdir -p %{{buildroot}}
cp -a {stage}/. %{{buildroot}}/

%post
{POST}
%preun
{PREUN}
%postun
{POSTUN}
%files
%defattr(-,root,root,-)
",
        stage = stage.display()
    ));
    for d in OWNED_DIRS {
        s.push_str(&format!("%dir %attr(0755,root,root) /{d}\n"));
    }
    for f in files {
        let path = format!("/{}", f.path);
        let attr = format!("%attr({:04o},root,root)", f.mode);
        if path == CONFFILE {
            s.push_str(&format!("%config(noreplace) {attr} {path}\n"));
        } else {
            s.push_str(&format!("{attr} {path}\n"));
        }
    }
    s
}

pub fn file_name(version: &str) -> String {
    format!("{PACKAGE}-{version}.x86_64.rpm")
}

/// Writes `files` under `stage` with their modes.
fn stage_files(files: &[Entry], stage: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if stage.exists() {
        std::fs::remove_dir_all(stage)?;
    }
    for f in files {
        let path = stage.join(&f.path);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(&path, f.data.as_deref().unwrap_or_default())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    Ok(())
}

/// `rpm -qp` of the package: every file with its mode, and the config files.
fn check_with_rpm(rpm: &Path, files: &[Entry]) -> Result<()> {
    let q = |args: &[&str]| -> Result<String> {
        let out = Command::new("rpm")
            .args(args)
            .arg(rpm)
            .output()
            .context("running rpm")?;
        ensure!(
            out.status.success(),
            "rpm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let listed = q(&[
        "-qp",
        "--queryformat",
        "[%{FILEMODES:octal} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\\n]",
    ])?;
    for f in files {
        let want = format!("{:o} root:root /{}", 0o100000 | f.mode, f.path);
        ensure!(
            listed.lines().any(|l| l == want),
            "rpm -qp lacks `{want}`:\n{listed}"
        );
    }
    for d in OWNED_DIRS {
        let want = format!("40755 root:root /{d}");
        ensure!(
            listed.lines().any(|l| l == want),
            "rpm -qp lacks `{want}`:\n{listed}"
        );
    }
    ensure!(
        listed.lines().count() == files.len() + OWNED_DIRS.len(),
        "rpm -qp lists other files:\n{listed}"
    );
    let config = q(&["-qcp"])?;
    ensure!(config.trim() == CONFFILE, "rpm -qcp: {config}");
    let scripts = q(&["-qp", "--scripts"])?;
    for s in [
        "postinstall scriptlet",
        "preuninstall scriptlet",
        "postuninstall scriptlet",
    ] {
        ensure!(
            scripts.contains(s),
            "rpm -qp --scripts lacks the {s}:\n{scripts}"
        );
    }
    Ok(())
}

/// `cargo xtask rpm`.
pub fn run() -> Result<()> {
    let version = pkg::package_version()?;
    let portable = crate::portable::build()?;
    let out = pkg::out_dir("rpm")?;
    let inputs = deb::inputs(
        &portable,
        crate::manual::Layout::RedHat,
        &out.join("stripped"),
    )?;
    let files = files(&inputs);
    let stage = out.join("stage");
    stage_files(&files, &stage)?;
    let top = out.join("rpmbuild");
    let spec_path = out.join("openvaai.spec");
    std::fs::write(
        &spec_path,
        spec(&version, &files, &requires(&inputs.depends), &stage),
    )?;
    let st = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg("_rpmdir %{_topdir}/RPMS")
        .arg("--define")
        .arg("source_date_epoch_from_changelog 0")
        .arg("--quiet")
        .arg(&spec_path)
        .env("SOURCE_DATE_EPOCH", pkg::source_date_epoch().to_string())
        .status()
        .context("running rpmbuild (apt-get install rpm)")?;
    ensure!(st.success(), "rpmbuild failed");
    let built = top.join("RPMS/x86_64").join(file_name(&version));
    let path = out.join(file_name(&version));
    std::fs::rename(&built, &path)
        .with_context(|| format!("moving {} to {}", built.display(), path.display()))?;
    check_with_rpm(&path, &files)?;
    println!(
        "{}: rpm agrees on every path, mode, the config file and the scriptlets",
        path.display()
    );
    println!("Requires: {}", requires(&inputs.depends).join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::tests::inputs;

    #[test]
    fn spec_marks_the_config_and_owns_only_its_directories() {
        let i = inputs();
        let files = files(&i);
        let s = spec(
            "0.1.0-2",
            &files,
            &requires(&i.depends),
            Path::new("/stage"),
        );
        assert!(s.contains("\nVersion: 0.1.0\nRelease: 2\n"));
        assert!(
            s.contains("Requires: glibc >= 2.34\nRequires: libgcc >= 4.2\n"),
            "{s}"
        );
        assert!(
            s.contains("%config(noreplace) %attr(0644,root,root) /etc/openvaai/openvaaid.toml\n")
        );
        assert!(s.contains("%attr(0644,root,root) /usr/lib/systemd/system/openvaaid.service\n"));
        assert!(s.contains("%attr(0755,root,root) /usr/bin/openvaaid\n"));
        assert!(!s.contains(" /lib/systemd"));
        assert!(!s.contains("%dir %attr(0755,root,root) /usr/bin\n"));
        // Enabled, never started; stopped only on erase.
        assert!(!POST
            .lines()
            .any(|l| l.trim_start().starts_with("systemctl start")));
        assert!(PREUN.contains("[ \"$1\" -eq 0 ]"));
        for script in [POST, PREUN, POSTUN] {
            assert!(!script.contains("rm "), "the scriptlets remove nothing");
            let out = Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            assert!(out.status.success());
        }
    }
}
