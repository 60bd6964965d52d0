//! The qemu process: started (TCG, user networking restricted to the forwarded ports on
//! 127.0.0.1), waited for with a bound, killed with its test process, and the leftovers of a
//! test run that was killed removed at the next start.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The guest's ports, forwarded from 127.0.0.1.
pub const GUEST_NFS_PORT: u16 = 2049;
pub const GUEST_CTL_PORT: u16 = 7001;

/// The console says this once every export is served and the control channel listens.
pub const READY: &str = "OPENVAAI-GUEST-READY";
/// ... or this when a boot step failed (the guest then powers off).
pub const FAILED: &str = "OPENVAAI-GUEST-FAILED";

/// What to run.
pub struct Spec<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// `(serial, image)`.
    pub disks: &'a [(String, PathBuf)],
    pub memory_mib: u32,
    pub cpus: u32,
}

/// A running qemu.
pub struct Machine {
    child: Child,
    pub console: PathBuf,
    pub nfs: SocketAddr,
    pub ctl: SocketAddr,
}

/// A port on 127.0.0.1 nothing listens on now (qemu binds it a moment later).
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))
}

/// The run directory's marker of the process that owns it.
const OWNER: &str = "owner.pid";

/// Removes run directories under `runs` whose test process is gone, killing their qemu
/// (found by its pid file and checked by its command line naming that directory).
pub fn reap_stale(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for dir in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let owner = std::fs::read_to_string(dir.join(OWNER)).unwrap_or_default();
        let alive = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            continue;
        }
        if let Some(pid) = std::fs::read_to_string(dir.join("qemu.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy());
            if let (true, Some(pid)) = (ours, rustix::process::Pid::from_raw(pid)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Marks `dir` as owned by this process (see [`reap_stale`]).
pub fn claim(dir: &Path) -> Result<(), String> {
    std::fs::write(dir.join(OWNER), std::process::id().to_string())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

impl Machine {
    /// Starts qemu with its files in `dir`. The qemu process gets SIGKILL when this test
    /// process ends however it ends (`setpriv --pdeathsig`, from a thread that lives as long
    /// as the process).
    pub fn start(spec: &Spec, dir: &Path) -> Result<Machine, String> {
        let console = dir.join("console.log");
        let (nfs_port, ctl_port) = (free_port()?, free_port()?);
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--", "qemu-system-x86_64"])
            .args(["-accel", "tcg", "-machine", "pc", "-cpu", "max"])
            .args(["-m", &spec.memory_mib.to_string()])
            .args(["-smp", &spec.cpus.to_string()])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-no-reboot", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-pidfile")
            .arg(dir.join("qemu.pid"))
            .arg("-kernel")
            .arg(spec.kernel)
            .arg("-initrd")
            .arg(spec.initrd)
            .args(["-append", "console=ttyS0 panic=1 loglevel=4 rdinit=/init"])
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{nfs_port}-:{GUEST_NFS_PORT},\
                 hostfwd=tcp:127.0.0.1:{ctl_port}-:{GUEST_CTL_PORT}"
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"]);
        for (i, (serial, image)) in spec.disks.iter().enumerate() {
            cmd.arg("-drive")
                .arg(format!(
                    "file={},format=raw,if=none,id=d{i},cache=writeback",
                    image.display()
                ))
                .arg("-device")
                .arg(format!("virtio-blk-pci,drive=d{i},serial={serial}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.stderr")).map_err(|e| e.to_string())?);
        let (tx, rx) = mpsc::channel();
        // The parent-death signal follows the thread that forked: one that never ends.
        std::thread::Builder::new()
            .name("qemu-parent".into())
            .spawn(move || {
                let _ = tx.send(cmd.spawn());
                loop {
                    std::thread::park();
                }
            })
            .map_err(|e| format!("spawning the qemu thread: {e}"))?;
        let child = rx
            .recv()
            .map_err(|e| format!("the qemu thread: {e}"))?
            .map_err(|e| {
                format!("running qemu-system-x86_64 (apt-get install qemu-system-x86): {e}")
            })?;
        Ok(Machine {
            child,
            console,
            nfs: SocketAddr::from((Ipv4Addr::LOCALHOST, nfs_port)),
            ctl: SocketAddr::from((Ipv4Addr::LOCALHOST, ctl_port)),
        })
    }

    /// The console log so far, with qemu's own errors.
    pub fn console_text(&self) -> String {
        let console = std::fs::read_to_string(&self.console).unwrap_or_default();
        let stderr = self
            .console
            .parent()
            .map(|d| std::fs::read_to_string(d.join("qemu.stderr")).unwrap_or_default())
            .unwrap_or_default();
        if stderr.trim().is_empty() {
            console
        } else {
            format!("{console}\n--- qemu stderr ---\n{stderr}")
        }
    }

    /// Whether qemu has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `bound` for the console to say the guest is ready.
    pub fn wait_ready(&mut self, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        loop {
            let text = std::fs::read_to_string(&self.console).unwrap_or_default();
            if text.contains(READY) {
                return Ok(());
            }
            if text.contains(FAILED) || self.exited() {
                return Err(format!(
                    "the guest failed to boot:\n{}",
                    self.console_text()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the guest was not ready within {bound:?}:\n{}",
                    self.console_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `bound` for qemu to exit; kills it after that. True if it exited by itself.
    pub fn wait_exit(&mut self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// Kills qemu and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}
