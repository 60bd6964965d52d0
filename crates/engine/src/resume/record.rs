//! The record of a full clone in progress, `.openvaai/clone-<job>.job`: a few lines of text,
//! versioned by its first line, every path hex-encoded so that no name can break a line.
//!
//! It is written as temp + `fsync` + `rename` + `fsync` of the directory
//! ([`PrivateDir::write_atomic`](crate::PrivateDir::write_atomic)), so a crash leaves the old
//! record or the new one, never a mix; and it is read back bounded and parsed strictly: a
//! record that is not exactly what this code writes is refused, never guessed at.

use std::fmt::Write as _;

use crate::clone::CloneFlags;

/// The first line of every record this version writes.
const MAGIC: &str = "openvaai clone job 1";
/// The largest record read back (two paths of at most 4 KiB, hex-encoded, and a few numbers).
pub(crate) const MAX_RECORD: usize = 32 << 10;

/// What identifies the content of a clone's source: if any of it changed, the bytes copied so
/// far may be of another content, and the copy starts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceId {
    /// Device and inode: the same file.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
    /// Its size.
    pub size: u64,
    /// Its last modification, seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Its last change of status (a write, a truncate, a rename over it), seconds and
    /// nanoseconds.
    pub ctime: (i64, i64),
}

impl SourceId {
    /// The identity of the file `st` describes.
    pub(crate) fn of(st: &rustix::fs::Stat) -> SourceId {
        SourceId {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        }
    }
}

/// A full clone in progress, as its record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloneRecord {
    /// The job's id, as the daemon gave it to its client.
    pub job: u64,
    /// The export the source is in, by the daemon's name for it; `None`: this export.
    pub src_export: Option<String>,
    /// The source's path in its export.
    pub src: String,
    /// The destination's path in this export.
    pub dst: String,
    /// GUARDED and SKIPZEROES as asked (never LAZY or DRYRUN: those are not recorded).
    pub flags: CloneFlags,
    /// The client publishes it itself, with COMMIT, once it is READY (the daemon's hold).
    pub hold: bool,
    /// The source as it was when the bytes below `done` were copied.
    pub source: SourceId,
    /// The inode of the partial file: once published, the destination is that inode.
    pub part_ino: u64,
    /// Bytes of `[0, source.size)` in the partial file and durable: the copy goes on from
    /// here.
    pub done: u64,
}

impl CloneRecord {
    pub(crate) fn render(&self) -> String {
        let mut s = format!("{MAGIC}\njob {:016x}\n", self.job);
        if let Some(e) = &self.src_export {
            let _ = writeln!(s, "src_export {}", hex(e));
        }
        let _ = writeln!(s, "src {}\ndst {}", hex(&self.src), hex(&self.dst));
        let _ = writeln!(
            s,
            "flags {}{}{}",
            u8::from(self.flags.guarded),
            u8::from(self.flags.skip_zeroes),
            u8::from(self.hold)
        );
        let id = &self.source;
        let _ = writeln!(
            s,
            "source {} {} {} {} {} {} {}",
            id.dev, id.ino, id.size, id.mtime.0, id.mtime.1, id.ctime.0, id.ctime.1
        );
        let _ = writeln!(s, "part {}\ndone {}", self.part_ino, self.done);
        s
    }

    /// The record `text` says, or `None` if it is not exactly a record of this version.
    pub(crate) fn parse(text: &[u8]) -> Option<CloneRecord> {
        if text.len() > MAX_RECORD {
            return None;
        }
        let lines: Vec<(&str, &str)> = std::str::from_utf8(text)
            .ok()?
            .lines()
            .map(|l| l.split_once(' ').unwrap_or((l, "")))
            .collect();
        // The source's export is the one optional line.
        let keys: &[&str] = if lines.get(2)?.0 == "src_export" {
            &[
                "job",
                "src_export",
                "src",
                "dst",
                "flags",
                "source",
                "part",
                "done",
            ]
        } else {
            &["job", "src", "dst", "flags", "source", "part", "done"]
        };
        let (magic, rest) = lines.split_first()?;
        if format!("{} {}", magic.0, magic.1) != MAGIC || rest.len() != keys.len() {
            return None;
        }
        let mut fields = std::collections::HashMap::new();
        for ((key, value), want) in rest.iter().zip(keys) {
            if key != want {
                return None;
            }
            fields.insert(*key, *value);
        }
        let bit = |b: u8| match b {
            b'0' => Some(false),
            b'1' => Some(true),
            _ => None,
        };
        let [g, z, h] = fields["flags"].as_bytes() else {
            return None;
        };
        let nums: Vec<&str> = fields["source"].split(' ').collect();
        let [dev, ino, size, ms, mn, cs, cn] = nums[..] else {
            return None;
        };
        let source = SourceId {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            size: size.parse().ok()?,
            mtime: (ms.parse().ok()?, mn.parse().ok()?),
            ctime: (cs.parse().ok()?, cn.parse().ok()?),
        };
        let job = fields["job"];
        let done: u64 = fields["done"].parse().ok()?;
        if job.len() != 16 || done > source.size {
            return None;
        }
        Some(CloneRecord {
            job: u64::from_str_radix(job, 16).ok()?,
            src_export: match fields.get("src_export") {
                Some(e) => Some(unhex(e)?),
                None => None,
            },
            src: unhex(fields["src"])?,
            dst: unhex(fields["dst"])?,
            flags: CloneFlags {
                guarded: bit(*g)?,
                skip_zeroes: bit(*z)?,
                lazy: false,
                dry_run: false,
            },
            hold: bit(*h)?,
            source,
            part_ino: fields["part"].parse().ok()?,
            done,
        })
    }
}

fn hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(src_export: Option<&str>) -> CloneRecord {
        CloneRecord {
            job: 0x0aaf_94db_f958_e411,
            src_export: src_export.map(str::to_owned),
            src: "web01/web01-flat.vmdk".into(),
            dst: "web02/new\nline ünïcode.vmdk".into(),
            flags: CloneFlags {
                guarded: true,
                skip_zeroes: false,
                lazy: false,
                dry_run: false,
            },
            hold: true,
            source: SourceId {
                dev: 2049,
                ino: 131,
                size: 2 << 30,
                mtime: (1_765_000_000, 123_456_789),
                ctime: (-1, 999_999_999),
            },
            part_ino: 77,
            done: 256 << 20,
        }
    }

    #[test]
    fn a_record_reads_back_as_written_with_and_without_a_source_export() {
        for e in [None, Some("other")] {
            let r = record(e);
            let text = r.render();
            assert_eq!(text.lines().count(), if e.is_some() { 9 } else { 8 });
            assert_eq!(CloneRecord::parse(text.as_bytes()), Some(r));
        }
    }

    #[test]
    fn anything_but_an_exact_record_is_refused() {
        let good = record(None).render();
        let cases = [
            good.replacen("openvaai clone job 1", "openvaai clone job 2", 1),
            good.replacen("flags 101", "flags 102", 1),
            good.replacen("flags 101", "flags 10", 1),
            good.replacen("done 268435456", "done 9999999999999", 1),
            good.replacen("done 268435456", "done -1", 1),
            good.replacen("part 77", "part x", 1),
            format!("{good}extra 1\n"),
            good.lines().take(6).collect::<Vec<_>>().join("\n"),
            good.replacen("src ", "src 4", 1),
            String::new(),
            "x".repeat(MAX_RECORD + 1),
        ];
        for bad in cases {
            assert_eq!(CloneRecord::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert!(CloneRecord::parse(&[0xff, 0xfe]).is_none());
    }
}
