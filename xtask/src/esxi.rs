//! `cargo xtask esxi`: the plugin as ESXi loads it.
//!
//! ESXi's userworld glibc is 2.17 (6.7 to 8.0), so the library may not need any newer symbol
//! version. It is linked with `cargo zigbuild` against glibc 2.17 stubs (`cargo install
//! cargo-zigbuild` and `pip install ziglang`), then checked with `objdump -T`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// `cargo zigbuild --release` of `packages` against glibc 2.17 (into `target/esxi-build`,
/// shared by the ESXi plugin and the portable NAS build); returns the release directory.
pub fn zig_release(packages: &[&str]) -> Result<PathBuf> {
    let root = workspace_root();
    let build_dir = root.join("target/esxi-build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["zigbuild", "--release", "--locked"])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .arg("--target")
        .arg(format!("{TARGET}.2.17"))
        .arg("--target-dir")
        .arg(&build_dir)
        .status()
        .context("running cargo zigbuild")?;
    if !status.success() {
        bail!(
            "cargo zigbuild failed; it needs `cargo install --locked cargo-zigbuild` and \
             `pip install ziglang`"
        );
    }
    Ok(build_dir.join(TARGET).join("release"))
}

/// Builds, checks and writes `target/esxi/libopenvaai.so`; returns its path.
pub fn build() -> Result<PathBuf> {
    let root = workspace_root();
    let release = zig_release(&["openvaai-plugin"])?;
    let built = release.join("libopenvaai.so");
    let out_dir = root.join("target/esxi");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("libopenvaai.so");
    std::fs::copy(&built, &out)
        .with_context(|| format!("copying {} to {}", built.display(), out.display()))?;

    let (ma, mi, p) = crate::glibc::check(&out)?;
    let dump = crate::glibc::objdump_t(&out)?;
    if !dump
        .lines()
        .any(|l| l.ends_with(" VixDiskLibPlugin_EntryPoint") && !l.contains("*UND*"))
    {
        bail!(
            "{} does not export VixDiskLibPlugin_EntryPoint",
            out.display()
        );
    }
    println!(
        "{}: exports VixDiskLibPlugin_EntryPoint; newest glibc symbol GLIBC_{ma}.{mi}.{p} (limit 2.17)",
        out.display()
    );
    Ok(out)
}

pub fn run() -> Result<()> {
    build().map(|_| ())
}
