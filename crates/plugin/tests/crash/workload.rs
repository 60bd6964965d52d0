//! The workload, written once: the files made before the log's `ready` mark, and the steps
//! after it, each between a `STEP:start` mark and a `STEP:ok` (or `STEP:refused`) mark. The
//! guest runs it; the host regenerates the sources' bytes (the layouts are deterministic)
//! and judges every crash state against it.

use std::path::Path;

use openvaai_abi::{clone_flag as f, vix, CloneFlags, SessionId, VixError};
use openvaai_host::{Datastore, Plugin};
use openvaai_testkit::{write_layout, FsKind, Run};

const MIB: u64 = 1 << 20;

/// The directories of the two exports on each filesystem (one device, so one log orders
/// the writes of both).
pub const EXPORT_A: &str = "a";
pub const EXPORT_B: &str = "b";

/// The mark after the sources are durable: crash points from here on are judged.
pub const READY: &str = "ready";
/// The mark after the last step.
pub const END: &str = "end";

/// A file made (in export `a`) and synced before `ready`.
pub struct Source {
    pub name: &'static str,
    pub runs: &'static [Run],
    pub seed: u64,
}

pub const SOURCES: &[Source] = &[
    // Dense, with a run of written zeros.
    Source {
        name: "src.vmdk",
        runs: &[Run::Data(3 * MIB), Run::Zero(MIB), Run::Data(4 * MIB)],
        seed: 301,
    },
    // Holes, zeros and data: thin and thick clones differ on it.
    Source {
        name: "sparse.vmdk",
        runs: &[
            Run::Data(2 * MIB),
            Run::Hole(2 * MIB),
            Run::Zero(MIB),
            Run::Data(2 * MIB),
            Run::Hole(MIB),
        ],
        seed: 302,
    },
    // The new content of the overwrite.
    Source {
        name: "new.vmdk",
        runs: &[Run::Data(8 * MIB)],
        seed: 303,
    },
    // The overwrite's destination: the old content.
    Source {
        name: "over.vmdk",
        runs: &[Run::Data(6 * MIB)],
        seed: 304,
    },
    // The destination of a GUARDED clone that must be refused.
    Source {
        name: "taken.vmdk",
        runs: &[Run::Data(MIB)],
        seed: 305,
    },
    // What RESVSPACE provisions.
    Source {
        name: "resv.vmdk",
        runs: &[
            Run::Data(MIB),
            Run::Hole(4 * MIB),
            Run::Data(MIB),
            Run::Hole(2 * MIB),
        ],
        seed: 306,
    },
];

/// What a step does; paths are in export `a` unless said.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A clone to a new name.
    Clone {
        src: &'static str,
        dst: &'static str,
        flags: CloneFlags,
    },
    /// A clone (not GUARDED) over an existing file: `src`'s bytes replace `dst`'s.
    Overwrite {
        src: &'static str,
        dst: &'static str,
    },
    /// A GUARDED clone onto an existing name: refused, `dst` untouched.
    GuardedTaken {
        src: &'static str,
        dst: &'static str,
    },
    /// A clone from export `a` (SRCDATASTORE_VALID) to `dst` in export `b`.
    Cross {
        src: &'static str,
        dst: &'static str,
    },
    /// RESVSPACE of `file`.
    Reserve { file: &'static str },
}

#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub name: &'static str,
    pub kind: Kind,
}

pub const STEPS: &[Step] = &[
    Step {
        name: "lazy",
        kind: Kind::Clone {
            src: "src.vmdk",
            dst: "lazy.vmdk",
            flags: f::LAZY,
        },
    },
    Step {
        name: "full",
        kind: Kind::Clone {
            src: "src.vmdk",
            dst: "full.vmdk",
            flags: 0,
        },
    },
    Step {
        name: "thin",
        kind: Kind::Clone {
            src: "sparse.vmdk",
            dst: "thin.vmdk",
            flags: f::SKIPZEROES,
        },
    },
    Step {
        name: "thick",
        kind: Kind::Clone {
            src: "sparse.vmdk",
            dst: "thick.vmdk",
            flags: 0,
        },
    },
    Step {
        name: "overwrite",
        kind: Kind::Overwrite {
            src: "new.vmdk",
            dst: "over.vmdk",
        },
    },
    Step {
        name: "guarded",
        kind: Kind::Clone {
            src: "src.vmdk",
            dst: "guarded.vmdk",
            flags: f::GUARDED,
        },
    },
    Step {
        name: "guarded-taken",
        kind: Kind::GuardedTaken {
            src: "src.vmdk",
            dst: "taken.vmdk",
        },
    },
    Step {
        name: "cross",
        kind: Kind::Cross {
            src: "src.vmdk",
            dst: "cross.vmdk",
        },
    },
    Step {
        name: "resv",
        kind: Kind::Reserve { file: "resv.vmdk" },
    },
];

impl Step {
    /// What the primitive must answer on a `kind` filesystem.
    pub fn expected(&self, kind: FsKind) -> VixError {
        match self.kind {
            Kind::Clone { flags, .. } if flags & f::LAZY != 0 && !kind.reflinks() => {
                vix::E_NOT_SUPPORTED
            }
            Kind::GuardedTaken { .. } => vix::E_FILE_ALREADY_EXISTS,
            Kind::Clone { .. }
            | Kind::Overwrite { .. }
            | Kind::Cross { .. }
            | Kind::Reserve { .. } => vix::OK,
        }
    }

    pub fn start_mark(&self) -> String {
        format!("{}:start", self.name)
    }

    /// The mark logged once the primitive returned: `STEP:ok` or `STEP:refused`.
    pub fn end_mark(&self, status: VixError) -> String {
        match status {
            vix::OK => format!("{}:ok", self.name),
            _ => format!("{}:refused", self.name),
        }
    }
}

/// Writes every source into `dir` (export `a`).
pub fn write_sources(dir: &Path) {
    for s in SOURCES {
        write_layout(&dir.join(s.name), s.runs, s.seed).unwrap();
    }
}

/// Runs one step with sessions `a` and `b` on the two exports, whose files the plugin
/// names under the given directories (`src_ds` describes `a` for the cross-export clone);
/// what the plugin answered.
pub fn run_step(
    plugin: &Plugin,
    a: (SessionId, &str),
    b: (SessionId, &str),
    src_ds: &Datastore,
    kind: Kind,
) -> VixError {
    let (ida, pa) = a;
    let (idb, pb) = b;
    let at = |root: &str, n: &str| format!("{root}/{n}");
    let st = match kind {
        Kind::Clone { src, dst, flags } => {
            plugin.clone_file(ida, &at(pa, src), &at(pa, dst), flags, None, None)
        }
        Kind::Overwrite { src, dst } => {
            plugin.clone_file(ida, &at(pa, src), &at(pa, dst), 0, None, None)
        }
        Kind::GuardedTaken { src, dst } => {
            plugin.clone_file(ida, &at(pa, src), &at(pa, dst), f::GUARDED, None, None)
        }
        Kind::Cross { src, dst } => plugin.clone_file(
            idb,
            &at(pa, src),
            &at(pb, dst),
            f::SRCDATASTORE_VALID,
            Some(src_ds),
            None,
        ),
        Kind::Reserve { file } => plugin.reserve(ida, &at(pa, file), None),
    };
    st.unwrap()
}
