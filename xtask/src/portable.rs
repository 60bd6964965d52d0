//! `cargo xtask portable`: openvaaid, openvaai and the Linux plugin linked against glibc 2.17
//! symbols (with zig, as the ESXi plugin is), so that one build runs on every NAS distribution
//! from RHEL/CentOS 7 on; checked with `objdump -T` like the plugin. The .deb, the RPM and
//! the container image all ship this build, with the man pages and completions made from it.
//!
//! Why glibc 2.17 rather than static musl: `openvaai` loads the plugin with `dlopen` exactly as
//! ESXi's disklib does, which a static binary cannot; the toolchain (zig) is the one the ESXi
//! build already needs; and no other Rust target has to be installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::pkg;

/// The portable build, checked, with its manual.
pub struct Portable {
    pub openvaaid: PathBuf,
    pub openvaai: PathBuf,
    pub plugin: PathBuf,
    /// `man/man1/*.1` and `completions/{bash,zsh,fish}/*` (see crates/manual).
    pub manual: PathBuf,
}

impl Portable {
    pub fn binaries(&self) -> [&Path; 3] {
        [&self.openvaaid, &self.openvaai, &self.plugin]
    }
}

/// Builds the three with zig, checks their glibc floor, and writes the manual.
pub fn build() -> Result<Portable> {
    let release =
        crate::esxi::zig_release(&["openvaai-daemon", "openvaai-cli", "openvaai-plugin"])?;
    let p = Portable {
        openvaaid: release.join("openvaaid"),
        openvaai: release.join("openvaai"),
        plugin: release.join("libopenvaai.so"),
        manual: pkg::out_dir("portable")?.join("manual"),
    };
    for b in p.binaries() {
        let (ma, mi, pa) = crate::glibc::check(b)?;
        println!(
            "{}: newest glibc symbol GLIBC_{ma}.{mi}.{pa} (limit {}.{})",
            b.display(),
            crate::glibc::MAX_GLIBC.0,
            crate::glibc::MAX_GLIBC.1
        );
    }
    write_manual(&p)?;
    Ok(p)
}

/// Runs both programs with `OPENVAAI_WRITE_MANUAL` into a fresh `p.manual`.
fn write_manual(p: &Portable) -> Result<()> {
    if p.manual.exists() {
        std::fs::remove_dir_all(&p.manual)?;
    }
    for bin in [&p.openvaaid, &p.openvaai] {
        let st = Command::new(bin)
            .env("OPENVAAI_WRITE_MANUAL", &p.manual)
            .status()
            .with_context(|| format!("running {}", bin.display()))?;
        ensure!(st.success(), "{} could not write its manual", bin.display());
    }
    Ok(())
}

/// `cargo xtask portable`: the build, copied to `target/portable/`.
pub fn run() -> Result<()> {
    let p = build()?;
    let out = pkg::out_dir("portable")?;
    for b in p.binaries() {
        let name = b.file_name().context("file name")?;
        std::fs::copy(b, out.join(name))?;
    }
    println!(
        "{}: openvaaid, openvaai, libopenvaai.so, manual/",
        out.display()
    );
    Ok(())
}
