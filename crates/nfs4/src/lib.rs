//! An NFSv4.1/4.2 client protocol crate: what the plugin's standard backend needs to offload
//! clones and copies to any NFSv4.2 server (RFC 8881, RFC 7862) with nothing installed on it.
//!
//! It knows only the protocol. Layers, bottom up, on `openvaai_proto`'s XDR codec and ONC RPC
//! record marking: [`limits`] (every bound, in one place) → [`basic`] types and [`attr`]
//! (the `fattr4` codec) → [`ops`] (each operation's arguments and results, with their `.x`
//! text from RFC 7863) → [`compound`] (COMPOUND, and the check of a reply against its call)
//! → [`auth`] (the AUTH_SYS credential) → [`client`] (a blocking client with the 4.1 session:
//! EXCHANGE_ID, CREATE_SESSION, SEQUENCE, RECLAIM_COMPLETE, DESTROY_*).
//!
//! Every status is a [`Status`] (an enum with `Unknown(u32)`); nothing from the wire is cast
//! into an enum, and every length is bounded before anything is allocated. What the backend
//! uses and why: `docs/nfs42.md`.
#![deny(unsafe_code)]

pub mod attr;
pub mod auth;
pub mod basic;
pub mod client;
pub mod compound;
mod error;
pub mod limits;
pub mod ops;
mod rpc;
mod status;

pub use auth::AuthSys;
pub use client::{ClientId, Nfs4Client, Session};
pub use compound::{CompoundArgs, CompoundRes};
pub use error::{Error, ErrorKind, Result};
pub use ops::{Op, OpRes};
pub use status::Status;

/// `program NFS4_PROGRAM ... = 100003`.
pub const NFS4_PROGRAM: u32 = 100_003;
/// `version NFS_V4 ... = 4`.
pub const NFS_V4: u32 = 4;
/// `void NFSPROC4_NULL(void) = 0;`
pub const NFSPROC4_NULL: u32 = 0;
/// `COMPOUND4res NFSPROC4_COMPOUND(COMPOUND4args) = 1;`
pub const NFSPROC4_COMPOUND: u32 = 1;

/// The minor version this client speaks by default.
///
/// Version history, one line each:
/// - 2 (RFC 7862): sessions of 4.1 (RFC 8881) plus CLONE, COPY, ALLOCATE, DEALLOCATE, SEEK.
pub const MINOR_VERSION: u32 = 2;
