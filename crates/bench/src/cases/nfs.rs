//! The full clone against the host-side copy as ESXi does it without offload: every byte read
//! over NFS and written back over NFS.
//!
//! The NFS server is nfs-ganesha (userspace, FSAL VFS) exporting the bench's export; the
//! client is libnfs's `nfs-cp` (userspace), NFSv3 as ESXi's VAAI-NAS datastores. Both run in
//! a network namespace of their own that holds only a loopback interface (`unshare --net`,
//! `nsenter --net`), so nothing listens on any other address and the standard ports (111
//! for rpcbind, which NFSv3's MOUNT needs, and 2049) are free whatever runs on the host.
//! The namespace's `/run` is a tmpfs, so that its rpcbind leaves the host's alone.
//!
//! NFSv4 is not used: `nfs-cp` (libnfs 4.0) opens the source and the destination as two
//! NFSv4 clients with the same client name, and the second one's SETCLIENTID voids the
//! first's open state (the read fails).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};

use super::clone::DENSE;
use super::{compare, Bench, Contender};
use crate::measure::{cmd, s, size};
use crate::table::Row;

/// The programs the peer needs: the first two make the skip message's packages, the others
/// come with them (rpcbind is a dependency of nfs-ganesha) or with any Debian (util-linux,
/// iproute2).
const PROGRAMS: &[&str] = &[
    "ganesha.nfsd",
    "nfs-cp",
    "nfs-ls",
    "rpcbind",
    "unshare",
    "nsenter",
    "ip",
];

/// The skip message when the peer's programs are missing.
const SKIP: &str = "skipped: needs nfs-ganesha and libnfs-utils";

const PEER: &str =
    "host-side copy over NFS: `nfs-cp` (libnfs, NFSv3) from and to nfs-ganesha on loopback + `sync FILE`";

/// `name` on `PATH` (plus the sbin directories, for rpcbind and ip).
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

/// nfs-ganesha and its rpcbind in a loopback-only network namespace, exporting one directory
/// over NFSv3; stopped (the whole process group) on drop.
pub struct Ganesha {
    /// The namespace's first process (`sh`), leader of the process group.
    holder: Child,
    /// Config, log, pid file.
    dir: PathBuf,
    export: PathBuf,
}

impl Ganesha {
    /// Starts the server on `export` and waits until a client can list the export.
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
        g.wait_ready(&log)
            .with_context(|| format!("starting nfs-ganesha: {}", g.log_tail()))?;
        Ok(g)
    }

    fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let t = Instant::now();
        loop {
            if let Some(st) = self.holder.try_wait()? {
                bail!("it exited ({st})");
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("NFS SERVER INITIALIZED") {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("not ready after 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // A client's first call (MOUNT through rpcbind, then READDIRPLUS), untimed.
        let url = self.url("");
        self.client("nfs-ls", &[&url])?;
        Ok(())
    }

    /// The `nfs://` URL of `name` in the export (NFSv3).
    pub fn url(&self, name: &str) -> String {
        format!("nfs://127.0.0.1{}/{name}?version=3", s(&self.export))
    }

    /// Runs a libnfs client in the server's network namespace.
    pub fn client(&self, program: &str, args: &[&str]) -> Result<String> {
        let net = format!("--net=/proc/{}/ns/net", self.holder.id());
        let mut all = vec![net.as_str(), "--", program];
        all.extend(args);
        cmd("nsenter", &all)
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

/// ganesha's configuration: NFSv3 over TCP only, no NLM/RQUOTA, one export of `export` to
/// 127.0.0.1, root not squashed (the client is root, like ESXi on its datastores), and no
/// attribute or directory caching (the bench removes each run's copy behind the server's
/// back; a cached entry would make the next CREATE fail with EXIST).
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
         \tCLIENT {{ Clients = 127.0.0.1; Access_Type = RW; }}\n\
         \tFSAL {{ Name = VFS; }}\n\
         }}\n",
        dir.join("recovery").display(),
        export.display()
    )
}

/// Full clone of the dense file vs the host-side copy over NFS (`full-nfs`); a skipped row
/// when the peer's programs are not installed, or in a smoke run.
pub fn full_nfs(b: &mut Bench<'_>) -> Result<()> {
    let bytes = b.plan.full;
    let what = format!("full clone, {} file", size(bytes));
    let gone = missing();
    let skip = if !gone.is_empty() {
        Some(format!("{SKIP} (missing: {})", gone.join(", ")))
    } else if b.plan.name == "smoke" {
        Some("skipped in a smoke run (starts an NFS server)".to_owned())
    } else {
        None
    };
    if let Some(why) = skip {
        b.push(Row::new("full-nfs", what).peer(PEER, why));
        return Ok(());
    }
    let server = Ganesha::start(&b.export)?;
    let (src, dst) = (server.url(DENSE), server.url("full-nfs.vmdk"));
    let dst_path = b.p("full-nfs.vmdk");
    let session = &b.session;
    let mut contenders: Vec<Contender<'_>> = vec![
        Box::new(|| session.clone_file(DENSE, "full-clone.vmdk", 0, bytes)),
        Box::new(|| {
            server.client("nfs-cp", &[&src, &dst])?;
            cmd("sync", &[s(&dst_path)])?;
            let got = std::fs::metadata(&dst_path)?.len();
            if got != bytes {
                bail!("nfs-cp wrote {got} bytes of {bytes}");
            }
            Ok(())
        }),
    ];
    let export = b.export.clone();
    let times = b.race(&mut contenders, &mut || {
        super::rm(&export, &["full-clone.vmdk", "full-nfs.vmdk"])
    })?;
    drop(contenders);
    drop(server);
    b.push(compare(
        "full-nfs",
        what,
        &times[0],
        PEER,
        &times[1],
        Some(bytes),
        "≥ 2× the throughput",
        |o, t| t.as_secs_f64() / o.as_secs_f64() >= 2.0,
    ));
    Ok(())
}
