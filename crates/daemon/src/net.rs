//! CIDR networks for `allowed_networks`.

use std::net::IpAddr;
use std::str::FromStr;

use anyhow::{bail, Context};

/// An address prefix such as `10.0.0.0/8` or `fd00::/8`. An IPv4-mapped IPv6 client address
/// (`::ffff:a.b.c.d`) is matched as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn any_v4() -> Network {
        Network {
            addr: IpAddr::from([0, 0, 0, 0]),
            prefix: 0,
        }
    }

    pub fn any_v6() -> Network {
        Network {
            addr: IpAddr::from([0u16; 8]),
            prefix: 0,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n) as u128, 32, self.prefix)
                    == masked(u32::from(a) as u128, 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(v: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        v >> (bits - prefix)
    }
}

impl FromStr for Network {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Network> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().with_context(|| format!("network `{s}`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .with_context(|| format!("network `{s}`: bad prefix length"))?,
            None => max,
        };
        if let IpAddr::V6(v6) = addr {
            if v6.to_ipv4_mapped().is_some() {
                bail!("network `{s}`: write IPv4 networks as a.b.c.d/n");
            }
        }
        Ok(Network { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matching() {
        let n: Network = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("10.1.2.3")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("127.0.0.1")));
        assert!(!n.contains(ip("fd00::1")));
        let h: Network = "192.0.2.7".parse().unwrap();
        assert!(h.contains(ip("192.0.2.7")) && !h.contains(ip("192.0.2.8")));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Network::any_v4().contains(ip("1.2.3.4")));
        assert!(Network::any_v6().contains(ip("::1")));
        assert!("1.2.3.4/33".parse::<Network>().is_err());
        assert!("x/8".parse::<Network>().is_err());
    }
}
