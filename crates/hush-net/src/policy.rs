//! Where a gateway may connect on a device's behalf.
//!
//! A gateway that connects anywhere it is asked is an open relay into its own network (SSRF): a
//! device, or anyone holding a device key, could reach the gateway's loopback services, its
//! LAN, or cloud metadata at `169.254.169.254`. So by default a gateway connects only to
//! public unicast addresses; loopback, link-local, private, shared (CGNAT), multicast,
//! broadcast, unspecified and documentation ranges are denied unless an allow rule names them.
//!
//! Rules are `CIDR`, `CIDR:PORT` or `CIDR:FIRST-LAST`, with IPv6 networks in brackets when a
//! port follows (`[fd00::/8]:8883`). Host names are resolved by the gateway and **every**
//! address is checked; the gateway connects only to addresses that passed, so a name that
//! resolves to `127.0.0.1` is denied like the address itself.
//!
//! ```toml
//! [gateway.targets]
//! public = true                                  # any public address, any port (default)
//! allow = ["192.168.1.20/32:1883", "10.0.0.0/8:8000-8999", "[fd00::/8]:443"]
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

/// One allow rule: a network and a port range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    /// The network.
    pub net: IpNet,
    /// First and last port allowed (inclusive); `0..=65535` when the rule names no port.
    pub ports: (u16, u16),
}

/// A rule that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "target rule {rule:?}: {why} (expected CIDR, CIDR:PORT or CIDR:FIRST-LAST, e.g. 10.0.0.0/8:8883 or [fd00::/8]:443)"
)]
pub struct RuleError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong.
    pub why: &'static str,
}

impl FromStr for AllowRule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| RuleError {
            rule: s.to_string(),
            why,
        };
        let s = s.trim();
        // "[v6/len]:ports", "v4/len:ports", or a bare network (v6 without brackets has colons).
        let (net, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (net, after) = rest.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            let ports = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err("expected ':' after ']'"))?,
                ),
            };
            (net, ports)
        } else if s.matches(':').count() == 1 {
            let (n, p) = s.split_once(':').ok_or_else(|| err("bad port"))?;
            (n, Some(p))
        } else {
            (s, None)
        };
        let net: IpNet = net
            .parse()
            .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| err("not a network"))?;
        let ports = match ports {
            None => (0, u16::MAX),
            Some(p) => {
                let (a, b) = p.split_once('-').unwrap_or((p, p));
                let a: u16 = a.trim().parse().map_err(|_| err("bad port"))?;
                let b: u16 = b.trim().parse().map_err(|_| err("bad port"))?;
                if a > b {
                    return Err(err("port range runs backwards"));
                }
                (a, b)
            }
        };
        Ok(AllowRule {
            net: net.trunc(),
            ports,
        })
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = match self.net {
            IpNet::V6(n) if self.ports != (0, u16::MAX) => format!("[{n}]"),
            n => n.to_string(),
        };
        match self.ports {
            (0, u16::MAX) => write!(f, "{net}"),
            (a, b) if a == b => write!(f, "{net}:{a}"),
            (a, b) => write!(f, "{net}:{a}-{b}"),
        }
    }
}

impl<'de> Deserialize<'de> for AllowRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The gateway's target policy (`[gateway.targets]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetPolicy {
    /// Allow public unicast addresses on any port (default true).
    pub public: bool,
    /// Addresses allowed besides (or, with `public = false`, instead of) public ones; the only
    /// way to reach a denied range.
    pub allow: Vec<AllowRule>,
}

impl Default for TargetPolicy {
    fn default() -> Self {
        TargetPolicy {
            public: true,
            allow: Vec::new(),
        }
    }
}

/// Why a target address was denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// A special range no allow rule names.
    Range(&'static str),
    /// A public address, and `public = false` with no rule naming it.
    NotListed,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Range(r) => write!(
                f,
                "{r} addresses are denied unless [gateway.targets] allow lists them"
            ),
            Denied::NotListed => f.write_str("not in [gateway.targets] allow (public = false)"),
        }
    }
}

impl TargetPolicy {
    /// Whether the gateway may connect to `addr`.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Denied> {
        let ip = canonical(addr.ip());
        if self
            .allow
            .iter()
            .any(|r| r.net.contains(&ip) && (r.ports.0..=r.ports.1).contains(&addr.port()))
        {
            return Ok(());
        }
        match special_range(ip) {
            Some(range) => Err(Denied::Range(range)),
            None if self.public => Ok(()),
            None => Err(Denied::NotListed),
        }
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:127.0.0.1`) is checked as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The special-purpose range an address is in, if any (the ones an operator would not expect a
/// gateway to reach for a device).
fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => v4_range(a),
        IpAddr::V6(a) => v6_range(a),
    }
}

fn v4_range(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(if a.is_unspecified() || o[0] == 0 {
        "unspecified (0.0.0.0/8)"
    } else if a.is_loopback() {
        "loopback"
    } else if a.is_link_local() {
        "link-local"
    } else if a.is_private() {
        "private"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (CGNAT 100.64.0.0/10)"
    } else if a.is_multicast() {
        "multicast"
    } else if a.is_broadcast() || o[0] >= 240 {
        "reserved"
    } else if a.is_documentation()
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        "special-purpose"
    } else {
        return None;
    })
}

fn v6_range(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    Some(if a.is_unspecified() {
        "unspecified"
    } else if a.is_loopback() {
        "loopback"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "private (unique local fc00::/7)"
    } else if a.is_multicast() {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[0] == 0x0064 && s[1] == 0xff9b {
        // NAT64 embeds an IPv4 address: judge that one.
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return v4_range(v4);
    } else if s[..6] == [0; 6] {
        "IPv4-compatible (deprecated)"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn special_ranges_are_denied_by_default_and_public_ones_allowed() {
        let p = TargetPolicy::default();
        for denied in [
            "127.0.0.1:80",
            "127.1.2.3:22",
            "10.1.2.3:443",
            "172.16.0.1:443",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "100.64.0.1:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "0.0.0.0:80",
            "[::1]:80",
            "[::]:80",
            "[fe80::1]:80",
            "[fd12::1]:80",
            "[ff02::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:10.0.0.1]:80",
            "[64:ff9b::7f00:1]:80",
        ] {
            assert!(p.check(sa(denied)).is_err(), "{denied} should be denied");
        }
        for allowed in ["93.184.216.34:443", "[2606:4700::1111]:443", "8.8.8.8:53"] {
            assert_eq!(p.check(sa(allowed)), Ok(()), "{allowed}");
        }
        assert_eq!(p.check(sa("127.0.0.1:80")), Err(Denied::Range("loopback")));
    }

    #[test]
    fn allow_rules_open_exactly_their_networks_and_ports() {
        let p = TargetPolicy {
            public: false,
            allow: vec![
                "127.0.0.1/32:8000-8999".parse().unwrap(),
                "[fd00::/8]:443".parse().unwrap(),
                "93.184.216.0/24".parse().unwrap(),
            ],
        };
        assert_eq!(p.check(sa("127.0.0.1:8883")), Ok(()));
        assert!(p.check(sa("127.0.0.1:22")).is_err());
        assert!(p.check(sa("127.0.0.2:8883")).is_err());
        assert_eq!(p.check(sa("[::ffff:127.0.0.1]:8080")), Ok(()));
        assert_eq!(p.check(sa("[fd00::5]:443")), Ok(()));
        assert!(p.check(sa("[fd00::5]:80")).is_err());
        assert_eq!(p.check(sa("93.184.216.34:1")), Ok(()));
        assert_eq!(p.check(sa("8.8.8.8:53")), Err(Denied::NotListed));
    }

    #[test]
    fn rules_parse_print_and_refuse_garbage() {
        for (text, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3/8:80", "10.0.0.0/8:80"),
            ("192.168.1.5", "192.168.1.5/32"),
            ("[fd00::/8]:1-2", "[fd00::/8]:1-2"),
            ("fd00::/8", "fd00::/8"),
        ] {
            let r: AllowRule = text.parse().unwrap();
            let again: AllowRule = r.to_string().parse().unwrap();
            assert_eq!(again, r, "{text}");
            assert_eq!(r.to_string(), shown);
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "host:80",
            "10.0.0.0/8:http",
            "10.0.0.0/8:9-1",
            "[fd00::/8",
            "[fd00::/8]80",
        ] {
            let e = bad.parse::<AllowRule>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let p: TargetPolicy = toml::from_str("allow = [\"127.0.0.1/32:7\"]").unwrap();
        assert!(p.public);
        assert!(toml::from_str::<TargetPolicy>("allow = [\"nope\"]").is_err());
        assert!(toml::from_str::<TargetPolicy>("pubic = true").is_err());
    }
}
