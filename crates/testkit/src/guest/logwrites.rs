//! Disks that record their writes: a filesystem the host made, under a `dm-log-writes`
//! target in the guest (Debian's cloud kernel ships `dm-mod.ko` and `dm-log-writes.ko`), so
//! that the host can replay every crash state of a workload afterwards
//! ([`crate::replay`]).
//!
//! For a logged disk `NAME` the guest has two virtio disks: the data (serial `NAME`, made
//! by the host's mkfs and copied, before boot, to the base image the replay starts from) and
//! the log (serial `NAME-log`, zeros). At boot the target `lw-NAME` is made over them and
//! mounted on `/export/NAME`, which knfsd exports; [`Knfsd::mark`] logs a mark (the guest's
//! own `dmsetup message lw-NAME 0 mark TEXT` does the same); [`Knfsd::stop_logging`]
//! unexports, unmounts and removes the target (which writes the log's final super block);
//! after [`Knfsd::power_off`], [`Knfsd::write_log`] names the base image and the log.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{image, make_filesystem, run_tool, shell_quote, Knfsd, KnfsdBuilder};
use crate::replay::{sparse_copy, WriteLog};
use crate::FsKind;

/// The log disk's size (sparse): every write of a small workload, with room to spare.
const LOG_SIZE: u64 = 4 << 30;

/// Where `dmsetup` goes in the guest (with its libraries).
const DMSETUP: &str = "/usr/sbin/dmsetup";

/// A logged disk, as asked for.
#[derive(Clone, Debug)]
pub(super) struct LoggedSpec {
    pub name: String,
    pub kind: FsKind,
    pub size: u64,
    /// knfsd export options besides `rw,no_root_squash,no_subtree_check,insecure,fsid=N`.
    pub options: String,
}

/// A logged disk of a running (or powered-off) guest.
#[derive(Clone, Debug)]
pub(super) struct Logged {
    pub name: String,
    pub kind: FsKind,
    pub base: PathBuf,
    pub log: PathBuf,
}

/// What a powered-off guest recorded on a logged disk.
#[derive(Debug)]
pub struct LoggedDisk {
    pub kind: FsKind,
    /// The data device as it was when the target was made.
    pub base: PathBuf,
    pub log: WriteLog,
}

/// The kernel package's `dm-mod.ko` and `dm-log-writes.ko`, extracted once into the guest
/// directory: `(host path, guest path)` in load order.
fn dm_modules() -> Result<Vec<(PathBuf, String)>, String> {
    let deb = image::kernel_deb()?;
    let stem = deb
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("{}: no file name", deb.display()))?;
    let dir = image::guest_dir().join(format!("dm-{stem}"));
    let find = |dir: &Path| -> Option<Vec<(PathBuf, String)>> {
        let modules = dir.join("lib/modules");
        let version = std::fs::read_dir(&modules).ok()?.next()?.ok()?.file_name();
        let md = Path::new("/lib/modules")
            .join(version)
            .join("kernel/drivers/md");
        ["dm-mod.ko", "dm-log-writes.ko"]
            .iter()
            .map(|m| {
                let guest = md.join(m);
                let host = dir.join(guest.strip_prefix("/").expect("absolute"));
                host.is_file()
                    .then(|| (host, guest.to_string_lossy().into_owned()))
            })
            .collect()
    };
    if let Some(found) = find(&dir) {
        return Ok(found);
    }
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    run_tool(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile {} | tar -x -C {} --wildcards \
         './lib/modules/*/kernel/drivers/md/dm-mod.ko' \
         './lib/modules/*/kernel/drivers/md/dm-log-writes.ko'",
        shell_quote(&deb.to_string_lossy()),
        shell_quote(&tmp.to_string_lossy())
    )))
    .map_err(|e| format!("extracting dm-mod.ko and dm-log-writes.ko from the kernel: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    find(&dir).ok_or_else(|| {
        format!(
            "{} has no drivers/md/dm-mod.ko and dm-log-writes.ko",
            deb.display()
        )
    })
}

/// The boot lines that make target `lw-NAME` over the disks `NAME` and `NAME-log`, mount it
/// on `/export/NAME` and export it.
fn setup_lines(spec: &LoggedSpec, fsid: usize) -> String {
    let name = &spec.name;
    format!(
        r#"dev=; log=
for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null)
    [ "$s" = "{name}" ] && dev=/dev/${{b##*/}}
    [ "$s" = "{name}-log" ] && log=/dev/${{b##*/}}
done
[ -n "$dev" ] && [ -n "$log" ] || {{ echo "no disks {name} and {name}-log"; exit 1; }}
{DMSETUP} create --noudevsync lw-{name} --table "0 $(blockdev --getsz $dev) log-writes $dev $log"
[ -b /dev/mapper/lw-{name} ] || {DMSETUP} mknodes lw-{name}
mkdir -p /export/{name}
mount -t {fstype} /dev/mapper/lw-{name} /export/{name}
exportfs -o rw,no_root_squash,no_subtree_check,insecure,fsid={fsid},{options} '*:/export/{name}'"#,
        fstype = spec.kind.name(),
        options = spec.options,
    )
}

impl KnfsdBuilder {
    /// A `kind` disk of `size` bytes named `name` whose every write is recorded by a
    /// `dm-log-writes` target in the guest, mounted on `/export/NAME` and exported
    /// `rw,no_root_squash,sync,insecure` (see [`KnfsdBuilder::logged_disk_with`]).
    pub fn logged_disk(self, name: &str, kind: FsKind, size: u64) -> Self {
        self.logged_disk_with(name, kind, size, "sync")
    }

    /// Like [`KnfsdBuilder::logged_disk`], with `options` (e.g. `async`) added to the
    /// export's options.
    pub fn logged_disk_with(mut self, name: &str, kind: FsKind, size: u64, options: &str) -> Self {
        if self.logged.is_empty() {
            match dm_modules() {
                Ok(modules) => {
                    for (host, guest) in modules {
                        self = self.module(&host, &guest);
                    }
                }
                Err(e) => self.missing = Some(e),
            }
            self = self.program(Path::new(DMSETUP), DMSETUP);
        }
        let spec = LoggedSpec {
            name: name.to_owned(),
            kind,
            size,
            options: options.to_owned(),
        };
        let fsid = 50 + self.logged.len();
        self = self.setup(&setup_lines(&spec, fsid));
        self.logged.push(spec);
        self
    }
}

/// Makes the images of the logged disks in `dir`: the data (formatted), its base copy and
/// the log; the drives to attach are pushed on `drives`.
pub(super) fn make_images(
    specs: &[LoggedSpec],
    dir: &Path,
    drives: &mut Vec<(String, PathBuf)>,
) -> Result<Vec<Logged>, String> {
    let mut logged = Vec::new();
    for spec in specs {
        let data = dir.join(format!("logged-{}.img", spec.name));
        let base = dir.join(format!("logged-{}.base.img", spec.name));
        let log = dir.join(format!("logged-{}.log.img", spec.name));
        make_filesystem(&data, spec.kind, spec.size)?;
        sparse_copy(&data, &base)?;
        std::fs::File::create(&log)
            .and_then(|f| f.set_len(LOG_SIZE))
            .map_err(|e| format!("{}: {e}", log.display()))?;
        drives.push((spec.name.clone(), data));
        drives.push((format!("{}-log", spec.name), log.clone()));
        logged.push(Logged {
            name: spec.name.clone(),
            kind: spec.kind,
            base,
            log,
        });
    }
    Ok(logged)
}

impl Knfsd {
    fn logged(&self, name: &str) -> Result<&Logged, String> {
        self.logged
            .iter()
            .find(|l| l.name == name)
            .ok_or_else(|| format!("the guest has no logged disk named {name}"))
    }

    /// Logs mark `text` (no spaces) on logged disk `name`.
    pub fn mark(&self, name: &str, text: &str) -> Result<(), String> {
        self.logged(name)?;
        self.run(&format!(
            "{DMSETUP} message lw-{name} 0 mark {}",
            shell_quote(text)
        ))
        .map(drop)
    }

    /// Unexports and unmounts logged disk `name` and removes its target, which writes the
    /// log's last entries and its super block.
    pub fn stop_logging(&self, name: &str) -> Result<(), String> {
        self.logged(name)?;
        self.run(&format!(
            "exportfs -u '*:/export/{name}' 2>/dev/null; umount /export/{name} && \
             rmdir /export/{name} && {DMSETUP} remove --noudevsync lw-{name} && sync"
        ))
        .map(drop)
    }

    /// What logged disk `name` recorded: after [`Knfsd::stop_logging`] and
    /// [`Knfsd::power_off`].
    pub fn write_log(&self, name: &str) -> Result<LoggedDisk, String> {
        if self.machine.is_some() {
            return Err("write_log needs the guest powered off (Knfsd::power_off)".into());
        }
        let l = self.logged(name)?;
        Ok(LoggedDisk {
            kind: l.kind,
            base: l.base.clone(),
            log: WriteLog::open(&l.log)?,
        })
    }
}
