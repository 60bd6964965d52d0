//! `cargo xtask deb`: the NAS side as a Debian package, written directly (no dpkg-deb
//! needed to build it; dpkg-deb checks it when present).
//!
//! A .deb is an `ar` archive of `debian-binary` ("2.0\n"), `control.tar.gz` and
//! `data.tar.gz`, in that order.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::pkg::{self, Entry};

pub const PACKAGE: &str = "openvaai";
pub const ARCH: &str = "amd64";
pub const MAINTAINER: &str = "openvaai maintainers <maintainers@openvaai.invalid>";
pub const HOMEPAGE: &str = "https://example.invalid/openvaai";
pub const CONFFILE: &str = "/etc/openvaai/openvaaid.toml";

/// The shipped default configuration: every key commented out.
pub const DEFAULT_CONFIG: &str = include_str!("../../packaging/deb/openvaaid.toml");
pub const UNIT: &str = include_str!("../../packaging/systemd/openvaaid.service");
const POSTINST: &str = include_str!("../../packaging/deb/postinst");
const PRERM: &str = include_str!("../../packaging/deb/prerm");
const POSTRM: &str = include_str!("../../packaging/deb/postrm");
const COPYRIGHT: &str = include_str!("../../packaging/deb/copyright");

/// Documents copied from the workspace into /usr/share/doc/openvaai/.
pub const DOCS: [(&str, &str); 5] = [
    ("README.md", "README.md"),
    ("docs/install.md", "install.md"),
    ("docs/operations.md", "operations.md"),
    ("docs/errors.md", "errors.md"),
    ("docs/protocol.md", "protocol.md"),
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
    files
}

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
    let control_files = [
        Entry::file("control", 0o644, control(version, kib, &i.depends)),
        Entry::file("conffiles", 0o644, format!("{CONFFILE}\n")),
        Entry::file("postinst", 0o755, POSTINST),
        Entry::file("prerm", 0o755, PRERM),
        Entry::file("postrm", 0o755, POSTRM),
    ];
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
                    "{} needs {lib}: add its package to Depends in xtask/src/deb.rs",
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

/// The shipped configuration with every commented setting (`#key`, `#[table]`) enabled.
pub fn uncommented(config: &str) -> String {
    config
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[') => rest,
            _ => l,
        })
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// Runs the real `openvaaid --check-config` on the shipped configuration: as shipped it
/// must be refused for having no export (exit 2) and accepted with an export added; with
/// every setting uncommented (example exports pointed at scratch directories) it must pass.
pub fn check_default_config(openvaaid: &Path, scratch: &Path) -> Result<()> {
    let run = |config: &Path, extra: &[&str]| -> Result<(Option<i32>, String)> {
        let out = Command::new(openvaaid)
            .arg("--config")
            .arg(config)
            .args(extra)
            .arg("--check-config")
            .env("RUST_LOG", "error")
            .output()
            .with_context(|| format!("running {}", openvaaid.display()))?;
        Ok((
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    };
    std::fs::create_dir_all(scratch)?;
    let shipped = scratch.join("openvaaid.toml");
    std::fs::write(&shipped, DEFAULT_CONFIG)?;
    let (code, out) = run(&shipped, &[])?;
    ensure!(
        code == Some(2) && out.contains("no export"),
        "the shipped config should be refused with `no export` (exit 2); got {code:?}: {out}"
    );
    let export = scratch.join("export");
    std::fs::create_dir_all(&export)?;
    let (code, out) = run(
        &shipped,
        &["--export", export.to_str().context("UTF-8 path")?],
    )?;
    ensure!(
        code == Some(0) && out.contains("configuration OK"),
        "the shipped config plus --export should pass; got {code:?}: {out}"
    );
    let mut all = uncommented(DEFAULT_CONFIG);
    for name in ["vmstore", "templates"] {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir)?;
        all = all.replace(
            &format!("\"/srv/nfs/{name}\""),
            &format!("\"{}\"", dir.display()),
        );
    }
    let full = scratch.join("uncommented.toml");
    std::fs::write(&full, &all)?;
    let (code, out) = run(&full, &[])?;
    ensure!(
        code == Some(0) && out.contains("configuration OK"),
        "the shipped config with every setting uncommented should pass; got {code:?}: {out}"
    );
    Ok(())
}

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

fn release_build() -> Result<PathBuf> {
    let root = crate::esxi::workspace_root();
    let target = pkg::target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "--locked"])
        .args([
            "-p",
            "openvaai-daemon",
            "-p",
            "openvaai-cli",
            "-p",
            "openvaai-plugin",
        ])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "cargo build --release failed");
    Ok(target.join("release"))
}

/// Builds the release binaries, checks the shipped configuration with the real daemon,
/// packages the binaries without debug sections, writes `target/deb/openvaai_<version>_amd64.deb` and checks it with dpkg-deb.
pub fn run() -> Result<()> {
    let version = pkg::package_version()?;
    let release = release_build()?;
    let root = crate::esxi::workspace_root();
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let bins = [
        release.join("openvaaid"),
        release.join("openvaai"),
        release.join("libopenvaai.so"),
    ];
    let depends = shlib_depends(&bins.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let mut docs = Vec::new();
    for (src, name) in DOCS {
        docs.push((name.to_owned(), read(&root.join(src))?));
    }
    let out = pkg::out_dir("deb")?;
    let stripped = out.join("stripped");
    let inputs = Inputs {
        openvaaid: pkg::strip_debug(&bins[0], &stripped)?,
        openvaai: pkg::strip_debug(&bins[1], &stripped)?,
        plugin: pkg::strip_debug(&bins[2], &stripped)?,
        docs,
        depends,
    };
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
mod tests {
    use super::*;

    const DATE: u64 = 1_767_225_600;

    fn inputs() -> Inputs {
        Inputs {
            openvaaid: b"daemon".to_vec(),
            openvaai: b"cli".to_vec(),
            plugin: b"plugin".to_vec(),
            docs: vec![("README.md".into(), b"# openvaai\n".to_vec())],
            depends: "libc6 (>= 2.34), libgcc-s1 (>= 4.2)".into(),
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
            eprintln!("skipping: dpkg-deb not installed");
        }
    }

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

    #[test]
    fn default_config_comments_out_every_key() {
        // Nothing active as shipped.
        for line in DEFAULT_CONFIG.lines() {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "active line: {line}"
            );
        }
        let all = uncommented(DEFAULT_CONFIG);
        for key in [
            "listen",
            "state_dir",
            "advertise",
            "[limits]",
            "max_jobs",
            "max_connections",
            "lease_seconds",
            "idle_timeout_seconds",
            "handshake_timeout_seconds",
            "shutdown_timeout_seconds",
            "max_job_bytes_per_second",
            "[[export]]",
            "path",
            "name",
            "allowed_networks",
            "read_only",
        ] {
            assert!(
                all.lines()
                    .any(|l| l == key || l.starts_with(&format!("{key} = "))),
                "{key} is not in the shipped config"
            );
        }
        // The keys the daemon accepts are exactly the documented ones.
        let src = include_str!("../../crates/daemon/src/config.rs");
        for key in ["max_job_bytes_per_second", "allowed_networks", "advertise"] {
            assert!(
                src.contains(&format!("pub {key}:")),
                "{key} gone from the daemon"
            );
        }
    }

    #[test]
    fn the_unit_is_hardened() {
        for want in [
            "ExecStart=/usr/bin/openvaaid --config /etc/openvaai/openvaaid.toml",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "StateDirectory=openvaaid",
            "RestartPreventExitStatus=2",
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
