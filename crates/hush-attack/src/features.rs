//! Feature sets: what each attack sees of a trace.

use std::collections::HashSet;

use hush_trace::{Direction, Packet, Proto, Trace};

/// IoT Sentinel's 23 per-packet features (Miettinen et al., ICDCS 2017), in the order of the
/// faithful reimplementation by Aluthge (University of Helsinki): 18 binary protocol and option
/// flags, the frame size, whether the packet carries payload, a running count of distinct
/// destination IPs, and the classes of both ports.
pub const SENTINEL_PACKET_FEATURES: [&str; 23] = [
    "arp",
    "llc",
    "ip",
    "icmp",
    "icmpv6",
    "eapol",
    "tcp",
    "udp",
    "http",
    "https",
    "dhcp",
    "bootp",
    "ssdp",
    "dns",
    "mdns",
    "ntp",
    "ip_padding",
    "router_alert",
    "size",
    "raw_data",
    "dst_ip_counter",
    "src_port_class",
    "dst_port_class",
];

/// Packets in a fingerprint.
pub const SENTINEL_PACKETS: usize = 12;

fn port_class(port: u16, has_ports: bool) -> f32 {
    match (has_ports, port) {
        (false, _) => 0.0,
        (true, 0..=1023) => 1.0,
        (true, 1024..=49151) => 2.0,
        (true, _) => 3.0,
    }
}

/// The 23 features of every packet the device sent (IoT Sentinel fingerprints setup traffic
/// "emitted by the device").
pub fn sentinel_packet_vectors(trace: &Trace) -> Vec<[f32; 23]> {
    let mut seen_ips = HashSet::new();
    let mut out = Vec::new();
    for p in trace
        .packets
        .iter()
        .filter(|p| p.dir == Direction::Outbound)
    {
        let f = |flag: Proto| f32::from(u8::from(p.proto.contains(flag)));
        let has_ports = p.proto.intersects(Proto::TCP | Proto::UDP);
        let counter = match trace.endpoint(p.dst).ip {
            Some(ip) if p.proto.intersects(Proto::IPV4 | Proto::IPV6) => {
                seen_ips.insert(ip);
                seen_ips.len() as f32
            }
            _ => 0.0,
        };
        let https = f32::from(u8::from(
            p.proto.contains(Proto::TLS) || (has_ports && (p.src_port == 443 || p.dst_port == 443)),
        ));
        out.push([
            f(Proto::ARP),
            f(Proto::LLC),
            f(Proto::IPV4),
            f(Proto::ICMP),
            f(Proto::ICMPV6),
            f(Proto::EAPOL),
            f(Proto::TCP),
            f(Proto::UDP),
            f(Proto::HTTP),
            https,
            f(Proto::DHCP),
            f(Proto::BOOTP),
            f(Proto::SSDP),
            f(Proto::DNS),
            f(Proto::MDNS),
            f(Proto::NTP),
            f(Proto::IP_PADDING),
            f(Proto::ROUTER_ALERT),
            p.frame_len as f32,
            f32::from(u8::from(p.payload_len > 0)),
            counter,
            port_class(p.src_port, has_ports),
            port_class(p.dst_port, has_ports),
        ]);
    }
    out
}

/// IoT Sentinel's fingerprint: the first 12 distinct packet vectors (consecutive repeats
/// dropped, then only vectors not seen before), concatenated into 276 values, zero-padded.
pub fn sentinel_fingerprint(trace: &Trace) -> Vec<f32> {
    let mut chosen: Vec<[f32; 23]> = Vec::with_capacity(SENTINEL_PACKETS);
    let mut prev: Option<[f32; 23]> = None;
    for v in sentinel_packet_vectors(trace) {
        if prev == Some(v) {
            continue;
        }
        prev = Some(v);
        if !chosen.contains(&v) {
            chosen.push(v);
            if chosen.len() == SENTINEL_PACKETS {
                break;
            }
        }
    }
    let mut out = vec![0f32; SENTINEL_PACKETS * 23];
    for (i, v) in chosen.iter().enumerate() {
        out[i * 23..(i + 1) * 23].copy_from_slice(v);
    }
    out
}

/// Names of the fingerprint's 276 values (`p03_dns`).
pub fn sentinel_feature_names() -> Vec<String> {
    (0..SENTINEL_PACKETS)
        .flat_map(|i| {
            SENTINEL_PACKET_FEATURES
                .iter()
                .map(move |f| format!("p{i:02}_{f}"))
        })
        .collect()
}

/// iPET's aggregate attacker features (M_agg): per direction × transport (TCP, UDP), packets
/// with payload, mean/min/max payload length and the time from the first to the last of them.
pub const AGG_FEATURES: [&str; 5] = ["count", "len_mean", "len_min", "len_max", "duration_s"];

/// M_agg's window, seconds.
pub const AGG_WINDOW_S: f64 = 900.0;

/// Names of the 20 M_agg features, in iPET's column order (in_tcp, out_tcp, in_udp, out_udp).
pub fn agg_feature_names() -> Vec<String> {
    let mut out = Vec::new();
    for (t, d) in [("tcp", "in"), ("tcp", "out"), ("udp", "in"), ("udp", "out")] {
        for f in AGG_FEATURES {
            out.push(format!("{d}_{t}_{f}"));
        }
    }
    out
}

/// M_agg rows: one per 15-minute window (from the trace's first packet) that has any TCP/UDP
/// packet with payload.
pub fn agg_windows(trace: &Trace) -> Vec<Vec<f32>> {
    let Some(t0) = trace.packets.first().map(|p| p.t_ns) else {
        return Vec::new();
    };
    let win_ns = (AGG_WINDOW_S * 1e9) as i64;
    let mut out = Vec::new();
    let mut start = 0;
    let pkts = &trace.packets;
    while start < pkts.len() {
        let w = (pkts[start].t_ns - t0) / win_ns;
        let mut end = start;
        while end < pkts.len() && (pkts[end].t_ns - t0) / win_ns == w {
            end += 1;
        }
        let mut row = Vec::with_capacity(20);
        let mut any = false;
        for (proto, dir) in [
            (Proto::TCP, Direction::Inbound),
            (Proto::TCP, Direction::Outbound),
            (Proto::UDP, Direction::Inbound),
            (Proto::UDP, Direction::Outbound),
        ] {
            let sel: Vec<&Packet> = pkts[start..end]
                .iter()
                .filter(|p| p.dir == dir && p.proto.contains(proto) && p.payload_len > 0)
                .collect();
            if sel.is_empty() {
                row.extend([0.0; 5]);
                continue;
            }
            any = true;
            let lens: Vec<f32> = sel.iter().map(|p| p.payload_len as f32).collect();
            let mean = lens.iter().sum::<f32>() / lens.len() as f32;
            let min = lens.iter().copied().fold(f32::INFINITY, f32::min);
            let max = lens.iter().copied().fold(0.0, f32::max);
            let dur = (sel[sel.len() - 1].t_ns - sel[0].t_ns) as f32 * 1e-9;
            row.extend([sel.len() as f32, mean, min, max, dur]);
        }
        if any {
            out.push(row);
        }
        start = end;
    }
    out
}

/// Flow statistics of a window of packets (k-FP / CUMUL style): counts, sizes, timing, bursts,
/// the first and last packets' directions, a cumulative-size curve and protocol shares.
pub fn flow_stats(packets: &[Packet]) -> Vec<f32> {
    let mut out = Vec::with_capacity(FLOW_FEATURES);
    let dirs = [Direction::Outbound, Direction::Inbound];
    let mine: Vec<&Packet> = packets
        .iter()
        .filter(|p| p.dir != Direction::Unknown)
        .collect();
    let n = mine.len() as f32;
    // Counts and bytes.
    for d in dirs {
        let sel: Vec<f32> = mine
            .iter()
            .filter(|p| p.dir == d)
            .map(|p| p.frame_len as f32)
            .collect();
        out.push(sel.len() as f32);
        out.push(sel.iter().sum());
        out.extend(summary(&sel));
    }
    out.push(if n > 0.0 {
        mine.iter().filter(|p| p.dir == Direction::Outbound).count() as f32 / n
    } else {
        0.0
    });
    // Timing: inter-arrival times per direction and overall, and the duration.
    let gaps = |sel: &[&&Packet]| -> Vec<f32> {
        sel.windows(2)
            .map(|w| (w[1].t_ns - w[0].t_ns) as f32 * 1e-9)
            .collect()
    };
    for d in dirs {
        let sel: Vec<&&Packet> = mine.iter().filter(|p| p.dir == d).collect();
        out.extend(summary(&gaps(&sel)));
    }
    let all: Vec<&&Packet> = mine.iter().collect();
    out.extend(summary(&gaps(&all)));
    out.push(match (mine.first(), mine.last()) {
        (Some(a), Some(b)) => (b.t_ns - a.t_ns) as f32 * 1e-9,
        _ => 0.0,
    });
    // Bursts: runs of packets in one direction.
    let mut bursts: [Vec<(f32, f32)>; 2] = [Vec::new(), Vec::new()];
    let mut k = 0;
    while k < mine.len() {
        let d = mine[k].dir;
        let (mut len, mut bytes) = (0f32, 0f32);
        while k < mine.len() && mine[k].dir == d {
            len += 1.0;
            bytes += mine[k].frame_len as f32;
            k += 1;
        }
        bursts[usize::from(d == Direction::Inbound)].push((len, bytes));
    }
    for b in &bursts {
        out.push(b.len() as f32);
        let lens: Vec<f32> = b.iter().map(|x| x.0).collect();
        let bytes: Vec<f32> = b.iter().map(|x| x.1).collect();
        out.push(mean(&lens));
        out.push(lens.iter().copied().fold(0.0, f32::max));
        out.push(mean(&bytes));
        out.push(bytes.iter().copied().fold(0.0, f32::max));
    }
    // Direction of the first and last 30 packets.
    for part in [
        &mine[..mine.len().min(30)],
        &mine[mine.len().saturating_sub(30)..],
    ] {
        out.push(part.iter().filter(|p| p.dir == Direction::Outbound).count() as f32);
        out.push(part.iter().filter(|p| p.dir == Direction::Inbound).count() as f32);
    }
    // CUMUL: the cumulative signed size (outbound positive) at 20 evenly spaced fractions of
    // the total bytes.
    let mut cum = Vec::with_capacity(mine.len());
    let mut tot = Vec::with_capacity(mine.len());
    let (mut c, mut t) = (0f32, 0f32);
    for p in &mine {
        let s = p.frame_len as f32;
        c += if p.dir == Direction::Outbound { s } else { -s };
        t += s;
        cum.push(c);
        tot.push(t);
    }
    for i in 1..=CUMUL_POINTS {
        let at = t * i as f32 / CUMUL_POINTS as f32;
        let j = tot
            .partition_point(|&x| x < at)
            .min(cum.len().saturating_sub(1));
        out.push(cum.get(j).copied().unwrap_or(0.0));
    }
    // Protocol shares, and how varied sizes and peers are.
    for flag in PROTO_FLAGS {
        out.push(if n > 0.0 {
            mine.iter().filter(|p| p.proto.contains(flag)).count() as f32 / n
        } else {
            0.0
        });
    }
    let sizes: HashSet<u32> = mine.iter().map(|p| p.frame_len).collect();
    out.push(sizes.len() as f32);
    let peers: HashSet<u32> = mine
        .iter()
        .map(|p| {
            if p.dir == Direction::Outbound {
                p.dst.0
            } else {
                p.src.0
            }
        })
        .collect();
    out.push(peers.len() as f32);
    let ports: HashSet<u16> = mine
        .iter()
        .filter(|p| p.proto.intersects(Proto::TCP | Proto::UDP))
        .map(|p| {
            if p.dir == Direction::Outbound {
                p.dst_port
            } else {
                p.src_port
            }
        })
        .collect();
    out.push(ports.len() as f32);
    debug_assert_eq!(out.len(), FLOW_FEATURES);
    out
}

const CUMUL_POINTS: usize = 20;
const PROTO_FLAGS: [Proto; 16] = [
    Proto::ARP,
    Proto::LLC,
    Proto::IPV4,
    Proto::IPV6,
    Proto::ICMP,
    Proto::ICMPV6,
    Proto::EAPOL,
    Proto::TCP,
    Proto::UDP,
    Proto::TLS,
    Proto::HTTP,
    Proto::DHCP,
    Proto::SSDP,
    Proto::DNS,
    Proto::MDNS,
    Proto::NTP,
];

/// Values in a flow-statistics row.
pub const FLOW_FEATURES: usize = 2 * (2 + 7) + 1 + 3 * 7 + 1 + 2 * 5 + 4 + CUMUL_POINTS + 16 + 3;

/// Names of the flow-statistics features.
pub fn flow_feature_names() -> Vec<String> {
    let stats = ["mean", "std", "min", "max", "p25", "p50", "p75"];
    let mut out = Vec::new();
    for d in ["out", "in"] {
        out.push(format!("{d}_packets"));
        out.push(format!("{d}_bytes"));
        out.extend(stats.iter().map(|s| format!("{d}_size_{s}")));
    }
    out.push("out_fraction".into());
    for d in ["out", "in", "all"] {
        out.extend(stats.iter().map(|s| format!("{d}_gap_{s}")));
    }
    out.push("duration_s".into());
    for d in ["out", "in"] {
        for f in [
            "bursts",
            "burst_len_mean",
            "burst_len_max",
            "burst_bytes_mean",
            "burst_bytes_max",
        ] {
            out.push(format!("{d}_{f}"));
        }
    }
    for part in ["first30", "last30"] {
        out.push(format!("{part}_out"));
        out.push(format!("{part}_in"));
    }
    out.extend((1..=CUMUL_POINTS).map(|i| format!("cumul_{i:02}")));
    for f in PROTO_FLAGS {
        out.push(format!(
            "share_{}",
            f.names().next().unwrap_or("proto").to_ascii_lowercase()
        ));
    }
    out.extend(["distinct_sizes", "distinct_peers", "distinct_ports"].map(String::from));
    out
}

fn mean(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f32>() / v.len() as f32
    }
}

/// mean, std, min, max, p25, p50, p75 (zeros for an empty list).
fn summary(v: &[f32]) -> [f32; 7] {
    if v.is_empty() {
        return [0.0; 7];
    }
    let m = mean(v);
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32;
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let q = |p: f32| s[((s.len() - 1) as f32 * p).round() as usize];
    [
        m,
        var.sqrt(),
        s[0],
        s[s.len() - 1],
        q(0.25),
        q(0.5),
        q(0.75),
    ]
}

/// iPET's sequence attacker's input (M_seq): 4 s windows of 40 slots of 100 ms, each slot
/// `[in_count, in_bytes, out_count, out_bytes]` (frame bytes), and the silence before the window
/// in seconds; windows without packets are left out. Returns (160 values, silence) per window.
pub fn seq_windows(trace: &Trace) -> Vec<(Vec<f32>, f32)> {
    let mine: Vec<Packet> = trace
        .packets
        .iter()
        .filter(|p| p.dir != Direction::Unknown)
        .copied()
        .collect();
    let w = hush_trace::window::slot_windows(
        &mine,
        &hush_trace::window::SlotConfig {
            skip_empty: true,
            ..hush_trace::window::SlotConfig::default()
        },
    );
    let per = w.slots * 4;
    w.values
        .chunks(per.max(1))
        .zip(&w.silence_before_s)
        .map(|(v, &s)| (v.to_vec(), s))
        .collect()
}

/// Packets per window of the packet-metadata adversary (IoTFlowGenerator's L).
pub const PACKET_WINDOW: usize = 20;

/// Well-known ports that get their own indicator in a packet-metadata step.
const PORT_BUCKETS: [u16; 7] = [53, 80, 123, 443, 1900, 5353, 8883];

/// Values per packet in a packet-metadata step.
pub const PACKET_FEATURES: usize = 2 + 16 + 2 * (PORT_BUCKETS.len() + 1 + 4) + 1;

fn port_bits(port: u16, has_ports: bool, out: &mut Vec<f32>) {
    for b in PORT_BUCKETS {
        out.push(f32::from(u8::from(has_ports && port == b)));
    }
    out.push(f32::from(u8::from(
        has_ports && !PORT_BUCKETS.contains(&port),
    )));
    let class = port_class(port, has_ports) as usize;
    for c in 0..4 {
        out.push(f32::from(u8::from(c == class)));
    }
}

/// Names of the values of one packet-metadata step, in order.
pub fn packet_step_names() -> Vec<String> {
    let mut out = vec!["frame_len".to_string(), "outbound".to_string()];
    for f in PROTO_FLAGS {
        out.push(format!(
            "is_{}",
            f.names().next().unwrap_or("proto").to_ascii_lowercase()
        ));
    }
    for side in ["src", "dst"] {
        out.extend(PORT_BUCKETS.iter().map(|b| format!("{side}_port_{b}")));
        out.push(format!("{side}_port_other"));
        for c in [
            "class_none",
            "class_well_known",
            "class_registered",
            "class_dynamic",
        ] {
            out.push(format!("{side}_port_{c}"));
        }
    }
    out.push("log1p_gap_s".into());
    out
}

/// Names of a packet-metadata window's values: `p00_frame_len`, ... (packet, then step value).
pub fn packet_feature_names() -> Vec<String> {
    let step = packet_step_names();
    (0..PACKET_WINDOW)
        .flat_map(|k| step.iter().map(move |n| format!("p{k:02}_{n}")))
        .collect()
}

/// Names of an M_seq row: `slot00_in_count`, ... (slot, then value), then `silence_before_s`.
pub fn seq_feature_names() -> Vec<String> {
    let slots = hush_trace::window::SlotConfig::default().slots;
    let mut out: Vec<String> = (0..slots)
        .flat_map(|t| {
            ["in_count", "in_bytes", "out_count", "out_bytes"].map(|v| format!("slot{t:02}_{v}"))
        })
        .collect();
    out.push("silence_before_s".into());
    out
}

/// IoTFlowGenerator's packet-metadata view: non-overlapping windows of 20 packets (a last,
/// shorter window is left out, as in the original), each packet its frame length, direction,
/// the 16 protocol flags, both ports (indicators of well-known ports and the port class, in
/// place of the original's learned port embeddings) and log(1 + inter-arrival seconds).
pub fn packet_windows(trace: &Trace) -> Vec<Vec<f32>> {
    packet_windows_kept(trace, None).0
}

/// [`packet_windows`] with at most `max_rows` windows, spread evenly over the trace (the
/// windows [`kept_indices`] picks), and the number of windows there were. Only the kept windows
/// are built: a trace of millions of packets under heavy cover costs its kept rows, not 43
/// values per packet.
pub fn packet_windows_kept(trace: &Trace, max_rows: Option<usize>) -> (Vec<Vec<f32>>, usize) {
    let mine: Vec<&Packet> = trace
        .packets
        .iter()
        .filter(|p| p.dir != Direction::Unknown)
        .collect();
    let total = mine.len() / PACKET_WINDOW;
    let rows = kept_indices(total, max_rows)
        .map(|w| {
            let mut row = Vec::with_capacity(PACKET_WINDOW * PACKET_FEATURES);
            for k in w * PACKET_WINDOW..(w + 1) * PACKET_WINDOW {
                packet_step(&mine, k, &mut row);
            }
            row
        })
        .collect();
    (rows, total)
}

/// The indices of the rows kept when at most `max_rows` of `total` are: all of them, or
/// `max_rows` spread evenly (the middle of each of `max_rows` equal shares).
pub fn kept_indices(total: usize, max_rows: Option<usize>) -> impl Iterator<Item = usize> {
    let keep = max_rows.map_or(total, |cap| cap.min(total));
    (0..keep).map(move |k| {
        if keep == total {
            k
        } else {
            (2 * k + 1) * total / (2 * keep)
        }
    })
}

/// Appends the values of packet `k`'s step (its gap measured from packet `k - 1`).
fn packet_step(mine: &[&Packet], k: usize, v: &mut Vec<f32>) {
    let p = mine[k];
    let start = v.len();
    v.push(p.frame_len as f32);
    v.push(f32::from(u8::from(p.dir == Direction::Outbound)));
    for flag in PROTO_FLAGS {
        v.push(f32::from(u8::from(p.proto.contains(flag))));
    }
    let has_ports = p.proto.intersects(Proto::TCP | Proto::UDP);
    port_bits(p.src_port, has_ports, v);
    port_bits(p.dst_port, has_ports, v);
    let gap = if k == 0 {
        0.0
    } else {
        (p.t_ns - mine[k - 1].t_ns).max(0) as f32 * 1e-9
    };
    v.push(gap.ln_1p());
    debug_assert_eq!(v.len() - start, PACKET_FEATURES);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_lengths() {
        assert_eq!(flow_feature_names().len(), FLOW_FEATURES);
        assert_eq!(flow_stats(&[]).len(), FLOW_FEATURES);
        assert_eq!(sentinel_feature_names().len(), 276);
        assert_eq!(agg_feature_names().len(), 20);
        assert_eq!(packet_step_names().len(), PACKET_FEATURES);
        assert_eq!(
            packet_feature_names().len(),
            PACKET_WINDOW * PACKET_FEATURES
        );
        assert_eq!(seq_feature_names().len(), 161);
    }

    #[test]
    fn sequence_views_have_their_shapes() {
        use hush_trace::{EndpointId, Packet};
        let mk = |t_ms: i64, dir: Direction, len: u32| Packet {
            t_ns: t_ms * 1_000_000,
            frame_len: len,
            ip_len: len.saturating_sub(14),
            payload_len: len.saturating_sub(54),
            proto: Proto::IPV4 | Proto::TCP | Proto::TLS,
            src_port: 443,
            dst_port: 50000,
            src: EndpointId(0),
            dst: EndpointId(1),
            dir,
            ip_proto: 6,
        };
        let packets: Vec<Packet> = (0..45)
            .map(|i| {
                mk(
                    i * 250,
                    if i % 3 == 0 {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    },
                    100 + i as u32,
                )
            })
            .collect();
        let trace = Trace {
            name: "t".into(),
            packets,
            endpoints: vec![hush_trace::trace::UNKNOWN_ENDPOINT; 2],
            report: Default::default(),
        };
        let seq = seq_windows(&trace);
        // 11.25 s of traffic: three 4 s windows, 160 values each.
        assert_eq!(seq.len(), 3);
        assert!(seq.iter().all(|(v, _)| v.len() == 160));
        let total: f32 = seq
            .iter()
            .map(|(v, _)| v.chunks(4).map(|s| s[0] + s[2]).sum::<f32>())
            .sum();
        assert_eq!(total, 45.0, "every packet in one slot");
        let pw = packet_windows(&trace);
        assert_eq!(pw.len(), 2, "45 packets: two full windows of 20");
        assert!(
            pw.iter()
                .all(|w| w.len() == PACKET_WINDOW * PACKET_FEATURES)
        );
        // The first packet: outbound, port 443 as the source.
        assert_eq!(pw[0][1], 1.0);
        // Built capped, the kept windows are the very windows of the whole list.
        let long = Trace {
            packets: (0..1000).map(|i| trace.packets[i % 45]).collect(),
            ..trace.clone()
        };
        let all = packet_windows(&long);
        for cap in [0, 1, 7, 49, 50, 51] {
            let (kept, total) = packet_windows_kept(&long, Some(cap));
            assert_eq!(total, 50);
            let want: Vec<&Vec<f32>> = kept_indices(50, Some(cap)).map(|i| &all[i]).collect();
            assert_eq!(kept.len(), cap.min(50));
            assert_eq!(kept.iter().collect::<Vec<_>>(), want, "cap {cap}");
        }
        assert_eq!(
            kept_indices(10, Some(3)).collect::<Vec<_>>(),
            [1, 5, 8],
            "the middle of each third"
        );
    }

    #[test]
    fn port_classes() {
        assert_eq!(port_class(80, true), 1.0);
        assert_eq!(port_class(8080, true), 2.0);
        assert_eq!(port_class(50000, true), 3.0);
        assert_eq!(port_class(80, false), 0.0);
    }
}
