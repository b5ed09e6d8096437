//! Writing traces as pcap files that open in Wireshark.
//!
//! hush keeps packet metadata, not payloads, so each packet is re-synthesized: a valid Ethernet
//! header, an IPv4 or IPv6 header, a TCP or UDP header with the packet's ports and correct
//! checksums, and seeded random payload bytes. Lengths are kept exactly:
//!
//! - the transport payload is `payload_len` bytes;
//! - a TCP header grows with NOP options so the IP total length equals `ip_len` when the original
//!   header was longer than 20 bytes (it had options);
//! - the frame is zero-padded to `frame_len` (Ethernet pads short frames the same way); if the
//!   synthesized headers are longer than `frame_len`, the captured bytes are cut to `frame_len`,
//!   so the frame length on the wire is always `frame_len`.
//!
//! Endpoints without a MAC get a locally administered one derived from their id
//! (`02:00:00:xx:xx:xx`), and endpoints without an IP in an IP packet get `10.x.y.z` (or
//! `fd00::x` for IPv6), so flows stay distinct.

use std::borrow::Cow;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use etherparse::{IpNumber, PacketBuilder};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{ErrorKind, Result, TraceError};
use crate::packet::{EndpointId, Mac, Packet, Proto};
use crate::trace::Trace;

/// Snap length written in the header; longer frames are cut (their wire length is kept).
pub const SNAPLEN_BYTES: u32 = 262_144;

/// Write `trace` as a nanosecond-resolution Ethernet pcap. The same trace and seed give the same
/// bytes. Packets before the Unix epoch (relative CSV times are not) are written at time 0.
pub fn write_pcap(trace: &Trace, out: impl Write, seed: u64) -> Result<()> {
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN_BYTES,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    };
    let mut writer = PcapWriter::with_header(out, header).map_err(pcap_err)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut frame = Vec::with_capacity(2048);
    let mut payload = Vec::with_capacity(2048);
    for p in &trace.packets {
        frame.clear();
        synthesize(trace, p, &mut rng, &mut payload, &mut frame)?;
        let caplen = frame
            .len()
            .min(p.frame_len as usize)
            .min(SNAPLEN_BYTES as usize);
        let ts = Duration::from_nanos(u64::try_from(p.t_ns).unwrap_or(0));
        let packet = PcapPacket {
            timestamp: ts,
            orig_len: p.frame_len,
            data: Cow::Borrowed(&frame[..caplen]),
        };
        writer.write_packet(&packet).map_err(pcap_err)?;
    }
    Ok(())
}

fn pcap_err(e: pcap_file::PcapError) -> TraceError {
    match e {
        pcap_file::PcapError::IoError(io) => TraceError::from(io),
        other => TraceError::new(ErrorKind::Invalid(format!("pcap writer: {other}"))),
    }
}

fn mac_of(trace: &Trace, id: EndpointId) -> [u8; 6] {
    trace.endpoint(id).mac.map_or_else(
        || {
            let b = (id.0 + 1).to_be_bytes();
            [0x02, 0, b[0].wrapping_add(b[1]), b[1], b[2], b[3]]
        },
        |Mac(m)| m,
    )
}

fn synth_v4(id: EndpointId) -> Ipv4Addr {
    let b = (id.0 + 1).to_be_bytes();
    Ipv4Addr::new(10, b[1], b[2], b[3])
}

fn synth_v6(id: EndpointId) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, (id.0 >> 16) as u16, id.0 as u16)
}

fn synthesize(
    trace: &Trace,
    p: &Packet,
    rng: &mut StdRng,
    payload: &mut Vec<u8>,
    frame: &mut Vec<u8>,
) -> Result<()> {
    let src_mac = mac_of(trace, p.src);
    let dst_mac = mac_of(trace, p.dst);
    let src_ip = trace.endpoint(p.src).ip;
    let dst_ip = trace.endpoint(p.dst).ip;
    let is_v6 = p.proto.contains(Proto::IPV6) || matches!(src_ip, Some(IpAddr::V6(_)));
    let is_ip = p.ip_len > 0 || p.proto.intersects(Proto::IPV4 | Proto::IPV6);

    if !is_ip {
        // ARP, EAPOL, LLC or unknown: an Ethernet header with the right type, then random bytes.
        frame.extend_from_slice(&dst_mac);
        frame.extend_from_slice(&src_mac);
        let ether_type: u16 = if p.proto.contains(Proto::ARP) {
            0x0806
        } else if p.proto.contains(Proto::EAPOL) {
            0x888e
        } else if p.proto.contains(Proto::LLC) {
            // 802.3 length field.
            p.frame_len.saturating_sub(14).min(1500) as u16
        } else {
            // Unknown protocol (a minimal `time,direction,size` CSV): IEEE 802's EtherType for
            // local experiments, so no analyzer mistakes the random bytes for a real protocol.
            0x88b5
        };
        frame.extend_from_slice(&ether_type.to_be_bytes());
        let body = (p.frame_len as usize)
            .saturating_sub(14)
            .min(SNAPLEN_BYTES as usize);
        let start = frame.len();
        frame.resize(start + body, 0);
        rng.fill_bytes(&mut frame[start..]);
        return Ok(());
    }

    let ip_header_bytes: u32 = if is_v6 { 40 } else { 20 };
    payload.clear();
    payload.resize((p.payload_len as usize).min(SNAPLEN_BYTES as usize), 0);
    rng.fill_bytes(payload);
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    let ip = if is_v6 {
        let s = match src_ip {
            Some(IpAddr::V6(a)) => a,
            _ => synth_v6(p.src),
        };
        let d = match dst_ip {
            Some(IpAddr::V6(a)) => a,
            _ => synth_v6(p.dst),
        };
        eth.ipv6(s.octets(), d.octets(), 64)
    } else {
        let s = match src_ip {
            Some(IpAddr::V4(a)) => a,
            _ => synth_v4(p.src),
        };
        let d = match dst_ip {
            Some(IpAddr::V4(a)) => a,
            _ => synth_v4(p.dst),
        };
        eth.ipv4(s.octets(), d.octets(), 64)
    };
    let written = match p.ip_proto {
        6 => {
            // Reproduce the original TCP header length (options) when the lengths say what it was.
            let tcp_header = p.ip_len.saturating_sub(ip_header_bytes + p.payload_len);
            let options = if (24..=60).contains(&tcp_header) && tcp_header % 4 == 0 {
                tcp_header - 20
            } else {
                0
            };
            let tcp = ip
                .tcp(p.src_port, p.dst_port, rng.next_u32(), 65535)
                .ack(rng.next_u32());
            let tcp = if options > 0 {
                tcp.options_raw(&vec![1u8; options as usize])
                    .map_err(|e| invalid(format!("TCP options: {e}")))?
            } else {
                tcp
            };
            tcp.write(frame, payload)
                .map_err(|e| invalid(format!("building TCP frame: {e}")))
        }
        17 => ip
            .udp(p.src_port, p.dst_port)
            .write(frame, payload)
            .map_err(|e| invalid(format!("building UDP frame: {e}"))),
        proto => {
            // Other IP protocols (ICMP, IGMP, ...): the IP payload is what is left of ip_len.
            payload.resize(
                (p.ip_len.saturating_sub(ip_header_bytes) as usize).min(SNAPLEN_BYTES as usize),
                0,
            );
            rng.fill_bytes(payload);
            ip.write(frame, IpNumber(proto), payload)
                .map_err(|e| invalid(format!("building IP frame: {e}")))
        }
    };
    written?;
    if frame.len() < p.frame_len as usize {
        frame.resize((p.frame_len as usize).min(SNAPLEN_BYTES as usize), 0);
    }
    Ok(())
}

fn invalid(msg: String) -> TraceError {
    TraceError::new(ErrorKind::Invalid(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipv4;
    use crate::packet::{Direction, Endpoint};
    use crate::read::{ReadOptions, read_from};
    use crate::trace::ReadReport;

    fn sample() -> Trace {
        let endpoints = vec![
            Endpoint {
                mac: Some(Mac([0, 0x17, 0x88, 1, 2, 3])),
                ip: Some(ipv4(192, 168, 1, 5)),
            },
            Endpoint {
                mac: Some(Mac([0, 1, 2, 3, 4, 5])),
                ip: Some(ipv4(52, 1, 2, 3)),
            },
            Endpoint {
                mac: Some(Mac::BROADCAST),
                ip: None,
            },
            Endpoint {
                mac: None,
                ip: Some("fe80::1".parse().unwrap()),
            },
            Endpoint {
                mac: None,
                ip: Some("fe80::2".parse().unwrap()),
            },
        ];
        let tcp = Proto::IPV4 | Proto::TCP;
        let packets = vec![
            // SYN with 12 bytes of TCP options, padded to a 60-byte minimum Ethernet frame? No: 78.
            Packet {
                t_ns: 1_000,
                frame_len: 78,
                ip_len: 64,
                payload_len: 0,
                proto: tcp,
                src_port: 5000,
                dst_port: 443,
                src: EndpointId(0),
                dst: EndpointId(1),
                dir: Direction::Outbound,
                ip_proto: 6,
            },
            // A pure ACK, padded by Ethernet to 60 bytes.
            Packet {
                t_ns: 2_000,
                frame_len: 60,
                ip_len: 40,
                payload_len: 0,
                proto: tcp,
                src_port: 443,
                dst_port: 5000,
                src: EndpointId(1),
                dst: EndpointId(0),
                dir: Direction::Inbound,
                ip_proto: 6,
            },
            Packet {
                t_ns: 3_000,
                frame_len: 342,
                ip_len: 328,
                payload_len: 300,
                proto: Proto::IPV4 | Proto::UDP,
                src_port: 68,
                dst_port: 67,
                src: EndpointId(0),
                dst: EndpointId(1),
                dir: Direction::Outbound,
                ip_proto: 17,
            },
            Packet {
                t_ns: 4_000,
                frame_len: 42,
                proto: Proto::ARP,
                src: EndpointId(0),
                dst: EndpointId(2),
                ..Packet::default()
            },
            Packet {
                t_ns: 5_000,
                frame_len: 90,
                ip_len: 76,
                payload_len: 28,
                proto: Proto::IPV6 | Proto::UDP,
                src_port: 5353,
                dst_port: 5353,
                src: EndpointId(3),
                dst: EndpointId(4),
                ip_proto: 17,
                ..Packet::default()
            },
            Packet {
                t_ns: 6_000,
                frame_len: 98,
                ip_len: 84,
                proto: Proto::IPV4 | Proto::ICMP,
                src: EndpointId(0),
                dst: EndpointId(1),
                ip_proto: 1,
                ..Packet::default()
            },
        ];
        Trace {
            name: "sample".into(),
            packets,
            endpoints,
            report: ReadReport::default(),
        }
    }

    #[test]
    fn written_pcap_reads_back_with_same_metadata() {
        let trace = sample();
        let mut buf = Vec::new();
        write_pcap(&trace, &mut buf, 7).unwrap();
        let back = read_from(buf.as_slice(), "mem", ReadOptions { strict: true }).unwrap();
        assert_eq!(back.packets.len(), trace.packets.len());
        for (a, b) in trace.packets.iter().zip(&back.packets) {
            assert_eq!(
                (a.t_ns, a.frame_len, a.ip_len, a.payload_len),
                (b.t_ns, b.frame_len, b.ip_len, b.payload_len),
                "{a:?} vs {b:?}"
            );
            assert_eq!(
                (a.src_port, a.dst_port, a.ip_proto),
                (b.src_port, b.dst_port, b.ip_proto)
            );
            if a.ip_len > 0 {
                assert_eq!(trace.endpoint(a.src).ip, back.endpoint(b.src).ip);
                assert_eq!(trace.endpoint(a.dst).ip, back.endpoint(b.dst).ip);
            }
            if let Some(mac) = trace.endpoint(a.src).mac {
                assert_eq!(back.endpoint(b.src).mac, Some(mac));
            }
        }
        assert!(back.packets[3].proto.contains(Proto::ARP));
    }

    #[test]
    fn same_seed_same_bytes() {
        let trace = sample();
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        write_pcap(&trace, &mut a, 1).unwrap();
        write_pcap(&trace, &mut b, 1).unwrap();
        write_pcap(&trace, &mut c, 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
