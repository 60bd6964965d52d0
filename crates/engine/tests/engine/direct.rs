//! The physical copy's direct I/O: a full clone leaves the page cache alone, and data, holes
//! and tails at every alignment around its chunks copy exactly, thick or thin.

use std::path::Path;
use std::process::Command;

use rustix::fs::{fadvise, Advice};

use crate::util::*;

/// Bytes of `path` resident in the page cache, by `fincore` (util-linux).
fn cached(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("running fincore (util-linux)");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Writes the file's dirty pages back and drops its cached ones.
fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    fadvise(&f, 0, None, Advice::DontNeed).unwrap();
}

mod full_clone_leaves_the_page_cache_alone {
    use super::*;

    fn body(env: &Env) {
        write_layout(&env.p("src"), &[Run::Data(64 * MIB)], 5).unwrap();
        evict(&env.p("src"));
        assert!(cached(&env.p("src")) < MIB, "the source starts uncached");
        for skip in [false, true] {
            env.clone("src", "dst", flags(false, false, false, skip))
                .unwrap();
            // Read through the page cache, 64 MiB of each would be resident now.
            for f in ["src", "dst"] {
                let n = cached(&env.p(f));
                assert!(n < MIB, "skip_zeroes {skip}: {n} bytes of {f} cached");
            }
        }
        assert_same_content(&env.p("src"), &env.p("dst"));
    }

    // ZFS caches in its ARC, not the page cache fincore reads: nothing to see there.
    per_fs!(not_zfs: SMALL, body);
}

mod every_alignment_copies_exactly {
    use super::*;

    /// Around the 4 MiB chunk and the 4 KiB direct alignment: data ending a byte short of a
    /// chunk, a hole between two chunks, unaligned tails, a file that is all tail.
    fn layouts() -> Vec<Vec<Run>> {
        vec![
            vec![Run::Data(8 * MIB - 1)],
            vec![
                Run::Data(4 * MIB + 4 * KIB),
                Run::Hole(MIB),
                Run::Data(3 * MIB + 17),
            ],
            vec![Run::Hole(5 * MIB), Run::Data(MIB + 4 * KIB + 1)],
            vec![
                Run::Data(MIB),
                Run::Zero(3 * MIB),
                Run::Data(4 * KIB),
                Run::Hole(3 * MIB),
            ],
            vec![Run::Data(MIB + 3)],
        ]
    }

    per_fs!(SMALL, |env: &Env| {
        for (i, layout) in layouts().iter().enumerate() {
            let size = write_layout(&env.p("src"), layout, i as u64).unwrap();
            let data: u64 = layout
                .iter()
                .filter(|r| matches!(r, Run::Data(_)))
                .map(|r| r.len())
                .sum();
            for skip in [false, true] {
                let out = env
                    .clone("src", "dst", flags(false, false, false, skip))
                    .unwrap();
                assert_eq!(out.bytes, size, "layout {i}");
                assert_same_content(&env.p("src"), &env.p("dst"));
                let alloc = allocated(&env.p("dst"));
                if skip || env.zfs() {
                    // Thin: the data (on ZFS a thick copy too: fallocate allocates nothing
                    // and written zeros compress into holes) (rounded to blocks), no zeros, no holes filled.
                    assert!(
                        alloc <= data + 64 * KIB * layout.len() as u64,
                        "layout {i} thin: {alloc} bytes allocated for {data} of data"
                    );
                } else {
                    assert!(
                        alloc >= size - size % (4 * KIB),
                        "layout {i} thick: {alloc} bytes allocated of {size}"
                    );
                }
            }
        }
    });
}
