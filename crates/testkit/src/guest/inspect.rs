//! The server's view of a file: size, allocated bytes and FIEMAP extents (with the SHARED and
//! UNWRITTEN flags) as `stat` and e2fsprogs' `filefrag -v` report them, read the same way in
//! the guest (through the control channel) and on the host (a powered-off guest's disk image,
//! loop-mounted read-only).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_tool;

/// One extent of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file, bytes.
    pub logical: u64,
    pub length: u64,
    pub shared: bool,
    pub unwritten: bool,
}

/// A file as its filesystem sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileView {
    pub size: u64,
    /// `st_blocks * 512`.
    pub allocated: u64,
    pub extents: Vec<Extent>,
}

impl FileView {
    /// Bytes in extents flagged SHARED.
    pub fn shared_bytes(&self) -> u64 {
        self.extents
            .iter()
            .filter(|e| e.shared)
            .map(|e| e.length)
            .sum()
    }

    /// Bytes in extents flagged UNWRITTEN.
    pub fn unwritten_bytes(&self) -> u64 {
        self.extents
            .iter()
            .filter(|e| e.unwritten)
            .map(|e| e.length)
            .sum()
    }

    /// Bytes in extents.
    pub fn mapped_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.length).sum()
    }

    /// The holes below `size`: `(offset, length)` ranges no extent covers.
    pub fn holes(&self) -> Vec<(u64, u64)> {
        let mut holes = Vec::new();
        let mut at = 0;
        for e in &self.extents {
            if e.logical > at {
                holes.push((at, e.logical - at));
            }
            at = at.max(e.logical + e.length);
        }
        if self.size > at {
            holes.push((at, self.size - at));
        }
        holes
    }
}

/// The shell command that prints what [`parse`] reads for `path`.
pub fn view_command(path: &str) -> String {
    let q = shell_quote(path);
    // filefrag, in the guest, drops its extent lines when writing to a pipe or socket (not
    // to a file): through a temporary file.
    format!(
        "sync && stat -c '%s %b' {q} && t=$(mktemp) && filefrag -v {q} > \"$t\" && \
         cat \"$t\" && rm -f \"$t\""
    )
}

/// Quotes `s` for sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Parses `stat -c '%s %b'` then `filefrag -v` output.
pub fn parse(text: &str) -> Result<FileView, String> {
    let bad = |why: &str| format!("cannot read the file's view ({why}):\n{text}");
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let size: u64 = first
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("size"))?;
    let blocks: u64 = first
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("blocks"))?;
    let mut block = None;
    let mut extents = Vec::new();
    for line in lines {
        // "File size of NAME is SIZE (N blocks of B bytes)"
        if line.starts_with("File size of ") {
            let words: Vec<&str> = line.rsplit('(').next().unwrap_or("").split(' ').collect();
            block = words.get(3).and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        if parts.len() < 4 || parts[0].trim().parse::<u64>().is_err() {
            continue;
        }
        let bs = block.ok_or_else(|| bad("no block size before the extents"))?;
        let start: u64 = parts[1]
            .split("..")
            .next()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("logical offset"))?;
        let length: u64 = parts[3].trim().parse().map_err(|_| bad("length"))?;
        let flags = if parts.len() >= 5 {
            parts[parts.len() - 1]
        } else {
            ""
        };
        let has = |f: &str| flags.split(',').any(|x| x.trim() == f);
        extents.push(Extent {
            logical: start * bs,
            length: length * bs,
            shared: has("shared"),
            unwritten: has("unwritten"),
        });
    }
    Ok(FileView {
        size,
        allocated: blocks * 512,
        extents,
    })
}

/// The view of a file here (`stat` and `filefrag` run by this process: on the host, or in
/// the guest for a test running there).
pub fn local_view(path: &Path) -> Result<FileView, String> {
    let out = run_tool(
        Command::new("sh")
            .arg("-c")
            .arg(view_command(&path.to_string_lossy())),
    )?;
    parse(&out)
}

/// A powered-off guest's disk image mounted read-only on the host (root needed); unmounted,
/// and its loop device detached, on drop.
#[derive(Debug)]
pub struct ImageMount {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl ImageMount {
    /// Mounts `image` (a `fstype` filesystem) read-only with `mount -o loop`.
    pub fn new(image: &Path, fstype: &str) -> Result<ImageMount, String> {
        let dir = tempfile::Builder::new()
            .prefix("openvaai-guest-disk-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point).map_err(|e| e.to_string())?;
        // norecovery: the guest shut down cleanly, and a read-only mount must not write.
        let opts = match fstype {
            "xfs" | "ext4" => "loop,ro,norecovery",
            _ => "loop,ro",
        };
        run_tool(
            Command::new("mount")
                .args(["-t", fstype, "-o", opts])
                .arg(image)
                .arg(&mount_point),
        )
        .map_err(|e| format!("mounting the guest's disk {}: {e}", image.display()))?;
        Ok(ImageMount {
            mount_point,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// The view of `rel` on this filesystem.
    pub fn view(&self, rel: &str) -> Result<FileView, String> {
        local_view(&self.mount_point.join(rel))
    }
}

impl Drop for ImageMount {
    fn drop(&mut self) {
        // `mount -o loop` set autoclear: the unmount detaches the loop device.
        for attempt in 0..10 {
            if run_tool(Command::new("umount").arg(&self.mount_point)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50 * (attempt + 1)));
        }
        let _ = run_tool(Command::new("umount").arg("-l").arg(&self.mount_point));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filefrag_with_flags_and_holes() {
        let text = "\
12288 24
Filesystem type is: 58465342
File size of /x/f is 12288 (3 blocks of 4096 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..       0:         24..        24:      1:             shared
   1:        2..       2:        100..       100:      1:         25: last,unwritten,eof
/x/f: 2 extents found";
        let v = parse(text).unwrap();
        assert_eq!(v.size, 12288);
        assert_eq!(v.allocated, 24 * 512);
        assert_eq!(v.shared_bytes(), 4096);
        assert_eq!(v.unwritten_bytes(), 4096);
        assert_eq!(v.holes(), vec![(4096, 4096)]);
    }

    #[test]
    fn a_sparse_file_is_one_hole() {
        let text = "1000 0\nFile size of f is 1000 (1 block of 4096 bytes)\nf: 0 extents found";
        let v = parse(text).unwrap();
        assert!(v.extents.is_empty());
        assert_eq!(v.holes(), vec![(0, 1000)]);
    }
}
