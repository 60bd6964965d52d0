//! The journal of reservations in progress, so that a reservation is all or nothing even
//! when the daemon is killed half-way.
//!
//! Before a reservation allocates anything, it writes (durably) what the file's holes were
//! into `.openvaai/reserve-<pid>-<n>`; when it ends — done, or failed and given back — the
//! entry is removed. At the next start, [`recover`] gives back what every entry left behind
//! (the blocks allocated inside the old holes that are still unwritten; data a client wrote
//! since is never touched) and removes the entry.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Dir};

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

/// What a reservation in progress must be able to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The file's path in the export.
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
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
    dir.write_atomic(&name, entry.render().as_bytes(), 0o600)?;
    Ok(Written { dir, name })
}

impl Written<'_> {
    /// The reservation ended and nothing is left to undo.
    pub(crate) fn done(self) {
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
        let entry = dir
            .read(&name, MAX_ENTRY)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| Entry::parse(&t));
        match entry {
            None => report.problems.push(format!(
                "{PRIVATE_DIR}/{name}: not a journal entry this version reads"
            )),
            Some(e) => match undo(&e) {
                Ok(bytes) => report.given_back.push(format!(
                    "{}: gave back {bytes} bytes an interrupted reservation had allocated",
                    e.path
                )),
                Err(why) => report.problems.push(format!("{}: {why}", e.path)),
            },
        }
        let _ = rustix::fs::unlinkat(&dir.fd, name.as_str(), AtFlags::empty());
    }
    let _ = rustix::fs::fsync(&dir.fd);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_refuse_garbage() {
        let e = Entry {
            path: "vm/disk \n-flat.vmdk".into(),
            dev: 2049,
            ino: 77,
            size: 1 << 30,
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
