//! Frame decoding: link layer (our own, because etherparse lacks SLL2, BSD loopback and 802.11),
//! then etherparse's lax slicer from the EtherType down, then port-based application flags.
//!
//! Nothing here panics on any input: every index goes through `get`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::packet::{Endpoint, Mac, Proto};

/// A link-layer header type, as numbered by tcpdump's LINKTYPE_ registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II / 802.3.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IPv4 or IPv6 (the IP version nibble tells which).
    pub const RAW: LinkType = LinkType(101);
    /// Raw IP as some BSDs number it.
    pub const RAW_BSD12: LinkType = LinkType(12);
    /// Raw IP as OpenBSD numbers it.
    pub const RAW_BSD14: LinkType = LinkType(14);
    /// 802.11 without a radio header.
    pub const IEEE802_11: LinkType = LinkType(105);
    /// OpenBSD loopback: 4-byte address family, big-endian.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// 802.11 with a radiotap header.
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// True when hush can decode frames of this link type.
    pub fn is_supported(self) -> bool {
        matches!(
            self.0,
            0 | 1 | 12 | 14 | 101 | 105 | 108 | 113 | 127 | 228 | 229 | 276
        )
    }

    /// The registry name (`ETHERNET`, `LINUX_SLL2`, ...), or `LINKTYPE_<n>` for the ones hush has
    /// no name for.
    pub fn name(self) -> String {
        let known = match self.0 {
            0 => "NULL",
            1 => "ETHERNET",
            3 => "AX25",
            6 => "IEEE802_5",
            7 => "ARCNET_BSD",
            8 => "SLIP",
            9 => "PPP",
            10 => "FDDI",
            12 | 14 | 101 => "RAW",
            50 => "PPP_HDLC",
            51 => "PPP_ETHER",
            104 => "C_HDLC",
            105 => "IEEE802_11",
            107 => "FRELAY",
            108 => "LOOP",
            113 => "LINUX_SLL",
            114 => "LTALK",
            117 => "PFLOG",
            119 => "IEEE802_11_PRISM",
            122 => "IP_OVER_FC",
            123 => "SUNATM",
            127 => "IEEE802_11_RADIOTAP",
            129 => "ARCNET_LINUX",
            138 => "APPLE_IP_OVER_IEEE1394",
            139 => "MTP2_WITH_PHDR",
            140 => "MTP2",
            141 => "MTP3",
            142 => "SCCP",
            143 => "DOCSIS",
            144 => "LINUX_IRDA",
            147..=162 => "USER",
            163 => "IEEE802_11_AVS",
            165 => "BACNET_MS_TP",
            166 => "PPP_PPPD",
            169 => "GPRS_LLC",
            177 => "LINUX_LAPD",
            187 => "BLUETOOTH_HCI_H4",
            189 => "USB_LINUX",
            192 => "PPI",
            195 => "IEEE802_15_4_WITHFCS",
            196 => "SITA",
            197 => "ERF",
            201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
            202 => "AX25_KISS",
            204 => "PPP_WITH_DIR",
            209 => "IPMB_LINUX",
            215 => "IEEE802_15_4_NONASK_PHY",
            220 => "USB_LINUX_MMAPPED",
            224 => "FC_2",
            227 => "CAN_SOCKETCAN",
            228 => "IPV4",
            229 => "IPV6",
            230 => "IEEE802_15_4_NOFCS",
            231 => "DBUS",
            235 => "DVB_CI",
            239 => "NFLOG",
            240 => "NETANALYZER",
            247 => "INFINIBAND",
            248 => "SCTP",
            249 => "USBPCAP",
            251 => "BLUETOOTH_LE_LL",
            252 => "WIRESHARK_UPPER_PDU",
            253 => "NETLINK",
            254 => "BLUETOOTH_LINUX_MONITOR",
            256 => "BLUETOOTH_BREDR_BB",
            257 => "BLUETOOTH_LE_LL_WITH_PHDR",
            263 => "IEEE802_15_4_TAP",
            264 => "USB_DARWIN",
            266 => "NORDIC_BLE",
            268 => "EBHSCR",
            270 => "USB_2_0",
            276 => "LINUX_SLL2",
            _ => return format!("LINKTYPE_{}", self.0),
        };
        known.to_string()
    }
}

/// What decoding one frame yields, before endpoints are interned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Source host.
    pub src: Option<Endpoint>,
    /// Destination host.
    pub dst: Option<Endpoint>,
    /// IP total length, 0 if not IP.
    pub ip_len: u32,
    /// Transport payload length.
    pub payload_len: u32,
    /// Protocol flags.
    pub proto: Proto,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol number.
    pub ip_proto: u8,
}

/// Why a frame was not decoded into a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// The link type is not one hush decodes.
    UnsupportedLink,
    /// 802.11 management or control frame: no user traffic.
    WifiNonData,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const ETH_EAPOL: u16 = 0x888e;
const ETH_MPLS_UNICAST: u16 = 0x8847;
const ETH_MPLS_MULTICAST: u16 = 0x8848;

/// Decode one frame of link type `link`.
///
/// Frames that are shorter than their headers still yield a packet with whatever was readable
/// (the frame length is known from the capture record), because dropping them would change packet
/// counts that users compare against tshark.
pub fn decode_frame(link: LinkType, data: &[u8]) -> Result<Decoded, Skip> {
    let mut d = Decoded::default();
    match link.0 {
        1 => decode_ethernet(data, &mut d),
        0 | 108 => {
            let Some(fam) = data.get(..4) else {
                return Ok(d);
            };
            let fam = if link.0 == 108 {
                u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
            } else {
                // NULL uses the capturing host's byte order; families are small numbers, so the
                // non-zero half tells which order was used.
                let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
                if le > 0xffff { le.swap_bytes() } else { le }
            };
            let rest = data.get(4..).unwrap_or_default();
            match fam {
                2 => decode_ether_type(ETH_IPV4, rest, None, None, &mut d),
                10 | 24 | 28 | 30 => decode_ether_type(ETH_IPV6, rest, None, None, &mut d),
                _ => decode_raw_ip(rest, &mut d),
            }
        }
        12 | 14 | 101 => decode_raw_ip(data, &mut d),
        // These two name the IP version, so a packet of the other version is not decoded.
        228 | 229 => {
            let version = if link.0 == 228 { 4 } else { 6 };
            if data.first().map(|b| b >> 4) == Some(version) {
                decode_raw_ip(data, &mut d);
            }
        }
        113 => {
            // SLL: packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
            let Some(hdr) = data.get(..16) else {
                return Ok(d);
            };
            let pkttype = u16::from_be_bytes([hdr[0], hdr[1]]);
            let addr_len = u16::from_be_bytes([hdr[4], hdr[5]]);
            let proto = u16::from_be_bytes([hdr[14], hdr[15]]);
            let mac = sll_mac(addr_len as usize, &hdr[6..14]);
            let (src, dst) = sll_roles(pkttype, mac);
            decode_ether_type(proto, &data[16..], src, dst, &mut d);
        }
        276 => {
            // SLL2: protocol(2) reserved(2) ifindex(4) ARPHRD(2) pkttype(1) addr len(1) addr(8)
            let Some(hdr) = data.get(..20) else {
                return Ok(d);
            };
            let proto = u16::from_be_bytes([hdr[0], hdr[1]]);
            let pkttype = u16::from(hdr[10]);
            let mac = sll_mac(hdr[11] as usize, &hdr[12..20]);
            let (src, dst) = sll_roles(pkttype, mac);
            decode_ether_type(proto, &data[20..], src, dst, &mut d);
        }
        105 => return decode_wifi(data, &mut d).map(|()| d),
        127 => {
            let Some(len) = data.get(2..4) else {
                return Ok(d);
            };
            let len = u16::from_le_bytes([len[0], len[1]]) as usize;
            let Some(frame) = data.get(len..) else {
                return Ok(d);
            };
            return decode_wifi(frame, &mut d).map(|()| d);
        }
        _ => return Err(Skip::UnsupportedLink),
    }
    Ok(d)
}

fn sll_mac(addr_len: usize, addr: &[u8]) -> Option<Mac> {
    (addr_len == 6).then(|| Mac([addr[0], addr[1], addr[2], addr[3], addr[4], addr[5]]))
}

/// SLL carries only one address: the sender's for packets we received, ours for outgoing ones.
/// Either way it is the link-layer source.
fn sll_roles(_pkttype: u16, mac: Option<Mac>) -> (Option<Mac>, Option<Mac>) {
    (mac, None)
}

fn mac_at(data: &[u8], at: usize) -> Option<Mac> {
    let b = data.get(at..at + 6)?;
    Some(Mac([b[0], b[1], b[2], b[3], b[4], b[5]]))
}

fn decode_ethernet(data: &[u8], d: &mut Decoded) {
    let dst = mac_at(data, 0);
    let src = mac_at(data, 6);
    let Some(t) = data.get(12..14) else {
        d.src = src.map(|mac| Endpoint {
            mac: Some(mac),
            ip: None,
        });
        d.dst = dst.map(|mac| Endpoint {
            mac: Some(mac),
            ip: None,
        });
        return;
    };
    let ether_type = u16::from_be_bytes([t[0], t[1]]);
    let rest = &data[14..];
    if ether_type <= 1500 {
        // 802.3 length field: an LLC frame. With a SNAP header it may still carry IP.
        d.proto |= Proto::LLC;
        if let Some(snap) = rest.get(..8)
            && snap[..3] == [0xaa, 0xaa, 0x03]
        {
            let inner = u16::from_be_bytes([snap[6], snap[7]]);
            decode_ether_type(inner, &rest[8..], src, dst, d);
            return;
        }
        set_macs(d, src, dst);
        return;
    }
    decode_ether_type(ether_type, rest, src, dst, d);
}

fn set_macs(d: &mut Decoded, src: Option<Mac>, dst: Option<Mac>) {
    d.src = src.map(|mac| Endpoint {
        mac: Some(mac),
        ip: None,
    });
    d.dst = dst.map(|mac| Endpoint {
        mac: Some(mac),
        ip: None,
    });
}

fn decode_wifi(frame: &[u8], d: &mut Decoded) -> Result<(), Skip> {
    let Some(fc) = frame.get(..2) else {
        return Ok(());
    };
    let frame_type = (fc[0] >> 2) & 0b11;
    if frame_type != 2 {
        return Err(Skip::WifiNonData);
    }
    let subtype = fc[0] >> 4;
    let to_ds = fc[1] & 0x01 != 0;
    let from_ds = fc[1] & 0x02 != 0;
    let protected = fc[1] & 0x40 != 0;
    let order = fc[1] & 0x80 != 0;
    let a1 = mac_at(frame, 4);
    let a2 = mac_at(frame, 10);
    let a3 = mac_at(frame, 16);
    let a4 = mac_at(frame, 24);
    let (dst, src) = match (to_ds, from_ds) {
        (false, false) => (a1, a2),
        (true, false) => (a3, a2),
        (false, true) => (a1, a3),
        (true, true) => (a3, a4),
    };
    let qos = subtype & 0x8 != 0;
    let null_data = subtype & 0x4 != 0;
    let mut hdr_len = 24 + if to_ds && from_ds { 6 } else { 0 };
    if qos {
        hdr_len += 2;
        if order {
            hdr_len += 4;
        }
    }
    if protected || null_data {
        set_macs(d, src, dst);
        return Ok(());
    }
    match frame.get(hdr_len..hdr_len + 8) {
        Some(llc) if llc[..3] == [0xaa, 0xaa, 0x03] => {
            let et = u16::from_be_bytes([llc[6], llc[7]]);
            decode_ether_type(et, &frame[hdr_len + 8..], src, dst, d);
        }
        _ => {
            d.proto |= Proto::LLC;
            set_macs(d, src, dst);
        }
    }
    Ok(())
}

fn decode_raw_ip(data: &[u8], d: &mut Decoded) {
    if let Some(ether_type) = ip_ether_type(data) {
        decode_ether_type(ether_type, data, None, None, d);
    }
}

/// The EtherType of an IP packet, from its version nibble.
fn ip_ether_type(data: &[u8]) -> Option<u16> {
    match data.first().map(|b| b >> 4) {
        Some(4) => Some(ETH_IPV4),
        Some(6) => Some(ETH_IPV6),
        _ => None,
    }
}

/// Skip an MPLS label stack (4 bytes a label, up to the bottom-of-stack bit) to the IP packet
/// under it.
fn decode_mpls(rest: &[u8], src: Option<Mac>, dst: Option<Mac>, d: &mut Decoded) {
    let mut at = 0;
    while let Some(label) = rest.get(at..at + 4) {
        at += 4;
        if label[2] & 1 == 1 {
            let inner = rest.get(at..).unwrap_or_default();
            if let Some(ether_type) = ip_ether_type(inner) {
                decode_ether_type(ether_type, inner, src, dst, d);
            }
            return;
        }
    }
}

fn decode_ether_type(
    ether_type: u16,
    rest: &[u8],
    src: Option<Mac>,
    dst: Option<Mac>,
    d: &mut Decoded,
) {
    set_macs(d, src, dst);
    match ether_type {
        ETH_ARP => {
            d.proto |= Proto::ARP;
            return;
        }
        ETH_EAPOL => {
            d.proto |= Proto::EAPOL;
            return;
        }
        ETH_MPLS_UNICAST | ETH_MPLS_MULTICAST => return decode_mpls(rest, src, dst, d),
        _ => {}
    }
    let sliced = LaxSlicedPacket::from_ether_type(EtherType(ether_type), rest);
    if !sliced.link_exts.is_empty() {
        d.proto |= Proto::VLAN;
        // The EtherType after the VLAN tags decides ARP/EAPOL too.
        if let Some(etherparse::LaxLinkExtSlice::Vlan(v)) = sliced.link_exts.last() {
            match v.ether_type().0 {
                ETH_ARP => d.proto |= Proto::ARP,
                ETH_EAPOL => d.proto |= Proto::EAPOL,
                _ => {}
            }
        }
    }
    let Some(net) = &sliced.net else {
        if ether_type == ETH_IPV4 {
            ipv4_fixed_header(rest, d);
        }
        return;
    };
    let ip_payload: &etherparse::LaxIpPayloadSlice;
    let ip_header_start: &[u8];
    // Only the first fragment (offset 0) starts with the transport header.
    let first_fragment: bool;
    match net {
        LaxNetSlice::Arp(_) => {
            d.proto |= Proto::ARP;
            return;
        }
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            d.proto |= Proto::IPV4;
            d.ip_len = u32::from(h.total_len());
            set_ips(
                d,
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
            );
            ipv4_option_flags(h.options(), d);
            ip_payload = v4.payload();
            ip_header_start = h.slice();
            first_fragment = h.fragments_offset().value() == 0;
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            d.proto |= Proto::IPV6;
            d.ip_len = u32::from(h.payload_length()) + 40;
            set_ips(
                d,
                IpAddr::V6(Ipv6Addr::from(h.source())),
                IpAddr::V6(Ipv6Addr::from(h.destination())),
            );
            if h.next_header().0 == 0 && hop_by_hop_router_alert(rest.get(40..).unwrap_or_default())
            {
                d.proto |= Proto::ROUTER_ALERT;
            }
            ip_payload = v6.payload();
            ip_header_start = h.slice();
            first_fragment = ipv6_first_fragment(h.next_header().0, v6.extensions().slice());
        }
    }
    // A zero IPv4 total length (TCP segmentation offload) makes etherparse fall back to the slice.
    if d.ip_len == 0 || ip_payload.len_source == etherparse::LenSource::Slice {
        d.ip_len = d.ip_len.max(
            byte_offset(ip_header_start, ip_payload.payload) + ip_payload.payload.len() as u32,
        );
    }
    // Bytes of IP payload the header promises, whether or not they were captured.
    let ip_header_bytes = byte_offset(ip_header_start, ip_payload.payload);
    let ip_payload_len = d.ip_len.saturating_sub(ip_header_bytes);
    d.ip_proto = ip_payload.ip_number.0;
    match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            d.proto |= Proto::TCP;
            d.src_port = tcp.source_port();
            d.dst_port = tcp.destination_port();
            d.payload_len = ip_payload_len.saturating_sub(u32::from(tcp.data_offset()) * 4);
            tcp_app_flags(tcp.payload(), d);
        }
        Some(TransportSlice::Udp(udp)) => {
            d.proto |= Proto::UDP;
            d.src_port = udp.source_port();
            d.dst_port = udp.destination_port();
            d.payload_len = u32::from(udp.length()).saturating_sub(8);
            udp_app_flags(udp.payload(), d);
        }
        Some(TransportSlice::Icmpv4(_)) => d.proto |= Proto::ICMP,
        Some(TransportSlice::Icmpv6(_)) => d.proto |= Proto::ICMPV6,
        None => match ip_payload.ip_number.0 {
            // Header cut short by the snap length, or a fragment: keep what we know.
            6 | 17 => {
                let udp = d.ip_proto == 17;
                d.proto |= if udp { Proto::UDP } else { Proto::TCP };
                if !first_fragment {
                    // A later fragment carries only payload.
                    d.payload_len = ip_payload_len;
                    return;
                }
                let header = ip_payload.payload;
                if let Some(p) = header.get(..4) {
                    d.src_port = u16::from_be_bytes([p[0], p[1]]);
                    d.dst_port = u16::from_be_bytes([p[2], p[3]]);
                }
                if udp {
                    d.payload_len = ip_payload_len.saturating_sub(8);
                    udp_app_flags(&[], d);
                } else {
                    // The data offset says how long the TCP header is, when it was captured.
                    if let Some(&b) = header.get(12)
                        && b >> 4 >= 5
                    {
                        d.payload_len = ip_payload_len.saturating_sub(u32::from(b >> 4) * 4);
                    }
                    tcp_app_flags(&[], d);
                }
            }
            1 => d.proto |= Proto::ICMP,
            58 => d.proto |= Proto::ICMPV6,
            _ => d.proto |= Proto::OTHER_IP,
        },
    }
}

/// An IPv4 packet whose header etherparse rejected because its options were cut off: the fixed
/// 20-byte header still gives addresses, lengths and the protocol.
fn ipv4_fixed_header(data: &[u8], d: &mut Decoded) {
    let Some(h) = data.get(..20) else { return };
    if h[0] >> 4 != 4 || h[0] & 0x0f < 5 {
        return;
    }
    d.proto |= Proto::IPV4;
    d.ip_len = u32::from(u16::from_be_bytes([h[2], h[3]]));
    d.ip_proto = h[9];
    let addr = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
    set_ips(d, addr(&h[12..16]), addr(&h[16..20]));
    d.proto |= match h[9] {
        1 => Proto::ICMP,
        6 => Proto::TCP,
        17 => Proto::UDP,
        _ => Proto::OTHER_IP,
    };
}

/// False when the IPv6 extension headers `exts` (the first of type `next`) hold a fragment header
/// with a non-zero offset: only the first fragment starts with the transport header.
///
/// Walks the bytes itself: etherparse 0.19's extension iterator reads past the end of a lax slice
/// whose chain stops early (a heap overflow under AddressSanitizer, found by the decode_frame
/// fuzz target), and its fragment-offset getter mixes in the low bits.
fn ipv6_first_fragment(mut next: u8, exts: &[u8]) -> bool {
    let mut at = 0;
    while let Some(h) = exts.get(at..at + 8) {
        at += match next {
            44 => return u16::from_be_bytes([h[2], h[3]]) >> 3 == 0,
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6: 8-byte units.
            0 | 43 | 60 | 135 | 139 | 140 => (usize::from(h[1]) + 1) * 8,
            // Authentication header: 4-byte units.
            51 => (usize::from(h[1]) + 2) * 4,
            _ => return true,
        };
        next = h[0];
    }
    true
}

/// Offset of `inner` within the allocation `outer` starts, or 0 if `inner` is not after it.
fn byte_offset(outer: &[u8], inner: &[u8]) -> u32 {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize) as u32
}

fn set_ips(d: &mut Decoded, src: IpAddr, dst: IpAddr) {
    let src_mac = d.src.and_then(|e| e.mac);
    let dst_mac = d.dst.and_then(|e| e.mac);
    d.src = Some(Endpoint {
        mac: src_mac,
        ip: Some(src),
    });
    d.dst = Some(Endpoint {
        mac: dst_mac,
        ip: Some(dst),
    });
}

fn ipv4_option_flags(options: &[u8], d: &mut Decoded) {
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => {
                d.proto |= Proto::IP_PADDING;
                break;
            }
            1 => {
                d.proto |= Proto::IP_PADDING;
                i += 1;
            }
            _ => {
                if kind == 148 {
                    d.proto |= Proto::ROUTER_ALERT;
                }
                let len = options.get(i + 1).copied().unwrap_or(0) as usize;
                if len < 2 {
                    break;
                }
                i += len;
            }
        }
    }
}

fn hop_by_hop_router_alert(ext: &[u8]) -> bool {
    let Some(&len_units) = ext.get(1) else {
        return false;
    };
    let end = (usize::from(len_units) + 1) * 8;
    let opts = ext.get(2..end.min(ext.len())).unwrap_or_default();
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        if kind == 0 {
            i += 1;
            continue;
        }
        if kind == 5 {
            return true;
        }
        i += 2 + opts.get(i + 1).copied().unwrap_or(255) as usize;
    }
    false
}

fn has_port(d: &Decoded, ports: &[u16]) -> bool {
    ports.contains(&d.src_port) || ports.contains(&d.dst_port)
}

fn tcp_app_flags(payload: &[u8], d: &mut Decoded) {
    if has_port(d, &[53]) {
        d.proto |= Proto::DNS;
    }
    let tls_header = matches!(payload, [20..=23, 3, 0..=4, ..]);
    if tls_header || (d.payload_len > 0 && has_port(d, &[443, 8443, 8883, 993, 995, 5223])) {
        d.proto |= Proto::TLS;
        return;
    }
    const HTTP_STARTS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HTTP/",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"NOTIFY ",
    ];
    if HTTP_STARTS.iter().any(|s| payload.starts_with(s))
        || (d.payload_len > 0 && has_port(d, &[80, 8080]))
    {
        d.proto |= Proto::HTTP;
    }
}

fn udp_app_flags(payload: &[u8], d: &mut Decoded) {
    if has_port(d, &[67, 68]) {
        d.proto |= Proto::BOOTP;
        if payload.get(236..240) == Some(&[0x63, 0x82, 0x53, 0x63]) {
            d.proto |= Proto::DHCP;
        }
    }
    if has_port(d, &[1900]) {
        d.proto |= Proto::SSDP;
    }
    if has_port(d, &[5353]) {
        d.proto |= Proto::MDNS;
    } else if has_port(d, &[53]) {
        d.proto |= Proto::DNS;
    }
    if has_port(d, &[123]) {
        d.proto |= Proto::NTP;
    }
}

/// Returns the IPv4 address as an [`IpAddr`]; a small helper for tests and writers.
pub fn ipv4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn eth_udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 1, 10], [8, 8, 8, 8], 64)
            .udp(src_port, dst_port);
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ethernet_udp_dns() {
        let frame = eth_udp(40000, 53, &[0u8; 30]);
        let d = decode_frame(LinkType::ETHERNET, &frame).unwrap();
        assert_eq!(d.ip_len, 20 + 8 + 30);
        assert_eq!(d.payload_len, 30);
        assert_eq!((d.src_port, d.dst_port, d.ip_proto), (40000, 53, 17));
        assert!(d.proto.contains(Proto::IPV4 | Proto::UDP | Proto::DNS));
        assert_eq!(d.src.unwrap().ip, Some(ipv4(192, 168, 1, 10)));
        assert_eq!(d.src.unwrap().mac, Some(Mac([2, 0, 0, 0, 0, 1])));
    }

    #[test]
    fn snap_truncated_tcp_keeps_lengths_from_headers() {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(5000, 443, 1, 1000);
        let mut frame = Vec::new();
        builder.write(&mut frame, &[0x17, 3, 3, 0, 100]).unwrap();
        frame.extend(std::iter::repeat_n(0u8, 95));
        // Fix the IP total length to cover the padding bytes we appended as payload.
        let total = (frame.len() - 14) as u16;
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        let d = decode_frame(LinkType::ETHERNET, &frame[..60]).unwrap();
        assert_eq!(d.ip_len, u32::from(total));
        assert_eq!(d.payload_len, 100);
        assert!(d.proto.contains(Proto::TCP | Proto::TLS));
    }

    #[test]
    fn never_panics_on_short_frames() {
        let frame = eth_udp(1, 2, &[1, 2, 3]);
        for link in [0, 1, 12, 101, 105, 108, 113, 127, 228, 229, 276] {
            for n in 0..frame.len() {
                let _ = decode_frame(LinkType(link), &frame[..n]);
            }
        }
    }

    #[test]
    fn unknown_link_is_skipped_by_name() {
        assert_eq!(
            decode_frame(LinkType(9), &[0; 10]),
            Err(Skip::UnsupportedLink)
        );
        assert_eq!(LinkType(9).name(), "PPP");
        assert_eq!(LinkType(4242).name(), "LINKTYPE_4242");
    }

    #[test]
    fn arp_and_eapol() {
        let mut frame = vec![0xff; 6];
        frame.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        frame.extend([0u8; 28]);
        assert!(
            decode_frame(LinkType::ETHERNET, &frame)
                .unwrap()
                .proto
                .contains(Proto::ARP)
        );
        frame[12..14].copy_from_slice(&[0x88, 0x8e]);
        assert!(
            decode_frame(LinkType::ETHERNET, &frame)
                .unwrap()
                .proto
                .contains(Proto::EAPOL)
        );
    }

    /// An Ethernet IPv4 UDP frame with 100 payload bytes and the given fragment field (flags and
    /// offset in 8-byte units, as on the wire).
    fn eth_udp_fragment(flags_offset: u16) -> Vec<u8> {
        let mut frame = eth_udp(5353, 5353, &[0u8; 100]);
        frame[20..22].copy_from_slice(&flags_offset.to_be_bytes());
        frame
    }

    // tcpdump's bootp_asan-2.pcap and esp_truncated.pcap: tshark shows the ports of a first
    // fragment, hush showed none.
    #[test]
    fn first_fragment_keeps_ports_later_ones_are_all_payload() {
        let first = decode_frame(LinkType::ETHERNET, &eth_udp_fragment(0x2000)).unwrap();
        assert_eq!((first.src_port, first.dst_port), (5353, 5353));
        assert_eq!(first.payload_len, 100);
        assert!(first.proto.contains(Proto::UDP | Proto::MDNS));

        let later = decode_frame(LinkType::ETHERNET, &eth_udp_fragment(185)).unwrap();
        assert_eq!((later.src_port, later.dst_port), (0, 0));
        assert_eq!(later.payload_len, 108);
        assert!(later.proto.contains(Proto::UDP));
    }

    #[test]
    fn ipv6_first_fragment_keeps_ports() {
        let mut packet = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
        packet.extend([0xfe, 0x80].iter().chain(&[0u8; 13]).chain(&[1]));
        packet.extend([0xfe, 0x80].iter().chain(&[0u8; 13]).chain(&[2]));
        // Fragment header: next header UDP, offset 0, more fragments; then a UDP header.
        packet.extend([17, 0, 0, 1, 0, 0, 0, 7]);
        packet.extend([0x14, 0xe9, 0x14, 0xe9, 0x05, 0xdc, 0, 0]);
        let d = decode_frame(LinkType::RAW, &packet).unwrap();
        assert!(
            d.proto.contains(Proto::IPV6 | Proto::UDP | Proto::MDNS),
            "{d:?}"
        );
        assert_eq!((d.src_port, d.dst_port, d.ip_proto), (5353, 5353, 17));
    }

    #[test]
    fn snap_cut_tcp_header_gives_payload_from_data_offset() {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(5000, 80, 1, 1000);
        let mut frame = Vec::new();
        builder.write(&mut frame, &[b'x'; 300]).unwrap();
        // 14 + 20 + 13 bytes: the data offset byte is in, the rest of the TCP header is not.
        let d = decode_frame(LinkType::ETHERNET, &frame[..47]).unwrap();
        assert_eq!((d.src_port, d.dst_port), (5000, 80));
        assert_eq!(d.payload_len, 300);
        assert!(d.proto.contains(Proto::TCP | Proto::HTTP));
    }

    // tcpdump's ip_printroute_asan.pcap: a 60-byte IPv4 header (options) cut off at 46 bytes.
    #[test]
    fn ipv4_with_cut_options_keeps_the_fixed_header() {
        let mut frame = eth_udp(1, 2, &[0u8; 60]);
        frame[14] = 0x4f;
        let d = decode_frame(LinkType::ETHERNET, &frame[..14 + 46]).unwrap();
        assert!(d.proto.contains(Proto::IPV4 | Proto::UDP));
        assert_eq!((d.ip_proto, d.ip_len), (17, 20 + 8 + 60));
        assert_eq!(d.dst.unwrap().ip, Some(ipv4(8, 8, 8, 8)));
    }

    // tcpdump's tok2str-oobr-2.pcap: IPv4 under an MPLS label.
    #[test]
    fn mpls_label_stack_is_skipped_to_ip() {
        let plain = eth_udp(40000, 53, &[0u8; 20]);
        let mut frame = plain[..12].to_vec();
        frame.extend([0x88, 0x47, 0x03, 0xe8, 0x60, 0xff, 0x03, 0xe9, 0x61, 0xff]);
        frame.extend(&plain[14..]);
        let d = decode_frame(LinkType::ETHERNET, &frame).unwrap();
        assert!(d.proto.contains(Proto::IPV4 | Proto::UDP | Proto::DNS));
        assert_eq!((d.src_port, d.dst_port), (40000, 53));
        assert_eq!(d.src.unwrap().mac, Some(Mac([2, 0, 0, 0, 0, 1])));
    }

    // tcpdump's LINKTYPE_IPV6_invalid.pcap: an IPv4 packet under the IPv6-only link type.
    #[test]
    fn version_specific_raw_link_types_decode_only_their_version() {
        let v4 = &eth_udp(1, 2, &[0u8; 8])[14..];
        assert!(
            decode_frame(LinkType::IPV4, v4)
                .unwrap()
                .proto
                .contains(Proto::UDP)
        );
        assert_eq!(
            decode_frame(LinkType::IPV6, v4).unwrap(),
            Decoded::default()
        );
        assert!(
            decode_frame(LinkType::RAW, v4)
                .unwrap()
                .proto
                .contains(Proto::UDP)
        );
    }

    // Found by the decode_frame and read_any fuzz targets: an IPv6 header whose hop-by-hop
    // extension names another extension that is not there. Iterating etherparse's extension
    // slice read past the end of the frame.
    #[test]
    fn fuzz_ipv6_extension_chain_cut_short() {
        let mut packet = vec![0x63, 0x30, 0x30, 0x30, 0x30, 0x30, 0x00];
        packet.extend([0x30; 33]);
        packet.extend([0x00, 0x00]);
        packet.extend([0x30; 6]);
        for link in [LinkType::RAW, LinkType::IPV6] {
            let d = decode_frame(link, &packet).unwrap();
            assert!(d.proto.contains(Proto::IPV6));
        }
    }

    #[test]
    fn ipv6_fragment_offset_is_read_past_other_extensions() {
        // Hop-by-hop (8 bytes) then a fragment header at offset 8 (units of 8 bytes).
        let exts = [44, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0x40, 0, 0, 0, 1];
        assert!(!ipv6_first_fragment(0, &exts));
        let first = [44, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0x01, 0, 0, 0, 1];
        assert!(ipv6_first_fragment(0, &first));
        assert!(ipv6_first_fragment(0, &exts[..4]));
    }
}
