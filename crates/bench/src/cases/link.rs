//! An emulated network link between the bench, which plays the ESXi host in the root network
//! namespace, and the NAS in a network namespace of its own: a veth pair with addresses from
//! the benchmarking range of RFC 2544 (198.18.0.1/30 the NAS, .2 the host), shaped on both
//! ends by `tc qdisc replace dev X root netem delay 100us rate RATE limit 10000` (a round trip
//! of 0.2 ms at a stated rate), and the TCP throughput the link achieves, measured.
//!
//! A kernel without `sch_netem` (`CONFIG_NET_SCH_NETEM` unset, as on the machine the figures in
//! docs/benchmarks.md come from) gets the rate alone, by the token bucket filter (`tbf`): no
//! delay is added. The rows say which; no added delay can only help the host-side copy, whose
//! every READ and WRITE waits a round trip, while a clone makes a few calls in all.
//!
//! The host end is deleted on drop (which deletes the pair); the NAS end also goes with its
//! namespace when the namespace's last process exits.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::measure::cmd;
use crate::plan::MIB;

/// The NAS's address, in its namespace.
pub const NAS_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The host's address, in the root namespace.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// netem's delay on each end: a round trip of twice that.
const DELAY: &str = "100us";
const RTT: &str = "0.2 ms";

/// Bytes streamed from the host to the NAS to measure the link's TCP throughput.
const PROBE_BYTES: u64 = 256 * MIB;

/// One link the comparison runs across.
pub struct LinkSpec {
    /// The row's id, also a case name for `--only`.
    pub row: &'static str,
    /// The qdisc's `rate`.
    pub tc_rate: &'static str,
    /// tbf's bucket: at least a timer tick's worth of the rate (4 ms at 10 Gbit/s is 5 MB).
    pub tbf_burst: &'static str,
    /// As the table names it.
    pub label: &'static str,
}

/// The links, fastest first.
pub const LINKS: &[LinkSpec] = &[
    LinkSpec {
        row: "full-nfs-10g",
        tc_rate: "10gbit",
        tbf_burst: "5mb",
        label: "10 Gbit/s",
    },
    LinkSpec {
        row: "full-nfs-1g",
        tc_rate: "1gbit",
        tbf_burst: "512kb",
        label: "1 Gbit/s",
    },
];

/// How a link was shaped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shaper {
    /// netem: the rate and 0.2 ms round trips.
    Netem,
    /// tbf: the rate alone (the kernel has no netem).
    Tbf,
}

impl LinkSpec {
    /// The link as it is meant to be emulated: `10 Gbit/s netem, 0.2 ms RTT`.
    pub fn nominal(&self) -> String {
        format!("{} netem, {RTT} RTT", self.label)
    }

    /// The link as emulated, with its measured TCP throughput.
    pub fn describe(&self, shaper: Shaper, tcp_bits_per_s: f64) -> String {
        let how = match shaper {
            Shaper::Netem => self.nominal(),
            Shaper::Tbf => format!(
                "{} tbf, no added delay: this kernel has no netem",
                self.label
            ),
        };
        format!("{how}, measured {} TCP", bits(tcp_bits_per_s))
    }
}

/// A rate in bits per second as the table shows it.
pub fn bits(per_s: f64) -> String {
    if per_s >= 1e9 {
        format!("{:.2} Gbit/s", per_s / 1e9)
    } else {
        format!("{:.0} Mbit/s", per_s / 1e6)
    }
}

/// `nsenter`'s option for the network namespace of process `pid`.
pub fn nsenter_net(pid: u32) -> String {
    format!("--net=/proc/{pid}/ns/net")
}

/// `nsenter --net=/proc/PID/ns/net -- program args`: a command in the namespace of `pid`.
pub fn in_ns(pid: u32, program: &str, args: &[&str]) -> Result<String> {
    let net = nsenter_net(pid);
    let mut all = vec![net.as_str(), "--", program];
    all.extend(args);
    cmd("nsenter", &all)
}

/// The veth pair between the root namespace and the NAS's (that of process `ns_pid`).
pub struct Veth {
    /// The host end, in the root namespace.
    host: String,
    /// The NAS end, in the NAS namespace.
    nas: String,
    ns_pid: u32,
}

impl Veth {
    /// Creates the pair with the NAS end in the namespace of `ns_pid`, addresses both ends
    /// and brings them up.
    pub fn new(ns_pid: u32) -> Result<Veth> {
        let me = std::process::id();
        let v = Veth {
            host: format!("ovb{me}h"),
            nas: format!("ovb{me}n"),
            ns_pid,
        };
        let pid = ns_pid.to_string();
        cmd(
            "ip",
            &[
                "link", "add", &v.host, "type", "veth", "peer", "name", &v.nas, "netns", &pid,
            ],
        )
        .context("making the veth pair")?;
        // From here on, drop deletes the pair.
        let (host_cidr, nas_cidr) = (format!("{HOST_IP}/30"), format!("{NAS_IP}/30"));
        cmd("ip", &["addr", "add", &host_cidr, "dev", &v.host])?;
        cmd("ip", &["link", "set", &v.host, "up"])?;
        in_ns(ns_pid, "ip", &["addr", "add", &nas_cidr, "dev", &v.nas])?;
        in_ns(ns_pid, "ip", &["link", "set", &v.nas, "up"])?;
        Ok(v)
    }

    /// Shapes both ends as `link` (replacing the previous qdisc): by netem, else (no
    /// `sch_netem` in the kernel) by tbf, the rate without the delay. An error if neither
    /// works.
    pub fn shape(&self, link: &LinkSpec) -> Result<Shaper> {
        let netem = [
            "netem",
            "delay",
            DELAY,
            "rate",
            link.tc_rate,
            "limit",
            "10000",
        ];
        let tbf = [
            "tbf",
            "rate",
            link.tc_rate,
            "burst",
            link.tbf_burst,
            "latency",
            "10ms",
        ];
        match self.qdisc(&netem) {
            Ok(()) => Ok(Shaper::Netem),
            Err(netem_err) => {
                self.qdisc(&tbf)
                    .with_context(|| format!("netem: {netem_err:#}; tbf"))?;
                Ok(Shaper::Tbf)
            }
        }
    }

    /// `tc qdisc replace dev X root QDISC...` on both ends.
    fn qdisc(&self, qdisc: &[&str]) -> Result<()> {
        let args = |dev| [&["qdisc", "replace", "dev", dev, "root"], qdisc].concat();
        cmd("tc", &args(&self.host))?;
        in_ns(self.ns_pid, "tc", &args(&self.nas))?;
        Ok(())
    }

    /// The link's TCP throughput from the host to the NAS, in bits per second: 256 MiB
    /// streamed over one connection to a listener in the NAS namespace, from the first write
    /// until the listener has read them all and closed.
    pub fn tcp_throughput(&self) -> Result<f64> {
        let ns = File::open(format!("/proc/{}/ns/net", self.ns_pid))
            .context("opening the NAS's network namespace")?;
        let (port_tx, port_rx) = mpsc::channel();
        // This thread enters the NAS namespace and ends there; the listener's socket, made
        // there, stays in it.
        let reader = std::thread::spawn(move || -> Result<u64> {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                .context("setns into the NAS namespace")?;
            let listener = TcpListener::bind((NAS_IP, 0))?;
            let _ = port_tx.send(listener.local_addr()?.port());
            listener.set_nonblocking(true)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut conn = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            bail!("no connection within 10 s");
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            conn.set_nonblocking(false)?;
            conn.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut buf = vec![0u8; MIB as usize];
            let mut got = 0u64;
            loop {
                match conn.read(&mut buf)? {
                    0 => return Ok(got),
                    n => got += n as u64,
                }
            }
        });
        let sent = (|| -> Result<Duration> {
            let port = port_rx
                .recv_timeout(Duration::from_secs(10))
                .context("the listener in the NAS namespace did not start")?;
            let addr = SocketAddr::from((NAS_IP, port));
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            conn.set_write_timeout(Some(Duration::from_secs(60)))?;
            conn.set_read_timeout(Some(Duration::from_secs(60)))?;
            let buf = vec![0x5au8; MIB as usize];
            let t = Instant::now();
            for _ in 0..PROBE_BYTES / MIB {
                conn.write_all(&buf)?;
            }
            conn.shutdown(Shutdown::Write)?;
            // The listener closes once it has read everything.
            let _ = conn.read(&mut [0u8; 1])?;
            Ok(t.elapsed())
        })();
        let got = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the listener thread panicked"))?;
        let elapsed = sent.context("streaming to the NAS")?;
        let got = got.context("receiving in the NAS namespace")?;
        if got != PROBE_BYTES {
            bail!("the NAS received {got} bytes of {PROBE_BYTES}");
        }
        Ok(PROBE_BYTES as f64 * 8.0 / elapsed.as_secs_f64())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; gone already if the namespace ended first.
        let _ = cmd("ip", &["link", "del", &self.host]);
    }
}
