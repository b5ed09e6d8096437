//! Streaming pcap and pcapng frame reader.
//!
//! Memory is one buffer that grows only to the largest record actually present, capped at
//! [`MAX_RECORD_BYTES`]; a record claiming more is a [`ErrorKind::RecordTooLarge`] error, not an
//! allocation. pcapng blocks are parsed by `pcap-parser` once a whole block is buffered; classic
//! pcap records are a fixed 16-byte header (24 for the "modified" variant) we read directly.

use std::io::Read;

use pcap_parser::pcapng::{Block, parse_block_be, parse_block_le};

use crate::decode::LinkType;
use crate::error::{ErrorKind, Result, TraceError};
use crate::trace::{Format, ReadReport};

/// Largest record or block hush buffers. Real snap lengths are at most 256 KiB; pcapng blocks
/// with big options stay far below this.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAP_MAGIC_MODIFIED: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 0x0000_0001;
const PCAPNG_OPB: u32 = 0x0000_0002;
const PCAPNG_SPB: u32 = 0x0000_0003;
const PCAPNG_EPB: u32 = 0x0000_0006;

/// Which capture format the first bytes announce, if any.
pub fn sniff_format(head: &[u8]) -> Option<Format> {
    let magic = head
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))?;
    match magic {
        PCAPNG_SHB => Some(Format::Pcapng),
        PCAP_MAGIC_US | PCAP_MAGIC_NS | PCAP_MAGIC_MODIFIED => Some(Format::Pcap),
        m if [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED].contains(&m.swap_bytes()) => {
            Some(Format::Pcap)
        }
        _ => None,
    }
}

/// One captured frame, borrowed from the reader's buffer until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Timestamp, nanoseconds since the Unix epoch.
    pub t_ns: i64,
    /// Link type of the interface it was captured on.
    pub link: LinkType,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Captured bytes (may be shorter than `orig_len`).
    pub data: &'a [u8],
    /// Byte offset of the record in the file.
    pub offset: u64,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    units_per_s: u64,
    /// Seconds added to every timestamp.
    offset_s: i64,
    /// Most bytes captured per packet; 0 means no limit.
    snaplen: u32,
}

#[derive(Debug)]
enum State {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
        link: LinkType,
        max_caplen: usize,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
        last_t_ns: i64,
    },
}

/// Reads frames from a pcap or pcapng stream, one at a time, in constant memory.
pub struct FrameReader<R> {
    src: R,
    buf: Vec<u8>,
    /// Start of unread data in `buf`.
    pos: usize,
    /// End of valid data in `buf`.
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    state: State,
    /// The link type of the last record and its name, the key of [`ReadReport::link_types`].
    last_link: Option<(LinkType, String)>,
    /// Counts and anomalies so far.
    pub report: ReadReport,
}

impl<R: Read> FrameReader<R> {
    /// Start reading; reads and checks the file header.
    pub fn new(src: R) -> Result<Self> {
        let mut r = FrameReader {
            src,
            buf: vec![0; 256 << 10],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            state: State::Pcap {
                big_endian: false,
                nanos: false,
                modified: false,
                link: LinkType(1),
                max_caplen: 0,
            },
            last_link: None,
            report: ReadReport::default(),
        };
        if !r.fill(4)? {
            return Err(TraceError::new(ErrorKind::TruncatedHeader("capture file")).at(0));
        }
        let head = &r.buf[r.pos..r.pos + 4];
        match sniff_format(head) {
            Some(Format::Pcap) => r.read_pcap_header()?,
            Some(Format::Pcapng) => {
                r.state = State::Pcapng {
                    big_endian: false,
                    interfaces: Vec::new(),
                    last_t_ns: 0,
                };
                r.report.format = Some(Format::Pcapng);
            }
            _ => return Err(TraceError::new(ErrorKind::UnknownFormat(hex(head))).at(0)),
        }
        Ok(r)
    }

    /// Offset in the file of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Make `n` bytes available at `pos`. Returns false if the input ends first.
    fn fill(&mut self, n: usize) -> Result<bool> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        if n > MAX_RECORD_BYTES {
            return Err(TraceError::new(ErrorKind::RecordTooLarge {
                claimed_bytes: n as u64,
                limit_bytes: MAX_RECORD_BYTES as u64,
            })
            .at(self.offset()));
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end < n && !self.eof {
            if self.end == self.buf.len() {
                // Grow with the bytes that actually arrive, not with what a header claims: a tiny
                // file claiming a 60 MB record costs no more memory than its own size.
                let new_len = (self.buf.len() * 2).clamp(self.buf.len() + 1, n);
                self.buf.resize(new_len, 0);
            }
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TraceError::from(e).at(self.offset())),
            }
        }
        Ok(self.end - self.pos >= n)
    }

    fn read_pcap_header(&mut self) -> Result<()> {
        if !self.fill(24)? {
            return Err(TraceError::new(ErrorKind::TruncatedHeader("pcap")).at(0));
        }
        let h = &self.buf[self.pos..self.pos + 24];
        let magic_le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let big_endian = ![PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED].contains(&magic_le);
        let rd = |b: &[u8]| u32_at(b, big_endian);
        let magic = rd(&h[0..4]);
        let snaplen = rd(&h[16..20]);
        // The upper 16 bits of the link-type field hold FCS information (pcap-savefile(5)).
        let link = LinkType(rd(&h[20..24]) & 0x0fff_ffff);
        let max_caplen = (snaplen as usize).clamp(262_144, MAX_RECORD_BYTES);
        self.state = State::Pcap {
            big_endian,
            nanos: magic == PCAP_MAGIC_NS,
            modified: magic == PCAP_MAGIC_MODIFIED,
            link,
            max_caplen,
        };
        self.report.format = Some(Format::Pcap);
        self.pos += 24;
        Ok(())
    }

    /// The next frame, or `None` at the end of the input.
    ///
    /// A record cut off by the end of the file ends the stream normally and sets
    /// [`ReadReport::truncated_tail_at`]. A record that makes the rest unreadable (a length beyond
    /// any snap length, a pcapng block whose trailing length disagrees) is an error; the caller
    /// decides whether to keep the frames read before it.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        match self.state {
            State::Pcap { .. } => self.next_pcap(),
            State::Pcapng { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Frame<'_>>> {
        let State::Pcap {
            big_endian,
            nanos,
            modified,
            link,
            max_caplen,
        } = self.state
        else {
            unreachable!("bug: next_pcap in pcapng state")
        };
        let hdr_len = if modified { 24 } else { 16 };
        let at = self.offset();
        if !self.fill(hdr_len)? {
            if self.end > self.pos {
                self.report.truncated_tail_at = Some(at);
            }
            return Ok(None);
        }
        let h = &self.buf[self.pos..self.pos + 16];
        let ts_s = u32_at(&h[0..4], big_endian);
        let ts_frac = u32_at(&h[4..8], big_endian);
        let caplen = u32_at(&h[8..12], big_endian);
        let orig_len = u32_at(&h[12..16], big_endian);
        if caplen as usize > max_caplen {
            return Err(TraceError::new(ErrorKind::RecordTooLarge {
                claimed_bytes: u64::from(caplen),
                limit_bytes: max_caplen as u64,
            })
            .at(at));
        }
        if !self.fill(hdr_len + caplen as usize)? {
            self.report.truncated_tail_at = Some(at);
            return Ok(None);
        }
        let start = self.pos + hdr_len;
        self.pos = start + caplen as usize;
        let frac_ns = if nanos {
            i64::from(ts_frac)
        } else {
            i64::from(ts_frac) * 1000
        };
        self.count(link, caplen, orig_len);
        Ok(Some(Frame {
            t_ns: i64::from(ts_s) * 1_000_000_000 + frac_ns,
            link,
            orig_len: orig_len.max(caplen),
            data: &self.buf[start..self.pos],
            offset: at,
        }))
    }

    fn count(&mut self, link: LinkType, caplen: u32, orig_len: u32) {
        self.report.records += 1;
        self.report.captured_bytes += u64::from(caplen);
        if caplen < orig_len {
            self.report.snap_truncated += 1;
        }
        // Link names are few and usually one: keep the last name so a record costs no allocation.
        if self.last_link.as_ref().is_none_or(|(l, _)| *l != link) {
            self.last_link = Some((link, link.name()));
        }
        let Some((_, name)) = &self.last_link else {
            unreachable!("bug: last_link was just set")
        };
        if let Some(n) = self.report.link_types.get_mut(name.as_str()) {
            *n += 1;
        } else {
            self.report.link_types.insert(name.clone(), 1);
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame<'_>>> {
        loop {
            let at = self.offset();
            if !self.fill(12)? {
                if self.end > self.pos {
                    self.report.truncated_tail_at = Some(at);
                }
                return Ok(None);
            }
            let State::Pcapng { big_endian, .. } = self.state else {
                unreachable!("bug: next_pcapng in pcap state")
            };
            let h = &self.buf[self.pos..self.pos + 12];
            let raw_type = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let big_endian = if raw_type == PCAPNG_SHB {
                // A new section may switch byte order; its byte-order magic says which.
                match u32::from_le_bytes([h[8], h[9], h[10], h[11]]) {
                    PCAPNG_BOM => false,
                    m if m.swap_bytes() == PCAPNG_BOM => true,
                    m => {
                        return Err(TraceError::new(ErrorKind::BadHeader {
                            what: "pcapng section header",
                            detail: format!("byte-order magic {m:#010x}"),
                        })
                        .at(at));
                    }
                }
            } else {
                big_endian
            };
            let block_type = u32_at(&h[0..4], big_endian);
            let claimed_len = u64::from(u32_at(&h[4..8], big_endian));
            // Some writers leave the packet data's padding out of the block length (python-pcapng's
            // test006.ntar says 167 for a 168-byte block). Like Wireshark, round both lengths up
            // to a multiple of 4 and compare them rounded.
            let block_len = claimed_len.next_multiple_of(4);
            if block_len < 12 {
                return Err(TraceError::new(ErrorKind::Malformed {
                    what: "pcapng block",
                    detail: format!("length {claimed_len} is shorter than a 12-byte block"),
                })
                .at(at));
            }
            if block_len > MAX_RECORD_BYTES as u64 {
                return Err(TraceError::new(ErrorKind::RecordTooLarge {
                    claimed_bytes: claimed_len,
                    limit_bytes: MAX_RECORD_BYTES as u64,
                })
                .at(at));
            }
            let block_len = block_len as usize;
            if !self.fill(block_len)? {
                self.report.truncated_tail_at = Some(at);
                return Ok(None);
            }
            let block = &self.buf[self.pos..self.pos + block_len];
            let trailer = u64::from(u32_at(&block[block_len - 4..], big_endian));
            if trailer.next_multiple_of(4) != block_len as u64 {
                return Err(TraceError::new(ErrorKind::Malformed {
                    what: "pcapng block",
                    detail: format!("leading length {claimed_len} but trailing length {trailer}"),
                })
                .at(at));
            }
            let start = self.pos;
            if claimed_len != block_len as u64 {
                // pcap-parser insists on the exact length: give it the rounded one.
                self.report.warn(format!(
                    "pcapng block at byte {at}: length {claimed_len} rounded up to {block_len}"
                ));
                let fixed = if big_endian {
                    (block_len as u32).to_be_bytes()
                } else {
                    (block_len as u32).to_le_bytes()
                };
                self.buf[start + 4..start + 8].copy_from_slice(&fixed);
                self.buf[start + block_len - 4..start + block_len].copy_from_slice(&fixed);
            }
            self.pos += block_len;
            if block_type == PCAPNG_OPB {
                match self.obsolete_packet(start, block_len, at, big_endian)? {
                    Some((t_ns, link, caplen, orig)) => {
                        self.count(link, caplen, orig);
                        return Ok(Some(Frame {
                            t_ns,
                            link,
                            orig_len: orig.max(caplen),
                            data: &self.buf[start + 28..start + 28 + caplen as usize],
                            offset: at,
                        }));
                    }
                    None => continue,
                }
            }
            if !matches!(
                block_type,
                PCAPNG_SHB | PCAPNG_IDB | PCAPNG_EPB | PCAPNG_SPB
            ) {
                continue; // statistics, name resolution, custom, ...: nothing hush uses
            }
            let block = &self.buf[start..start + block_len];
            let parsed = if big_endian {
                parse_block_be(block)
            } else {
                parse_block_le(block)
            };
            let parsed = match parsed {
                Ok((_, b)) => b,
                Err(e) => {
                    return Err(TraceError::new(ErrorKind::Malformed {
                        what: block_name(block_type),
                        detail: format!("{e:?}").chars().take(120).collect(),
                    })
                    .at(at));
                }
            };
            let State::Pcapng {
                big_endian: ref mut be,
                ref mut interfaces,
                ref mut last_t_ns,
            } = self.state
            else {
                unreachable!("bug: pcapng state changed")
            };
            match parsed {
                Block::SectionHeader(_) => {
                    *be = big_endian;
                    interfaces.clear();
                }
                Block::InterfaceDescription(idb) => {
                    let units_per_s = match idb.ts_resolution() {
                        Some(u) if u > 0 => u,
                        _ => {
                            self.report.warn(format!(
                                "interface {} at byte {at}: invalid timestamp resolution {:#x}, assuming µs",
                                interfaces.len(),
                                idb.if_tsresol
                            ));
                            1_000_000
                        }
                    };
                    interfaces.push(Interface {
                        link: LinkType(u32::from(idb.linktype.0 as u16)),
                        units_per_s,
                        offset_s: idb.ts_offset(),
                        snaplen: idb.snaplen,
                    });
                }
                Block::EnhancedPacket(epb) => {
                    let Some(iface) = interfaces.get(epb.if_id as usize).copied() else {
                        let msg = format!(
                            "packet at byte {at} names interface {} which was never described",
                            epb.if_id
                        );
                        self.report.warn(msg);
                        self.report.skip("undescribed interface");
                        continue;
                    };
                    let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                    let t_ns = units_to_ns(ts, iface.units_per_s, iface.offset_s);
                    *last_t_ns = t_ns;
                    let caplen = epb.caplen.min(epb.data.len() as u32);
                    let data_start = start + 28;
                    let orig = epb.origlen;
                    self.count(iface.link, caplen, orig);
                    return Ok(Some(Frame {
                        t_ns,
                        link: iface.link,
                        orig_len: orig.max(caplen),
                        data: &self.buf[data_start..data_start + caplen as usize],
                        offset: at,
                    }));
                }
                Block::SimplePacket(spb) => {
                    let Some(iface) = interfaces.first().copied() else {
                        self.report.skip("undescribed interface");
                        continue;
                    };
                    // SPBs carry no timestamp; the best estimate is the previous packet's.
                    let t_ns = *last_t_ns;
                    // An SPB has no captured-length field: it is the packet length cut to the
                    // snap length, never more than the block holds.
                    let snaplen = if iface.snaplen == 0 {
                        u32::MAX
                    } else {
                        iface.snaplen
                    };
                    let caplen = (block_len as u32)
                        .saturating_sub(16)
                        .min(spb.origlen)
                        .min(snaplen);
                    let data_start = start + 12;
                    let orig = spb.origlen;
                    self.count(iface.link, caplen, orig);
                    return Ok(Some(Frame {
                        t_ns,
                        link: iface.link,
                        orig_len: orig.max(caplen),
                        data: &self.buf[data_start..data_start + caplen as usize],
                        offset: at,
                    }));
                }
                _ => {}
            }
        }
    }

    /// Decode an Obsolete Packet Block (pcap-parser leaves it unparsed): if_id(2) drops(2) ts(8)
    /// caplen(4) len(4) data. Returns (time, link, caplen, orig_len), or `None` if its interface
    /// was never described.
    fn obsolete_packet(
        &mut self,
        start: usize,
        block_len: usize,
        at: u64,
        big_endian: bool,
    ) -> Result<Option<(i64, LinkType, u32, u32)>> {
        let b = &self.buf[start..start + block_len];
        if block_len < 32 {
            return Err(TraceError::new(ErrorKind::Malformed {
                what: "pcapng packet block",
                detail: format!("length {block_len} is shorter than its 32-byte header"),
            })
            .at(at));
        }
        let if_id = if big_endian {
            u16::from_be_bytes([b[8], b[9]])
        } else {
            u16::from_le_bytes([b[8], b[9]])
        };
        let ts = (u64::from(u32_at(&b[12..16], big_endian)) << 32)
            | u64::from(u32_at(&b[16..20], big_endian));
        let caplen = u32_at(&b[20..24], big_endian).min(block_len as u32 - 32);
        let orig = u32_at(&b[24..28], big_endian);
        let State::Pcapng {
            ref interfaces,
            ref mut last_t_ns,
            ..
        } = self.state
        else {
            unreachable!("bug: pcapng state changed")
        };
        let Some(iface) = interfaces.get(usize::from(if_id)).copied() else {
            self.report.skip("undescribed interface");
            return Ok(None);
        };
        let t_ns = units_to_ns(ts, iface.units_per_s, iface.offset_s);
        *last_t_ns = t_ns;
        Ok(Some((t_ns, iface.link, caplen, orig)))
    }
}

fn block_name(block_type: u32) -> &'static str {
    match block_type {
        PCAPNG_SHB => "pcapng section header block",
        PCAPNG_IDB => "pcapng interface description block",
        PCAPNG_EPB => "pcapng enhanced packet block",
        PCAPNG_SPB => "pcapng simple packet block",
        _ => "pcapng block",
    }
}

fn u32_at(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Convert a timestamp in `units_per_s` units plus an offset in seconds to ns since the epoch,
/// saturating instead of overflowing on absurd values.
fn units_to_ns(ts: u64, units_per_s: u64, offset_s: i64) -> i64 {
    let ns = i128::from(ts) * 1_000_000_000 / i128::from(units_per_s)
        + i128::from(offset_s) * 1_000_000_000;
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_bytes(big_endian: bool, nanos: bool, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend(w(if nanos { PCAP_MAGIC_NS } else { PCAP_MAGIC_US }));
        out.extend(if big_endian {
            [0, 2, 0, 4]
        } else {
            [2, 0, 4, 0]
        });
        out.extend(w(0));
        out.extend(w(0));
        out.extend(w(65535));
        out.extend(w(1));
        for (s, frac, data) in records {
            out.extend(w(*s));
            out.extend(w(*frac));
            out.extend(w(data.len() as u32));
            out.extend(w(data.len() as u32 + 4));
            out.extend_from_slice(data);
        }
        out
    }

    #[allow(clippy::type_complexity)] // (time, length, captured) per frame: a test's view
    fn read_all(bytes: &[u8]) -> Result<(Vec<(i64, u32, usize)>, ReadReport)> {
        let mut r = FrameReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(f) = r.next_frame()? {
            out.push((f.t_ns, f.orig_len, f.data.len()));
        }
        Ok((out, r.report))
    }

    #[test]
    fn reads_all_byte_orders_and_resolutions() {
        for be in [false, true] {
            for ns in [false, true] {
                let bytes = pcap_bytes(be, ns, &[(1, 5, &[0; 20]), (2, 7, &[0; 30])]);
                let (frames, report) = read_all(&bytes).unwrap();
                let unit = if ns { 1 } else { 1000 };
                assert_eq!(
                    frames,
                    [
                        (1_000_000_000 + 5 * unit, 24, 20),
                        (2_000_000_000 + 7 * unit, 34, 30)
                    ]
                );
                assert_eq!(report.captured_bytes, 50);
                assert_eq!(report.snap_truncated, 2);
            }
        }
    }

    #[test]
    fn truncated_last_record_keeps_earlier_ones() {
        let bytes = pcap_bytes(false, false, &[(1, 0, &[0; 20]), (2, 0, &[0; 30])]);
        let (frames, report) = read_all(&bytes[..bytes.len() - 5]).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(report.truncated_tail_at, Some(24 + 16 + 20));
    }

    #[test]
    fn huge_caplen_is_an_error_not_an_allocation() {
        let mut bytes = pcap_bytes(false, false, &[(1, 0, &[0; 20])]);
        bytes[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_all(&bytes).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::RecordTooLarge { .. }),
            "{err}"
        );
        assert_eq!(err.offset, Some(24));
    }

    #[test]
    fn not_a_capture() {
        let err = read_all(b"hello, world").unwrap_err();
        assert!(matches!(err.kind, ErrorKind::UnknownFormat(_)), "{err}");
        assert!(read_all(b"").is_err());
    }

    /// A little-endian pcapng block: type, length, body, length; `claimed` overrides the length.
    fn ng_block(block_type: u32, body: &[u8], claimed: Option<u32>) -> Vec<u8> {
        let mut padded = body.to_vec();
        padded.resize(body.len().next_multiple_of(4), 0);
        let len = claimed.unwrap_or(padded.len() as u32 + 12);
        let mut out = Vec::new();
        out.extend(block_type.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(padded);
        out.extend(len.to_le_bytes());
        out
    }

    fn ng_file(packet_blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut shb = PCAPNG_BOM.to_le_bytes().to_vec();
        shb.extend([1, 0, 0, 0]);
        shb.extend(u64::MAX.to_le_bytes());
        // Ethernet, snap length 0 (no limit).
        let idb = [1, 0, 0, 0, 0, 0, 0, 0];
        let mut out = ng_block(PCAPNG_SHB, &shb, None);
        out.extend(ng_block(PCAPNG_IDB, &idb, None));
        for b in packet_blocks {
            out.extend(b);
        }
        out
    }

    fn epb_body(data: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; 4]; // interface 0
        body.extend(0u32.to_le_bytes());
        body.extend(1_000_000u32.to_le_bytes()); // 1 s in µs
        body.extend((data.len() as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend(data);
        body
    }

    #[test]
    fn pcapng_block_length_without_padding_is_rounded_up() {
        // 20-byte EPB header + 5 data bytes + 12 framing = 37; the block really takes 40.
        let bytes = ng_file(&[
            ng_block(PCAPNG_EPB, &epb_body(&[1, 2, 3, 4, 5]), Some(37)),
            ng_block(PCAPNG_EPB, &epb_body(&[6; 8]), None),
        ]);
        let (frames, report) = read_all(&bytes).unwrap();
        assert_eq!(frames, [(1_000_000_000, 5, 5), (1_000_000_000, 8, 8)]);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    }

    #[test]
    fn pcapng_trailer_must_agree_after_rounding() {
        let mut block = ng_block(PCAPNG_EPB, &epb_body(&[1, 2, 3, 4, 5]), Some(37));
        let n = block.len();
        block[n - 4..].copy_from_slice(&44u32.to_le_bytes());
        let err = read_all(&ng_file(&[block])).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Malformed { .. }), "{err}");
        assert_eq!(err.offset, Some(28 + 20));
    }

    #[test]
    fn buffer_grows_with_data_not_with_claims() {
        // Snap length 64 MiB and a record claiming 60 MB, in a 100-byte file.
        let mut bytes = pcap_bytes(false, false, &[(1, 0, &[0; 60])]);
        bytes[16..20].copy_from_slice(&(64u32 << 20).to_le_bytes());
        bytes[24 + 8..24 + 12].copy_from_slice(&60_000_000u32.to_le_bytes());
        let mut r = FrameReader::new(&bytes[..]).unwrap();
        assert!(r.next_frame().unwrap().is_none());
        assert_eq!(r.report.truncated_tail_at, Some(24));
        assert!(r.buf.len() <= 256 << 10, "buffer grew to {}", r.buf.len());
    }

    #[test]
    fn ns_conversion_saturates() {
        assert_eq!(units_to_ns(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(units_to_ns(u64::MAX, 1, i64::MAX), i64::MAX);
    }
}
