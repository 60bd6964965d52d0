//! What the VIB and the .deb share: deterministic tar.gz members, hashes, timestamps, XML text.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// The package revision appended to the crate version: `0.1.0` ships as `0.1.0-1`.
pub const REVISION: u32 = 1;

/// The daemon's default TCP port (`DEFAULT_PORT` in crates/daemon/src/config.rs; a test keeps
/// them equal). The ESXi firewall rule opens it outbound.
pub const DAEMON_PORT: u16 = 7443;

/// `0.1.0-1`: the workspace version and the package revision, [`REVISION`] unless
/// `OPENVAAI_PKG_REVISION` (digits and dots) says otherwise: rebuilds of one version that
/// must update an installed package need a higher revision (ESXi refuses a VIB with an
/// installed VIB's ID but another payload).
pub fn package_version() -> Result<String> {
    let revision = match std::env::var("OPENVAAI_PKG_REVISION") {
        Ok(r) => {
            ensure!(
                !r.is_empty()
                    && r.split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
                "OPENVAAI_PKG_REVISION must be digits and dots, like 2 or 1.1, not `{r}`"
            );
            r
        }
        Err(_) => REVISION.to_string(),
    };
    Ok(format!("{}-{revision}", env!("CARGO_PKG_VERSION")))
}

/// The timestamp written everywhere (tar and ar mtimes, release dates): `SOURCE_DATE_EPOCH`
/// if set, else the time of the last commit, else 0. The same tree gives the same bytes.
pub fn source_date_epoch() -> u64 {
    if let Some(t) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return t;
    }
    Command::new("git")
        .current_dir(crate::esxi::workspace_root())
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// One tar entry: a directory (`data` None, path ending in `/`) or a regular file.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub data: Option<Vec<u8>>,
}

impl Entry {
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
        Entry {
            path: path.to_owned(),
            mode,
            data: Some(data.into()),
        }
    }
}

/// The files plus every parent directory (mode 0755) they need, sorted by path, each path
/// prefixed with `prefix` (`""` for a VIB payload, `"./"` for a .deb, which also gets `./`).
pub fn with_parents(files: &[Entry], prefix: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    if !prefix.is_empty() {
        dirs.insert(prefix.to_owned());
    }
    for f in files {
        let mut end = 0;
        while let Some(i) = f.path[end..].find('/') {
            end += i + 1;
            dirs.insert(format!("{prefix}{}", &f.path[..end]));
        }
        let mut f = f.clone();
        f.path = format!("{prefix}{}", f.path);
        out.push(f);
    }
    out.extend(dirs.into_iter().map(|path| Entry {
        path,
        mode: 0o755,
        data: None,
    }));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// A ustar archive of `entries` in the order given: owner root:root (0:0), time `mtime`.
/// Paths are written exactly as given (the tar crate's `set_path` would drop a leading `./`,
/// which .deb archives conventionally keep), so they must fit the 100-byte name field.
pub fn tar(entries: &[Entry], mtime: u64) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let name = e.path.as_bytes();
        ensure!(
            !name.is_empty() && name.len() < 100 && e.path.is_ascii(),
            "tar path {} must be 1 to 99 ASCII bytes",
            e.path
        );
        h.as_ustar_mut().expect("ustar header").name[..name.len()].copy_from_slice(name);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        h.set_mtime(mtime);
        let data: &[u8] = match &e.data {
            Some(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                data
            }
            None => {
                ensure!(e.path.ends_with('/'), "directory {} must end in /", e.path);
                h.set_entry_type(tar::EntryType::Directory);
                &[]
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data)
            .with_context(|| format!("adding {} to a tar archive", e.path))?;
    }
    Ok(b.into_inner()?)
}

/// gzip with no name and the header time `mtime`.
pub fn gzip(data: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(mtime as u32)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

pub fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .context("gunzip")?;
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref())
}

/// `&`, `<`, `>`, `"` and `'` escaped for XML text and attributes.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `(year, month, day, hour, minute, second)` in UTC for a Unix time.
pub fn utc(t: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

/// `2026-11-25T08:20:50+00:00`.
pub fn iso8601(t: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00")
}

/// `file` without its debug sections (`strip --strip-debug`, binutils): the symbol table
/// stays. A package is smaller by about 80% (the release profile keeps line tables).
pub fn strip_debug(file: &Path, scratch: &Path) -> Result<Vec<u8>> {
    std::fs::create_dir_all(scratch)?;
    let name = file.file_name().context("a file name")?;
    let out = scratch.join(name);
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(file)
        .status()
        .context("running strip (binutils)")?;
    ensure!(
        status.success(),
        "strip --strip-debug {} failed",
        file.display()
    );
    std::fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

/// Where the packages go: `target/<what>` (or `$CARGO_TARGET_DIR/<what>`).
pub fn out_dir(what: &str) -> Result<PathBuf> {
    let dir = target_dir().join(what);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The cargo target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
/// `cargo build --release --locked -p P...` into [`target_dir`], from the workspace root;
/// returns the release directory.
pub fn release_build(packages: &[&str]) -> Result<PathBuf> {
    let root = crate::esxi::workspace_root();
    let target = target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "--locked"])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "cargo build --release failed");
    Ok(target.join("release"))
}

pub fn target_dir() -> PathBuf {
    let root = crate::esxi::workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

/// A fresh scratch directory for one test, removed when dropped.
#[cfg(test)]
pub struct TestDir(PathBuf);

#[cfg(test)]
impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
pub fn test_dir(name: &str) -> TestDir {
    let dir = std::env::temp_dir().join(format!("xtask-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TestDir(dir)
}

/// A test that cannot check something because a tool is missing: says so, and under
/// `OPENVAAI_REQUIRE_FS_TESTS=1` (CI, which installs every tool) fails instead, so that a
/// missing tool cannot turn into a green run that checked nothing.
#[cfg(test)]
pub fn tool_missing(why: &str) {
    if std::env::var_os("OPENVAAI_REQUIRE_FS_TESTS").is_some_and(|v| v == "1") {
        panic!("OPENVAAI_REQUIRE_FS_TESTS=1 but {why}");
    }
    eprintln!("skipping: {why}");
}

/// The text between `<tag ...>` and `</tag>` (first occurrence); for checks, not a parser.
pub fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}");
    let mut from = 0;
    loop {
        let i = from + xml[from..].find(&open)?;
        let after = &xml[i + open.len()..];
        if after.starts_with('>') || after.starts_with(' ') {
            let start = i + open.len() + after.find('>')? + 1;
            let end = start + xml[start..].find(&format!("</{tag}>"))?;
            return Some(&xml[start..end]);
        }
        from = i + 1;
    }
}

/// The value of `name="..."` (or `'...'`) in an element's opening tag text.
pub fn xml_attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    for q in ['"', '\''] {
        let key = format!(" {name}={q}");
        if let Some(i) = tag.find(&key) {
            let rest = &tag[i + key.len()..];
            return rest.find(q).map(|end| &rest[..end]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00+00:00");
        assert_eq!(iso8601(1_795_508_450), "2026-11-24T08:20:50+00:00");
    }

    #[test]
    fn parents_are_added_once_and_sorted() {
        let e = with_parents(
            &[
                Entry::file("usr/lib/x/b", 0o644, "b"),
                Entry::file("etc/a", 0o644, "a"),
                Entry::file("usr/lib/x/a", 0o644, "a"),
            ],
            "./",
        );
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "./",
                "./etc/",
                "./etc/a",
                "./usr/",
                "./usr/lib/",
                "./usr/lib/x/",
                "./usr/lib/x/a",
                "./usr/lib/x/b"
            ]
        );
    }

    #[test]
    fn the_firewall_port_is_the_daemons_default() {
        let src = include_str!("../../crates/daemon/src/config.rs");
        assert!(
            src.contains(&format!("pub const DEFAULT_PORT: u16 = {DAEMON_PORT};")),
            "crates/daemon/src/config.rs DEFAULT_PORT differs from xtask's DAEMON_PORT"
        );
    }

    #[test]
    fn xml_text_finds_the_element_not_a_prefix() {
        let x = "<a><version-x>1</version-x><version>2</version></a>";
        assert_eq!(xml_text(x, "version"), Some("2"));
        assert_eq!(xml_escape("a<b & 'c'"), "a&lt;b &amp; &apos;c&apos;");
    }
}
