//! A real `openvaaid` on loopback for tests: started on the exports a test gives (a
//! loop-mounted filesystem, a temp directory), ready once it has written every access file,
//! stopped, frozen, killed and restarted on demand, and killed on drop. It can also listen
//! elsewhere and run under a wrapper that execs it (`nsenter --net=...`: in another network
//! namespace).

use std::ffi::{OsStr, OsString};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use openvaai_proto::access::AccessFile;

/// The access file of an export root.
pub fn access_path(export: &Path) -> PathBuf {
    export
        .join(openvaai_proto::access::ACCESS_DIR)
        .join(openvaai_proto::access::ACCESS_FILE)
}

/// The names in the export directory `dir`, sorted, without the daemon's own directory of
/// access files.
pub fn export_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != openvaai_proto::access::ACCESS_DIR)
        .collect();
    names.sort();
    names
}

/// What the daemon logs once it serves, every access file written.
const READY: &str = "openvaaid ready";

/// The address a daemon listens on unless told otherwise (port 0: one the kernel picks).
const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// What to start: exports (with extra TOML lines for their `[[export]]` tables), limits, the
/// listening address and a wrapper.
#[derive(Default)]
pub struct DaemonBuilder {
    exports: Vec<(PathBuf, String)>,
    limits: String,
    tables: String,
    listen: Option<SocketAddr>,
    wrap: Vec<OsString>,
    /// Log as the daemon does by default (no `RUST_LOG`), not at `debug`.
    default_log: bool,
}

impl DaemonBuilder {
    /// Logs at the daemon's own default level (`RUST_LOG` unset), as users run it, instead
    /// of `debug` (what tests read in its log): for measurements.
    pub fn default_log_level(mut self) -> DaemonBuilder {
        self.default_log = true;
        self
    }

    /// Serves `path`, named by its path.
    pub fn export(mut self, path: &Path) -> DaemonBuilder {
        self.exports.push((path.to_owned(), String::new()));
        self
    }

    /// Serves `path` with extra lines for its table (`read_only = true`, ...).
    pub fn export_with(mut self, path: &Path, extra: &str) -> DaemonBuilder {
        self.exports.push((path.to_owned(), extra.to_owned()));
        self
    }

    /// The body of the `[limits]` table (`lease_secs = 2`, ...).
    pub fn limits(mut self, limits: &str) -> DaemonBuilder {
        self.limits = limits.to_owned();
        self
    }

    /// More tables for the config file (`[metrics]\nlisten = "127.0.0.1:0"`, ...).
    pub fn tables(mut self, toml: &str) -> DaemonBuilder {
        self.tables.push_str(toml);
        self.tables.push('\n');
        self
    }

    /// Listens on `addr` (port 0: one the kernel picks) instead of 127.0.0.1:0.
    pub fn listen(mut self, addr: SocketAddr) -> DaemonBuilder {
        self.listen = Some(addr);
        self
    }

    /// Runs `prefix... openvaaid --config FILE` instead of `openvaaid --config FILE`. The
    /// wrapper must exec the daemon in its own process (as `nsenter --net=FILE` does), so
    /// that the signals and the kill on drop reach the daemon.
    pub fn wrap<S: AsRef<OsStr>>(mut self, prefix: &[S]) -> DaemonBuilder {
        self.wrap = prefix.iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Starts it; panics if it does not start (with its log).
    pub fn start(self) -> Daemon {
        match self.try_start() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts it; an error (with its log) if it exits or is not ready within 20 s.
    pub fn try_start(self) -> Result<Daemon, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("daemon temp dir: {e}"))?;
        let listen = self.listen.unwrap_or(LOOPBACK);
        let mut toml = format!(
            "listen = [\"{listen}\"]\nstate_dir = \"{}\"\n[limits]\n{}\n",
            dir.path().join("state").display(),
            self.limits
        );
        toml.push_str(&self.tables);
        for (path, extra) in &self.exports {
            toml.push_str(&format!(
                "[[export]]\npath = \"{}\"\n{extra}\n",
                path.display()
            ));
        }
        let config = dir.path().join("openvaaid.toml");
        std::fs::write(&config, toml).map_err(|e| format!("writing the daemon config: {e}"))?;
        let mut d = Daemon {
            child: None,
            exports: self.exports.into_iter().map(|(p, _)| p).collect(),
            log: dir.path().join("openvaaid.log"),
            config,
            listen,
            wrap: self.wrap,
            default_log: self.default_log,
            _dir: dir,
        };
        d.try_spawn()?;
        Ok(d)
    }
}

/// A running `openvaaid`, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub exports: Vec<PathBuf>,
    pub log: PathBuf,
    config: PathBuf,
    /// The `listen` entry of the config, as first written (port 0 by default); clients
    /// connect to its address.
    listen: SocketAddr,
    /// The wrapper's argv before the daemon's (empty: none).
    wrap: Vec<OsString>,
    /// `RUST_LOG` unset rather than `debug`.
    default_log: bool,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// One export, default limits.
    pub fn serve(export: &Path) -> Daemon {
        Daemon::builder().export(export).start()
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        // Ready when the log says so once more than before (a restart appends to the same
        // log). Nothing in the exports is touched: a test may be watching what the daemon
        // alone writes there.
        let ready_before = self.log_text().matches(READY).count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("daemon log: {e}"))?;
        let mut cmd = match self.wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(crate::daemon_bin());
                c
            }
            None => Command::new(crate::daemon_bin()),
        };
        cmd.arg("--config").arg(&self.config);
        if self.default_log {
            cmd.env_remove("RUST_LOG");
        } else {
            cmd.env("RUST_LOG", "debug");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning openvaaid: {e}"))?;
        self.child = Some(child);
        // The daemon says it is ready once every access file is written.
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log_text().matches(READY).count() <= ready_before {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "openvaaid exited at start ({st}):\n{}",
                    self.log_text()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("openvaaid did not start:\n{}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The access file of export `i`.
    pub fn access(&self, i: usize) -> AccessFile {
        let bytes = std::fs::read(access_path(&self.exports[i])).expect("reading access file");
        AccessFile::parse(&bytes).expect("parsing access file")
    }

    pub fn port(&self) -> u16 {
        self.access(0).port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.listen.ip(), self.port())
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// SIGSTOP: the daemon stops answering, its sockets stay open. Returns once the kernel
    /// reports it stopped (the signal is delivered asynchronously).
    pub fn freeze(&self) {
        self.signal(rustix::process::Signal::STOP);
        let tasks = format!("/proc/{}/task", self.pid());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            // Every thread: "TID (comm) S ...", the state after the name's closing parenthesis.
            let stopped = std::fs::read_dir(&tasks).is_ok_and(|dir| {
                dir.flatten().all(|t| {
                    std::fs::read_to_string(t.path().join("stat"))
                        .ok()
                        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('T')))
                        .unwrap_or(true)
                })
            });
            if stopped {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("openvaaid did not stop after SIGSTOP");
    }

    /// SIGCONT after [`Daemon::freeze`].
    pub fn thaw(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal(rustix::process::Signal::TERM);
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts it again on the same config, state, port and exports (after a stop or a
    /// kill, or killing it first). The certificate stays; the secrets are new.
    pub fn restart(&mut self) {
        let port = self.port();
        self.kill();
        let config = std::fs::read_to_string(&self.config).expect("daemon config");
        let fixed = SocketAddr::new(self.listen.ip(), port);
        // The first line only: `tables` may hold other addresses (a metrics endpoint's).
        let config = config.replacen(&format!("\"{}\"", self.listen), &format!("\"{fixed}\""), 1);
        std::fs::write(&self.config, config).expect("daemon config");
        self.spawn();
    }

    /// The daemon's state directory (certificate and key).
    pub fn state_dir(&self) -> PathBuf {
        self._dir.path().join("state")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `within` for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> bool {
        wait_for_line(self, &[needle], within)
    }
}

/// Lines of a daemon log containing every one of `needles`.
pub fn log_lines(log: &str, needles: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// Waits (up to `within`) for a line of `daemon`'s log containing every one of `needles`.
pub fn wait_for_line(daemon: &Daemon, needles: &[&str], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !log_lines(&daemon.log_text(), needles).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen daemon must be woken to die promptly and release its mounts.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.thaw()));
            self.kill();
        }
    }
}
