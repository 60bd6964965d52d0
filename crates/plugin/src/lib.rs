//! `libopenvaai.so`: the disklib NAS plugin that offloads clone, reserve and statx from ESXi to
//! `openvaaid` on the NAS.
//!
//! disklib loads the library, reads the exported `VixDiskLibPlugin_EntryPoint` table, calls
//! `Init` once (or more: calls are counted), then for every NFS datastore `StartSession`,
//! `SupportStatus` and `ExecPrimitive` from any of its threads, `EndSession`, and `Done`.
//!
//! Rules this crate keeps, because it runs inside VMware's processes:
//! - nothing is written to stdout or stderr: messages go to the log functions `Init` received;
//! - no panic crosses the C ABI: every entry point catches them and returns a `VixError`;
//! - no threads of its own, no async runtime, and every call is bounded in time;
//! - session IDs are opaque keys into a registry, never pointers.
//!
//! Only [`ffi`] holds `unsafe` code; everything behind it is safe Rust.
#![deny(unsafe_code)]

mod address;
mod conn;
pub mod datastore;
mod exec;
mod ffi;
pub mod log;
mod reach;
pub mod session;
pub mod tls;

pub use openvaai_abi as abi;
