//! OpenZFS in the guest, the filesystem of TrueNAS: the prebuilt OpenZFS modules and tools
//! (`shared/zfs`, beside the repository, see its README; never committed here) copied in at
//! boot, a pool made on a partitioned raw disk (`zpool create` finds no partitions of a whole
//! disk without udev), a dataset mounted on `/export/POOL` and exported like the other disks.
//!
//! The modules load only into the kernel they are built for ([`super::KERNEL_PACKAGE`]):
//! with another guest kernel the fixture is unavailable (skipped, or a panic in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::image::Staging;
use super::run_tool;

/// Overrides where the OpenZFS files are: a directory with `modules/`, `sbin/` and `lib/`.
pub const ZFS_DIR_ENV: &str = "OPENVAAI_ZFS_DIR";

/// Where the tools and libraries go in the guest (`zpool` and `zfs` are also on `PATH`,
/// as wrappers that set `LD_LIBRARY_PATH`).
pub const GUEST_ZFS: &str = "/opt/zfs";

/// The files a usable directory has.
const NEEDED: &[&str] = &["modules/spl.ko", "modules/zfs.ko", "sbin/zpool", "sbin/zfs"];

fn usable(dir: &Path) -> bool {
    NEEDED.iter().all(|f| dir.join(f).is_file()) && dir.join("lib").is_dir()
}

/// The OpenZFS directory: `$OPENVAAI_ZFS_DIR`, else `shared/zfs` beside the repository (or
/// beside any directory above it, or above the test binary: CI runs with a copy of `shared/`
/// next to the clone); an error saying where it looked.
pub fn zfs_dir() -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().unwrap_or_default();
    find_zfs_dir(std::env::var_os(ZFS_DIR_ENV), &[repo, &exe])
}

/// [`zfs_dir`] with the environment variable's value and the starting points given.
fn find_zfs_dir(env: Option<std::ffi::OsString>, starts: &[&Path]) -> Result<PathBuf, String> {
    if let Some(d) = env {
        let d = PathBuf::from(d);
        return match usable(&d) {
            true => Ok(d),
            false => Err(format!(
                "{ZFS_DIR_ENV}={} has not all of {} and lib/",
                d.display(),
                NEEDED.join(", ")
            )),
        };
    }
    let mut looked = Vec::new();
    for start in starts {
        for dir in start.ancestors().skip(1) {
            let candidate = dir.join("shared/zfs");
            if usable(&candidate) {
                return Ok(candidate);
            }
            looked.push(candidate.display().to_string());
        }
    }
    Err(format!(
        "no OpenZFS build for the guest (modules/spl.ko, modules/zfs.ko, sbin/zpool, sbin/zfs, \
         lib/) in any of: {}; put shared/zfs beside the repository or set {ZFS_DIR_ENV}",
        looked.join(", ")
    ))
}

/// A sparse raw image of `size` bytes with a GPT and one partition over all of it.
pub(super) fn partitioned_image(image: &Path, size: u64) -> Result<(), String> {
    std::fs::File::create(image)
        .and_then(|f| f.set_len(size))
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running sfdisk (apt-get install fdisk): {e}"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("sfdisk stdin");
        stdin
            .write_all(b"label: gpt\n,,\n")
            .map_err(|e| format!("writing to sfdisk: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("sfdisk: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sfdisk on {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Copies the tools (with the system libraries they need, at the host's paths), OpenZFS's own
/// libraries and the `PATH` wrappers into the guest.
pub(super) fn stage(staging: &mut Staging, dir: &Path) -> Result<(), String> {
    let lib = dir.join("lib");
    for entry in std::fs::read_dir(&lib).map_err(|e| format!("{}: {e}", lib.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        staging.file(&path, &format!("{GUEST_ZFS}/lib/{name}"))?;
    }
    for tool in ["zpool", "zfs"] {
        staging.program_with(
            &dir.join("sbin").join(tool),
            &format!("{GUEST_ZFS}/sbin/{tool}"),
            Some(&lib),
        )?;
        let wrapper = format!(
            "#!/bin/sh\nLD_LIBRARY_PATH={GUEST_ZFS}/lib exec {GUEST_ZFS}/sbin/{tool} \"$@\"\n"
        );
        staging.write(&format!("/usr/sbin/{tool}"), wrapper.as_bytes(), 0o755)?;
    }
    Ok(())
}

/// The boot lines that make pool `pool` on the partition of the disk with serial `serial`,
/// a dataset of it on `/export/POOL` (lz4, as TrueNAS makes them) and export it.
/// The export goes into `/etc/exports`, not only `exportfs -o`: OpenZFS's libshare runs
/// `exportfs -ra` whenever a dataset is unmounted (`zpool destroy` of the engine tests'
/// pools), which drops every export `/etc/exports` does not list.
pub(super) fn setup_script(pool: &str, serial: &str, fsid: usize) -> String {
    format!(
        "ln -sf /proc/self/mounts /etc/mtab\n\
         dev=\n\
         for b in /sys/block/vd*; do \
           [ \"$(cat \"$b/serial\" 2>/dev/null)\" = {serial} ] && dev=/dev/${{b##*/}}1; \
         done\n\
         [ -b \"$dev\" ] || {{ echo \"no partition on the disk with serial {serial}\"; exit 1; }}\n\
         zpool create -f -o cachefile=none -O mountpoint=none -O compression=lz4 {pool} \"$dev\"\n\
         zfs create -o mountpoint=/export/{pool} {pool}/vmware\n\
         echo '/export/{pool} *(rw,no_root_squash,sync,no_subtree_check,insecure,fsid={fsid})' \
           >> /etc/exports\n\
         exportfs -ra\n\
         echo \"openvaai-guest: zfs $(zpool get -H -o value version,feature@block_cloning \
           {pool} | tr '\\n' ' ')bclone $(cat /sys/module/zfs/parameters/zfs_bclone_enabled)\"\n"
    )
}

/// Whether the guest's kernel package `deb` is the one the modules are built for.
pub(super) fn kernel_fits(deb: &Path) -> Result<(), String> {
    let package = run_tool(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Package"))?;
    if package == super::KERNEL_PACKAGE {
        Ok(())
    } else {
        Err(format!(
            "the OpenZFS modules are built for {}, the guest would run {package} ({}): \
             apt-get download {} into target/guest/debs, or set {}",
            super::KERNEL_PACKAGE,
            deb.display(),
            super::KERNEL_PACKAGE,
            super::KERNEL_DEB_ENV
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_build(dir: &Path) {
        for f in NEEDED {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        std::fs::create_dir_all(dir.join("lib")).unwrap();
    }

    #[test]
    fn the_build_is_found_beside_the_repository_or_named_or_the_error_says_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("clone/crates/testkit");
        std::fs::create_dir_all(&repo).unwrap();
        let err = find_zfs_dir(None, &[&repo]).unwrap_err();
        assert!(
            err.contains(&tmp.path().join("shared/zfs").display().to_string()),
            "{err}"
        );
        assert!(err.contains(ZFS_DIR_ENV), "{err}");

        fake_build(&tmp.path().join("shared/zfs"));
        assert_eq!(
            find_zfs_dir(None, &[&repo]).unwrap(),
            tmp.path().join("shared/zfs")
        );
        // Named but incomplete: an error, not a search elsewhere.
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = find_zfs_dir(Some(empty.clone().into()), &[&repo]).unwrap_err();
        assert!(err.contains("modules/zfs.ko"), "{err}");
        fake_build(&empty);
        assert_eq!(
            find_zfs_dir(Some(empty.clone().into()), &[&repo]).unwrap(),
            empty
        );
    }

    #[test]
    fn a_partitioned_image_has_one_gpt_partition_over_the_disk() {
        if super::super::which("sfdisk").is_none() {
            assert!(
                !crate::testfs::require_fs_tests(),
                "sfdisk missing (apt-get install fdisk)"
            );
            eprintln!("skipping: no sfdisk");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("disk.img");
        partitioned_image(&img, 64 << 20).unwrap();
        let dump = run_tool(Command::new("sfdisk").arg("--dump").arg(&img)).unwrap();
        assert!(dump.contains("label: gpt"), "{dump}");
        let parts: Vec<&str> = dump.lines().filter(|l| l.contains(" : start=")).collect();
        assert_eq!(parts.len(), 1, "{dump}");
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);
    }
}
