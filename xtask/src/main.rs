//! Build tasks that are more than one cargo command.
//!
//! - `cargo xtask esxi`: the plugin built for ESXi (glibc 2.17 symbols at most), checked, and
//!   written to `target/esxi/libopenvaai.so`.
//! - `cargo xtask check-glibc FILE...`: fails when a binary needs a glibc symbol newer than
//!   2.17.

mod esxi;
mod glibc;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("esxi") => esxi::run(),
        Some("check-glibc") if args.len() > 1 => glibc::check_files(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask esxi | cargo xtask check-glibc FILE...");
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
