//! `openvaai.x` and the code agree: procedure numbers, constants, enum values, and every
//! struct's fields in order with their types, so that the specification cannot drift from
//! what goes on the wire.

use std::collections::BTreeMap;

use openvaai_proto::limits::{MAX_PATH, MAX_SHORT_STRING, MAX_WAIT_MS};
use openvaai_proto::xdr::{to_bytes, Decoder};
use openvaai_proto::*;

const SPEC: &str = include_str!("../openvaai.x");

/// The specification, as far as this test reads it.
#[derive(Default)]
struct Spec {
    consts: BTreeMap<String, i64>,
    enums: BTreeMap<String, Vec<(String, i64)>>,
    /// Fields as (type, name); an optional one's type ends in `*`.
    structs: BTreeMap<String, Vec<(String, String)>>,
    /// Procedure name without `OVPROC_`: (number, argument type, result type).
    procs: BTreeMap<String, (i64, String, String)>,
    /// The numbers after the version's and the program's closing braces.
    version: i64,
    program: i64,
}

fn number(t: &str) -> i64 {
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).unwrap(),
        None => t.parse().unwrap_or_else(|_| panic!("not a number: {t}")),
    }
}

fn tokens(text: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        plain.push_str(&rest[..start]);
        rest = &rest[start + rest[start..].find("*/").unwrap() + 2..];
    }
    plain.push_str(rest);
    let mut out = Vec::new();
    let mut word = String::new();
    for c in plain.chars() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    out
}

impl Spec {
    fn parse(text: &str) -> Spec {
        let t = tokens(text);
        let mut s = Spec::default();
        let mut i = 0;
        while i < t.len() {
            match t[i].as_str() {
                "const" => {
                    s.consts.insert(t[i + 1].clone(), number(&t[i + 3]));
                    i += 5;
                }
                "enum" if t[i + 2] == "{" => {
                    let name = t[i + 1].clone();
                    let mut values = Vec::new();
                    i += 3;
                    while t[i] != "}" {
                        values.push((t[i].clone(), number(&t[i + 2])));
                        i += if t[i + 3] == "," { 4 } else { 3 };
                    }
                    s.enums.insert(name, values);
                }
                "struct" if t[i + 2] == "{" => {
                    let name = t[i + 1].clone();
                    let mut fields = Vec::new();
                    i += 3;
                    while t[i] != "}" {
                        let end = i + t[i..].iter().position(|x| x == ";").unwrap();
                        let field = t[end - 1].clone();
                        let ty = t[i..end - 1].join(" ").replace(" *", "*");
                        fields.push((ty, field));
                        i = end + 1;
                    }
                    s.structs.insert(name, fields);
                }
                w if w.starts_with("OVPROC_") => {
                    // result OVPROC_NAME ( arg ) = n ;
                    let name = w.trim_start_matches("OVPROC_").to_owned();
                    let (res, arg, n) = (t[i - 1].clone(), t[i + 2].clone(), number(&t[i + 5]));
                    s.procs.insert(name, (n, arg, res));
                    i += 6;
                }
                "}" if t.get(i + 1).map(String::as_str) == Some("=") => {
                    let n = number(&t[i + 2]);
                    if s.version == 0 {
                        s.version = n;
                    } else {
                        s.program = n;
                    }
                    i += 3;
                }
                _ => i += 1,
            }
        }
        s
    }
}

#[test]
fn procedures_have_the_numbers_and_types_of_the_spec() {
    let spec = Spec::parse(SPEC);
    assert_eq!(spec.program, i64::from(PROGRAM));
    assert_eq!(spec.version, i64::from(PROTOCOL_VERSION));
    let code: &[(&str, u32, &str, &str)] = &[
        ("NULL", PROC_NULL, "void", "void"),
        ("HELLO", PROC_HELLO, "hello_args", "hello_res"),
        ("AUTH", PROC_AUTH, "auth_args", "auth_res"),
        ("CAPABILITIES", PROC_CAPABILITIES, "export_args", "caps_res"),
        ("CLONE_START", PROC_CLONE_START, "clone_args", "start_res"),
        (
            "RESERVE_START",
            PROC_RESERVE_START,
            "path_args",
            "start_res",
        ),
        ("WAIT", PROC_WAIT, "wait_args", "wait_res"),
        ("CANCEL", PROC_CANCEL, "job_args", "wait_res"),
        ("STATX", PROC_STATX, "path_args", "statx_res"),
        ("COMMIT", PROC_COMMIT, "job_args", "wait_res"),
        ("FAILURE", PROC_FAILURE, "job_args", "failure_res"),
    ];
    let want: BTreeMap<String, (i64, String, String)> = code
        .iter()
        .map(|(n, v, a, r)| (n.to_string(), (i64::from(*v), a.to_string(), r.to_string())))
        .collect();
    assert_eq!(spec.procs, want);
}

#[test]
fn constants_are_the_spec_s() {
    let spec = Spec::parse(SPEC);
    let code: &[(&str, i64)] = &[
        ("OV_MAX_PATH", MAX_PATH as i64),
        ("OV_MAX_SHORT", MAX_SHORT_STRING as i64),
        ("OV_NONCE_SIZE", NONCE_LEN as i64),
        ("OV_PROOF_SIZE", PROOF_LEN as i64),
        ("OV_MAX_WAIT_MS", MAX_WAIT_MS.into()),
        ("OV_PRIM_CLONE", PRIM_CLONE.into()),
        ("OV_PRIM_RESERVE", PRIM_RESERVE.into()),
        ("OV_PRIM_STATX", PRIM_STATX.into()),
        ("OV_CLONE_GUARDED", CLONE_GUARDED.into()),
        ("OV_CLONE_LAZY", CLONE_LAZY.into()),
        (
            "OV_CLONE_SRC_DATASTORE_VALID",
            CLONE_SRC_DATASTORE_VALID.into(),
        ),
        ("OV_CLONE_DRY_RUN", CLONE_DRY_RUN.into()),
        ("OV_CLONE_SKIP_ZEROES", CLONE_SKIP_ZEROES.into()),
        ("OV_CLONE_HOLD", CLONE_HOLD.into()),
    ];
    let want: BTreeMap<String, i64> = code.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    assert_eq!(spec.consts, want);
}

#[test]
fn enums_have_the_values_of_the_spec() {
    let spec = Spec::parse(SPEC);
    // Every value the spec names decodes to a known variant, and every value a known
    // variant has is one the spec names.
    fn check(spec: &Spec, name: &str, known: impl Fn(u32) -> Option<u32>) {
        let values: Vec<u32> = spec.enums[name].iter().map(|(_, v)| *v as u32).collect();
        for v in &values {
            assert_eq!(known(*v), Some(*v), "{name}: {v} is not known to the code");
        }
        for v in (0..=1024).chain([u32::MAX]) {
            if known(v).is_some() {
                assert!(
                    values.contains(&v),
                    "{name}: the code knows {v}, the spec does not"
                );
            }
        }
    }
    let status = |v| Some(Status::from_u32(v)).filter(|s| !matches!(s, Status::Unknown(_)));
    check(&spec, "ov_status", |v| status(v).map(Status::to_u32));
    let state = |v| Some(JobState::from_u32(v)).filter(|s| !matches!(s, JobState::Unknown(_)));
    check(&spec, "ov_job_state", |v| state(v).map(JobState::to_u32));
    let side = |v| Some(Side::from_u32(v)).filter(|s| !matches!(s, Side::Unknown(_)));
    check(&spec, "ov_side", |v| side(v).map(Side::to_u32));
    let alloc = |v| Some(AllocType::from_u32(v)).filter(|s| !matches!(s, AllocType::Unknown(_)));
    check(&spec, "ov_alloc_type", |v| alloc(v).map(AllocType::to_u32));
    assert_eq!(
        spec.enums.len(),
        4,
        "an enum of the spec this test does not check"
    );
}

/// One field's value, as read back by the spec's type.
#[derive(Debug, Clone, PartialEq)]
enum V {
    U32(u32),
    U64(u64),
    Bool(bool),
    Str(String),
    Opt(Option<String>),
    Bytes(Vec<u8>),
}

fn s(v: &str) -> V {
    V::Str(v.into())
}

/// Reads `bytes` field by field as the spec's struct `name` lays them out, and compares
/// each with what the code's value holds under that field's name.
fn agrees(spec: &Spec, name: &str, bytes: Vec<u8>, want: &[(&str, V)]) {
    let fields = &spec.structs[name];
    let mut r = Decoder::new(&bytes);
    let mut got = Vec::new();
    for (ty, field) in fields {
        let v = match ty.as_str() {
            "ov_path" | "ov_short_string" => V::Str(r.string(MAX_PATH).unwrap()),
            "ov_path*" => V::Opt(if r.bool().unwrap() {
                Some(r.string(MAX_PATH).unwrap())
            } else {
                None
            }),
            "ov_nonce" | "ov_proof" => V::Bytes(r.fixed_opaque::<32>().unwrap().to_vec()),
            "unsigned int" | "ov_status" | "ov_side" | "ov_job_state" | "ov_alloc_type" => {
                V::U32(r.u32().unwrap())
            }
            "unsigned hyper" | "ov_job_id" => V::U64(r.u64().unwrap()),
            "bool" => V::Bool(r.bool().unwrap()),
            other => panic!("{name}.{field}: type {other} unknown to this test"),
        };
        got.push((field.clone(), v));
    }
    r.finish()
        .unwrap_or_else(|e| panic!("{name}: the code writes more than the spec: {e}"));
    let want: Vec<(String, V)> = want
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let mut sorted = want.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut got_sorted = got.clone();
    got_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got_sorted, sorted, "{name}: fields differ");
    assert_eq!(got, want, "{name}: field order differs");
}

/// A struct of the spec, the code's encoding of a value, and that value's fields by name.
type Case = (&'static str, Vec<u8>, Vec<(&'static str, V)>);

#[test]
fn structs_have_the_fields_of_the_spec_in_order() {
    let spec = Spec::parse(SPEC);
    let n = |b: u8| [b; 32];
    let cases: Vec<Case> = vec![
        (
            "hello_args",
            to_bytes(&HelloArgs {
                export: "/e".into(),
                client_nonce: n(1),
            }),
            vec![
                ("export", s("/e")),
                ("client_nonce", V::Bytes(n(1).to_vec())),
            ],
        ),
        (
            "hello_ok",
            to_bytes(&HelloOk {
                server_challenge: n(2),
                protocol_version: 7,
                server_version: "v".into(),
            }),
            vec![
                ("server_challenge", V::Bytes(n(2).to_vec())),
                ("protocol_version", V::U32(7)),
                ("server_version", s("v")),
            ],
        ),
        (
            "auth_args",
            to_bytes(&AuthArgs {
                export: "/e".into(),
                client_proof: n(3),
            }),
            vec![
                ("export", s("/e")),
                ("client_proof", V::Bytes(n(3).to_vec())),
            ],
        ),
        (
            "export_args",
            to_bytes(&ExportArgs {
                export: "/x".into(),
            }),
            vec![("export", s("/x"))],
        ),
        (
            "ov_capabilities",
            to_bytes(&Capabilities {
                primitives: 1,
                clone_flags: 2,
                reflink: true,
                fallocate: false,
                fiemap: true,
                unwritten_extents: false,
                read_only: true,
                fs_type: "xfs".into(),
                fs_id: 3,
                daemon_version: "d".into(),
                protocol_version: 4,
            }),
            vec![
                ("primitives", V::U32(1)),
                ("clone_flags", V::U32(2)),
                ("reflink", V::Bool(true)),
                ("fallocate", V::Bool(false)),
                ("fiemap", V::Bool(true)),
                ("unwritten_extents", V::Bool(false)),
                ("read_only", V::Bool(true)),
                ("fs_type", s("xfs")),
                ("fs_id", V::U64(3)),
                ("daemon_version", s("d")),
                ("protocol_version", V::U32(4)),
            ],
        ),
        (
            "clone_args",
            to_bytes(&CloneArgs {
                export: "/d".into(),
                src_export: Some("/s".into()),
                src: "a".into(),
                dst: "b".into(),
                flags: 5,
            }),
            vec![
                ("export", s("/d")),
                ("src_export", V::Opt(Some("/s".into()))),
                ("src", s("a")),
                ("dst", s("b")),
                ("flags", V::U32(5)),
            ],
        ),
        (
            "path_args",
            to_bytes(&PathArgs {
                export: "/e".into(),
                path: "p".into(),
            }),
            vec![("export", s("/e")), ("path", s("p"))],
        ),
        (
            "wait_args",
            to_bytes(&WaitArgs {
                job: 1,
                threshold: 2,
                max_wait_ms: 3,
            }),
            vec![
                ("job", V::U64(1)),
                ("threshold", V::U64(2)),
                ("max_wait_ms", V::U32(3)),
            ],
        ),
        (
            "job_args",
            to_bytes(&JobArgs { job: 9 }),
            vec![("job", V::U64(9))],
        ),
        (
            "ov_job_info",
            to_bytes(&JobInfo {
                state: JobState::Failed,
                done: 1,
                total: 2,
                result: Status::DiskFull,
            }),
            vec![
                ("state", V::U32(2)),
                ("done", V::U64(1)),
                ("total", V::U64(2)),
                ("result", V::U32(8)),
            ],
        ),
        (
            "ov_failure",
            to_bytes(&Failure {
                result: Status::FileNotFound,
                side: Side::Source,
            }),
            vec![("result", V::U32(4)), ("side", V::U32(1))],
        ),
        (
            "ov_statx",
            to_bytes(&StatX {
                total_bytes: 1,
                alloced_bytes: 2,
                unique_bytes: 3,
                alloc_type: AllocType::Thin,
            }),
            vec![
                ("total_bytes", V::U64(1)),
                ("alloced_bytes", V::U64(2)),
                ("unique_bytes", V::U64(3)),
                ("alloc_type", V::U32(2)),
            ],
        ),
    ];
    let covered: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let all: Vec<&str> = spec.structs.keys().map(String::as_str).collect();
    let mut sorted = covered.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, all, "every struct of the spec is checked");
    for (name, bytes, want) in cases {
        agrees(&spec, name, bytes, &want);
    }
}
