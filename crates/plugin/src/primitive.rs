//! ExecPrimitive's vocabulary, shared by the C layer and every backend: the request as
//! disklib made it, its progress record, and what goes back.

use openvaai_abi::{AllocType, CloneFlags, VixError};
use openvaai_client::RawDataStore;

/// The primitives SupportStatus asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    Clone,
    Reserve,
    Statx,
}

/// A primitive as disklib asked for it, its strings still raw bytes from C.
#[derive(Debug)]
pub enum Request<'a> {
    Clone {
        src: &'a [u8],
        dst: &'a [u8],
        flags: CloneFlags,
        src_datastore: Option<RawDataStore<'a>>,
    },
    Reserve {
        file: &'a [u8],
    },
    Statx {
        file: &'a [u8],
    },
}

impl Request<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Clone { .. } => "CLONEFILE",
            Request::Reserve { .. } => "RESVSPACE",
            Request::Statx { .. } => "STATX",
        }
    }
}

/// disklib's progress record: how often to report, and the report itself.
pub trait Progress {
    /// Report every this many bytes (0: as often as there is progress).
    fn update_bytes(&self) -> u64;
    /// Reports `delta` bytes done since the last report; false means the user aborts.
    fn report(&mut self, delta: u64) -> bool;
}

/// The figures of a STATX result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatxFigures {
    pub total_bytes: u64,
    pub alloced_bytes: u64,
    pub unique_bytes: u64,
    pub alloc_type: AllocType,
}

/// What ExecPrimitive reports back to disklib.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: VixError,
    pub statx: Option<StatxFigures>,
}

impl Outcome {
    pub fn status(status: VixError) -> Outcome {
        Outcome {
            status,
            statx: None,
        }
    }
}
