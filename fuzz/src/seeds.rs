//! The seed corpora: real encodings made by the project's own encoders (and real files of
//! the formats that have no encoder), written to `corpus/<target>/seed-*`.
//!
//! `cargo test --lib --no-default-features -- --ignored write_seeds` rewrites them; a
//! campaign adds what it finds beside them.

use std::path::Path;

use openvaai_nfs4::ops::opcode;
use openvaai_nfs4::{CompoundRes, OpRes, Status as NfsStatus};
use openvaai_proto::rpc::{self, AcceptStat, OpaqueAuth, RejectStat, ReplyBody};
use openvaai_proto::xdr::{to_bytes, Decoder, Xdr};
use openvaai_proto::*;

fn write(target: &str, name: &str, data: impl AsRef<[u8]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

/// A value of `T` decoded from zeros (every length 0, every number 0): the real encoder then
/// gives its exact bytes.
fn zero<T: Xdr>() -> T {
    T::decode(&mut Decoder::new(&[0u8; 512])).expect("decodes from zeros")
}

fn with<T: Xdr>(selector: u8, v: &T) -> Vec<u8> {
    let mut b = vec![selector];
    b.extend(to_bytes(v));
    b
}

const NFS_OPS: &[u32] = &[
    opcode::ACCESS,
    opcode::CLOSE,
    opcode::COMMIT,
    opcode::GETATTR,
    opcode::GETFH,
    opcode::LINK,
    opcode::LOOKUP,
    opcode::OPEN,
    opcode::PUTFH,
    opcode::PUTROOTFH,
    opcode::READDIR,
    opcode::REMOVE,
    opcode::RENAME,
    opcode::RESTOREFH,
    opcode::SAVEFH,
    opcode::SETATTR,
    opcode::EXCHANGE_ID,
    opcode::CREATE_SESSION,
    opcode::DESTROY_SESSION,
    opcode::SEQUENCE,
    opcode::DESTROY_CLIENTID,
    opcode::RECLAIM_COMPLETE,
    opcode::ALLOCATE,
    opcode::COPY,
    opcode::DEALLOCATE,
    opcode::SEEK,
    opcode::CLONE,
];

/// The result of `op` decoded from its status (`status`) and zeros, as the server would
/// encode it.
fn op_res(op: u32, status: u32) -> OpRes {
    let mut b = to_bytes(&op);
    b.extend(to_bytes(&status));
    b.extend([0u8; 512]);
    OpRes::decode(&mut Decoder::new(&b)).expect("a result decodes from zeros")
}

/// The input of `nfs4_compound`: the call's operations, then the reply, which must decode.
fn compound_seed(ops: &[u32], results: Vec<OpRes>, status: NfsStatus) -> Vec<u8> {
    let reply = to_bytes(&CompoundRes {
        status,
        tag: String::new(),
        results,
    });
    if status != NfsStatus::OpIllegal {
        openvaai_nfs4::compound::decode_reply(&reply, ops).expect("the seed decodes");
    }
    let mut b = vec![ops.len() as u8];
    b.extend(ops.iter().map(|&op| op as u8));
    b.extend(reply);
    b
}

#[test]
#[ignore = "rewrites the seed corpora: run by hand"]
fn write_seeds() {
    // Record marking: one record, two fragments, an empty one, two records back to back.
    let mut one = Vec::new();
    record::write_record(&mut one, &rpc::encode_call(1, PROC_NULL, &[])).unwrap();
    write("proto_record", "null-call", &one);
    let mut two = one.clone();
    record::write_record(&mut two, &[0u8; 8]).unwrap();
    write("proto_record", "two-records", &two);
    let mut frags = Vec::new();
    frags.extend(4u32.to_be_bytes());
    frags.extend([1, 2, 3, 4]);
    frags.extend((0x8000_0000u32 | 4).to_be_bytes());
    frags.extend([5, 6, 7, 8]);
    write("proto_record", "two-fragments", &frags);
    write("proto_record", "empty-last", 0x8000_0000u32.to_be_bytes());

    // Calls of every procedure, with AUTH_NONE and AUTH_SYS.
    let path = PathArgs {
        export: "/exports/a".into(),
        path: "vm/disk-flat.vmdk".into(),
    };
    let clone = CloneArgs {
        export: "/exports/a".into(),
        src_export: Some("/exports/b".into()),
        src: "vm/disk-flat.vmdk".into(),
        dst: "vm2/disk-flat.vmdk".into(),
        flags: CLONE_LAZY | CLONE_GUARDED,
    };
    let calls: Vec<(&str, u32, Vec<u8>)> = vec![
        ("null", PROC_NULL, vec![]),
        ("hello", PROC_HELLO, to_bytes(&zero::<HelloArgs>())),
        ("auth", PROC_AUTH, to_bytes(&zero::<AuthArgs>())),
        (
            "capabilities",
            PROC_CAPABILITIES,
            to_bytes(&ExportArgs {
                export: "/exports/a".into(),
            }),
        ),
        ("clone-start", PROC_CLONE_START, to_bytes(&clone)),
        ("reserve-start", PROC_RESERVE_START, to_bytes(&path)),
        (
            "wait",
            PROC_WAIT,
            to_bytes(&WaitArgs {
                job: 7,
                threshold: 1 << 20,
                max_wait_ms: 1000,
            }),
        ),
        ("cancel", PROC_CANCEL, to_bytes(&JobArgs { job: 7 })),
        ("statx", PROC_STATX, to_bytes(&path)),
        ("commit", PROC_COMMIT, to_bytes(&JobArgs { job: 7 })),
        ("failure", PROC_FAILURE, to_bytes(&JobArgs { job: 7 })),
    ];
    let auth_sys = OpaqueAuth {
        flavor: 1,
        body: to_bytes(&openvaai_nfs4::AuthSys::root("esxi01")),
    };
    for (name, proc_, args) in &calls {
        write("proto_call", name, rpc::encode_call(9, *proc_, args));
        write(
            "proto_call",
            &format!("{name}-auth-sys"),
            rpc::encode_call_with(9, PROGRAM, PROTOCOL_VERSION, *proc_, &auth_sys, args),
        );
    }

    // Replies: every accept and reject status, with results.
    let bodies = [
        ("success", rpc::accepted(AcceptStat::Success)),
        ("prog-unavail", rpc::accepted(AcceptStat::ProgUnavail)),
        (
            "prog-mismatch",
            rpc::accepted(AcceptStat::ProgMismatch { low: 1, high: 1 }),
        ),
        ("proc-unavail", rpc::accepted(AcceptStat::ProcUnavail)),
        ("garbage-args", rpc::accepted(AcceptStat::GarbageArgs)),
        ("system-err", rpc::accepted(AcceptStat::SystemErr)),
        (
            "rpc-mismatch",
            ReplyBody::Denied(RejectStat::RpcMismatch { low: 2, high: 2 }),
        ),
        ("auth-error", ReplyBody::Denied(RejectStat::AuthError(1))),
    ];
    let job = JobInfo {
        state: JobState::Running,
        done: 1 << 20,
        total: 1 << 30,
        result: Status::Ok,
    };
    let wait_ok: WaitRes = Ok(job);
    for (name, body) in &bodies {
        write(
            "proto_reply",
            name,
            rpc::encode_reply(9, body, &to_bytes(&wait_ok)),
        );
    }

    // Every XDR type, by its selector in `proto_xdr`.
    let statx = StatX {
        total_bytes: 1 << 30,
        alloced_bytes: 1 << 29,
        unique_bytes: 1 << 20,
        alloc_type: AllocType::Lzt,
    };
    let xdr: Vec<(&str, Vec<u8>)> = vec![
        ("hello-args", with(0, &zero::<HelloArgs>())),
        ("hello-res", with(1, &Ok::<_, Status>(zero::<HelloOk>()))),
        (
            "hello-res-err",
            with(1, &Err::<HelloOk, _>(Status::NotSupported)),
        ),
        ("auth-args", with(2, &zero::<AuthArgs>())),
        ("auth-res", with(3, &zero::<AuthRes>())),
        (
            "export-args",
            with(
                4,
                &ExportArgs {
                    export: "/exports/a".into(),
                },
            ),
        ),
        (
            "caps-res",
            with(5, &Ok::<_, Status>(Capabilities::default())),
        ),
        ("clone-args", with(6, &clone)),
        ("path-args", with(7, &path)),
        ("start-res", with(8, &Ok::<u64, Status>(7))),
        ("wait-args", with(9, &zero::<WaitArgs>())),
        ("job-args", with(10, &JobArgs { job: 7 })),
        ("wait-res", with(11, &wait_ok)),
        ("failure-res", with(12, &zero::<FailureRes>())),
        ("statx-res", with(13, &Ok::<_, Status>(statx))),
        ("status", with(14, &Status::HostConnectionLost)),
        ("job-state", with(15, &JobState::Done)),
        ("side", with(16, &zero::<Side>())),
        ("alloc-type", with(17, &AllocType::NotKnown)),
        ("job-info", with(18, &job)),
        ("statx", with(19, &statx)),
        ("capabilities", with(20, &Capabilities::default())),
        ("opaque-auth", with(21, &auth_sys)),
    ];
    for (name, b) in &xdr {
        write("proto_xdr", name, b);
    }

    // COMPOUND replies: SEQUENCE then each operation, succeeding and failing.
    for &op in NFS_OPS {
        let name = opcode::name(op).to_lowercase();
        let ops = [opcode::SEQUENCE, op];
        let ok = vec![op_res(opcode::SEQUENCE, 0), op_res(op, 0)];
        write(
            "nfs4_compound",
            &format!("{name}-ok"),
            compound_seed(&ops, ok, NfsStatus::Ok),
        );
        let failed = vec![op_res(opcode::SEQUENCE, 0), op_res(op, 2)];
        write(
            "nfs4_compound",
            &format!("{name}-noent"),
            compound_seed(&ops, failed, NfsStatus::Noent),
        );
    }
    write(
        "nfs4_compound",
        "illegal",
        compound_seed(
            &[opcode::SEQUENCE, 99],
            vec![op_res(opcode::SEQUENCE, 0), op_res(opcode::ILLEGAL, 10044)],
            NfsStatus::OpIllegal,
        ),
    );
    write(
        "nfs4_fattr",
        "empty",
        to_bytes(&zero::<openvaai_nfs4::attr::Fattr>()),
    );
    let fattr = openvaai_nfs4::attr::Fattr {
        file_type: Some(openvaai_nfs4::attr::FileType::from_u32(1)),
        change: Some(0x1234),
        size: Some(1 << 30),
        fsid: Some(Default::default()),
        lease_time: Some(90),
        fileid: Some(131),
        mode: Some(0o644),
        numlinks: Some(1),
        owner: Some("0".into()),
        owner_group: Some("root@example.com".into()),
        space_used: Some(1 << 29),
        time_modify: Some(Default::default()),
        clone_blksize: Some(4096),
        ..Default::default()
    };
    write("nfs4_fattr", "regular-file", to_bytes(&fattr));
    // A GETATTR that succeeds with those attributes.
    let getattr = vec![
        op_res(opcode::SEQUENCE, 0),
        op_res(opcode::PUTFH, 0),
        OpRes::Getattr(Ok(fattr)),
    ];
    write(
        "nfs4_compound",
        "getattr-regular-file",
        compound_seed(
            &[opcode::SEQUENCE, opcode::PUTFH, opcode::GETATTR],
            getattr,
            NfsStatus::Ok,
        ),
    );
    write(
        "nfs4_readdir",
        "empty",
        to_bytes(&zero::<openvaai_nfs4::ops::dir::ReaddirOk>()),
    );
    let readdir = openvaai_nfs4::ops::dir::ReaddirOk {
        cookieverf: zero(),
        entries: (0..3)
            .map(|i| openvaai_nfs4::ops::dir::DirEntry {
                cookie: 10 + i,
                name: format!(".openvaai-tmp-{i}").into_bytes(),
            })
            .collect(),
        eof: true,
    };
    write("nfs4_readdir", "three-entries", to_bytes(&readdir));

    // The access file, as openvaaid renders it.
    let access = openvaai_proto::access::AccessFile {
        port: 7443,
        addresses: vec!["192.0.2.10".parse().unwrap(), "fd00::10".parse().unwrap()],
        cert_sha256: [0xab; 32],
        secret: openvaai_proto::auth::Secret::from_bytes([0x5c; 32]),
    };
    write("access_file", "two-addresses", access.render());
    let access = openvaai_proto::access::AccessFile {
        addresses: vec![],
        ..access
    };
    write("access_file", "no-address", access.render());

    write("nfs42_marker", "empty", "");
    write("nfs42_marker", "port", "port = 2049\n");
    write(
        "nfs42_marker",
        "comment",
        "# the standard backend\nport = 20049\n",
    );

    for (name, v) in [
        ("v4", "192.0.2.7"),
        ("v6", "fd00::7"),
        ("v6-brackets", "[fd00::7]"),
        ("list", "192.0.2.7,192.0.2.8 fd00::7;nas01.example.com"),
        ("localhost", "localhost"),
    ] {
        write("remote_ip", name, v);
    }

    let req = |r: &openvaai_control::Request| {
        let mut v = serde_json::to_vec(r).unwrap();
        v.push(b'\n');
        v
    };
    write(
        "control_line",
        "status",
        req(&openvaai_control::Request::Status),
    );
    write(
        "control_line",
        "cancel",
        req(&openvaai_control::Request::Cancel {
            job: "00000000000000ab".into(),
        }),
    );
    let mut reply = serde_json::to_vec(&openvaai_control::Reply::Error {
        message: "no such job".into(),
    })
    .unwrap();
    reply.push(b'\n');
    write("control_line", "error-reply", reply);

    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/deb/openvaaid.toml");
    write(
        "daemon_config",
        "packaged",
        std::fs::read(config_dir).unwrap(),
    );
    write(
        "daemon_config",
        "two-exports",
        "listen = [\"127.0.0.1:7443\"]\nstate_dir = \"/var/lib/openvaaid\"\n\
         [limits]\nmax_jobs = 4\nlease_seconds = 30\n\
         [metrics]\nlisten = \"127.0.0.1:9443\"\n\
         [[export]]\npath = \"/srv/nfs/vmstore\"\nallowed_networks = [\"192.0.2.0/24\", \"fd00::/8\"]\n\
         [[export]]\npath = \"/srv/nfs/templates/\"\nname = \"/templates\"\nread_only = true\n",
    );

    write(
        "metrics_request",
        "prometheus",
        "GET /metrics HTTP/1.1\r\nHost: nas:9443\r\nUser-Agent: Prometheus/2.53.0\r\n\
         Accept: application/openmetrics-text;version=1.0.0\r\n\r\n",
    );
    write("metrics_request", "post", "POST /metrics HTTP/1.1\r\n\r\n");

    write(
        "vmdk_descriptor",
        "thick",
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=9a8b7c6d\nparentCID=ffffffff\n\
         createType=\"vmfs\"\n\n# Extent description\nRW 83886080 VMFS \"web01-flat.vmdk\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n\
         ddb.geometry.cylinders = \"5221\"\nddb.longContentID = \"0f1e2d3c4b5a69788796a5b49a8b7c6d\"\n\
         ddb.uuid = \"60 00 C2 9a 3b 2c 1d 0e-4f 5e 6d 7c 8b 9a a9 b8\"\nddb.virtualHWVersion = \"19\"\n",
    );
    write(
        "vmdk_descriptor",
        "split",
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
         createType=\"twoGbMaxExtentFlat\"\n\n# Extent description\nRW 4192256 FLAT \"db-f001.vmdk\" 0\n\
         RW 4192256 FLAT \"db-f002.vmdk\" 0\nRW 2048 FLAT \"db-f003.vmdk\" 0\n\nddb.adapterType = \"ide\"\n",
    );
}
