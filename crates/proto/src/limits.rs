//! Hard limits. A length from the wire is checked against these before anything is allocated.

/// Largest fragment accepted by record marking.
pub const MAX_FRAGMENT: usize = 64 * 1024;

/// Largest record (all fragments together) accepted by record marking.
pub const MAX_RECORD: usize = 64 * 1024;

/// Most fragments in one record (bounds a stream of empty fragments).
pub const MAX_FRAGMENTS: usize = 64;

/// Longest path or export name, in bytes (`ov_path`).
pub const MAX_PATH: usize = 4096;

/// Largest body of an RPC credential or verifier (RFC 5531 `opaque_auth`).
pub const MAX_AUTH_BODY: usize = 400;

/// Longest short text field (version strings, filesystem type).
pub const MAX_SHORT_STRING: usize = 64;

/// Longest server bound on one WAIT, in milliseconds; a larger `max_wait_ms` is clamped.
pub const MAX_WAIT_MS: u32 = 30_000;

/// Largest access file, in bytes.
pub const MAX_ACCESS_FILE: usize = 4096;
