//! Every procedure over TLS, RPC-layer rejects, and malformed frames.

use super::*;

#[test]
fn every_procedure_over_tls() {
    let d = Daemon::start();
    let e = d.name(0);
    let root = &d.exports[0];
    write_data(&root.join("src.vmdk"), 3 << 20);
    std::fs::create_dir(root.join("vm2")).unwrap();

    let mut c = d.client();
    c.null().unwrap();
    let hello = c.authenticate(&e, &d.access(0).secret).unwrap().unwrap();
    assert_eq!(hello.protocol_version, PROTOCOL_VERSION);

    let caps = c.capabilities(&e).unwrap().unwrap();
    assert_eq!(caps.protocol_version, 1);
    assert!(!caps.read_only);
    assert_ne!(caps.primitives & PRIM_CLONE, 0);
    assert_eq!(caps.clone_flags & CLONE_LAZY != 0, caps.reflink);

    let st = c.statx(&e, "src.vmdk").unwrap().unwrap();
    assert_eq!(st.total_bytes, 3 << 20);
    assert_eq!(c.statx(&e, "missing").unwrap(), Err(Status::FileNotFound));

    // A full clone, polled to the end.
    let job = c
        .clone_start(&clone_args(&d, "src.vmdk", "vm2/dst.vmdk", 0))
        .unwrap()
        .unwrap();
    let info = wait_done(&mut c, job);
    assert_eq!((info.state, info.result), (JobState::Done, Status::Ok));
    assert_eq!((info.done, info.total), (3 << 20, 3 << 20));
    assert_eq!(
        std::fs::read(root.join("vm2/dst.vmdk")).unwrap(),
        std::fs::read(root.join("src.vmdk")).unwrap()
    );
    // CANCEL of a finished job reports its final state.
    assert_eq!(c.cancel(job).unwrap().unwrap().state, JobState::Done);

    // GUARDED onto an existing file fails in the job; DRYRUN creates nothing.
    let job = c
        .clone_start(&clone_args(&d, "src.vmdk", "vm2/dst.vmdk", CLONE_GUARDED))
        .unwrap()
        .unwrap();
    let info = wait_done(&mut c, job);
    assert_eq!(
        (info.state, info.result),
        (JobState::Failed, Status::FileAlreadyExists)
    );
    let job = c
        .clone_start(&clone_args(&d, "src.vmdk", "vm2/dry.vmdk", CLONE_DRY_RUN))
        .unwrap()
        .unwrap();
    assert_eq!(wait_done(&mut c, job).result, Status::Ok);
    assert!(!root.join("vm2/dry.vmdk").exists());

    // LAZY works exactly where the export says reflink works.
    let job = c
        .clone_start(&clone_args(&d, "src.vmdk", "vm2/lazy.vmdk", CLONE_LAZY))
        .unwrap()
        .unwrap();
    let want = if caps.reflink {
        Status::Ok
    } else {
        Status::NotSupported
    };
    assert_eq!(wait_done(&mut c, job).result, want);

    // Unknown flag bits and escaping paths.
    assert_eq!(
        c.clone_start(&clone_args(&d, "src.vmdk", "x", 1 << 20))
            .unwrap(),
        Err(Status::InvalidArg)
    );
    let job = c
        .clone_start(&clone_args(&d, "../src.vmdk", "x", 0))
        .unwrap()
        .unwrap();
    assert_eq!(wait_done(&mut c, job).state, JobState::Failed);

    // RESERVE on an existing file.
    let job = c.reserve_start(&e, "vm2/dst.vmdk").unwrap().unwrap();
    let info = wait_done(&mut c, job);
    if caps.fallocate {
        assert_eq!(info.result, Status::Ok);
    } else {
        assert_eq!(info.result, Status::NotSupported);
    }

    // Unknown jobs, unknown procedures, undecodable arguments.
    assert_eq!(c.wait(12345, 0, 0).unwrap(), Err(Status::ObjectNotFound));
    assert_eq!(c.cancel(12345).unwrap(), Err(Status::ObjectNotFound));
    let e1 = c.call::<(), ()>(99, &()).unwrap_err();
    assert_eq!(e1.kind(), ErrorKind::Rejected);
    assert!(e1.to_string().contains("ProcUnavail"), "{e1}");
    let e2 = c.call::<u32, StatxRes>(PROC_STATX, &7).unwrap_err();
    assert!(e2.to_string().contains("GarbageArgs"), "{e2}");
    // The connection survives both.
    c.null().unwrap();
}

#[test]
fn rpc_layer_rejects_keep_the_connection() {
    let d = Daemon::start();
    let mut s = d.tls();
    let mut call = rpc::encode_call(5, PROC_NULL, &[]);
    call[8..12].copy_from_slice(&3u32.to_be_bytes()); // rpcvers 3
    write_record(&mut s, &call).unwrap();
    let r = openvaai_proto::record::read_record(&mut s)
        .unwrap()
        .unwrap();
    let (xid, body, _) = rpc::decode_reply(&r).unwrap();
    assert_eq!(
        (xid, body),
        (
            5,
            ReplyBody::Denied(RejectStat::RpcMismatch { low: 2, high: 2 })
        )
    );
    let mut call = rpc::encode_call(6, PROC_NULL, &[]);
    call[16..20].copy_from_slice(&2u32.to_be_bytes()); // program version 2
    write_record(&mut s, &call).unwrap();
    let r = openvaai_proto::record::read_record(&mut s)
        .unwrap()
        .unwrap();
    assert_eq!(
        rpc::decode_reply(&r).unwrap().1,
        rpc::accepted(AcceptStat::ProgMismatch { low: 1, high: 1 })
    );
    let mut c = Client::new(s);
    c.null().unwrap();
}

#[test]
fn garbage_and_oversized_frames_close_only_their_connection() {
    let d = Daemon::start();
    // Plain TCP garbage where TLS is expected.
    let mut raw = TcpStream::connect(d.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    raw.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(closed_within(&mut raw, Duration::from_secs(5)));

    // Inside TLS: a record that is not an RPC call.
    let mut s = d.tls();
    write_record(&mut s, b"\x00\x00\x00\x01\x00\x00\x00\x01garbage!").unwrap();
    s.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)));

    // Inside TLS: a record marking header announcing 2 GiB.
    let mut s = d.tls();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).unwrap();
    s.flush().unwrap();
    s.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    assert!(start.elapsed() < Duration::from_secs(4));
    assert!(d.wait_for_log("limit", Duration::from_secs(5)));

    // The daemon still serves others.
    let mut c = d.authed(0);
    c.null().unwrap();
}
