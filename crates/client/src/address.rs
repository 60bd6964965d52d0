//! Where the NAS is: the datastore's `remoteIP` as disklib gives it, turned into socket
//! addresses within the caller's deadline.
//!
//! `remoteIP` is an address (`192.0.2.7`, `fd00::7`, `[fd00::7]`), a host name, or — for an
//! NFS 4.1 datastore mounted from several server addresses (`esxcli storage nfs41 add -H
//! a,b`) — a list of them separated by commas or white space. Every entry is kept, in order.
//!
//! Host names are looked up in `/etc/hosts`, then with DNS over UDP to the name servers of
//! `/etc/resolv.conf`, by this module rather than `getaddrinfo`: glibc's resolver cannot be
//! bounded by a deadline (a dead name server holds the caller for `timeout × attempts × servers`,
//! 30 s by default), and a plugin call must end within its session timeout.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, RCODE, TYPE};

const HOSTS: &str = "/etc/hosts";
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// What a name server answers in (EDNS-less UDP replies are at most 512 bytes; keep room).
const MAX_REPLY: usize = 4096;
/// Entries of a `remoteIP` list that are looked at.
const MAX_ENTRIES: usize = 16;
/// Addresses kept per name.
const MAX_ADDRESSES: usize = 16;

/// Why no address came out of `remoteIP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved(pub String);

/// The entries of a `remoteIP` value: one, or a list separated by commas or white space.
pub fn entries(remote_ip: &str) -> Vec<&str> {
    remote_ip
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(|e| e.trim_start_matches('[').trim_end_matches(']'))
        .filter(|e| !e.is_empty())
        .take(MAX_ENTRIES)
        .collect()
}

/// The socket addresses of every entry of `remote_ip` on `port`, in order, names looked up
/// before `deadline`. Entries that do not resolve are skipped; none resolving is an error
/// that names each.
pub fn resolve(
    remote_ip: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Unresolved> {
    let list = entries(remote_ip);
    if list.is_empty() {
        return Err(Unresolved(format!(
            "no NAS address in remoteIP {remote_ip:?}"
        )));
    }
    let mut out = Vec::new();
    let mut why = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        if let Ok(ip) = entry.parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, port));
            continue;
        }
        // A name: it may use what is left, less a share for the entries after it.
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / (list.len() - i) as u32;
        match lookup(entry, Instant::now() + share) {
            Ok(ips) => out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port))),
            Err(e) => why.push(format!("{entry}: {e}")),
        }
    }
    if out.is_empty() {
        Err(Unresolved(format!("resolving {}", why.join("; "))))
    } else {
        Ok(out)
    }
}

/// The addresses of host `name`: `/etc/hosts` first, then DNS, within `deadline`.
pub fn lookup(name: &str, deadline: Instant) -> Result<Vec<IpAddr>, String> {
    if !valid_name(name) {
        return Err("not an address or a host name".into());
    }
    let from_hosts = std::fs::read_to_string(HOSTS)
        .map(|t| hosts_lookup(&t, name))
        .unwrap_or_default();
    if !from_hosts.is_empty() {
        return Ok(from_hosts);
    }
    let conf = std::fs::read_to_string(RESOLV_CONF)
        .map(|t| ResolvConf::parse(&t))
        .unwrap_or_default();
    dns_lookup(&conf, name, deadline)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| l.len() <= 63)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// The addresses `/etc/hosts` (text `hosts`) gives `name`, case-insensitively.
pub fn hosts_lookup(hosts: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    let mut out = Vec::new();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if words.any(|w| w.eq_ignore_ascii_case(name)) && out.len() < MAX_ADDRESSES {
            out.push(ip);
        }
    }
    out
}

/// What the lookup uses of `/etc/resolv.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    /// Per query and server (`options timeout:`).
    pub timeout: Duration,
    pub attempts: usize,
    /// The name servers' port: 53 (tests use another).
    pub port: u16,
}

impl Default for ResolvConf {
    fn default() -> ResolvConf {
        // resolv.conf(5): no name server line means the local one.
        ResolvConf {
            nameservers: vec![IpAddr::from([127, 0, 0, 1])],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            port: 53,
        }
    }
}

impl ResolvConf {
    /// Parses resolv.conf(5): `nameserver` (at most 3), `search` / `domain` (the last one
    /// wins), `options ndots: timeout: attempts:`.
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) {
                        if c.nameservers.len() < 3 {
                            c.nameservers.push(ip);
                        }
                    }
                }
                Some("search") | Some("domain") => {
                    c.search = words
                        .take(6)
                        .map(|w| w.trim_end_matches('.').to_owned())
                        .collect();
                }
                Some("options") => {
                    for opt in words {
                        let (key, value) = opt.split_once(':').unwrap_or((opt, ""));
                        let Ok(n) = value.parse::<u64>() else {
                            continue;
                        };
                        match key {
                            "ndots" => c.ndots = n.min(15) as usize,
                            "timeout" => c.timeout = Duration::from_secs(n.clamp(1, 30)),
                            "attempts" => c.attempts = n.clamp(1, 5) as usize,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if c.nameservers.is_empty() {
            c.nameservers = ResolvConf::default().nameservers;
        }
        c
    }

    /// The names to try for `name`, in order (resolv.conf(5) on `ndots` and `search`).
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_owned()];
        }
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_owned()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_owned())).collect()
        }
    }
}

/// How one name fared with one server.
enum Answer {
    Found(Vec<IpAddr>),
    /// The name does not exist (NXDOMAIN) or has no address: try the next candidate.
    NoName,
}

/// Asks the configured name servers for every candidate of `name`, A and AAAA, each query
/// bounded by the server timeout and all of it by `deadline`.
fn dns_lookup(conf: &ResolvConf, name: &str, deadline: Instant) -> Result<Vec<IpAddr>, String> {
    let mut last = String::from("no name server answered");
    for candidate in conf.candidates(name) {
        let mut answered = false;
        'tries: for _ in 0..conf.attempts {
            for server in &conf.nameservers {
                let now = Instant::now();
                if now >= deadline {
                    return Err(format!("{last} before the session timeout"));
                }
                let until = deadline.min(now + conf.timeout);
                match query(SocketAddr::new(*server, conf.port), &candidate, until) {
                    Ok(Answer::Found(ips)) => return Ok(ips),
                    Ok(Answer::NoName) => {
                        answered = true;
                        last = format!("{candidate} has no address");
                        break 'tries;
                    }
                    Err(e) => last = format!("name server {server}: {e}"),
                }
            }
        }
        if !answered {
            // Servers that do not answer will not answer for the next candidate either.
            return Err(last);
        }
    }
    Err(last)
}

/// One A and one AAAA query for `name` to `server`, answered by `until`.
fn query(server: SocketAddr, name: &str, until: Instant) -> Result<Answer, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    // connect(): only datagrams from the server are received.
    sock.connect(server).map_err(|e| e.to_string())?;
    let mut pending = Vec::new();
    for qtype in [TYPE::A, TYPE::AAAA] {
        let id = u16::from_be_bytes(openvaai_proto::auth::random_bytes());
        sock.send(&encode_query(id, name, qtype)?)
            .map_err(|e| e.to_string())?;
        pending.push(id);
    }
    let mut found = Vec::new();
    let mut no_name = false;
    let mut buf = vec![0u8; MAX_REPLY];
    while !pending.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            break;
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e.to_string()),
        };
        let Ok(reply) = Packet::parse(&buf[..n]) else {
            continue;
        };
        let Some(at) = pending.iter().position(|&id| id == reply.id()) else {
            continue;
        };
        if !reply.has_flags(PacketFlag::RESPONSE) {
            continue;
        }
        pending.swap_remove(at);
        match reply.rcode() {
            RCODE::NoError => {}
            RCODE::NameError => {
                no_name = true;
                continue;
            }
            other => return Err(format!("answered {other:?}")),
        }
        for rr in &reply.answers {
            if found.len() >= MAX_ADDRESSES || rr.class != CLASS::IN {
                continue;
            }
            match &rr.rdata {
                RData::A(a) => found.push(IpAddr::from(std::net::Ipv4Addr::from(a.address))),
                RData::AAAA(a) => found.push(IpAddr::from(std::net::Ipv6Addr::from(a.address))),
                _ => {}
            }
        }
    }
    if !found.is_empty() {
        // IPv4 first, as ESXi's own NFS client prefers it.
        found.sort_by_key(|ip| ip.is_ipv6());
        return Ok(Answer::Found(found));
    }
    if pending.is_empty() || no_name {
        return Ok(Answer::NoName);
    }
    Err("no answer".into())
}

fn encode_query(id: u16, name: &str, qtype: TYPE) -> Result<Vec<u8>, String> {
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    let qname = Name::new(name).map_err(|e| format!("{name}: {e}"))?;
    packet.questions.push(Question::new(
        qname,
        QTYPE::TYPE(qtype),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet.build_bytes_vec().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_ip_lists() {
        assert_eq!(entries("192.0.2.7"), ["192.0.2.7"]);
        assert_eq!(entries("[fd00::7]"), ["fd00::7"]);
        assert_eq!(entries("192.0.2.7,192.0.2.8"), ["192.0.2.7", "192.0.2.8"]);
        assert_eq!(entries(" a , b;c  d "), ["a", "b", "c", "d"]);
        assert!(entries(" , ").is_empty());
        let many = vec!["192.0.2.1"; 40].join(",");
        assert_eq!(entries(&many).len(), MAX_ENTRIES);
    }

    #[test]
    fn addresses_need_no_lookup_and_keep_their_order() {
        let far = Instant::now() + Duration::from_secs(1);
        let got = resolve("192.0.2.8, [2001:db8::1],192.0.2.7", 7443, far).unwrap();
        let want: Vec<SocketAddr> = ["192.0.2.8:7443", "[2001:db8::1]:7443", "192.0.2.7:7443"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(resolve(",", 1, far)
            .unwrap_err()
            .0
            .contains("no NAS address"));
        let bad = resolve("exa mple\u{1}", 1, far).unwrap_err().0;
        assert!(bad.contains("not an address or a host name"), "{bad}");
    }

    #[test]
    fn hosts_file() {
        let hosts = "127.0.0.1 localhost\n# 192.0.2.1 nas\n192.0.2.9\tNAS nas.example # x\n\
                     2001:db8::9 nas\nbogus nas\n";
        let want: Vec<IpAddr> = vec!["192.0.2.9".parse().unwrap(), "2001:db8::9".parse().unwrap()];
        assert_eq!(hosts_lookup(hosts, "nas"), want);
        assert_eq!(hosts_lookup(hosts, "nas.example."), want[..1]);
        assert!(hosts_lookup(hosts, "other").is_empty());
    }

    #[test]
    fn resolv_conf_and_search_order() {
        let c = ResolvConf::parse(
            "# x\nnameserver 192.0.2.53\nnameserver bogus\nnameserver 2001:db8::53\n\
             nameserver 192.0.2.54\nnameserver 192.0.2.55\nsearch lab.example. example\n\
             options ndots:2 timeout:1 attempts:9 rotate\n",
        );
        assert_eq!(c.nameservers.len(), 3);
        assert_eq!(c.search, ["lab.example", "example"]);
        assert_eq!(
            (c.ndots, c.timeout, c.attempts),
            (2, Duration::from_secs(1), 5)
        );
        assert_eq!(
            c.candidates("nas"),
            ["nas.lab.example", "nas.example", "nas"]
        );
        assert_eq!(
            c.candidates("nas.lab.example"),
            [
                "nas.lab.example",
                "nas.lab.example.lab.example",
                "nas.lab.example.example"
            ]
        );
        assert_eq!(c.candidates("nas."), ["nas"]);
        assert_eq!(
            ResolvConf::parse("").nameservers,
            [IpAddr::from([127, 0, 0, 1])]
        );
    }

    /// A name server on a free loopback port (see `openvaai_testkit::dns`) and a
    /// configuration that asks it, with a 1 s timeout per query.
    fn name_server(answer: bool) -> (ResolvConf, std::thread::JoinHandle<usize>) {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = openvaai_testkit::dns::name_server(
            SocketAddr::from(([127, 0, 0, 1], port)),
            answer.then_some(std::net::Ipv4Addr::LOCALHOST),
            Duration::from_secs(3),
        );
        let conf = ResolvConf {
            nameservers: vec![IpAddr::from([127, 0, 0, 1])],
            port,
            timeout: Duration::from_secs(1),
            ..ResolvConf::default()
        };
        (conf, t)
    }

    #[test]
    fn a_name_server_that_answers() {
        let (conf, t) = name_server(true);
        let deadline = Instant::now() + Duration::from_secs(2);
        let got = dns_lookup(&conf, "nas.example", deadline).unwrap();
        assert_eq!(got, [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(t.join().unwrap(), 2, "one A and one AAAA query");
    }

    #[test]
    fn a_silent_name_server_is_bounded_by_the_deadline() {
        let (conf, t) = name_server(false);
        let start = Instant::now();
        // 2 attempts of a 1 s timeout would be 2 s; the deadline is sooner.
        let err = dns_lookup(&conf, "nas.example", start + Duration::from_millis(700)).unwrap_err();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(650),
            "gave up early: {took:?}"
        );
        assert!(took < Duration::from_millis(1200), "took {took:?}");
        assert!(err.contains("name server 127.0.0.1"), "{err}");
        assert!(t.join().unwrap() >= 2);
    }
}
