//! openvaaid, the openvaai daemon on the NAS: serves clone, reserve and statx offloads of its
//! exports to the openvaai plugin on ESXi hosts, over ONC RPC and TLS.
#![deny(unsafe_code)]

mod accept;
mod access;
mod activity;
mod cleanup;
mod config;
mod conn;
mod control;
mod control_socket;
mod fsutil;
mod handlers;
mod jobs;
mod loglimit;
mod metrics;
mod net;
mod notify;
mod preflight;
mod resume;
mod server;
mod slots;
mod state;
mod status;
mod sync;
mod throttle;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, Overrides};

const AFTER_HELP: &str = "\
Runs in the foreground, logs to stderr (RUST_LOG), stops cleanly on SIGTERM. Exit status: 0
stopped cleanly, 1 failed (or jobs still running at the shutdown timeout), 2 configuration
error.

Operations: `openvaai status` (as root) lists the running and recent jobs through the control
socket (--control-socket, default control.sock in the state directory; mode 0600, and only
root peers are served) and --cancel JOB stops one. --metrics-listen (or [metrics] listen)
serves Prometheus metrics on GET /metrics. Under systemd (Type=notify) it sends READY=1 once
listening with every access file written, WATCHDOG=1 at half of $WATCHDOG_USEC, and STATUS=
with the job count.

See /usr/share/doc/openvaai/operations.md (docs/operations.md) for every setting.";

/// The openvaai daemon: VAAI-NAS offloads (clone, reserve, statx) for ESXi.
#[derive(Parser, Debug)]
#[command(name = "openvaaid", version, after_help = AFTER_HELP)]
struct Cli {
    /// Address and port to listen on (repeatable; default 0.0.0.0:7443). Port 0 picks a free
    /// port, written into the access files.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// A directory to serve, named by its path (repeatable; added to the config file's).
    #[arg(long, value_name = "DIR")]
    export: Vec<PathBuf>,
    /// Where the certificate and key live (default /var/lib/openvaaid).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// TOML configuration file (see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve Prometheus metrics on GET /metrics at this address (default: off; replaces
    /// the file's [metrics] listen).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// The control socket of `openvaai status`, root only (default: control.sock in the
    /// state directory; replaces the file's [control] socket).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Validate the configuration and the export directories, then exit.
    #[arg(long)]
    check_config: bool,
}

/// How the daemon ended. The exit code is chosen here and only here.
enum Outcome {
    /// Stopped on a signal with every job stopped, or the configuration checked out.
    Clean,
    /// Stopped on a signal, but some jobs did not stop in time.
    JobsLeft,
    /// The configuration is wrong.
    BadConfig(anyhow::Error),
    /// Anything else that stopped it.
    Failed(anyhow::Error),
}

fn main() -> ExitCode {
    // OPENVAAI_WRITE_MANUAL=DIR: the man page and completions, for the packages.
    if let Some(code) = openvaai_manual::write_if_asked(<Cli as clap::CommandFactory>::command()) {
        return code;
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli) {
        Outcome::Clean => ExitCode::SUCCESS,
        Outcome::JobsLeft => {
            tracing::error!("exiting with jobs still running");
            ExitCode::from(1)
        }
        Outcome::BadConfig(e) => {
            tracing::error!("configuration: {e:#}");
            ExitCode::from(2)
        }
        Outcome::Failed(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Outcome {
    let overrides = Overrides {
        config: cli.config,
        listen: cli.listen,
        exports: cli.export,
        state_dir: cli.state_dir,
        metrics_listen: cli.metrics_listen,
        control_socket: cli.control_socket,
    };
    // The same checks for `--check-config` and for the start.
    let config = match Config::load(&overrides).and_then(|c| preflight::check(&c).map(|()| c)) {
        Ok(c) => c,
        Err(e) => return Outcome::BadConfig(e),
    };
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    if cli.check_config {
        for e in &config.exports {
            println!(
                "export {} at {}{}",
                e.name,
                e.path.display(),
                if e.read_only { " (read-only)" } else { "" }
            );
        }
        println!("configuration OK");
        return Outcome::Clean;
    }
    match serve(config) {
        Ok(0) => {
            tracing::info!("stopped");
            Outcome::Clean
        }
        Ok(_) => Outcome::JobsLeft,
        Err(e) => Outcome::Failed(e),
    }
}

fn serve(config: Config) -> anyhow::Result<usize> {
    // Before anything that a supervisor could observe (listeners, access files), so that a
    // SIGTERM from then on always means a clean stop.
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, shutdown.clone()).context("installing signal handlers")?;
    }
    let (shared, listeners) = state::prepare(config, shutdown)?;
    let mut helpers = Vec::new();
    if let Some(l) = listeners.metrics {
        let s = shared.clone();
        helpers.push(
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || metrics::http::serve(l, s))
                .context("starting the metrics thread")?,
        );
    }
    let (s, control) = (shared.clone(), listeners.control);
    helpers.push(
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || control::serve(control, s))
            .context("starting the control socket's thread")?,
    );
    resume::resume_interrupted(&shared);
    let mut notifier = notify::Notifier::from_env();
    notifier.ready(&shared);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "openvaaid ready");
    let left = server::serve(shared, listeners.rpc, &mut notifier);
    for h in helpers {
        let _ = h.join();
    }
    Ok(left)
}
