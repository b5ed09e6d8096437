//! Per-packet CSV in and out.
//!
//! [`read_csv`] reads three kinds of text trace, told apart by the first non-blank line:
//!
//! 1. **A header row** naming columns (comma- or tab-separated, fields optionally in double
//!    quotes). Column names are matched case-insensitively and unknown columns are ignored, so
//!    one reader covers:
//!    - a tshark export, `tshark -r in.pcap -T fields -E header=y -E separator=, -e ...` (or tshark's
//!      default tab separator). Recognised fields:
//!
//!      | field | becomes |
//!      |---|---|
//!      | `frame.time_epoch` or `frame.time_relative` (one is required) | [`Packet::t_ns`] |
//!      | `frame.len` (or `frame.cap_len` when `frame.len` is absent; one is required) | [`Packet::frame_len`] |
//!      | `eth.src`, `eth.dst`, `ip.src`, `ip.dst`, `ipv6.src`, `ipv6.dst` | endpoints |
//!      | `ip.proto` (or `ipv6.nxt`) | [`Packet::ip_proto`] |
//!      | `tcp.srcport`, `tcp.dstport`, `udp.srcport`, `udp.dstport` | ports |
//!      | `tcp.len`, `udp.length` (minus the 8-byte UDP header) | [`Packet::payload_len`] |
//!      | `ip.len` (or `ipv6.plen` + 40) | [`Packet::ip_len`] |
//!      | `frame.protocols` (`eth:ethertype:ip:tcp:tls`) | [`Packet::proto`] |
//!
//!      Without `frame.protocols` the flags come from the other columns, as the pcap decoder
//!      sets them: IPv4/IPv6 from the addresses, TCP/UDP/ICMP from the IP protocol, application
//!      protocols by well-known port. The iPET column set (`frame.time_relative`, `ip.src`,
//!      `ip.dst`, `ip.proto`, `tcp.len`, `udp.length`, `eth.src`, `eth.dst`) reads as is. Empty
//!      cells are fine for every optional column. A cell holding several occurrences (`a,b`, as
//!      tshark writes for an ICMP error quoting an IP header) gives the first one; with `-E
//!      separator=,` such a row has too many fields and is a bad line, so export with `-E
//!      occurrence=f`.
//!    - the minimal `time,direction,size` form of the website-fingerprinting literature: a time
//!      column `time` or `time_s` (seconds) or `t_ns` (integer nanoseconds), a `direction` column
//!      (`out`/`in`/`?`, `s`/`r`, `sent`/`received`, `1`/`-1`) and a `size` column. Without a
//!      direction column (`time,size`) the sign of the size is the direction: negative sizes are
//!      inbound, positive ones outbound.
//!    - what [`write_csv`] writes: `time_s,direction,frame_len,ip_len,payload_len,protocols,src,
//!      dst,src_port,dst_port,ip_proto`, read back without loss.
//! 2. **maybenot's trace format**: no header, lines `<time_ns>,<dir>[,<size>]` with the time in
//!    integer nanoseconds from the start of the trace and `dir` one of `s`/`sn`/`nq` (sent by the
//!    client), `r`/`rn`/`nr` (received), `sp`/`dq` and `rp`/`dr` (padding or decoys sent and
//!    received). Padding lines are kept as packets, because an observer of a defended trace
//!    sees them; a missing size reads as 0.
//!
//! Sizes without further detail (maybenot, `time,direction,size`) go to [`Packet::frame_len`];
//! such traces have one endpoint with no address, used as both source and destination, and carry
//! their direction in [`Packet::dir`].
//!
//! Reading streams line by line; a line longer than [`MAX_LINE_BYTES`] is a bad line.

use std::io::{BufRead, BufWriter, Write};
use std::net::IpAddr;

use crate::packet::{Direction, Endpoint, Mac, Packet, Proto};
use crate::trace::{EndpointTable, Format, ReadReport, Trace};
use crate::{ErrorKind, ReadOptions, Result, TraceError};

/// Longest line accepted; tshark rows with every recognised field are well under 1 KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Header written by [`write_csv`].
pub const CSV_HEADER: &str =
    "time_s,direction,frame_len,ip_len,payload_len,protocols,src,dst,src_port,dst_port,ip_proto";

/// Read a CSV trace (see the module docs for the formats) into a [`Trace`] sorted by time.
///
/// A bad data line is an error in strict mode; otherwise it is counted in
/// [`ReadReport::skipped`] as `bad CSV line`, described in a warning, and skipped. When no line
/// at all could be read, the first bad line's error is returned either way, so a file that is
/// not a trace never reads as an empty one. A missing header column is
/// [`ErrorKind::MissingColumn`].
pub fn read_csv(mut src: impl BufRead, name: &str, opts: ReadOptions) -> Result<Trace> {
    let mut report = ReadReport {
        format: Some(Format::Csv),
        ..ReadReport::default()
    };
    let mut lines = LineReader::default();
    let located = |e: TraceError, n: u64| e.at_line(n).in_file(name);

    // The first non-blank line decides the format.
    let (first_n, first) = loop {
        match lines.next(&mut src).map_err(|e| e.in_file(name))? {
            None => return Ok(empty_trace(name, report)),
            Some((n, Line::Bad(e))) => return Err(located(e, n)),
            Some((_, Line::Text(t))) if t.trim().is_empty() => continue,
            Some((n, Line::Text(t))) => break (n, t.to_string()),
        }
    };
    let (layout, first_is_data) = if looks_like_maybenot(&first) {
        (Layout::maybenot(), true)
    } else {
        (
            Layout::from_header(&first).map_err(|e| located(e, first_n))?,
            false,
        )
    };

    let mut endpoints = EndpointTable::default();
    let mut packets = Vec::new();
    let mut first_error: Option<TraceError> = None;
    let mut cells = Vec::new();
    let mut handle = |text: Result<&str>,
                      n: u64,
                      report: &mut ReadReport,
                      first_error: &mut Option<TraceError>|
     -> Result<()> {
        report.records += 1;
        let parsed = text.and_then(|t| layout.parse(t, &mut cells, &mut endpoints));
        match parsed {
            Ok(p) => packets.push(p),
            Err(e) => {
                let e = located(e, n);
                if opts.strict {
                    return Err(e);
                }
                report.skip("bad CSV line");
                report.warn(e.to_string());
                first_error.get_or_insert(e);
            }
        }
        Ok(())
    };
    if first_is_data {
        handle(Ok(&first), first_n, &mut report, &mut first_error)?;
    }
    loop {
        match lines.next(&mut src).map_err(|e| e.in_file(name))? {
            None => break,
            Some((_, Line::Text(t))) if t.trim().is_empty() => {}
            Some((n, Line::Text(t))) => handle(Ok(t), n, &mut report, &mut first_error)?,
            Some((n, Line::Bad(e))) => handle(Err(e), n, &mut report, &mut first_error)?,
        }
    }
    if packets.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
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

/// Write one row per packet under the header [`CSV_HEADER`]: time in seconds with 9 decimals,
/// direction (`out`/`in`/`?`), the three lengths, protocol flag names joined by `:`, endpoints as
/// `ip (mac)`, `ip` or `mac` (empty when neither is known), ports and IP protocol number.
/// [`read_csv`] reads it back to the same packets.
pub fn write_csv(trace: &Trace, out: impl Write) -> Result<()> {
    let mut out = BufWriter::new(out);
    writeln!(out, "{CSV_HEADER}")?;
    let mut protocols = String::new();
    for p in &trace.packets {
        protocols.clear();
        for (i, name) in p.proto.names().enumerate() {
            if i > 0 {
                protocols.push(':');
            }
            protocols.push_str(name);
        }
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            TimeS(p.t_ns),
            p.dir,
            p.frame_len,
            p.ip_len,
            p.payload_len,
            protocols,
            EndpointCell(trace.endpoint(p.src)),
            EndpointCell(trace.endpoint(p.dst)),
            p.src_port,
            p.dst_port,
            p.ip_proto
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Nanoseconds shown as seconds with exactly 9 decimals, so no digit is lost.
struct TimeS(i64);

impl std::fmt::Display for TimeS {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:09}",
            abs / 1_000_000_000,
            abs % 1_000_000_000
        )
    }
}

/// An endpoint as a CSV cell: like its `Display`, but empty instead of `?`.
struct EndpointCell<'a>(&'a Endpoint);

impl std::fmt::Display for EndpointCell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0.mac, self.0.ip) {
            (None, None) => Ok(()),
            _ => self.0.fmt(f),
        }
    }
}

fn empty_trace(name: &str, report: ReadReport) -> Trace {
    Trace {
        name: name.to_string(),
        report,
        ..Trace::default()
    }
}

fn bad(field: &str, detail: impl Into<String>) -> TraceError {
    TraceError::new(ErrorKind::BadField {
        field: field.to_string(),
        detail: detail.into(),
    })
}

/// One line from [`LineReader`].
enum Line<'a> {
    Text(&'a str),
    /// Too long, or not UTF-8.
    Bad(TraceError),
}

/// Reads lines of at most [`MAX_LINE_BYTES`] without ever buffering more, counting them from 1.
#[derive(Default)]
struct LineReader {
    buf: Vec<u8>,
    number: u64,
}

impl LineReader {
    fn next(&mut self, src: &mut impl BufRead) -> Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = match src.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TraceError::from(e).at_line(self.number + 1)),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = (MAX_LINE_BYTES + 1).saturating_sub(self.buf.len());
            if take > room {
                too_long = true;
            }
            if !too_long {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            src.consume(take);
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        if too_long {
            let e = TraceError::new(ErrorKind::Invalid(format!(
                "line longer than {MAX_LINE_BYTES} bytes"
            )));
            return Ok(Some((self.number, Line::Bad(e))));
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        match std::str::from_utf8(&self.buf) {
            Ok(text) => Ok(Some((self.number, Line::Text(text)))),
            Err(e) => {
                let e = TraceError::new(ErrorKind::Invalid(format!(
                    "not UTF-8 text (byte {} of the line)",
                    e.valid_up_to() + 1
                )));
                Ok(Some((self.number, Line::Bad(e))))
            }
        }
    }
}

/// Split a line at `sep`, honouring double quotes (`""` inside quotes is one quote). Cells are
/// trimmed of spaces.
pub(crate) fn split_cells(line: &str, sep: char, out: &mut Vec<String>) {
    out.clear();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => out.push(std::mem::take(&mut cell).trim().to_string()),
            c => cell.push(c),
        }
    }
    out.push(cell.trim().to_string());
}

/// maybenot lines start with an integer time and a direction token.
fn looks_like_maybenot(line: &str) -> bool {
    let mut parts = line.split(',');
    let (Some(t), Some(d)) = (parts.next(), parts.next()) else {
        return false;
    };
    parts.count() <= 1 && t.trim().parse::<u64>().is_ok() && maybenot_dir(d.trim()).is_some()
}

fn maybenot_dir(token: &str) -> Option<Direction> {
    match token {
        "s" | "sn" | "nq" | "sp" | "dq" => Some(Direction::Outbound),
        "r" | "rn" | "nr" | "rp" | "dr" => Some(Direction::Inbound),
        _ => None,
    }
}

/// What a recognised column means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    TimeS,
    TimeNs,
    FrameLen,
    /// Signed size: the sign is the direction when there is no direction column.
    Size,
    Dir,
    IpLen,
    Ipv6Plen,
    PayloadLen,
    UdpLength,
    /// hush's own flag names, exact.
    Protocols,
    /// tshark's `frame.protocols` list.
    FrameProtocols,
    Src,
    Dst,
    MacSrc,
    MacDst,
    IpSrc,
    IpDst,
    Ipv6Src,
    Ipv6Dst,
    SrcPort,
    DstPort,
    TcpPort,
    UdpPort,
    IpProto,
}

/// Time columns in order of preference when a file has several.
const TIME_COLUMNS: [(&str, Col); 6] = [
    ("t_ns", Col::TimeNs),
    ("time_ns", Col::TimeNs),
    ("time_s", Col::TimeS),
    ("time", Col::TimeS),
    ("frame.time_epoch", Col::TimeS),
    ("frame.time_relative", Col::TimeS),
];

/// Size columns in order of preference.
const SIZE_COLUMNS: [(&str, Col); 4] = [
    ("frame_len", Col::FrameLen),
    ("frame.len", Col::FrameLen),
    ("size", Col::Size),
    ("frame.cap_len", Col::FrameLen),
];

/// Every other recognised column. For a port pair the flag says source (true) or destination.
fn other_column(name: &str) -> Option<(Col, bool)> {
    Some(match name {
        "direction" | "dir" => (Col::Dir, true),
        "ip_len" | "ip.len" => (Col::IpLen, true),
        "ipv6.plen" => (Col::Ipv6Plen, true),
        "payload_len" | "tcp.len" => (Col::PayloadLen, true),
        "udp.length" => (Col::UdpLength, true),
        "protocols" => (Col::Protocols, true),
        "frame.protocols" => (Col::FrameProtocols, true),
        "src" => (Col::Src, true),
        "dst" => (Col::Dst, true),
        "eth.src" | "src_mac" => (Col::MacSrc, true),
        "eth.dst" | "dst_mac" => (Col::MacDst, true),
        "ip.src" => (Col::IpSrc, true),
        "ip.dst" => (Col::IpDst, true),
        "ipv6.src" => (Col::Ipv6Src, true),
        "ipv6.dst" => (Col::Ipv6Dst, true),
        "src_port" => (Col::SrcPort, true),
        "dst_port" => (Col::DstPort, true),
        "tcp.srcport" => (Col::TcpPort, true),
        "tcp.dstport" => (Col::TcpPort, false),
        "udp.srcport" => (Col::UdpPort, true),
        "udp.dstport" => (Col::UdpPort, false),
        "ip_proto" | "ip.proto" | "ipv6.nxt" => (Col::IpProto, true),
        _ => return None,
    })
}

/// How to turn a line's cells into a packet.
struct Layout {
    sep: char,
    /// (cell index, meaning, source-side flag for port pairs, header name for errors).
    columns: Vec<(usize, Col, bool, String)>,
    cells_expected: usize,
    maybenot: bool,
}

impl Layout {
    fn maybenot() -> Self {
        Layout {
            sep: ',',
            columns: Vec::new(),
            cells_expected: 3,
            maybenot: true,
        }
    }

    fn from_header(line: &str) -> Result<Self> {
        let sep = if line.contains('\t') { '\t' } else { ',' };
        let mut names = Vec::new();
        split_cells(line, sep, &mut names);
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let find = |choices: &[(&str, Col)]| {
            choices.iter().find_map(|(want, col)| {
                let i = lower.iter().position(|n| n == want)?;
                Some((i, *col, true, names[i].clone()))
            })
        };
        let time = find(&TIME_COLUMNS).ok_or_else(|| {
            TraceError::new(ErrorKind::MissingColumn(
                "frame.time_epoch (or frame.time_relative, time_s, time, t_ns)".into(),
            ))
        })?;
        let size = find(&SIZE_COLUMNS).ok_or_else(|| {
            TraceError::new(ErrorKind::MissingColumn(
                "frame.len (or frame_len, size, frame.cap_len)".into(),
            ))
        })?;
        let mut columns = vec![time, size];
        for (i, n) in lower.iter().enumerate() {
            if let Some((col, src_side)) = other_column(n) {
                columns.push((i, col, src_side, names[i].clone()));
            }
        }
        Ok(Layout {
            sep,
            columns,
            cells_expected: names.len(),
            maybenot: false,
        })
    }

    fn parse(
        &self,
        line: &str,
        cells: &mut Vec<String>,
        endpoints: &mut EndpointTable,
    ) -> Result<Packet> {
        split_cells(line, self.sep, cells);
        if self.maybenot {
            return parse_maybenot(cells, endpoints);
        }
        if cells.len() != self.cells_expected {
            return Err(TraceError::new(ErrorKind::Invalid(format!(
                "{} fields where the header has {}",
                cells.len(),
                self.cells_expected
            ))));
        }
        let mut row = Row::default();
        for (i, col, src_side, name) in &self.columns {
            // Several occurrences of a field come comma-joined; the first is the outer header.
            let cell = cells
                .get(*i)
                .map_or("", |c| c.split(',').next().unwrap_or("").trim());
            row.set(*col, *src_side, name, cell)?;
        }
        row.finish(endpoints)
    }
}

fn parse_maybenot(cells: &[String], endpoints: &mut EndpointTable) -> Result<Packet> {
    let (t, d, size) = match cells {
        [t, d] => (t, d, None),
        [t, d, s] => (t, d, Some(s)),
        _ => {
            return Err(TraceError::new(ErrorKind::Invalid(format!(
                "{} fields where maybenot traces have time,direction[,size]",
                cells.len()
            ))));
        }
    };
    let t_ns = t
        .parse::<i64>()
        .map_err(|e| bad("time", format!("{t:?} is not integer nanoseconds ({e})")))?;
    let dir = maybenot_dir(d).ok_or_else(|| {
        bad(
            "direction",
            format!("{d:?} is none of s, sn, nq, r, rn, nr, sp, rp, dq, dr"),
        )
    })?;
    let frame_len = match size {
        Some(s) if !s.is_empty() => parse_num::<u32>("size", s)?,
        _ => 0,
    };
    let id = endpoints.intern(Endpoint {
        mac: None,
        ip: None,
    });
    Ok(Packet {
        t_ns,
        frame_len,
        dir,
        src: id,
        dst: id,
        ..Packet::default()
    })
}

/// The cells of one line, before they become a packet.
#[derive(Default)]
struct Row {
    t_ns: Option<i64>,
    frame_len: Option<u32>,
    /// A signed `size` cell's sign.
    size_negative: Option<bool>,
    dir: Option<Direction>,
    ip_len: Option<u32>,
    payload_len: Option<u32>,
    proto: Option<Proto>,
    /// `frame.protocols`, mapped; flags derived from other columns are added to it.
    tshark_proto: Option<Proto>,
    src_mac: Option<Mac>,
    src_ip: Option<IpAddr>,
    dst_mac: Option<Mac>,
    dst_ip: Option<IpAddr>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    ip_proto: Option<u8>,
    /// Which transport the port or length columns said, when `ip.proto` is absent.
    transport_hint: Option<u8>,
}

impl Row {
    fn set(&mut self, col: Col, src_side: bool, name: &str, cell: &str) -> Result<()> {
        let required = matches!(col, Col::TimeS | Col::TimeNs | Col::FrameLen | Col::Size);
        if cell.is_empty() {
            return if required {
                Err(bad(name, "empty"))
            } else {
                Ok(())
            };
        }
        match col {
            Col::TimeS => {
                self.t_ns = Some(
                    parse_seconds_ns(cell)
                        .ok_or_else(|| bad(name, format!("{cell:?} is not a time in seconds")))?,
                )
            }
            Col::TimeNs => self.t_ns = Some(parse_num::<i64>(name, cell)?),
            Col::FrameLen => self.frame_len = Some(parse_num::<u32>(name, cell)?),
            Col::Size => {
                let size = parse_num::<i64>(name, cell)?;
                let abs = u32::try_from(size.unsigned_abs())
                    .map_err(|_| bad(name, format!("{size} is too large")))?;
                self.frame_len = Some(abs);
                self.size_negative = (size != 0).then_some(size < 0);
            }
            Col::Dir => self.dir = Some(parse_direction(name, cell)?),
            Col::IpLen => self.ip_len = Some(parse_num::<u32>(name, cell)?),
            Col::Ipv6Plen => {
                self.ip_len = Some(parse_num::<u16>(name, cell).map(|plen| u32::from(plen) + 40)?)
            }
            Col::PayloadLen => {
                self.payload_len = Some(parse_num::<u32>(name, cell)?);
                if name.eq_ignore_ascii_case("tcp.len") {
                    self.transport_hint = Some(6);
                }
            }
            Col::UdpLength => {
                self.payload_len = Some(parse_num::<u32>(name, cell)?.saturating_sub(8));
                self.transport_hint = Some(17);
            }
            Col::Protocols => self.proto = Some(parse_protocols(cell)),
            Col::FrameProtocols => self.tshark_proto = Some(parse_protocols(cell)),
            Col::Src | Col::Dst => {
                let e = parse_endpoint(name, cell)?;
                if col == Col::Src {
                    (self.src_mac, self.src_ip) = (e.mac, e.ip);
                } else {
                    (self.dst_mac, self.dst_ip) = (e.mac, e.ip);
                }
            }
            Col::MacSrc | Col::MacDst => {
                let mac = cell.parse::<Mac>().map_err(|e| bad(name, e.to_string()))?;
                if col == Col::MacSrc {
                    self.src_mac = Some(mac);
                } else {
                    self.dst_mac = Some(mac);
                }
            }
            Col::IpSrc | Col::IpDst | Col::Ipv6Src | Col::Ipv6Dst => {
                let ip = cell
                    .parse::<IpAddr>()
                    .map_err(|_| bad(name, format!("{cell:?} is not an IP address")))?;
                if matches!(col, Col::IpSrc | Col::Ipv6Src) {
                    self.src_ip = Some(ip);
                } else {
                    self.dst_ip = Some(ip);
                }
            }
            Col::SrcPort | Col::DstPort | Col::TcpPort | Col::UdpPort => {
                let port = parse_num::<u16>(name, cell)?;
                let src = match col {
                    Col::SrcPort => true,
                    Col::DstPort => false,
                    _ => src_side,
                };
                if src {
                    self.src_port = Some(port);
                } else {
                    self.dst_port = Some(port);
                }
                match col {
                    Col::TcpPort => self.transport_hint = Some(6),
                    Col::UdpPort => self.transport_hint = Some(17),
                    _ => {}
                }
            }
            Col::IpProto => self.ip_proto = Some(parse_num::<u8>(name, cell)?),
        }
        Ok(())
    }

    fn finish(self, endpoints: &mut EndpointTable) -> Result<Packet> {
        let t_ns = self.t_ns.ok_or_else(|| missing("time"))?;
        let frame_len = self.frame_len.ok_or_else(|| missing("size"))?;
        let dir = match (self.dir, self.size_negative) {
            (Some(_), Some(true)) => {
                return Err(bad(
                    "size",
                    "negative size in a file that has a direction column",
                ));
            }
            (Some(d), _) => d,
            (None, Some(true)) => Direction::Inbound,
            (None, Some(false)) => Direction::Outbound,
            (None, None) => Direction::Unknown,
        };
        let mut p = Packet {
            t_ns,
            frame_len,
            ip_len: self.ip_len.unwrap_or(0),
            payload_len: self.payload_len.unwrap_or(0),
            src_port: self.src_port.unwrap_or(0),
            dst_port: self.dst_port.unwrap_or(0),
            src: endpoints.intern(Endpoint {
                mac: self.src_mac,
                ip: self.src_ip,
            }),
            dst: endpoints.intern(Endpoint {
                mac: self.dst_mac,
                ip: self.dst_ip,
            }),
            dir,
            ..Packet::default()
        };
        let ip_version = match (self.src_ip.or(self.dst_ip), self.ip_len) {
            (Some(IpAddr::V4(_)), _) => Some(4),
            (Some(IpAddr::V6(_)), _) => Some(6),
            (None, Some(_)) => Some(4),
            (None, None) => None,
        };
        let tshark_icmp = self.tshark_proto.map(|t| {
            if t.contains(Proto::ICMPV6) {
                58
            } else if t.contains(Proto::ICMP) {
                1
            } else {
                0
            }
        });
        p.ip_proto = match (self.ip_proto, tshark_icmp, self.transport_hint) {
            (Some(n), _, _) => n,
            (None, Some(icmp @ (1 | 58)), _) => icmp,
            (None, _, Some(hint)) => hint,
            (None, _, None) => 0,
        };
        // tshark's port and length fields of an ICMP error describe the packet it quotes.
        if matches!(p.ip_proto, 1 | 58) && self.transport_hint.is_some() {
            (p.src_port, p.dst_port, p.payload_len) = (0, 0, 0);
        }
        p.proto = match (self.proto, self.tshark_proto) {
            // hush's own column is exact: nothing is derived.
            (Some(proto), _) => proto,
            (None, Some(tshark)) => {
                let mut proto = tshark;
                if proto.intersects(Proto::IPV4 | Proto::IPV6)
                    && !matches!(p.ip_proto, 0 | 1 | 6 | 17 | 58)
                {
                    proto |= Proto::OTHER_IP;
                }
                proto
            }
            (None, None) => derive_proto(&p, ip_version),
        };
        Ok(p)
    }
}

/// Time and size are checked when the header is read, so a row always has them.
fn missing(what: &str) -> TraceError {
    TraceError::new(ErrorKind::MissingColumn(what.to_string()))
}

fn parse_num<T: std::str::FromStr>(field: &str, cell: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    cell.parse::<T>()
        .map_err(|e| bad(field, format!("{cell:?}: {e}")))
}

/// Decimal seconds to nanoseconds, exactly for up to 9 decimals (more are truncated). Falls back
/// to floating point for exponent notation.
pub(crate) fn parse_seconds_ns(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        let x: f64 = s.parse().ok()?;
        let ns = (x * 1e9).round();
        return (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64);
    }
    let mut ns: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    ns = ns.checked_mul(1_000_000_000)?;
    let mut scale = 100_000_000i128;
    for b in frac.bytes().take(9) {
        ns += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    i64::try_from(if negative { -ns } else { ns }).ok()
}

fn parse_direction(field: &str, cell: &str) -> Result<Direction> {
    Ok(match cell.to_ascii_lowercase().as_str() {
        "out" | "outbound" | "s" | "sn" | "sp" | "sent" | "send" | "1" | "+1" => {
            Direction::Outbound
        }
        "in" | "inbound" | "r" | "rn" | "rp" | "received" | "recv" | "-1" => Direction::Inbound,
        "?" | "unknown" | "0" => Direction::Unknown,
        _ => {
            return Err(bad(
                field,
                format!("{cell:?} is none of out, in, s, r, sent, received, ?"),
            ));
        }
    })
}

/// `ip (mac)`, `ip` or `mac`, as [`write_csv`] writes them; empty or `?` for neither.
fn parse_endpoint(field: &str, cell: &str) -> Result<Endpoint> {
    let err = || {
        bad(
            field,
            format!("{cell:?} is not an IP, a MAC or \"ip (mac)\""),
        )
    };
    if cell == "?" {
        return Ok(Endpoint {
            mac: None,
            ip: None,
        });
    }
    if let Some((ip, rest)) = cell.split_once(" (") {
        let mac = rest.strip_suffix(')').ok_or_else(err)?;
        return Ok(Endpoint {
            mac: Some(mac.parse().map_err(|_| err())?),
            ip: Some(ip.parse().map_err(|_| err())?),
        });
    }
    // A MAC never parses as an IPv6 address (six groups without `::`), so the order is safe.
    if let Ok(mac) = cell.parse::<Mac>() {
        return Ok(Endpoint {
            mac: Some(mac),
            ip: None,
        });
    }
    let ip = cell.parse::<IpAddr>().map_err(|_| err())?;
    Ok(Endpoint {
        mac: None,
        ip: Some(ip),
    })
}

/// hush flag names (`IPV4:TCP:TLS`, any case) or tshark's `frame.protocols` names
/// (`eth:ethertype:ip:tcp:tls`); names that map to no flag (`eth`, `data`) are ignored. tshark
/// lists an ICMP error's quoted packet after `icmp`, so the list ends there, as the pcap decoder
/// stops at the outer header.
fn parse_protocols(cell: &str) -> Proto {
    let mut proto = Proto::empty();
    for token in cell.split(':').map(str::trim) {
        match token {
            "icmp" => return proto | Proto::ICMP,
            "icmpv6" => return proto | Proto::ICMPV6,
            _ => {}
        }
        // hush's own names first: tshark's `dhcp` also means BOOTP, hush's `DHCP` does not.
        if let Some(flag) = Proto::from_name(token) {
            proto |= flag;
            continue;
        }
        let lower = token.to_ascii_lowercase();
        let flag = match lower.as_str() {
            "ip" => Proto::IPV4,
            "ipv6" => Proto::IPV6,
            "vlan" => Proto::VLAN,
            "ssl" | "tls" => Proto::TLS,
            "dhcp" => Proto::DHCP | Proto::BOOTP,
            "igmp" => Proto::OTHER_IP,
            _ => Proto::from_name(&lower.to_ascii_uppercase()).unwrap_or(Proto::empty()),
        };
        proto |= flag;
    }
    proto
}

/// Flags for a row without a protocol column, set the way the pcap decoder sets them from the
/// same facts (no payload bytes are available, so TLS and HTTP come from ports alone).
pub(crate) fn derive_proto(p: &Packet, ip_version: Option<u8>) -> Proto {
    let mut proto = match ip_version {
        Some(4) => Proto::IPV4,
        Some(6) => Proto::IPV6,
        _ => Proto::empty(),
    };
    let has_port = |ports: &[u16]| ports.contains(&p.src_port) || ports.contains(&p.dst_port);
    match p.ip_proto {
        0 => {}
        1 => proto |= Proto::ICMP,
        58 => proto |= Proto::ICMPV6,
        6 => {
            proto |= Proto::TCP;
            if has_port(&[53]) {
                proto |= Proto::DNS;
            }
            if p.payload_len > 0 && has_port(&[443, 8443, 8883, 993, 995, 5223]) {
                proto |= Proto::TLS;
            } else if p.payload_len > 0 && has_port(&[80, 8080]) {
                proto |= Proto::HTTP;
            }
        }
        17 => {
            proto |= Proto::UDP;
            if has_port(&[67, 68]) {
                proto |= Proto::BOOTP;
            }
            if has_port(&[1900]) {
                proto |= Proto::SSDP;
            }
            if has_port(&[5353]) {
                proto |= Proto::MDNS;
            } else if has_port(&[53]) {
                proto |= Proto::DNS;
            }
            if has_port(&[123]) {
                proto |= Proto::NTP;
            }
        }
        _ => proto |= Proto::OTHER_IP,
    }
    proto
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_exactly() {
        assert_eq!(
            parse_seconds_ns("1474552510.734151000"),
            Some(1_474_552_510_734_151_000)
        );
        assert_eq!(parse_seconds_ns("0.000000001"), Some(1));
        assert_eq!(parse_seconds_ns("-0.5"), Some(-500_000_000));
        assert_eq!(parse_seconds_ns("2"), Some(2_000_000_000));
        assert_eq!(parse_seconds_ns(".25"), Some(250_000_000));
        assert_eq!(parse_seconds_ns("1.5e-3"), Some(1_500_000));
        assert_eq!(parse_seconds_ns("1.2.3"), None);
        assert_eq!(parse_seconds_ns("x"), None);
        assert_eq!(parse_seconds_ns("99999999999999999999"), None);
        assert_eq!(TimeS(i64::MIN).to_string(), "-9223372036.854775808");
        assert_eq!(parse_seconds_ns("-9223372036.854775808"), Some(i64::MIN));
    }

    #[test]
    fn quoted_cells_split_like_csv() {
        let mut cells = Vec::new();
        split_cells(r#""a,b", c ,"say ""hi""""#, ',', &mut cells);
        assert_eq!(cells, ["a,b", "c", r#"say "hi""#]);
    }

    #[test]
    fn tshark_protocol_names_map_to_flags() {
        assert_eq!(
            parse_protocols("eth:ethertype:ip:tcp:tls"),
            Proto::IPV4 | Proto::TCP | Proto::TLS
        );
        assert_eq!(
            parse_protocols("IPV6:UDP:MDNS"),
            Proto::IPV6 | Proto::UDP | Proto::MDNS
        );
        assert_eq!(parse_protocols("eth:llc:data"), Proto::LLC);
        assert_eq!(parse_protocols("DHCP"), Proto::DHCP);
        assert_eq!(
            parse_protocols("eth:ethertype:ip:icmp:ip:udp:dns"),
            Proto::IPV4 | Proto::ICMP
        );
        assert_eq!(parse_protocols("dhcp"), Proto::DHCP | Proto::BOOTP);
    }
}
