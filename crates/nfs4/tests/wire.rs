//! Byte-pinned COMPOUND calls and replies, written word by word from the XDR of RFC 7863
//! (and RFC 5531 for the RPC header), so that a change in the encoding fails here first.

use openvaai_nfs4::attr::{num, FileType};
use openvaai_nfs4::basic::{Bitmap, Component, Fh, SessionId, Stateid, Verifier};
use openvaai_nfs4::compound::{decode_reply, CompoundArgs};
use openvaai_nfs4::ops::session::SequenceArgs;
use openvaai_nfs4::ops::v42::{CloneArgs, CopyArgs, CopyRequirements, CopyRes, StableHow};
use openvaai_nfs4::ops::{opcode, Op, OpRes};
use openvaai_nfs4::{AuthSys, ErrorKind, Status, NFS4_PROGRAM, NFSPROC4_COMPOUND, NFS_V4};
use openvaai_proto::rpc::{decode_reply as rpc_reply, encode_call_with, ReplyBody};

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|v| v.to_be_bytes()).collect()
}

const SID: [u8; 16] = [0x11; 16];
const SID_WORDS: [u32; 4] = [0x1111_1111; 4];

fn sequence(seqid: u32) -> Op {
    Op::Sequence(SequenceArgs {
        sessionid: SessionId(SID),
        sequenceid: seqid,
        slotid: 0,
        highest_slotid: 0,
        cachethis: false,
    })
}

fn call_bytes(xid: u32, ops: Vec<Op>) -> Vec<u8> {
    let args = CompoundArgs {
        tag: String::new(),
        minorversion: 2,
        ops,
    }
    .to_bytes()
    .unwrap();
    let cred = AuthSys::root("esx1").to_opaque_auth();
    encode_call_with(xid, NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, &cred, &args)
}

/// The RPC call header of RFC 5531 with the AUTH_SYS credential of uid 0, gid 0, "esx1".
fn call_header(xid: u32) -> Vec<u32> {
    vec![
        xid,
        0, // xid, msg_type CALL
        2,
        100_003,
        4,
        1, // rpcvers, prog NFS4_PROGRAM, vers NFS_V4, proc COMPOUND
        1,
        24, // cred: flavor AUTH_SYS, body of 24 bytes:
        0,
        4,
        0x6573_7831, // stamp, machinename<255> "esx1"
        0,
        0,
        0, // uid 0, gid 0, gids<16> empty
        0,
        0, // verf: AUTH_NONE, empty
        0,
        2, // COMPOUND4args: tag "", minorversion 2
    ]
}

/// A reply record: RFC 5531 accepted SUCCESS header, then the COMPOUND4res words.
fn reply_record(xid: u32, res: &[u32]) -> Vec<u8> {
    let mut w = vec![xid, 1, 0, 0, 0, 0]; // xid, REPLY, MSG_ACCEPTED, verf NONE, SUCCESS
    w.extend_from_slice(res);
    words(&w)
}

fn results_of(record: &[u8]) -> Vec<u8> {
    let (_, body, results) = rpc_reply(record).unwrap();
    assert!(matches!(body, ReplyBody::Accepted { .. }));
    results.to_vec()
}

fn sequence_ok(seqid: u32) -> Vec<u32> {
    // resop SEQUENCE, NFS4_OK, SEQUENCE4resok: sessionid, sequenceid, slotid,
    // highest_slotid, target_highest_slotid, status_flags
    let mut w = vec![53, 0];
    w.extend_from_slice(&SID_WORDS);
    w.extend_from_slice(&[seqid, 0, 0, 0, 0]);
    w
}

#[test]
fn lookup_compound_call_is_pinned() {
    let ops = vec![
        sequence(1),
        Op::Putrootfh,
        Op::Lookup(Component::new("vmfs").unwrap()),
        Op::Getfh,
        Op::Getattr(Bitmap::of(&[num::TYPE, num::SIZE, num::SPACE_USED])),
    ];
    let mut want = call_header(0x0102_0304);
    want.push(5); // argarray<> of 5
    want.push(53); // OP_SEQUENCE: SEQUENCE4args
    want.extend_from_slice(&SID_WORDS); // sa_sessionid
    want.extend_from_slice(&[1, 0, 0, 0]); // sequenceid, slotid, highest_slotid, cachethis
    want.push(24); // OP_PUTROOTFH: void
    want.extend_from_slice(&[15, 4, 0x766d_6673]); // OP_LOOKUP: component4 "vmfs"
    want.push(10); // OP_GETFH: void
                   // OP_GETATTR: bitmap4<2>: word 0 = type (1) | size (4); word 1 = space_used (45 - 32)
    want.extend_from_slice(&[9, 2, (1 << 1) | (1 << 4), 1 << 13]);
    assert_eq!(call_bytes(0x0102_0304, ops), words(&want));
}

#[test]
fn lookup_compound_reply_decodes_to_its_values() {
    let mut res = vec![0, 0, 5]; // status NFS4_OK, tag "", resarray<5>
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[24, 0]); // PUTROOTFH NFS4_OK
    res.extend_from_slice(&[15, 0]); // LOOKUP NFS4_OK
    res.extend_from_slice(&[10, 0, 8, 0xdead_beef, 0x0000_0001]); // GETFH OK, nfs_fh4<8>
                                                                  // GETATTR OK, fattr4: attrmask<2>, attr_vals<20>: type NF4REG, size, space_used
    res.extend_from_slice(&[9, 0, 2, 0x12, 0x2000, 20, 1, 0, 0x10_0000, 0, 0x8000]);
    let record = reply_record(7, &res);
    let sent = [
        opcode::SEQUENCE,
        opcode::PUTROOTFH,
        opcode::LOOKUP,
        opcode::GETFH,
        opcode::GETATTR,
    ];
    let r = decode_reply(&results_of(&record), &sent).unwrap();
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.results.len(), 5);
    match &r.results[3] {
        OpRes::Getfh(Ok(fh)) => assert_eq!(fh.as_bytes(), [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]),
        other => panic!("{other:?}"),
    }
    match &r.results[4] {
        OpRes::Getattr(Ok(a)) => {
            assert_eq!(a.file_type, Some(FileType::Regular));
            assert_eq!(a.size, Some(1 << 20));
            assert_eq!(a.space_used, Some(0x8000));
            assert_eq!(a.mode, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_lookup_ends_the_reply_and_is_its_status() {
    let mut res = vec![2, 0, 3]; // NFS4ERR_NOENT, tag "", resarray<3>
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[24, 0, 15, 2]); // PUTROOTFH OK, LOOKUP NFS4ERR_NOENT
    let sent = [
        opcode::SEQUENCE,
        opcode::PUTROOTFH,
        opcode::LOOKUP,
        opcode::GETFH,
    ];
    let r = decode_reply(&results_of(&reply_record(1, &res)), &sent).unwrap();
    assert_eq!(r.status, Status::Noent);
    assert_eq!(r.results.last().unwrap(), &OpRes::Lookup(Status::Noent));
}

fn fh(n: u32) -> Fh {
    Fh::new(words(&[n, n])).unwrap()
}

#[test]
fn clone_compound_call_and_replies_are_pinned() {
    let ops = vec![
        sequence(7),
        Op::Putfh(fh(0xa)),
        Op::Savefh,
        Op::Putfh(fh(0xb)),
        Op::Clone(CloneArgs {
            src_stateid: Stateid::ANONYMOUS,
            dst_stateid: Stateid::ANONYMOUS,
            src_offset: 0,
            dst_offset: 0,
            count: 0,
        }),
    ];
    let mut want = call_header(9);
    want.push(5);
    want.push(53);
    want.extend_from_slice(&SID_WORDS);
    want.extend_from_slice(&[7, 0, 0, 0]);
    want.extend_from_slice(&[22, 8, 0xa, 0xa]); // OP_PUTFH nfs_fh4<8> (source)
    want.push(32); // OP_SAVEFH
    want.extend_from_slice(&[22, 8, 0xb, 0xb]); // OP_PUTFH (destination)
    want.push(71); // OP_CLONE: CLONE4args
    want.extend_from_slice(&[0, 0, 0, 0]); // cl_src_stateid: seqid, other[12]
    want.extend_from_slice(&[0, 0, 0, 0]); // cl_dst_stateid
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // cl_src_offset, cl_dst_offset, cl_count
    assert_eq!(call_bytes(9, ops), words(&want));

    let sent = [
        opcode::SEQUENCE,
        opcode::PUTFH,
        opcode::SAVEFH,
        opcode::PUTFH,
        opcode::CLONE,
    ];
    for (status, want) in [(0, Status::Ok), (10004, Status::Notsupp)] {
        let mut res = vec![status, 0, 5];
        res.extend(sequence_ok(7));
        res.extend_from_slice(&[22, 0, 32, 0, 22, 0, 71, status]); // CLONE4res: cl_status
        let r = decode_reply(&results_of(&reply_record(9, &res)), &sent).unwrap();
        assert_eq!(r.status, want);
        assert_eq!(r.results[4], OpRes::Clone(want));
    }
}

#[test]
fn copy_compound_call_and_replies_are_pinned() {
    let src = Stateid {
        seqid: 1,
        other: [0xaa; 12],
    };
    let dst = Stateid {
        seqid: 1,
        other: [0xbb; 12],
    };
    let ops = vec![
        sequence(2),
        Op::Putfh(fh(0xa)),
        Op::Savefh,
        Op::Putfh(fh(0xb)),
        Op::Copy(CopyArgs {
            src_stateid: src,
            dst_stateid: dst,
            src_offset: 0,
            dst_offset: 4 << 20,
            count: 8 << 20,
            consecutive: true,
            synchronous: true,
        }),
    ];
    let mut want = call_header(3);
    want.push(5);
    want.push(53);
    want.extend_from_slice(&SID_WORDS);
    want.extend_from_slice(&[2, 0, 0, 0]);
    want.extend_from_slice(&[22, 8, 0xa, 0xa, 32, 22, 8, 0xb, 0xb]);
    want.push(60); // OP_COPY: COPY4args
    want.extend_from_slice(&[1, 0xaaaa_aaaa, 0xaaaa_aaaa, 0xaaaa_aaaa]); // ca_src_stateid
    want.extend_from_slice(&[1, 0xbbbb_bbbb, 0xbbbb_bbbb, 0xbbbb_bbbb]); // ca_dst_stateid
    want.extend_from_slice(&[0, 0, 0, 0x40_0000, 0, 0x80_0000]); // src, dst offsets, count
    want.extend_from_slice(&[1, 1, 0]); // consecutive, synchronous, ca_source_server<0>
    assert_eq!(call_bytes(3, ops), words(&want));

    let sent = [
        opcode::SEQUENCE,
        opcode::PUTFH,
        opcode::SAVEFH,
        opcode::PUTFH,
        opcode::COPY,
    ];
    // NFS4_OK: COPY4resok: write_response4 { wr_callback_id<0>, wr_count 4 MiB,
    // wr_committed UNSTABLE4, wr_writeverf }, copy_requirements4 { true, true }
    let mut res = vec![0, 0, 5];
    res.extend(sequence_ok(2));
    res.extend_from_slice(&[22, 0, 32, 0, 22, 0]);
    res.extend_from_slice(&[60, 0, 0, 0, 0x40_0000, 0, 0x0102_0304, 0x0506_0708, 1, 1]);
    let r = decode_reply(&results_of(&reply_record(3, &res)), &sent).unwrap();
    match r.results[4] {
        OpRes::Copy(CopyRes::Ok {
            response,
            requirements,
        }) => {
            assert_eq!(response.callback_id, None);
            assert_eq!(response.count, 4 << 20);
            assert_eq!(response.committed, StableHow::Unstable);
            assert_eq!(response.writeverf, Verifier([1, 2, 3, 4, 5, 6, 7, 8]));
            assert!(requirements.consecutive && requirements.synchronous);
        }
        ref other => panic!("{other:?}"),
    }

    // NFS4ERR_OFFLOAD_NO_REQS carries copy_requirements4 (here: asynchronous only).
    let mut res = vec![10094, 0, 5];
    res.extend(sequence_ok(2));
    res.extend_from_slice(&[22, 0, 32, 0, 22, 0, 60, 10094, 1, 0]);
    let r = decode_reply(&results_of(&reply_record(3, &res)), &sent).unwrap();
    assert_eq!(
        r.results[4],
        OpRes::Copy(CopyRes::NoReqs(CopyRequirements {
            consecutive: true,
            synchronous: false
        }))
    );
}

#[test]
fn results_that_do_not_match_the_calls_operations_are_refused() {
    let sent = [opcode::SEQUENCE, opcode::PUTROOTFH, opcode::LOOKUP];
    let check = |res: Vec<u32>| {
        let e = decode_reply(&words(&res), &sent).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedReply, "{e}");
    };
    // GETFH where LOOKUP was sent.
    let mut res = vec![0, 0, 3];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[24, 0, 10, 0, 4, 1]);
    check(res);
    // Results in the wrong order (PUTROOTFH first).
    let mut res = vec![0, 0, 3, 24, 0];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[15, 0]);
    check(res);
    // More results than operations.
    let mut res = vec![0, 0, 4];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[24, 0, 15, 0, 24, 0]);
    check(res);
    // Fewer results than operations with status NFS4_OK.
    let mut res = vec![0, 0, 2];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[24, 0]);
    check(res);
    // A failure before the last result.
    let mut res = vec![2, 0, 3];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[24, 2, 15, 2]);
    check(res);
    // The COMPOUND's status is not its last result's.
    let mut res = vec![0, 0, 3];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[24, 0, 15, 2]);
    check(res);
}

#[test]
fn op_illegal_is_accepted_as_the_last_result_with_its_error() {
    let sent = [opcode::SEQUENCE, 4242];
    let mut res = vec![10044, 0, 2];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[10044, 10044]); // resop OP_ILLEGAL, NFS4ERR_OP_ILLEGAL
    let r = decode_reply(&words(&res), &sent).unwrap();
    assert_eq!(r.results[1], OpRes::Illegal(Status::OpIllegal));
    // ... but never with NFS4_OK.
    let mut res = vec![0, 0, 2];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[10044, 0]);
    assert!(decode_reply(&words(&res), &sent).is_err());
}

#[test]
fn an_unknown_operation_is_kept_raw_as_the_last_result_and_refused_before() {
    let sent = [opcode::SEQUENCE, 61];
    let mut res = vec![0, 0, 2];
    res.extend(sequence_ok(1));
    res.extend_from_slice(&[61, 0, 0xabcd]);
    let r = decode_reply(&words(&res), &sent).unwrap();
    assert_eq!(
        r.results[1],
        OpRes::Unknown {
            opcode: 61,
            status: Status::Ok,
            body: words(&[0xabcd])
        }
    );
    let sent = [61, opcode::PUTROOTFH];
    let e = decode_reply(&words(&[0, 0, 2, 61, 0, 24, 0]), &sent).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
}

#[test]
fn call_arguments_round_trip_through_the_servers_view() {
    use openvaai_nfs4::attr::SetAttrs;
    use openvaai_nfs4::ops::file::SetattrArgs;
    use openvaai_nfs4::ops::open::{OpenArgs, OpenClaim, OpenHow, StateOwner};
    let args = CompoundArgs {
        tag: "t".into(),
        minorversion: 2,
        ops: vec![
            sequence(3),
            Op::Putfh(fh(1)),
            Op::Open(OpenArgs {
                seqid: 0,
                share_access: 3 | 0x400,
                share_deny: 0,
                owner: StateOwner {
                    clientid: 9,
                    owner: b"o".to_vec(),
                },
                how: OpenHow::Exclusive41(
                    Verifier([9; 8]),
                    SetAttrs {
                        mode: Some(0o600),
                        owner: Some("1000".into()),
                        ..SetAttrs::default()
                    },
                ),
                claim: OpenClaim::Null(Component::new("f.tmp").unwrap()),
            }),
            Op::Setattr(SetattrArgs {
                stateid: Stateid::CURRENT,
                attrs: SetAttrs {
                    size: Some(5),
                    ..SetAttrs::default()
                },
            }),
            Op::ReclaimComplete(false),
        ],
    };
    let b = args.to_bytes().unwrap();
    assert_eq!(
        openvaai_proto::xdr::from_bytes::<CompoundArgs>(&b).unwrap(),
        args
    );
}

#[test]
fn readdir_compound_call_and_reply_are_pinned() {
    use openvaai_nfs4::ops::dir::{DirEntry, ReaddirArgs, ReaddirOk};
    let ops = vec![
        sequence(3),
        Op::Putfh(fh(0xd)),
        Op::Readdir(ReaddirArgs {
            cookie: 0,
            cookieverf: Verifier::default(),
            dircount: 4096,
            maxcount: 16384,
            attr_request: Bitmap::default(),
        }),
    ];
    let mut want = call_header(4);
    want.push(3);
    want.push(53);
    want.extend_from_slice(&SID_WORDS);
    want.extend_from_slice(&[3, 0, 0, 0]);
    want.extend_from_slice(&[22, 8, 0xd, 0xd]); // OP_PUTFH
                                                // OP_READDIR: cookie (hyper), cookieverf[8], dircount, maxcount, attr_request<> empty
    want.extend_from_slice(&[26, 0, 0, 0, 0, 4096, 16384, 0]);
    assert_eq!(call_bytes(4, ops), words(&want));

    let sent = [opcode::SEQUENCE, opcode::PUTFH, opcode::READDIR];
    let mut res = vec![0, 0, 3];
    res.extend(sequence_ok(3));
    res.extend_from_slice(&[22, 0, 26, 0]); // PUTFH ok, READDIR NFS4_OK
    res.extend_from_slice(&[0x1234_5678, 0x9abc_def0]); // cookieverf
                                                        // entry: present, cookie 5, name<> "nfs42" (5 bytes, padded), fattr4: bitmap<1> {0},
                                                        // attrlist<> empty
    res.extend_from_slice(&[1, 0, 5, 5, 0x6e66_7334, 0x3200_0000, 1, 0, 0]);
    // entry: present, cookie 9, name "ab", attrs with one word of values (skipped)
    res.extend_from_slice(&[1, 0, 9, 2, 0x6162_0000, 1, 0x10, 4, 7]);
    res.extend_from_slice(&[0, 1]); // no more entries, eof
    let r = decode_reply(&results_of(&reply_record(4, &res)), &sent).unwrap();
    assert_eq!(r.status, Status::Ok);
    let want = ReaddirOk {
        cookieverf: Verifier([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]),
        entries: vec![
            DirEntry {
                cookie: 5,
                name: b"nfs42".to_vec(),
            },
            DirEntry {
                cookie: 9,
                name: b"ab".to_vec(),
            },
        ],
        eof: true,
    };
    assert_eq!(r.results[2], OpRes::Readdir(Ok(want)));
}
