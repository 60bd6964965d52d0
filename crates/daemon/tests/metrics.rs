//! The Prometheus endpoint of a real openvaaid, with real clones through the plugin library
//! on XFS: the counters move during a clone, a silent scraper holds nothing up, anything
//! but `GET /metrics` is refused, and the Grafana dashboard queries only metrics that exist.

#[allow(dead_code)]
mod ops;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use openvaai_testkit::{write_layout, Daemon, Run};
use ops::*;

#[test]
fn a_scrape_during_a_real_clone_sees_the_counters_move() {
    // 64 MiB paced at 8 MiB/s: about 8 s, long enough to scrape it running.
    let Some(srv) = Served::xfs("max_job_bytes_per_second = 8388608") else {
        return;
    };
    let m = srv.metrics();
    let full = [("export", srv.ds()), ("primitive", "clone_full")];
    let before = scrape(m);
    assert_eq!(
        value(&before, "openvaai_jobs_started_total", &full),
        Some(0.0)
    );
    assert_eq!(value(&before, "openvaai_job_bytes_total", &full), Some(0.0));
    write_layout(&srv.path("big.vmdk"), &[Run::Data(64 * MIB)], 3).unwrap();

    let child = clone_in_background(srv.ds(), "big.vmdk", "copy.vmdk", &[]);
    let first = eventually(Duration::from_secs(20), "bytes while running", || {
        let s = scrape(m);
        let bytes = value(&s, "openvaai_job_bytes_total", &full)?;
        (value(&s, "openvaai_jobs_running", &[]) == Some(1.0) && bytes > 0.0).then_some((s, bytes))
    });
    assert_eq!(
        value(&first.0, "openvaai_jobs_started_total", &full),
        Some(1.0)
    );
    assert!(
        first.1 < (64 * MIB) as f64,
        "the clone is paced: {}",
        first.1
    );
    // The engine reports after each chunk (16 MiB here), and the pacing sleeps after it.
    eventually(Duration::from_secs(20), "more bytes while running", || {
        let s = scrape(m);
        let bytes = value(&s, "openvaai_job_bytes_total", &full)?;
        (value(&s, "openvaai_jobs_running", &[]) == Some(1.0) && bytes > first.1).then_some(())
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A lazy clone (bytes cloned) and a failed one, counted by result.
    assert_eq!(
        openvaai(&["clone", "-d", srv.ds(), "big.vmdk", "lazy.vmdk", "--lazy"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        openvaai(&["clone", "-d", srv.ds(), "nothing.vmdk", "x.vmdk"])
            .status
            .code(),
        Some(1)
    );
    let after = scrape(m);
    let lazy = [("export", srv.ds()), ("primitive", "clone_lazy")];
    for (name, labels, want) in [
        ("openvaai_job_bytes_total", &full[..], (64 * MIB) as f64),
        ("openvaai_job_bytes_total", &lazy[..], (64 * MIB) as f64),
        ("openvaai_jobs_started_total", &full[..], 2.0),
        ("openvaai_jobs_started_total", &lazy[..], 1.0),
        ("openvaai_job_duration_seconds_count", &full[..], 2.0),
        ("openvaai_jobs_running", &[], 0.0),
    ] {
        assert_eq!(value(&after, name, labels), Some(want), "{name}{labels:?}");
    }
    let ok = [("primitive", "clone_full"), ("result", "VIX_OK")];
    let missing = [
        ("primitive", "clone_full"),
        ("result", "VIX_E_FILE_NOT_FOUND"),
    ];
    assert_eq!(
        value(&after, "openvaai_jobs_finished_total", &ok),
        Some(1.0)
    );
    assert_eq!(
        value(&after, "openvaai_jobs_finished_total", &missing),
        Some(1.0)
    );
    assert!(value(&after, "openvaai_connections_accepted_total", &[]).unwrap() >= 3.0);
    assert!(
        value(
            &after,
            "openvaai_authentications_total",
            &[("export", srv.ds())]
        )
        .unwrap()
            >= 3.0
    );
    assert!(value(&after, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(&after, "process_open_fds", &[]).unwrap() > 3.0);

    // Every metric the Grafana dashboard queries is in this scrape.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../packaging/grafana/openvaai.json"
        ))
        .unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let names = sample_names(&after);
    for e in &exprs {
        for metric in metric_names(e) {
            assert!(
                names.contains(&metric),
                "the dashboard queries {metric} ({e}), which is not scraped"
            );
        }
    }
}

#[test]
fn a_dry_run_moves_no_bytes_and_rates_are_of_real_work_within_the_pace() {
    const PACE: u64 = 20 * MIB;
    let Some(srv) = Served::xfs(&format!("max_job_bytes_per_second = {PACE}")) else {
        return;
    };
    let (m, sock) = (srv.metrics(), srv.socket());
    write_layout(&srv.path("big.vmdk"), &[Run::Data(64 * MIB)], 4).unwrap();
    let out = openvaai(&["clone", "-d", srv.ds(), "big.vmdk", "dry.vmdk", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dry = [("export", srv.ds()), ("primitive", "clone_dry_run")];
    let s = scrape(m);
    assert_eq!(value(&s, "openvaai_jobs_started_total", &dry), Some(1.0));
    assert_eq!(value(&s, "openvaai_job_bytes_total", &dry), Some(0.0));

    // A paced clone (64 MiB at 20 MiB/s, about 3 s): no status sample shows it faster than
    // its pace, the first ones included.
    let child = clone_in_background(srv.ds(), "big.vmdk", "copy.vmdk", &[]);
    let mut rates = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        let v = json(&openvaai(&[
            "status",
            "--socket",
            sock.to_str().unwrap(),
            "--json",
        ]));
        let Some(j) = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["primitive"] == "clone_full")
        else {
            continue;
        };
        if let Some(r) = j["rate_bytes_per_second"].as_f64() {
            rates.push(r);
        }
        if j["state"] != "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(rates.len() >= 5, "{rates:?}");
    let mib = |r: &f64| (r / MIB as f64 * 10.0).round() / 10.0;
    assert!(
        rates.iter().all(|r| *r <= PACE as f64 * 1.01),
        "MiB/s: {:?}",
        rates.iter().map(mib).collect::<Vec<_>>()
    );

    // A lazy clone shares blocks at once: no rate of it (not 1000 GiB/s).
    let out = openvaai(&["clone", "-d", srv.ds(), "big.vmdk", "lazy.vmdk", "--lazy"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&openvaai(&[
        "status",
        "--socket",
        sock.to_str().unwrap(),
        "--json",
    ]));
    let lazy = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["primitive"] == "clone_lazy")
        .unwrap();
    assert_eq!(lazy["done_bytes"], 64 * MIB, "{lazy}");
    assert!(lazy["rate_bytes_per_second"].is_null(), "{lazy}");
}

/// Every `"expr"` string in a Grafana dashboard.
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The `openvaai_*` and `process_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &expr[i..];
        let starts = rest.starts_with("openvaai_") || rest.starts_with("process_");
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if starts && boundary {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn a_silent_scraper_delays_neither_clones_nor_other_scrapes() {
    let Some(srv) = Served::xfs("") else {
        return;
    };
    let m = srv.metrics();
    write_layout(&srv.path("a.vmdk"), &[Run::Data(16 * MIB)], 1).unwrap();
    // One scraper that connects and sends nothing: another is answered at once.
    let mut silent = vec![TcpStream::connect(m).unwrap()];
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    scrape(m);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "a scrape beside a silent one took {:?}",
        start.elapsed()
    );
    // Now silent ones in every place the endpoint has.
    silent.extend((0..7).map(|_| TcpStream::connect(m).unwrap()));
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let out = openvaai(&["clone", "-d", srv.ds(), "a.vmdk", "b.vmdk"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let clone_took = start.elapsed();
    // After their grace, the oldest silent one gives way: a real scrape is answered at once.
    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    let s = scrape(m);
    let scrape_took = start.elapsed();
    assert!(
        scrape_took < Duration::from_millis(1500),
        "a scrape behind silent ones took {scrape_took:?}"
    );
    assert_eq!(
        value(&s, "openvaai_jobs_finished_total", &[("result", "VIX_OK")]),
        Some(1.0)
    );
    // The clone ran while the silent ones were connected, and took far less than their
    // deadline (5 s): nothing waited for them.
    assert!(
        clone_took < Duration::from_secs(5),
        "clone took {clone_took:?}"
    );
    // The silent ones are closed by their deadline (5 s from their connect), not later.
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent scraper was not closed by its deadline: {other:?}"),
        }
    }
}

#[test]
fn only_get_metrics_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::builder()
        .export(dir.path())
        .tables(METRICS_ON)
        .start();
    let m = metrics_addr(&d);
    let status = |req: &[u8]| {
        let r = http(m, req);
        r.lines().next().unwrap_or_default().to_owned()
    };
    assert_eq!(
        status(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert!(http(m, b"HEAD /metrics HTTP/1.1\r\n\r\n").contains("Allow: GET\r\n"));
    assert_eq!(
        status(b"GET /secrets HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(status(b"hello\r\n\r\n"), "HTTP/1.1 400 Bad Request");
    // Headers that never end: refused once past the limit, and the connection closed.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 10_000));
    assert_eq!(status(&big), "HTTP/1.1 431 Request Header Fields Too Large");
    // A query string is fine; and the daemon still serves.
    assert!(http(m, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
    assert!(scrape(m).contains("openvaai_build_info{version="));
}

#[test]
fn lease_expiries_tidying_at_start_and_wrong_proofs_are_counted() {
    // 64 MiB paced at 4 MiB/s, and a lease of 1 s.
    let Some(mut srv) = Served::xfs("max_job_bytes_per_second = 4194304\nlease_seconds = 1") else {
        return;
    };
    // A temporary a crash left: removed, and counted, at the next start.
    let stale = srv.path(&format!(
        "{}0123456789abcdef",
        openvaai_proto::layout::TEMP_PREFIX
    ));
    std::fs::write(&stale, b"left by a crash").unwrap();
    srv.daemon.restart();
    assert!(!stale.exists());
    let m = srv.metrics();
    let export = [("export", srv.ds())];
    assert_eq!(
        value(&scrape(m), "openvaai_temporaries_cleaned_total", &export),
        Some(1.0)
    );

    // A client that goes away mid-clone (killed: it cannot cancel) stops polling.
    write_layout(&srv.path("big.vmdk"), &[Run::Data(64 * MIB)], 4).unwrap();
    let mut child = clone_in_background(srv.ds(), "big.vmdk", "copy.vmdk", &[]);
    eventually(Duration::from_secs(20), "the clone running", || {
        (value(&scrape(m), "openvaai_jobs_running", &[]) == Some(1.0)).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let s = eventually(Duration::from_secs(20), "the lease to expire", || {
        let s = scrape(m);
        (value(&s, "openvaai_jobs_running", &[]) == Some(0.0)).then_some(s)
    });
    let full = [("export", srv.ds()), ("primitive", "clone_full")];
    assert_eq!(value(&s, "openvaai_lease_expiries_total", &full), Some(1.0));
    let cancelled = [("primitive", "clone_full"), ("result", "VIX_E_CANCELLED")];
    assert_eq!(
        value(&s, "openvaai_jobs_finished_total", &cancelled),
        Some(1.0)
    );
    assert_eq!(listing(&srv.export), ["big.vmdk"]);

    // A proof made with another secret (a stale access file).
    let pin = srv.daemon.access(0).cert_sha256;
    let sock = TcpStream::connect(srv.daemon.addr()).unwrap();
    let tls = rustls::ClientConnection::new(
        openvaai_client::tls::pinned_config(pin).unwrap(),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut c = openvaai_proto::Client::new(rustls::StreamOwned::new(tls, sock));
    let wrong = openvaai_proto::auth::Secret::generate();
    assert!(c.authenticate(srv.ds(), &wrong).unwrap().is_err());
    let s = scrape(m);
    let reason = |r| {
        value(
            &s,
            "openvaai_authentication_failures_total",
            &[("reason", r)],
        )
    };
    assert_eq!(reason("wrong_proof"), Some(1.0));
    assert_eq!(reason("unknown_export"), Some(0.0));
}
