//! A real Linux NFS server for tests: knfsd in a qemu guest (TCG) running Debian 12's cloud
//! kernel, serving virtio disks the host formatted (XFS with reflink, ext4, Btrfs) as NFSv3,
//! 4.1 and 4.2 exports on a port forwarded from 127.0.0.1.
//!
//! ```no_run
//! use openvaai_testkit::guest::Knfsd;
//! use openvaai_testkit::FsKind;
//! let Some(mut nfs) = Knfsd::builder().disk("xfs", FsKind::Xfs, 1 << 30).start() else {
//!     return;
//! };
//! println!("NFS on {}, exporting {}", nfs.nfs_addr(), nfs.export("xfs"));
//! nfs.run("fallocate -l 1M /export/xfs/f").unwrap();
//! assert!(nfs.view("/export/xfs/f").unwrap().unwritten_bytes() > 0);
//! nfs.power_off().unwrap();
//! let disk = nfs.inspect("xfs").unwrap(); // the image, loop-mounted on the host (root)
//! assert_eq!(disk.view("f").unwrap().size, 1 << 20);
//! ```
//!
//! The guest has a control channel (a shell, [`Knfsd::exec`]), the host's `filefrag`,
//! `mkfs.xfs`, util-linux and knfsd's tools, and whatever a test adds: files, programs (with
//! their shared libraries), kernel modules and a boot script ([`KnfsdBuilder`]). Nothing it
//! does reaches beyond 127.0.0.1: user networking with `restrict=on`.
//!
//! Needs `qemu-system-x86`, `busybox-static`, `nfs-kernel-server`, `cpio`, `kmod` and the
//! kernel package (`apt-get download`, cached under `target/guest/debs`); without them
//! [`KnfsdBuilder::start`] skips (prints why, returns `None`), and with
//! `OPENVAAI_REQUIRE_FS_TESTS=1` it panics.

mod control;
mod image;
mod inspect;
mod logwrites;
mod machine;
mod zfs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use control::Output;
pub use image::{guest_dir, shared_libraries, KERNEL_DEB_ENV, KERNEL_PACKAGE};
pub use inspect::{local_view, shell_quote, Extent, FileView, ImageMount};
pub use logwrites::LoggedDisk;
pub use machine::{GUEST_CTL_PORT, GUEST_NFS_PORT};
pub use zfs::{zfs_dir, GUEST_ZFS, ZFS_DIR_ENV};

use crate::testfs::{require_fs_tests, REQUIRE_ENV};
use crate::FsKind;

/// The bound on boot to serving (TCG on 2 busy cores; a quiet boot takes a few seconds).
const BOOT_BOUND: Duration = Duration::from_secs(120);
/// The default bound on one control request.
const EXEC_BOUND: Duration = Duration::from_secs(120);

/// Runs a host tool; its trimmed stdout, or an error naming it with its stderr.
pub(crate) fn run_tool(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A disk of the guest: a `kind` filesystem made on the host, mounted on `/export/NAME` and
/// exported `rw,no_root_squash,sync` (and `insecure` unless asked for `secure`).
#[derive(Clone, Debug)]
struct DiskSpec {
    name: String,
    kind: FsKind,
    size: u64,
    secure: bool,
}

/// What the guest gets.
#[derive(Debug)]
pub struct KnfsdBuilder {
    disks: Vec<DiskSpec>,
    /// `(host, guest, program)`.
    files: Vec<(PathBuf, String, bool)>,
    modules: Vec<String>,
    setup: String,
    memory_mib: u32,
    cpus: u32,
    /// `(name, size)`: raw disks with a GPT and one partition (`/dev/vdX1`), not mounted.
    raw_disks: Vec<(String, u64)>,
    /// The OpenZFS directory to copy in ([`KnfsdBuilder::zfs`]).
    zfs: Option<PathBuf>,
    /// Why the guest cannot have what was asked for (e.g. no OpenZFS build found).
    missing: Option<String>,
    /// Disks under a `dm-log-writes` target ([`KnfsdBuilder::logged_disk`]).
    logged: Vec<logwrites::LoggedSpec>,
}

impl Default for KnfsdBuilder {
    fn default() -> Self {
        KnfsdBuilder {
            disks: Vec::new(),
            files: Vec::new(),
            modules: Vec::new(),
            setup: String::new(),
            memory_mib: 1024,
            cpus: 2,
            raw_disks: Vec::new(),
            zfs: None,
            missing: None,
            logged: Vec::new(),
        }
    }
}

impl KnfsdBuilder {
    /// A `kind` disk of `size` bytes (sparse) named `name`, exported as `/export/NAME`.
    pub fn disk(mut self, name: &str, kind: FsKind, size: u64) -> Self {
        self.disks.push(DiskSpec {
            name: name.to_owned(),
            kind,
            size,
            secure: false,
        });
        self
    }

    /// Like [`KnfsdBuilder::disk`], exported `secure` (knfsd's default): clients must use a
    /// source port below 1024.
    pub fn secure_disk(mut self, name: &str, kind: FsKind, size: u64) -> Self {
        self = self.disk(name, kind, size);
        self.disks.last_mut().expect("just pushed").secure = true;
        self
    }

    /// A raw disk of `size` bytes (sparse) with a GPT and one partition over all of it, not
    /// mounted: `/dev/vdX1` in the guest, for the disk whose `/sys/block/vdX/serial` is `name`.
    pub fn raw_disk(mut self, name: &str, size: u64) -> Self {
        self.raw_disks.push((name.to_owned(), size));
        self
    }

    /// OpenZFS ([`zfs_dir`]): the modules loaded at boot, `zpool` and `zfs` on `PATH`, and
    /// pool `pool` on a raw disk of `size` bytes with a dataset (lz4) mounted on
    /// `/export/POOL`, exported like the other disks. Unavailable (skip, or a panic in CI)
    /// when the OpenZFS build is missing or the guest kernel is not the one it is built for.
    pub fn zfs(mut self, pool: &str, size: u64) -> Self {
        let serial = format!("{pool}-vdev");
        self = self.raw_disk(&serial, size);
        match zfs_dir() {
            Ok(dir) => {
                self = self
                    .module(&dir.join("modules/spl.ko"), "/opt/zfs/modules/spl.ko")
                    .module(&dir.join("modules/zfs.ko"), "/opt/zfs/modules/zfs.ko");
                let fsid = 100 + self.raw_disks.len();
                self = self.setup(&zfs::setup_script(pool, &serial, fsid));
                self.zfs = Some(dir);
            }
            Err(e) => self.missing = Some(e),
        }
        self
    }

    /// Copies the host file `host` to `guest` as it is.
    pub fn file(mut self, host: &Path, guest: &str) -> Self {
        self.files.push((host.to_owned(), guest.to_owned(), false));
        self
    }

    /// Copies the program `host` to `guest` without debug information, with the shared
    /// libraries it needs (at the host's paths).
    pub fn program(mut self, host: &Path, guest: &str) -> Self {
        self.files.push((host.to_owned(), guest.to_owned(), true));
        self
    }

    /// Copies the kernel module `host` to `guest` and loads it at boot, after the base
    /// modules and before the disks are mounted (e.g. OpenZFS's spl then zfs).
    pub fn module(mut self, host: &Path, guest: &str) -> Self {
        self.modules.push(guest.to_owned());
        self.file(host, guest)
    }

    /// Shell lines run at the end of the boot, before the guest says it is ready; a failing
    /// line fails the boot.
    pub fn setup(mut self, script: &str) -> Self {
        self.setup.push_str(script);
        self.setup.push('\n');
        self
    }

    /// Guest memory (default 1024 MiB).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Why the guest cannot start here, if it cannot (a tool or the kernel package missing).
    pub fn unavailable(&self) -> Option<String> {
        let mut tools = vec![
            "qemu-system-x86_64",
            "setpriv",
            "cpio",
            "depmod",
            "modprobe",
            "dpkg-deb",
            "rpc.nfsd",
            "rpc.mountd",
            "exportfs",
            "rpcbind",
            "mount.nfs",
            "filefrag",
            "objcopy",
        ];
        tools.extend(self.disks.iter().map(|d| d.kind.mkfs()));
        if !self.raw_disks.is_empty() {
            tools.push("sfdisk");
        }
        if !self.logged.is_empty() {
            tools.extend(self.logged.iter().map(|d| d.kind.mkfs()));
            tools.extend(["dmsetup", "tar"]);
        }
        if let Some(t) = tools.into_iter().find(|t| which(t).is_none()) {
            return Some(format!(
                "{t} not found (apt-get install qemu-system-x86 busybox-static \
                 nfs-kernel-server cpio kmod binutils xfsprogs btrfs-progs e2fsprogs fdisk dmsetup)"
            ));
        }
        if shared_libraries(Path::new("/bin/busybox")).map_or(true, |l| !l.is_empty()) {
            return Some("no static /bin/busybox (apt-get install busybox-static)".into());
        }
        if let Some(missing) = &self.missing {
            return Some(missing.clone());
        }
        let deb = match image::kernel_deb() {
            Ok(deb) => deb,
            Err(e) => return Some(e),
        };
        match self.zfs {
            Some(_) => zfs::kernel_fits(&deb).err(),
            None => None,
        }
    }

    /// Boots the guest and waits until it serves; `None` (with the reason on stderr) when it
    /// cannot start here, a panic instead when `OPENVAAI_REQUIRE_FS_TESTS=1` or when the
    /// guest fails to boot (with its console log).
    pub fn start(self) -> Option<Knfsd> {
        if let Some(reason) = self.unavailable() {
            if require_fs_tests() {
                panic!("{REQUIRE_ENV}=1 but the knfsd guest cannot start: {reason}");
            }
            eprintln!("skipping knfsd guest test: {reason}");
            return None;
        }
        Some(self.try_start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Boots the guest (see [`KnfsdBuilder::unavailable`] first).
    pub fn try_start(self) -> Result<Knfsd, String> {
        static BOOTS: AtomicU32 = AtomicU32::new(0);
        let base = image::base_image()?;
        let runs = image::guest_dir().join("run");
        machine::reap_stale(&runs);
        let dir = runs.join(format!(
            "{}-{}",
            std::process::id(),
            BOOTS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        machine::claim(&dir)?;
        // From here on the run directory belongs to the fixture (removed on drop).
        let mut nfs = Knfsd {
            machine: None,
            disks: Vec::new(),
            dir,
            boot_time: Duration::ZERO,
            kernel_package: base.kernel_package.clone(),
            logged: Vec::new(),
        };
        let initrd = self.boot_archive(&base, &nfs.dir)?;
        for d in &self.disks {
            let image = nfs.dir.join(format!("disk-{}.img", d.name));
            make_filesystem(&image, d.kind, d.size)?;
            nfs.disks.push((d.name.clone(), d.kind, image));
        }
        let mut drives: Vec<(String, PathBuf)> = nfs
            .disks
            .iter()
            .map(|(n, _, img)| (n.clone(), img.clone()))
            .collect();
        for (name, size) in &self.raw_disks {
            let image = nfs.dir.join(format!("raw-{name}.img"));
            zfs::partitioned_image(&image, *size)?;
            drives.push((name.clone(), image));
        }
        nfs.logged = logwrites::make_images(&self.logged, &nfs.dir, &mut drives)?;
        let spec = machine::Spec {
            kernel: &base.kernel,
            initrd: &initrd,
            disks: &drives,
            memory_mib: self.memory_mib,
            cpus: self.cpus,
        };
        let started = Instant::now();
        let mut last = String::new();
        // A port taken between choosing it and qemu binding it: try again with others.
        for _ in 0..3 {
            let mut m = machine::Machine::start(&spec, &nfs.dir)?;
            match m.wait_ready(BOOT_BOUND) {
                Ok(()) => {
                    nfs.machine = Some(m);
                    break;
                }
                Err(e) if e.contains("host forwarding rule") => last = e,
                Err(e) => return Err(e),
            }
        }
        if nfs.machine.is_none() {
            return Err(last);
        }
        nfs.boot_time = started.elapsed();
        eprintln!(
            "knfsd guest ({}): boot to ready in {:.1} s",
            nfs.kernel_package,
            nfs.boot_time.as_secs_f64()
        );
        Ok(nfs)
    }

    /// The base image with this boot's archive appended (the kernel unpacks both).
    fn boot_archive(&self, base: &image::BaseImage, dir: &Path) -> Result<PathBuf, String> {
        let mut staging = image::Staging::new(dir.join("boot-root"))?;
        let disks: String = self
            .disks
            .iter()
            .map(|d| format!("{} {}\n", d.name, d.kind.name()))
            .collect();
        staging.write("/etc/guest/disks", disks.as_bytes(), 0o644)?;
        let exports: String = self
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let port = if d.secure { "secure" } else { "insecure" };
                format!(
                    "/export/{} *(rw,no_root_squash,sync,no_subtree_check,{port},fsid={})\n",
                    d.name,
                    i + 1
                )
            })
            .collect();
        staging.write("/etc/exports", exports.as_bytes(), 0o644)?;
        for (host, guest, program) in &self.files {
            if *program {
                staging.program(host, guest)?;
            } else {
                staging.file(host, guest)?;
            }
        }
        if let Some(dir) = &self.zfs {
            zfs::stage(&mut staging, dir)?;
        }
        staging.write(
            "/etc/guest/modules.extra",
            image::lines(&self.modules).as_bytes(),
            0o644,
        )?;
        if !self.setup.is_empty() {
            staging.write(
                "/etc/guest/setup",
                format!("#!/bin/sh\nset -e\n{}", self.setup).as_bytes(),
                0o755,
            )?;
        }
        let boot = dir.join("boot.cpio");
        staging.pack(&boot)?;
        let _ = std::fs::remove_dir_all(&staging.root);
        let initrd = dir.join("initrd.cpio");
        let mut out = std::fs::File::create(&initrd).map_err(|e| e.to_string())?;
        for part in [&base.initrd, &boot] {
            let mut f =
                std::fs::File::open(part).map_err(|e| format!("{}: {e}", part.display()))?;
            std::io::copy(&mut f, &mut out).map_err(|e| format!("{}: {e}", initrd.display()))?;
        }
        Ok(initrd)
    }
}

/// Makes a `kind` filesystem on a new sparse image (no root needed).
fn make_filesystem(image: &Path, kind: FsKind, size: u64) -> Result<(), String> {
    std::fs::File::create(image)
        .and_then(|f| f.set_len(size))
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let args: &[&str] = match kind {
        FsKind::Xfs => &["-q", "-f", "-m", "reflink=1"],
        FsKind::Btrfs => &["-q", "-f"],
        FsKind::Ext4 => &["-q", "-F"],
        FsKind::Zfs => return Err("a ZFS disk is made with KnfsdBuilder::zfs, not disk".into()),
    };
    run_tool(Command::new(kind.mkfs()).args(args).arg(image)).map(drop)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A running guest serving knfsd exports; powered off, and its files removed, on drop.
pub struct Knfsd {
    machine: Option<machine::Machine>,
    /// `(name, kind, image)`.
    disks: Vec<(String, FsKind, PathBuf)>,
    dir: PathBuf,
    boot_time: Duration,
    kernel_package: String,
    logged: Vec<logwrites::Logged>,
}

impl Knfsd {
    pub fn builder() -> KnfsdBuilder {
        KnfsdBuilder::default()
    }

    /// One disk of each filesystem, named `xfs`, `btrfs` and `ext4`, of `size` bytes each.
    pub fn each_fs(size: u64) -> KnfsdBuilder {
        FsKind::ALL
            .iter()
            .fold(KnfsdBuilder::default(), |b, k| b.disk(k.name(), *k, size))
    }

    /// Where the guest's port 2049 is reachable (127.0.0.1:PORT).
    pub fn nfs_addr(&self) -> SocketAddr {
        self.running().nfs
    }

    /// A directory standing for ESXi's mount of this guest's datastores (this host has no
    /// NFS client): it holds the standard backend's marker, `.openvaai/nfs42`, naming the
    /// port where the guest's 2049 is reachable. A datastore with this directory as its local
    /// path and an export as its remote mount point reaches that export through knfsd. That
    /// port is not 2049 nor privileged, so it is also allowed in this process, as the ESXi
    /// host's administrator would allow it ([`allow_nfs42_port`]).
    pub fn esxi_mount(&self, prefix: &str) -> std::io::Result<tempfile::TempDir> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let marker = openvaai_client::datastore::nfs42_path(dir.path());
        std::fs::create_dir_all(marker.parent().expect("the marker is in a directory"))?;
        let port = self.nfs_addr().port();
        std::fs::write(&marker, format!("port = {port}\n"))?;
        allow_nfs42_port(port);
        Ok(dir)
    }

    /// Where the guest's control port is reachable.
    pub fn ctl_addr(&self) -> SocketAddr {
        self.running().ctl
    }

    /// The export path of disk `name`.
    pub fn export(&self, name: &str) -> String {
        format!("/export/{name}")
    }

    /// Boot to serving, as measured by [`KnfsdBuilder::try_start`].
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The kernel package the guest runs (`name version`).
    pub fn kernel_package(&self) -> &str {
        &self.kernel_package
    }

    /// The guest's console log so far.
    pub fn console(&self) -> String {
        self.machine
            .as_ref()
            .map(|m| m.console_text())
            .unwrap_or_default()
    }

    fn running(&self) -> &machine::Machine {
        self.machine
            .as_ref()
            .expect("the knfsd guest is powered off")
    }

    /// Runs `script` (sh) in the guest as root, bounded by `timeout`.
    pub fn exec_timeout(&self, script: &str, timeout: Duration) -> Result<Output, String> {
        control::exec(self.running().ctl, script, timeout)
            .map_err(|e| format!("{e}\nguest console:\n{}", self.console()))
    }

    /// Runs `script` in the guest (bounded by 120 s): its output and exit status.
    pub fn exec(&self, script: &str) -> Result<Output, String> {
        self.exec_timeout(script, EXEC_BOUND)
    }

    /// Runs `script` in the guest: its output if it exits 0, else an error with the output.
    pub fn run(&self, script: &str) -> Result<String, String> {
        let out = self.exec(script)?;
        if out.status == 0 {
            Ok(out.text)
        } else {
            Err(format!(
                "in the guest, `{script}` exited {}:\n{}",
                out.status, out.text
            ))
        }
    }

    /// The server's view of `guest_path` (size, allocation, extents), read in the guest.
    pub fn view(&self, guest_path: &str) -> Result<FileView, String> {
        inspect::parse(&self.run(&inspect::view_command(guest_path))?)
    }

    /// Stops serving, unmounts the exports cleanly and powers the guest off (bounded).
    pub fn power_off(&mut self) -> Result<(), String> {
        let Some(m) = self.machine.as_mut() else {
            return Ok(());
        };
        let ctl = m.ctl;
        let stop = "exportfs -ua; rpc.nfsd 0; sync; \
                    for d in /export/*; do [ -e \"$d\" ] || continue; \
                    umount \"$d\" || exit 1; done; sync";
        let stopped = control::exec(ctl, stop, Duration::from_secs(60));
        // The reply cannot come after the power-off: ask for it a moment later.
        let _ = control::exec(
            ctl,
            "(sleep 0.2; poweroff -f) >/dev/null 2>&1 &",
            Duration::from_secs(10),
        );
        let exited = m.wait_exit(Duration::from_secs(30));
        let console = m.console_text();
        self.machine = None;
        match (stopped, exited) {
            (Ok(o), true) if o.status == 0 => Ok(()),
            (Ok(o), _) if o.status != 0 => Err(format!(
                "unmounting the exports failed:\n{}\nguest console:\n{console}",
                o.text
            )),
            (Err(e), _) => Err(format!("{e}\nguest console:\n{console}")),
            _ => Err(format!(
                "the guest did not power off within 30 s:\n{console}"
            )),
        }
    }

    /// Disk `name`'s image loop-mounted read-only on the host (root needed): after
    /// [`Knfsd::power_off`].
    pub fn inspect(&self, name: &str) -> Result<ImageMount, String> {
        if self.machine.is_some() {
            return Err("inspect needs the guest powered off (Knfsd::power_off)".into());
        }
        let (_, kind, image) = self
            .disks
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| format!("the guest has no disk named {name}"))?;
        ImageMount::new(image, kind.name())
    }

    /// The run directory (console log, disk images, archives).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Knfsd {
    fn drop(&mut self) {
        if let Some(m) = self.machine.as_mut() {
            let bye = "sync; (sleep 0.1; poweroff -f) >/dev/null 2>&1 &";
            let _ = control::exec(m.ctl, bye, Duration::from_secs(5));
            m.wait_exit(Duration::from_secs(5));
        }
        self.machine = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Allows `port` to the standard NFSv4.2 backend of the plugin loaded in this process, as an
/// ESXi host's administrator does for a server on a port that is neither 2049 nor privileged:
/// adds it to `OPENVAAI_NFS42_PORTS` (docs/nfs42.md, "Selection"). Call it before the
/// StartSession that needs it.
pub fn allow_nfs42_port(port: u16) {
    const PORTS_ENV: &str = "OPENVAAI_NFS42_PORTS";
    let mut ports = std::env::var(PORTS_ENV).unwrap_or_default();
    if ports.split(',').any(|p| p.trim() == port.to_string()) {
        return;
    }
    if !ports.is_empty() {
        ports.push(',');
    }
    ports.push_str(&port.to_string());
    std::env::set_var(PORTS_ENV, ports);
}
