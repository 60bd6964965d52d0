//! A network namespace joined to the root namespace by a veth pair with a private /30
//! (10.231.x.0/30: .2 on the host side, .1 inside), and the testkit's `openvaaid` run inside
//! it. The test owns both ends; everything is deleted on drop, also when the test panics.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use openvaai_testkit::Daemon;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn have_ip() -> bool {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .any(|p| Path::new(p).exists())
}

pub struct Netns {
    pub name: String,
    /// The veth end in the root namespace.
    pub host_if: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

impl Netns {
    /// A namespace and its veth pair, up. `None` (reason printed) without root or `ip`;
    /// a panic instead under `OPENVAAI_REQUIRE_FS_TESTS=1`.
    pub fn new() -> Option<Netns> {
        let why = if !rustix::process::geteuid().is_root() {
            Some("not root")
        } else if !have_ip() {
            Some("`ip` (iproute2) not found")
        } else {
            None
        };
        if let Some(why) = why {
            assert!(
                !openvaai_testkit::require_fs_tests(),
                "OPENVAAI_REQUIRE_FS_TESTS=1 but network namespaces cannot be made: {why}"
            );
            eprintln!("skipping network test: {why}");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // One of the 16384 /30s of 10.231.0.0/16, chosen by process and number, so that
        // test runs side by side on one machine do not collide.
        let slot = (pid.wrapping_mul(31).wrapping_add(n)) % 16384;
        let (third, base) = ((slot / 64) as u8, ((slot % 64) * 4) as u8);
        let ns = Netns {
            name: format!("ovfaults-{pid}-{n}"),
            host_if: format!("ovf{}h{n}", pid % 100_000),
            host_ip: Ipv4Addr::new(10, 231, third, base + 2),
            ns_ip: Ipv4Addr::new(10, 231, third, base + 1),
        };
        // From here on, Drop deletes whatever was made.
        let peer = format!("ovf{}n{n}", pid % 100_000);
        let host_cidr = format!("{}/30", ns.host_ip);
        let ns_cidr = format!("{}/30", ns.ns_ip);
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &ns.name],
            vec![
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ],
            vec!["link", "set", &peer, "netns", &ns.name],
            vec!["addr", "add", &host_cidr, "dev", &ns.host_if],
            vec!["link", "set", &ns.host_if, "up"],
            vec!["-n", &ns.name, "addr", "add", &ns_cidr, "dev", &peer],
            vec!["-n", &ns.name, "link", "set", &peer, "up"],
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
        ];
        for s in steps {
            ip(&s).unwrap_or_else(|e| panic!("setting up the namespace: {e}"));
        }
        Some(ns)
    }

    /// The testkit's `openvaaid` inside this namespace, serving `exports` with `limits` and
    /// listening on the namespace's address; `ip netns exec` execs it, so the signals and
    /// the kill on drop reach the daemon itself.
    pub fn daemon(&self, exports: &[&Path], limits: &str) -> Daemon {
        let mut b = Daemon::builder()
            .limits(limits)
            .listen(SocketAddr::from((self.ns_ip, 0)))
            .wrap(&["ip", "netns", "exec", &self.name]);
        for e in exports {
            b = b.export(e);
        }
        b.start()
    }

    /// Brings the host end of the link down (`false`) or up again.
    pub fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["link", "set", &self.host_if, state]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
