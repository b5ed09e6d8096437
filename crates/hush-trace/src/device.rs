//! Which host is the device, and so which packets are outbound and which inbound.

use std::net::IpAddr;
use std::path::Path;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::error::{ErrorKind, Result, TraceError};
use crate::packet::{Direction, Endpoint, EndpointId, Mac};
use crate::trace::EndpointTable;
use crate::trace::Trace;

/// How to find the device in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Every endpoint with this MAC is the device.
    Mac(Mac),
    /// Every endpoint with this IP is the device.
    Ip(IpAddr),
    /// The local endpoint seen in the most packets (IoTFlowGenerator's rule), see
    /// [`infer_device`].
    Infer,
}

/// What [`set_direction`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// The device's MAC, when known.
    pub mac: Option<Mac>,
    /// IPs the device used in this trace.
    pub ips: Vec<IpAddr>,
    /// Packets sent by the device.
    pub outbound: u64,
    /// Packets received by the device.
    pub inbound: u64,
    /// Packets neither from nor to it.
    pub unknown: u64,
}

/// Mark every packet of `trace` outbound, inbound or unknown relative to the device.
///
/// Fails only when `Infer` finds no local endpoint at all (an empty trace, or one with neither
/// unicast MACs nor private IPs).
pub fn set_direction(trace: &mut Trace, device: &DeviceSpec) -> Result<DeviceInfo> {
    let is_device: Vec<bool> = match device {
        DeviceSpec::Mac(mac) => trace
            .endpoints
            .iter()
            .map(|e| e.mac == Some(*mac))
            .collect(),
        DeviceSpec::Ip(ip) => trace.endpoints.iter().map(|e| e.ip == Some(*ip)).collect(),
        DeviceSpec::Infer => {
            let Some(key) = infer_device(trace) else {
                return Err(TraceError::new(ErrorKind::Invalid(
                    "cannot infer the device: no unicast MAC or private IP in the trace; pass the device's MAC or IP"
                        .into(),
                ))
                .in_file(&trace.name));
            };
            trace.endpoints.iter().map(|e| key.matches(e)).collect()
        }
    };
    let mine = |id: EndpointId| is_device.get(id.0 as usize).copied().unwrap_or(false);
    let mut info = DeviceInfo::default();
    for p in &mut trace.packets {
        p.dir = match (mine(p.src), mine(p.dst)) {
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            // Both or neither: talking to itself (loopback) is not traffic that leaves the device.
            _ => Direction::Unknown,
        };
        match p.dir {
            Direction::Outbound => info.outbound += 1,
            Direction::Inbound => info.inbound += 1,
            Direction::Unknown => info.unknown += 1,
        }
    }
    for (e, _) in trace.endpoints.iter().zip(&is_device).filter(|(_, m)| **m) {
        if info.mac.is_none() {
            info.mac = e.mac;
        }
        if let Some(ip) = e.ip
            && !info.ips.contains(&ip)
        {
            info.ips.push(ip);
        }
    }
    info.ips.sort();
    Ok(info)
}

/// The key that identifies an inferred device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKey {
    /// A unicast MAC.
    Mac(Mac),
    /// A private, link-local or unique-local IP (for captures without link-layer addresses).
    Ip(IpAddr),
}

impl DeviceKey {
    /// Whether an endpoint belongs to this device.
    pub fn matches(&self, e: &Endpoint) -> bool {
        match self {
            DeviceKey::Mac(m) => e.mac == Some(*m),
            DeviceKey::Ip(ip) => e.ip == Some(*ip),
        }
    }
}

/// The local endpoint seen in the most packets, as source or destination.
///
/// Local means a unicast MAC when the capture has link-layer addresses (broadcast and multicast
/// MACs never count), else a private, link-local or unique-local unicast IP. A MAC that carries a
/// public IPv4 address is a router forwarding internet traffic, so it ranks below every MAC that
/// does not. In a single-device capture the result is the device: every packet is to or from it,
/// while the router and other hosts see only part of them. Ties go to the address seen first.
pub fn infer_device(trace: &Trace) -> Option<DeviceKey> {
    let has_macs = trace.endpoints.iter().any(|e| e.mac.is_some());
    let key_of = |id: EndpointId| local_key(trace.endpoint(id), has_macs);
    // key -> (packets, first packet index, carries a public IPv4 address)
    let mut counts: FxHashMap<DeviceKey, (u64, usize, bool)> = FxHashMap::default();
    for (i, p) in trace.packets.iter().enumerate() {
        let src = key_of(p.src);
        let dst = key_of(p.dst);
        for (key, id) in [(src, p.src), (dst, p.dst)] {
            let Some(key) = key else { continue };
            let entry = counts.entry(key).or_insert((0, i, false));
            // A packet to itself counts once.
            if !(id == p.dst && src == dst) {
                entry.0 += 1;
            }
            if let Some(IpAddr::V4(v4)) = trace.endpoint(id).ip {
                entry.2 |= is_public_v4(&v4);
            }
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| {
            let (pa, fa, ra) = a.1;
            let (pb, fb, rb) = b.1;
            rb.cmp(&ra).then(pa.cmp(&pb)).then(fb.cmp(&fa))
        })
        .map(|(k, _)| k)
}

/// Split a multi-device home capture into one trace per local device, each with directions set
/// relative to that device and its own endpoint table.
///
/// The local devices are the keys [`infer_device`] would consider (unicast MACs, or private IPs in
/// a capture without MACs) that never carry a public IPv4 address: a MAC that does is a router
/// forwarding internet traffic, not a device. Devices are returned busiest first; each trace
/// holds every packet sent or received by its device, so a packet between two local devices
/// appears in both traces (outbound in one, inbound in the other).
pub fn split_by_device(trace: &Trace) -> Vec<(DeviceKey, Trace)> {
    let has_macs = trace.endpoints.iter().any(|e| e.mac.is_some());
    let key_of = |e: &Endpoint| local_key(e, has_macs);
    let endpoint_key: Vec<Option<DeviceKey>> = trace.endpoints.iter().map(key_of).collect();
    let mut routers: Vec<DeviceKey> = Vec::new();
    for (e, key) in trace.endpoints.iter().zip(&endpoint_key) {
        if let (Some(key), Some(IpAddr::V4(v4))) = (key, e.ip)
            && is_public_v4(&v4)
            && !routers.contains(key)
        {
            routers.push(*key);
        }
    }
    let key = |id: EndpointId| {
        endpoint_key
            .get(id.0 as usize)
            .copied()
            .flatten()
            .filter(|k| !routers.contains(k))
    };
    // Packets per device, in time order.
    let mut members: FxHashMap<DeviceKey, Vec<usize>> = FxHashMap::default();
    for (i, p) in trace.packets.iter().enumerate() {
        let (s, d) = (key(p.src), key(p.dst));
        if let Some(s) = s {
            members.entry(s).or_default().push(i);
        }
        if let Some(d) = d
            && Some(d) != s
        {
            members.entry(d).or_default().push(i);
        }
    }
    let mut out: Vec<(DeviceKey, Trace)> = members
        .into_iter()
        .map(|(device, idx)| {
            let mut table = EndpointTable::default();
            let packets = idx
                .iter()
                .map(|&i| {
                    let mut p = trace.packets[i];
                    p.src = table.intern(*trace.endpoint(p.src));
                    p.dst = table.intern(*trace.endpoint(p.dst));
                    p
                })
                .collect();
            let name = match device {
                DeviceKey::Mac(m) => format!("{}#{m}", trace.name),
                DeviceKey::Ip(ip) => format!("{}#{ip}", trace.name),
            };
            let mut t = Trace {
                name,
                packets,
                endpoints: table.into_list(),
                report: trace.report.clone(),
            };
            for p in &mut t.packets {
                let (s, d) = (
                    device.matches(&t.endpoints[p.src.0 as usize]),
                    device.matches(&t.endpoints[p.dst.0 as usize]),
                );
                p.dir = match (s, d) {
                    (true, false) => Direction::Outbound,
                    (false, true) => Direction::Inbound,
                    _ => Direction::Unknown,
                };
            }
            (device, t)
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.packets
            .len()
            .cmp(&a.1.packets.len())
            .then_with(|| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)))
    });
    out
}

/// The device key an endpoint would have: its unicast MAC when the capture has MACs, else its
/// private, link-local or unique-local IP.
fn local_key(e: &Endpoint, has_macs: bool) -> Option<DeviceKey> {
    if has_macs {
        e.mac.filter(|m| !m.is_group()).map(DeviceKey::Mac)
    } else {
        e.ip.filter(is_local_unicast).map(DeviceKey::Ip)
    }
}

fn is_public_v4(v4: &std::net::Ipv4Addr) -> bool {
    !(v4.is_private()
        || v4.is_link_local()
        || v4.is_loopback()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast())
}

/// Private (RFC 1918), link-local, or IPv6 unique-local/link-local unicast.
pub fn is_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Read an IoT Sentinel `_iotdevice-mac.txt`: one MAC address, surrounding whitespace ignored.
pub fn read_device_mac_file(path: impl AsRef<Path>) -> Result<Mac> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::from(e).in_file(path))?;
    let token = text.split_whitespace().next().unwrap_or_default();
    token.parse().map_err(|e: crate::packet::ParseMacError| {
        TraceError::new(ErrorKind::Invalid(e.to_string()))
            .at_line(1)
            .in_file(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipv4;
    use crate::packet::Packet;

    fn trace_with(endpoints: Vec<Endpoint>, pairs: &[(u32, u32)]) -> Trace {
        Trace {
            name: "t".into(),
            packets: pairs
                .iter()
                .enumerate()
                .map(|(i, (s, d))| Packet {
                    t_ns: i as i64,
                    src: EndpointId(*s),
                    dst: EndpointId(*d),
                    ..Packet::default()
                })
                .collect(),
            endpoints,
            ..Trace::default()
        }
    }

    #[test]
    fn infers_the_busiest_unicast_mac() {
        let dev = Mac([0, 0x17, 0x88, 1, 2, 3]);
        let router = Mac([0, 1, 2, 3, 4, 5]);
        let eps = vec![
            Endpoint {
                mac: Some(dev),
                ip: Some(ipv4(192, 168, 1, 5)),
            },
            Endpoint {
                mac: Some(router),
                ip: Some(ipv4(8, 8, 8, 8)),
            },
            Endpoint {
                mac: Some(Mac::BROADCAST),
                ip: None,
            },
            Endpoint {
                mac: Some(router),
                ip: None,
            },
        ];
        // Device talks to the internet via the router and broadcasts; the router also ARPs.
        let mut t = trace_with(eps, &[(0, 1), (1, 0), (0, 2), (0, 2), (0, 2), (3, 2)]);
        assert_eq!(infer_device(&t), Some(DeviceKey::Mac(dev)));
        let info = set_direction(&mut t, &DeviceSpec::Infer).unwrap();
        assert_eq!((info.outbound, info.inbound, info.unknown), (4, 1, 1));
        assert_eq!(info.mac, Some(dev));
        assert_eq!(info.ips, vec![ipv4(192, 168, 1, 5)]);
    }

    #[test]
    fn two_hosts_tie_goes_to_the_one_without_a_public_ip() {
        let eps = vec![
            Endpoint {
                mac: Some(Mac([0, 1, 2, 3, 4, 5])),
                ip: Some(ipv4(205, 251, 203, 83)),
            },
            Endpoint {
                mac: Some(Mac([0x50, 0xc7, 0xbf, 1, 2, 3])),
                ip: Some(ipv4(192, 168, 1, 159)),
            },
        ];
        let t = trace_with(eps, &[(0, 1), (1, 0)]);
        assert_eq!(
            infer_device(&t),
            Some(DeviceKey::Mac(Mac([0x50, 0xc7, 0xbf, 1, 2, 3])))
        );
    }

    #[test]
    fn infers_a_private_ip_without_macs() {
        let eps = vec![
            Endpoint {
                mac: None,
                ip: Some(ipv4(10, 0, 0, 7)),
            },
            Endpoint {
                mac: None,
                ip: Some(ipv4(52, 1, 2, 3)),
            },
        ];
        let t = trace_with(eps, &[(0, 1), (1, 0), (1, 0)]);
        assert_eq!(infer_device(&t), Some(DeviceKey::Ip(ipv4(10, 0, 0, 7))));
    }

    #[test]
    fn home_capture_splits_into_devices_without_the_router() {
        let plug = Mac([0x50, 0xc7, 0xbf, 1, 2, 3]);
        let cam = Mac([0x00, 0x62, 0x6e, 4, 5, 6]);
        let router = Mac([0, 1, 2, 3, 4, 5]);
        let eps = vec![
            Endpoint {
                mac: Some(plug),
                ip: Some(ipv4(192, 168, 1, 10)),
            },
            Endpoint {
                mac: Some(router),
                ip: Some(ipv4(52, 1, 2, 3)),
            },
            Endpoint {
                mac: Some(cam),
                ip: Some(ipv4(192, 168, 1, 11)),
            },
            Endpoint {
                mac: Some(router),
                ip: Some(ipv4(34, 5, 6, 7)),
            },
            Endpoint {
                mac: Some(Mac::BROADCAST),
                ip: None,
            },
        ];
        // plug <-> internet, cam <-> internet (twice), plug -> cam, cam broadcasts.
        let t = trace_with(
            eps,
            &[(0, 1), (1, 0), (2, 3), (3, 2), (2, 3), (0, 2), (2, 4)],
        );
        let split = split_by_device(&t);
        let keys: Vec<DeviceKey> = split.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [DeviceKey::Mac(cam), DeviceKey::Mac(plug)]);
        let (_, cam_t) = &split[0];
        let dirs: Vec<Direction> = cam_t.packets.iter().map(|p| p.dir).collect();
        use Direction::{Inbound as I, Outbound as O};
        assert_eq!(dirs, [O, I, O, I, O]);
        let (_, plug_t) = &split[1];
        assert_eq!(plug_t.packets.len(), 3);
        assert_eq!(plug_t.packets[2].dir, O);
        assert!(plug_t.endpoints.len() <= 3);
    }

    #[test]
    fn empty_trace_cannot_infer() {
        let mut t = Trace::default();
        assert!(set_direction(&mut t, &DeviceSpec::Infer).is_err());
    }

    #[test]
    fn mac_file_parses_and_rejects() {
        let dir = std::env::temp_dir().join(format!("hush-device-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "  00:17:88:2b:9a:0c\n").unwrap();
        assert_eq!(
            read_device_mac_file(&good).unwrap().to_string(),
            "00:17:88:2b:9a:0c"
        );
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "hello").unwrap();
        let err = read_device_mac_file(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt") && err.contains("not a MAC"),
            "{err}"
        );
    }
}
