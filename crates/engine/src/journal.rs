//! The journal of reservations in progress, so that a reservation is all or nothing even
//! when the daemon is killed half-way.
//!
//! Before a reservation allocates anything, it writes (durably) what the file's holes were
//! into `.openvaai/reserve-<pid>-<n>`; when it ends — done, or failed and given back — the
//! entry is removed. At the next start, [`recover`] gives back what every entry left behind
//! (the blocks allocated inside the old holes that are still unwritten; data a client wrote
//! since is never touched) and removes the entry.
//!
//! The private directory is inside the export, so any NFS client that mounts it as root can
//! write there. An entry is therefore only replayed if it is provably the daemon's: each one
//! carries a `trusted.openvaai.journal` extended attribute holding the SHA-256 of its bytes.
//! Only a process with CAP_SYS_ADMIN on the NAS can set a `trusted.` attribute; NFS (RFC
//! 8276, knfsd) and SMB expose the `user.` namespace alone. An entry without the mark, or
//! whose bytes no longer match it, is refused and removed, and nothing is given back for it.
//! Where the mark cannot be set (a filesystem without `trusted.` attributes, a daemon without
//! CAP_SYS_ADMIN in its namespace), a crash leaves that reservation's blocks allocated, which
//! loses nothing. The replay then checks the path like any other path on the API, and the
//! file's identity (device, inode, birth time): see `Export::recover_reserves`.

use std::fmt::Write as _;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{
    fgetxattr, fremovexattr, fsetxattr, openat, AtFlags, Dir, Mode, OFlags, StatxFlags, XattrFlags,
};

use crate::error::Error;
use crate::path::PRIVATE_DIR;
use crate::private::PrivateDir;

const PREFIX: &str = "reserve-";
const MAGIC: &str = "openvaai reserve journal 1";
/// Holes kept in an entry; a file with more is recorded as one hole over its whole length
/// (a crash then also gives back an earlier reservation of that file, never data).
const MAX_HOLES: usize = 65_536;
/// The largest entry read back.
const MAX_ENTRY: usize = 4 << 20;
/// The extended attribute that proves an entry was written by the daemon.
const MARK: &str = "trusted.openvaai.journal";

/// What a reservation in progress must be able to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The file's path in the export.
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// The file's birth time (seconds, nanoseconds) where the filesystem records one: an
    /// inode number can be reused by a later file, a birth time tells them apart.
    pub born: Option<(i64, u32)>,
    /// The holes of `[0, size)` before the reservation.
    pub holes: Vec<(u64, u64)>,
}

impl Entry {
    fn render(&self) -> String {
        let mut s = format!("{MAGIC}\npath ");
        for b in self.path.bytes() {
            let _ = write!(s, "{b:02x}");
        }
        let _ = write!(
            s,
            "\ndev {}\nino {}\nsize {}\n",
            self.dev, self.ino, self.size
        );
        if let Some((sec, nsec)) = self.born {
            let _ = writeln!(s, "born {sec} {nsec}");
        }
        if self.holes.len() > MAX_HOLES {
            let _ = writeln!(s, "hole 0 {}", self.size);
        } else {
            for (a, b) in &self.holes {
                let _ = writeln!(s, "hole {a} {b}");
            }
        }
        s
    }

    fn parse(text: &str) -> Option<Entry> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut e = Entry {
            path: String::new(),
            dev: 0,
            ino: 0,
            size: 0,
            born: None,
            holes: Vec::new(),
        };
        for line in lines {
            let (key, value) = line.split_once(' ')?;
            match key {
                "path" => {
                    let bytes: Option<Vec<u8>> = (0..value.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(value.get(i..i + 2)?, 16).ok())
                        .collect();
                    e.path = String::from_utf8(bytes?).ok()?;
                }
                "dev" => e.dev = value.parse().ok()?,
                "ino" => e.ino = value.parse().ok()?,
                "size" => e.size = value.parse().ok()?,
                "born" => {
                    let (sec, nsec) = value.split_once(' ')?;
                    e.born = Some((sec.parse().ok()?, nsec.parse().ok()?));
                }
                "hole" => {
                    let (a, b) = value.split_once(' ')?;
                    e.holes.push((a.parse().ok()?, b.parse().ok()?));
                }
                _ => return None,
            }
        }
        (!e.path.is_empty()).then_some(e)
    }
}

/// A journal entry on disk, removed by [`Written::done`] (or left for [`recover`] if the
/// process dies first).
pub(crate) struct Written<'a> {
    dir: &'a PrivateDir,
    name: String,
}

/// Writes `entry` durably before a reservation starts.
pub(crate) fn begin<'a>(dir: &'a PrivateDir, entry: &Entry) -> Result<Written<'a>, Error> {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let text = entry.render();
    dir.write_atomic(&name, text.as_bytes(), 0o600)?;
    if let Err(e) = mark(dir, &name, text.as_bytes()) {
        tracing::warn!(
            "{PRIVATE_DIR}/{name}: the journal entry of {} cannot be marked as the daemon's \
             ({MARK}: {e}); should the daemon stop during this reservation, its blocks stay \
             allocated",
            entry.path
        );
    }
    Ok(Written { dir, name })
}

/// `statx(fd, "", AT_EMPTY_PATH, STATX_BTIME)` — the file's birth time, where the filesystem
/// keeps one (XFS, ext4 and Btrfs do).
pub(crate) fn birth(fd: BorrowedFd<'_>) -> Option<(i64, u32)> {
    let sx = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BTIME).ok()?;
    (sx.stx_mask & StatxFlags::BTIME.bits() != 0)
        .then_some((sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec))
}

/// The mark of an entry whose bytes are `text`: their SHA-256, in hex.
fn digest(text: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, text);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `fsetxattr(entry, MARK, sha256(text))`, then `fsync(entry)`: marks `name` as written by
/// the daemon.
pub(crate) fn mark(dir: &PrivateDir, name: &str, text: &[u8]) -> rustix::io::Result<()> {
    let f = open_entry(dir, name)?;
    fsetxattr(&f, MARK, digest(text).as_bytes(), XattrFlags::empty())?;
    rustix::fs::fsync(&f)
}

fn open_entry(dir: &PrivateDir, name: &str) -> rustix::io::Result<std::os::fd::OwnedFd> {
    openat(
        &dir.fd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `fremovexattr(entry, MARK)`: the mark lives on the inode, so this also voids every hard
/// link a client may have made to the entry meanwhile, which could otherwise be replayed
/// at a later start, after its reservation ended.
fn unmark(dir: &PrivateDir, name: &str) {
    if let Ok(f) = open_entry(dir, name) {
        let _ = fremovexattr(&f, MARK);
    }
}

/// Whether `name`, whose bytes read `text`, carries the daemon's mark for exactly those bytes.
fn marked(dir: &PrivateDir, name: &str, text: &[u8]) -> bool {
    let Ok(f) = open_entry(dir, name) else {
        return false;
    };
    let mut buf = [0u8; 64];
    match fgetxattr(&f, MARK, &mut buf[..]) {
        Ok(n) => buf[..n] == *digest(text).as_bytes(),
        Err(_) => false,
    }
}

impl Written<'_> {
    /// The reservation ended and nothing is left to undo.
    pub(crate) fn done(self) {
        unmark(self.dir, &self.name);
        let _ = rustix::fs::unlinkat(&self.dir.fd, self.name.as_str(), AtFlags::empty());
        let _ = rustix::fs::fsync(&self.dir.fd);
    }
}

/// What [`recover`] did: one line per entry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Reservations given back: the file and how many bytes.
    pub given_back: Vec<String>,
    /// Entries that could not be applied, and why (they are removed all the same).
    pub problems: Vec<String>,
}

/// Gives back what interrupted reservations allocated and removes their entries, calling
/// `undo(path, dev, ino, holes, size)` for each (it opens the file and returns the bytes
/// given back). Call it at start, before any job runs.
pub(crate) fn recover(
    dir: &PrivateDir,
    mut undo: impl FnMut(&Entry) -> Result<u64, String>,
) -> RecoveryReport {
    let mut report = RecoveryReport::default();
    let names: Vec<String> = match Dir::read_from(dir.fd.as_fd()) {
        Ok(d) => d
            .flatten()
            .map(|e| String::from_utf8_lossy(e.file_name().to_bytes()).into_owned())
            .filter(|n| n.starts_with(PREFIX))
            .collect(),
        Err(e) => {
            report
                .problems
                .push(format!("{PRIVATE_DIR}: cannot be read ({e})"));
            return report;
        }
    };
    for name in names {
        let bytes = dir.read(&name, MAX_ENTRY).ok();
        let entry = bytes
            .as_ref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(Entry::parse);
        match entry {
            None => report.problems.push(format!(
                "{PRIVATE_DIR}/{name}: not a journal entry this version reads; removed, \
                 nothing given back"
            )),
            Some(_) if !marked(dir, &name, bytes.as_deref().unwrap_or_default()) => {
                report.problems.push(format!(
                    "{PRIVATE_DIR}/{name}: not written by this daemon (no valid {MARK} \
                     attribute: planted or altered through the export?); removed, nothing \
                     given back"
                ))
            }
            Some(e) => match undo(&e) {
                Ok(bytes) => report.given_back.push(format!(
                    "{}: gave back {bytes} bytes an interrupted reservation had allocated",
                    e.path
                )),
                Err(why) => report.problems.push(format!("{}: {why}", e.path)),
            },
        }
        unmark(dir, &name);
        let _ = rustix::fs::unlinkat(&dir.fd, name.as_str(), AtFlags::empty());
    }
    let _ = rustix::fs::fsync(&dir.fd);
    report
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn entries_round_trip_and_refuse_garbage() {
        let e = Entry {
            path: "vm/disk \n-flat.vmdk".into(),
            dev: 2049,
            ino: 77,
            size: 1 << 30,
            born: Some((1_700_000_000, 999_999_999)),
            holes: vec![(0, 4096), (1 << 20, 1 << 30)],
        };
        assert_eq!(Entry::parse(&e.render()), Some(e.clone()));
        let many = Entry {
            holes: (0..MAX_HOLES as u64 + 1)
                .map(|i| (i * 8192, i * 8192 + 4096))
                .collect(),
            ..e.clone()
        };
        assert_eq!(
            Entry::parse(&many.render()).unwrap().holes,
            vec![(0, 1 << 30)]
        );
        for bad in [
            "",
            "openvaai reserve journal 2\npath 61",
            &format!("{MAGIC}\ndev x"),
            &format!("{MAGIC}\nsize 1"),
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
    }
}
