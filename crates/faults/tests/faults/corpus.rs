//! The committed corpus of hostile and interesting inputs (`crates/faults/corpus/*.bin`):
//! each file is the byte stream a client sends inside TLS, to the export named `/faults`.
//! Files named `authed-*` are sent after a real HELLO/AUTH, the others before any.
//!
//! The files are generated here, so that each one says what it is; a test keeps them in
//! step (`OPENVAAI_BLESS_CORPUS=1` rewrites them). Files added by hand are replayed too.

use std::path::PathBuf;

use openvaai_proto::rpc::{encode_call, AUTH_SYS};
use openvaai_proto::xdr::to_bytes;
use openvaai_proto::*;

/// The export name the corpus speaks to.
pub const EXPORT: &str = "/faults";

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// One record: the header (last fragment) and `body`.
fn record(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32 | 0x8000_0000).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn call(xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    record(&encode_call(xid, proc_, args))
}

/// An XDR string of `len` announced bytes followed by `bytes`.
fn xdr_str(len: u32, bytes: &[u8]) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(bytes);
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
    v
}

fn path_args(export: &str, path: &str) -> Vec<u8> {
    to_bytes(&PathArgs {
        export: export.into(),
        path: path.into(),
    })
}

fn clone_args(src_export: Option<&str>, src: &str, dst: &str, flags: u32) -> Vec<u8> {
    to_bytes(&CloneArgs {
        export: EXPORT.into(),
        src_export: src_export.map(Into::into),
        src: src.into(),
        dst: dst.into(),
        flags,
    })
}

/// A call header with chosen fields, for the RPC-layer rejects.
fn header(xid: u32, rpcvers: u32, prog: u32, vers: u32, proc_: u32, cred: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [xid, 0, rpcvers, prog, vers, proc_] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(cred);
    v.extend_from_slice(&[0; 8]); // verifier AUTH_NONE
    v
}

/// Every corpus entry: its file name and bytes.
pub fn generate() -> Vec<(String, Vec<u8>)> {
    let hello = |export: &[u8], len: u32| {
        let mut a = xdr_str(len, export);
        a.extend_from_slice(&[0x11; 32]);
        a
    };
    let mut out: Vec<(&str, Vec<u8>)> = vec![
        ("pre-null", call(1, PROC_NULL, &[])),
        (
            "pre-hello-valid",
            call(2, PROC_HELLO, &hello(EXPORT.as_bytes(), 7)),
        ),
        (
            "pre-hello-unknown-export",
            call(3, PROC_HELLO, &hello(b"/nope", 5)),
        ),
        (
            "pre-hello-string-4gib",
            call(4, PROC_HELLO, &hello(b"/faults", u32::MAX)),
        ),
        (
            "pre-hello-path-over-limit",
            call(5, PROC_HELLO, &hello(&[b'a'; 5000], 5000)),
        ),
        (
            "pre-hello-not-utf8",
            call(6, PROC_HELLO, &hello(&[0xff, 0xfe, 0x80], 3)),
        ),
        (
            "pre-hello-no-nonce",
            call(7, PROC_HELLO, &xdr_str(7, EXPORT.as_bytes())),
        ),
        ("pre-hello-trailing-bytes", {
            let mut a = hello(EXPORT.as_bytes(), 7);
            a.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
            call(8, PROC_HELLO, &a)
        }),
        ("pre-auth-without-hello", {
            let mut a = xdr_str(7, EXPORT.as_bytes());
            a.extend_from_slice(&[0; 32]);
            call(9, PROC_AUTH, &a)
        }),
        ("pre-hello-then-forged-auth", {
            let mut v = call(10, PROC_HELLO, &hello(EXPORT.as_bytes(), 7));
            let mut a = xdr_str(7, EXPORT.as_bytes());
            a.extend_from_slice(&[0x42; 32]);
            v.extend(call(11, PROC_AUTH, &a));
            v.extend(call(12, PROC_STATX, &path_args(EXPORT, "a.vmdk")));
            v
        }),
        (
            "pre-statx-unauthenticated",
            call(13, PROC_STATX, &path_args(EXPORT, "a.vmdk")),
        ),
        (
            "pre-clone-unauthenticated",
            call(
                14,
                PROC_CLONE_START,
                &clone_args(None, "a.vmdk", "b.vmdk", 0),
            ),
        ),
        (
            "pre-reserve-unauthenticated",
            call(15, PROC_RESERVE_START, &path_args(EXPORT, "a.vmdk")),
        ),
        ("pre-truncated-header", vec![0x80, 0x00]),
        ("pre-truncated-record", {
            let mut v = 100u32.to_be_bytes().to_vec();
            v[0] |= 0x80;
            v.extend_from_slice(&[0; 10]);
            v
        }),
        (
            "pre-fragment-2gib",
            vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        ),
        (
            "pre-fragment-over-limit",
            vec![0x80, 0x01, 0x00, 0x01, 0, 0, 0, 0],
        ),
        ("pre-record-over-limit-in-fragments", {
            let mut v = Vec::new();
            for _ in 0..2 {
                v.extend_from_slice(&0x8000u32.to_be_bytes());
                v.extend(vec![0u8; 0x8000]);
            }
            v.extend_from_slice(&[0x80, 0, 0, 4, 0, 0, 0, 0]);
            v
        }),
        ("pre-65-empty-fragments", {
            let mut v = vec![0u8; 4 * 65];
            v.extend(call(16, PROC_NULL, &[]));
            v
        }),
        ("pre-empty-record", record(&[])),
        (
            "pre-not-a-call",
            record(&[0, 0, 0, 17, 0, 0, 0, 1, 0, 0, 0, 0]),
        ),
        ("pre-msg-type-7", record(&[0, 0, 0, 18, 0, 0, 0, 7])),
        (
            "pre-rpcvers-3",
            record(&header(19, 3, PROGRAM, 1, 0, &[0; 8])),
        ),
        (
            "pre-other-program",
            record(&header(20, 2, 100003, 3, 0, &[0; 8])),
        ),
        (
            "pre-other-version",
            record(&header(21, 2, PROGRAM, 2, 0, &[0; 8])),
        ),
        ("pre-unknown-procedure", call(22, 99, &[])),
        ("pre-procedure-u32-max", call(23, u32::MAX, &[])),
        (
            "pre-cred-gss",
            record(&header(24, 2, PROGRAM, 1, 0, &[0, 0, 0, 6, 0, 0, 0, 0])),
        ),
        (
            "pre-cred-length-4gib",
            record(&header(
                25,
                2,
                PROGRAM,
                1,
                0,
                &[0, 0, 0, AUTH_SYS as u8, 0xff, 0xff, 0xff, 0xf0],
            )),
        ),
        ("pre-cred-over-400", {
            let mut cred = vec![0, 0, 0, AUTH_SYS as u8];
            cred.extend(xdr_str(401, &[0x55; 401]));
            record(&header(26, 2, PROGRAM, 1, 0, &cred))
        }),
        (
            "pre-header-cut-short",
            record(&[0, 0, 0, 27, 0, 0, 0, 0, 0, 0, 0, 2, 0x2f]),
        ),
        (
            "pre-null-with-arguments",
            call(28, PROC_NULL, &[0, 0, 0, 1]),
        ),
        (
            "pre-many-calls-pipelined",
            (0..64)
                .flat_map(|i| call(100 + i, PROC_NULL, &[]))
                .collect(),
        ),
        ("pre-call-in-64-fragments", {
            let c = encode_call(29, PROC_NULL, &[]);
            let mut v = Vec::new();
            for (i, b) in c.iter().enumerate() {
                let last = if i + 1 == c.len() { 0x8000_0000u32 } else { 0 };
                v.extend_from_slice(&(1 | last).to_be_bytes());
                v.push(*b);
            }
            v
        }),
        (
            "authed-statx-dotdot",
            call(30, PROC_STATX, &path_args(EXPORT, "../outside/secret.vmdk")),
        ),
        (
            "authed-statx-absolute",
            call(31, PROC_STATX, &path_args(EXPORT, "/etc/passwd")),
        ),
        (
            "authed-statx-nul",
            call(32, PROC_STATX, &path_args(EXPORT, "a.vmdk\0/etc/passwd")),
        ),
        (
            "authed-statx-private",
            call(33, PROC_STATX, &path_args(EXPORT, ".openvaai/access")),
        ),
        (
            "authed-statx-empty",
            call(34, PROC_STATX, &path_args(EXPORT, "")),
        ),
        (
            "authed-statx-long-name",
            call(35, PROC_STATX, &path_args(EXPORT, &"n".repeat(300))),
        ),
        (
            "authed-statx-deep",
            call(36, PROC_STATX, &path_args(EXPORT, &"d/".repeat(2000))),
        ),
        (
            "authed-statx-other-export",
            call(37, PROC_STATX, &path_args("/nope", "a.vmdk")),
        ),
        (
            "authed-clone-unknown-flags",
            call(
                38,
                PROC_CLONE_START,
                &clone_args(None, "a.vmdk", "b.vmdk", 1 << 20),
            ),
        ),
        (
            "authed-clone-escape-src",
            call(
                39,
                PROC_CLONE_START,
                &clone_args(None, "../outside/secret.vmdk", "stolen.vmdk", 0),
            ),
        ),
        (
            "authed-clone-escape-dst",
            call(
                40,
                PROC_CLONE_START,
                &clone_args(None, "a.vmdk", "../outside/planted.vmdk", 0),
            ),
        ),
        (
            "authed-clone-absolute-dst",
            call(
                41,
                PROC_CLONE_START,
                &clone_args(None, "a.vmdk", "/tmp/planted.vmdk", 0),
            ),
        ),
        (
            "authed-clone-into-private",
            call(
                42,
                PROC_CLONE_START,
                &clone_args(None, "a.vmdk", ".openvaai/planted", 0),
            ),
        ),
        (
            "authed-clone-from-private",
            call(
                43,
                PROC_CLONE_START,
                &clone_args(None, ".openvaai/access", "access.copy", 0),
            ),
        ),
        (
            "authed-clone-unknown-src-export",
            call(
                44,
                PROC_CLONE_START,
                &clone_args(Some("/nope"), "a.vmdk", "b.vmdk", 4),
            ),
        ),
        ("authed-clone-args-cut", {
            let a = clone_args(None, "a.vmdk", "b.vmdk", 0);
            call(45, PROC_CLONE_START, &a[..a.len() - 3])
        }),
        ("authed-clone-optional-tag-7", {
            let mut a = xdr_str(7, EXPORT.as_bytes());
            a.extend_from_slice(&7u32.to_be_bytes());
            a.extend(xdr_str(6, b"a.vmdk"));
            a.extend(xdr_str(6, b"b.vmdk"));
            a.extend_from_slice(&0u32.to_be_bytes());
            call(46, PROC_CLONE_START, &a)
        }),
        (
            "authed-reserve-missing",
            call(47, PROC_RESERVE_START, &path_args(EXPORT, "missing.vmdk")),
        ),
        (
            "authed-reserve-directory",
            call(48, PROC_RESERVE_START, &path_args(EXPORT, ".")),
        ),
        (
            "authed-wait-unknown-job",
            call(
                49,
                PROC_WAIT,
                &to_bytes(&WaitArgs {
                    job: 0x1234,
                    threshold: u64::MAX,
                    max_wait_ms: u32::MAX,
                }),
            ),
        ),
        ("authed-wait-args-cut", call(50, PROC_WAIT, &[0, 0, 0, 1])),
        (
            "authed-cancel-job-0",
            call(51, PROC_CANCEL, &to_bytes(&JobArgs { job: 0 })),
        ),
        (
            "authed-commit-unknown-job",
            call(52, PROC_COMMIT, &to_bytes(&JobArgs { job: u64::MAX })),
        ),
        ("authed-statx-then-garbage", {
            let mut v = call(53, PROC_STATX, &path_args(EXPORT, "a.vmdk"));
            v.extend_from_slice(b"\x80\x00\x00\x08garbage!");
            v
        }),
        ("authed-valid-session", {
            let mut v = call(54, PROC_CAPABILITIES, &xdr_str(7, EXPORT.as_bytes()));
            v.extend(call(55, PROC_STATX, &path_args(EXPORT, "a.vmdk")));
            v.extend(call(
                56,
                PROC_CLONE_START,
                &clone_args(None, "a.vmdk", "corpus-copy.vmdk", CLONE_DRY_RUN),
            ));
            v
        }),
    ];
    out.sort_by(|a, b| a.0.cmp(b.0));
    out.into_iter()
        .map(|(n, b)| (format!("{n}.bin"), b))
        .collect()
}

#[test]
fn the_committed_corpus_is_what_the_generator_makes() {
    let dir = dir();
    let bless = std::env::var("OPENVAAI_BLESS_CORPUS").is_ok_and(|v| v == "1");
    for (name, bytes) in generate() {
        let path = dir.join(&name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (OPENVAAI_BLESS_CORPUS=1 writes it)",
                path.display()
            )
        });
        assert!(committed == bytes, "{name} differs from its generator");
    }
}
