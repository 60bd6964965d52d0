//! `cargo xtask bench [--quick] [ARGS...]`: builds the benchmark, the plugin and the daemon in
//! release once, together, then runs `openvaai-bench --no-build ARGS` (see docs/benchmarks.md).
//! Building them in one cargo invocation keeps their shared crates compiled once.

use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn run(args: &[String]) -> Result<()> {
    let root = crate::esxi::workspace_root();
    let release =
        crate::pkg::release_build(&["openvaai-bench", "openvaai-plugin", "openvaai-daemon"])?;
    let bench = release.join("openvaai-bench");
    let status = Command::new(&bench)
        .current_dir(&root)
        .arg("--no-build")
        .args(args)
        .status()
        .with_context(|| format!("running {}", bench.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => bail!("openvaai-bench exited with {code}"),
        None => bail!("openvaai-bench was killed"),
    }
}
