//! The trust rules: secrets, challenges, allowed networks, read-only exports, the
//! pinned certificate, and what a restart keeps.

use super::*;

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
