//! openvaaid end to end: the real binary on loopback, a TLS client that pins the certificate
//! from the access file, every procedure, the trust rules, the limits and the deadlines.

#[path = "../util/mod.rs"]
mod util;

mod config;
mod connections;
mod jobs;
mod procedures;
mod trust;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use openvaai_proto::auth::Secret;
use openvaai_proto::record::write_record;
use openvaai_proto::rpc::{self, AcceptStat, RejectStat, ReplyBody};
use openvaai_proto::*;
use util::*;

fn clone_args(d: &Daemon, src: &str, dst: &str, flags: u32) -> CloneArgs {
    CloneArgs {
        export: d.name(0),
        src_export: None,
        src: src.into(),
        dst: dst.into(),
        flags,
    }
}
