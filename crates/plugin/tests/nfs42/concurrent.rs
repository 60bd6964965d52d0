//! Many StartSessions at once on one knfsd datastore, as ESXi starts sessions for many
//! datastores from many threads: 16 at once, eight times over, then 64 at once, three
//! times over, every one of them must succeed, and ending them leaves no client on knfsd.
//! Then as separate processes (each its own plugin, its own reserved ports): 16 `openvaai
//! statx` at once, four times over.

use std::sync::Barrier;
use std::time::Instant;

use openvaai_abi::{vix, SessionId, VixError};
use openvaai_testkit::FsKind;

use crate::copy::{guest, loaded, prepare};
use crate::{assert_vix, datastore, name, serial};

/// The number of NFSv4 clients knfsd holds state for.
fn clients(nfs: &openvaai_testkit::guest::Knfsd) -> usize {
    nfs.run("ls /proc/fs/nfsd/clients | wc -l")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sixteen_and_sixty_four_concurrent_start_sessions_all_succeed() {
    let _one = serial();
    let Some(nfs) = guest(&[("xfs", FsKind::Xfs)]) else {
        return;
    };
    let export = nfs.export("xfs");
    prepare(&nfs, &export);
    let plugin = loaded();
    let local = nfs.esxi_mount("openvaai-nfs42-").unwrap();
    let ds = datastore("127.0.0.1", &export, local.path());
    // How knfsd records its clients (each new client id is recorded at RECLAIM_COMPLETE,
    // and forgotten at DESTROY_CLIENTID, by an upcall or in its recovery directory).
    println!(
        "{}",
        nfs.run("dmesg | grep -i -E 'nfsd|NFSD|cld|recovery' | tail -5; ls /var/lib/nfs 2>&1")
            .unwrap_or_default()
    );
    // A session timeout for many set-ups at once on a software-emulated server, whose knfsd
    // answers 64 connections at once 10-50 times slower than real hardware would.
    let timeout_ms = 120_000;
    for (n, rounds) in [(16, 8), (64, 3)] {
        for round in 0..rounds {
            let start = Barrier::new(n);
            let t = Instant::now();
            let results: Vec<Result<SessionId, VixError>> = std::thread::scope(|scope| {
                let runs: Vec<_> = (0..n)
                    .map(|_| {
                        let (start, plugin, ds) = (&start, &plugin, &ds);
                        scope.spawn(move || {
                            start.wait();
                            plugin.start_session(ds, Some(timeout_ms))
                        })
                    })
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let took = t.elapsed();
            let failed: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().err().map(|&e| name(e)))
                .collect();
            let log: Vec<String> = openvaai_host::take_log()
                .into_iter()
                .map(|l| l.text)
                .filter(|l| !l.contains(": session on "))
                .collect();
            println!("{n} StartSessions at once, round {round}: {took:?}");
            assert!(
                failed.is_empty(),
                "{n} at once, round {round}: {} failed: {failed:?}; {log:?}",
                failed.len()
            );
            for id in results.into_iter().flatten() {
                assert_vix(plugin.end_session(id), vix::OK);
            }
            assert_eq!(clients(&nfs), 0, "clients left on knfsd");
        }
    }
    processes(&nfs, &export, local.path());
}

/// 16 processes, each loading the plugin and starting a session at once.
fn processes(nfs: &openvaai_testkit::guest::Knfsd, export: &str, local: &std::path::Path) {
    crate::support::build_daemon_and_cli();
    let ports = std::env::var("OPENVAAI_NFS42_PORTS").unwrap();
    for round in 0..4 {
        let t = Instant::now();
        let children: Vec<_> = (0..16)
            .map(|_| {
                std::process::Command::new(openvaai_testkit::cli_bin())
                    .args(["statx", "-d"])
                    .arg(local)
                    .args(["--nas-ip", "127.0.0.1", "--nas-path", export])
                    .args(["--timeout-ms", "30000", "--plugin"])
                    .arg(openvaai_testkit::plugin_so())
                    .arg("dense")
                    .env("OPENVAAI_NFS42_PORTS", &ports)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        println!("16 processes, round {round}: {:?}", t.elapsed());
        for o in &outs {
            assert!(
                o.status.success(),
                "round {round}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(clients(nfs), 0, "clients left on knfsd");
    }
}
