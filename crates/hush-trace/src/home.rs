//! Whole-home captures: one capture of a home network (a file, or a folder of files that continue
//! each other, as `tcpdump -C` or `-G` writes them) and a devices CSV naming the devices to study.
//! [`load_home`] turns them into a [`Dataset`] with one trace per device and time window.
//!
//! ```no_run
//! use hush_trace::dataset::LoadOptions;
//! use hush_trace::home::{HomeSpec, HomeWindows, load_home};
//! let spec = HomeSpec::new("home.pcap".as_ref(), "devices.csv".as_ref(), HomeWindows::default())?;
//! let ds = load_home(&spec, &LoadOptions::default())?;
//! println!("{} windows of {} classes", ds.traces.len(), ds.labels.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The devices CSV
//!
//! A header `mac,name[,type]`, then one row per device: its MAC, a unique name, and optionally a
//! type. The label of its traces is the type when given (two plugs of one model share a class),
//! else the name. Blank lines and lines starting with `#` are skipped.
//!
//! # Windows and groups
//!
//! Each device's traffic, the frames from or to its MAC, directions set by
//! [`set_direction`] with that MAC, is cut on one grid of fixed windows of
//! [`HomeWindows::window_s`] seconds starting at the capture's first packet: the same grid for
//! every device, placed by the clock, never by the traffic or the label. Each window in which the
//! device sent or received anything is one trace. Windows are grouped into time blocks of
//! [`HomeWindows::block_s`] seconds, a whole number of windows, and one block is one group for
//! every device, so the splits in [`crate::split`] keep a whole stretch of the home's time on one
//! side. A test window then never has a training window of the same device from the same
//! minutes, nor one of a device it was talking to then (a packet between two listed devices is in
//! both their traces). Windows tile time: they never overlap and none straddles two blocks, so
//! only the windows at a block's two edges touch a window of another group, and an exchange in
//! progress at that instant is the only traffic the two can share.
//!
//! Defaults: 60 s windows, 600 s blocks. A minute holds several of a device's periodic exchanges
//! (keep-alives, cloud polls, DNS), enough for per-trace features. Ten-minute blocks keep 8 of
//! every 10 windows away from any other group's, and give six groups an hour, so 5-fold
//! cross-validation fits a one-hour capture. Longer blocks leak less and give fewer groups.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use rustc_hash::FxHashMap;

use crate::capture::{FrameReader, sniff_format};
use crate::dataset::{Dataset, DatasetReport, LabelledTrace, LoadOptions, sorted_labels};
use crate::decode::LinkType;
use crate::device::{DeviceSpec, set_direction};
use crate::error::{ErrorKind, Result, TraceError};
use crate::packet::{Mac, Packet};
use crate::read::PacketStream;
use crate::trace::{EndpointTable, ReadReport, Trace};

/// One row of a devices CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeDevice {
    /// Its MAC: frames from it are outbound, frames to it inbound.
    pub mac: Mac,
    /// A name unique in the file.
    pub name: String,
    /// Its type, when given: the class label of its traces.
    pub kind: Option<String>,
    /// The 1-based line of the CSV it came from.
    pub line: u64,
}

impl HomeDevice {
    /// The class label of its traces: the type, else the name.
    pub fn label(&self) -> &str {
        self.kind.as_deref().unwrap_or(&self.name)
    }
}

/// Read a devices CSV (see the module docs). Errors name the file and line: a missing `mac` or
/// `name` column, an unparsable, broadcast or multicast MAC, an empty name, a MAC or name given
/// twice ([`ErrorKind::Duplicate`]), no device at all.
pub fn read_devices(path: impl AsRef<Path>) -> Result<Vec<HomeDevice>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::from(e).in_file(path))?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let mut cols = Vec::new();
    let header_line = match lines.next() {
        Some((n, header)) => {
            crate::csv::split_cells(header, ',', &mut cols);
            n
        }
        None => 1,
    };
    let col = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(mac_col), Some(name_col)) = (col("mac"), col("name")) else {
        return Err(TraceError::new(ErrorKind::MissingColumn(
            "mac and name (header: mac,name[,type])".into(),
        ))
        .at_line(header_line)
        .in_file(path));
    };
    let type_col = col("type");
    let mut out: Vec<HomeDevice> = Vec::new();
    let mut cells = Vec::new();
    for (line, text) in lines {
        crate::csv::split_cells(text, ',', &mut cells);
        let get = |c: Option<usize>| {
            c.and_then(|c| cells.get(c))
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let at_line = |kind: ErrorKind| TraceError::new(kind).at_line(line).in_file(path);
        let bad = |field: &str, detail: String| {
            at_line(ErrorKind::BadField {
                field: field.into(),
                detail,
            })
        };
        let written = get(Some(mac_col)).unwrap_or_default();
        let mac: Mac = written.parse().map_err(|_| {
            bad(
                "mac",
                format!("{written:?} is not a MAC address (like 00:17:88:2b:9a:0c)"),
            )
        })?;
        if mac.is_group() {
            return Err(bad(
                "mac",
                format!("{mac} is a broadcast or multicast address, not a device"),
            ));
        }
        let name = get(Some(name_col)).ok_or_else(|| bad("name", "empty".into()))?;
        if let Some(first) = out.iter().find(|d| d.mac == mac) {
            return Err(at_line(ErrorKind::Duplicate {
                what: format!("MAC {mac}"),
                first_line: first.line,
            }));
        }
        if let Some(first) = out.iter().find(|d| d.name == name) {
            return Err(at_line(ErrorKind::Duplicate {
                what: format!("device name {name:?}"),
                first_line: first.line,
            }));
        }
        out.push(HomeDevice {
            mac,
            name: name.to_string(),
            kind: get(type_col).map(str::to_string),
            line,
        });
    }
    if out.is_empty() {
        return Err(TraceError::new(ErrorKind::Invalid(
            "no device listed (header mac,name[,type], then one row per device)".into(),
        ))
        .in_file(path));
    }
    Ok(out)
}

/// How a whole home is cut into traces and groups (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HomeWindows {
    /// Length of each window, one trace per device and window, seconds.
    pub window_s: f64,
    /// Length of each time block, one group, seconds: a whole number of windows.
    pub block_s: f64,
}

impl Default for HomeWindows {
    fn default() -> Self {
        HomeWindows {
            window_s: 60.0,
            block_s: 600.0,
        }
    }
}

impl HomeWindows {
    /// The window and block lengths in nanoseconds, or an error when the window is not positive
    /// or the block is not a whole number (at least one) of windows.
    pub fn lengths_ns(&self) -> Result<(i64, i64)> {
        let invalid = |msg: String| Err(TraceError::new(ErrorKind::Invalid(msg)));
        // At most ten years: beyond that nanosecond counts would overflow nothing useful.
        let max_s = 10.0 * 365.0 * 86_400.0;
        if !(self.window_s > 0.0 && self.window_s <= max_s) {
            return invalid(format!(
                "window of {} s: it must be more than 0 s and at most ten years",
                self.window_s
            ));
        }
        let per_block = self.block_s / self.window_s;
        if !((1.0..=1e9).contains(&per_block) && (per_block - per_block.round()).abs() < 1e-9) {
            return invalid(format!(
                "block of {} s: it must be a whole number of {} s windows, so that no window \
                 straddles two groups",
                self.block_s, self.window_s
            ));
        }
        let window_ns = ((self.window_s * 1e9).round() as i64).max(1);
        Ok((window_ns, window_ns * per_block.round() as i64))
    }
}

/// A whole-home capture to load: its files, its devices CSV, how to cut it.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeSpec {
    /// The capture's files (pcap or pcapng), in the order given; their packets are merged by time.
    pub captures: Vec<PathBuf>,
    /// The devices CSV.
    pub devices: PathBuf,
    /// Windows and blocks.
    pub windows: HomeWindows,
    /// The home's name in groups: the capture file's or folder's name.
    pub name: String,
}

impl HomeSpec {
    /// `data` is one capture file, or a folder whose pcap and pcapng files (searched
    /// recursively, in path order; other files ignored) are parts of one capture. Checks that
    /// the files and the devices CSV exist and that the windows are valid; reads nothing else.
    pub fn new(data: &Path, devices: &Path, windows: HomeWindows) -> Result<HomeSpec> {
        windows.lengths_ns().map_err(|e| e.in_file(data))?;
        if !devices.is_file() {
            return Err(TraceError::new(ErrorKind::MissingPath(
                devices.to_path_buf(),
            )));
        }
        let meta = std::fs::metadata(data).map_err(|e| TraceError::from(e).in_file(data))?;
        let captures = if meta.is_dir() {
            let mut files = Vec::new();
            walk_captures(data, &mut files).map_err(|e| TraceError::from(e).in_file(data))?;
            if files.is_empty() {
                return Err(TraceError::new(ErrorKind::Invalid(
                    "no pcap or pcapng file in the folder".into(),
                ))
                .in_file(data));
            }
            files
        } else {
            vec![data.to_path_buf()]
        };
        let name = data.file_name().map_or_else(
            || data.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(HomeSpec {
            captures,
            devices: devices.to_path_buf(),
            windows,
            name,
        })
    }
}

/// pcap and pcapng files below `dir`, in path order, skipping names starting with `_` or `.`.
fn walk_captures(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for p in entries {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with('_') || n.starts_with('.')) {
            continue;
        }
        if p.is_dir() {
            walk_captures(&p, out)?;
        } else if is_capture(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn is_capture(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| sniff_format(&head).is_some())
}

/// Each listed device's traffic in a whole-home capture, before windowing.
#[derive(Debug, Clone, Default)]
pub struct HomeSplit {
    /// One trace per device, in the devices' order, directions set by its MAC; empty for a device
    /// never seen.
    pub traces: Vec<Trace>,
    /// Time of the capture's first packet (of any host), ns: where the window grid starts.
    pub start_ns: i64,
    /// Files read and not read, reading counts and anomalies.
    pub report: DatasetReport,
}

/// Read the capture's files (streaming: only the listed devices' packets are kept) and give each
/// device its trace: every packet from or to its MAC, sorted by time, with its own endpoint
/// table. A file that cannot be read is listed in the report's `not_read`; it is an error only
/// when no file can be read.
pub fn split_home(
    captures: &[PathBuf],
    devices: &[HomeDevice],
    opts: &LoadOptions<'_>,
) -> Result<HomeSplit> {
    let index: FxHashMap<Mac, usize> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.mac, i))
        .collect();
    let mut per: Vec<(EndpointTable, Vec<Packet>)> = vec![Default::default(); devices.len()];
    let mut out = HomeSplit {
        report: DatasetReport {
            files: captures.len(),
            ..DatasetReport::default()
        },
        ..HomeSplit::default()
    };
    let mut start: Option<i64> = None;
    let mut first_error = None;
    for (done, path) in captures.iter().enumerate() {
        match read_part(path, &index, &mut per, &mut start, opts) {
            Ok(report) => {
                out.report.reading.absorb(&report);
                if out.report.reading.format.is_none() {
                    out.report.reading.format = report.format;
                }
                out.report.files_with_backwards_timestamps +=
                    usize::from(report.backwards_timestamps > 0);
            }
            Err(e) => {
                out.report
                    .not_read
                    .push((path.display().to_string(), e.to_string()));
                first_error.get_or_insert(e);
            }
        }
        if let Some(progress) = opts.progress {
            progress(done + 1, captures.len());
        }
    }
    if out.report.not_read.len() == captures.len()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    out.start_ns = start.unwrap_or(0);
    for (d, (table, packets)) in devices.iter().zip(per) {
        let mut t = Trace {
            name: d.name.clone(),
            packets,
            endpoints: table.into_list(),
            report: ReadReport::default(),
        };
        // Parts of one capture may overlap in time; equal times keep file order.
        t.packets.sort_by_key(|p| p.t_ns);
        set_direction(&mut t, &DeviceSpec::Mac(d.mac))?;
        out.traces.push(t);
    }
    Ok(out)
}

/// Stream one file, appending each packet to the devices it is from or to. Returns the file's
/// report, with its backwards timestamps counted.
fn read_part(
    path: &Path,
    index: &FxHashMap<Mac, usize>,
    per: &mut [(EndpointTable, Vec<Packet>)],
    start: &mut Option<i64>,
    opts: &LoadOptions<'_>,
) -> Result<ReadReport> {
    let file = std::fs::File::open(path).map_err(|e| TraceError::from(e).in_file(path))?;
    let mut stream =
        PacketStream::new(BufReader::with_capacity(1 << 20, file)).map_err(|e| e.in_file(path))?;
    // Stream endpoint id -> the listed device it is, filled as endpoints appear.
    let mut device_of: Vec<Option<usize>> = Vec::new();
    let mut backwards = 0u64;
    let mut last_t_ns = i64::MIN;
    let mut stopped_early = None;
    loop {
        let p = match stream.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // As read_trace does: keep what came before a corrupt record unless strict.
            Err(e) if !opts.read.strict && stream.report().records > 0 => {
                stopped_early = Some(e.to_string());
                break;
            }
            Err(e) => return Err(e.in_file(path)),
        };
        backwards += u64::from(p.t_ns < last_t_ns);
        last_t_ns = p.t_ns;
        *start = Some(start.map_or(p.t_ns, |s| s.min(p.t_ns)));
        let endpoints = stream.endpoints();
        while device_of.len() < endpoints.len() {
            let e = endpoints[device_of.len()];
            device_of.push(e.mac.and_then(|m| index.get(&m).copied()));
        }
        let of = |id: crate::packet::EndpointId| device_of.get(id.0 as usize).copied().flatten();
        let (src, dst) = (of(p.src), of(p.dst));
        for dev in [src, dst.filter(|d| Some(*d) != src)].into_iter().flatten() {
            let (table, packets) = &mut per[dev];
            let mut q = p;
            q.src = table.intern(endpoints[p.src.0 as usize]);
            q.dst = table.intern(endpoints[p.dst.0 as usize]);
            packets.push(q);
        }
    }
    let mut report = stream.report().clone();
    report.backwards_timestamps = backwards;
    report.stopped_early = stopped_early;
    Ok(report)
}

/// Load a whole-home capture as a labelled dataset: one trace per device and window, grouped by
/// time block (see the module docs). Traces come in the devices CSV's order, then by time, named
/// `<device>@<window start>s` (seconds from the capture's first packet); groups are
/// `<home>@<block start>s`. Devices never seen in the capture are listed in
/// [`DatasetReport::unseen_devices`]; it is an error when none is seen.
pub fn load_home(spec: &HomeSpec, opts: &LoadOptions<'_>) -> Result<Dataset> {
    let (window_ns, block_ns) = spec.windows.lengths_ns()?;
    let devices = read_devices(&spec.devices)?;
    let split = split_home(&spec.captures, &devices, opts)?;
    let mut ds = Dataset {
        report: split.report,
        ..Dataset::default()
    };
    // By value: each device's whole trace is dropped once cut, so at most one is held beside
    // the windows.
    for (d, trace) in devices.iter().zip(split.traces) {
        if trace.packets.is_empty() {
            ds.report.unseen_devices.push(format!(
                "{} ({}, {}:{})",
                d.name,
                d.mac,
                spec.devices.display(),
                d.line
            ));
            continue;
        }
        cut_windows(
            &trace,
            d,
            split.start_ns,
            (window_ns, block_ns),
            &spec.name,
            &mut ds.traces,
        );
    }
    if ds.traces.is_empty() {
        return Err(TraceError::new(ErrorKind::Invalid(format!(
            "none of its {} devices sends or receives a frame in {}",
            devices.len(),
            spec.captures
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .in_file(&spec.devices));
    }
    ds.labels = sorted_labels(&ds.traces);
    Ok(ds)
}

/// Cut one device's trace on the window grid; each non-empty window gets its own endpoint table.
fn cut_windows(
    trace: &Trace,
    d: &HomeDevice,
    start_ns: i64,
    (window_ns, block_ns): (i64, i64),
    home: &str,
    out: &mut Vec<LabelledTrace>,
) {
    let packets = &trace.packets;
    let mut i = 0;
    while let Some(first) = packets.get(i) {
        let k = (first.t_ns - start_ns) / window_ns;
        let window_start_ns = k * window_ns;
        let end_ns = start_ns.saturating_add(window_start_ns.saturating_add(window_ns));
        let j = i + packets[i..].partition_point(|p| p.t_ns < end_ns);
        let mut table = EndpointTable::default();
        let window: Vec<Packet> = packets[i..j]
            .iter()
            .map(|p| {
                let mut q = *p;
                q.src = table.intern(*trace.endpoint(p.src));
                q.dst = table.intern(*trace.endpoint(p.dst));
                q
            })
            .collect();
        let block_start_ns = window_start_ns / block_ns * block_ns;
        out.push(LabelledTrace {
            label: d.label().to_string(),
            group: format!("{home}@{}s", block_start_ns as f64 / 1e9),
            trace: Trace {
                name: format!("{}@{}s", d.name, window_start_ns as f64 / 1e9),
                packets: window,
                endpoints: table.into_list(),
                report: ReadReport::default(),
            },
        });
        i = j;
    }
}

/// One input of [`merge_captures`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePart {
    /// A pcap or pcapng file.
    pub path: PathBuf,
    /// Added to every timestamp of the file, ns.
    pub shift_ns: i64,
    /// Keep only frames from or to this MAC (Ethernet captures only); `None` keeps every frame.
    pub only_mac: Option<Mac>,
}

/// Write the frames of several captures as one classic little-endian pcap with nanosecond
/// timestamps, sorted by time (equal times keep the parts' order), each part shifted by its
/// `shift_ns` and filtered by its `only_mac`. Frames are copied byte for byte, so reading the
/// output gives the parts' packets at the shifted times: a whole-home capture built from
/// single-device captures, for tests and benchmarks. Holds every kept frame in memory. Returns
/// the number of frames written.
///
/// Errors: a part that cannot be read, parts of different link types, `only_mac` on a capture
/// that is not Ethernet, a shifted time outside what pcap stores (1970 to 2106).
pub fn merge_captures(parts: &[MergePart], out: impl Write) -> Result<u64> {
    let mut link: Option<LinkType> = None;
    // (time, original length, bytes)
    let mut frames: Vec<(i64, u32, Vec<u8>)> = Vec::new();
    for part in parts {
        let path = &part.path;
        let file = std::fs::File::open(path).map_err(|e| TraceError::from(e).in_file(path))?;
        let mut reader = FrameReader::new(BufReader::new(file)).map_err(|e| e.in_file(path))?;
        while let Some(f) = reader.next_frame().map_err(|e| e.in_file(path))? {
            let first = *link.get_or_insert(f.link);
            if f.link != first {
                return Err(TraceError::new(ErrorKind::Invalid(format!(
                    "link type {} differs from the first part's {}: one pcap has one link type",
                    f.link.name(),
                    first.name()
                )))
                .at(f.offset)
                .in_file(path));
            }
            if let Some(mac) = part.only_mac {
                if f.link != LinkType::ETHERNET {
                    return Err(TraceError::new(ErrorKind::Invalid(format!(
                        "keeping one MAC's frames needs an Ethernet capture, not {}",
                        f.link.name()
                    )))
                    .in_file(path));
                }
                let is = |r: std::ops::Range<usize>| f.data.get(r) == Some(&mac.0[..]);
                if !(is(0..6) || is(6..12)) {
                    continue;
                }
            }
            let t_ns = f.t_ns.checked_add(part.shift_ns).ok_or_else(|| {
                TraceError::new(ErrorKind::Invalid("shifted time overflows".into()))
                    .at(f.offset)
                    .in_file(path)
            })?;
            frames.push((t_ns, f.orig_len, f.data.to_vec()));
        }
    }
    frames.sort_by_key(|f| f.0);
    let header = PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: crate::write::SNAPLEN_BYTES,
        datalink: DataLink::from(link.unwrap_or(LinkType::ETHERNET).0),
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    };
    let pcap_error = |e: pcap_file::PcapError| match e {
        pcap_file::PcapError::IoError(io) => TraceError::from(io),
        other => TraceError::new(ErrorKind::Invalid(format!("writing pcap: {other}"))),
    };
    let mut writer =
        PcapWriter::with_header(std::io::BufWriter::new(out), header).map_err(pcap_error)?;
    for (t_ns, orig_len, data) in &frames {
        let ts = u64::try_from(*t_ns)
            .ok()
            .map(Duration::from_nanos)
            .filter(|d| d.as_secs() <= u64::from(u32::MAX))
            .ok_or_else(|| {
                TraceError::new(ErrorKind::Invalid(format!(
                    "time {t_ns} ns is outside what pcap stores (1970 to 2106)"
                )))
            })?;
        writer
            .write_packet(&PcapPacket::new(ts, *orig_len, data))
            .map_err(pcap_error)?;
    }
    writer.into_writer().flush()?;
    Ok(frames.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn devices_csv_reads_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let ok = write(
            dir.path(),
            "d.csv",
            "# my home\nmac,name,type\n00:17:88:2b:9a:0c,hue,bridge\n\n50-C7-BF-33-1F-09,plug,\n",
        );
        let devices = read_devices(&ok).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!((devices[0].label(), devices[0].line), ("bridge", 3));
        assert_eq!((devices[1].label(), devices[1].line), ("plug", 5));
        let err = |text: &str| {
            read_devices(write(dir.path(), "bad.csv", text))
                .unwrap_err()
                .to_string()
        };
        let e = err("mac,name\n00:17:88:2b:9a:0c,a\nzz:17:88:2b:9a:0c,b\n");
        assert!(e.ends_with("bad.csv:3: field \"mac\": \"zz:17:88:2b:9a:0c\" is not a MAC address (like 00:17:88:2b:9a:0c)"), "{e}");
        let e = err("mac,name\n00:17:88:2b:9a:0c,a\n00:17:88:2B:9A:0C,b\n");
        assert!(
            e.ends_with("bad.csv:3: duplicate MAC 00:17:88:2b:9a:0c, first given on line 2"),
            "{e}"
        );
        let e = err("mac,name\n00:17:88:2b:9a:0c,a\n00:17:88:2b:9a:0d,a\n");
        assert!(e.contains(":3: duplicate device name \"a\""), "{e}");
        let e = err("mac,name\nff:ff:ff:ff:ff:ff,all\n");
        assert!(e.contains(":2:") && e.contains("broadcast"), "{e}");
        let e = err("address,who\n");
        assert!(e.contains(":1: missing column"), "{e}");
        let e = err("mac,name\n");
        assert!(e.contains("no device listed"), "{e}");
    }

    #[test]
    fn blocks_must_hold_whole_windows() {
        let w = |window_s, block_s| HomeWindows { window_s, block_s }.lengths_ns();
        assert_eq!(w(60.0, 600.0).unwrap(), (60_000_000_000, 600_000_000_000));
        assert_eq!(w(0.1, 0.3).unwrap(), (100_000_000, 300_000_000));
        for (window_s, block_s) in [(60.0, 90.0), (60.0, 30.0), (0.0, 60.0), (f64::NAN, 60.0)] {
            assert!(w(window_s, block_s).is_err(), "{window_s} {block_s}");
        }
    }
}
