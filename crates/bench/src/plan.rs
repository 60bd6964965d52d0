//! What one run measures: sizes, repetitions and how thoroughly caches are dropped.

use std::time::Duration;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// The sizes and counts of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `full`, `quick` or `smoke`.
    pub name: &'static str,
    /// Timed runs of each case; the table shows medians.
    pub runs: usize,
    /// The dense file: full clone, lazy clone, the load.
    pub full: u64,
    /// The thin disk's logical size ...
    pub thin: u64,
    /// ... the data it holds ...
    pub thin_data: u64,
    /// ... in this many runs, evenly spread.
    pub thin_runs: u64,
    /// The fragmented file's logical size ...
    pub frag: u64,
    /// ... and its number of data extents (4 KiB each, evenly spread).
    pub frag_extents: u64,
    /// RESVSPACE on a file of this size.
    pub reserve: u64,
    /// Zeros written by `dd`, extrapolated to `reserve`.
    pub dd: u64,
    /// Lazy clones in the load ...
    pub clones: usize,
    /// ... from this many clients at once.
    pub clients: usize,
    /// Full clones of one template at once in the pool deploy ...
    pub pool_jobs: usize,
    /// ... of a template this big (also the storm's template).
    pub pool_size: u64,
    /// Lazy clones in the storm ...
    pub storm_clones: usize,
    /// ... from this many sessions at once.
    pub storm_clients: usize,
    /// Extents of the file of `statx-1m`.
    pub big_extents: u64,
    /// `sync; fstrim; echo 3 > /proc/sys/vm/drop_caches` before each timed run.
    pub drop_caches: bool,
    /// Pause after dropping caches, for XFS's background inode inactivation of what the
    /// previous run removed.
    pub settle: Duration,
}

impl Plan {
    /// The claims' sizes: 4 GiB, 64 GiB thin with 1 GiB of data, 10,000 extents, 100 GiB.
    pub fn full() -> Plan {
        Plan {
            name: "full",
            runs: 3,
            full: 4 * GIB,
            thin: 64 * GIB,
            thin_data: GIB,
            thin_runs: 64,
            frag: 64 * GIB,
            frag_extents: 10_000,
            reserve: 100 * GIB,
            dd: 2 * GIB,
            clones: 256,
            clients: 16,
            pool_jobs: 16,
            pool_size: 2 * GIB,
            storm_clones: 1000,
            storm_clients: 64,
            big_extents: 1_000_000,
            drop_caches: true,
            settle: Duration::from_millis(1500),
        }
    }

    /// One run, a quarter of the data; the counts (extents, clones, clients) and the
    /// 100 GiB reservation stay, since they cost no data.
    pub fn quick() -> Plan {
        Plan {
            name: "quick",
            runs: 1,
            full: GIB,
            thin: 16 * GIB,
            thin_data: 256 * MIB,
            thin_runs: 16,
            frag: 16 * GIB,
            dd: 512 * MIB,
            pool_size: 512 * MIB,
            ..Plan::full()
        }
    }

    /// Sizes in MiB, one run, caches kept: exercises every case in seconds (the CI test).
    pub fn smoke() -> Plan {
        Plan {
            name: "smoke",
            runs: 1,
            full: 32 * MIB,
            thin: GIB,
            thin_data: 8 * MIB,
            thin_runs: 8,
            frag: 256 * MIB,
            frag_extents: 100,
            reserve: GIB,
            dd: 32 * MIB,
            clones: 32,
            clients: 4,
            pool_jobs: 4,
            pool_size: 4 * MIB,
            storm_clones: 64,
            storm_clients: 8,
            big_extents: 1000,
            drop_caches: false,
            settle: Duration::ZERO,
        }
    }

    /// The XFS image: room for the reservation (made twice, one after the other, not at
    /// once), the dense file and one copy of it, the thin disk's data twice, the zeros, the
    /// pool's template and its copies, the million extents (allocated, not written), and
    /// slack. Sparse: it costs only what is written.
    pub fn image_size(&self) -> u64 {
        let need = self.reserve
            + 3 * self.full
            + 3 * self.thin_data
            + self.dd
            + (self.pool_jobs as u64 + 1) * self.pool_size
            + self.big_extents * 4 * KIB;
        (need + need / 4 + 2 * GIB).next_multiple_of(GIB)
    }

    /// Distance between two data extents of the fragmented file.
    pub fn frag_stride(&self) -> u64 {
        (self.frag / self.frag_extents) / (4 * KIB) * (4 * KIB)
    }
}
