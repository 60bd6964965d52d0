//! Files with a chosen layout of data, zero and hole runs.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One run of a file's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// Non-zero pseudo-random bytes (every 8-byte word has a non-zero byte).
    Data(u64),
    /// Zeros written explicitly: allocated blocks that read as zero.
    Zero(u64),
    /// Nothing written: a hole (if aligned to the filesystem's blocks).
    Hole(u64),
}

impl Run {
    /// The run's length in bytes.
    pub fn len(self) -> u64 {
        match self {
            Run::Data(n) | Run::Zero(n) | Run::Hole(n) => n,
        }
    }

    /// Whether the run is empty.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The 8 bytes of a data run with `seed` at `offset & !7`.
fn data_word(seed: u64, word: u64) -> u64 {
    let mut x = word.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 29;
    // Never zero in the low byte, so every sector (and every 8-byte word) has a non-zero byte.
    x | 1
}

/// The byte that [`write_layout`] puts at `offset` of a data run with `seed`.
pub fn data_byte(seed: u64, offset: u64) -> u8 {
    data_word(seed, offset / 8).to_le_bytes()[(offset % 8) as usize]
}

/// Fills `buf` with the data bytes for `[offset, offset + buf.len())`.
fn fill_data(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut i = 0usize;
    while i < buf.len() && !(offset + i as u64).is_multiple_of(8) {
        buf[i] = data_byte(seed, offset + i as u64);
        i += 1;
    }
    let mut chunks = buf[i..].chunks_exact_mut(8);
    let mut word = (offset + i as u64) / 8;
    for chunk in &mut chunks {
        chunk.copy_from_slice(&data_word(seed, word).to_le_bytes());
        word += 1;
    }
    let rest = chunks.into_remainder();
    let base = word * 8;
    for (k, b) in rest.iter_mut().enumerate() {
        *b = data_byte(seed, base + k as u64);
    }
}

/// Creates `path` (truncating it) with `runs` laid out in order and returns its size.
pub fn write_layout(path: &Path, runs: &[Run], seed: u64) -> io::Result<u64> {
    let file = File::create(path)?;
    // Size first: no write extends the file, so XFS makes no speculative preallocation
    // beyond EOF that would later sit inside a hole as an unwritten extent.
    let total: u64 = runs.iter().map(|r| r.len()).sum();
    file.set_len(total)?;
    let mut off = 0u64;
    let mut buf = Vec::new();
    for run in runs {
        let len = run.len();
        match run {
            Run::Hole(_) => {}
            Run::Data(_) | Run::Zero(_) => {
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(8 << 20) as usize;
                    buf.clear();
                    buf.resize(n, 0);
                    if let Run::Data(_) = run {
                        fill_data(seed, off + done, &mut buf);
                    }
                    file.write_all_at(&buf, off + done)?;
                    done += n as u64;
                }
            }
        }
        off += len;
    }
    file.set_len(off)?;
    file.sync_all()?;
    Ok(off)
}

/// Panics unless the two files have the same length and bytes.
pub fn assert_same_content(a: &Path, b: &Path) {
    let mut fa = File::open(a).unwrap_or_else(|e| panic!("open {}: {e}", a.display()));
    let mut fb = File::open(b).unwrap_or_else(|e| panic!("open {}: {e}", b.display()));
    let (la, lb) = (fa.metadata().unwrap().len(), fb.metadata().unwrap().len());
    assert_eq!(la, lb, "sizes differ: {} vs {}", a.display(), b.display());
    let mut ba = vec![0u8; 4 << 20];
    let mut bb = vec![0u8; 4 << 20];
    let mut off = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        assert_eq!(na, nb, "short read at {off}");
        if na == 0 {
            break;
        }
        if ba[..na] != bb[..nb] {
            let i = ba[..na]
                .iter()
                .zip(&bb[..nb])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "{} and {} differ at byte {}",
                a.display(),
                b.display(),
                off + i as u64
            );
        }
        off += na as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

/// What ESXi does to copy a file without offload: the host reads the source through the
/// datastore and writes the destination, 1 MiB at a time, and syncs it at the end. The
/// demo and the benchmarks compare the offloads with it.
pub fn host_copy(src: &Path, dst: &Path) -> io::Result<()> {
    let mut from = File::open(src)?;
    let mut to = File::create(dst)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
    }
    to.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_matches_data_byte_at_any_alignment() {
        for offset in [0u64, 1, 7, 8, 4093] {
            let mut buf = vec![0u8; 77];
            fill_data(3, offset, &mut buf);
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, data_byte(3, offset + i as u64));
            }
            assert!(buf.chunks(8).all(|c| c.iter().any(|&b| b != 0)) || !offset.is_multiple_of(8));
        }
    }
}
