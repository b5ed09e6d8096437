//! Opening traces: format detection by magic bytes, streaming packets, whole-trace loading.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;

use crate::capture::{FrameReader, sniff_format};
use crate::decode::{Skip, decode_frame};
use crate::error::{ErrorKind, Result, TraceError};
use crate::packet::{Direction, Endpoint, EndpointId, Packet};
use crate::trace::{EndpointTable, Format, ReadReport, Trace};

/// How strictly to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Fail on a corrupt record in the middle of a file instead of keeping the packets before it
    /// and noting the error in [`ReadReport::stopped_early`].
    pub strict: bool,
}

/// Streams packets from a pcap or pcapng source in constant memory (plus one entry per distinct
/// endpoint).
///
/// ```no_run
/// use hush_trace::PacketStream;
/// let file = std::fs::File::open("capture.pcap")?;
/// let mut stream = PacketStream::new(std::io::BufReader::new(file))?;
/// let mut bytes = 0u64;
/// while let Some(packet) = stream.next_packet()? {
///     bytes += u64::from(packet.frame_len);
/// }
/// println!("{bytes} bytes, {} endpoints", stream.endpoints().len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PacketStream<R> {
    frames: FrameReader<R>,
    endpoints: EndpointTable,
    /// The last (source, destination) pair interned: consecutive packets usually share a flow.
    last_pair: Option<(Endpoint, Endpoint, EndpointId, EndpointId)>,
}

impl<R: Read> PacketStream<R> {
    /// Start reading a pcap or pcapng stream.
    pub fn new(src: R) -> Result<Self> {
        Ok(PacketStream {
            frames: FrameReader::new(src)?,
            endpoints: EndpointTable::default(),
            last_pair: None,
        })
    }

    /// The next packet, or `None` at the end. Frames of unsupported link types are counted in the
    /// report and skipped.
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        loop {
            let Some(frame) = self.frames.next_frame()? else {
                return Ok(None);
            };
            let (t_ns, frame_len, link) = (frame.t_ns, frame.orig_len, frame.link);
            let decoded = match decode_frame(link, frame.data) {
                Ok(d) => d,
                Err(Skip::UnsupportedLink) => {
                    self.frames
                        .report
                        .skip(format!("link type {}", link.name()));
                    continue;
                }
                Err(Skip::WifiNonData) => {
                    self.frames.report.skip("802.11 management/control frame");
                    continue;
                }
            };
            let none = Endpoint {
                mac: None,
                ip: None,
            };
            let src = decoded.src.unwrap_or(none);
            let dst = decoded.dst.unwrap_or(none);
            // Replies reverse the pair, so check both orientations before hashing.
            let (src_id, dst_id) = match self.last_pair {
                Some((s, d, si, di)) if s == src && d == dst => (si, di),
                Some((s, d, si, di)) if s == dst && d == src => (di, si),
                _ => {
                    let ids = (self.endpoints.intern(src), self.endpoints.intern(dst));
                    self.last_pair = Some((src, dst, ids.0, ids.1));
                    ids
                }
            };
            return Ok(Some(Packet {
                t_ns,
                frame_len,
                ip_len: decoded.ip_len,
                payload_len: decoded.payload_len,
                proto: decoded.proto,
                src_port: decoded.src_port,
                dst_port: decoded.dst_port,
                src: src_id,
                dst: dst_id,
                dir: Direction::Unknown,
                ip_proto: decoded.ip_proto,
            }));
        }
    }

    /// Endpoints seen so far, indexed by [`EndpointId`].
    pub fn endpoints(&self) -> &[Endpoint] {
        self.endpoints.as_slice()
    }

    /// Counts and anomalies so far.
    pub fn report(&self) -> &ReadReport {
        &self.frames.report
    }

    /// Byte offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.frames.offset()
    }

    /// Read everything that is left into a [`Trace`] sorted by time.
    pub fn into_trace(mut self, name: &str, opts: ReadOptions) -> Result<Trace> {
        let mut packets = Vec::new();
        loop {
            match self.next_packet() {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                // Keep what came before a corrupt record unless asked to be strict; a file whose
                // very first record is corrupt is an error either way.
                Err(e) if !opts.strict && self.frames.report.records > 0 => {
                    self.frames.report.stopped_early = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e.in_file(name)),
            }
        }
        let mut trace = Trace {
            name: name.to_string(),
            packets,
            endpoints: self.endpoints.into_list(),
            report: self.frames.report,
        };
        trace.sort_by_time();
        Ok(trace)
    }
}

/// Read a whole trace from a file, or from standard input when `path` is `-`. The format (pcap,
/// pcapng, CSV) is detected from the first bytes, never from the extension.
pub fn read_trace(path: impl AsRef<Path>, opts: ReadOptions) -> Result<Trace> {
    let path = path.as_ref();
    let name = path.display().to_string();
    if name == "-" {
        return read_from(std::io::stdin().lock(), "-", opts);
    }
    let file = File::open(path).map_err(|e| TraceError::from(e).in_file(path))?;
    read_from(file, &name, opts)
}

/// Read a whole trace from any byte source; `name` is used in errors and as the trace name.
pub fn read_from(mut src: impl Read, name: &str, opts: ReadOptions) -> Result<Trace> {
    // Sniff the first bytes without losing them: a pipe cannot seek back.
    let mut head = [0u8; 8];
    let mut n = 0;
    while n < head.len() {
        match src.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TraceError::from(e).in_file(name)),
        }
    }
    let head = &head[..n];
    let src = BufReader::with_capacity(1 << 20, Cursor::new(head.to_vec()).chain(src));
    match sniff_format(head) {
        Some(Format::Pcap | Format::Pcapng) => PacketStream::new(src)
            .map_err(|e| e.in_file(name))?
            .into_trace(name, opts),
        _ if looks_like_text(head) => {
            // The header line tells hush's CSV forms from CIC IoT 2022's per-packet CSV.
            let mut src = src;
            let mut first = Vec::new();
            (&mut src)
                .take(crate::csv::MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut first)
                .map_err(|e| TraceError::from(e).in_file(name))?;
            let cic = std::str::from_utf8(&first).is_ok_and(crate::cic::is_cic_header);
            let src = BufReader::new(Cursor::new(first).chain(src));
            if cic {
                crate::cic::read_cic(src, name, opts)
            } else {
                crate::csv::read_csv(src, name, opts)
            }
        }
        _ => Err(TraceError::new(ErrorKind::UnknownFormat(
            head.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        ))
        .at(0)
        .in_file(name)),
    }
}

fn looks_like_text(head: &[u8]) -> bool {
    !head.is_empty()
        && head
            .iter()
            .all(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e | 0x80..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn pcap_of(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            out.extend(v.to_le_bytes());
        }
        for (i, f) in frames.iter().enumerate() {
            for v in [i as u32, 0, f.len() as u32, f.len() as u32] {
                out.extend(v.to_le_bytes());
            }
            out.extend(f);
        }
        out
    }

    fn udp(from: [u8; 4], to: [u8; 4]) -> Vec<u8> {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, from[3]], [2, 0, 0, 0, 0, to[3]])
            .ipv4(from, to, 64)
            .udp(1000, 2000)
            .write(&mut frame, &[0; 10])
            .unwrap();
        frame
    }

    #[test]
    fn replies_and_new_pairs_get_the_right_endpoint_ids() {
        let (a, b, c) = ([10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]);
        let bytes = pcap_of(&[udp(a, b), udp(b, a), udp(a, b), udp(c, a), udp(a, c)]);
        let trace = read_from(&bytes[..], "t", ReadOptions::default()).unwrap();
        let ip = |id: EndpointId| trace.endpoint(id).ip.unwrap().to_string();
        let pairs: Vec<(String, String)> = trace
            .packets
            .iter()
            .map(|p| (ip(p.src), ip(p.dst)))
            .collect();
        let expected = [(a, b), (b, a), (a, b), (c, a), (a, c)].map(|(s, d)| {
            let s = std::net::Ipv4Addr::from(s).to_string();
            (s, std::net::Ipv4Addr::from(d).to_string())
        });
        assert_eq!(pairs, expected);
        assert_eq!(trace.endpoints.len(), 3);
    }
}
