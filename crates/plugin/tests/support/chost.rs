//! Builds tests/c/host.c, the disklib stand-in written in C, against the project's header.

use std::path::{Path, PathBuf};

/// Compiles the C host into `out` and returns its path.
pub fn build(out: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = manifest.join("../abi/include");
    let exe = out.join("host");
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(0)
        .target("x86_64-unknown-linux-gnu")
        .host("x86_64-unknown-linux-gnu")
        .get_compiler();
    let status = compiler
        .to_command()
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(&include)
        .arg(manifest.join("tests/c/host.c"))
        .arg("-ldl")
        .status()
        .expect("running the C compiler");
    assert!(status.success(), "tests/c/host.c does not compile");
    exe
}
