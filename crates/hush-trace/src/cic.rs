//! The per-packet CSV of the CIC IoT Dataset 2022 (Dadkhah, Mahdikhani, Danso, Zohourian, Truong
//! and Ghorbani, "Towards the development of a realistic multidimensional IoT profiling
//! dataset", PST 2022), and its "Interactions" experiment as labelled datasets.
//!
//! Each file is one capture of one device, already reduced to one row per packet by the
//! dataset's authors: `epoch_timestamp`, `ethernet_frame_size` (the header says
//! `ethernet_frame_size `, with a trailing space, as does `protocol `: every header name is
//! trimmed), `total_length` (IP), `pck_size` (IP payload), `protocol` (IP protocol number),
//! `source_port`, `dest_port`, `ip_dst_new` (the destination IPv4 address as an integer, 0 when
//! the frame is not IP) and per-window statistics that hush does not read. There is no source
//! address, so the direction comes from the destination: the device's own address is the
//! private (RFC 1918) destination most packets of the file go to, packets to it are inbound,
//! packets to any other address (the Internet, the gateway, broadcast, multicast, a phone on the
//! LAN) outbound, and frames that are not IP have an unknown direction.
//!
//! [`read_cic`] reads one file into a [`Trace`]; [`crate::read_trace`] recognises the header and
//! calls it. [`load_interactions`] reads the Interactions experiment's layout,
//! `<device>/<device prefix><EVENT>_<repetition>.csv`, into one labelled dataset per device:
//! the label is the event (the file name without its lower-case device prefix and its
//! repetition), the group the repetition.
//!
//! A header without a needed column is [`ErrorKind::MissingColumn`] at line 1; a cell that
//! does not parse is [`ErrorKind::BadField`] naming the column (name and 1-based position) at
//! its line. With [`ReadOptions::strict`] off, bad rows are skipped and counted instead, unless
//! no row parses.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::csv::{MAX_LINE_BYTES, derive_proto, parse_seconds_ns};
use crate::dataset::{Dataset, DatasetReport, LabelledTrace};
use crate::packet::{Direction, Endpoint, Packet};
use crate::trace::{EndpointTable, Format, ReadReport, Trace};
use crate::{ErrorKind, ReadOptions, Result, TraceError};

/// Columns hush needs (after trimming).
pub const REQUIRED_COLUMNS: [&str; 3] = ["epoch_timestamp", "ethernet_frame_size", "ip_dst_new"];

/// Whether a CSV header line is the CIC IoT 2022 per-packet layout (it names `ip_dst_new` and
/// `epoch_timestamp`).
pub fn is_cic_header(line: &str) -> bool {
    let names: Vec<&str> = line
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    names.contains(&"ip_dst_new") && names.contains(&"epoch_timestamp")
}

/// Column positions.
struct Columns {
    count: usize,
    time: usize,
    frame: usize,
    dst: usize,
    ip_len: Option<usize>,
    ip_payload: Option<usize>,
    proto: Option<usize>,
    src_port: Option<usize>,
    dst_port: Option<usize>,
    names: Vec<String>,
}

impl Columns {
    fn from_header(line: &str) -> Result<Columns> {
        let names: Vec<String> = line
            .split(',')
            .map(|c| c.trim().trim_matches('"').to_string())
            .collect();
        let find = |n: &str| names.iter().position(|c| c == n);
        let need = |n: &str| {
            find(n).ok_or_else(|| TraceError::new(ErrorKind::MissingColumn(n.to_string())))
        };
        Ok(Columns {
            count: names.len(),
            time: need("epoch_timestamp")?,
            frame: need("ethernet_frame_size")?,
            dst: need("ip_dst_new")?,
            ip_len: find("total_length"),
            ip_payload: find("pck_size"),
            proto: find("protocol"),
            src_port: find("source_port"),
            dst_port: find("dest_port"),
            names,
        })
    }

    fn bad(&self, col: usize, detail: String) -> TraceError {
        TraceError::new(ErrorKind::BadField {
            field: format!("{} (column {})", self.names[col], col + 1),
            detail,
        })
    }

    /// A whole number that may be written as a float (`410.0`), within `0..=max`.
    fn number(&self, cells: &[&str], col: usize, max: f64) -> Result<f64> {
        let cell = cells[col].trim();
        let v: f64 = cell
            .parse()
            .map_err(|_| self.bad(col, format!("{cell:?} is not a number")))?;
        if !(v.is_finite() && (0.0..=max).contains(&v) && v.fract() == 0.0) {
            return Err(self.bad(col, format!("{cell:?} is not a whole number in 0..={max}")));
        }
        Ok(v)
    }

    fn optional(&self, cells: &[&str], col: Option<usize>, max: f64) -> Result<f64> {
        match col {
            Some(c) if !cells[c].trim().is_empty() => self.number(cells, c, max),
            _ => Ok(0.0),
        }
    }
}

/// One row before directions are known: the packet and its destination address (0: not IP).
fn parse_row(cols: &Columns, text: &str) -> Result<(Packet, u32)> {
    let cells: Vec<&str> = text.split(',').collect();
    if cells.len() != cols.count {
        return Err(TraceError::new(ErrorKind::Invalid(format!(
            "{} fields, but the header names {}",
            cells.len(),
            cols.count
        ))));
    }
    let t = cells[cols.time].trim();
    let t_ns = parse_seconds_ns(t)
        .ok_or_else(|| cols.bad(cols.time, format!("{t:?} is not a time in seconds")))?;
    let frame_len = cols.number(&cells, cols.frame, f64::from(u32::MAX))? as u32;
    let dst = cols.number(&cells, cols.dst, f64::from(u32::MAX))? as u32;
    let ip_proto = cols.optional(&cells, cols.proto, 255.0)? as u8;
    let ip_payload = cols.optional(&cells, cols.ip_payload, f64::from(u32::MAX))? as u32;
    let mut p = Packet {
        t_ns,
        frame_len,
        ip_len: cols.optional(&cells, cols.ip_len, f64::from(u32::MAX))? as u32,
        ip_proto,
        src_port: cols.optional(&cells, cols.src_port, 65535.0)? as u16,
        dst_port: cols.optional(&cells, cols.dst_port, 65535.0)? as u16,
        ..Packet::default()
    };
    if dst != 0 {
        // The rows give the IP payload with its transport header; the TCP header's options are
        // not given, so TCP payloads assume a 20-byte header.
        p.payload_len = match ip_proto {
            6 => ip_payload.saturating_sub(20),
            17 => ip_payload.saturating_sub(8),
            _ => ip_payload,
        };
        p.proto = derive_proto(&p, Some(4));
    } else {
        p.ip_proto = 0;
        p.src_port = 0;
        p.dst_port = 0;
    }
    Ok((p, dst))
}

fn is_private(a: Ipv4Addr) -> bool {
    a.is_private()
}

/// Read one CIC IoT 2022 per-packet CSV (see the module docs), sorted by time, with directions.
pub fn read_cic(mut src: impl BufRead, name: &str, opts: ReadOptions) -> Result<Trace> {
    let mut report = ReadReport {
        format: Some(Format::Csv),
        ..ReadReport::default()
    };
    let mut line = String::new();
    let mut number = 0u64;
    let mut next_line = |line: &mut String| -> Result<Option<u64>> {
        line.clear();
        let n = Read::by_ref(&mut src)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_line(line)
            .map_err(|e| TraceError::from(e).in_file(name))?;
        if n == 0 {
            return Ok(None);
        }
        number += 1;
        if n > MAX_LINE_BYTES {
            return Err(TraceError::new(ErrorKind::Invalid(format!(
                "a line longer than {MAX_LINE_BYTES} bytes"
            )))
            .at_line(number)
            .in_file(name));
        }
        Ok(Some(number))
    };
    let Some(header_line) = next_line(&mut line)? else {
        return Err(TraceError::new(ErrorKind::Invalid("empty file".into())).in_file(name));
    };
    let cols = Columns::from_header(line.trim_end_matches(['\r', '\n']))
        .map_err(|e| e.at_line(header_line).in_file(name))?;
    let mut rows: Vec<(Packet, u32)> = Vec::new();
    let mut first_error = None;
    while let Some(n) = next_line(&mut line)? {
        let text = line.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            continue;
        }
        report.records += 1;
        match parse_row(&cols, text) {
            Ok(r) => {
                report.captured_bytes += u64::from(r.0.frame_len);
                rows.push(r);
            }
            Err(e) => {
                let e = e.at_line(n).in_file(name);
                if opts.strict {
                    return Err(e);
                }
                report.skip("bad CSV line");
                report.warn(e.to_string());
                first_error.get_or_insert(e);
            }
        }
    }
    if rows.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    // The device: the private destination most packets go to (ties: the lower address).
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for &(_, d) in &rows {
        if d != 0 && is_private(Ipv4Addr::from(d)) {
            *counts.entry(d).or_default() += 1;
        }
    }
    let device = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&d, _)| d);
    let mut endpoints = EndpointTable::default();
    let unknown = endpoints.intern(Endpoint {
        mac: None,
        ip: None,
    });
    let me = match device {
        Some(d) => endpoints.intern(Endpoint {
            mac: None,
            ip: Some(IpAddr::V4(Ipv4Addr::from(d))),
        }),
        None => unknown,
    };
    let mut packets = Vec::with_capacity(rows.len());
    for (mut p, d) in rows {
        if d == 0 {
            (p.src, p.dst, p.dir) = (unknown, unknown, Direction::Unknown);
        } else if Some(d) == device {
            (p.src, p.dst, p.dir) = (unknown, me, Direction::Inbound);
        } else {
            let peer = endpoints.intern(Endpoint {
                mac: None,
                ip: Some(IpAddr::V4(Ipv4Addr::from(d))),
            });
            (p.src, p.dst, p.dir) = (me, peer, Direction::Outbound);
        }
        packets.push(p);
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

/// What a file name of the Interactions experiment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionName {
    /// The event: channel and action, e.g. `LANON`, `ALEXAOFF`, `WANWATCH`.
    pub event: String,
    /// The repetition, from 1.
    pub repetition: u32,
}

/// Misspellings in the published file names, mapped to the event they repeat
/// (`smartboardLOCALBROWSWER_2.csv` is the second `LOCALBROWSER`).
pub const EVENT_ALIASES: &[(&str, &str)] = &[("LOCALBROWSWER", "LOCALBROWSER")];

/// Parse `<lower-case device prefix><EVENT>[_-]<repetition>.csv`: the event starts at the first
/// upper-case letter and ends at the last `_` or `-`; the prefix is not checked against the
/// folder (`arlobasecam` files start `arlobasestationcam`). `None` when the name has no event or
/// no repetition number.
pub fn parse_interaction_name(file_name: &str) -> Option<InteractionName> {
    let stem = file_name
        .strip_suffix(".csv")
        .or_else(|| file_name.strip_suffix(".CSV"))?;
    let start = stem.find(|c: char| c.is_ascii_uppercase())?;
    let (body, rep) = stem[start..].rsplit_once(['_', '-'])?;
    let repetition: u32 = rep.parse().ok().filter(|r| *r > 0)?;
    if body.is_empty() {
        return None;
    }
    let event = EVENT_ALIASES
        .iter()
        .find(|(from, _)| *from == body)
        .map_or(body, |(_, to)| to)
        .to_string();
    Some(InteractionName { event, repetition })
}

/// One device's interactions: the event of each capture as its label, its repetition as its
/// group.
#[derive(Debug, Clone)]
pub struct DeviceInteractions {
    /// The device (its folder's name).
    pub device: String,
    /// Its captures.
    pub dataset: Dataset,
}

/// Whether `dir` holds CIC IoT 2022 per-packet CSV files, directly or one folder down (the first
/// `.csv` file found decides by its header).
pub fn looks_like_cic(dir: &Path) -> bool {
    let csvs = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        v
    };
    let entries = csvs(dir);
    let first = entries
        .iter()
        .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
        .cloned()
        .or_else(|| {
            entries.iter().filter(|p| p.is_dir()).find_map(|d| {
                csvs(d)
                    .into_iter()
                    .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
            })
        });
    let Some(path) = first else { return false };
    let Ok(f) = std::fs::File::open(&path) else {
        return false;
    };
    let mut header = String::new();
    let read = Read::take(std::io::BufReader::new(f), MAX_LINE_BYTES as u64).read_line(&mut header);
    read.is_ok() && is_cic_header(&header)
}

/// Read the Interactions layout under `root`: either device folders of CSV files, or one
/// device's folder (its CSV files directly inside). One [`DeviceInteractions`] per device, in
/// name order; files are read in parallel. A CSV file whose name does not parse, or that cannot
/// be read, is listed in the device dataset's report and left out; a folder with no CSV file is
/// an error.
pub fn load_interactions(
    root: impl AsRef<Path>,
    opts: ReadOptions,
) -> Result<Vec<DeviceInteractions>> {
    let root = root.as_ref();
    let list = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| TraceError::from(e).in_file(d))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let is_csv =
        |p: &PathBuf| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let entries = list(root)?;
    let mut devices: Vec<(String, Vec<PathBuf>)> = Vec::new();
    if entries.iter().any(is_csv) {
        let name = root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        devices.push((name, entries.into_iter().filter(is_csv).collect()));
    } else {
        for d in entries.into_iter().filter(|p| p.is_dir()) {
            let files: Vec<PathBuf> = list(&d)?.into_iter().filter(is_csv).collect();
            if !files.is_empty() {
                let name = d
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                devices.push((name, files));
            }
        }
    }
    if devices.is_empty() {
        return Err(TraceError::new(ErrorKind::Invalid(
            "no CSV files here or in its folders".into(),
        ))
        .in_file(root));
    }
    devices
        .into_iter()
        .map(|(device, files)| {
            let read: Vec<std::result::Result<LabelledTrace, (String, String)>> = files
                .par_iter()
                .map(|path| {
                    let shown = path.display().to_string();
                    let file_name = path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    let Some(n) = parse_interaction_name(&file_name) else {
                        return Err((
                            shown,
                            "the name is not <device><EVENT>_<repetition>.csv".into(),
                        ));
                    };
                    let f = std::fs::File::open(path)
                        .map_err(|e| (shown.clone(), TraceError::from(e).to_string()))?;
                    let trace = read_cic(std::io::BufReader::new(f), &shown, opts)
                        .map_err(|e| (shown.clone(), e.to_string()))?;
                    Ok(LabelledTrace {
                        label: n.event,
                        group: format!("repetition {}", n.repetition),
                        trace,
                    })
                })
                .collect();
            let mut report = DatasetReport {
                files: files.len(),
                ..DatasetReport::default()
            };
            let mut traces = Vec::new();
            for r in read {
                match r {
                    Ok(t) => {
                        report.reading.absorb(&t.trace.report);
                        if t.trace.report.backwards_timestamps > 0 {
                            report.files_with_backwards_timestamps += 1;
                        }
                        traces.push(t);
                    }
                    Err(bad) => report.not_read.push(bad),
                }
            }
            let mut labels: Vec<String> = traces.iter().map(|t| t.label.clone()).collect();
            labels.sort();
            labels.dedup();
            Ok(DeviceInteractions {
                device,
                dataset: Dataset {
                    traces,
                    labels,
                    report,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Proto;

    const HEADER: &str = "Unnamed: 0,L4_tcp,pck_size,ip_dst_new,ethernet_frame_size ,total_length,protocol ,source_port,dest_port,epoch_timestamp";

    fn read(text: &str, strict: bool) -> Result<Trace> {
        read_cic(text.as_bytes(), "t.csv", ReadOptions { strict })
    }

    #[test]
    fn directions_come_from_the_destination() {
        // 192.168.137.77 is the device (two packets go to it); .1, a public address and a
        // broadcast are where it sends; 0 is not IP.
        let dev = u32::from(Ipv4Addr::new(192, 168, 137, 77));
        let gw = u32::from(Ipv4Addr::new(192, 168, 137, 1));
        let public = u32::from(Ipv4Addr::new(34, 1, 2, 3));
        let text = format!(
            "{HEADER}\n\
             0,1,410,{dev},444,430,6,443,65130,1633349379.757532\n\
             1,1,53,{public},87,73,6,65130,443,1633349379.763211\n\
             2,0,40,{gw},82,68,17,5000,53,1633349379.5\n\
             3,0,0,0,42,0,0,0,0,1633349380\n\
             4,1,20,{dev},54,40,6,443,65130,1633349381.0\n\
             5,0,100,4294967295,142,128,17,6667,6667,1633349382\n"
        );
        let t = read(&text, true).unwrap();
        let dirs: Vec<Direction> = t.packets.iter().map(|p| p.dir).collect();
        use Direction::{Inbound as I, Outbound as O, Unknown as U};
        // Sorted by time: the DNS query at .5 comes first.
        assert_eq!(dirs, [O, I, O, U, I, O]);
        assert_eq!(t.report.backwards_timestamps, 1);
        let first = &t.packets[1];
        assert_eq!(
            (first.frame_len, first.ip_len, first.payload_len),
            (444, 430, 390)
        );
        assert!(first.proto.contains(Proto::TCP | Proto::TLS));
        assert_eq!(t.packets[1].t_ns, 1_633_349_379_757_532_000);
        assert!(t.packets[0].proto.contains(Proto::UDP | Proto::DNS));
        assert_eq!(t.packets[0].payload_len, 32);
        assert_eq!(
            t.endpoint(t.packets[1].dst).ip.unwrap().to_string(),
            "192.168.137.77"
        );
        assert_eq!(t.packets[3].proto, Proto::empty());
    }

    #[test]
    fn bad_columns_and_cells_say_where() {
        let missing = "epoch_timestamp,ethernet_frame_size ,protocol \n1,60,6\n";
        let e = read(missing, false).unwrap_err();
        assert!(
            matches!(&e.kind, ErrorKind::MissingColumn(c) if c == "ip_dst_new"),
            "{e}"
        );
        assert_eq!(e.line, Some(1));
        assert_eq!(e.to_string(), "t.csv:1: missing column \"ip_dst_new\"");

        let text = format!(
            "{HEADER}\n0,1,410,3232270669,444,430,6,443,65130,1.5\n1,1,53,3232270669,big,73,6,1,2,2.0\n"
        );
        let e = read(&text, true).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(
            e.to_string(),
            "t.csv:3: field \"ethernet_frame_size (column 5)\": \"big\" is not a number"
        );
        // Lenient: the bad row is skipped and counted.
        let t = read(&text, false).unwrap();
        assert_eq!(t.packets.len(), 1);
        assert_eq!(t.report.skipped.get("bad CSV line"), Some(&1));
        // Every row bad: the first error, even when lenient.
        let all_bad = format!("{HEADER}\n0,1,410,3232270669,444,430,6,443,65130,soon\n");
        let e = read(&all_bad, false).unwrap_err();
        assert!(e.to_string().contains("epoch_timestamp (column 10)"), "{e}");
        let short = format!("{HEADER}\n0,1,410\n");
        assert!(
            read(&short, true)
                .unwrap_err()
                .to_string()
                .contains("3 fields")
        );
        let negative = format!("{HEADER}\n0,1,410,3232270669,-4,430,6,443,65130,1.0\n");
        assert!(read(&negative, true).is_err());
        assert!(read("", true).is_err());
    }

    #[test]
    fn file_names_give_event_and_repetition() {
        let n = |s: &str| parse_interaction_name(s).map(|n| (n.event, n.repetition));
        assert_eq!(n("amazonplugLANON_2.csv"), Some(("LANON".into(), 2)));
        assert_eq!(
            n("arlobasestationcamWANWATCH_3.csv"),
            Some(("WANWATCH".into(), 3))
        );
        assert_eq!(n("teckin1ALEXAOFF_1.csv"), Some(("ALEXAOFF".into(), 1)));
        assert_eq!(n("netatmocamWANWATCH-3.csv"), Some(("WANWATCH".into(), 3)));
        assert_eq!(
            n("smartboardLOCALBROWSWER_2.csv"),
            Some(("LOCALBROWSER".into(), 2))
        );
        assert_eq!(n("plug.csv"), None);
        assert_eq!(n("plugON.csv"), None);
        assert_eq!(n("plugON_x.csv"), None);
        assert_eq!(n("plugON_0.csv"), None);
        assert_eq!(n("plugON_1.pcap"), None);
    }

    #[test]
    fn header_detection() {
        assert!(is_cic_header(HEADER));
        assert!(!is_cic_header("time_s,direction,frame_len"));
    }
}
