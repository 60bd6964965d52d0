//! Crash states from a `dm-log-writes` record, replayed on the host.
//!
//! A `dm-log-writes` target (Linux `drivers/md/dm-log-writes.c`) passes every write to its
//! data device and appends it, in the order the writes became stable, to a log device; a
//! `dmsetup message DEV 0 mark NAME` appends a mark. The log is:
//!
//! - a super block at byte 0: `magic: u64, version: u64, nr_entries: u64, sectorsize: u32`
//!   (little-endian; magic `0x6a736677736872`, version 1);
//! - from byte `sectorsize` on, `nr_entries` entries, each a header of one `sectorsize` block
//!   (`sector: u64, nr_sectors: u64, flags: u64, data_len: u64`, for a mark followed by its
//!   text) and then, unless it is a discard, `nr_sectors` blocks of the data written.
//!   `sector` and `nr_sectors` count `sectorsize` blocks of the data device.
//!
//! [`WriteLog::replay`] writes the entries onto a copy of the data device as it was when the
//! target was made, and at every entry that is a FLUSH or a FUA write — the points where a
//! filesystem has been told its earlier writes are stable, so where a power cut can show it
//! any state it then promised — hands a sparse copy of the device to a check. The check
//! mounts it ([`StateMount`]: read-write, so the filesystem's log recovery runs as after a
//! real crash) and judges it.
//!
//! Ours rather than xfstests' `replay-log`: the suite then needs no C build of a test input
//! and no second device-mapper target on a host that has none (this machine's kernel has no
//! device-mapper), the states are plain image files the host mounts, and each point knows
//! its marks directly.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::fs::{FallocateFlags, SeekFrom};

/// `WRITE_LOG_MAGIC`.
pub const MAGIC: u64 = 0x006a_7366_7773_6872;
/// `WRITE_LOG_VERSION`.
pub const VERSION: u64 = 1;

/// An entry's flags.
pub mod flag {
    pub const FLUSH: u64 = 1 << 0;
    pub const FUA: u64 = 1 << 1;
    pub const DISCARD: u64 = 1 << 2;
    pub const MARK: u64 = 1 << 3;
    pub const METADATA: u64 = 1 << 4;
}

/// The mark the target itself logs when it is removed.
pub const END_MARK: &str = "dm-log-writes-end";

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it was written on the data device, in bytes.
    pub offset: u64,
    /// How many bytes (0 for a pure flush or a mark).
    pub len: u64,
    pub flags: u64,
    /// A mark's text.
    pub mark: Option<String>,
    /// Where its data is in the log, in bytes.
    data_at: u64,
}

impl Entry {
    /// A point where a crash may show the device as written so far.
    pub fn is_crash_point(&self) -> bool {
        self.flags & (flag::FLUSH | flag::FUA) != 0
    }
}

/// A point of the replay handed to the check.
#[derive(Clone, Debug)]
pub struct CrashPoint {
    /// The entry's index in the log (every entry up to it, inclusive, is on the state).
    pub entry: usize,
    pub flags: u64,
    /// The marks logged before this point, in order.
    pub marks: Vec<String>,
}

impl CrashPoint {
    /// Whether mark `name` precedes this point.
    pub fn after(&self, name: &str) -> bool {
        self.marks.iter().any(|m| m == name)
    }

    /// The last mark before this point ("" before any).
    pub fn last_mark(&self) -> &str {
        self.marks.last().map_or("", String::as_str)
    }
}

/// A point the check judged bad.
#[derive(Clone, Debug)]
pub struct BadPoint {
    pub point: CrashPoint,
    pub why: String,
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Entries in the log.
    pub entries: usize,
    /// Crash points judged (FLUSH or FUA entries at or after the first judged mark).
    pub judged: usize,
    /// Crash points before the first judged mark (replayed, not judged).
    pub skipped: usize,
    pub bad: Vec<BadPoint>,
    pub elapsed: Duration,
}

/// A `dm-log-writes` log device (an image file).
#[derive(Debug)]
pub struct WriteLog {
    file: File,
    path: PathBuf,
    sectorsize: u64,
    entries: Vec<Entry>,
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl WriteLog {
    /// Reads the log's super block and entry headers; an error names what is wrong.
    pub fn open(path: &Path) -> Result<WriteLog, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let what = |s: &str| format!("{}: {s}", path.display());
        let mut sup = [0u8; 28];
        file.read_exact_at(&mut sup, 0)
            .map_err(|e| what(&format!("reading the super block: {e}")))?;
        if le64(&sup, 0) != MAGIC {
            return Err(what(
                "no dm-log-writes super block (was the target removed with `dmsetup remove` \
                 before the guest stopped?)",
            ));
        }
        if le64(&sup, 8) != VERSION {
            return Err(what(&format!("log version {} (1 expected)", le64(&sup, 8))));
        }
        let count = le64(&sup, 16);
        let sectorsize = u64::from(u32::from_le_bytes(sup[24..28].try_into().expect("4")));
        if !(512..=65536).contains(&sectorsize) || !sectorsize.is_power_of_two() {
            return Err(what(&format!("sector size {sectorsize}")));
        }
        let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
        let mut at = sectorsize;
        let mut head = vec![0u8; sectorsize as usize];
        for i in 0..count {
            if at + sectorsize > len {
                return Err(what(&format!(
                    "entry {i} of {count} is past the log's end ({len} bytes)"
                )));
            }
            file.read_exact_at(&mut head, at)
                .map_err(|e| what(&format!("reading entry {i}: {e}")))?;
            let (sector, nr, flags, data_len) = (
                le64(&head, 0),
                le64(&head, 8),
                le64(&head, 16),
                le64(&head, 24),
            );
            let mark = match flags & flag::MARK {
                0 => None,
                _ => {
                    let n = (data_len as usize).min(head.len() - 32);
                    Some(String::from_utf8_lossy(&head[32..32 + n]).into_owned())
                }
            };
            let data_at = at + sectorsize;
            let bytes = match flags & flag::DISCARD {
                0 => nr * sectorsize,
                _ => 0,
            };
            if data_at + bytes > len {
                return Err(what(&format!("entry {i}'s data is past the log's end")));
            }
            entries.push(Entry {
                offset: sector * sectorsize,
                len: nr * sectorsize,
                flags,
                mark,
                data_at,
            });
            at = data_at + bytes;
        }
        Ok(WriteLog {
            file,
            path: path.to_owned(),
            sectorsize,
            entries,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn sectorsize(&self) -> u64 {
        self.sectorsize
    }

    /// The marks in the log, in order.
    pub fn marks(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|e| e.mark.as_deref())
            .collect()
    }

    /// Writes entry `i` onto `image` (a discard reads back as zeros: a hole is punched).
    fn apply(&self, i: usize, image: &File, buf: &mut Vec<u8>) -> Result<(), String> {
        let e = &self.entries[i];
        if e.flags & flag::MARK != 0 || e.len == 0 {
            return Ok(());
        }
        if e.flags & flag::DISCARD != 0 {
            let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
            return rustix::fs::fallocate(image, flags, e.offset, e.len)
                .map_err(|err| format!("discarding entry {i}: {err}"));
        }
        buf.resize(e.len as usize, 0);
        self.file
            .read_exact_at(buf, e.data_at)
            .map_err(|err| format!("{}: entry {i}: {err}", self.path.display()))?;
        image
            .write_all_at(buf, e.offset)
            .map_err(|err| format!("writing entry {i} onto the image: {err}"))
    }

    /// Replays the log onto a copy of `base` (the data device when the target was made), in
    /// `scratch`, and calls `check` at every crash point from the entry of mark `from` on
    /// (every point when `from` is `None`) with a sparse copy of the device at that point;
    /// the points `check` rejects are the report's `bad`. An error is a replay that could
    /// not run (a missing mark, an unreadable log, no room).
    pub fn replay(
        &self,
        base: &Path,
        scratch: &Path,
        from: Option<&str>,
        mut check: impl FnMut(&CrashPoint, &Path) -> Result<(), String>,
    ) -> Result<ReplayReport, String> {
        let started = Instant::now();
        let first = match from {
            None => 0,
            Some(m) => self
                .entries
                .iter()
                .position(|e| e.mark.as_deref() == Some(m))
                .ok_or_else(|| format!("{}: no mark {m:?}", self.path.display()))?,
        };
        let work = scratch.join("replay.img");
        let state = scratch.join("state.img");
        sparse_copy(base, &work)?;
        let image = std::fs::OpenOptions::new()
            .write(true)
            .open(&work)
            .map_err(|e| format!("{}: {e}", work.display()))?;
        let mut report = ReplayReport {
            entries: self.entries.len(),
            ..ReplayReport::default()
        };
        let mut marks = Vec::new();
        let mut buf = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            self.apply(i, &image, &mut buf)?;
            if let Some(m) = &e.mark {
                marks.push(m.clone());
            }
            if !e.is_crash_point() {
                continue;
            }
            if i < first {
                report.skipped += 1;
                continue;
            }
            report.judged += 1;
            sparse_copy(&work, &state)?;
            let point = CrashPoint {
                entry: i,
                flags: e.flags,
                marks: marks.clone(),
            };
            if let Err(why) = check(&point, &state) {
                report.bad.push(BadPoint { point, why });
            }
        }
        let _ = std::fs::remove_file(&state);
        let _ = std::fs::remove_file(&work);
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

/// Copies `from` to `to` (replaced), its holes left holes: only the data is read and written.
pub fn sparse_copy(from: &Path, to: &Path) -> Result<(), String> {
    let err = |p: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", p.display());
    let src = File::open(from).map_err(|e| err(from, &e))?;
    let len = src.metadata().map_err(|e| err(from, &e))?.len();
    let dst = File::create(to).map_err(|e| err(to, &e))?;
    dst.set_len(len).map_err(|e| err(to, &e))?;
    let mut pos = 0u64;
    while pos < len {
        let data = match rustix::fs::seek(&src, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(err(from, &e)),
        };
        let hole = rustix::fs::seek(&src, SeekFrom::Hole(data)).map_err(|e| err(from, &e))?;
        let (mut off_in, mut off_out) = (data, data);
        while off_in < hole {
            let want = (hole - off_in) as usize;
            let n = rustix::fs::copy_file_range(
                &src,
                Some(&mut off_in),
                &dst,
                Some(&mut off_out),
                want,
            )
            .map_err(|e| err(to, &e))?;
            if n == 0 {
                return Err(err(from, &"copy_file_range copied nothing"));
            }
        }
        pos = hole;
    }
    Ok(())
}

/// A crash state (an image file) mounted read-write on the host, so that the filesystem
/// recovers its log as it would after the crash; unmounted (and its loop device detached)
/// on drop.
pub struct StateMount {
    dir: tempfile::TempDir,
}

impl StateMount {
    /// `mount -t FSTYPE -o loop IMAGE`; an error with mount's message (the state is bad if
    /// the filesystem cannot recover it).
    pub fn new(image: &Path, fstype: &str) -> Result<StateMount, String> {
        let dir = tempfile::Builder::new()
            .prefix("openvaai-crash-state-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        crate::guest::run_tool(
            Command::new("mount")
                .args(["-t", fstype, "-o", "loop"])
                .arg(image)
                .arg(dir.path()),
        )
        .map_err(|e| format!("the crash state does not mount: {e}"))?;
        Ok(StateMount { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for StateMount {
    fn drop(&mut self) {
        for attempt in 0..10 {
            if Command::new("umount")
                .arg(self.dir.path())
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50 * (attempt + 1)));
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log as the target writes it: super block, then `(offset, data, flags, mark)` entries.
    fn write_log(path: &Path, entries: &[(u64, Vec<u8>, u64, Option<&str>)]) {
        let ss = 512u64;
        let f = File::create(path).unwrap();
        let mut sup = Vec::new();
        sup.extend(MAGIC.to_le_bytes());
        sup.extend(VERSION.to_le_bytes());
        sup.extend((entries.len() as u64).to_le_bytes());
        sup.extend((ss as u32).to_le_bytes());
        f.write_all_at(&sup, 0).unwrap();
        let mut at = ss;
        for (off, data, flags, mark) in entries {
            let mut head = Vec::new();
            head.extend((off / ss).to_le_bytes());
            head.extend((data.len() as u64 / ss).to_le_bytes());
            head.extend(flags.to_le_bytes());
            head.extend((mark.map_or(0, str::len) as u64).to_le_bytes());
            head.extend(mark.unwrap_or("").as_bytes());
            head.resize(ss as usize, 0);
            f.write_all_at(&head, at).unwrap();
            f.write_all_at(data, at + ss).unwrap();
            at += ss + data.len() as u64;
        }
    }

    #[test]
    fn replays_to_every_flush_and_fua_with_the_marks_before_each() {
        let tmp = tempfile::tempdir().unwrap();
        let (log, base) = (tmp.path().join("log"), tmp.path().join("base"));
        std::fs::write(&base, vec![0u8; 8192]).unwrap();
        write_log(
            &log,
            &[
                (0, vec![1; 512], 0, None),
                (0, vec![], flag::FLUSH, None),
                (0, vec![], flag::MARK, Some("one")),
                (1024, vec![2; 1024], flag::FUA, None),
                (0, vec![], flag::MARK, Some("two")),
                (4096, vec![3; 512], 0, None),
                (0, vec![], flag::FLUSH, None),
                (0, vec![], flag::MARK, Some(END_MARK)),
            ],
        );
        let wl = WriteLog::open(&log).unwrap();
        assert_eq!(wl.entries().len(), 8);
        assert_eq!(wl.marks(), ["one", "two", END_MARK]);
        let mut seen = Vec::new();
        let report = wl
            .replay(&base, tmp.path(), None, |p, state| {
                let img = std::fs::read(state).unwrap();
                seen.push((p.entry, p.marks.clone(), img[0], img[1024], img[4096]));
                match p.after("two") {
                    true => Err("after two".into()),
                    false => Ok(()),
                }
            })
            .unwrap();
        assert_eq!(
            seen,
            [
                (1, vec![], 1, 0, 0),
                (3, vec!["one".to_owned()], 1, 2, 0),
                (6, vec!["one".to_owned(), "two".to_owned()], 1, 2, 3),
            ]
        );
        assert_eq!((report.judged, report.skipped, report.bad.len()), (3, 0, 1));
        let from = wl
            .replay(&base, tmp.path(), Some("one"), |_, _| Ok(()))
            .unwrap();
        assert_eq!((from.judged, from.skipped), (2, 1));
        assert!(wl
            .replay(&base, tmp.path(), Some("nope"), |_, _| Ok(()))
            .is_err());
    }

    #[test]
    fn a_log_without_a_super_block_or_cut_short_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        std::fs::write(&log, vec![0u8; 4096]).unwrap();
        let e = WriteLog::open(&log).err().unwrap();
        assert!(e.contains("dmsetup remove"), "{e}");
        write_log(&log, &[(0, vec![1; 1024], 0, None)]);
        let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(1024 + 512).unwrap();
        let e = WriteLog::open(&log).err().unwrap();
        assert!(e.contains("past the log's end"), "{e}");
    }
}
