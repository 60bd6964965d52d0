//! Helpers of the operations tests (metrics, the control socket, systemd notification): a
//! real openvaaid serving an export on a loop-mounted XFS with its metrics endpoint on, the
//! `openvaai` CLI (with the real plugin library) to drive it, and a scraper.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use openvaai_testkit::{Daemon, FsKind, TestFs};

pub const MIB: u64 = 1 << 20;

/// An export on a fresh XFS, served by openvaaid with `[metrics] listen = "127.0.0.1:0"`.
pub struct Served {
    pub daemon: Daemon,
    pub export: PathBuf,
    _fs: TestFs,
}

impl Served {
    /// With the body of the daemon's `[limits]` table; `None` where filesystem tests cannot
    /// run (and `OPENVAAI_REQUIRE_FS_TESTS` is not set).
    pub fn xfs(limits: &str) -> Option<Served> {
        let fs = TestFs::new(FsKind::Xfs, 512 << 20).unwrap()?;
        let export = fs.path().join("ds");
        std::fs::create_dir(&export).unwrap();
        let daemon = Daemon::builder()
            .export(&export)
            .limits(limits)
            .tables(METRICS_ON)
            .start();
        Some(Served {
            daemon,
            export,
            _fs: fs,
        })
    }

    pub fn ds(&self) -> &str {
        self.export.to_str().unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.export.join(name)
    }

    pub fn metrics(&self) -> SocketAddr {
        metrics_addr(&self.daemon)
    }

    pub fn socket(&self) -> PathBuf {
        control_socket(&self.daemon)
    }
}

/// The `[metrics]` table that turns the endpoint on, on a port the kernel picks.
pub const METRICS_ON: &str = "[metrics]\nlisten = \"127.0.0.1:0\"";

/// The metrics endpoint's address, from the daemon's log.
pub fn metrics_addr(d: &Daemon) -> SocketAddr {
    let log = d.log_text();
    // The last start's (a restart appends to the same log).
    let line = log
        .lines()
        .rfind(|l| l.contains("metrics endpoint listening"))
        .unwrap_or_else(|| panic!("no metrics endpoint in the log:\n{log}"));
    let addr = line.split("address=").nth(1).expect("address=").trim();
    addr.parse().unwrap()
}

/// The daemon's control socket (the default: in its state directory).
pub fn control_socket(d: &Daemon) -> PathBuf {
    d.state_dir().join("control.sock")
}

/// `openvaai ARGS` with the real plugin library, waited for.
pub fn openvaai(args: &[&str]) -> Output {
    cli(args).output().unwrap()
}

/// `openvaai ARGS`, not started yet.
pub fn cli(args: &[&str]) -> Command {
    let mut c = Command::new(openvaai_testkit::cli_bin());
    c.args(args)
        .env("OPENVAAI_PLUGIN", openvaai_testkit::plugin_so())
        .stdin(Stdio::null());
    c
}

/// `openvaai clone -d DS SRC DST --json` running in the background.
pub fn clone_in_background(ds: &str, src: &str, dst: &str, extra: &[&str]) -> Child {
    let mut args = vec!["clone", "-d", ds, src, dst, "--json"];
    args.extend_from_slice(extra);
    cli(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A JSON document from a command's stdout.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", text(&o.stdout), text(&o.stderr)))
}

/// Sends `request` to `addr` and reads the whole response (the server closes).
pub fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    text(&out)
}

/// GET /metrics: the body, asserting a 200.
pub fn scrape(addr: SocketAddr) -> String {
    let r = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text\r\n\r\n",
    );
    let (head, body) = r.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(body.ends_with("# EOF\n"), "not whole: {body}");
    body.to_owned()
}

/// The value of the sample `name{labels}` in a scrape, where every `k="v"` in `labels` is
/// among the sample's labels; summed over the samples that match (`None`: none does).
pub fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = line.rsplit_once(' ').unwrap();
        let (n, l) = match series.split_once('{') {
            Some((n, l)) => (n, l),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        {
            *sum.get_or_insert(0.0) += v.parse::<f64>().unwrap();
        }
    }
    sum
}

/// Every sample name in a scrape.
pub fn sample_names(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `f` every 50 ms until it gives `Some`, for at most `within`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names in an export, without the daemon's `.openvaai`.
pub fn listing(dir: &Path) -> Vec<String> {
    openvaai_testkit::export_listing(dir)
}
