//! openvaaid end to end: the real binary on loopback, a TLS client that pins the certificate
//! from the access file, every procedure, the trust rules, the limits and the deadlines.

mod util;

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
fn wrong_secret_is_refused_and_logged() {
    let d = Daemon::start();
    let mut c = d.client();
    let r = c.authenticate(&d.name(0), &Secret::generate()).unwrap();
    assert_eq!(r, Err(Status::AuthenticationFail));
    assert!(d.wait_for_log("authentication failed", Duration::from_secs(5)));
    assert_eq!(
        c.capabilities(&d.name(0)).unwrap(),
        Err(Status::AuthenticationFail)
    );
    assert_eq!(
        c.statx(&d.name(0), "x").unwrap(),
        Err(Status::AuthenticationFail)
    );
    assert_eq!(
        c.reserve_start(&d.name(0), "x").unwrap(),
        Err(Status::AuthenticationFail)
    );
}

#[test]
fn secret_of_another_export_opens_nothing() {
    let d = Daemon::start_with("", &[ExportSpec::plain(), ExportSpec::plain()]);
    let (a, b) = (d.name(0), d.name(1));
    write_data(&d.exports[0].join("f"), 4096);
    let mut c = d.client();
    assert_eq!(
        c.authenticate(&a, &d.access(1).secret).unwrap(),
        Err(Status::AuthenticationFail)
    );
    assert!(c.authenticate(&b, &d.access(1).secret).unwrap().is_ok());
    assert_eq!(c.statx(&a, "f").unwrap(), Err(Status::AuthenticationFail));
    // A clone from A into B needs A too.
    let args = CloneArgs {
        export: b.clone(),
        src_export: Some(a.clone()),
        src: "f".into(),
        dst: "g".into(),
        flags: CLONE_SRC_DATASTORE_VALID,
    };
    assert_eq!(
        c.clone_start(&args).unwrap(),
        Err(Status::AuthenticationFail)
    );
    // With both proven, it works; a connection with only A cannot see that job.
    assert!(c.authenticate(&a, &d.access(0).secret).unwrap().is_ok());
    let job = c.clone_start(&args).unwrap().unwrap();
    let mut only_a = d.authed(0);
    assert_eq!(only_a.wait(job, 0, 0).unwrap(), Err(Status::ObjectNotFound));
    assert_eq!(wait_done(&mut c, job).result, Status::Ok);
    assert_eq!(std::fs::read(d.exports[1].join("g")).unwrap().len(), 4096);
}

#[test]
fn replayed_auth_fails() {
    let d = Daemon::start();
    let e = d.name(0);
    let secret = d.access(0).secret;
    let mut c = d.client();
    let nonce = [7u8; 32];
    let hello = |c: &mut Client<Tls>| -> HelloOk {
        c.call::<_, HelloRes>(
            PROC_HELLO,
            &HelloArgs {
                export: e.clone(),
                client_nonce: nonce,
            },
        )
        .unwrap()
        .unwrap()
    };
    let h1 = hello(&mut c);
    let proof = auth::client_proof(&secret, &h1.server_challenge, &nonce, &e);
    let args = AuthArgs {
        export: e.clone(),
        client_proof: proof,
    };
    let ok: AuthRes = c.call(PROC_AUTH, &args).unwrap();
    let server = ok.unwrap();
    assert!(auth::proofs_equal(
        &server.0,
        &auth::server_proof(&secret, &h1.server_challenge, &nonce, &e)
    ));
    // The same AUTH again: its challenge is spent.
    let again: AuthRes = c.call(PROC_AUTH, &args).unwrap();
    assert_eq!(again, Err(Status::AuthenticationFail));
    // After a new HELLO (new challenge), the old proof is still worthless.
    let h2 = hello(&mut c);
    assert_ne!(h1.server_challenge, h2.server_challenge);
    let replay: AuthRes = c.call(PROC_AUTH, &args).unwrap();
    assert_eq!(replay, Err(Status::AuthenticationFail));
    // AUTH without a HELLO, and AUTH naming another export than its HELLO.
    let mut c3 = d.client();
    let none: AuthRes = c3.call(PROC_AUTH, &args).unwrap();
    assert_eq!(none, Err(Status::AuthenticationFail));
    let h3 = hello(&mut c3);
    let other = AuthArgs {
        export: "/elsewhere".into(),
        client_proof: auth::client_proof(&secret, &h3.server_challenge, &nonce, "/elsewhere"),
    };
    let r: AuthRes = c3.call(PROC_AUTH, &other).unwrap();
    assert_eq!(r, Err(Status::AuthenticationFail));
    // On another connection too.
    let mut c2 = d.client();
    let _ = hello(&mut c2);
    let replay: AuthRes = c2.call(PROC_AUTH, &args).unwrap();
    assert_eq!(replay, Err(Status::AuthenticationFail));
}

#[test]
fn client_outside_allowed_networks_is_refused() {
    let d = Daemon::start_with(
        "",
        &[
            ExportSpec::with("allowed_networks = [\"10.0.0.0/8\"]"),
            ExportSpec::with("allowed_networks = [\"10.0.0.0/8\", \"127.0.0.0/8\"]"),
        ],
    );
    let mut c = d.client();
    // Told apart from a wrong secret: the address is what is refused.
    assert_eq!(
        c.authenticate(&d.name(0), &d.access(0).secret).unwrap(),
        Err(Status::FileAccessError)
    );
    assert!(d.wait_for_log("not in allowed_networks", Duration::from_secs(5)));
    assert!(c
        .authenticate(&d.name(1), &d.access(1).secret)
        .unwrap()
        .is_ok());
}

#[test]
fn unknown_export_is_not_found() {
    let d = Daemon::start();
    let mut c = d.client();
    assert_eq!(
        c.authenticate("/no/such/export", &d.access(0).secret)
            .unwrap(),
        Err(Status::ObjectNotFound)
    );
    // Trailing slashes do not make another export.
    let with_slash = format!("{}/", d.name(0));
    let mut c = d.client();
    assert!(c
        .authenticate(&with_slash, &d.access(0).secret)
        .unwrap()
        .is_ok());
    assert!(c.capabilities(&d.name(0)).unwrap().is_ok());
}

#[test]
fn read_only_export_refuses_mutations() {
    let d = Daemon::start_with("", &[ExportSpec::with("read_only = true")]);
    let e = d.name(0);
    write_data(&d.exports[0].join("f"), 8192);
    let mut c = d.authed(0);
    let caps = c.capabilities(&e).unwrap().unwrap();
    assert!(caps.read_only);
    assert_eq!(caps.primitives & (PRIM_CLONE | PRIM_RESERVE), 0);
    assert_eq!(
        c.clone_start(&clone_args(&d, "f", "g", 0)).unwrap(),
        Err(Status::FileReadOnly)
    );
    assert_eq!(c.reserve_start(&e, "f").unwrap(), Err(Status::FileReadOnly));
    assert_eq!(c.statx(&e, "f").unwrap().unwrap().total_bytes, 8192);
    assert!(!d.exports[0].join("g").exists());
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

#[test]
fn idle_connection_is_closed_after_idle_timeout() {
    let d = Daemon::start_with("idle_timeout_seconds = 1", &[ExportSpec::plain()]);
    let mut c = d.authed(0);
    c.null().unwrap();
    let start = Instant::now();
    let s = c.stream_mut();
    s.sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(closed_within(s, Duration::from_secs(5)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(d.wait_for_log("closing idle connection", Duration::from_secs(2)));
}

#[test]
fn slow_or_half_open_handshake_is_bounded() {
    let d = Daemon::start_with(
        "handshake_timeout_seconds = 1\nidle_timeout_seconds = 60",
        &[ExportSpec::plain()],
    );
    // TCP connected, not a byte sent.
    let mut raw = TcpStream::connect(d.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut raw, Duration::from_secs(5)));
    assert!(start.elapsed() < Duration::from_secs(3));

    // TLS done, calls trickling in, but never authenticating: bounded by the same deadline.
    let mut c = d.client();
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(5) {
        if c.null().is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(closed, "unauthenticated connection kept open");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(d.wait_for_log("no authentication in time", Duration::from_secs(2)));
}

#[test]
fn too_many_connections_are_refused() {
    let d = Daemon::start_with(
        "max_connections = 1\nmax_unauthenticated = 1",
        &[ExportSpec::plain()],
    );
    let mut first = d.authed(0);
    // A second client gets through TLS but is closed when it authenticates.
    let mut second = d.client();
    assert!(
        second
            .authenticate(&d.name(0), &d.access(0).secret)
            .is_err(),
        "a second authenticated connection was kept"
    );
    assert!(d.wait_for_log("too many connections", Duration::from_secs(2)));
    // One unauthenticated slot: a connection that sends nothing holds it, and the next one
    // waits in the queue until the holder's grace is over; then the holder is dropped.
    let mut held = TcpStream::connect(d.addr()).unwrap();
    held.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let mut waiting = d.client();
    waiting.null().unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "it did not wait: {waited:?}"
    );
    assert!(closed_within(&mut held, Duration::from_millis(500)));
    assert!(d.wait_for_log(
        "dropped the oldest unauthenticated connection",
        Duration::from_secs(2)
    ));
    drop(waiting);
    // Closing the first frees the authenticated slot for a new client.
    first.null().unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = d.client();
        if matches!(c.authenticate(&d.name(0), &d.access(0).secret), Ok(Ok(_))) {
            break;
        }
        assert!(Instant::now() < deadline, "slot not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Limits for tests that need a job to run for a while: a 1 GiB sparse source cloned thick,
/// paced to 16 MiB/s, takes a minute unless something stops it.
const SLOW: &str = "max_job_bytes_per_second = 16777216";
const BIG: u64 = 1 << 30;

#[test]
fn lease_expiry_cancels_an_abandoned_job() {
    let d = Daemon::start_with(
        &format!("{SLOW}\nlease_seconds = 1"),
        &[ExportSpec::plain()],
    );
    sparse(&d.exports[0].join("big"), BIG);
    let mut c = d.authed(0);
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", 0))
        .unwrap()
        .unwrap();
    assert_eq!(c.wait(job, 0, 0).unwrap().unwrap().state, JobState::Running);
    // The client goes quiet (the connection stays open).
    assert!(d.wait_for_log("lease expired", Duration::from_secs(10)));
    assert!(d.wait_for_log("status=Cancelled", Duration::from_secs(10)));
    // Kept briefly for a last WAIT, which shows the cancellation, or already forgotten.
    match c.wait(job, 0, 0).unwrap() {
        Ok(i) => assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled)),
        Err(s) => assert_eq!(s, Status::ObjectNotFound),
    }
    assert!(!d.exports[0].join("copy").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&d.exports[0])
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}"); // big, .openvaai
}

#[test]
fn past_max_jobs_a_job_is_queued_and_past_the_queue_object_is_busy() {
    let d = Daemon::start_with(
        &format!("{SLOW}\nmax_jobs = 1\nmax_queued_jobs = 1"),
        &[ExportSpec::plain()],
    );
    sparse(&d.exports[0].join("big"), BIG);
    let mut c = d.authed(0);
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", 0))
        .unwrap()
        .unwrap();
    // The second waits its turn: RUNNING, nothing done, OBJECT_IS_BUSY.
    let queued = c
        .clone_start(&clone_args(&d, "big", "copy2", 0))
        .unwrap()
        .unwrap();
    let i = c.wait(queued, 1, 0).unwrap().unwrap();
    assert_eq!(
        (i.state, i.done, i.result),
        (JobState::Running, 0, Status::ObjectIsBusy)
    );
    assert_eq!(
        c.clone_start(&clone_args(&d, "big", "copy3", 0)).unwrap(),
        Err(Status::ObjectIsBusy)
    );
    assert_eq!(
        status_of(c.reserve_start(&d.name(0), "big").unwrap()),
        Status::ObjectIsBusy
    );
    // Progress shows while it runs; CANCEL waits for the cleanup.
    let i = c.wait(job, 1, 10_000).unwrap().unwrap();
    assert!(i.done >= 1 && i.total == BIG, "{i:?}");
    let i = c.cancel(job).unwrap().unwrap();
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    assert!(!d.exports[0].join("copy").exists());
    // The queued one runs now; cancelled too, it frees the slot.
    let i = c.wait(queued, 1, 10_000).unwrap().unwrap();
    assert!(i.done >= 1 && i.result == Status::Ok, "{i:?}");
    let i = c.cancel(queued).unwrap().unwrap();
    assert_eq!((i.state, i.result), (JobState::Failed, Status::Cancelled));
    // The slot is free again.
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", CLONE_DRY_RUN))
        .unwrap()
        .unwrap();
    assert_eq!(wait_done(&mut c, job).result, Status::Ok);
}

#[test]
fn sigterm_cancels_jobs_and_exits_zero_promptly() {
    let mut d = Daemon::start_with(SLOW, &[ExportSpec::plain()]);
    sparse(&d.exports[0].join("big"), BIG);
    let mut c = d.authed(0);
    let job = c
        .clone_start(&clone_args(&d, "big", "copy", 0))
        .unwrap()
        .unwrap();
    assert_eq!(c.wait(job, 0, 0).unwrap().unwrap().state, JobState::Running);
    let start = Instant::now();
    let st = d
        .terminate(Duration::from_secs(10))
        .expect("openvaaid did not exit");
    assert!(st.success(), "exit status {st}\n{}", d.log_text());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!d.exports[0].join("copy").exists());
    // Its connections were closed.
    assert!(c.null().is_err());
}

#[test]
fn restart_keeps_the_certificate_and_rotates_the_secret() {
    let mut d = Daemon::start();
    let before = d.access(0);
    let key = d.state_dir().join("key.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let amode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(access_path(&d.exports[0]))
            .unwrap()
            .permissions(),
    );
    assert_eq!(amode & 0o777, 0o600);
    d.stop();
    d.restart();
    let after = d.access(0);
    assert_eq!(before.cert_sha256, after.cert_sha256);
    assert_ne!(before.secret, after.secret);
    let mut c = d.client();
    assert_eq!(
        c.authenticate(&d.name(0), &before.secret).unwrap(),
        Err(Status::AuthenticationFail)
    );
    assert!(c.authenticate(&d.name(0), &after.secret).unwrap().is_ok());
}

#[test]
fn check_config_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("[[export]]\npath = \"{}\"\n", dir.path().display()),
    )
    .unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_openvaaid"))
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(st.status.success());
    assert!(!dir.path().join(".openvaai").exists());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[export]]\npath = \"/no/such/dir\"\n").unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_openvaaid"))
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
}

#[test]
fn pinning_refuses_another_certificate() {
    let d = Daemon::start();
    let sock = TcpStream::connect(d.addr()).unwrap();
    let conn = rustls::ClientConnection::new(
        client_config([0u8; 32]),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut c = Client::new(rustls::StreamOwned::new(conn, sock));
    let err = c
        .null()
        .expect_err("a pin of another certificate must be refused");
    // Refused by the pin, not for any other reason (a daemon that is not listening, a
    // protocol error after the handshake).
    let refusal = err
        .io_error()
        .and_then(|io| io.get_ref())
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            refusal,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure
            ))
        ),
        "not the certificate refusal: {err} ({refusal:?})"
    );
}
