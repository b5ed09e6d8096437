//! Writing traces back to capture files that Wireshark opens.
//!
//! A [`Packet`] keeps no payload, so [`write_pcap`] synthesizes every frame from what the packet
//! does keep: addresses, ports, lengths, protocol flags and direction. The headers are valid
//! (lengths, checksums, TCP sequence numbers that advance per flow) and the payload is seeded
//! random bytes, so hush's reader and tshark read back the same times, lengths, ports and IP
//! protocol.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;

use crate::packet::{Direction, Endpoint, EndpointId, Mac, Packet, Proto};
use crate::trace::Trace;
use crate::{ErrorKind, Result, TraceError};

/// Snap length in the file header; longer frames are cut to it (their original length is kept).
pub const SNAPLEN_BYTES: u32 = 262_144;

/// MAC of the device when the trace does not know it.
pub const FAKE_DEVICE_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
/// IPv4 address of the device when the trace does not know it.
pub const FAKE_DEVICE_IPV4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// IPv6 address of the device when the trace does not know it.
pub const FAKE_DEVICE_IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// Write `trace` as a classic little-endian pcap with nanosecond timestamps.
///
/// Every packet becomes one frame whose original length is [`Packet::frame_len`] and whose
/// timestamp is [`Packet::t_ns`]:
///
/// - **Link type**: Ethernet, except for a trace with no MAC addresses whose IP packets all have
///   `frame_len == ip_len` (read from a raw-IP capture), which is written as raw IP so both lengths
///   survive.
/// - **Addresses**: the endpoints' own MACs and IPs when the trace has them. A missing one is made
///   up, stable per endpoint: the device side of a packet with a known [`Direction`] gets
///   [`FAKE_DEVICE_MAC`] and [`FAKE_DEVICE_IPV4`] (or [`FAKE_DEVICE_IPV6`]); any other endpoint
///   gets `02:00:01:xx:xx:xx` and an address in `10.0.0.0/8` (or `fd00::1:0:0/96`) derived from
///   its [`EndpointId`].
/// - **IP packets**: IPv4 or IPv6 as the addresses (else the flags) say; the IP total length is
///   [`Packet::ip_len`] (when 0, the frame length less the link header); TCP or UDP with the
///   packet's ports and exactly [`Packet::payload_len`] bytes of payload, the rest of the IP
///   length filled by TCP options, IPv4 options or (UDP) bytes after the datagram; ICMP and
///   ICMPv6 as echo requests; other IP protocols as their number with random content (number
///   253, "for experimentation", when the trace gives none). Packets with ARP or EAPOL flags get
///   a frame of that EtherType, LLC ones an 802.3 length field. A packet with no addresses and no
///   flags at all (a `time,direction,size` trace) is written as IPv4 protocol 253 between the
///   device and its peer, so direction shows in Wireshark's conversation views.
/// - **Sizes that do not fit**: bytes between the end of the headers and `frame_len` are zero
///   (Ethernet padding). When `frame_len` is smaller than the headers need, the headers are still
///   written in full length terms, the captured bytes are cut to `frame_len`, and the original
///   length stays `frame_len`: the packet's size on the wire is what traffic analysis uses, so it
///   wins over the header fields, and Wireshark marks such frames as shorter than their IP length.
///   Frames longer than [`SNAPLEN_BYTES`] are captured up to it.
///
/// The same trace and seed give the same bytes. Errors: a packet time before 1970 or after 2106
/// (pcap stores unsigned 32-bit seconds) is [`ErrorKind::Invalid`]; write failures are
/// [`ErrorKind::Io`].
pub fn write_pcap(trace: &Trace, out: impl Write, seed: u64) -> Result<()> {
    let raw_ip = is_raw_ip(trace);
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN_BYTES,
        datalink: if raw_ip {
            DataLink::RAW
        } else {
            DataLink::ETHERNET
        },
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    };
    let mut writer =
        PcapWriter::with_header(std::io::BufWriter::new(out), header).map_err(pcap_error)?;
    let mut synth = Synth::new(seed, raw_ip);
    let mut frame = Vec::new();
    for (i, p) in trace.packets.iter().enumerate() {
        let timestamp = u64::try_from(p.t_ns)
            .ok()
            .map(Duration::from_nanos)
            .filter(|d| d.as_secs() <= u64::from(u32::MAX))
            .ok_or_else(|| {
                TraceError::new(ErrorKind::Invalid(format!(
                    "packet {i}: time {} ns is outside what pcap stores (1970 to 2106)",
                    p.t_ns
                )))
            })?;
        synth.frame(trace, p, &mut frame);
        let captured = (p.frame_len.min(SNAPLEN_BYTES)) as usize;
        // Short headers are padded with zeros (Ethernet padding); long ones are cut.
        frame.resize(captured, 0);
        writer
            .write_packet(&PcapPacket::new(timestamp, p.frame_len, &frame))
            .map_err(pcap_error)?;
    }
    writer.into_writer().flush()?;
    Ok(())
}

fn pcap_error(e: PcapError) -> TraceError {
    match e {
        PcapError::IoError(io) => TraceError::from(io),
        other => TraceError::new(ErrorKind::Invalid(format!("writing pcap: {other}"))),
    }
}

/// Raw IP keeps both lengths of a trace read from a raw-IP capture, where frames have no link
/// header; Ethernet would have to add 14 bytes to one of them.
fn is_raw_ip(trace: &Trace) -> bool {
    !trace.packets.is_empty()
        && trace.endpoints.iter().all(|e| e.mac.is_none())
        && trace.packets.iter().all(|p| {
            p.proto.intersects(Proto::IPV4 | Proto::IPV6) && p.ip_len > 0 && p.ip_len == p.frame_len
        })
}

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_IPV6: u16 = 0x86dd;
const ETH_EAPOL: u16 = 0x888e;
/// IEEE 802 "local experimental" EtherType, for non-IP frames of unknown type.
const ETH_EXPERIMENTAL: u16 = 0x88b5;
/// IP protocol number "for experimentation and testing" (RFC 3692).
const IP_EXPERIMENTAL: u8 = 253;

/// What kind of frame a packet becomes.
enum Kind {
    Ip,
    Arp,
    Eapol,
    Llc,
    Other,
}

fn kind_of(p: &Packet, src: &Endpoint, dst: &Endpoint) -> Kind {
    let any_ip = src.ip.is_some() || dst.ip.is_some();
    let any_mac = src.mac.is_some() || dst.mac.is_some();
    if p.proto.contains(Proto::ARP) {
        Kind::Arp
    } else if p.proto.contains(Proto::EAPOL) {
        Kind::Eapol
    } else if p.proto.intersects(Proto::IPV4 | Proto::IPV6)
        || p.ip_len > 0
        || p.ip_proto != 0
        || any_ip
    {
        Kind::Ip
    } else if p.proto.contains(Proto::LLC) {
        Kind::Llc
    } else if p.proto.is_empty() && !any_mac {
        // Nothing but a size and a direction: show it as IP traffic between device and peer.
        Kind::Ip
    } else {
        Kind::Other
    }
}

/// Transport header to synthesize.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
    Icmp4,
    Icmp6,
    Raw,
}

/// Per-file state: the seeded generator, TCP sequence numbers per flow, the IPv4 ID counter.
struct Synth {
    rng: StdRng,
    raw_ip: bool,
    /// Next sequence number per (source, destination, source port, destination port).
    tcp_next_seq: FxHashMap<(IpAddr, IpAddr, u16, u16), u32>,
    ip_id: u16,
}

/// Resolved addresses of one side of a packet.
#[derive(Clone, Copy)]
struct Side {
    mac: Mac,
    ip: IpAddr,
}

impl Synth {
    fn new(seed: u64, raw_ip: bool) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let ip_id = rng.next_u32() as u16;
        Synth {
            rng,
            raw_ip,
            tcp_next_seq: FxHashMap::default(),
            ip_id,
        }
    }

    /// Build the frame of `p` into `buf` (its full length by the header fields; the caller cuts
    /// or pads it to the frame length).
    fn frame(&mut self, trace: &Trace, p: &Packet, buf: &mut Vec<u8>) {
        buf.clear();
        let (src_ep, dst_ep) = (trace.endpoint(p.src), trace.endpoint(p.dst));
        let kind = if self.raw_ip {
            Kind::Ip
        } else {
            kind_of(p, src_ep, dst_ep)
        };
        let v6 = matches!(kind, Kind::Ip)
            && match (src_ep.ip, dst_ep.ip) {
                (Some(a), Some(b)) if a.is_ipv6() == b.is_ipv6() => a.is_ipv6(),
                (Some(a), _) | (None, Some(a)) => a.is_ipv6(),
                (None, None) => p.proto.contains(Proto::IPV6),
            };
        let src_device = p.dir == Direction::Outbound;
        let dst_device = p.dir == Direction::Inbound;
        let src = side(src_ep, p.src, src_device, v6);
        let dst = side(dst_ep, p.dst, dst_device, v6);

        let vlan = p.proto.contains(Proto::VLAN) && !self.raw_ip;
        let ether_type = match kind {
            Kind::Ip if v6 => ETH_IPV6,
            Kind::Ip => ETH_IPV4,
            Kind::Arp => ETH_ARP,
            Kind::Eapol => ETH_EAPOL,
            // 802.3 frames carry their length instead, filled in below.
            Kind::Llc => 0,
            Kind::Other => ETH_EXPERIMENTAL,
        };
        let link_len = if self.raw_ip {
            0
        } else {
            buf.extend_from_slice(&dst.mac.0);
            buf.extend_from_slice(&src.mac.0);
            if vlan {
                buf.extend_from_slice(&ETH_VLAN.to_be_bytes());
                // Priority 0, VLAN 1: the tag's contents are not kept in a packet.
                buf.extend_from_slice(&1u16.to_be_bytes());
            }
            buf.extend_from_slice(&ether_type.to_be_bytes());
            buf.len()
        };
        match kind {
            Kind::Ip => self.ip_packet(p, src, dst, v6, link_len, buf),
            Kind::Arp => {
                let reply = dst_ep.mac.is_some_and(|m| !m.is_group());
                buf.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, if reply { 2 } else { 1 }]);
                buf.extend_from_slice(&src.mac.0);
                buf.extend_from_slice(&ipv4_of(src.ip).octets());
                buf.extend_from_slice(&if reply { dst.mac.0 } else { [0; 6] });
                buf.extend_from_slice(&ipv4_of(dst.ip).octets());
            }
            // EAPOL-Start: version 2, type 1, no body; the rest of the frame is padding.
            Kind::Eapol => buf.extend_from_slice(&[2, 1, 0, 0]),
            Kind::Llc => {
                let len_at = buf.len() - 2;
                let data_len = (p.frame_len as usize)
                    .saturating_sub(buf.len())
                    .clamp(3, 1500);
                buf[len_at..].copy_from_slice(&(data_len as u16).to_be_bytes());
                // Null SAPs, unnumbered information; random data after.
                buf.extend_from_slice(&[0, 0, 3]);
                self.random_bytes(buf, data_len - 3);
            }
            Kind::Other => {
                let n = (p.frame_len as usize).saturating_sub(buf.len());
                self.random_bytes(buf, n);
            }
        }
    }

    fn random_bytes(&mut self, buf: &mut Vec<u8>, n: usize) {
        let at = buf.len();
        buf.resize(at + n, 0);
        self.rng.fill_bytes(&mut buf[at..]);
    }

    fn ip_packet(
        &mut self,
        p: &Packet,
        src: Side,
        dst: Side,
        v6: bool,
        link_len: usize,
        buf: &mut Vec<u8>,
    ) {
        let ip_proto = effective_ip_proto(p, v6);
        let transport = match ip_proto {
            6 => Transport::Tcp,
            17 => Transport::Udp,
            1 if !v6 => Transport::Icmp4,
            58 if v6 => Transport::Icmp6,
            _ => Transport::Raw,
        };
        let ip_hdr_min: u32 = if v6 { 40 } else { 20 };
        let transport_min: u32 = match transport {
            Transport::Tcp => 20,
            Transport::Udp => 8,
            Transport::Icmp4 | Transport::Icmp6 => 8,
            Transport::Raw => 0,
        };
        let app_len = match transport {
            Transport::Tcp | Transport::Udp => p.payload_len.min(65_000),
            _ => 0,
        };
        let ip_max: u32 = if v6 { 65_535 + 40 } else { 65_535 };
        let min_ip_len = ip_hdr_min + transport_min + app_len;
        let wanted = if p.ip_len > 0 {
            p.ip_len
        } else if p.frame_len > 60 || self.raw_ip {
            // No IP length kept (a size-only CSV): the frame less its link header, unless the
            // frame may hold Ethernet padding.
            p.frame_len.saturating_sub(link_len as u32)
        } else {
            0
        };
        let ip_len = wanted.max(min_ip_len).min(ip_max);
        // Bytes the fixed headers and the payload leave over, placed where the reader keeps the
        // payload length: a router alert (IPv4 option or IPv6 hop-by-hop header) when flagged,
        // TCP options, more IPv4 options, then (UDP) after the datagram.
        let mut extra = ip_len.saturating_sub(min_ip_len);
        // IPv4 options, or the IPv6 hop-by-hop header.
        let mut ip_opts = 0;
        let alert_len = if v6 { 8 } else { 4 };
        if p.proto.contains(Proto::ROUTER_ALERT) && extra >= alert_len {
            ip_opts = alert_len;
            extra -= alert_len;
        }
        let mut tcp_opts = 0;
        if transport == Transport::Tcp {
            tcp_opts = extra.min(40) & !3;
            extra -= tcp_opts;
        }
        if !v6 && transport == Transport::Tcp {
            ip_opts += extra.min(40 - ip_opts) & !3;
        }
        let ip_hdr_len = ip_hdr_min + ip_opts;
        // The transport's part of the IP packet, header included.
        let l4_len = ip_len.saturating_sub(ip_hdr_len);

        let ip_at = buf.len();
        if v6 {
            buf.extend_from_slice(&[0x60, 0, 0, 0]);
            buf.extend_from_slice(&((ip_len - 40) as u16).to_be_bytes());
            let hop_by_hop = ip_opts > 0;
            buf.extend_from_slice(&[if hop_by_hop { 0 } else { ip_proto }, 64]);
            buf.extend_from_slice(&ipv6_of(src.ip).octets());
            buf.extend_from_slice(&ipv6_of(dst.ip).octets());
            if hop_by_hop {
                // Router alert (MLD), then a 2-byte PadN to the 8-byte unit.
                buf.extend_from_slice(&[ip_proto, 0, 5, 2, 0, 0, 1, 0]);
            }
        } else {
            self.ip_id = self.ip_id.wrapping_add(1);
            let dont_fragment: u16 = if transport == Transport::Tcp {
                0x4000
            } else {
                0
            };
            buf.push(0x40 | (ip_hdr_len / 4) as u8);
            buf.push(0);
            buf.extend_from_slice(&(ip_len as u16).to_be_bytes());
            buf.extend_from_slice(&self.ip_id.to_be_bytes());
            buf.extend_from_slice(&dont_fragment.to_be_bytes());
            buf.extend_from_slice(&[64, ip_proto, 0, 0]);
            buf.extend_from_slice(&ipv4_of(src.ip).octets());
            buf.extend_from_slice(&ipv4_of(dst.ip).octets());
            let mut opts_left = ip_opts;
            if p.proto.contains(Proto::ROUTER_ALERT) && opts_left >= 4 {
                buf.extend_from_slice(&[0x94, 4, 0, 0]);
                opts_left -= 4;
            }
            // No-operation options fill the rest.
            buf.resize(buf.len() + opts_left as usize, 1);
            let sum = checksum(&[&buf[ip_at..]]);
            buf[ip_at + 10..ip_at + 12].copy_from_slice(&sum.to_be_bytes());
        }
        let pseudo = pseudo_header(src.ip, dst.ip, v6, ip_proto, l4_len);
        let l4_at = buf.len();
        match transport {
            Transport::Tcp => {
                let payload_len = l4_len - 20 - tcp_opts;
                let flow = (src.ip, dst.ip, p.src_port, p.dst_port);
                let reverse = (dst.ip, src.ip, p.dst_port, p.src_port);
                let rng = &mut self.rng;
                let seq = *self
                    .tcp_next_seq
                    .entry(flow)
                    .or_insert_with(|| rng.next_u32());
                let ack = *self
                    .tcp_next_seq
                    .entry(reverse)
                    .or_insert_with(|| rng.next_u32());
                self.tcp_next_seq
                    .insert(flow, seq.wrapping_add(payload_len));
                let flags: u8 = if payload_len > 0 { 0x18 } else { 0x10 };
                buf.extend_from_slice(&p.src_port.to_be_bytes());
                buf.extend_from_slice(&p.dst_port.to_be_bytes());
                buf.extend_from_slice(&seq.to_be_bytes());
                buf.extend_from_slice(&ack.to_be_bytes());
                buf.push((((20 + tcp_opts) / 4) as u8) << 4);
                buf.push(flags);
                buf.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
                buf.resize(buf.len() + tcp_opts as usize, 1);
                self.app_payload(p, dst, payload_len as usize, buf);
                let sum = checksum(&[&pseudo, &buf[l4_at..]]);
                buf[l4_at + 16..l4_at + 18].copy_from_slice(&sum.to_be_bytes());
            }
            Transport::Udp => {
                let udp_len = 8 + app_len;
                buf.extend_from_slice(&p.src_port.to_be_bytes());
                buf.extend_from_slice(&p.dst_port.to_be_bytes());
                buf.extend_from_slice(&(udp_len as u16).to_be_bytes());
                buf.extend_from_slice(&[0, 0]);
                self.app_payload(p, dst, app_len as usize, buf);
                let udp_pseudo = pseudo_header(src.ip, dst.ip, v6, 17, udp_len);
                let sum = match checksum(&[&udp_pseudo, &buf[l4_at..]]) {
                    0 => 0xffff,
                    s => s,
                };
                buf[l4_at + 6..l4_at + 8].copy_from_slice(&sum.to_be_bytes());
                // IP length beyond the datagram: zero bytes, as a sender's padding would be.
                buf.resize(l4_at + l4_len as usize, 0);
            }
            Transport::Icmp4 | Transport::Icmp6 => {
                let echo_request = if transport == Transport::Icmp4 {
                    8
                } else {
                    128
                };
                let id = (self.rng.next_u32() as u16).to_be_bytes();
                buf.extend_from_slice(&[echo_request, 0, 0, 0, id[0], id[1], 0, 1]);
                self.random_bytes(buf, (l4_len - 8) as usize);
                if transport == Transport::Icmp6 && ip_opts > 0 {
                    mld_report(&mut buf[l4_at..], ipv6_of(dst.ip));
                }
                let sum = if transport == Transport::Icmp4 {
                    checksum(&[&buf[l4_at..]])
                } else {
                    checksum(&[&pseudo, &buf[l4_at..]])
                };
                buf[l4_at + 2..l4_at + 4].copy_from_slice(&sum.to_be_bytes());
            }
            Transport::Raw => {
                self.random_bytes(buf, l4_len as usize);
                if ip_proto == 2 && !v6 {
                    igmp_message(&mut buf[l4_at..], ipv4_of(dst.ip));
                }
            }
        }
    }

    /// `n` bytes of application payload. Random bytes on a well-known port make Wireshark's
    /// dissector for that port report a malformed packet, so the protocols hush flags get a valid
    /// message of the right length instead, with the random bytes where the protocol allows
    /// free content.
    fn app_payload(&mut self, p: &Packet, dst: Side, n: usize, buf: &mut Vec<u8>) {
        let at = buf.len();
        self.random_bytes(buf, n);
        let payload = &mut buf[at..];
        let to_port = |ports: &[u16]| ports.contains(&p.dst_port);
        let udp = p.proto.contains(Proto::UDP);
        if p.proto.contains(Proto::TLS) && n >= 5 {
            // One application-data record (TLS 1.2 framing, which TLS 1.3 keeps) per segment.
            let record_len = (n - 5).min(16_384 + 2_048) as u16;
            payload[..5].copy_from_slice(&[23, 3, 3, 0, 0]);
            payload[3..5].copy_from_slice(&record_len.to_be_bytes());
        } else if p.proto.contains(Proto::HTTP) || (udp && p.proto.contains(Proto::SSDP)) {
            let request = to_port(&[80, 8080, 1900]);
            http_message(payload, request, &mut self.rng);
        } else if udp && p.proto.intersects(Proto::BOOTP | Proto::DHCP) {
            bootp_message(payload, to_port(&[67]), dst.mac);
        } else if p.proto.intersects(Proto::DNS | Proto::MDNS) {
            let tcp = p.proto.contains(Proto::TCP);
            let dns = if tcp && n >= 2 {
                payload[..2].copy_from_slice(&((n - 2) as u16).to_be_bytes());
                &mut payload[2..]
            } else {
                payload
            };
            dns_message(dns, !to_port(&[53, 5353]));
        } else if udp && p.proto.contains(Proto::NTP) {
            ntp_message(payload, !to_port(&[123]));
        }
    }
}

/// An HTTP/1.1 request (`POST`) or response whose body, announced by `Content-Length`, is the
/// rest of `out`: every segment is one whole message. Too short for that: printable letters.
fn http_message(out: &mut [u8], request: bool, rng: &mut StdRng) {
    let start = if request {
        "POST / HTTP/1.1\r\nContent-Length: "
    } else {
        "HTTP/1.1 200 OK\r\nContent-Length: "
    };
    let n = out.len();
    let fixed = start.len() + 4;
    // The body length has as many digits as it has: try each count.
    let header = (1..=5).find_map(|digits| {
        let body = n.checked_sub(fixed + digits)?;
        (body.to_string().len() == digits).then(|| format!("{start}{body}\r\n\r\n"))
    });
    if let Some(h) = header {
        out[..h.len()].copy_from_slice(h.as_bytes());
        return;
    }
    // Too short for that: a start line and one made-up header of letters, or as much of the
    // start line as fits, so the message still reads as HTTP.
    for b in out.iter_mut() {
        *b = b'a' + (rng.next_u32() % 26) as u8;
    }
    let start = if request {
        "GET / HTTP/1.1\r\nX: "
    } else {
        "HTTP/1.1 200 OK\r\nX: "
    };
    if n >= start.len() + 4 {
        out[..start.len()].copy_from_slice(start.as_bytes());
        out[n - 4..].copy_from_slice(b"\r\n\r\n");
    } else {
        let k = n.min(5);
        out[..k].copy_from_slice(&start.as_bytes()[..k]);
    }
}

/// A BOOTP/DHCP message: fixed 236-byte header, magic cookie, message-type option, end; the rest
/// is pad options. Random bytes stay only in the transaction ID.
fn bootp_message(out: &mut [u8], request: bool, client: Mac) {
    let xid = [out.get(4).copied(), out.get(5).copied()];
    out.fill(0);
    let mut fixed = [0u8; 250];
    fixed[..4].copy_from_slice(&[if request { 1 } else { 2 }, 1, 6, 0]);
    fixed[4] = xid[0].unwrap_or(0);
    fixed[5] = xid[1].unwrap_or(0);
    fixed[28..34].copy_from_slice(&client.0);
    fixed[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    // DHCP message type: discover (1) from the client, offer (2) from the server.
    fixed[240..243].copy_from_slice(&[53, 1, if request { 1 } else { 2 }]);
    fixed[243] = 255;
    let k = out.len().min(fixed.len());
    out[..k].copy_from_slice(&fixed[..k]);
}

/// A DNS (or mDNS) header with no records; the random bytes after it are left as trailing data.
fn dns_message(out: &mut [u8], response: bool) {
    if let Some(h) = out.get_mut(2..12) {
        h.copy_from_slice(&[
            if response { 0x81 } else { 0x01 },
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
    }
}

/// An NTPv4 client or server header; the timestamps stay random, extension bytes are zero.
fn ntp_message(out: &mut [u8], response: bool) {
    if let Some(first) = out.first_mut() {
        *first = if response { 0x24 } else { 0x23 };
    }
    if let Some(rest) = out.get_mut(48..) {
        rest.fill(0);
    }
}

/// An MLD report filling `out` (checksum left to the caller), when its length fits one: MLDv1
/// at 24 bytes, else MLDv2 with 20-byte records and 16-byte sources; otherwise `out` is left as
/// it is.
fn mld_report(out: &mut [u8], group: Ipv6Addr) {
    let group = if group.is_multicast() {
        group
    } else {
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb)
    };
    let n = out.len();
    if n == 24 {
        out.fill(0);
        out[0] = 131;
        out[8..24].copy_from_slice(&group.octets());
        return;
    }
    let body = n.saturating_sub(8);
    // The most records whose leftover is a whole number of sources in the last one.
    let Some(records) = (1..=body / 20).rev().find(|r| (body - r * 20) % 16 == 0) else {
        return;
    };
    out.fill(0);
    out[0] = 143;
    out[6..8].copy_from_slice(&(records as u16).to_be_bytes());
    for r in 0..records {
        let at = 8 + r * 20;
        // Change to exclude mode: "join".
        out[at] = 4;
        out[at + 4..at + 20].copy_from_slice(&group.octets());
    }
    let sources = (body - records * 20) / 16;
    let last = 8 + (records - 1) * 20;
    out[last + 2..last + 4].copy_from_slice(&(sources as u16).to_be_bytes());
    for k in 0..sources {
        let at = 8 + records * 20 + k * 16;
        out[at..at + 16].copy_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
    }
}

/// An IGMP message filling `out`: a v2 membership report when 8 bytes long, else a v3 report
/// whose group records (and, for lengths not a multiple of 8, sources) take up the rest.
fn igmp_message(out: &mut [u8], group: Ipv4Addr) {
    out.fill(0);
    let group = if group.is_multicast() {
        group
    } else {
        Ipv4Addr::new(239, 255, 255, 250)
    };
    if out.len() == 8 {
        out[0] = 0x16;
        out[4..8].copy_from_slice(&group.octets());
    } else if out.len() >= 8 {
        out[0] = 0x22;
        let records = (out.len() - 8) / 8;
        out[6..8].copy_from_slice(&(records as u16).to_be_bytes());
        for r in 0..records {
            let at = 8 + r * 8;
            // Change to exclude mode with no sources: "join".
            out[at] = 4;
            out[at + 4..at + 8].copy_from_slice(&group.octets());
        }
        // Four bytes left over: one source address in the last record.
        if (out.len() - 8) % 8 >= 4 && records > 0 {
            let last = 8 + (records - 1) * 8;
            out[last + 3] = 1;
            let extra = out.len() - 4;
            out[extra..].copy_from_slice(&[10, 0, 0, 1]);
        }
    }
    let sum = checksum(&[out]);
    if let Some(c) = out.get_mut(2..4) {
        c.copy_from_slice(&sum.to_be_bytes());
    }
}

/// The IP protocol to write: the packet's, else one its flags imply, else the experimental one.
/// IPv6 extension-header numbers are replaced too, since no extension header is written.
fn effective_ip_proto(p: &Packet, v6: bool) -> u8 {
    let extension = v6 && matches!(p.ip_proto, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140);
    if p.ip_proto != 0 && !extension {
        return p.ip_proto;
    }
    if p.proto.contains(Proto::TCP) {
        6
    } else if p.proto.contains(Proto::UDP) {
        17
    } else if p.proto.contains(Proto::ICMP) && !v6 {
        1
    } else if p.proto.contains(Proto::ICMPV6) && v6 {
        58
    } else {
        IP_EXPERIMENTAL
    }
}

/// The addresses to write for one side: the endpoint's own where known, else made up.
fn side(e: &Endpoint, id: EndpointId, is_device: bool, v6: bool) -> Side {
    let mac = e.mac.unwrap_or(if is_device {
        FAKE_DEVICE_MAC
    } else {
        let b = id.0.to_be_bytes();
        Mac([0x02, 0x00, 0x01, b[1], b[2], b[3]])
    });
    let ip = match e.ip {
        Some(ip) if ip.is_ipv6() == v6 => ip,
        _ if is_device && v6 => IpAddr::V6(FAKE_DEVICE_IPV6),
        _ if is_device => IpAddr::V4(FAKE_DEVICE_IPV4),
        // fd00::1:0:0 + id, and 10.0.0.3 onwards (wrapping before the broadcast address).
        _ if v6 => IpAddr::V6(Ipv6Addr::from(
            0xfd00_u128 << 112 | 1 << 32 | u128::from(id.0),
        )),
        _ => IpAddr::V4(Ipv4Addr::from(0x0a00_0003 + id.0 % 0x00ff_fff0)),
    };
    Side { mac, ip }
}

fn ipv4_of(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        // `side` only hands out addresses of the packet's version; ARP asks for v4 of a v6 side.
        IpAddr::V6(_) => FAKE_DEVICE_IPV4,
    }
}

fn ipv6_of(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// The pseudo-header TCP, UDP and ICMPv6 checksums cover.
fn pseudo_header(src: IpAddr, dst: IpAddr, v6: bool, proto: u8, len: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    if v6 {
        out.extend_from_slice(&ipv6_of(src).octets());
        out.extend_from_slice(&ipv6_of(dst).octets());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, proto]);
    } else {
        out.extend_from_slice(&ipv4_of(src).octets());
        out.extend_from_slice(&ipv4_of(dst).octets());
        out.extend_from_slice(&[0, proto]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out
}

/// The Internet checksum (RFC 1071) of the concatenated parts; every part but the last has even
/// length.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2, so the checksum is 220d.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn fake_addresses_are_stable_and_distinct() {
        let none = Endpoint {
            mac: None,
            ip: None,
        };
        let device = side(&none, EndpointId(7), true, false);
        let remote = side(&none, EndpointId(7), false, false);
        assert_eq!(device.ip, IpAddr::V4(FAKE_DEVICE_IPV4));
        assert_eq!(device.mac, FAKE_DEVICE_MAC);
        assert_eq!(remote.ip.to_string(), "10.0.0.10");
        assert_eq!(remote.mac.to_string(), "02:00:01:00:00:07");
        let v6 = side(&none, EndpointId(7), false, true);
        assert_eq!(v6.ip.to_string(), "fd00::1:0:7");
    }
}
