//! The procedures of program [`crate::PROGRAM`] version 1 and their arguments and results.
//! Each type carries its definition from `openvaai.x`.

use crate::error::Result;
use crate::limits::{MAX_PATH, MAX_SHORT_STRING};
use crate::xdr::{Decoder, Encoder, Xdr};

#[macro_use]
#[path = "types_macros.rs"]
mod macros;

/// `void OVPROC_NULL(void) = 0;`
pub const PROC_NULL: u32 = 0;
/// `hello_res OVPROC_HELLO(hello_args) = 1;`
pub const PROC_HELLO: u32 = 1;
/// `auth_res OVPROC_AUTH(auth_args) = 2;`
pub const PROC_AUTH: u32 = 2;
/// `caps_res OVPROC_CAPABILITIES(export_args) = 3;`
pub const PROC_CAPABILITIES: u32 = 3;
/// `start_res OVPROC_CLONE_START(clone_args) = 4;`
pub const PROC_CLONE_START: u32 = 4;
/// `start_res OVPROC_RESERVE_START(path_args) = 5;`
pub const PROC_RESERVE_START: u32 = 5;
/// `wait_res OVPROC_WAIT(wait_args) = 6;`
pub const PROC_WAIT: u32 = 6;
/// `wait_res OVPROC_CANCEL(job_args) = 7;`
pub const PROC_CANCEL: u32 = 7;
/// `statx_res OVPROC_STATX(path_args) = 8;`
pub const PROC_STATX: u32 = 8;
/// `wait_res OVPROC_COMMIT(job_args) = 9;` — publishes a READY job, returns its final state.
pub const PROC_COMMIT: u32 = 9;
/// `failure_res OVPROC_FAILURE(job_args) = 10;` — which path a failed job concerns. Added to
/// version 1 later: a server without it answers PROC_UNAVAIL.
pub const PROC_FAILURE: u32 = 10;

/// Size of the client nonce and the server challenge (`ov_nonce`).
pub const NONCE_LEN: usize = 32;
/// Size of an HMAC-SHA256 proof (`ov_proof`).
pub const PROOF_LEN: usize = 32;

/// `CAPABILITIES.primitives` bit: CLONE_START is served.
pub const PRIM_CLONE: u32 = 1;
/// `CAPABILITIES.primitives` bit: RESERVE_START is served.
pub const PRIM_RESERVE: u32 = 2;
/// `CAPABILITIES.primitives` bit: STATX is served.
pub const PRIM_STATX: u32 = 4;

/// Clone flag (same value as VixDiskLib's): fail if the destination exists.
pub const CLONE_GUARDED: u32 = 1;
/// Clone flag: copy-on-write clone (reflink).
pub const CLONE_LAZY: u32 = 2;
/// Clone flag: the source is on another datastore. Informational: `src_export` decides.
pub const CLONE_SRC_DATASTORE_VALID: u32 = 4;
/// Clone flag: check everything, create nothing.
pub const CLONE_DRY_RUN: u32 = 8;
/// Clone flag: keep the destination thin (do not write holes or zero blocks).
pub const CLONE_SKIP_ZEROES: u32 = 16;
/// Every clone flag of version 1; other bits are INVALID_ARG.
/// Hold the finished clone unpublished until COMMIT (or CANCEL): see `OV_CLONE_HOLD`.
pub const CLONE_HOLD: u32 = 0x1_0000;
pub const CLONE_ALL_FLAGS: u32 = CLONE_GUARDED
    | CLONE_LAZY
    | CLONE_SRC_DATASTORE_VALID
    | CLONE_DRY_RUN
    | CLONE_SKIP_ZEROES
    | CLONE_HOLD;

wire_enum! {
    /// `enum ov_status`: one-to-one with the low 16 bits of VixError codes.
    Status {
        Ok = 0,
        Fail = 1,
        OutOfMemory = 2,
        InvalidArg = 3,
        FileNotFound = 4,
        ObjectIsBusy = 5,
        NotSupported = 6,
        FileError = 7,
        DiskFull = 8,
        IncorrectFileType = 9,
        Cancelled = 10,
        FileReadOnly = 11,
        FileAlreadyExists = 12,
        FileAccessError = 13,
        NotSupportedOnRemoteObject = 20,
        FileTooBig = 21,
        FileNameInvalid = 22,
        ObjectNotFound = 25,
        HostNotConnected = 26,
        AuthenticationFail = 35,
        HostConnectionLost = 36,
    }
}

wire_enum! {
    /// `enum ov_job_state`.
    JobState {
        Running = 0,
        Done = 1,
        Failed = 2,
        Ready = 3,
    }
}

wire_enum! {
    /// `enum ov_side`: which path of a job a failure concerns.
    Side {
        /// Not known, or not about one path.
        None = 0,
        /// The clone's source.
        Source = 1,
        /// The directory the destination goes in.
        DestinationDir = 2,
        /// The destination itself, or the file to reserve.
        Destination = 3,
    }
}

impl Side {
    /// What the path is, in a sentence: "the source", "the destination's directory", ...
    pub fn describe(self) -> &'static str {
        match self {
            Side::Source => "the source",
            Side::DestinationDir => "the destination's directory",
            Side::Destination => "the destination",
            Side::None | Side::Unknown(_) => "a path",
        }
    }
}

wire_enum! {
    /// `enum ov_alloc_type` (VixDiskLib's AllocType; UNKNOWN is -1, i.e. 0xFFFFFFFF).
    AllocType {
        Ezt = 0,
        Lzt = 1,
        Thin = 2,
        NotKnown = 0xFFFF_FFFF,
    }
}

impl Status {
    /// The VixError code for this status (the wire value: they are the same numbers).
    pub fn vix_code(self) -> u64 {
        self.to_u32() as u64
    }
}

/// `union xxx_res switch (ov_status status) { case OV_OK: T ok; default: void; };`
///
/// `Err(Status::Ok)` cannot be told apart on the wire; it is sent as FAIL.
impl<T: Xdr> Xdr for std::result::Result<T, Status> {
    fn encode(&self, w: &mut Encoder) {
        match self {
            Ok(v) => {
                Status::Ok.encode(w);
                v.encode(w);
            }
            Err(Status::Ok) => Status::Fail.encode(w),
            Err(s) => s.encode(w),
        }
    }
    fn decode(r: &mut Decoder<'_>) -> Result<Self> {
        match Status::decode(r)? {
            Status::Ok => Ok(Ok(T::decode(r)?)),
            s => Ok(Err(s)),
        }
    }
}

wire_struct! {
    /// ```text
    /// struct hello_args {
    ///     ov_path  export;        /* the NFS export path, as ESXi's remoteMountPoint */
    ///     ov_nonce client_nonce;  /* fresh random bytes */
    /// };
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HelloArgs {
        pub export: String as path,
        pub client_nonce: [u8; NONCE_LEN] as fixed_opaque,
    }
}

wire_struct! {
    /// ```text
    /// struct hello_ok {
    ///     ov_nonce         server_challenge;  /* fresh for every HELLO */
    ///     unsigned int     protocol_version;
    ///     ov_short_string  server_version;
    /// };
    /// union hello_res switch (ov_status status) { case OV_OK: hello_ok ok; default: void; };
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HelloOk {
        pub server_challenge: [u8; NONCE_LEN] as fixed_opaque,
        pub protocol_version: u32 as uint,
        pub server_version: String as short_string,
    }
}

pub type HelloRes = std::result::Result<HelloOk, Status>;

wire_struct! {
    /// ```text
    /// struct auth_args {
    ///     ov_path  export;        /* the export of the preceding HELLO */
    ///     ov_proof client_proof;  /* see docs/protocol.md, "The handshake" */
    /// };
    /// union auth_res switch (ov_status status) { case OV_OK: ov_proof server_proof; default: void; };
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AuthArgs {
        pub export: String as path,
        pub client_proof: [u8; PROOF_LEN] as fixed_opaque,
    }
}

/// The server's proof (`ov_proof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof(pub [u8; PROOF_LEN]);

impl Xdr for Proof {
    fn encode(&self, w: &mut Encoder) {
        w.fixed_opaque(&self.0);
    }
    fn decode(r: &mut Decoder<'_>) -> Result<Proof> {
        Ok(Proof(r.fixed_opaque()?))
    }
}

pub type AuthRes = std::result::Result<Proof, Status>;

wire_struct! {
    /// `struct export_args { ov_path export; };`
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ExportArgs {
        pub export: String as path,
    }
}

wire_struct! {
    /// ```text
    /// struct ov_capabilities {
    ///     unsigned int     primitives;        /* OV_PRIM_* bits */
    ///     unsigned int     clone_flags;       /* OV_CLONE_* bits supported */
    ///     bool             reflink;
    ///     bool             fallocate;
    ///     bool             fiemap;
    ///     bool             unwritten_extents;
    ///     bool             read_only;
    ///     ov_short_string  fs_type;
    ///     unsigned hyper   fs_id;
    ///     ov_short_string  daemon_version;
    ///     unsigned int     protocol_version;
    /// };
    /// union caps_res switch (ov_status status) { case OV_OK: ov_capabilities caps; default: void; };
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Capabilities {
        pub primitives: u32 as uint,
        pub clone_flags: u32 as uint,
        pub reflink: bool as bool,
        pub fallocate: bool as bool,
        pub fiemap: bool as bool,
        pub unwritten_extents: bool as bool,
        pub read_only: bool as bool,
        pub fs_type: String as short_string,
        pub fs_id: u64 as hyper,
        pub daemon_version: String as short_string,
        pub protocol_version: u32 as uint,
    }
}

pub type CapsRes = std::result::Result<Capabilities, Status>;

/// A path or export name as an XDR item (`ov_path`), for `ov_path *`.
struct PathItem(String);

impl Xdr for PathItem {
    fn encode(&self, w: &mut Encoder) {
        w.string(&self.0);
    }
    fn decode(r: &mut Decoder<'_>) -> Result<PathItem> {
        Ok(PathItem(r.string(MAX_PATH)?))
    }
}

wire_struct! {
    /// ```text
    /// struct clone_args {
    ///     ov_path      export;      /* destination export, authenticated on this connection */
    ///     ov_path     *src_export;  /* source export if another one (authenticated too) */
    ///     ov_path      src;         /* relative to its export root, '/'-separated */
    ///     ov_path      dst;
    ///     unsigned int flags;       /* OV_CLONE_* */
    /// };
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CloneArgs {
        pub export: String as path,
        pub src_export: Option<String> as optional_path,
        pub src: String as path,
        pub dst: String as path,
        pub flags: u32 as uint,
    }
}

wire_struct! {
    /// `struct path_args { ov_path export; ov_path path; };` (RESERVE_START, STATX)
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PathArgs {
        pub export: String as path,
        pub path: String as path,
    }
}

/// `typedef unsigned hyper ov_job_id;`
/// `union start_res switch (ov_status status) { case OV_OK: ov_job_id job; default: void; };`
pub type StartRes = std::result::Result<u64, Status>;

wire_struct! {
    /// ```text
    /// struct wait_args {
    ///     ov_job_id      job;
    ///     unsigned hyper threshold;    /* return once done >= threshold */
    ///     unsigned int   max_wait_ms;  /* the server clamps it to its own bound */
    /// };
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct WaitArgs {
        pub job: u64 as hyper,
        pub threshold: u64 as hyper,
        pub max_wait_ms: u32 as uint,
    }
}

wire_struct! {
    /// `struct job_args { ov_job_id job; };` (CANCEL)
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct JobArgs {
        pub job: u64 as hyper,
    }
}

wire_struct! {
    /// ```text
    /// struct ov_job_info {
    ///     ov_job_state   state;
    ///     unsigned hyper done;    /* bytes done so far, cumulative */
    ///     unsigned hyper total;   /* bytes to do, 0 while unknown */
    ///     ov_status      result;  /* OV_OK while running or done; the failure when failed */
    /// };
    /// union wait_res switch (ov_status status) { case OV_OK: ov_job_info info; default: void; };
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct JobInfo {
        pub state: JobState as item,
        pub done: u64 as hyper,
        pub total: u64 as hyper,
        pub result: Status as item,
    }
}

pub type WaitRes = std::result::Result<JobInfo, Status>;

wire_struct! {
    /// ```text
    /// struct ov_failure {
    ///     ov_status result;   /* the job's result, as WAIT reports it (OV_OK unless failed) */
    ///     ov_side   side;     /* the path it concerns */
    /// };
    /// union failure_res switch (ov_status status) { case OV_OK: ov_failure failure; default: void; };
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Failure {
        pub result: Status as item,
        pub side: Side as item,
    }
}

pub type FailureRes = std::result::Result<Failure, Status>;

wire_struct! {
    /// ```text
    /// struct ov_statx {
    ///     unsigned hyper total_bytes;
    ///     unsigned hyper alloced_bytes;
    ///     unsigned hyper unique_bytes;
    ///     ov_alloc_type  alloc_type;
    /// };
    /// union statx_res switch (ov_status status) { case OV_OK: ov_statx st; default: void; };
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct StatX {
        pub total_bytes: u64 as hyper,
        pub alloced_bytes: u64 as hyper,
        pub unique_bytes: u64 as hyper,
        pub alloc_type: AllocType as item,
    }
}

pub type StatxRes = std::result::Result<StatX, Status>;

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
