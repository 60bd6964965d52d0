//! Removing named temporaries that a crash left behind.
//!
//! The walk is depth-first and holds one descriptor per level of the directory it is in (at
//! most [`MAX_DEPTH`] + 1), however many directories the export has: a datastore with
//! thousands of VM folders is walked whole under a low descriptor limit. What it cannot do
//! (a directory it cannot open, an entry it cannot remove, a tree deeper than it goes) is
//! reported, never skipped in silence.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{unlinkat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::path::{PRIVATE_DIR, TEMP_PREFIX};
use crate::resolve::{open_beneath, RESOLVE};

/// Directories deeper than this are not visited (and are reported).
pub const MAX_DEPTH: usize = 64;
/// At most this many directory entries are looked at (the rest is reported).
const MAX_ENTRIES: usize = 10_000_000;
/// At most this many paths are kept in each list of the report; the counts are exact.
const MAX_LISTED: usize = 100;

/// What a cleanup did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// Temporaries removed.
    pub removed: usize,
    /// Their paths (the first [`MAX_LISTED`]).
    pub removed_paths: Vec<String>,
    /// Things it could not do: a path and why (the first [`MAX_LISTED`]).
    pub problems: Vec<String>,
    /// How many problems there were in all.
    pub problem_count: usize,
}

impl CleanupReport {
    fn removed(&mut self, path: String) {
        self.removed += 1;
        if self.removed_paths.len() < MAX_LISTED {
            self.removed_paths.push(path);
        }
    }

    fn problem(&mut self, path: &str, why: impl std::fmt::Display) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(format!("{path}: {why}"));
        }
    }
}

/// One directory being read: its entries, and its path for messages.
struct Level {
    dir: Dir,
    path: String,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Walks the export (not following symlinks, not crossing mounts, skipping `.openvaai/`) and
/// unlinks regular files named `.openvaai-tmp-*`.
pub(crate) fn cleanup(root: &OwnedFd) -> CleanupReport {
    let mut report = CleanupReport::default();
    let flags = RESOLVE | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // A descriptor of its own (not a dup, which would share the root's read position).
    let first = match rustix::fs::openat(root, ".", dir_flags, Mode::empty()).and_then(Dir::new) {
        Ok(d) => d,
        Err(e) => {
            report.problem(".", format!("cannot read the export root ({e})"));
            return report;
        }
    };
    let mut stack = vec![Level {
        dir: first,
        path: String::new(),
    }];
    let mut seen = 0usize;
    while let Some(level) = stack.last_mut() {
        let entry = match level.dir.next() {
            None => {
                stack.pop();
                continue;
            }
            Some(Err(e)) => {
                let path = if level.path.is_empty() {
                    "."
                } else {
                    &level.path
                };
                report.problem(
                    path,
                    format!("reading the directory failed ({e}); the rest of it was not looked at"),
                );
                stack.pop();
                continue;
            }
            Some(Ok(entry)) => entry,
        };
        seen += 1;
        if seen > MAX_ENTRIES {
            report.problem(
                ".",
                format!("stopped after {MAX_ENTRIES} entries; the rest was not looked at"),
            );
            break;
        }
        let depth = stack.len() - 1;
        let level = stack.last_mut().expect("not empty");
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." || (depth == 0 && bytes == PRIVATE_DIR.as_bytes()) {
            continue;
        }
        let shown = || join(&level.path, &String::from_utf8_lossy(bytes));
        let mut kind = entry.file_type();
        if kind == FileType::Unknown {
            kind = rustix::fs::statat(
                level.dir.fd().unwrap_or(root.as_fd()),
                name,
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map(|st| FileType::from_raw_mode(st.st_mode))
            .unwrap_or(FileType::Unknown);
        }
        match kind {
            FileType::Directory if depth + 1 > MAX_DEPTH => {
                report.problem(
                    &shown(),
                    format!("deeper than {MAX_DEPTH} levels: not looked at"),
                );
            }
            FileType::Directory => {
                let Ok(parent) = level.dir.fd() else {
                    report.problem(&shown(), "cannot be reached");
                    continue;
                };
                match open_beneath(parent, name.to_bytes(), dir_flags, flags) {
                    Ok(fd) => match Dir::new(fd) {
                        Ok(dir) => {
                            let path = shown();
                            stack.push(Level { dir, path });
                        }
                        Err(e) => report.problem(&shown(), format!("cannot be read ({e})")),
                    },
                    // Another filesystem mounted there: not ours to clean.
                    Err(Errno::XDEV) => {}
                    Err(e) => report.problem(&shown(), format!("cannot be opened ({e})")),
                }
            }
            FileType::RegularFile if bytes.starts_with(TEMP_PREFIX.as_bytes()) => {
                let Ok(parent) = level.dir.fd() else {
                    report.problem(&shown(), "cannot be reached");
                    continue;
                };
                match unlinkat(parent, name, AtFlags::empty()) {
                    Ok(()) => report.removed(shown()),
                    Err(Errno::NOENT) => {}
                    Err(e) => report.problem(&shown(), format!("cannot be removed ({e})")),
                }
            }
            _ => {}
        }
    }
    report
}
