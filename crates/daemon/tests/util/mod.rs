//! Shared helpers: a real `openvaaid` on loopback with temp-dir exports, and a TLS client
//! that pins the certificate from the access file, as the plugin does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A running `openvaaid` (testkit's runner) on temp-dir exports, killed on drop.
pub struct Daemon {
    inner: openvaai_testkit::Daemon,
    pub exports: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Daemon {
    type Target = openvaai_testkit::Daemon;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Daemon {
    /// One plain export, default limits.
    pub fn start() -> Daemon {
        Daemon::start_with("", &[ExportSpec::plain()])
    }

    /// `limits` is the body of the `[limits]` table.
    pub fn start_with(limits: &str, exports: &[ExportSpec]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut b = openvaai_testkit::Daemon::builder().limits(limits);
        let mut paths = Vec::new();
        for (i, e) in exports.iter().enumerate() {
            let p = dir.path().join(format!("export{i}"));
            std::fs::create_dir(&p).unwrap();
            b = b.export_with(&p, &e.extra);
            paths.push(p);
        }
        Daemon {
            inner: b.start(),
            exports: paths,
            _dir: dir,
        }
    }

    /// The name clients use for export `i` (its path, unless configured otherwise).
    pub fn name(&self, i: usize) -> String {
        self.exports[i].to_str().unwrap().to_owned()
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

    /// Stops the daemon cleanly (asserting exit 0).
    pub fn stop(&mut self) {
        let st = self.terminate(Duration::from_secs(10)).expect("no exit");
        assert!(st.success(), "exit status {st}");
    }
}

pub use openvaai_testkit::access_path;

/// The pinned client configuration the plugin uses.
pub fn client_config(pin: [u8; 32]) -> Arc<rustls::ClientConfig> {
    openvaai_client::tls::pinned_config(pin).expect("a TLS client configuration")
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
