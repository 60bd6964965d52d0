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
//! The crate exports the C ABI and nothing else: every module is private. Reaching openvaaid
//! (the access file, addresses, pinned TLS, connections) is the `openvaai-client` library,
//! which tools and tests use directly. Only `ffi` (the entry points) and `shim` (the one
//! call out to C) hold `unsafe` code; everything behind them is safe Rust.
#![deny(unsafe_code)]

mod backend;
mod ffi;
mod log;
mod primitive;
mod session;
mod shim;

pub(crate) use log::{info, warning};
