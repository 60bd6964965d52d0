//! An HA failover in the middle of a clone: two NAS "nodes" (network namespaces, each with its
//! own openvaaid and its own state directory, so its own certificate) see the same
//! filesystem; the service address moves from the first to the second, as Pacemaker moves a
//! floating IP, after the first node dies. The plugin, on the host, knows only the service
//! address: its clone goes on at the second node from the checkpoint the first one left in
//! the export, and ends VIX_OK.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{assert_same_content, write_layout, Daemon, FsKind, Run};

use crate::netns::Netns;
use crate::util::*;

const SIZE: u64 = 512 * MIB;
/// 512 MiB at 256 MiB/s: two seconds of work, a checkpoint about every second.
const LIMITS: &str = "max_job_bytes_per_second = 268435456\nlease_seconds = 10";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The floating service address: a /32 on the loopback of the node that has it, routed from
/// the host through that node's veth. Removed from the host's table on drop.
struct ServiceIp(Ipv4Addr);

impl ServiceIp {
    fn new() -> ServiceIp {
        // Inside 10.232.0.0/16, by process: runs side by side do not collide.
        let pid = std::process::id();
        ServiceIp(Ipv4Addr::new(10, 232, (pid >> 8) as u8, (pid as u8).max(1)))
    }

    /// Gives the address to `to` (taking it from `from`, if given).
    fn move_to(&self, from: Option<&Netns>, to: &Netns) {
        let cidr = format!("{}/32", self.0);
        if let Some(f) = from {
            let _ = Command::new("ip")
                .args(["-n", &f.name, "addr", "del", &cidr, "dev", "lo"])
                .output();
        }
        ip(&["-n", &to.name, "addr", "add", &cidr, "dev", "lo"]);
        ip(&[
            "route",
            "replace",
            &cidr,
            "via",
            &to.ns_ip.to_string(),
            "dev",
            &to.host_if,
        ]);
    }
}

impl Drop for ServiceIp {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["route", "del", &format!("{}/32", self.0)])
            .output();
    }
}

/// openvaaid on `node`, listening on the service address at `port` (0: any), with a state
/// directory of its own.
fn daemon_on(node: &Netns, at: SocketAddr, export: &std::path::Path) -> Daemon {
    Daemon::builder()
        .limits(LIMITS)
        .listen(at)
        .wrap(&["ip", "netns", "exec", &node.name])
        .export(export)
        .start()
}

#[test]
fn a_clone_goes_on_at_the_other_node_after_a_failover() {
    let _machine = shared();
    let Some(fs) = test_fs(FsKind::Xfs, 2 << 30) else {
        return;
    };
    let (Some(a), Some(b)) = (Netns::new(), Netns::new()) else {
        return;
    };
    let root = fs.path().join("ds0");
    std::fs::create_dir(&root).unwrap();
    write_layout(&root.join("src.vmdk"), &[Run::Data(SIZE)], 95).unwrap();
    let service = ServiceIp::new();
    service.move_to(None, &a);
    let mut first = daemon_on(&a, SocketAddr::from((service.0, 0)), &root);
    let port = first.port();
    let cert_a = std::fs::read(first.state_dir().join("cert.pem")).unwrap();

    let plugin = load_plugin();
    let ds = datastore_at(&root, &service.0.to_string());
    let id = plugin
        .start_session(&ds, Some(20_000))
        .unwrap_or_else(|e| panic!("StartSession: {}\n{}", name(e), first.log_text()));
    let p = |n: &str| root.join(n).to_str().unwrap().to_owned();

    let failed_at: Mutex<Option<Instant>> = Mutex::new(None);
    let mut second: Option<Daemon> = None;
    let (st, reports) = std::thread::scope(|s| {
        let node_b = s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while failed_at.lock().unwrap().is_none() {
                assert!(Instant::now() < deadline, "never failed over");
                std::thread::sleep(Duration::from_millis(5));
            }
            // The floating address moves and the other node's daemon starts on the export,
            // about 2 s after the first node died.
            std::thread::sleep(Duration::from_secs(2));
            service.move_to(Some(&a), &b);
            daemon_on(&b, SocketAddr::from((service.0, port)), &root)
        });
        let mut done = 0u64;
        let mut reports = Vec::new();
        let (st, _) = clone_with(
            &plugin,
            id,
            &p("src.vmdk"),
            &p("dst.vmdk"),
            0,
            None,
            16 * MIB,
            &mut |d| {
                done += d;
                reports.push(d);
                let mut f = failed_at.lock().unwrap();
                if done >= SIZE / 2 && f.is_none() {
                    // The first node dies.
                    first.kill();
                    *f = Some(Instant::now());
                }
                true
            },
        );
        second = Some(node_b.join().unwrap());
        (st, reports)
    });
    let second = second.unwrap();
    let took = failed_at.lock().unwrap().unwrap().elapsed();
    println!(
        "failover mid-clone: {} {took:?} after the first node died",
        name(st)
    );
    assert_vix(st, vix::OK);
    assert_same_content(&root.join("src.vmdk"), &root.join("dst.vmdk"));
    assert_eq!(reports.iter().sum::<u64>(), SIZE, "{reports:?}");
    assert_eq!(
        openvaai_testkit::export_listing(&root),
        ["dst.vmdk", "src.vmdk"]
    );
    // The other node is another certificate: the plugin pinned the one its new access file
    // names.
    let cert_b = std::fs::read(second.state_dir().join("cert.pem")).unwrap();
    assert_ne!(cert_a, cert_b, "each node has its own certificate");
    let log = second.log_text();
    assert!(log.contains("interrupted clone resumed from byte"), "{log}");
    assert!(
        !std::fs::read_dir(root.join(".openvaai"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("clone-")),
        "no partial file left"
    );
}
