//! Wire-level tests: pinned version and bytes, decoders on arbitrary input, limits, and the
//! client against a scripted peer.

use std::io::{Read, Write};

use openvaai_proto::access::AccessFile;
use openvaai_proto::limits::{MAX_PATH, MAX_RECORD};
use openvaai_proto::record::{read_record, write_record};
use openvaai_proto::rpc::{self, decode_call, decode_reply, encode_call, encode_reply, AcceptStat};
use openvaai_proto::xdr::{from_bytes, to_bytes};
use openvaai_proto::*;
use proptest::prelude::*;

#[test]
fn protocol_version_and_program_are_pinned() {
    // Changing either breaks every deployed peer: bump deliberately, document in lib.rs.
    assert_eq!(PROTOCOL_VERSION, 1);
    assert_eq!(PROGRAM, 0x2F56_414A);
}

#[test]
fn hello_call_bytes_are_pinned() {
    let args = HelloArgs {
        export: "/exp".into(),
        client_nonce: [0x11; 32],
    };
    let call = encode_call(0x0102_0304, PROC_HELLO, &to_bytes(&args));
    let mut want: Vec<u8> = vec![
        0x01, 0x02, 0x03, 0x04, // xid
        0, 0, 0, 0, // CALL
        0, 0, 0, 2, // rpcvers
        0x2F, 0x56, 0x41, 0x4A, // program
        0, 0, 0, 1, // version
        0, 0, 0, 1, // HELLO
        0, 0, 0, 0, 0, 0, 0, 0, // cred AUTH_NONE, empty
        0, 0, 0, 0, 0, 0, 0, 0, // verf AUTH_NONE, empty
        0, 0, 0, 4, b'/', b'e', b'x', b'p', // export
    ];
    want.extend_from_slice(&[0x11; 32]);
    assert_eq!(call, want);
    let mut framed = Vec::new();
    write_record(&mut framed, &call).unwrap();
    assert_eq!(&framed[..4], &[0x80, 0, 0, want.len() as u8]);
}

#[test]
fn statx_reply_bytes_are_pinned() {
    let res: StatxRes = Ok(StatX {
        total_bytes: 0x1_0000_0000,
        alloced_bytes: 4096,
        unique_bytes: 512,
        alloc_type: AllocType::NotKnown,
    });
    let reply = encode_reply(7, &rpc::accepted(AcceptStat::Success), &to_bytes(&res));
    let want: Vec<u8> = vec![
        0, 0, 0, 7, // xid
        0, 0, 0, 1, // REPLY
        0, 0, 0, 0, // MSG_ACCEPTED
        0, 0, 0, 0, 0, 0, 0, 0, // verf AUTH_NONE
        0, 0, 0, 0, // SUCCESS
        0, 0, 0, 0, // OV_OK
        0, 0, 0, 1, 0, 0, 0, 0, // total
        0, 0, 0, 0, 0, 0, 0x10, 0, // alloced
        0, 0, 0, 0, 0, 0, 2, 0, // unique
        0xff, 0xff, 0xff, 0xff, // ALLOC_UNKNOWN (-1)
    ];
    assert_eq!(reply, want);
    let (xid, body, results) = decode_reply(&reply).unwrap();
    assert_eq!((xid, body), (7, rpc::accepted(AcceptStat::Success)));
    assert_eq!(from_bytes::<StatxRes>(results).unwrap(), res);
}

#[test]
fn failure_call_and_reply_bytes_are_pinned() {
    // A procedure added to version 1: the call header still says version 1.
    assert_eq!(PROC_FAILURE, 10);
    let call = encode_call(5, PROC_FAILURE, &to_bytes(&JobArgs { job: 0x0102 }));
    let want_call: Vec<u8> = vec![
        0, 0, 0, 5, // xid
        0, 0, 0, 0, // CALL
        0, 0, 0, 2, // RPC version 2
        0x2f, 0x56, 0x41, 0x4a, // program
        0, 0, 0, 1, // version 1
        0, 0, 0, 10, // OVPROC_FAILURE
        0, 0, 0, 0, 0, 0, 0, 0, // cred AUTH_NONE
        0, 0, 0, 0, 0, 0, 0, 0, // verf AUTH_NONE
        0, 0, 0, 0, 0, 0, 0x01, 0x02, // job
    ];
    assert_eq!(call, want_call);
    let res: FailureRes = Ok(Failure {
        result: Status::FileNotFound,
        side: Side::DestinationDir,
    });
    assert_eq!(
        to_bytes(&res),
        [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2],
        "OV_OK, OV_FILE_NOT_FOUND, OV_SIDE_DST_DIR"
    );
    assert_eq!(from_bytes::<FailureRes>(&to_bytes(&res)).unwrap(), res);
    assert_eq!(Side::from_u32(9), Side::Unknown(9));
}

#[test]
fn encoding_max_frame_length_bails() {
    // A header announcing 2 GiB - 1: refused from the header alone, nothing allocated.
    let hdr = [0xff, 0xff, 0xff, 0xff];
    let e = read_record(&mut &hdr[..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    // One byte over the record limit, in a single fragment.
    let mut frame = ((MAX_RECORD as u32 + 1) | 0x8000_0000)
        .to_be_bytes()
        .to_vec();
    frame.resize(4 + MAX_RECORD + 1, 0);
    assert_eq!(
        read_record(&mut &frame[..]).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
    // Exactly at the limit is fine.
    let mut frame = ((MAX_RECORD as u32) | 0x8000_0000).to_be_bytes().to_vec();
    frame.resize(4 + MAX_RECORD, 0);
    assert_eq!(
        read_record(&mut &frame[..]).unwrap().unwrap().len(),
        MAX_RECORD
    );
}

#[test]
fn path_over_max_path_is_refused() {
    let args = PathArgs {
        export: "/e".into(),
        path: "a".repeat(MAX_PATH + 1),
    };
    let e = from_bytes::<PathArgs>(&to_bytes(&args)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    let ok = PathArgs {
        export: "/e".into(),
        path: "a".repeat(MAX_PATH),
    };
    assert_eq!(from_bytes::<PathArgs>(&to_bytes(&ok)).unwrap(), ok);
}

/// A peer that answers from a script: reads go to `input`, writes to `output`.
struct Scripted {
    input: std::io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(b)
    }
}

impl Write for Scripted {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.output.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The client's first xid is random; learn it from a first call, then script the rest.
fn client_with_replies(replies: impl Fn(u32) -> Vec<Vec<u8>>) -> (Client<Scripted>, u32) {
    let mut c = Client::new(Scripted {
        input: std::io::Cursor::new(Vec::new()),
        output: Vec::new(),
    });
    let _ = c.null(); // fails on EOF, but shows the xid used
    let call = read_record(&mut &c.stream().output[..]).unwrap().unwrap();
    let xid = decode_call(&call).unwrap().header.xid.wrapping_add(1);
    let mut input = Vec::new();
    for r in replies(xid) {
        write_record(&mut input, &r).unwrap();
    }
    c.stream_mut().input = std::io::Cursor::new(input);
    c.stream_mut().output.clear();
    (c, xid)
}

#[test]
fn client_skips_stale_replies_and_matches_xid() {
    let res: StartRes = Ok(42);
    let (mut c, _) = client_with_replies(|xid| {
        vec![
            encode_reply(
                xid.wrapping_sub(1),
                &rpc::accepted(AcceptStat::Success),
                &[0; 4],
            ),
            encode_reply(xid, &rpc::accepted(AcceptStat::Success), &to_bytes(&res)),
        ]
    });
    assert_eq!(c.reserve_start("/e", "f").unwrap(), Ok(42));
}

#[test]
fn client_reports_rejects_and_garbage_results() {
    let (mut c, _) = client_with_replies(|xid| {
        vec![encode_reply(
            xid,
            &rpc::accepted(AcceptStat::ProcUnavail),
            &[],
        )]
    });
    assert_eq!(c.null().unwrap_err().kind(), ErrorKind::Rejected);
    let (mut c, _) = client_with_replies(|xid| {
        vec![encode_reply(
            xid,
            &rpc::accepted(AcceptStat::Success),
            &[0, 0, 0],
        )]
    });
    assert_eq!(c.statx("/e", "f").unwrap_err().kind(), ErrorKind::Decode);
}

#[test]
fn client_detects_a_server_that_does_not_know_the_secret() {
    let secret = auth::Secret::from_bytes([1; 32]);
    let (mut c, _) = client_with_replies(|xid| {
        let hello: HelloRes = Ok(HelloOk {
            server_challenge: [9; 32],
            protocol_version: 1,
            server_version: "x".into(),
        });
        let auth: AuthRes = Ok(Proof([0; 32]));
        vec![
            encode_reply(xid, &rpc::accepted(AcceptStat::Success), &to_bytes(&hello)),
            encode_reply(
                xid.wrapping_add(1),
                &rpc::accepted(AcceptStat::Success),
                &to_bytes(&auth),
            ),
        ]
    });
    let e = c.authenticate("/e", &secret).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServerProof);
}

fn decode_everything(b: &[u8]) {
    let _ = read_record(&mut &b[..]);
    let _ = decode_call(b);
    let _ = decode_reply(b);
    let _ = from_bytes::<HelloArgs>(b);
    let _ = from_bytes::<HelloRes>(b);
    let _ = from_bytes::<AuthArgs>(b);
    let _ = from_bytes::<AuthRes>(b);
    let _ = from_bytes::<ExportArgs>(b);
    let _ = from_bytes::<CapsRes>(b);
    let _ = from_bytes::<CloneArgs>(b);
    let _ = from_bytes::<PathArgs>(b);
    let _ = from_bytes::<StartRes>(b);
    let _ = from_bytes::<WaitArgs>(b);
    let _ = from_bytes::<JobArgs>(b);
    let _ = from_bytes::<WaitRes>(b);
    let _ = from_bytes::<FailureRes>(b);
    let _ = from_bytes::<StatxRes>(b);
    let _ = AccessFile::parse(b);
}

/// A valid call of procedure `which`, to mutate.
fn valid_call(which: usize) -> Vec<u8> {
    let e = "/exports/a".to_owned();
    let args = match which {
        0 => Vec::new(),
        1 => to_bytes(&HelloArgs {
            export: e,
            client_nonce: [1; 32],
        }),
        2 => to_bytes(&AuthArgs {
            export: e,
            client_proof: [2; 32],
        }),
        3 => to_bytes(&ExportArgs { export: e }),
        4 => to_bytes(&CloneArgs {
            export: e.clone(),
            src_export: Some(e),
            src: "a/b".into(),
            dst: "c".into(),
            flags: 3,
        }),
        5 | 8 => to_bytes(&PathArgs {
            export: e,
            path: "x.vmdk".into(),
        }),
        6 => to_bytes(&WaitArgs {
            job: 9,
            threshold: 10,
            max_wait_ms: 11,
        }),
        _ => to_bytes(&JobArgs { job: 12 }),
    };
    encode_call(1, which as u32, &args)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&b);
    }

    #[test]
    fn decoders_never_panic_on_mutated_calls(
        flags in any::<u32>(),
        src_export in proptest::option::of("[a-z/]{0,20}"),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
    ) {
        let args = CloneArgs { export: "/e".into(), src_export, src: "a".into(), dst: "b".into(), flags };
        let mut b = encode_call(1, PROC_CLONE_START, &to_bytes(&args));
        let parsed = decode_call(&b).unwrap();
        prop_assert_eq!(from_bytes::<CloneArgs>(parsed.args).unwrap(), args);
        for (i, x) in flips {
            let n = b.len();
            b[i % n] ^= x;
        }
        b.truncate(cut % (b.len() + 1));
        decode_everything(&b);
        if let Ok(c) = decode_call(&b) {
            let _ = from_bytes::<CloneArgs>(c.args);
        }
    }

    #[test]
    fn decoders_never_panic_on_any_mutated_procedure(
        which in 0usize..11,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut b = valid_call(which);
        for (i, x) in flips {
            let n = b.len();
            b[i % n] ^= x;
        }
        b.truncate(cut % (b.len() + 1));
        decode_everything(&b);
        if let Ok(c) = decode_call(&b) {
            decode_everything(c.args);
        }
    }

    #[test]
    fn access_file_never_panics_on_line_soup(lines in proptest::collection::vec(
        prop_oneof![
            Just("openvaai-access 1".to_owned()),
            Just("port = 1".to_owned()),
            "[a-z-]{0,12} ?= ?[0-9a-f.:, ]{0,70}",
        ], 0..8)) {
        let _ = AccessFile::parse(lines.join("\n").as_bytes());
    }
}
