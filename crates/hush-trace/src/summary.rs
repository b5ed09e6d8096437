//! What `hush inspect` shows: per-trace, per-device and per-flow statistics.
//!
//! Everything here is computed in one pass over the packets plus a sort of the flow table, and
//! is serialisable so the CLI can print it as a table or as JSON.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::device::{DeviceKey, split_by_device};
use crate::packet::{Direction, EndpointId, Packet};
use crate::trace::{ReadReport, Trace};

/// Byte and packet counts in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Packets.
    pub packets: u64,
    /// Frame bytes.
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, p: &Packet) {
        self.packets += 1;
        self.bytes += u64::from(p.frame_len);
    }
}

/// One bidirectional flow: the same protocol between the same two (endpoint, port) pairs.
#[derive(Debug, Clone, Serialize)]
pub struct FlowSummary {
    /// Most specific protocol name (`TLS`, `DNS`, `UDP`, `ARP`, ...).
    pub protocol: String,
    /// The side that sent the flow's first packet.
    pub a: String,
    /// Port of `a` (0 when not TCP/UDP).
    pub a_port: u16,
    /// The other side.
    pub b: String,
    /// Port of `b`.
    pub b_port: u16,
    /// Packets and bytes from `a` to `b`.
    pub a_to_b: Counts,
    /// Packets and bytes from `b` to `a`.
    pub b_to_a: Counts,
    /// First packet, seconds since the trace start.
    pub start_s: f64,
    /// Last packet minus first packet, seconds.
    pub duration_s: f64,
}

/// Traffic of the trace's device (the packets whose direction is known).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    /// The device's addresses as hush identified them.
    pub device: String,
    /// Sent by the device.
    pub outbound: Counts,
    /// Received by the device.
    pub inbound: Counts,
    /// Packets neither from nor to the device (other hosts, broadcasts it did not send).
    pub unrelated: Counts,
    /// Remote endpoints the device talked to most, by bytes: (endpoint, packets, bytes).
    pub top_remotes: Vec<(String, u64, u64)>,
}

/// One local device of a (possibly multi-device) capture, from [`split_by_device`].
#[derive(Debug, Clone, Serialize)]
pub struct LocalDeviceSummary {
    /// The device's MAC (or IP, for captures without link-layer addresses).
    pub device: String,
    /// Sent by it.
    pub outbound: Counts,
    /// Received by it.
    pub inbound: Counts,
}

/// Per-protocol totals.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolSummary {
    /// Protocol flag name, as in [`crate::Proto`].
    pub protocol: String,
    /// Packets with that flag.
    pub packets: u64,
    /// Their frame bytes.
    pub bytes: u64,
}

/// Everything `hush inspect` reports about one trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceSummary {
    /// Trace name (file path).
    pub name: String,
    /// Packet count.
    pub packets: u64,
    /// Frame bytes.
    pub bytes: u64,
    /// First packet, ns since the epoch (None if empty).
    pub start_ns: Option<i64>,
    /// Last minus first packet time, seconds.
    pub duration_s: f64,
    /// Mean rate over the duration, bytes per second.
    pub mean_rate_bps: f64,
    /// Distinct endpoints.
    pub endpoints: usize,
    /// Distinct flows.
    pub flows: usize,
    /// The device's view, when directions are known.
    pub device: Option<DeviceSummary>,
    /// Every local device seen (a home capture holds several), busiest first.
    pub local_devices: Vec<LocalDeviceSummary>,
    /// Protocol flags by packet count, most common first.
    pub protocols: Vec<ProtocolSummary>,
    /// The largest flows by bytes.
    pub top_flows: Vec<FlowSummary>,
    /// Bytes per bin over the trace's duration, for a rate plot.
    pub rate_bins_bytes: Vec<u64>,
    /// Width of one rate bin, seconds.
    pub rate_bin_s: f64,
    /// Reading anomalies.
    pub report: ReadReport,
}

impl TraceSummary {
    /// Summarise `trace`, keeping the `top` largest flows and remote endpoints and `bins` rate bins.
    pub fn new(trace: &Trace, top: usize, bins: usize) -> Self {
        let packets = &trace.packets;
        let start = packets.first().map(|p| p.t_ns);
        let duration_ns = trace.duration_ns();
        let bytes = trace.total_bytes();
        let duration_s = duration_ns as f64 * 1e-9;

        let mut protocols: BTreeMap<&'static str, Counts> = BTreeMap::new();
        let mut flows: FxHashMap<FlowKey, FlowAcc> = FxHashMap::default();
        let mut outbound = Counts::default();
        let mut inbound = Counts::default();
        let mut unrelated = Counts::default();
        let mut remotes: FxHashMap<EndpointId, Counts> = FxHashMap::default();
        let bins = bins.max(1);
        let mut rate_bins_bytes = vec![0u64; bins];
        let bin_ns = (duration_ns / bins as i64).max(1) + 1;

        for p in packets {
            for name in p.proto.names() {
                protocols.entry(name).or_default().add(p);
            }
            let (key, forward) = FlowKey::of(p);
            let acc = flows.entry(key).or_insert_with(|| FlowAcc::new(p, forward));
            acc.add(p, forward);
            match p.dir {
                Direction::Outbound => {
                    outbound.add(p);
                    remotes.entry(p.dst).or_default().add(p);
                }
                Direction::Inbound => {
                    inbound.add(p);
                    remotes.entry(p.src).or_default().add(p);
                }
                Direction::Unknown => unrelated.add(p),
            }
            if let Some(t0) = start {
                let bin = (((p.t_ns - t0) / bin_ns) as usize).min(bins - 1);
                rate_bins_bytes[bin] += u64::from(p.frame_len);
            }
        }

        let mut protocols: Vec<ProtocolSummary> = protocols
            .into_iter()
            .map(|(name, c)| ProtocolSummary {
                protocol: name.to_string(),
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect();
        protocols.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then_with(|| a.protocol.cmp(&b.protocol))
        });

        let flow_count = flows.len();
        let mut flows: Vec<FlowAcc> = flows.into_values().collect();
        flows.sort_by(|a, b| {
            (b.a_to_b.bytes + b.b_to_a.bytes)
                .cmp(&(a.a_to_b.bytes + a.b_to_a.bytes))
                .then_with(|| a.first_ns.cmp(&b.first_ns))
        });
        let t0 = start.unwrap_or(0);
        let top_flows = flows
            .iter()
            .take(top)
            .map(|f| FlowSummary {
                protocol: f.protocol.to_string(),
                a: trace.endpoint(f.a).to_string(),
                a_port: f.a_port,
                b: trace.endpoint(f.b).to_string(),
                b_port: f.b_port,
                a_to_b: f.a_to_b,
                b_to_a: f.b_to_a,
                start_s: (f.first_ns - t0) as f64 * 1e-9,
                duration_s: (f.last_ns - f.first_ns) as f64 * 1e-9,
            })
            .collect();

        let device = (outbound.packets + inbound.packets > 0).then(|| {
            let mut top_remotes: Vec<(EndpointId, Counts)> = remotes.into_iter().collect();
            top_remotes.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then_with(|| a.0.cmp(&b.0)));
            DeviceSummary {
                device: device_name(trace),
                outbound,
                inbound,
                unrelated,
                top_remotes: top_remotes
                    .into_iter()
                    .take(top)
                    .map(|(id, c)| (trace.endpoint(id).to_string(), c.packets, c.bytes))
                    .collect(),
            }
        });

        let local_devices = split_by_device(trace)
            .into_iter()
            .map(|(key, t)| {
                let (mut outbound, mut inbound) = (Counts::default(), Counts::default());
                for p in &t.packets {
                    match p.dir {
                        Direction::Outbound => outbound.add(p),
                        Direction::Inbound => inbound.add(p),
                        Direction::Unknown => {}
                    }
                }
                let device = match key {
                    DeviceKey::Mac(m) => m.to_string(),
                    DeviceKey::Ip(ip) => ip.to_string(),
                };
                LocalDeviceSummary {
                    device,
                    outbound,
                    inbound,
                }
            })
            .collect();

        TraceSummary {
            local_devices,
            name: trace.name.clone(),
            packets: packets.len() as u64,
            bytes,
            start_ns: start,
            duration_s,
            mean_rate_bps: if duration_s > 0.0 {
                bytes as f64 / duration_s
            } else {
                0.0
            },
            endpoints: trace.endpoints.len(),
            flows: flow_count,
            device,
            protocols,
            top_flows,
            rate_bins_bytes,
            rate_bin_s: bin_ns as f64 * 1e-9,
            report: trace.report.clone(),
        }
    }

    /// The rate bins as a one-line sparkline of `▁▂▃▄▅▆▇█` (a space for an empty bin).
    pub fn sparkline(&self) -> String {
        sparkline(&self.rate_bins_bytes)
    }
}

/// Render values as a sparkline scaled to their maximum; zero is a space so silence stands out.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .map(|&v| {
            if v == 0 {
                ' '
            } else {
                BARS[((v * 8).div_ceil(max) as usize).saturating_sub(1).min(7)]
            }
        })
        .collect()
}

/// The device's endpoint(s): the sources of outbound packets, most frequent first.
fn device_name(trace: &Trace) -> String {
    let mut counts: FxHashMap<EndpointId, u64> = FxHashMap::default();
    for p in trace
        .packets
        .iter()
        .filter(|p| p.dir == Direction::Outbound)
    {
        *counts.entry(p.src).or_default() += 1;
    }
    let mut ids: Vec<(EndpointId, u64)> = counts.into_iter().collect();
    ids.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let names: Vec<String> = ids
        .iter()
        .take(3)
        .map(|(id, _)| trace.endpoint(*id).to_string())
        .collect();
    if names.is_empty() {
        "?".to_string()
    } else {
        names.join(", ")
    }
}

/// Flow identity: protocol kind plus both (endpoint, port) sides in a canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    ip_proto: u8,
    non_ip: bool,
    lo: (EndpointId, u16),
    hi: (EndpointId, u16),
}

impl FlowKey {
    /// The key and whether the packet goes lo → hi.
    fn of(p: &Packet) -> (Self, bool) {
        let s = (p.src, p.src_port);
        let d = (p.dst, p.dst_port);
        let forward = s <= d;
        let (lo, hi) = if forward { (s, d) } else { (d, s) };
        (
            FlowKey {
                ip_proto: p.ip_proto,
                non_ip: p.ip_len == 0,
                lo,
                hi,
            },
            forward,
        )
    }
}

struct FlowAcc {
    protocol: &'static str,
    /// `a` is whoever sent first.
    a: EndpointId,
    a_port: u16,
    b: EndpointId,
    b_port: u16,
    /// True when `a` is the key's `lo` side.
    a_is_lo: bool,
    a_to_b: Counts,
    b_to_a: Counts,
    first_ns: i64,
    last_ns: i64,
}

impl FlowAcc {
    fn new(p: &Packet, forward: bool) -> Self {
        FlowAcc {
            protocol: p.proto.top_name(),
            a: p.src,
            a_port: p.src_port,
            b: p.dst,
            b_port: p.dst_port,
            a_is_lo: forward,
            a_to_b: Counts::default(),
            b_to_a: Counts::default(),
            first_ns: p.t_ns,
            last_ns: p.t_ns,
        }
    }

    fn add(&mut self, p: &Packet, forward: bool) {
        if forward == self.a_is_lo {
            self.a_to_b.add(p);
        } else {
            self.b_to_a.add(p);
        }
        self.last_ns = p.t_ns;
        // A flow's later packets may reveal the application (a TLS record after the handshake's
        // SYN), so keep the most specific name seen.
        let name = p.proto.top_name();
        if rank(name) < rank(self.protocol) {
            self.protocol = name;
        }
    }
}

/// Lower is more specific, following [`crate::Proto::top_name`]'s order.
fn rank(name: &str) -> usize {
    const ORDER: [&str; 19] = [
        "TLS", "HTTP", "DHCP", "BOOTP", "SSDP", "mDNS", "DNS", "NTP", "EAPOL", "ICMPv6", "ICMP",
        "TCP", "UDP", "ARP", "IP-other", "IPv6", "IPv4", "LLC", "VLAN",
    ];
    ORDER.iter().position(|n| *n == name).unwrap_or(ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Endpoint, Proto};

    #[allow(clippy::too_many_arguments)] // one argument per field the tests vary
    fn pkt(
        t_ms: i64,
        src: u32,
        dst: u32,
        sport: u16,
        dport: u16,
        len: u32,
        dir: Direction,
        proto: Proto,
    ) -> Packet {
        Packet {
            t_ns: t_ms * 1_000_000,
            frame_len: len,
            ip_len: len - 14,
            src: EndpointId(src),
            dst: EndpointId(dst),
            src_port: sport,
            dst_port: dport,
            dir,
            proto,
            ip_proto: 6,
            ..Packet::default()
        }
    }

    #[test]
    fn flows_are_bidirectional_and_devices_count_directions() {
        let tcp = Proto::IPV4 | Proto::TCP;
        let tls = tcp | Proto::TLS;
        let trace = Trace {
            name: "t".into(),
            packets: vec![
                pkt(0, 0, 1, 5000, 443, 74, Direction::Outbound, tcp),
                pkt(10, 1, 0, 443, 5000, 74, Direction::Inbound, tcp),
                pkt(20, 0, 1, 5000, 443, 300, Direction::Outbound, tls),
                pkt(
                    30,
                    0,
                    2,
                    5001,
                    53,
                    80,
                    Direction::Outbound,
                    Proto::IPV4 | Proto::UDP | Proto::DNS,
                ),
                pkt(1000, 3, 4, 1, 2, 60, Direction::Unknown, tcp),
            ],
            endpoints: (0..5)
                .map(|i| Endpoint {
                    mac: None,
                    ip: Some(crate::decode::ipv4(10, 0, 0, i)),
                })
                .collect(),
            report: ReadReport::default(),
        };
        let s = TraceSummary::new(&trace, 10, 4);
        assert_eq!(s.flows, 3);
        let first = &s.top_flows[0];
        assert_eq!(
            (first.protocol.as_str(), first.a_port, first.b_port),
            ("TLS", 5000, 443)
        );
        assert_eq!(
            first.a_to_b,
            Counts {
                packets: 2,
                bytes: 374
            }
        );
        assert_eq!(
            first.b_to_a,
            Counts {
                packets: 1,
                bytes: 74
            }
        );
        let dev = s.device.clone().unwrap();
        assert_eq!(
            dev.outbound,
            Counts {
                packets: 3,
                bytes: 454
            }
        );
        assert_eq!(
            dev.inbound,
            Counts {
                packets: 1,
                bytes: 74
            }
        );
        assert_eq!(dev.unrelated.packets, 1);
        assert_eq!(dev.device, "10.0.0.0");
        assert_eq!(dev.top_remotes[0], ("10.0.0.1".to_string(), 3, 448));
        assert_eq!(s.rate_bins_bytes.iter().sum::<u64>(), s.bytes);
        assert_eq!(s.rate_bins_bytes[3], 60);
        assert_eq!(s.sparkline().chars().count(), 4);
    }

    #[test]
    fn sparkline_marks_silence() {
        assert_eq!(sparkline(&[0, 1, 8]), " ▁█");
        assert_eq!(sparkline(&[]), "");
    }
}
