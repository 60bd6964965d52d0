//! The full clone against the host-side copy as ESXi does it without offload, every byte read
//! over NFS and written back over NFS, both across an emulated link of stated speed.
//!
//! The NAS is a network namespace of its own (`unshare --net --mount`, `/run` a private
//! tmpfs so that its rpcbind leaves the host's alone) holding nfs-ganesha (userspace, FSAL
//! VFS) with its rpcbind, and a second `openvaaid`; the bench in the root namespace is the
//! ESXi host. A veth pair joins the two (see [`super::link`]), shaped on both ends for each
//! link in turn (netem, or tbf's rate alone on a kernel without netem). Both serve a
//! subdirectory of the bench's export into which the dense source is hard-linked (two daemons
//! cannot serve one export: each writes an access file at its root). The host-side copy is libnfs's `nfs-cp` (userspace) over NFSv3, as
//! ESXi's VAAI-NAS datastores; the offload is a plugin session whose NAS address is the
//! namespace's end of the link. Nothing listens outside the namespace (inside it: on its
//! loopback and its end of the link), and the standard ports there (111 for rpcbind, which
//! NFSv3's MOUNT needs, and 2049) are free whatever runs on the host.
//!
//! NFSv4 is not used: `nfs-cp` (libnfs 4.0) opens the source and the destination as two
//! NFSv4 clients with the same client name, and the second one's SETCLIENTID voids the
//! first's open state (the read fails).

use std::fmt::Write as _;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use openvaai_testkit::Daemon;
use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};

use super::clone::DENSE;
use super::link::{nsenter_net, LinkSpec, Veth, HOST_IP, NAS_IP};
use super::{compare, Bench, Contender};
use crate::client::Session;
use crate::measure::{self, cmd, s, size};
use crate::table::Row;

/// The programs the case needs: the first two make the skip message's packages, the others
/// come with them (rpcbind is a dependency of nfs-ganesha) or with any Debian (util-linux,
/// iproute2, diffutils).
const PROGRAMS: &[&str] = &[
    "ganesha.nfsd",
    "nfs-cp",
    "nfs-ls",
    "rpcbind",
    "unshare",
    "nsenter",
    "ip",
    "tc",
    "cmp",
];

/// The skip message when programs are missing.
const SKIP: &str = "skipped: needs nfs-ganesha, libnfs-utils and iproute2";

const PEER: &str = "host-side copy over NFS: `nfs-cp` (libnfs, NFSv3) from and to nfs-ganesha across the link + `sync FILE`";

/// The subdirectory of the bench's export that the NAS namespace serves.
const SUBDIR: &str = "nfs";
/// The outputs, in the subdirectory.
const CLONE: &str = "full-clone.vmdk";
const COPY: &str = "full-nfs.vmdk";
/// Each output and who made it.
const OUTPUTS: [(&str, &str); 2] = [(CLONE, "the clone"), (COPY, "nfs-cp's copy")];

/// `name` on `PATH` (plus the sbin directories, for rpcbind, ip and tc).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The programs of `PROGRAMS` that are missing.
fn missing() -> Vec<&'static str> {
    PROGRAMS
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect()
}

/// The NAS namespace: nfs-ganesha and its rpcbind in a new network and mount namespace,
/// exporting one directory over NFSv3 to the host's end of the link; stopped (the whole
/// process group, and with it the namespace) on drop.
pub struct Ganesha {
    /// The namespace's first process (`sh`), leader of the process group.
    holder: Child,
    /// Config, log, pid file.
    dir: PathBuf,
    export: PathBuf,
}

impl Ganesha {
    /// Starts the server on `export` and waits until it says it is initialised; clients can
    /// reach it once the link is up ([`Ganesha::wait_client`]).
    pub fn start(export: &Path) -> Result<Ganesha> {
        let dir = std::env::temp_dir().join(format!("openvaai-bench-nfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("ganesha.conf");
        let log = dir.join("ganesha.log");
        std::fs::write(&conf, config(export, &dir))?;
        // In the new namespaces: loopback up, a private /run for rpcbind, rpcbind, then
        // ganesha in the foreground; the shell waits for both.
        let script = format!(
            "set -e\n\
             ip link set lo up\n\
             mount -t tmpfs openvaai-bench-run /run\n\
             rpcbind -f -w &\n\
             i=0; while [ ! -S /run/rpcbind.sock ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n\
             ganesha.nfsd -F -f '{}' -L '{}' -p '{}' -N NIV_EVENT &\n\
             wait\n",
            conf.display(),
            log.display(),
            dir.join("ganesha.pid").display()
        );
        let holder = {
            use std::os::unix::process::CommandExt;
            Command::new("unshare")
                .args(["--net", "--mount", "--", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("sh.err"))?)
                .process_group(0)
                .spawn()
                .context("running unshare")?
        };
        let mut g = Ganesha {
            holder,
            dir,
            export: export.to_owned(),
        };
        g.wait_initialised(&log)
            .with_context(|| format!("starting nfs-ganesha: {}", g.log_tail()))?;
        Ok(g)
    }

    /// The pid of a process in the NAS namespace.
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    fn wait_initialised(&mut self, log: &Path) -> Result<()> {
        let t = Instant::now();
        loop {
            if let Some(st) = self.holder.try_wait()? {
                bail!("it exited ({st})");
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("NFS SERVER INITIALIZED") {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("not ready after 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a client on the host can list the export across the link (MOUNT through
    /// rpcbind, then READDIRPLUS), untimed.
    pub fn wait_client(&mut self) -> Result<()> {
        let t = Instant::now();
        let url = self.url("");
        loop {
            if let Some(st) = self.holder.try_wait()? {
                bail!("nfs-ganesha exited ({st}): {}", self.log_tail());
            }
            match bounded("nfs-ls", &[&url], || 0) {
                Ok(_) => return Ok(()),
                Err(e) if t.elapsed() > Duration::from_secs(10) => {
                    return Err(e.context(format!("listing {url}: {}", self.log_tail())))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The `nfs://` URL of `name` in the export, at the NAS's end of the link (NFSv3).
    pub fn url(&self, name: &str) -> String {
        format!("nfs://{NAS_IP}{}/{name}?version=3", s(&self.export))
    }

    fn log_tail(&self) -> String {
        let mut out = String::new();
        for f in ["sh.err", "ganesha.log"] {
            let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("DBUS") && !l.contains(":EVENT :"))
                .collect();
            for l in &lines[lines.len().saturating_sub(5)..] {
                let _ = write!(out, "\n  {f}: {l}");
            }
        }
        out
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        // The group is the one this process started (process_group(0) above).
        if let Some(pgid) = Pid::from_raw(self.holder.id() as i32) {
            for (sig, wait) in [(Signal::TERM, 20), (Signal::KILL, 5)] {
                let _ = kill_process_group(pgid, sig);
                let t = Instant::now();
                while test_kill_process_group(pgid).is_ok()
                    && t.elapsed() < Duration::from_secs(wait)
                {
                    let _ = self.holder.try_wait();
                    std::thread::sleep(Duration::from_millis(50));
                }
                if test_kill_process_group(pgid).is_err() {
                    break;
                }
            }
        }
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// ganesha's configuration: NFSv3 over TCP only, no NLM/RQUOTA, one export of `export` to the
/// host's end of the link, root not squashed (the client is root, like ESXi on its
/// datastores), and no attribute or directory caching (the bench removes each run's copy
/// behind the server's back; a cached entry would make the next CREATE fail with EXIST).
fn config(export: &Path, dir: &Path) -> String {
    format!(
        "NFS_CORE_PARAM {{\n\
         \tNFS_Port = 2049;\n\
         \tProtocols = 3;\n\
         \tEnable_NLM = false;\n\
         \tEnable_RQUOTA = false;\n\
         \tEnable_UDP = false;\n\
         }}\n\
         NFSv4 {{\n\
         \tGraceless = true;\n\
         \tRecoveryBackend = fs;\n\
         \tRecoveryRoot = \"{}\";\n\
         }}\n\
         MDCACHE {{\n\
         \tDir_Chunk = 0;\n\
         }}\n\
         EXPORT {{\n\
         \tExport_Id = 1;\n\
         \tPath = \"{}\";\n\
         \tPseudo = /openvaai-bench;\n\
         \tProtocols = 3;\n\
         \tTransports = TCP;\n\
         \tSecType = sys;\n\
         \tAccess_Type = None;\n\
         \tSquash = No_Root_Squash;\n\
         \tAttr_Expiration_Time = 0;\n\
         \tCLIENT {{ Clients = {HOST_IP}; Access_Type = RW; }}\n\
         \tFSAL {{ Name = VFS; }}\n\
         }}\n",
        dir.join("recovery").display(),
        export.display()
    )
}

/// The subdirectory of the export that the NAS namespace serves; removed with everything in
/// it on drop.
struct Subdir(PathBuf);

impl Subdir {
    fn new(path: PathBuf) -> Result<Subdir> {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Subdir(path))
    }
}

impl Drop for Subdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a row measures, across the link as `link` names it.
fn what(bytes: u64, link: &str) -> String {
    format!("full clone, {} file, across the link ({link})", size(bytes))
}

/// Full clone of the dense file vs the host-side copy over NFS, across each of `links`
/// (`full-nfs-10g`, `full-nfs-1g`); skipped rows when the programs are not installed, in a
/// smoke run, or when the link cannot be emulated here.
pub fn full_nfs(b: &mut Bench<'_>, links: &[&LinkSpec]) -> Result<()> {
    let bytes = b.plan.full;
    let gone = missing();
    let skip = if !gone.is_empty() {
        Some(format!("{SKIP} (missing: {})", gone.join(", ")))
    } else if b.plan.name == "smoke" {
        Some("skipped in a smoke run (starts an NFS server and a network link)".to_owned())
    } else {
        None
    };
    if let Some(why) = skip {
        for link in links {
            b.push(Row::new(link.row, what(bytes, &link.nominal())).peer(PEER, why.clone()));
        }
        return Ok(());
    }
    // Dropped in reverse order: the session, the second daemon, the link, ganesha (and the
    // namespace), then the subdirectory.
    let dir = Subdir::new(b.p(SUBDIR))?;
    std::fs::hard_link(b.p(DENSE), dir.0.join(DENSE)).context("linking the source")?;
    let mut server = Ganesha::start(&dir.0)?;
    let veth = Veth::new(server.pid())?;
    server.wait_client()?;
    let net = nsenter_net(server.pid());
    let daemon = Daemon::builder()
        .export(&dir.0)
        .listen(SocketAddr::from((NAS_IP, 0)))
        .wrap(&["nsenter", &net])
        .default_log_level()
        .try_start()
        .map_err(|e| anyhow!("starting openvaaid in the NAS namespace: {e}"))?;
    let session = Session::start_at(b.plugin, &dir.0, &NAS_IP.to_string()).map_err(|e| {
        let log = daemon.log_text();
        let tail = measure::last_lines(&log, 10).join("\n");
        anyhow!("{e:#}; the daemon's last log lines:\n{tail}")
    })?;
    let mut verified = Vec::new();
    for link in links {
        let row = across(b, link, &dir.0, &server, &veth, &session, &mut verified);
        b.push(row);
    }
    Ok(())
}

/// One link's row: shape it, measure its TCP throughput, race the two contenders across it.
fn across(
    b: &Bench<'_>,
    link: &LinkSpec,
    dir: &Path,
    server: &Ganesha,
    veth: &Veth,
    session: &Session<'_>,
    verified: &mut Vec<&'static str>,
) -> Row {
    let bytes = b.plan.full;
    let shaper = match veth.shape(link) {
        Ok(shaper) => shaper,
        Err(e) => {
            let why = format!("skipped: the link cannot be emulated here: {e:#}");
            return Row::new(link.row, what(bytes, &link.nominal())).peer(PEER, why);
        }
    };
    let tcp = match veth.tcp_throughput() {
        Ok(r) => r,
        Err(e) => {
            return Row::new(link.row, what(bytes, &link.nominal()))
                .failed(format!("measuring the link: {e:#}"))
        }
    };
    // Every byte crosses the link twice, once each way: at best the reads and the writes
    // overlap fully on the full-duplex link, and the copy takes size ÷ rate.
    let floor = Duration::from_secs_f64(bytes as f64 * 8.0 / tcp);
    let mut measure = format!(
        "{}; a host copy over it needs ≥ {} (computed, not measured: size ÷ the measured TCP \
         rate, reads and writes overlapping)",
        what(bytes, &link.describe(shaper, tcp)),
        measure::dur_rate(floor, bytes)
    );
    let (src, dst) = (server.url(DENSE), server.url(COPY));
    let copy = dir.join(COPY);
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| session.clone_file(DENSE, CLONE, 0, bytes)),
        Box::new(|| {
            bounded("nfs-cp", &[&src, &dst], || {
                std::fs::metadata(&copy).map_or(0, |m| m.len())
            })?;
            cmd("sync", &[s(&copy)])?;
            let got = std::fs::metadata(&copy)?.len();
            if got != bytes {
                bail!("nfs-cp wrote {got} bytes of {bytes}");
            }
            Ok(())
        }),
    ];
    // Between runs (untimed), each output is compared with the source once in the whole
    // case, then removed.
    let mut bad = Vec::new();
    let before = verified.len();
    let times = b.race(&mut contenders, &mut || {
        for (name, who) in OUTPUTS {
            let out = dir.join(name);
            let done = std::fs::metadata(&out).is_ok_and(|m| m.len() == bytes);
            if done && !verified.contains(&name) {
                verified.push(name);
                if let Err(e) = same(&dir.join(DENSE), &out) {
                    bad.push(format!("{who}: {e:#}"));
                }
            }
        }
        super::rm(dir, &[CLONE, COPY]);
    });
    drop(contenders);
    if bad.is_empty() {
        for (name, who) in OUTPUTS {
            if verified[before..].contains(&name) {
                let _ = write!(
                    measure,
                    "; {who} compared equal to the source (`cmp`, untimed)"
                );
            }
        }
    }
    let times = match times {
        Ok(t) => t,
        Err(e) => return Row::new(link.row, measure).failed(format!("{e:#}")),
    };
    let row = compare(
        link.row,
        measure,
        &times[0],
        PEER,
        &times[1],
        Some(bytes),
        "≥ 2× the throughput",
        |o, t| t.as_secs_f64() / o.as_secs_f64() >= 2.0,
    );
    if bad.is_empty() {
        row
    } else {
        row.failed(format!(
            "content differs from the source: {}",
            bad.join("; ")
        ))
    }
}

/// How long a libnfs client may make no progress before it is killed: it reconnects for
/// ever when the server is gone.
const STALL: Duration = Duration::from_secs(30);

/// Runs `program args` (a libnfs client), failing with its stderr unless it succeeds, and
/// killing it once `progress` (the bytes it wrote) has not changed for [`STALL`].
fn bounded(program: &str, args: &[&str], progress: impl Fn() -> u64) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let mut last = (progress(), Instant::now());
    loop {
        if let Some(st) = child.try_wait()? {
            if st.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!("{program} {} failed ({st}): {}", args.join(" "), err.trim());
        }
        let now = progress();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > STALL {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{program} {} made no progress for {} s (at {now} bytes): killed",
                args.join(" "),
                STALL.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `cmp a b`: the same bytes.
fn same(a: &Path, b: &Path) -> Result<()> {
    let out = Command::new("cmp")
        .args([a, b])
        .stdin(Stdio::null())
        .output()
        .context("running cmp")?;
    if !out.status.success() {
        bail!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
