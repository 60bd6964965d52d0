//! `openvaai status`: what openvaaid on this NAS is doing (its running and recently finished
//! jobs), from its control socket, which only root can use; `--cancel JOB` stops a job.

use crate::out::{out, outln};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use indicatif::HumanBytes;
use openvaai_control::{JobStatus, Reply, Request, Status};

use crate::exit;

const AFTER_HELP: &str = "\
Run as root on the NAS: openvaaid's control socket is root's (mode 0600) and the daemon
serves root peers only (SO_PEERCRED). States: queued, running, ready (a held clone waiting
for its COMMIT), done, failed. Rates count from when a job left the queue, once it has run a
second (none for lazy clones and dry runs). The last 64 jobs that ended are listed after the
running ones. Job ids are 16 hex digits, as the daemon's and the plugin's logs print them.

Exit status: 0 success (for --cancel: the job ended); 1 the daemon refused the request (no
such job, finished already) or the job did not end within 20 s; 2 the daemon could not be
used from here: not reached (no daemon, wrong socket) or not root, whether the socket's mode
or the daemon refuses.";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// openvaaid's control socket (its [control] socket; by default control.sock in its
    /// state directory).
    #[arg(long, value_name = "PATH", env = "OPENVAAI_CONTROL_SOCKET",
          default_value = openvaai_control::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print JSON instead of a table (with --watch: one JSON line per refresh).
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECS seconds (default 2) until Ctrl-C, like top.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2",
          conflicts_with = "cancel")]
    pub watch: Option<f64>,
    /// Cancel job JOB (its id, or a prefix of it that one job alone has): it ends CANCELLED
    /// for its client and leaves nothing behind.
    #[arg(long, value_name = "JOB")]
    pub cancel: Option<String>,
}

pub fn run(a: &Args) -> Result<u8> {
    if let Some(job) = &a.cancel {
        return cancel(a, job);
    }
    let Some(every) = a.watch else {
        let Some(st) = fetch(&a.socket)? else {
            return Ok(refused());
        };
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&st)?);
        } else {
            out!("{}", render(&st));
        }
        return Ok(exit::OK);
    };
    let every = Duration::from_secs_f64(every.max(0.1));
    let screen = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let Some(st) = fetch(&a.socket)? else {
            return Ok(refused());
        };
        if a.json {
            outln!("{}", serde_json::to_string(&st)?);
        } else if screen {
            // Home and clear, then the table: a refreshing screen, as top does.
            out!("\x1b[H\x1b[2J{}", render(&st));
        } else {
            // Into a pipe or a file: the tables one after another, a blank line between.
            outln!("{}", render(&st));
        }
        std::thread::sleep(every);
    }
}

/// The daemon's status; `None` when it refused (the reason printed).
fn fetch(socket: &Path) -> Result<Option<Status>> {
    match ask(socket, &Request::Status)? {
        Reply::Status(st) => Ok(Some(st)),
        Reply::Error { message } => {
            eprintln!("openvaai: openvaaid refused: {message}");
            Ok(None)
        }

        Reply::Cancelled(_) => anyhow::bail!("openvaaid answered a status with a cancel"),
    }
}

fn cancel(a: &Args, job: &str) -> Result<u8> {
    let reply = ask(
        &a.socket,
        &Request::Cancel {
            job: job.to_owned(),
        },
    )?;
    let j = match reply {
        Reply::Cancelled(j) => j,
        Reply::Error { message } => {
            eprintln!("openvaai: openvaaid refused the cancel: {message}");
            return Ok(refused());
        }
        Reply::Status(_) => anyhow::bail!("openvaaid answered a cancel with a status"),
    };
    let ended = j.result.is_some();
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&j)?);
    } else if ended {
        outln!(
            "job {} ended {}: {}",
            j.id,
            j.result.as_deref().unwrap_or(""),
            what(&j)
        );
    } else {
        outln!(
            "job {} is {} still, cleaning up: {}",
            j.id,
            j.state,
            what(&j)
        );
    }
    Ok(if ended { exit::OK } else { exit::FAILED })
}

/// The exit code of a refusal: 2 when this user is not root (the daemon serves only root,
/// and says so: the same code as when the socket's mode keeps it out), 1 otherwise.
fn refused() -> u8 {
    if rustix::process::geteuid().is_root() {
        exit::FAILED
    } else {
        exit::USAGE
    }
}

/// One request, its failure to connect explained.
fn ask(socket: &Path, r: &Request) -> Result<Reply> {
    openvaai_control::request(socket, r).map_err(|e| {
        let hint = match &e {
            openvaai_control::Error::Connect(io) => match io.kind() {
                std::io::ErrorKind::NotFound => {
                    "is openvaaid running? give its control socket with --socket (its \
                     [control] socket, or control.sock in its state directory)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "only root can use openvaaid's control socket: run as root"
                }
                std::io::ErrorKind::ConnectionRefused => {
                    "no openvaaid answers there (it stopped and left its socket)"
                }
                _ => "check --socket",
            },
            _ => "is it the control socket of an openvaaid of this version?",
        };
        anyhow::anyhow!("control socket {}: {e}\n  hint: {hint}", socket.display())
    })
}

/// The status as text: a header, then one job per row, its paths under it.
pub fn render(st: &Status) -> String {
    let mut out = format!(
        "openvaaid {} (pid {}), up {}; exports: {}\n{} running, {} queued\n",
        st.version,
        st.pid,
        age(st.uptime_seconds),
        st.exports.join(", "),
        st.jobs_running,
        st.jobs_queued
    );
    if st.jobs.is_empty() {
        out.push_str("no jobs\n");
        return out;
    }
    // Each column as wide as its widest cell, so that long sizes and addresses keep the
    // table aligned.
    let rows: Vec<[String; 8]> = st
        .jobs
        .iter()
        .map(|j| {
            let progress = format!(
                "{} / {}{}",
                HumanBytes(j.done_bytes),
                HumanBytes(j.total_bytes),
                match (j.done_bytes * 100).checked_div(j.total_bytes) {
                    Some(p) => format!(" {p:>3}%"),
                    None => String::new(),
                }
            );
            let rate = j
                .rate_bytes_per_second
                .map(|r| format!("{}/s", HumanBytes(r as u64)))
                .unwrap_or_else(|| "-".into());
            [
                j.id.clone(),
                j.state.clone(),
                j.primitive.clone(),
                progress,
                rate,
                age(j.age_seconds),
                j.client.clone(),
                j.result.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let head = [
        "job",
        "state",
        "primitive",
        "done / total",
        "rate",
        "age",
        "client",
        "result",
    ]
    .map(String::from);
    let mut width = head.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Sizes, rates and ages to the right; the rest to the left; the last column unpadded.
    let line = |cells: &[String; 8]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            match i {
                7 => l.push_str(cell),
                3..=5 => l.push_str(&format!("{cell:>w$}  ")),
                _ => l.push_str(&format!("{cell:<w$}  ")),
            }
        }
        l.push('\n');
        l
    };
    out.push('\n');
    out.push_str(&line(&head));
    for (r, j) in rows.iter().zip(&st.jobs) {
        out.push_str(&line(r));
        out.push_str(&format!("    {}\n", what(j)));
    }
    out
}

/// `source -> destination`, or the file reserved.
fn what(j: &JobStatus) -> String {
    match &j.source {
        Some(src) => format!("{src} -> {}", j.destination),
        None => j.destination.clone(),
    }
}

/// `42s`, `3m07s`, `2h05m`.
fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_rows_read_well() {
        assert_eq!(age(5.4), "5s");
        assert_eq!(age(187.0), "3m07s");
        assert_eq!(age(7500.0), "2h05m");
        let st = Status {
            version: "0.1.0".into(),
            pid: 7,
            uptime_seconds: 61.0,
            exports: vec!["/srv/a".into()],
            jobs_running: 1,
            jobs_queued: 0,
            jobs: vec![JobStatus {
                id: "00000000000000ab".into(),
                state: "running".into(),
                export: "/srv/a".into(),
                primitive: "clone_full".into(),
                source: Some("/srv/a:x.vmdk".into()),
                destination: "/srv/a:y.vmdk".into(),
                client: "127.0.0.1:5000".into(),
                done_bytes: 1 << 20,
                total_bytes: 4 << 20,
                rate_bytes_per_second: Some(1048576.0),
                age_seconds: 2.0,
                duration_seconds: None,
                result: None,
            }],
        };
        let text = render(&st);
        assert!(text.contains("up 1m01s; exports: /srv/a"), "{text}");
        assert!(
            text.contains("00000000000000ab  running  clone_full"),
            "{text}"
        );
        assert!(text.contains(" 25%"), "{text}");
        assert!(text.contains("1.00 MiB/s"), "{text}");
        assert!(text.contains("/srv/a:x.vmdk -> /srv/a:y.vmdk"), "{text}");

        // A long size in one row moves every row's later columns alike.
        let mut long = st.clone();
        let mut big = long.jobs[0].clone();
        big.id = "00000000000000cd".into();
        (big.done_bytes, big.total_bytes) = (1023 << 30, 1023 << 30);
        long.jobs.push(big);
        let text = render(&long);
        let at = |l: &str| l.find("127.0.0.1:5000").or_else(|| l.find("client"));
        let table: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("job ") || l.starts_with("0000"))
            .collect();
        assert_eq!(table.len(), 3, "{text}");
        assert!(
            table.iter().all(|l| at(l) == at(table[0])),
            "the client column starts at one place:\n{text}"
        );
    }
}
