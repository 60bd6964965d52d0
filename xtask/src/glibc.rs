//! The newest glibc symbol version a binary needs, read with `objdump -T`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// ESXi 6.7 to 8.0 userworlds provide glibc 2.17: nothing newer may be needed.
pub const MAX_GLIBC: (u32, u32) = (2, 17);

/// Every `GLIBC_x.y[.z]` version named in `objdump -T` output, as (major, minor, patch).
pub fn versions(objdump: &str) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    for word in objdump.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        let Some(v) = word.strip_prefix("GLIBC_") else {
            continue;
        };
        let mut parts = v.split('.').map(|p| p.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            let patch = match parts.next() {
                Some(Ok(p)) => p,
                _ => 0,
            };
            out.push((major, minor, patch));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The dynamic symbols of `file` that need a glibc newer than [`MAX_GLIBC`].
pub fn too_new(objdump: &str) -> Vec<String> {
    objdump
        .lines()
        .filter(|line| {
            versions(line)
                .iter()
                .any(|&(ma, mi, _)| (ma, mi) > MAX_GLIBC)
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

pub fn objdump_t(file: &Path) -> Result<String> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(file)
        .output()
        .context("running objdump (binutils)")?;
    if !out.status.success() {
        bail!(
            "objdump -T {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks one file; returns the newest glibc version it needs.
pub fn check(file: &Path) -> Result<(u32, u32, u32)> {
    let dump = objdump_t(file)?;
    let bad = too_new(&dump);
    if !bad.is_empty() {
        bail!(
            "{} needs glibc symbols newer than {}.{}:\n  {}",
            file.display(),
            MAX_GLIBC.0,
            MAX_GLIBC.1,
            bad.join("\n  ")
        );
    }
    Ok(versions(&dump).last().copied().unwrap_or((0, 0, 0)))
}

pub fn check_files(files: &[String]) -> Result<()> {
    for f in files {
        let (ma, mi, p) = check(Path::new(f))?;
        println!("{f}: newest glibc symbol version GLIBC_{ma}.{mi}.{p} (limit 2.17)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) memcpy
0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.14) memcpy
0000000000000000      DF *UND*  0000000000000000  GLIBC_2.17  clock_gettime
000000000006b620 g    DO .data.rel.ro 0000000000000008  Base        VixDiskLibPlugin_EntryPoint
";

    #[test]
    fn versions_are_read_and_ordered() {
        assert_eq!(versions(DUMP), vec![(2, 2, 5), (2, 14, 0), (2, 17, 0)]);
        assert!(too_new(DUMP).is_empty());
    }

    #[test]
    fn a_symbol_above_2_17_is_named() {
        let dump = format!("{DUMP}0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.34) pthread_key_create\n0000000000000000      DF *UND*  0000000000000000  GLIBC_2.18  __cxa_thread_atexit_impl\n");
        let bad = too_new(&dump);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains("pthread_key_create"));
        assert!(bad[1].contains("__cxa_thread_atexit_impl"));
    }
}
