//! Wire-level tests: pinned version and bytes, decoders on arbitrary input, limits, and the
//! client against a scripted peer.

use std::io::{Read, Write};

use openvaai_proto::access::AccessFile;
use openvaai_proto::limits::{MAX_PATH, MAX_RECORD};
use openvaai_proto::record::{read_record, write_record};
use openvaai_proto::rpc::{
    self, decode_call, decode_reply, encode_call, encode_reply, AcceptStat, CallError,
};
use openvaai_proto::xdr::{from_bytes, to_bytes, Xdr};
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
fn clone_start_call_bytes_are_pinned() {
    let args = CloneArgs {
        export: "/dst".into(),
        src_export: Some("/s".into()),
        src: "a.vmdk".into(),
        dst: "b".into(),
        flags: CLONE_GUARDED | CLONE_LAZY | CLONE_HOLD,
    };
    let call = encode_call(9, PROC_CLONE_START, &to_bytes(&args));
    let want: Vec<u8> = vec![
        0, 0, 0, 9, // xid
        0, 0, 0, 0, // CALL
        0, 0, 0, 2, // RPC version 2
        0x2f, 0x56, 0x41, 0x4a, // program
        0, 0, 0, 1, // version 1
        0, 0, 0, 4, // OVPROC_CLONE_START
        0, 0, 0, 0, 0, 0, 0, 0, // cred AUTH_NONE
        0, 0, 0, 0, 0, 0, 0, 0, // verf AUTH_NONE
        0, 0, 0, 4, b'/', b'd', b's', b't', // export
        0, 0, 0, 1, 0, 0, 0, 2, b'/', b's', 0, 0, // src_export: present, "/s", padded
        0, 0, 0, 6, b'a', b'.', b'v', b'm', b'd', b'k', 0, 0, // src
        0, 0, 0, 1, b'b', 0, 0, 0, // dst
        0, 1, 0, 3, // GUARDED | LAZY | HOLD
    ];
    assert_eq!(call, want);
    let parsed = decode_call(&call).unwrap();
    assert_eq!(parsed.header.proc_, PROC_CLONE_START);
    assert_eq!(from_bytes::<CloneArgs>(parsed.args).unwrap(), args);
    // The same export for both: src_export absent, one word.
    let same = CloneArgs {
        src_export: None,
        ..args
    };
    assert_eq!(to_bytes(&same)[8..12], [0, 0, 0, 0]);
    let started: StartRes = Ok(0x0102_0304_0506_0708);
    assert_eq!(to_bytes(&started), [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let busy: StartRes = Err(Status::ObjectIsBusy);
    assert_eq!(to_bytes(&busy), [0, 0, 0, 5]);
}

#[test]
fn wait_call_and_reply_bytes_are_pinned() {
    let args = WaitArgs {
        job: 0xa1b2,
        threshold: 0x1_0000_0000,
        max_wait_ms: 15_000,
    };
    let call = encode_call(3, PROC_WAIT, &to_bytes(&args));
    let mut want: Vec<u8> = vec![
        0, 0, 0, 3, // xid
        0, 0, 0, 0, // CALL
        0, 0, 0, 2, // RPC version 2
        0x2f, 0x56, 0x41, 0x4a, // program
        0, 0, 0, 1, // version 1
        0, 0, 0, 6, // OVPROC_WAIT
        0, 0, 0, 0, 0, 0, 0, 0, // cred AUTH_NONE
        0, 0, 0, 0, 0, 0, 0, 0, // verf AUTH_NONE
    ];
    want.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0xa1, 0xb2, // job
        0, 0, 0, 1, 0, 0, 0, 0, // threshold
        0, 0, 0x3a, 0x98, // max_wait_ms 15000
    ]);
    assert_eq!(call, want);
    let res: WaitRes = Ok(JobInfo {
        state: JobState::Ready,
        done: 4096,
        total: 8192,
        result: Status::ObjectIsBusy,
    });
    let reply = encode_reply(3, &rpc::accepted(AcceptStat::Success), &to_bytes(&res));
    let want_reply: Vec<u8> = vec![
        0, 0, 0, 3, // xid
        0, 0, 0, 1, // REPLY
        0, 0, 0, 0, // MSG_ACCEPTED
        0, 0, 0, 0, 0, 0, 0, 0, // verf AUTH_NONE
        0, 0, 0, 0, // SUCCESS
        0, 0, 0, 0, // OV_OK
        0, 0, 0, 3, // OV_JOB_READY
        0, 0, 0, 0, 0, 0, 0x10, 0, // done
        0, 0, 0, 0, 0, 0, 0x20, 0, // total
        0, 0, 0, 5, // result OV_OBJECT_IS_BUSY
    ];
    assert_eq!(reply, want_reply);
    let lost: WaitRes = Err(Status::ObjectNotFound);
    assert_eq!(to_bytes(&lost), [0, 0, 0, 25]);
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

/// What any bytes must give a decoder of `T`: a value that encodes back to exactly those
/// bytes (the codec is canonical: no trailing bytes, zero padding, bools 0 or 1), or a
/// decode error of kind Decode or TooLarge, never anything else.
fn strict<T: Xdr + PartialEq + std::fmt::Debug>(b: &[u8]) {
    match from_bytes::<T>(b) {
        Ok(v) => assert_eq!(
            to_bytes(&v),
            b,
            "{v:?} decoded from bytes it does not encode to"
        ),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Decode | ErrorKind::TooLarge),
            "{} gave {e} ({:?})",
            std::any::type_name::<T>(),
            e.kind()
        ),
    }
}

/// Every decoder on `b`, each held to what it must give for hostile input.
fn decode_everything(b: &[u8]) {
    // Record marking: nothing only from nothing; a record within the limit and the input;
    // else a stream error (EOF mid-record), an oversized length, or a decode error.
    match read_record(&mut &b[..]) {
        Ok(None) => assert!(b.is_empty(), "no record from {} bytes", b.len()),
        Ok(Some(r)) => assert!(r.len() <= MAX_RECORD && r.len() + 4 <= b.len()),
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::Io | ErrorKind::TooLarge | ErrorKind::Decode
            ),
            "read_record: {e}"
        ),
    }
    // A call: its arguments are the rest of the record; a reject is a well-formed reply to
    // the same xid that refuses; anything else drops the connection as a decode error.
    match decode_call(b) {
        Ok(call) => {
            assert!(b.ends_with(call.args));
            assert_eq!(
                (call.header.prog, call.header.vers),
                (PROGRAM, PROTOCOL_VERSION)
            );
        }
        Err(CallError::Reject { xid, reply }) => {
            let (rxid, body, results) = decode_reply(&reply).expect("a reject decodes");
            assert_eq!(rxid, xid);
            assert!(results.is_empty());
            assert_ne!(
                body,
                rpc::accepted(AcceptStat::Success),
                "a reject that accepts"
            );
        }
        Err(CallError::Malformed(e)) => assert_eq!(e.kind(), ErrorKind::Decode, "{e}"),
    }
    // A reply: a decode error, or not a reply at all (a call, a bad verifier).
    if let Err(e) = decode_reply(b) {
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Decode | ErrorKind::TooLarge | ErrorKind::UnexpectedReply
            ),
            "{e}"
        );
    }
    strict::<HelloArgs>(b);
    strict::<HelloRes>(b);
    strict::<AuthArgs>(b);
    strict::<AuthRes>(b);
    strict::<ExportArgs>(b);
    strict::<CapsRes>(b);
    strict::<CloneArgs>(b);
    strict::<PathArgs>(b);
    strict::<StartRes>(b);
    strict::<WaitArgs>(b);
    strict::<JobArgs>(b);
    strict::<WaitRes>(b);
    strict::<FailureRes>(b);
    strict::<StatxRes>(b);
    // The access file: parsed, or refused as an access file (or one too large).
    if let Err(e) = AccessFile::parse(b) {
        assert!(
            matches!(e.kind(), ErrorKind::AccessFile | ErrorKind::TooLarge),
            "{e}"
        );
    }
}

#[test]
fn hostile_inputs_get_what_they_must() {
    let call = valid_call(4);
    // Too short for a header, or a reply where a call belongs: the connection is dropped.
    for b in [
        &call[..0],
        &call[..7],
        &encode_reply(1, &rpc::accepted(AcceptStat::Success), &[])[..],
    ] {
        match decode_call(b) {
            Err(CallError::Malformed(e)) => assert_eq!(e.kind(), ErrorKind::Decode),
            other => panic!("{b:?}: {other:?}"),
        }
    }
    // Header fields: each refused with its own RPC reject, to the caller's xid.
    let reject = |at: usize, value: u32| {
        let mut b = call.clone();
        b[at..at + 4].copy_from_slice(&value.to_be_bytes());
        match decode_call(&b) {
            Err(CallError::Reject { xid, reply }) => {
                let (rxid, body, _) = decode_reply(&reply).unwrap();
                assert_eq!((rxid, xid), (1, 1));
                body
            }
            other => panic!("{at}={value}: {other:?}"),
        }
    };
    assert_eq!(
        reject(8, 3),
        rpc::ReplyBody::Denied(rpc::RejectStat::RpcMismatch { low: 2, high: 2 })
    );
    assert_eq!(
        reject(12, PROGRAM + 1),
        rpc::accepted(AcceptStat::ProgUnavail)
    );
    assert_eq!(
        reject(16, 2),
        rpc::accepted(AcceptStat::ProgMismatch { low: 1, high: 1 })
    );
    assert_eq!(
        reject(24, 7),
        rpc::ReplyBody::Denied(rpc::RejectStat::AuthError(1))
    );
    // Arguments: truncated, trailing, a length past the input, a length past the limit,
    // a bool that is neither, non-zero padding, a string that is not UTF-8.
    let args = decode_call(&call).unwrap().args.to_vec();
    let kind = |b: &[u8]| from_bytes::<CloneArgs>(b).unwrap_err().kind();
    assert_eq!(kind(&args[..args.len() - 1]), ErrorKind::Decode);
    assert_eq!(
        kind(&[&args[..], &[0, 0, 0, 0]].concat()),
        ErrorKind::Decode
    );
    let mut long = args.clone();
    long[..4].copy_from_slice(&1000u32.to_be_bytes());
    assert_eq!(kind(&long), ErrorKind::Decode);
    let mut huge = args.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(kind(&huge), ErrorKind::TooLarge);
    // "/exports/a" is 10 bytes and 2 of padding; then the src_export option's bool.
    let mut bad_bool = args.clone();
    bad_bool[16..20].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(kind(&bad_bool), ErrorKind::Decode);
    let mut bad_pad = args.clone();
    bad_pad[15] = 1;
    assert_eq!(kind(&bad_pad), ErrorKind::Decode);
    let mut not_utf8 = args.clone();
    not_utf8[4] = 0xff;
    assert_eq!(kind(&not_utf8), ErrorKind::Decode);
    // The access file: garbage and an oversized one are refused as such.
    assert_eq!(
        AccessFile::parse(b"port = 1").unwrap_err().kind(),
        ErrorKind::AccessFile
    );
    let big = vec![b'#'; openvaai_proto::access::MAX_ACCESS_FILE + 1];
    assert_eq!(
        AccessFile::parse(&big).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
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
            strict::<CloneArgs>(c.args);
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
        let text = lines.join("\n");
        match AccessFile::parse(text.as_bytes()) {
            // Only a file that starts with the magic line parses.
            Ok(_) => prop_assert!(text.starts_with("openvaai-access 1")),
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::AccessFile, "{}", e),
        }
    }
}
