//! Per-packet CSV in and out.
//!
//! Three layouts are read, chosen from the header line:
//!
//! - **hush's own** ([`write_csv`]): `time_s,direction,frame_len,ip_len,payload_len,protocols,
//!   src,dst,src_port,dst_port,ip_proto`; reads back exactly what was written.
//! - **a tshark fields export** with a header row, comma- or tab-separated, e.g.
//!   `tshark -r in.pcap -T fields -E header=y -E separator=, -E quote=d -e frame.time_epoch
//!   -e frame.len -e eth.src -e eth.dst -e ip.src -e ip.dst -e ip.proto -e tcp.srcport
//!   -e tcp.dstport -e udp.srcport -e udp.dstport -e tcp.len -e udp.length -e frame.protocols`.
//!   Needs `frame.time_epoch` or `frame.time_relative`, and `frame.len` (or `frame.cap_len`); every
//!   other column is optional (iPET's export of `frame.time_relative, ip.src, ip.dst, ip.proto,
//!   tcp.len, udp.length, eth.src, eth.dst` plus `frame.len` works). Unknown columns are ignored;
//!   for a multi-valued cell (`1.2.3.4,5.6.7.8` inside quotes) the first value counts.
//! - **minimal**: `time,direction,size` (also `time_s` or `t_ns` for the time column). Direction
//!   is `out`/`in`/`?` (also `s`/`r`, `sent`/`received`, `1`/`-1`). Without a direction column,
//!   a negative size means inbound, as in the website-fingerprinting literature.

use std::io::{BufRead, Write};
use std::net::IpAddr;

use crate::error::{ErrorKind, Result, TraceError};
use crate::packet::{Direction, Endpoint, Mac, Packet, Proto};
use crate::read::ReadOptions;
use crate::trace::{EndpointTable, Format, ReadReport, Trace};

/// Columns of hush's own CSV layout, in order.
pub const HUSH_COLUMNS: [&str; 11] = [
    "time_s",
    "direction",
    "frame_len",
    "ip_len",
    "payload_len",
    "protocols",
    "src",
    "dst",
    "src_port",
    "dst_port",
    "ip_proto",
];

/// Longest line accepted; a longer one is an error rather than an unbounded allocation.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Where each field comes from, resolved once from the header.
#[derive(Debug, Default)]
struct Columns {
    /// (index, scale to ns, is relative).
    time: Option<(usize, TimeUnit)>,
    dir: Option<usize>,
    size: Option<usize>,
    ip_len: Option<usize>,
    payload_len: Option<usize>,
    tcp_len: Option<usize>,
    udp_length: Option<usize>,
    protocols: Option<usize>,
    /// hush's `src`/`dst` cells: `ip (mac)`, `mac` or `ip`.
    src: Option<usize>,
    dst: Option<usize>,
    eth_src: Option<usize>,
    eth_dst: Option<usize>,
    ip_src: Option<usize>,
    ip_dst: Option<usize>,
    ip6_src: Option<usize>,
    ip6_dst: Option<usize>,
    src_port: Vec<usize>,
    dst_port: Vec<usize>,
    ip_proto: Option<usize>,
    signed_size: bool,
}

#[derive(Debug, Clone, Copy)]
enum TimeUnit {
    Seconds,
    Nanos,
}

/// Read a CSV trace (see the module docs for the layouts), streaming line by line.
pub fn read_csv(mut src: impl BufRead, name: &str, opts: ReadOptions) -> Result<Trace> {
    let mut report = ReadReport {
        format: Some(Format::Csv),
        ..ReadReport::default()
    };
    let mut line = String::new();
    let mut line_no = 0u64;
    // Header: the first non-empty line.
    let header = loop {
        line_no += 1;
        if read_line(&mut src, &mut line, name, line_no)? == 0 {
            return Err(TraceError::new(ErrorKind::Invalid("empty CSV file".into())).in_file(name));
        }
        let l = line.trim_start_matches('\u{feff}').trim();
        if !l.is_empty() {
            break l.to_string();
        }
    };
    let sep = if header.contains('\t') { '\t' } else { ',' };
    let names: Vec<String> = split_fields(&header, sep)
        .into_iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let cols = resolve(&names).map_err(|e| e.at_line(line_no).in_file(name))?;

    let mut endpoints = EndpointTable::default();
    let mut packets = Vec::new();
    loop {
        line_no += 1;
        if read_line(&mut src, &mut line, name, line_no)? == 0 {
            break;
        }
        let l = line.trim_end_matches(['\n', '\r']);
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        report.records += 1;
        let fields = split_fields(l, sep);
        match parse_row(&fields, &cols, &mut endpoints) {
            Ok(p) => {
                report.captured_bytes += u64::from(p.frame_len);
                packets.push(p);
            }
            Err(kind) => {
                let err = TraceError::new(kind).at_line(line_no).in_file(name);
                if opts.strict {
                    return Err(err);
                }
                report.skip("bad CSV line");
                report.warn(err.to_string());
            }
        }
    }
    if packets.is_empty() && report.records > 0 {
        // Every row failed: this is not a trace at all, say why the first row failed.
        let first = report.warnings.first().cloned().unwrap_or_default();
        return Err(TraceError::new(ErrorKind::Invalid(format!(
            "no readable row; first problem: {first}"
        )))
        .in_file(name));
    }
    let mut trace = Trace {
        name: name.to_string(),
        packets,
        endpoints: endpoints.into_list(),
        report,
    };
    trace.sort_by_time();
    Ok(trace)
}

fn read_line(src: &mut impl BufRead, line: &mut String, name: &str, line_no: u64) -> Result<usize> {
    line.clear();
    let n = std::io::Read::take(&mut *src, MAX_LINE_BYTES as u64 + 1)
        .read_line(line)
        .map_err(|e| TraceError::from(e).at_line(line_no).in_file(name))?;
    if n > MAX_LINE_BYTES {
        return Err(TraceError::new(ErrorKind::Invalid(format!(
            "line longer than {MAX_LINE_BYTES} bytes"
        )))
        .at_line(line_no)
        .in_file(name));
    }
    Ok(n)
}

/// Split on `sep`, honouring double quotes (`""` inside quotes is a literal quote).
fn split_fields(line: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn resolve(names: &[String]) -> Result<Columns> {
    let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
    let mut c = Columns {
        time: find(&["time_s", "time", "frame.time_epoch", "frame.time_relative"])
            .map(|i| (i, TimeUnit::Seconds))
            .or_else(|| find(&["t_ns"]).map(|i| (i, TimeUnit::Nanos))),
        dir: find(&["direction", "dir"]),
        size: find(&[
            "frame_len",
            "size",
            "frame.len",
            "frame.cap_len",
            "length",
            "len",
        ]),
        ip_len: find(&["ip_len", "ip.len"]),
        payload_len: find(&["payload_len"]),
        tcp_len: find(&["tcp.len"]),
        udp_length: find(&["udp.length"]),
        protocols: find(&["protocols", "frame.protocols"]),
        src: find(&["src"]),
        dst: find(&["dst"]),
        eth_src: find(&["eth.src"]),
        eth_dst: find(&["eth.dst"]),
        ip_src: find(&["ip.src"]),
        ip_dst: find(&["ip.dst"]),
        ip6_src: find(&["ipv6.src"]),
        ip6_dst: find(&["ipv6.dst"]),
        src_port: ["src_port", "tcp.srcport", "udp.srcport"]
            .iter()
            .filter_map(|n| find(&[n]))
            .collect(),
        dst_port: ["dst_port", "tcp.dstport", "udp.dstport"]
            .iter()
            .filter_map(|n| find(&[n]))
            .collect(),
        ip_proto: find(&["ip_proto", "ip.proto"]),
        signed_size: false,
    };
    if c.time.is_none() {
        return Err(TraceError::new(ErrorKind::MissingColumn(
            "time (time_s, time, t_ns, frame.time_epoch or frame.time_relative)".into(),
        )));
    }
    if c.size.is_none() {
        return Err(TraceError::new(ErrorKind::MissingColumn(
            "size (frame_len, size, frame.len or frame.cap_len)".into(),
        )));
    }
    c.signed_size = c.dir.is_none();
    Ok(c)
}

fn cell<'a>(fields: &'a [String], i: Option<usize>) -> Option<&'a str> {
    // A multi-valued tshark cell (`a,b` inside quotes) counts by its first value.
    let v = fields.get(i?)?.trim();
    let v = v.split(',').next().unwrap_or(v).trim();
    (!v.is_empty()).then_some(v)
}

fn bad(field: &str, detail: impl Into<String>) -> ErrorKind {
    ErrorKind::BadField {
        field: field.to_string(),
        detail: detail.into(),
    }
}

fn num<T: std::str::FromStr>(
    fields: &[String],
    i: Option<usize>,
    field: &str,
) -> std::result::Result<Option<T>, ErrorKind> {
    match cell(fields, i) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| bad(field, format!("{v:?} is not a valid number"))),
    }
}

fn parse_row(
    fields: &[String],
    c: &Columns,
    endpoints: &mut EndpointTable,
) -> std::result::Result<Packet, ErrorKind> {
    let mut p = Packet::default();
    let (ti, unit) = c
        .time
        .ok_or_else(|| ErrorKind::MissingColumn("time".into()))?;
    let t = cell(fields, Some(ti)).ok_or_else(|| bad("time", "empty"))?;
    p.t_ns = match unit {
        TimeUnit::Nanos => t
            .parse()
            .map_err(|_| bad("time", format!("{t:?} is not an integer of ns")))?,
        TimeUnit::Seconds => seconds_to_ns(t)
            .ok_or_else(|| bad("time", format!("{t:?} is not a time in seconds")))?,
    };
    let size: i64 = num(fields, c.size, "size")?.ok_or_else(|| bad("size", "empty"))?;
    if c.signed_size && size < 0 {
        p.dir = Direction::Inbound;
    } else if c.signed_size {
        p.dir = Direction::Outbound;
    } else if size < 0 {
        return Err(bad("size", format!("{size} is negative")));
    }
    p.frame_len = u32::try_from(size.unsigned_abs())
        .map_err(|_| bad("size", format!("{size} is too large")))?;
    if let Some(d) = cell(fields, c.dir) {
        p.dir = match d.to_ascii_lowercase().as_str() {
            "out" | "s" | "sent" | "outbound" | "1" | "+1" => Direction::Outbound,
            "in" | "r" | "received" | "inbound" | "-1" => Direction::Inbound,
            "?" | "unknown" | "0" => Direction::Unknown,
            other => return Err(bad("direction", format!("{other:?} is not out, in or ?"))),
        };
    }
    p.ip_len = num(fields, c.ip_len, "ip_len")?.unwrap_or(0);
    p.ip_proto = num(fields, c.ip_proto, "ip_proto")?.unwrap_or(0);
    for &i in &c.src_port {
        if let Some(v) = num::<u16>(fields, Some(i), "src_port")? {
            p.src_port = v;
        }
    }
    for &i in &c.dst_port {
        if let Some(v) = num::<u16>(fields, Some(i), "dst_port")? {
            p.dst_port = v;
        }
    }
    p.payload_len = match (
        num(fields, c.payload_len, "payload_len")?,
        num(fields, c.tcp_len, "tcp.len")?,
    ) {
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => {
            num::<u32>(fields, c.udp_length, "udp.length")?.map_or(0, |l| l.saturating_sub(8))
        }
    };
    if let Some(protos) = cell_raw(fields, c.protocols) {
        p.proto = parse_protocols(protos);
    }
    let src = endpoint(fields, c.src, c.eth_src, c.ip_src, c.ip6_src, "src")?;
    let dst = endpoint(fields, c.dst, c.eth_dst, c.ip_dst, c.ip6_dst, "dst")?;
    infer_flags(&mut p, &src, fields, c);
    p.src = endpoints.intern(src);
    p.dst = endpoints.intern(dst);
    Ok(p)
}

/// A cell without the multi-value split (protocol lists use `:` and never `,`).
fn cell_raw(fields: &[String], i: Option<usize>) -> Option<&str> {
    let v = fields.get(i?)?.trim();
    (!v.is_empty()).then_some(v)
}

/// Protocol flags from hush's `ipv4:tcp:tls` names or tshark's `eth:ethertype:ip:tcp:tls` list.
fn parse_protocols(list: &str) -> Proto {
    let mut flags = Proto::empty();
    for name in list.split(':') {
        let name = name.trim();
        if let Some(f) = Proto::from_name(&name.to_ascii_uppercase()) {
            flags |= f;
            continue;
        }
        flags |= match name.to_ascii_lowercase().as_str() {
            "ip" => Proto::IPV4,
            "llc" => Proto::LLC,
            "eapol" => Proto::EAPOL,
            "http" => Proto::HTTP,
            "tls" | "ssl" => Proto::TLS,
            "dhcp" => Proto::DHCP | Proto::BOOTP,
            "bootp" => Proto::BOOTP,
            "vlan" => Proto::VLAN,
            "ipv6" => Proto::IPV6,
            "icmpv6" => Proto::ICMPV6,
            "icmp" => Proto::ICMP,
            _ => Proto::empty(),
        };
    }
    flags
}

/// Flags a layout without a protocol column still implies (tshark exports of ports and lengths).
fn infer_flags(p: &mut Packet, src: &Endpoint, fields: &[String], c: &Columns) {
    if c.protocols.is_some() {
        return;
    }
    match src.ip {
        Some(IpAddr::V4(_)) => p.proto |= Proto::IPV4,
        Some(IpAddr::V6(_)) => p.proto |= Proto::IPV6,
        None => {}
    }
    match p.ip_proto {
        6 => p.proto |= Proto::TCP,
        17 => p.proto |= Proto::UDP,
        1 => p.proto |= Proto::ICMP,
        58 => p.proto |= Proto::ICMPV6,
        _ => {}
    }
    if p.ip_proto == 0 {
        if cell(fields, c.tcp_len).is_some() {
            p.proto |= Proto::TCP;
            p.ip_proto = 6;
        } else if cell(fields, c.udp_length).is_some() {
            p.proto |= Proto::UDP;
            p.ip_proto = 17;
        }
    }
}

fn endpoint(
    fields: &[String],
    hush: Option<usize>,
    eth: Option<usize>,
    ip4: Option<usize>,
    ip6: Option<usize>,
    field: &str,
) -> std::result::Result<Endpoint, ErrorKind> {
    if let Some(v) = cell_raw(fields, hush) {
        return parse_endpoint(v)
            .ok_or_else(|| bad(field, format!("{v:?} is not `ip (mac)`, a MAC or an IP")));
    }
    let mac = match cell(fields, eth) {
        Some(v) => Some(v.parse::<Mac>().map_err(|e| bad(field, e.to_string()))?),
        None => None,
    };
    let ip = match cell(fields, ip4).or_else(|| cell(fields, ip6)) {
        Some(v) => Some(
            v.parse::<IpAddr>()
                .map_err(|_| bad(field, format!("{v:?} is not an IP address")))?,
        ),
        None => None,
    };
    Ok(Endpoint { mac, ip })
}

/// The inverse of `Endpoint`'s Display: `ip (mac)`, `mac`, `ip` or `?`.
fn parse_endpoint(v: &str) -> Option<Endpoint> {
    if v == "?" {
        return Some(Endpoint {
            mac: None,
            ip: None,
        });
    }
    if let Some((ip, rest)) = v.split_once(" (") {
        let mac = rest.strip_suffix(')')?.parse().ok()?;
        return Some(Endpoint {
            mac: Some(mac),
            ip: Some(ip.parse().ok()?),
        });
    }
    if let Ok(mac) = v.parse::<Mac>() {
        return Some(Endpoint {
            mac: Some(mac),
            ip: None,
        });
    }
    v.parse().ok().map(|ip| Endpoint {
        mac: None,
        ip: Some(ip),
    })
}

/// Parse decimal seconds (`1461150005.123456789`, `-0.5`) into ns exactly, without going through
/// a float, which would lose nanoseconds on epoch times.
fn seconds_to_ns(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut frac_ns: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        frac_ns += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    let ns = whole.checked_mul(1_000_000_000)?.checked_add(frac_ns)?;
    Some(if neg { -ns } else { ns })
}

/// Write one row per packet in hush's layout ([`HUSH_COLUMNS`]); [`read_csv`] reads it back to
/// the same packets.
pub fn write_csv(trace: &Trace, mut out: impl Write) -> Result<()> {
    writeln!(out, "{}", HUSH_COLUMNS.join(","))?;
    let mut protos = String::new();
    for p in &trace.packets {
        protos.clear();
        for (i, name) in p.proto.names().enumerate() {
            if i > 0 {
                protos.push(':');
            }
            protos.push_str(name);
        }
        let sign = if p.t_ns < 0 { "-" } else { "" };
        let abs = p.t_ns.unsigned_abs();
        writeln!(
            out,
            "{sign}{}.{:09},{},{},{},{},{},{},{},{},{},{}",
            abs / 1_000_000_000,
            abs % 1_000_000_000,
            p.dir,
            p.frame_len,
            p.ip_len,
            p.payload_len,
            protos,
            trace.endpoint(p.src),
            trace.endpoint(p.dst),
            p.src_port,
            p.dst_port,
            p.ip_proto
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipv4;
    use crate::packet::EndpointId;

    fn read(s: &str) -> Result<Trace> {
        read_csv(s.as_bytes(), "t.csv", ReadOptions::default())
    }

    #[test]
    fn minimal_layout_with_and_without_direction() {
        let t = read("time,direction,size\n0.5,out,100\n0.25,in,60\n").unwrap();
        let got: Vec<(i64, Direction, u32)> = t
            .packets
            .iter()
            .map(|p| (p.t_ns, p.dir, p.frame_len))
            .collect();
        assert_eq!(
            got,
            [
                (250_000_000, Direction::Inbound, 60),
                (500_000_000, Direction::Outbound, 100)
            ]
        );
        assert_eq!(t.report.backwards_timestamps, 1);
        let t = read("time,size\n0,1500\n1,-52\n").unwrap();
        assert_eq!(t.packets[1].dir, Direction::Inbound);
        assert_eq!(t.packets[1].frame_len, 52);
    }

    #[test]
    fn tshark_ipet_columns() {
        let csv = "frame.time_relative\tframe.len\tip.src\tip.dst\tip.proto\ttcp.len\tudp.length\teth.src\teth.dst\n\
                   0.000000000\t66\t192.168.1.5\t52.1.2.3\t6\t0\t\t00:17:88:01:02:03\t00:01:02:03:04:05\n\
                   0.010000000\t90\t52.1.2.3\t192.168.1.5\t17\t\t56\t00:01:02:03:04:05\t00:17:88:01:02:03\n";
        let t = read(csv).unwrap();
        assert_eq!(t.packets.len(), 2);
        let p = t.packets[1];
        assert_eq!(
            (p.t_ns, p.frame_len, p.ip_proto, p.payload_len),
            (10_000_000, 90, 17, 48)
        );
        assert!(p.proto.contains(Proto::IPV4 | Proto::UDP));
        assert_eq!(t.endpoint(p.src).ip, Some(ipv4(52, 1, 2, 3)));
        assert_eq!(
            t.endpoint(p.dst).mac.unwrap().to_string(),
            "00:17:88:01:02:03"
        );
    }

    #[test]
    fn bad_field_names_line_and_field() {
        let err = read("time,direction,size\n0,out,100\n1,sideways,5\n").unwrap();
        assert_eq!(err.report.skipped.get("bad CSV line"), Some(&1));
        let err = read_csv(
            "time,direction,size\n0,out,100\n1,sideways,5\n".as_bytes(),
            "t.csv",
            ReadOptions { strict: true },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "t.csv:3: field \"direction\": \"sideways\" is not out, in or ?"
        );
    }

    #[test]
    fn prose_is_not_a_trace() {
        let err =
            read("Permission is hereby granted, free of charge\nto any person\n").unwrap_err();
        assert!(matches!(err.kind, ErrorKind::MissingColumn(_)), "{err}");
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn seconds_parse_exactly() {
        assert_eq!(
            seconds_to_ns("1461150005.123456789"),
            Some(1_461_150_005_123_456_789)
        );
        assert_eq!(seconds_to_ns("-0.5"), Some(-500_000_000));
        assert_eq!(seconds_to_ns(".25"), Some(250_000_000));
        assert_eq!(seconds_to_ns("1e3"), None);
        assert_eq!(seconds_to_ns(""), None);
    }

    proptest::proptest! {
        #[test]
        fn write_then_read_is_lossless(
            rows in proptest::collection::vec(
                (0i64..4_000_000_000_000_000_000, 0u8..3, 14u32..70_000, 0u32..70_000, 0u32..70_000,
                 0u32..(1 << 21), 0u32..4, 0u32..4, 0u16..=u16::MAX, 0u16..=u16::MAX, 0u8..=255),
                0..40)
        ) {
            let endpoints = vec![
                Endpoint { mac: Some(Mac([0, 1, 2, 3, 4, 5])), ip: Some(ipv4(10, 0, 0, 1)) },
                Endpoint { mac: Some(Mac::BROADCAST), ip: None },
                Endpoint { mac: None, ip: Some("fe80::1".parse().unwrap()) },
                Endpoint { mac: None, ip: None },
            ];
            let mut packets: Vec<Packet> = rows.iter().map(|r| Packet {
                t_ns: r.0,
                dir: [Direction::Unknown, Direction::Outbound, Direction::Inbound][r.1 as usize],
                frame_len: r.2, ip_len: r.3, payload_len: r.4,
                proto: Proto::from_bits_truncate(r.5),
                src: EndpointId(r.6), dst: EndpointId(r.7),
                src_port: r.8, dst_port: r.9, ip_proto: r.10,
            }).collect();
            packets.sort_by_key(|p| p.t_ns);
            let trace = Trace { name: "x".into(), packets, endpoints, report: ReadReport::default() };
            let mut buf = Vec::new();
            write_csv(&trace, &mut buf).unwrap();
            let back = read_csv(buf.as_slice(), "x", ReadOptions { strict: true }).unwrap();
            proptest::prop_assert_eq!(back.packets.len(), trace.packets.len());
            for (a, b) in trace.packets.iter().zip(&back.packets) {
                let mut b2 = *b;
                b2.src = a.src;
                b2.dst = a.dst;
                proptest::prop_assert_eq!(*a, b2);
                proptest::prop_assert_eq!(trace.endpoint(a.src), back.endpoint(b.src));
                proptest::prop_assert_eq!(trace.endpoint(a.dst), back.endpoint(b.dst));
            }
        }
    }
}
