//! Trust: wrong and foreign secrets, replayed handshakes (inside TLS and of TLS itself), a
//! certificate that is not the pinned one, an address outside `allowed_networks`. Each is
//! refused and logged.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_proto::auth::Secret;
use openvaai_proto::record::read_record;
use openvaai_proto::rpc::decode_reply;
use openvaai_proto::xdr::from_bytes;
use openvaai_proto::{AuthRes, Client, HelloRes, Status};
use openvaai_testkit::{access_path, write_layout, Run};

use crate::raw::{self, Recorder};
use crate::util::*;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn wrong_foreign_and_replayed_secrets_are_refused_and_logged() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 2, "") else {
        return;
    };
    write_layout(&fx.path(0, "a.vmdk"), &[Run::Data(MIB)], 101).unwrap();
    let (e0, e1) = (fx.s(0, ""), fx.s(1, ""));
    let (e0, e1) = (e0.trim_end_matches('/'), e1.trim_end_matches('/'));
    let (a0, a1) = (fx.daemon.access(0), fx.daemon.access(1));
    let to = raw::addr(LOCAL, &a0);

    // A wrong secret, and another export's secret: refused, and nothing opens.
    for secret in [Secret::generate(), a1.secret.clone()] {
        let mut c = raw::client(to, a0.cert_sha256);
        assert_eq!(
            c.authenticate(e0, &secret).unwrap(),
            Err(Status::AuthenticationFail)
        );
        assert_eq!(
            c.statx(e0, "a.vmdk").unwrap(),
            Err(Status::AuthenticationFail)
        );
        assert_eq!(
            c.reserve_start(e0, "a.vmdk").unwrap(),
            Err(Status::AuthenticationFail)
        );
    }
    // Export 1's secret opens export 1 only.
    let mut c = raw::authed(to, e1, &a1);
    assert_eq!(
        c.statx(e0, "a.vmdk").unwrap(),
        Err(Status::AuthenticationFail)
    );
    assert!(wait_for_line(
        &fx.daemon,
        &["authentication failed: wrong proof"],
        Duration::from_secs(5)
    ));

    // A good client's HELLO and AUTH, recorded inside TLS and replayed on a new connection:
    // the new HELLO draws a new challenge, so the recorded proof is worthless.
    let mut good = Client::new(Recorder::new(raw::tls(to, a0.cert_sha256)));
    assert!(good.authenticate(e0, &a0.secret).unwrap().is_ok());
    let recorded = good.stream().sent.lock().unwrap().clone();
    let mut s = raw::tls(to, a0.cert_sha256);
    s.write_all(&recorded).unwrap();
    s.flush().unwrap();
    let hello = read_record(&mut s).unwrap().unwrap();
    let (_, _, res) = decode_reply(&hello).unwrap();
    assert!(from_bytes::<HelloRes>(res).unwrap().is_ok());
    let auth = read_record(&mut s).unwrap().unwrap();
    let (_, _, res) = decode_reply(&auth).unwrap();
    assert_eq!(
        from_bytes::<AuthRes>(res).unwrap(),
        Err(Status::AuthenticationFail),
        "a replayed AUTH is refused"
    );
    let mut replayed = Client::new(s);
    assert_eq!(
        replayed.statx(e0, "a.vmdk").unwrap(),
        Err(Status::AuthenticationFail)
    );

    // A whole session recorded below TLS and replayed byte for byte: TLS refuses it (the
    // server's randoms differ), the connection is closed and nothing is answered.
    let mut c = Client::new(
        raw::tls_over(Recorder::new(raw::tcp(to, None).unwrap()), a0.cert_sha256).unwrap(),
    );
    assert!(c.authenticate(e0, &a0.secret).unwrap().is_ok());
    assert!(c.statx(e0, "a.vmdk").unwrap().is_ok());
    let wire = c.stream().sock.sent.lock().unwrap().clone();
    let mut tcp = raw::tcp(to, None).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let _ = tcp.write_all(&wire);
    let (_, closed) = raw::drain(&mut tcp, Duration::from_secs(5));
    assert!(closed, "a replayed TLS session is cut off");
    assert!(wait_for_line(
        &fx.daemon,
        &["TLS handshake failed"],
        Duration::from_secs(5)
    ));

    // A certificate other than the pinned one: the raw client's TLS refuses the daemon.
    let mut wrong = a0.cert_sha256;
    wrong[0] ^= 1;
    assert!(raw::tls_over(raw::tcp(to, None).unwrap(), wrong).is_err());
}

/// A copy of export 0's access file, altered, behind a mount point of its own.
fn forged_access(
    fx: &Fixture,
    alter: impl FnOnce(&mut openvaai_proto::access::AccessFile),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let access = access_path(dir.path());
    std::fs::create_dir_all(access.parent().unwrap()).unwrap();
    let mut a = fx.daemon.access(0);
    alter(&mut a);
    std::fs::write(&access, a.render()).unwrap();
    dir
}

#[test]
fn the_plugin_refuses_a_wrong_pin_and_stale_or_foreign_secrets() {
    let _machine = shared();
    let Some(fx) = on_xfs(1 << 30, 2, "") else {
        return;
    };
    let a1 = fx.daemon.access(1);
    let cases: Vec<(&str, tempfile::TempDir)> = vec![
        (
            "a certificate pin that is not the daemon's",
            forged_access(&fx, |a| a.cert_sha256[31] ^= 0x80),
        ),
        (
            "a stale secret",
            forged_access(&fx, |a| a.secret = Secret::from_bytes([9; 32])),
        ),
        (
            "another export's secret",
            forged_access(&fx, |a| a.secret = a1.secret.clone()),
        ),
    ];
    for (what, dir) in &cases {
        let mut ds = datastore(&fx.exports[0]);
        ds.local_mount_point = Some(dir.path().to_str().unwrap().into());
        let got = fx.plugin.start_session(&ds, Some(TIMEOUT_MS));
        assert_eq!(
            got.map_err(name),
            Err(name(vix::E_AUTHENTICATION_FAIL)),
            "{what}"
        );
    }
    let log = fx.daemon.log_text();
    assert!(
        log.contains("TLS handshake failed"),
        "the pin mismatch shows on the daemon"
    );
    assert!(log_lines(&log, &["authentication failed: wrong proof"]).len() >= 2);
}

#[test]
fn an_address_outside_allowed_networks_is_refused_and_logged() {
    let _machine = shared();
    let Some(fs) = test_fs(openvaai_testkit::FsKind::Xfs, 1 << 30) else {
        return;
    };
    let root = fs.path().join("ds0");
    let open = fs.path().join("ds1");
    let fx = fixture(
        vec![fs],
        &[
            (root.clone(), "allowed_networks = [\"127.0.0.2/32\"]"),
            (open.clone(), "allowed_networks = [\"127.0.0.3/32\"]"),
        ],
        "",
    );
    write_layout(&root.join("a.vmdk"), &[Run::Data(MIB)], 102).unwrap();
    let export = root.to_str().unwrap();
    let a = fx.daemon.access(0);
    let to = raw::addr(LOCAL, &a);
    // The plugin connects from 127.0.0.1, which no export allows: refused at accept, before
    // TLS, with a TLS access_denied alert, so the plugin says so at once instead of
    // retrying until its timeout.
    let t = Instant::now();
    let got = fx.plugin.start_session(&datastore(&root), Some(TIMEOUT_MS));
    assert_eq!(got.map_err(name), Err(name(vix::E_FILE_ACCESS_ERROR)));
    assert!(
        t.elapsed() < Duration::from_millis(TIMEOUT_MS / 2),
        "{:?}",
        t.elapsed()
    );
    assert!(wait_for_line(
        &fx.daemon,
        &["not in any export's allowed_networks", "127.0.0.1"],
        Duration::from_secs(5)
    ));
    assert!(
        openvaai_host::take_log()
            .iter()
            .any(|l| l.text.contains("allowed_networks")),
        "the plugin's log names the likely cause"
    );
    // A raw client from 127.0.0.1 gets no TLS at all: an alert, and the connection closed.
    let mut tcp = raw::tcp(to, None).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let (got, closed) = raw::drain(&mut tcp, Duration::from_secs(1));
    assert!(closed, "a refused address was kept open");
    assert_eq!(got, [21, 3, 3, 0, 2, 2, 49], "a fatal access_denied alert");
    assert!(raw::tls_over(raw::tcp(to, None).unwrap(), a.cert_sha256).is_err());
    // From 127.0.0.3, allowed by the other export only: TLS, then refused at HELLO.
    let three = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let s = raw::tls_over(raw::tcp(to, Some(three)).unwrap(), a.cert_sha256).unwrap();
    let mut c = Client::new(s);
    assert_eq!(
        c.authenticate(export, &a.secret).unwrap(),
        Err(Status::FileAccessError)
    );
    assert!(wait_for_line(
        &fx.daemon,
        &["not in allowed_networks", "127.0.0.3"],
        Duration::from_secs(5)
    ));
    assert_eq!(
        c.statx(export, "a.vmdk").unwrap(),
        Err(Status::AuthenticationFail)
    );
    // From 127.0.0.2, the allowed address: served.
    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let s = raw::tls_over(raw::tcp(to, Some(from)).unwrap(), a.cert_sha256).unwrap();
    let mut c = Client::new(s);
    assert!(c.authenticate(export, &a.secret).unwrap().is_ok());
    assert_eq!(c.statx(export, "a.vmdk").unwrap().unwrap().total_bytes, MIB);
}
