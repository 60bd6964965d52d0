//! `openvaai`: loads a disklib NAS plugin exactly as ESXi does and drives it, for admins
//! (diagnostics, single offloads), for the demo and benchmarks, and as the project's test host.
#![deny(unsafe_code)]

mod cmd;
mod fail;
mod out;
mod progress;
mod target;
mod vmdk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, chosen in one place.
pub mod exit {
    use openvaai_abi::{vix, VixError};

    /// Everything worked.
    pub const OK: u8 = 0;
    /// The plugin or the NAS refused or failed the operation.
    pub const FAILED: u8 = 1;
    /// Bad usage or an environment problem (no plugin library, a missing file).
    pub const USAGE: u8 = 2;
    /// The operation was cancelled (Ctrl-C) and cleaned up.
    pub const CANCELLED: u8 = 3;

    pub fn of_vix(status: VixError) -> u8 {
        match status {
            vix::OK => OK,
            vix::E_CANCELLED => CANCELLED,
            _ => FAILED,
        }
    }
}

const AFTER_HELP: &str = "\
Exit status: 0 success, 1 the operation failed (the VixError is printed), 2 usage or
environment error, 3 cancelled (Ctrl-C; nothing is left behind).

A datastore is given by its local mount point (-d DIR) with --nas-ip and --nas-path as ESXi
sees them (defaults suit a shell on the NAS itself), or by a name from --config.

Start with:  openvaai demo
Then:        openvaai check -d /path/of/export";

#[derive(Parser)]
#[command(
    name = "openvaai",
    version,
    about = "Drive the openvaai NAS plugin the way ESXi does: check, clone, reserve, statx",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole offload story on a scratch datastore (no set-up needed).
    Demo(cmd::demo::Args),
    /// Check a datastore as ESXi will use it: "NAS VAAI Supported: YES/NO", and why.
    Check(cmd::check::Args),
    /// Clone a file through the plugin (CLONEFILE): full, thin or lazy.
    Clone(cmd::clone::Args),
    /// Clone a VMDK (descriptor and flat extents), like `vmkfstools -i` on NFS.
    CloneVmdk(cmd::clone_vmdk::Args),
    /// Reserve space for a thick disk (RESVSPACE).
    Reserve(cmd::reserve::Args),
    /// Extended statistics of files (STATX), like `vmkfstools --extendedstatinfo`.
    Statx(cmd::statx::Args),
    /// Load a plugin library as disklib does and print its plugin table.
    PluginInfo(cmd::plugin_info::Args),
    /// On the NAS, as root: openvaaid's running and recent jobs; --cancel JOB stops one.
    Status(cmd::status::Args),
}

fn main() -> ExitCode {
    // OPENVAAI_WRITE_MANUAL=DIR: the man page and completions, for the packages.
    if let Some(code) = openvaai_manual::write_if_asked(<Cli as clap::CommandFactory>::command()) {
        return code;
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Clone(a) => cmd::clone::run(a),
        Command::CloneVmdk(a) => cmd::clone_vmdk::run(a),
        Command::Reserve(a) => cmd::reserve::run(a),
        Command::Statx(a) => cmd::statx::run(a),
        Command::PluginInfo(a) => cmd::plugin_info::run(a),
        Command::Status(a) => cmd::status::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // A reader that went away (`| head`) is no failure of the command: quiet, 0.
        Err(err) if out::is_broken_pipe(&err) => ExitCode::from(exit::OK),
        Err(err) => {
            eprintln!("openvaai: {err:#}");
            let code = match err.downcast_ref::<fail::Failed>() {
                Some(f) => exit::of_vix(f.vix),
                None => exit::USAGE,
            };
            ExitCode::from(code)
        }
    }
}
