//! Hard limits, in one place. Every length from the wire is checked against one of these
//! (and against the bytes actually left) before anything is allocated. The record itself is
//! bounded by `openvaai_proto::limits::MAX_RECORD` (64 KiB), which is also what this client
//! asks for as `ca_maxrequestsize`/`ca_maxresponsesize` in CREATE_SESSION.

/// `NFS4_FHSIZE`: the longest file handle.
pub const MAX_FH: usize = 128;

/// `NFS4_OPAQUE_LIMIT`: owner ids, server owner and scope, state owners.
pub const MAX_OPAQUE: usize = 1024;

/// Longest `component4` (one path name component). Linux and ZFS allow 255 bytes.
pub const MAX_COMPONENT: usize = 255;

/// Longest COMPOUND `tag` this client sends or accepts back.
pub const MAX_TAG: usize = 64;

/// Most operations in one COMPOUND, sent or answered (knfsd allows 50 at most; the client's
/// compounds are a dozen at most).
pub const MAX_OPS: usize = 32;

/// Most 32-bit words in a `bitmap4` (NFSv4.2 defines attributes up to 80: three words).
pub const MAX_BITMAP_WORDS: usize = 8;

/// Largest `attrlist4` (the values of one `fattr4`).
pub const MAX_ATTR_VALS: usize = 8192;

/// Longest owner or group string (`utf8str_mixed`), and an ACE's `who`.
pub const MAX_OWNER: usize = 1024;

/// Longest implementation domain or name in `nfs_impl_id4`.
pub const MAX_IMPL_STRING: usize = 1024;

/// Longest machine name in an AUTH_SYS credential (RFC 5531 `machinename<255>`).
pub const MAX_MACHINE_NAME: usize = 255;

/// Most supplementary groups in an AUTH_SYS credential (RFC 5531 `gids<16>`).
pub const MAX_AUTH_GIDS: usize = 16;

/// Most `callback_sec_parms4` in CREATE_SESSION (this client sends one).
pub const MAX_CB_SEC_PARMS: usize = 4;

/// Most `wr_callback_id` stateids in a `write_response4` (`<1>` in the .x).
pub const MAX_CALLBACK_IDS: usize = 1;

/// Most replies with a stale xid (answers to calls given up on) skipped per call: the
/// shared RPC round trip's.
pub use openvaai_proto::rpc::MAX_STALE_REPLIES;
