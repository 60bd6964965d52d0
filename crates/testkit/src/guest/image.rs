//! The guest's kernel and base initramfs, built on the host from Debian packages and cached
//! under `target/guest/` keyed by the package versions, and the per-boot archive appended to it
//! (the boot's configuration and the files a test adds).
//!
//! The kernel and its modules come from `linux-image-*-cloud-amd64` (`dpkg-deb -x`); busybox
//! from `busybox-static`; knfsd's userland, the NFS client's `mount.nfs`, util-linux and the
//! tools a test reads the server's view with (`filefrag`, `mkfs.xfs`) from the host's own
//! Debian packages, each with the shared libraries `ldd` names.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::run_tool;

/// The kernel the guest runs: Debian 12's cloud kernel, the one the prebuilt OpenZFS modules
/// (`/work/shared/zfs`) are built for.
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-57-cloud-amd64";
/// Debian 12's metapackage for its newest cloud kernel: the fallback when the pinned one cannot
/// be downloaded.
const KERNEL_META: &str = "linux-image-cloud-amd64";
/// Overrides the kernel package: a path to a `linux-image-*.deb`.
pub const KERNEL_DEB_ENV: &str = "OPENVAAI_GUEST_KERNEL_DEB";

/// Where the guest's images and runs are kept, if not beside the build (`target/guest`) or,
/// for an installed CLI, in `~/.cache/openvaai/guest`.
pub const GUEST_DIR_ENV: &str = "OPENVAAI_GUEST_DIR";

/// Bump when [`build`] changes what it puts in the image (the cache key has no other way to
/// know).
const LAYOUT: u32 = 2;

const INIT: &str = include_str!("init.sh");
const CTL: &str = include_str!("ctl.sh");

/// Modules loaded at boot (with their dependencies, in order).
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "crc32c_generic",
    "xfs",
    "btrfs",
    "loop",
    "nfsd",
    "nfsv3",
    "nfsv4",
];

/// Host programs copied into the guest (with their libraries), at the same paths.
const PROGRAMS: &[&str] = &[
    "/usr/sbin/rpc.nfsd",
    "/usr/sbin/rpc.mountd",
    "/usr/sbin/exportfs",
    "/usr/sbin/rpcbind",
    "/usr/sbin/filefrag",
    "/usr/sbin/mkfs.xfs",
    "/usr/sbin/losetup",
    "/usr/bin/mount",
    "/usr/bin/umount",
];

/// Host files copied as they are.
const ETC: &[&str] = &[
    "/etc/netconfig",
    "/etc/services",
    "/etc/protocols",
    "/etc/rpc",
];

/// The Debian packages the base image is made of (their versions key the cache).
const HOST_PACKAGES: &[&str] = &[
    "busybox-static",
    "nfs-kernel-server",
    "nfs-common",
    "rpcbind",
    "util-linux",
    "mount",
    "xfsprogs",
    "e2fsprogs",
    "libc6",
];

/// A built kernel and base initramfs.
#[derive(Clone, Debug)]
pub struct BaseImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel package, `name version`.
    pub kernel_package: String,
}

/// `target/guest` (beside the profile directories).
pub fn guest_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(GUEST_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let profile = crate::profile_dir();
    match profile.parent() {
        // target/debug/openvaai: beside the build.
        Some(target) if target.join("CACHEDIR.TAG").exists() => target.join("guest"),
        // An installed `openvaai demo`: the user's cache.
        _ => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("openvaai/guest"),
    }
}

fn host_version(package: &str) -> Result<String, String> {
    run_tool(Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]))
        .map_err(|e| format!("{package} is not installed (apt-get install {package}): {e}"))
}

/// The kernel package: `$OPENVAAI_GUEST_KERNEL_DEB`, else the pinned package downloaded with
/// `apt-get download` into `target/guest/debs`, else Debian 12's newest cloud kernel.
pub(super) fn kernel_deb() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(KERNEL_DEB_ENV) {
        let p = PathBuf::from(p);
        return match p.is_file() {
            true => Ok(p),
            false => Err(format!("{KERNEL_DEB_ENV}={} is not a file", p.display())),
        };
    }
    let debs = guest_dir().join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let find = |name: &str| -> Option<PathBuf> {
        std::fs::read_dir(&debs)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}_")) && n.ends_with(".deb"))
            })
            .max()
    };
    if let Some(p) = find(KERNEL_PACKAGE) {
        return Ok(p);
    }
    let download = |name: &str| {
        run_tool(
            Command::new("apt-get")
                .args(["download", "-q", name])
                .current_dir(&debs),
        )
    };
    let pinned = download(KERNEL_PACKAGE);
    if pinned.is_ok() {
        if let Some(p) = find(KERNEL_PACKAGE) {
            return Ok(p);
        }
    }
    // The newest Debian 12 cloud kernel: what the metapackage depends on.
    let depends = run_tool(Command::new("apt-cache").args(["depends", KERNEL_META]))
        .map_err(|e| format!("apt-cache depends {KERNEL_META}: {e}"))?;
    let newest = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|n| n.starts_with("linux-image-") && n.ends_with("-cloud-amd64"))
        .ok_or_else(|| {
            format!(
                "cannot download {KERNEL_PACKAGE} ({pinned:?}) and {KERNEL_META} names no \
                 kernel: run `apt-get update`, or set {KERNEL_DEB_ENV} to a kernel .deb"
            )
        })?
        .to_owned();
    download(&newest).map_err(|e| format!("apt-get download {newest}: {e}"))?;
    find(&newest).ok_or_else(|| format!("apt-get download {newest} left no .deb"))
}

fn deb_field(deb: &Path, field: &str) -> Result<String, String> {
    run_tool(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field))
}

/// The libraries `ldd` names for `program` (the dynamic loader included).
pub fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>, String> {
    shared_libraries_with(program, None)
}

/// Like [`shared_libraries`], with `LD_LIBRARY_PATH` set to `lib_path` (a program's own
/// libraries outside the system's directories, e.g. OpenZFS's).
pub fn shared_libraries_with(
    program: &Path,
    lib_path: Option<&Path>,
) -> Result<Vec<PathBuf>, String> {
    let mut ldd = Command::new("ldd");
    if let Some(dir) = lib_path {
        ldd.env("LD_LIBRARY_PATH", dir);
    }
    let out = ldd
        .arg(program)
        .output()
        .map_err(|e| format!("running ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || !out.status.success() {
        return Ok(Vec::new()); // static
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match path {
            Some(p) if p.starts_with('/') => libs.push(PathBuf::from(p)),
            Some("not") => return Err(format!("{}: {line}", program.display())),
            _ => {}
        }
        if line.contains("not found") {
            return Err(format!(
                "{}: a library is missing: {line}",
                program.display()
            ));
        }
    }
    Ok(libs)
}

/// A directory tree that becomes an initramfs archive.
pub struct Staging {
    pub root: PathBuf,
    copied: BTreeSet<PathBuf>,
}

impl Staging {
    pub fn new(root: PathBuf) -> Result<Staging, String> {
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(Staging {
            root,
            copied: BTreeSet::new(),
        })
    }

    fn dest(&self, guest: &str) -> PathBuf {
        self.root.join(guest.trim_start_matches('/'))
    }

    /// Writes `contents` at `guest` with `mode`.
    pub fn write(&mut self, guest: &str, contents: &[u8], mode: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.dest(guest);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&dest, contents).map_err(|e| format!("{}: {e}", dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", dest.display()))
    }

    /// A symbolic link at `guest` to `target`.
    pub fn symlink(&mut self, guest: &str, target: &str) -> Result<(), String> {
        let dest = self.dest(guest);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::os::unix::fs::symlink(target, &dest).map_err(|e| format!("{}: {e}", dest.display()))
    }

    /// Copies the host file `host` to `guest` (following symlinks), once.
    pub fn file(&mut self, host: &Path, guest: &str) -> Result<(), String> {
        let dest = self.dest(guest);
        if !self.copied.insert(dest.clone()) {
            return Ok(());
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::copy(host, &dest)
            .map(drop)
            .map_err(|e| format!("copying {} into the guest: {e}", host.display()))
    }

    /// Copies the program `host` to `guest` without its debug information, and the shared
    /// libraries it needs to the paths the host has them at.
    pub fn program(&mut self, host: &Path, guest: &str) -> Result<(), String> {
        self.program_with(host, guest, None)
    }

    /// Like [`Staging::program`] for a program whose own libraries are in `lib_path` (found
    /// there by `ldd`, and not copied: the caller puts them where the guest's
    /// `LD_LIBRARY_PATH` points).
    pub fn program_with(
        &mut self,
        host: &Path,
        guest: &str,
        lib_path: Option<&Path>,
    ) -> Result<(), String> {
        let dest = self.dest(guest);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let stripped = Command::new("objcopy")
            .arg("--strip-debug")
            .arg(host)
            .arg(&dest)
            .status()
            .is_ok_and(|s| s.success());
        if stripped {
            self.copied.insert(dest);
        } else {
            self.file(host, guest)?;
        }
        for lib in shared_libraries_with(host, lib_path)? {
            if lib_path.is_some_and(|d| lib.starts_with(d)) {
                continue;
            }
            let guest_lib = lib.to_string_lossy().into_owned();
            self.file(&lib, &guest_lib)?;
        }
        Ok(())
    }

    /// Packs the tree as a `newc` cpio archive (owned by root) at `out`.
    pub fn pack(&self, out: &Path) -> Result<(), String> {
        let list = run_tool(Command::new("find").arg(".").current_dir(&self.root))?;
        let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let mut child = Command::new("cpio")
            .args(["--quiet", "-o", "-H", "newc", "-R", "0:0"])
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running cpio (apt-get install cpio): {e}"))?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("cpio stdin");
            stdin
                .write_all(list.as_bytes())
                .and_then(|()| stdin.write_all(b"\n"))
                .map_err(|e| format!("writing cpio's file list: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("cpio: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cpio failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

/// The kernel and base initramfs, built now or found in the cache.
pub fn base_image() -> Result<BaseImage, String> {
    let deb = kernel_deb()?;
    let kernel_package = format!(
        "{} {}",
        deb_field(&deb, "Package")?,
        deb_field(&deb, "Version")?
    );
    let mut key = DefaultHasher::new();
    (
        LAYOUT,
        kernel_package.as_str(),
        INIT,
        CTL,
        MODULES,
        PROGRAMS,
        ETC,
    )
        .hash(&mut key);
    for p in HOST_PACKAGES {
        host_version(p)?.hash(&mut key);
    }
    let dir = guest_dir().join(format!("base-{:016x}", key.finish()));
    let image = BaseImage {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.cpio"),
        kernel_package,
    };
    if image.initrd.exists() && image.kernel.exists() {
        return Ok(image);
    }
    // Built beside the cache entry and renamed into place: parallel test binaries may race.
    let tmp = guest_dir().join(format!("build-{}-{:x}", std::process::id(), key.finish()));
    let _ = std::fs::remove_dir_all(&tmp);
    let built = build(&deb, &tmp);
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let out = tmp.join("out");
    if std::fs::rename(&out, &dir).is_err() && !image.initrd.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("cannot move the built image to {}", dir.display()));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    // Older cache entries (other package versions) are of no more use.
    for old in std::fs::read_dir(guest_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = old.file_name().to_string_lossy().into_owned();
        if name.starts_with("base-") && old.path() != dir {
            let _ = std::fs::remove_dir_all(old.path());
        }
    }
    Ok(image)
}

/// `items` one a line, each line ended (sh's `read` drops an unended last line).
pub fn lines(items: &[String]) -> String {
    items.iter().map(|i| format!("{i}\n")).collect()
}

fn build(deb: &Path, tmp: &Path) -> Result<(), String> {
    let kroot = tmp.join("kernel");
    std::fs::create_dir_all(&kroot).map_err(|e| format!("{}: {e}", kroot.display()))?;
    run_tool(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&kroot))?;
    let modules_dir = kroot.join("lib/modules");
    let version = std::fs::read_dir(&modules_dir)
        .map_err(|e| format!("{}: {e}", modules_dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .next()
        .ok_or_else(|| format!("{} has no kernel modules", deb.display()))?;
    run_tool(Command::new("depmod").arg("-b").arg(&kroot).arg(&version))
        .map_err(|e| format!("depmod (apt-get install kmod): {e}"))?;
    let mut staging = Staging::new(tmp.join("root"))?;
    // Modules in load order, each once.
    let mut order: Vec<String> = Vec::new();
    for m in MODULES {
        let deps = run_tool(
            Command::new("modprobe")
                .arg("-d")
                .arg(&kroot)
                .arg("-S")
                .arg(&version)
                .arg("--show-depends")
                .arg(m),
        )?;
        for line in deps.lines() {
            let Some(path) = line.strip_prefix("insmod ") else {
                continue;
            };
            let path = path.trim();
            let guest = path
                .strip_prefix(&*kroot.to_string_lossy())
                .ok_or_else(|| format!("module outside the package: {path}"))?
                .to_owned();
            if !order.contains(&guest) {
                staging.file(Path::new(path), &guest)?;
                order.push(guest);
            }
        }
    }
    staging.write("/etc/guest/modules", lines(&order).as_bytes(), 0o644)?;
    let busybox = Path::new("/bin/busybox");
    if !shared_libraries(busybox)?.is_empty() {
        return Err("/bin/busybox is not static: apt-get install busybox-static".into());
    }
    staging.file(busybox, "/bin/busybox")?;
    staging.symlink("/bin/sh", "busybox")?;
    for p in PROGRAMS {
        staging.program(Path::new(p), p)?;
    }
    // libmount looks for mount helpers in /sbin.
    staging.program(Path::new("/usr/sbin/mount.nfs"), "/sbin/mount.nfs")?;
    staging.file(Path::new("/usr/sbin/mount.nfs"), "/sbin/mount.nfs4")?;
    for f in ETC {
        staging.file(Path::new(f), f)?;
    }
    staging.write(
        "/etc/passwd",
        b"root:x:0:0:root:/:/bin/sh\n_rpc:x:100:65534::/run/rpcbind:/bin/false\n",
        0o644,
    )?;
    staging.write("/etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    staging.write(
        "/etc/nsswitch.conf",
        b"passwd: files\ngroup: files\nhosts: files\n",
        0o644,
    )?;
    staging.write(
        "/etc/hosts",
        b"127.0.0.1 localhost\n10.0.2.15 guest\n",
        0o644,
    )?;
    staging.write("/init", INIT.as_bytes(), 0o755)?;
    staging.write("/bin/guest-ctl", CTL.as_bytes(), 0o755)?;
    let out = tmp.join("out");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    staging.pack(&out.join("initrd.cpio"))?;
    std::fs::copy(
        kroot.join(format!("boot/vmlinuz-{version}")),
        out.join("vmlinuz"),
    )
    .map_err(|e| format!("the kernel image of {}: {e}", deb.display()))?;
    Ok(())
}
