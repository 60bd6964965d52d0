//! Benchmark: the engine's physical copy against GNU cp, on its own XFS reflink image.
//!
//! ```text
//! cargo run --release -p openvaai-engine --example bench -- [--size-gib N] [--reps N] [--fs xfs|ext4|btrfs] [--no-sparse]
//! ```
//!
//! (as root). Defaults: XFS with reflink, 2 GiB, 3 repetitions.
//!
//! ```text
//! ```
//!
//! Cases (page cache dropped before each run, median of `--reps`):
//! 1. full (thick) clone of a `--size-gib` data file vs `cp --reflink=never` + `sync FILE`;
//! 2. a 16 GiB sparse file holding 256 MiB of data, cloned with SKIPZEROES vs
//!    `cp --sparse=always --reflink=never` + `sync FILE`, and vs a clone of a 256 MiB file
//!    of data alone.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use openvaai_engine::{CancelToken, CloneFlags, Export};
use openvaai_testkit::{write_layout, FsKind, Run, TestFs};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn drop_caches() {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (needs root)");
    // Let background work (XFS inode inactivation of the file just removed) settle.
    std::thread::sleep(Duration::from_millis(1500));
    rustix::fs::sync();
}

fn sh(cmd: &str) {
    let status = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(status.success(), "{cmd}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `run` `reps` times, each after dropping caches; `reset` removes the output between.
fn time(reps: usize, mut run: impl FnMut(), mut reset: impl FnMut()) -> Duration {
    let mut times = Vec::new();
    for _ in 0..reps {
        reset();
        drop_caches();
        let start = Instant::now();
        run();
        times.push(start.elapsed());
    }
    reset();
    median(times)
}

fn engine_clone(export: &Export, src: &str, dst: &str, skip_zeroes: bool) {
    let flags = CloneFlags {
        skip_zeroes,
        ..CloneFlags::default()
    };
    export
        .clone_file(export, src, dst, flags, &mut |_| {}, &CancelToken::new())
        .unwrap();
}

fn row(name: &str, t: Duration, bytes: u64) {
    let secs = t.as_secs_f64();
    println!(
        "| {name:<48} | {secs:>8.3} s | {:>8.0} MiB/s |",
        bytes as f64 / MIB as f64 / secs
    );
}

fn main() {
    let mut size_gib = 2u64;
    let mut reps = 3usize;
    let mut sparse = true;
    let mut kind = FsKind::Xfs;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size-gib" => {
                size_gib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--size-gib N")
            }
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).expect("--reps N"),
            "--no-sparse" => sparse = false,
            "--fs" => {
                kind = match args.next().as_deref() {
                    Some("xfs") => FsKind::Xfs,
                    Some("ext4") => FsKind::Ext4,
                    Some("btrfs") => FsKind::Btrfs,
                    other => panic!("--fs xfs|ext4|btrfs, not {other:?}"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let image = (size_gib * 3 + 4) * GIB;
    let fs = TestFs::new(kind, image)
        .unwrap()
        .expect("the benchmark needs root and mkfs.xfs");
    let root = fs.path().join("export");
    std::fs::create_dir(&root).unwrap();
    let export = Export::open(&root).unwrap();
    let p = |n: &str| root.join(n);
    let rm = |n: &str| {
        let _ = std::fs::remove_file(p(n));
    };
    println!(
        "{} on {}, image {} GiB, {} cores, kernel {}, median of {reps}",
        kind.name(),
        fs.loop_device(),
        image / GIB,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
    );
    println!();
    println!("| case                                             |     time   |   throughput   |");
    println!("|--------------------------------------------------|------------|----------------|");

    let size = size_gib * GIB;
    write_layout(&p("big"), &[Run::Data(size)], 1).unwrap();
    let cmd = format!(
        "cp --reflink=never {0} {1} && sync {1}",
        p("big").display(),
        p("big.cp").display()
    );
    // Interleaved, so that drift in the host's disk speed hits both alike.
    let (mut te, mut tc) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        te.push(time(
            1,
            || engine_clone(&export, "big", "big.engine", false),
            || rm("big.engine"),
        ));
        tc.push(time(1, || sh(&cmd), || rm("big.cp")));
    }
    let (t, t_cp) = (median(te), median(tc));
    row(&format!("engine full clone, {size_gib} GiB"), t, size);
    row(
        &format!("cp --reflink=never + sync, {size_gib} GiB"),
        t_cp,
        size,
    );
    println!(
        "| {:<48} | {:>8.0} % |                |",
        "engine throughput relative to cp",
        100.0 * t_cp.as_secs_f64() / t.as_secs_f64()
    );
    rm("big");
    if !sparse {
        return;
    }

    // 16 GiB with 16 data runs of 16 MiB, one per GiB.
    let mut runs = Vec::new();
    for _ in 0..16 {
        runs.push(Run::Data(16 * MIB));
        runs.push(Run::Hole(GIB - 16 * MIB));
    }
    write_layout(&p("sparse"), &runs, 2).unwrap();
    write_layout(&p("data"), &[Run::Data(256 * MIB)], 3).unwrap();
    let t = time(
        reps,
        || engine_clone(&export, "sparse", "sparse.engine", true),
        || rm("sparse.engine"),
    );
    row(
        "engine SKIPZEROES clone, 16 GiB / 256 MiB data",
        t,
        256 * MIB,
    );
    let cmd = format!(
        "cp --sparse=always --reflink=never {0} {1} && sync {1}",
        p("sparse").display(),
        p("sparse.cp").display()
    );
    let t = time(reps, || sh(&cmd), || rm("sparse.cp"));
    row("cp --sparse=always + sync, same file", t, 256 * MIB);
    let t = time(
        reps,
        || engine_clone(&export, "data", "data.engine", false),
        || rm("data.engine"),
    );
    row("engine full clone, 256 MiB of data alone", t, 256 * MIB);
    assert!(Path::new(&p("sparse")).exists());
}
