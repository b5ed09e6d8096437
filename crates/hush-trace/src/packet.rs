//! The one packet model every hush crate shares.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Which way a packet travelled, relative to the device a trace is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[repr(u8)]
pub enum Direction {
    /// Not yet known: no device has been chosen, or the packet neither comes from nor goes to it.
    #[default]
    Unknown = 0,
    /// Sent by the device.
    Outbound = 1,
    /// Received by the device.
    Inbound = 2,
}

impl Direction {
    /// The opposite direction (`Unknown` stays `Unknown`).
    pub fn reverse(self) -> Self {
        match self {
            Direction::Outbound => Direction::Inbound,
            Direction::Inbound => Direction::Outbound,
            Direction::Unknown => Direction::Unknown,
        }
    }

    /// Short name used in CSV files: `out`, `in` or `?`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "out",
            Direction::Inbound => "in",
            Direction::Unknown => "?",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

bitflags::bitflags! {
    /// Protocols seen in a packet: the 16 IoT Sentinel / IoTFlowGenerator features plus IPv6, TLS
    /// and the two IP-option features IoT Sentinel used.
    ///
    /// Application protocols are recognised by well-known port, and TLS/HTTP also by the first
    /// payload bytes, because a per-packet view has no flow state (a TLS continuation segment starts
    /// mid-record).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Proto: u32 {
        /// Address Resolution Protocol.
        const ARP = 1 << 0;
        /// 802.2 LLC frame (an 802.3 length field instead of an EtherType).
        const LLC = 1 << 1;
        /// IPv4.
        const IPV4 = 1 << 2;
        /// IPv6.
        const IPV6 = 1 << 3;
        /// ICMP (for IPv4).
        const ICMP = 1 << 4;
        /// ICMPv6.
        const ICMPV6 = 1 << 5;
        /// EAP over LAN (802.1X, WPA handshakes).
        const EAPOL = 1 << 6;
        /// TCP.
        const TCP = 1 << 7;
        /// UDP.
        const UDP = 1 << 8;
        /// TLS: a TLS record header in the payload, or TCP port 443/8443/8883 with payload.
        const TLS = 1 << 9;
        /// HTTP: a request line or status line in the payload, or TCP port 80/8080 with payload.
        const HTTP = 1 << 10;
        /// DHCP (UDP 67/68 with the DHCP magic cookie).
        const DHCP = 1 << 11;
        /// BOOTP (UDP 67/68).
        const BOOTP = 1 << 12;
        /// SSDP (UDP 1900).
        const SSDP = 1 << 13;
        /// DNS (port 53).
        const DNS = 1 << 14;
        /// Multicast DNS (UDP 5353).
        const MDNS = 1 << 15;
        /// NTP (UDP 123).
        const NTP = 1 << 16;
        /// IPv4 header carries options that include padding (end-of-list / no-op bytes).
        const IP_PADDING = 1 << 17;
        /// IPv4 router-alert option or IPv6 hop-by-hop router alert.
        const ROUTER_ALERT = 1 << 18;
        /// 802.1Q VLAN tag present.
        const VLAN = 1 << 19;
        /// ICMP/ICMPv6 or other IP protocol that is neither TCP nor UDP.
        const OTHER_IP = 1 << 20;
    }
}

impl Proto {
    /// Names of the set flags, lowercase, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.iter_names().map(|(name, _)| name)
    }

    /// The most specific protocol name for display (`tls` over `tcp` over `ipv4`).
    pub fn top_name(self) -> &'static str {
        const ORDER: [(Proto, &str); 19] = [
            (Proto::TLS, "TLS"),
            (Proto::HTTP, "HTTP"),
            (Proto::DHCP, "DHCP"),
            (Proto::BOOTP, "BOOTP"),
            (Proto::SSDP, "SSDP"),
            (Proto::MDNS, "mDNS"),
            (Proto::DNS, "DNS"),
            (Proto::NTP, "NTP"),
            (Proto::EAPOL, "EAPOL"),
            (Proto::ICMPV6, "ICMPv6"),
            (Proto::ICMP, "ICMP"),
            (Proto::TCP, "TCP"),
            (Proto::UDP, "UDP"),
            (Proto::ARP, "ARP"),
            (Proto::OTHER_IP, "IP-other"),
            (Proto::IPV6, "IPv6"),
            (Proto::IPV4, "IPv4"),
            (Proto::LLC, "LLC"),
            (Proto::VLAN, "VLAN"),
        ];
        ORDER
            .iter()
            .find(|(flag, _)| self.contains(*flag))
            .map_or("other", |(_, name)| name)
    }
}

/// Index of an [`Endpoint`] in its trace's endpoint table.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct EndpointId(pub u32);

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// True for broadcast and multicast (group bit set) addresses.
    pub fn is_group(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error for a string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address: {0:?} (expected six hex bytes like 00:17:88:2b:9a:0c)")]
pub struct ParseMacError(pub String);

impl std::str::FromStr for Mac {
    type Err = ParseMacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

/// A host as seen on the wire: its MAC (if the link layer has one) and IP (if the packet is IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    /// Link-layer address, when the capture's link type carries one.
    pub mac: Option<Mac>,
    /// Network-layer address, when the packet is IPv4 or IPv6.
    pub ip: Option<IpAddr>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.mac, self.ip) {
            (Some(m), Some(ip)) => write!(f, "{ip} ({m})"),
            (Some(m), None) => write!(f, "{m}"),
            (None, Some(ip)) => write!(f, "{ip}"),
            (None, None) => f.write_str("?"),
        }
    }
}

/// One packet, reduced to what traffic analysis needs: no payload bytes are kept.
///
/// 40 bytes in memory, so 10 M packets take 400 MB. Endpoints are indices into the owning
/// [`Trace`](crate::Trace)'s endpoint table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Packet {
    /// Capture time, nanoseconds since the Unix epoch (or since the start, for relative CSV input).
    pub t_ns: i64,
    /// Length of the frame on the wire (original length, not the possibly shorter captured length).
    pub frame_len: u32,
    /// IP total length (IPv4 total length, IPv6 payload length + 40); 0 for non-IP packets.
    pub ip_len: u32,
    /// Transport payload length (TCP segment data, UDP datagram data); 0 when there is none.
    pub payload_len: u32,
    /// Protocols present.
    pub proto: Proto,
    /// Source port (0 when not TCP/UDP).
    pub src_port: u16,
    /// Destination port (0 when not TCP/UDP).
    pub dst_port: u16,
    /// Sender.
    pub src: EndpointId,
    /// Receiver.
    pub dst: EndpointId,
    /// Direction relative to the trace's device.
    pub dir: Direction,
    /// IP protocol number (6 TCP, 17 UDP, ...); 0 for non-IP packets.
    pub ip_proto: u8,
}

impl Packet {
    /// The size used by most traffic-analysis features: the frame length.
    pub fn size_bytes(&self) -> u32 {
        self.frame_len
    }

    /// Time in seconds (lossy for display and features).
    pub fn t_s(&self) -> f64 {
        self.t_ns as f64 * 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_stays_compact() {
        assert!(
            std::mem::size_of::<Packet>() <= 40,
            "{}",
            std::mem::size_of::<Packet>()
        );
    }

    #[test]
    fn mac_round_trips() {
        let m: Mac = "00:17:88:2B:9A:0c".parse().unwrap();
        assert_eq!(m.to_string(), "00:17:88:2b:9a:0c");
        assert!("00:17:88:2b:9a".parse::<Mac>().is_err());
        assert!("00:17:88:2b:9a:0c:11".parse::<Mac>().is_err());
        assert!("zz:17:88:2b:9a:0c".parse::<Mac>().is_err());
        assert_eq!("00-17-88-2b-9a-0c".parse::<Mac>().unwrap(), m);
    }

    #[test]
    fn top_name_prefers_application() {
        assert_eq!((Proto::IPV4 | Proto::TCP | Proto::TLS).top_name(), "TLS");
        assert_eq!((Proto::IPV4 | Proto::UDP).top_name(), "UDP");
        assert_eq!(Proto::empty().top_name(), "other");
    }
}
