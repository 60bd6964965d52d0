//! Shared helpers: a real `openvaaid` on loopback with temp-dir exports, and a TLS client
//! that pins the certificate from the access file, as the plugin does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvaai_proto::access::AccessFile;
use openvaai_proto::{Client, JobInfo, JobState, Status};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// One export of a test daemon.
#[derive(Clone)]
pub struct ExportSpec {
    /// Extra TOML lines for its `[[export]]` table.
    pub extra: String,
}

impl ExportSpec {
    pub fn plain() -> ExportSpec {
        ExportSpec {
            extra: String::new(),
        }
    }

    pub fn with(extra: &str) -> ExportSpec {
        ExportSpec {
            extra: extra.to_owned(),
        }
    }
}

/// A running `openvaaid`, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub exports: Vec<PathBuf>,
    pub log: PathBuf,
}

impl Daemon {
    /// One plain export, default limits.
    pub fn start() -> Daemon {
        Daemon::start_with("", &[ExportSpec::plain()])
    }

    /// `limits` is the body of the `[limits]` table.
    pub fn start_with(limits: &str, exports: &[ExportSpec]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut toml = format!(
            "listen = [\"127.0.0.1:0\"]\nstate_dir = \"{}\"\n[limits]\n{limits}\n",
            dir.path().join("state").display()
        );
        for (i, e) in exports.iter().enumerate() {
            let p = dir.path().join(format!("export{i}"));
            std::fs::create_dir(&p).unwrap();
            toml.push_str(&format!(
                "[[export]]\npath = \"{}\"\n{}\n",
                p.display(),
                e.extra
            ));
            paths.push(p);
        }
        let config = dir.path().join("openvaaid.toml");
        std::fs::write(&config, toml).unwrap();
        let mut d = Daemon {
            child: None,
            exports: paths,
            log: dir.path().join("openvaaid.log"),
            dir,
        };
        d.spawn(&config);
        d
    }

    /// Starts the daemon again on the same state dir and exports (after [`Daemon::stop`]).
    pub fn restart(&mut self) {
        for e in &self.exports {
            let _ = std::fs::remove_file(access_path(e));
        }
        let config = self.dir.path().join("openvaaid.toml");
        self.spawn(&config);
    }

    fn spawn(&mut self, config: &Path) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_openvaaid"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready once every access file is there: they are written after the listener binds.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.exports.iter().all(|e| access_path(e).exists()) {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("openvaaid exited at start ({st}):\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "openvaaid did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn access(&self, export: usize) -> AccessFile {
        AccessFile::parse(&std::fs::read(access_path(&self.exports[export])).unwrap()).unwrap()
    }

    /// The name clients use for export `i` (its path, unless configured otherwise).
    pub fn name(&self, i: usize) -> String {
        self.exports[i].to_str().unwrap().to_owned()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.access(0).port))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to `within`) for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.log_text().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A TLS connection that pins the certificate of the access file.
    pub fn tls(&self) -> Tls {
        let pin = self.access(0).cert_sha256;
        let sock = TcpStream::connect(self.addr()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        let conn = ClientConnection::new(
            client_config(pin),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        StreamOwned::new(conn, sock)
    }

    pub fn client(&self) -> Client<Tls> {
        Client::new(self.tls())
    }

    /// A client authenticated for export `i` with its own secret.
    pub fn authed(&self, i: usize) -> Client<Tls> {
        let mut c = self.client();
        let r = c
            .authenticate(&self.name(i), &self.access(i).secret)
            .unwrap();
        assert!(r.is_ok(), "authentication refused: {r:?}");
        c
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends SIGTERM and waits (up to `within`) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let pid = rustix::process::Pid::from_raw(self.pid()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the daemon cleanly (asserting exit 0).
    pub fn stop(&mut self) {
        let st = self.terminate(Duration::from_secs(10)).expect("no exit");
        assert!(st.success(), "exit status {st}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn access_path(export: &Path) -> PathBuf {
    export.join(".openvaai").join("access")
}

/// The pinned client configuration the plugin uses.
pub fn client_config(pin: [u8; 32]) -> Arc<rustls::ClientConfig> {
    openvaai::tls::pinned_config(pin).expect("a TLS client configuration")
}

/// WAITs until the job ends (bounded), returning its final info.
pub fn wait_done<S: Read + Write>(c: &mut Client<S>, job: u64) -> JobInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let i = c.wait(job, u64::MAX, 5000).unwrap().unwrap();
        if i.state != JobState::Running {
            return i;
        }
        assert!(Instant::now() < deadline, "job {job:x} did not end");
    }
}

/// Whether the peer closed the stream (EOF or reset) within `within`.
pub fn closed_within<S: Read>(s: &mut S, within: Duration) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if start.elapsed() > within {
                    return false;
                }
            }
            Err(_) => return true,
        }
        if start.elapsed() > within {
            return false;
        }
    }
}

/// Writes `len` bytes of non-zero data.
pub fn write_data(path: &Path, len: usize) {
    let block: Vec<u8> = (0..65536u32).map(|i| (i % 251 + 1) as u8).collect();
    let mut f = std::fs::File::create(path).unwrap();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
}

/// A sparse file of `len` bytes (no data): cheap to make, slow to clone thick when paced.
pub fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

pub fn status_of(r: Result<u64, Status>) -> Status {
    match r {
        Ok(_) => Status::Ok,
        Err(s) => s,
    }
}
