//! Build tasks that are more than one cargo command.
//!
//! - `cargo xtask esxi`: the plugin built for ESXi (glibc 2.17 symbols at most), checked, and
//!   written to `target/esxi/libopenvaai.so`.
//! - `cargo xtask vib`: that build packaged for ESXi 7.0 and 8.0 as
//!   `target/vib/openvaai-<version>.{700,800}.vib` and the offline bundles
//!   `target/vib/openvaai-<version>.{700,800}-offline-bundle.zip`, all checked.
//! - `cargo xtask deb`: the portable daemon, CLI and Linux plugin as
//!   `target/deb/openvaai_<version>_amd64.deb`, checked with the real daemon and dpkg-deb.
//! - `cargo xtask portable`: openvaaid, openvaai and the plugin linked against glibc 2.17
//!   symbols, checked, with their man pages and completions, in `target/portable/`: what the
//!   .deb, the RPM and the image ship.
//! - `cargo xtask rpm`: the same contents as the .deb as
//!   `target/rpm/openvaai-<version>-<release>.x86_64.rpm` (with rpmbuild).
//! - `cargo xtask oci`: the container image, an OCI layout in `target/oci/openvaai/` and a
//!   `docker load`-able `target/oci/openvaai-<version>.tar`.
//! - `cargo xtask check-glibc FILE...`: fails when a binary needs a glibc symbol newer than
//!   2.17.
//! - `cargo xtask check-vib FILE...`: takes VIBs and offline bundles apart and checks every
//!   size, checksum, path and mode, and the packaged plugin's glibc versions.
//! - `cargo xtask bench [--quick] [ARGS...]`: the benchmarks of docs/benchmarks.md, in
//!   release, through the real plugin and daemon (`openvaai-bench`).

mod ar;
mod bench;
mod deb;
mod esxi;
mod glibc;
mod manual;
mod oci;
mod pkg;
mod portable;
mod rpm;
mod vib;
mod zip;

use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask esxi | portable | vib | deb | rpm | oci | bench [--quick] | check-glibc FILE... | check-vib FILE...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("esxi") => esxi::run(),
        Some("vib") => vib::run(),
        Some("deb") => deb::run(),
        Some("rpm") => rpm::run(),
        Some("oci") => oci::run(),
        Some("portable") => portable::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("check-glibc") if args.len() > 1 => glibc::check_files(&args[1..]),
        Some("check-vib") if args.len() > 1 => vib::check_files(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
