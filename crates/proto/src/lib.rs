//! The openvaai wire protocol: ONC RPC v2 (RFC 5531) over TLS with record marking, XDR
//! (RFC 4506) types, size limits, the protocol version, the HMAC proofs of the handshake and
//! the access file that tells a client where and how to connect.
//!
//! The reference is `openvaai.x` beside this crate's `Cargo.toml`; `docs/protocol.md`
//! explains it. Layers, bottom up: [`xdr`] (bounded codec) → [`rpc`] (call and reply
//! headers) → [`record`] (record marking over any `Read`/`Write`) → [`types`] (this
//! program's procedures and arguments) → [`client`] (a blocking client), over a [`deadline`] stream that bounds every
//! exchange in time.
#![deny(unsafe_code)]

pub mod access;
pub mod auth;
pub mod client;
pub mod deadline;
mod error;
mod hex;
pub mod layout;
pub mod limits;
pub mod record;
pub mod rpc;
pub mod types;
pub mod xdr;

pub use client::Client;
pub use error::{Error, ErrorKind, Result};
pub use types::*;

/// The ONC RPC program number of openvaai (user-defined range 0x20000000–0x3FFFFFFF).
pub const PROGRAM: u32 = 0x2F56_414A;

/// The version of the program, as carried in every call's `vers` field.
///
/// Version history, one line each:
/// - 1: NULL, HELLO, AUTH, CAPABILITIES, CLONE_START, RESERVE_START, WAIT, CANCEL, STATX,
///   COMMIT (with `CLONE_HOLD` and the READY job state).
/// - 1, added compatibly: FAILURE (which path a failed job concerns); servers without it
///   answer PROC_UNAVAIL, and clients carry on without the detail.
pub const PROTOCOL_VERSION: u32 = 1;

/// The version of this implementation, reported by HELLO and CAPABILITIES.
pub const IMPLEMENTATION_VERSION: &str = env!("CARGO_PKG_VERSION");
