//! `cargo xtask deb`: the NAS side as a Debian package, written directly (no dpkg-deb
//! needed to build it; dpkg-deb checks it when present).
//!
//! A .deb is an `ar` archive of `debian-binary` ("2.0\n"), `control.tar.gz` and
//! `data.tar.gz`, in that order.

mod config;
mod control;
mod dpkg;

use std::path::Path;

use anyhow::{Context, Result};

use crate::pkg::{self, Entry};
use config::check_default_config;
pub use config::DEFAULT_CONFIG;
use control::{control_files, shlib_depends};
use dpkg::check_with_dpkg;

pub const PACKAGE: &str = "openvaai";
pub const ARCH: &str = "amd64";
pub const MAINTAINER: &str = "openvaai maintainers <maintainers@openvaai.invalid>";
pub const HOMEPAGE: &str = "https://example.invalid/openvaai";
pub const CONFFILE: &str = "/etc/openvaai/openvaaid.toml";

pub const UNIT: &str = include_str!("../../../packaging/systemd/openvaaid.service");
const COPYRIGHT: &str = include_str!("../../../packaging/deb/copyright");

/// Documents copied from the workspace into /usr/share/doc/openvaai/.
pub const DOCS: [(&str, &str); 6] = [
    ("README.md", "README.md"),
    ("docs/install.md", "install.md"),
    ("docs/operations.md", "operations.md"),
    ("docs/errors.md", "errors.md"),
    ("docs/protocol.md", "protocol.md"),
    ("packaging/grafana/openvaai.json", "grafana-openvaai.json"),
];

/// What goes into the package besides the files kept in packaging/.
pub struct Inputs {
    pub openvaaid: Vec<u8>,
    pub openvaai: Vec<u8>,
    /// The Linux build of libopenvaai.so (for `openvaai check` on the NAS).
    pub plugin: Vec<u8>,
    /// `(file name under /usr/share/doc/openvaai, contents)`.
    pub docs: Vec<(String, Vec<u8>)>,
    /// The Depends field.
    pub depends: String,
    /// Man pages and completions, at their install paths (see [`crate::manual`]).
    pub manual: Vec<Entry>,
}

/// Every file the package installs, without parent directories; paths without `/`.
pub fn data_files(i: &Inputs) -> Vec<Entry> {
    let mut files = vec![
        Entry::file("usr/bin/openvaaid", 0o755, i.openvaaid.clone()),
        Entry::file("usr/bin/openvaai", 0o755, i.openvaai.clone()),
        Entry::file("usr/lib/openvaai/libopenvaai.so", 0o644, i.plugin.clone()),
        Entry::file("lib/systemd/system/openvaaid.service", 0o644, UNIT),
        Entry::file(&CONFFILE[1..], 0o644, DEFAULT_CONFIG),
        Entry::file("usr/share/doc/openvaai/copyright", 0o644, COPYRIGHT),
    ];
    for (name, data) in &i.docs {
        files.push(Entry::file(
            &format!("usr/share/doc/{PACKAGE}/{name}"),
            0o644,
            data.clone(),
        ));
    }
    files.extend(i.manual.iter().cloned());
    files
}

/// Builds the package. Deterministic: the same inputs give the same bytes.
pub fn build_deb(i: &Inputs, version: &str, date: u64) -> Result<Vec<u8>> {
    let files = data_files(i);
    let data_entries = pkg::with_parents(&files, "./");
    // Installed-Size as dpkg-gencontrol counts it: KiB per file rounded up, 1 per directory.
    let kib: u64 = data_entries
        .iter()
        .map(|e| {
            e.data
                .as_ref()
                .map_or(1, |d| (d.len() as u64).div_ceil(1024))
        })
        .sum();
    let data = pkg::gzip(&pkg::tar(&data_entries, date)?, date)?;
    let control_files = control_files(version, kib, &i.depends);
    let control = pkg::gzip(
        &pkg::tar(&pkg::with_parents(&control_files, "./"), date)?,
        date,
    )?;
    crate::ar::write(
        &[
            crate::ar::Member {
                name: "debian-binary",
                data: b"2.0\n",
            },
            crate::ar::Member {
                name: "control.tar.gz",
                data: &control,
            },
            crate::ar::Member {
                name: "data.tar.gz",
                data: &data,
            },
        ],
        date,
    )
}

pub fn file_name(version: &str) -> String {
    format!("{PACKAGE}_{version}_{ARCH}.deb")
}

/// Reads what every package ships from the portable build: binaries without debug sections,
/// the documents, the man pages and completions (for `layout`).
pub fn inputs(
    p: &crate::portable::Portable,
    layout: crate::manual::Layout,
    scratch: &Path,
) -> Result<Inputs> {
    let root = crate::esxi::workspace_root();
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let depends = shlib_depends(&p.binaries())?;
    let mut docs = Vec::new();
    for (src, name) in DOCS {
        docs.push((name.to_owned(), read(&root.join(src))?));
    }
    let manual =
        crate::manual::Manual::read(&p.manual)?.entries(layout, pkg::source_date_epoch())?;
    Ok(Inputs {
        openvaaid: pkg::strip_debug(&p.openvaaid, scratch)?,
        openvaai: pkg::strip_debug(&p.openvaai, scratch)?,
        plugin: pkg::strip_debug(&p.plugin, scratch)?,
        docs,
        depends,
        manual,
    })
}

/// Builds the portable binaries, checks the shipped configuration with the real daemon,
/// packages the binaries without debug sections, writes `target/deb/openvaai_<version>_amd64.deb` and checks it with dpkg-deb.
pub fn run() -> Result<()> {
    let version = pkg::package_version()?;
    let portable = crate::portable::build()?;
    let out = pkg::out_dir("deb")?;
    let inputs = inputs(
        &portable,
        crate::manual::Layout::Debian,
        &out.join("stripped"),
    )?;
    let bins = [portable.openvaaid.clone()];
    check_default_config(&bins[0], &out.join("config-check"))?;
    println!("shipped {CONFFILE}: refused as is (no export), accepted with an export and fully uncommented");

    let deb = build_deb(&inputs, &version, pkg::source_date_epoch())?;
    let path = out.join(file_name(&version));
    std::fs::write(&path, &deb)?;
    let expected = pkg::with_parents(&data_files(&inputs), "./");
    if check_with_dpkg(&path, &expected)? {
        println!(
            "{}: dpkg-deb agrees on every path, mode and the conffile",
            path.display()
        );
    } else {
        println!(
            "{}: written (dpkg-deb not installed: not cross-checked)",
            path.display()
        );
    }
    println!("Depends: {}", inputs.depends);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const DATE: u64 = 1_767_225_600;

    pub fn inputs() -> Inputs {
        Inputs {
            openvaaid: b"daemon".to_vec(),
            openvaai: b"cli".to_vec(),
            plugin: b"plugin".to_vec(),
            docs: vec![("README.md".into(), b"# openvaai\n".to_vec())],
            depends: "libc6 (>= 2.34), libgcc-s1 (>= 4.2)".into(),
            manual: crate::manual::sample()
                .entries(crate::manual::Layout::Debian, DATE)
                .unwrap(),
        }
    }

    fn untar(tgz: &[u8]) -> Vec<(String, u32, bool, Vec<u8>)> {
        let tar = pkg::gunzip(tgz).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
                assert_eq!(h.username().unwrap(), Some("root"));
                assert_eq!(h.mtime().unwrap(), DATE);
                let mut d = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut d).unwrap();
                (
                    String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    h.mode().unwrap(),
                    h.entry_type().is_dir(),
                    d,
                )
            })
            .collect()
    }

    #[test]
    fn members_paths_modes_and_control() {
        let deb = build_deb(&inputs(), "0.1.0-1", DATE).unwrap();
        let m = crate::ar::read(&deb).unwrap();
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["debian-binary", "control.tar.gz", "data.tar.gz"]);
        assert_eq!(m[0].data, b"2.0\n");

        let data = untar(&m[2].data);
        let files: Vec<(&str, u32)> = data
            .iter()
            .filter(|e| !e.2)
            .map(|e| (e.0.as_str(), e.1))
            .collect();
        assert_eq!(
            files,
            [
                ("./etc/openvaai/openvaaid.toml", 0o644),
                ("./lib/systemd/system/openvaaid.service", 0o644),
                ("./usr/bin/openvaai", 0o755),
                ("./usr/bin/openvaaid", 0o755),
                ("./usr/lib/openvaai/libopenvaai.so", 0o644),
                ("./usr/share/doc/openvaai/README.md", 0o644),
                ("./usr/share/doc/openvaai/copyright", 0o644),
                ("./usr/share/man/man1/openvaai.1.gz", 0o644),
                ("./usr/share/zsh/vendor-completions/_openvaai", 0o644),
            ]
        );
        assert!(data.iter().filter(|e| e.2).all(|e| e.1 == 0o755));
        assert_eq!(data[0].0, "./");
        let get = |p: &str| &data.iter().find(|e| e.0 == p).unwrap().3;
        assert_eq!(get("./usr/bin/openvaaid"), b"daemon");
        assert_eq!(get("./usr/bin/openvaai"), b"cli");
        assert_eq!(get("./usr/lib/openvaai/libopenvaai.so"), b"plugin");
        assert_eq!(
            get("./etc/openvaai/openvaaid.toml"),
            DEFAULT_CONFIG.as_bytes()
        );
        assert_eq!(
            get("./lib/systemd/system/openvaaid.service"),
            UNIT.as_bytes()
        );

        let control = untar(&m[1].data);
        let c: Vec<(&str, u32)> = control.iter().map(|e| (e.0.as_str(), e.1)).collect();
        assert_eq!(
            c,
            [
                ("./", 0o755),
                ("./conffiles", 0o644),
                ("./control", 0o644),
                ("./postinst", 0o755),
                ("./postrm", 0o755),
                ("./prerm", 0o755),
            ]
        );
        assert_eq!(control[1].3, b"/etc/openvaai/openvaaid.toml\n");
        let text = String::from_utf8(control[2].3.clone()).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert_eq!(field("Package"), "openvaai");
        assert_eq!(field("Version"), "0.1.0-1");
        assert_eq!(field("Architecture"), "amd64");
        assert_eq!(field("Depends"), "libc6 (>= 2.34), libgcc-s1 (>= 4.2)");
        assert!(field("Maintainer").contains('@'));
        assert!(field("Installed-Size").parse::<u64>().unwrap() > 0);
        assert!(!field("Description").is_empty());
        // Continuation lines start with a space; no empty lines inside the paragraph.
        assert!(text.ends_with('\n') && !text.contains("\n\n"));
        for script in [3, 4, 5] {
            assert!(control[script].3.starts_with(b"#!/bin/sh\n"));
        }
    }

    #[test]
    fn reproducible() {
        assert_eq!(
            build_deb(&inputs(), "0.1.0-1", DATE).unwrap(),
            build_deb(&inputs(), "0.1.0-1", DATE).unwrap()
        );
    }

    #[test]
    fn the_unit_is_hardened() {
        for want in [
            "ExecStart=/usr/bin/openvaaid --config /etc/openvaai/openvaaid.toml",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "StateDirectory=openvaaid",
            "RestartPreventExitStatus=2",
            "Type=notify",
            "NotifyAccess=main",
            "WatchdogSec=",
        ] {
            assert!(UNIT.contains(want), "unit lacks {want}");
        }
        let caps = UNIT
            .lines()
            .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
            .unwrap();
        let mut caps: Vec<&str> = caps.split_whitespace().collect();
        caps.sort_unstable();
        assert_eq!(
            caps,
            [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_DAC_READ_SEARCH",
                "CAP_FOWNER",
                "CAP_FSETID"
            ]
        );
    }
}
