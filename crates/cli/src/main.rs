//! `openvaai`: loads a disklib NAS plugin exactly as ESXi does and drives it, for admins
//! (diagnostics), for the demo and benchmarks, and as the project's test host.
#![deny(unsafe_code)]

mod plugin_info;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, chosen in one place.
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// The operation ran and failed (the plugin returned an error).
    pub const FAILED: u8 = 1;
    /// Bad usage or an environment problem (no such plugin, cannot load it).
    pub const USAGE: u8 = 2;
}

#[derive(Parser)]
#[command(
    name = "openvaai",
    version,
    about = "Drive a disklib NAS plugin the way ESXi does"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a plugin library as disklib does and print its plugin table.
    PluginInfo(plugin_info::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::PluginInfo(args) => plugin_info::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("openvaai: {err:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
