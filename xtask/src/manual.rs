//! The man pages and shell completions of the portable build, as package entries.

use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::pkg::Entry;

/// Where a distribution keeps zsh completions (bash's and fish's are the same everywhere).
#[derive(Clone, Copy)]
pub enum Layout {
    /// Debian, Ubuntu, and the image: `/usr/share/zsh/vendor-completions`.
    Debian,
    /// RHEL, Rocky, Alma, Fedora: `/usr/share/zsh/site-functions`.
    RedHat,
}

/// Read from a directory written by `OPENVAAI_WRITE_MANUAL` (crates/manual).
#[derive(Clone, Debug, Default)]
pub struct Manual {
    /// `(file name, roff)`: `openvaai.1`, `openvaai-check.1`, ...
    pub pages: Vec<(String, Vec<u8>)>,
    /// `(shell, file name, script)`.
    pub completions: Vec<(String, String, Vec<u8>)>,
}

impl Manual {
    pub fn read(dir: &Path) -> Result<Manual> {
        let list = |d: &Path| -> Result<Vec<(String, Vec<u8>)>> {
            let mut v = Vec::new();
            for e in std::fs::read_dir(d).with_context(|| format!("reading {}", d.display()))? {
                let e = e?;
                let name = e
                    .file_name()
                    .into_string()
                    .map_err(|n| anyhow::anyhow!("{n:?}"))?;
                v.push((name, std::fs::read(e.path())?));
            }
            v.sort();
            Ok(v)
        };
        let pages = list(&dir.join("man/man1"))?;
        let mut completions = Vec::new();
        for shell in ["bash", "zsh", "fish"] {
            for (name, data) in list(&dir.join("completions").join(shell))? {
                completions.push((shell.to_owned(), name, data));
            }
        }
        for want in ["openvaai.1", "openvaaid.1", "openvaai-check.1"] {
            ensure!(
                pages.iter().any(|p| p.0 == want),
                "no man page {want} in {}",
                dir.display()
            );
        }
        ensure!(
            completions.len() == 6,
            "expected 6 completion scripts in {}",
            dir.display()
        );
        Ok(Manual { pages, completions })
    }

    /// The files to install (paths without a leading `/`); man pages gzipped (deterministic).
    pub fn entries(&self, layout: Layout, mtime: u64) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (name, roff) in &self.pages {
            out.push(Entry::file(
                &format!("usr/share/man/man1/{name}.gz"),
                0o644,
                crate::pkg::gzip(roff, mtime)?,
            ));
        }
        for (shell, name, script) in &self.completions {
            let dir = match (shell.as_str(), layout) {
                ("bash", _) => "usr/share/bash-completion/completions",
                ("zsh", Layout::Debian) => "usr/share/zsh/vendor-completions",
                ("zsh", Layout::RedHat) => "usr/share/zsh/site-functions",
                _ => "usr/share/fish/vendor_completions.d",
            };
            out.push(Entry::file(&format!("{dir}/{name}"), 0o644, script.clone()));
        }
        Ok(out)
    }
}

#[cfg(test)]
pub fn sample() -> Manual {
    Manual {
        pages: vec![("openvaai.1".into(), b".TH openvaai 1\n".to_vec())],
        completions: vec![(
            "zsh".into(),
            "_openvaai".into(),
            b"#compdef openvaai\n".to_vec(),
        )],
    }
}
