//! One function per fuzz target, each feeding its input to the real decoder and nothing else
//! (besides checking what a decoded value must satisfy: it encodes and decodes back to
//! itself). `fuzz_targets/<name>.rs` calls `<name>`; [`TARGETS`] lists them for the corpus
//! replay (`cargo test --lib --no-default-features`, see `replay.rs`).
//!
//! Four decoders live in crates that build no library (the daemon, the CLI, the plugin's
//! cdylib). Their source files are compiled into this crate as they are (`#[path]`), so the
//! fuzzed code is exactly what ships and nothing is exported from those crates for it.

use std::io::Cursor;
use std::time::Instant;

use openvaai_proto::xdr::{from_bytes, to_bytes, Xdr};

/// `openvaaid`'s networks (what `config` names as `crate::net`).
#[allow(dead_code)]
#[path = "../../crates/daemon/src/net.rs"]
mod net;

/// `openvaaid`'s configuration file.
#[allow(dead_code)]
#[path = "../../crates/daemon/src/config.rs"]
pub mod config;

/// `openvaaid`'s `/metrics` request.
#[allow(dead_code)]
#[path = "../../crates/daemon/src/metrics/request.rs"]
pub mod metrics_request_decoder;

/// The CLI's vmdk descriptors.
#[allow(dead_code)]
#[path = "../../crates/cli/src/vmdk.rs"]
pub mod vmdk;

/// The plugin's `.openvaai/nfs42` marker.
#[allow(dead_code)]
#[path = "../../crates/plugin/src/backend/nfs42/config.rs"]
pub mod marker;

#[cfg(test)]
mod replay;
#[cfg(test)]
mod seeds;

/// A target: its input in, a panic if the decoder breaks a rule.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("proto_record", proto_record),
    ("proto_call", proto_call),
    ("proto_reply", proto_reply),
    ("proto_xdr", proto_xdr),
    ("nfs4_compound", nfs4_compound),
    ("nfs4_fattr", nfs4_fattr),
    ("nfs4_readdir", nfs4_readdir),
    ("access_file", access_file),
    ("nfs42_marker", nfs42_marker),
    ("remote_ip", remote_ip),
    ("control_line", control_line),
    ("daemon_config", daemon_config),
    ("metrics_request", metrics_request),
    ("vmdk_descriptor", vmdk_descriptor),
];

/// ONC RPC record marking (RFC 5531 §11): every record of a byte stream, as the daemon and
/// the plugin read them.
pub fn proto_record(data: &[u8]) {
    let mut r = Cursor::new(data);
    while let Ok(Some(record)) = openvaai_proto::record::read_record(&mut r) {
        assert!(record.len() <= openvaai_proto::limits::MAX_RECORD);
    }
}

/// An RPC call, as the daemon decodes what a client sends.
pub fn proto_call(data: &[u8]) {
    if let Ok(call) = openvaai_proto::rpc::decode_call(data) {
        assert!(call.args.len() <= data.len());
    }
}

/// An RPC reply, as the plugin decodes what the daemon answers.
pub fn proto_reply(data: &[u8]) {
    if let Ok((_xid, _body, results)) = openvaai_proto::rpc::decode_reply(data) {
        assert!(results.len() <= data.len());
    }
}

/// Decodes `data` as a `T`; what decodes must encode to bytes that decode to the same value.
fn round_trip<T: Xdr + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(v) = from_bytes::<T>(data) {
        let again = from_bytes::<T>(&to_bytes(&v));
        assert_eq!(again.as_ref().ok(), Some(&v), "{v:?} does not round-trip");
    }
}

/// Every XDR type of `openvaai.x` (arguments and results of every procedure): the first
/// byte picks one (modulo 22, in the order below), the rest is its encoding.
pub fn proto_xdr(data: &[u8]) {
    use openvaai_proto::*;
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 22 {
        0 => round_trip::<HelloArgs>(rest),
        1 => round_trip::<HelloRes>(rest),
        2 => round_trip::<AuthArgs>(rest),
        3 => round_trip::<AuthRes>(rest),
        4 => round_trip::<ExportArgs>(rest),
        5 => round_trip::<CapsRes>(rest),
        6 => round_trip::<CloneArgs>(rest),
        7 => round_trip::<PathArgs>(rest),
        8 => round_trip::<StartRes>(rest),
        9 => round_trip::<WaitArgs>(rest),
        10 => round_trip::<JobArgs>(rest),
        11 => round_trip::<WaitRes>(rest),
        12 => round_trip::<FailureRes>(rest),
        13 => round_trip::<StatxRes>(rest),
        14 => round_trip::<Status>(rest),
        15 => round_trip::<JobState>(rest),
        16 => round_trip::<Side>(rest),
        17 => round_trip::<AllocType>(rest),
        18 => round_trip::<JobInfo>(rest),
        19 => round_trip::<StatX>(rest),
        20 => round_trip::<Capabilities>(rest),
        _ => round_trip::<openvaai_proto::rpc::OpaqueAuth>(rest),
    }
}

/// A COMPOUND reply (RFC 8881 §16.2), every operation's result, checked against the
/// operations of the call, as the standard backend decodes what an NFS server answers. The
/// call comes first: a byte `n` (modulo 17), then `n` bytes, each an operation number; the
/// reply is the rest.
pub fn nfs4_compound(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 17);
    if rest.len() < n {
        return;
    }
    let (ops, reply) = rest.split_at(n);
    let sent: Vec<u32> = ops.iter().map(|&op| u32::from(op)).collect();
    let _ = openvaai_nfs4::compound::decode_reply(reply, &sent);
}

/// A `fattr4` (GETATTR's result, READDIR's entries).
pub fn nfs4_fattr(data: &[u8]) {
    let _ = from_bytes::<openvaai_nfs4::attr::Fattr>(data);
}

/// READDIR's result (`READDIR4resok`: cookie verifier, entries, EOF).
pub fn nfs4_readdir(data: &[u8]) {
    let _ = from_bytes::<openvaai_nfs4::ops::dir::ReaddirOk>(data);
}

/// The access file `<export>/.openvaai/access`, as the plugin reads it through the datastore;
/// what parses must render to text that parses to the same.
pub fn access_file(data: &[u8]) {
    use openvaai_proto::access::AccessFile;
    if let Ok(a) = AccessFile::parse(data) {
        let again = AccessFile::parse(a.render().as_bytes());
        assert_eq!(again.as_ref().ok(), Some(&a), "{a:?} does not round-trip");
    }
}

/// The standard backend's marker `<datastore>/.openvaai/nfs42`.
pub fn nfs42_marker(data: &[u8]) {
    if let Ok(c) = marker::Config::parse(data) {
        assert_ne!(c.port, 0);
    }
}

/// A datastore's `remoteIP` as disklib hands it over: the list's entries, and the addresses
/// they resolve to. The deadline has passed before the first look-up, so a host name is
/// looked up in `/etc/hosts` only and nothing is ever sent.
pub fn remote_ip(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = openvaai_client::address::entries(text);
    assert!(entries.len() <= 16);
    let _ = openvaai_client::address::resolve(text, 2049, Instant::now());
}

/// A line of the control socket: a request as `openvaaid` reads it, and a reply as
/// `openvaai status` / `cancel` read it. A request that parses must serialise back to itself.
pub fn control_line(data: &[u8]) {
    use openvaai_control::{read_line, Reply, Request, MAX_REPLY, MAX_REQUEST};
    if let Ok(line) = read_line(data, MAX_REQUEST) {
        if let Ok(req) = serde_json::from_slice::<Request>(&line) {
            let again = serde_json::to_vec(&req).expect("a request serialises");
            assert_eq!(serde_json::from_slice::<Request>(&again).ok(), Some(req));
        }
    }
    if let Ok(line) = read_line(data, MAX_REPLY) {
        let _ = serde_json::from_slice::<Reply>(&line);
    }
}

/// `openvaaid --config FILE`: the file is written to a scratch path (in `/dev/shm` where
/// there is one: three times the executions of a disk-backed `/tmp`) and loaded as the daemon
/// loads it (TOML, then every check of the values).
pub fn daemon_config(data: &[u8]) {
    thread_local! {
        static PATH: std::path::PathBuf = scratch_dir().join(format!(
            "openvaai-fuzz-config-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
    }
    PATH.with(|p| {
        if std::fs::write(p, data).is_err() {
            return;
        }
        let o = config::Overrides {
            config: Some(p.clone()),
            ..Default::default()
        };
        let _ = config::Config::load(&o);
        let _ = std::fs::remove_file(p);
    });
}

fn scratch_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// The request of a scraper of `openvaaid`'s `/metrics`, as the daemon reads it.
pub fn metrics_request(data: &[u8]) {
    use metrics_request_decoder::{parse, Request};
    /// The daemon's limit (`metrics::http::MAX_REQUEST`).
    const MAX_REQUEST: usize = 8192;
    let r = parse(data, MAX_REQUEST);
    if data.len() >= MAX_REQUEST && !data.windows(4).any(|w| w == b"\r\n\r\n") {
        assert_eq!(r, Request::TooLarge);
    }
}

/// A vmdk descriptor, as `openvaai clone-vmdk` reads one; what parses must render to a
/// descriptor that parses again.
pub fn vmdk_descriptor(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = vmdk::Descriptor::parse(text) {
        let rendered = d.render();
        if let Err(e) = vmdk::Descriptor::parse(&rendered) {
            panic!("{text:?} parses, but its rendering {rendered:?} does not: {e:#}");
        }
    }
}
