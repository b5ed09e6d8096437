//! Labelled datasets: many traces, each with a label and a group, loaded in parallel.
//!
//! Three layouts give a [`Dataset`] ([`Layout`] names them and [`Layout::detect`] tells them
//! apart):
//!
//! - a folder `<label>/<captures>` ([`load_dir`]; IoT Sentinel's layout), one trace per file;
//! - a CSV manifest `path,label,group[,device]` ([`load_manifest`]), one trace per row;
//! - a whole-home capture and a devices CSV `mac,name[,type]` ([`crate::home::load_home`]), one
//!   trace per device and time window.
//!
//! The group is the unit of leakage: windows cut from one capture are correlated, so the splits
//! in [`crate::split`] keep each group wholly on one side. A folder's group is the capture file, a
//! manifest's is its `group` column (default: the file), a whole home's is the time block.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::device::{DeviceSpec, read_device_mac_file, set_direction};
use crate::error::{ErrorKind, Result, TraceError};
use crate::home::{HomeSpec, HomeWindows};
use crate::read::{ReadOptions, read_trace};
use crate::trace::{ReadReport, Trace};

/// One capture with its label.
#[derive(Debug, Clone)]
pub struct LabelledTrace {
    /// Class label (a device type, an event).
    pub label: String,
    /// Leakage group: the capture file it came from, unless a manifest says otherwise.
    pub group: String,
    /// The packets, with directions set.
    pub trace: Trace,
}

/// Captures that could not be used, and what reading the others found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatasetReport {
    /// Files considered.
    pub files: usize,
    /// (path, reason) for each file left out: unreadable, not a capture, no device.
    pub not_read: Vec<(String, String)>,
    /// Reading counts and anomalies over the files that were read.
    pub reading: ReadReport,
    /// Files with at least one backwards timestamp.
    pub files_with_backwards_timestamps: usize,
    /// Whole-home layout: devices of the devices CSV never seen in the capture, as
    /// `name (mac, devices.csv:line)`. They give no trace; a warning, not an error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unseen_devices: Vec<String>,
}

/// Labelled traces, in path order (independent of thread timing).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The traces.
    pub traces: Vec<LabelledTrace>,
    /// Sorted distinct labels.
    pub labels: Vec<String>,
    /// What loading found.
    pub report: DatasetReport,
}

/// How to load a dataset.
#[derive(Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Reader strictness.
    pub read: ReadOptions,
    /// The device, when a label folder has no `_iotdevice-mac.txt` and a manifest row names none.
    /// `None` means infer it per capture.
    pub device: Option<&'a DeviceSpec>,
    /// Called with (files done, files total) as loading goes, from worker threads.
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

impl std::fmt::Debug for LoadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("read", &self.read)
            .field("device", &self.device)
            .finish()
    }
}

/// The IoT Sentinel data set's 31 device folders mapped to the 27 device types of its paper
/// (Miettinen et al., "IoT Sentinel", ICDCS 2017, Table I), which lists four models twice because
/// two units of each were captured: Edimax IC-3115W cameras, Ednet indoor cameras, WeMo Insight
/// switches and WeMo switches. TP-Link HS100 and HS110 are different models (the HS110 meters
/// energy) and stay two types, as in the paper, where they are among the hardest to tell apart.
pub const IOT_SENTINEL_TYPES: &[(&str, &str)] = &[
    ("EdimaxCam1", "EdimaxCam"),
    ("EdimaxCam2", "EdimaxCam"),
    ("EdnetCam1", "EdnetCam"),
    ("EdnetCam2", "EdnetCam"),
    ("WeMoInsightSwitch", "WeMoInsightSwitch"),
    ("WeMoInsightSwitch2", "WeMoInsightSwitch"),
    ("WeMoSwitch", "WeMoSwitch"),
    ("WeMoSwitch2", "WeMoSwitch"),
];

impl Dataset {
    /// Replace labels found in `map` (old → new); labels not in it stay.
    pub fn relabel(&mut self, map: &[(&str, &str)]) {
        for t in &mut self.traces {
            if let Some((_, new)) = map.iter().find(|(old, _)| *old == t.label) {
                t.label = (*new).to_string();
            }
        }
        self.labels = sorted_labels(&self.traces);
    }

    /// Index of `label` in [`Dataset::labels`].
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.binary_search_by(|l| l.as_str().cmp(label)).ok()
    }

    /// Total packets over all traces.
    pub fn packet_count(&self) -> u64 {
        self.traces
            .iter()
            .map(|t| t.trace.packets.len() as u64)
            .sum()
    }
}

pub(crate) fn sorted_labels(traces: &[LabelledTrace]) -> Vec<String> {
    let mut labels: Vec<String> = traces.iter().map(|t| t.label.clone()).collect();
    labels.sort();
    labels.dedup();
    labels
}

/// Where a labelled dataset comes from: the layouts hush reads (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `<root>/<label>/<captures>`.
    Folder(PathBuf),
    /// A CSV manifest `path,label,group[,device]`.
    Manifest(PathBuf),
    /// A whole-home capture with its devices CSV.
    Home(HomeSpec),
}

impl Layout {
    /// Which layout `data` is: with a devices CSV, a whole-home capture (`data` a capture file,
    /// or a folder whose pcap/pcapng files are one capture cut into parts); without one, a folder
    /// is `<label>/<captures>` and a file must be a manifest (a CSV whose header has `path` and
    /// `label`). A capture file without a devices CSV is an error that says what to add.
    pub fn detect(data: &Path, devices: Option<&Path>, windows: HomeWindows) -> Result<Layout> {
        if let Some(devices) = devices {
            return Ok(Layout::Home(HomeSpec::new(data, devices, windows)?));
        }
        let meta = std::fs::metadata(data).map_err(|e| TraceError::from(e).in_file(data))?;
        if meta.is_dir() {
            return Ok(Layout::Folder(data.to_path_buf()));
        }
        let head = read_head(data)?;
        if crate::capture::sniff_format(&head).is_some() {
            return Err(TraceError::new(ErrorKind::Invalid(
                "a capture, not a labelled dataset: name its devices in a CSV of mac,name[,type] \
                 (hush's --devices) to read it as a whole-home capture"
                    .into(),
            ))
            .in_file(data));
        }
        if is_manifest_header(&head) {
            return Ok(Layout::Manifest(data.to_path_buf()));
        }
        Err(TraceError::new(ErrorKind::Invalid(
            "not a dataset: expected a folder of <label>/<captures>, a manifest CSV with a header \
             path,label,group[,device], or a capture with a devices CSV"
                .into(),
        ))
        .in_file(data))
    }

    /// Load it.
    pub fn load(&self, opts: &LoadOptions<'_>) -> Result<Dataset> {
        match self {
            Layout::Folder(root) => load_dir(root, opts),
            Layout::Manifest(m) => load_manifest(m, opts),
            Layout::Home(h) => crate::home::load_home(h, opts),
        }
    }

    /// The folder that trace names (file paths) are relative to: the root of a folder, the
    /// manifest's folder; `None` for a whole home, whose traces are named `device@start`.
    pub fn root(&self) -> Option<&Path> {
        match self {
            Layout::Folder(root) => Some(root),
            Layout::Manifest(m) => Some(m.parent().unwrap_or(Path::new(""))),
            Layout::Home(_) => None,
        }
    }
}

/// The first bytes of a file: enough for a capture's magic and a CSV header line.
fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut head))
        .map_err(|e| TraceError::from(e).in_file(path))?;
    Ok(head)
}

/// True when the first line that is neither blank nor a `#` comment has `path` and `label`
/// columns: a manifest, not a per-packet CSV trace.
fn is_manifest_header(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let Some(header) = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
    else {
        return false;
    };
    let mut cols = Vec::new();
    crate::csv::split_cells(header, ',', &mut cols);
    let has = |name: &str| cols.iter().any(|c| c.eq_ignore_ascii_case(name));
    has("path") && has("label")
}

/// True when `path` is a file whose header makes it a manifest (see [`load_manifest`]).
pub fn is_manifest(path: impl AsRef<Path>) -> bool {
    let path = path.as_ref();
    path.is_file() && read_head(path).is_ok_and(|h| is_manifest_header(&h))
}

/// One file to load: path, label, group, and the device spec for its direction.
struct Job {
    path: PathBuf,
    label: String,
    group: String,
    device: Option<DeviceSpec>,
}

/// A class some input names, and where, for the error when it ends up empty.
struct Class {
    label: String,
    path: PathBuf,
    line: Option<u64>,
}

/// Load `<root>/<label>/**/<capture>`: every file below a label folder that hush can read.
/// A label folder's `_iotdevice-mac.txt` (IoT Sentinel) gives the device for its captures.
/// Files that are not captures (READMEs, licences) are listed in the report, not errors; a label
/// folder with no readable capture at all is an error ([`ErrorKind::EmptyClass`]) naming it.
pub fn load_dir(root: impl AsRef<Path>, opts: &LoadOptions<'_>) -> Result<Dataset> {
    let root = root.as_ref();
    let mut jobs = Vec::new();
    let mut label_dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| TraceError::from(e).in_file(root))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    label_dirs.sort();
    if label_dirs.is_empty() {
        return Err(TraceError::new(ErrorKind::Invalid(
            "no label folders: expected <root>/<label>/<capture files>".into(),
        ))
        .in_file(root));
    }
    let mut classes = Vec::new();
    for dir in label_dirs {
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mac_file = dir.join("_iotdevice-mac.txt");
        let device = if mac_file.is_file() {
            Some(DeviceSpec::Mac(read_device_mac_file(&mac_file)?))
        } else {
            None
        };
        let mut files = Vec::new();
        walk(&dir, &mut files).map_err(|e| TraceError::from(e).in_file(&dir))?;
        for path in files {
            let group = path.display().to_string();
            jobs.push(Job {
                path,
                label: label.clone(),
                group,
                device: device.clone(),
            });
        }
        classes.push(Class {
            label,
            path: dir,
            line: None,
        });
    }
    load_jobs(jobs, &classes, opts)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Load from a CSV manifest: a header with `path` and `label` columns, optionally `group` and
/// `device`, then one row per trace. Blank lines and lines starting with `#` are skipped; cells
/// may be double-quoted.
///
/// - `path`: a capture, relative to the manifest's folder (or absolute).
/// - `label`: its class.
/// - `group`: its leakage group; rows that share one are kept on one side of every split
///   (default: the file).
/// - `device`: whose traffic is outbound: a MAC, an IP, or `infer` (the busiest local host). Empty
///   or absent: the `_iotdevice-mac.txt` beside the capture, else [`LoadOptions::device`], else
///   inferred, as [`load_dir`] does.
///
/// A row may name the same capture as another with a different device (two devices in one
/// file). Errors name the manifest and the line: a missing column, an empty `path` or `label`, a
/// path that does not exist ([`ErrorKind::MissingPath`]), an unparsable device, a row repeating
/// an earlier path and device ([`ErrorKind::Duplicate`]), a label none of whose captures can be
/// read ([`ErrorKind::EmptyClass`]). Rows whose capture exists but cannot be read are listed in
/// [`DatasetReport::not_read`].
pub fn load_manifest(manifest: impl AsRef<Path>, opts: &LoadOptions<'_>) -> Result<Dataset> {
    let manifest = manifest.as_ref();
    let text =
        std::fs::read_to_string(manifest).map_err(|e| TraceError::from(e).in_file(manifest))?;
    let base = manifest.parent().unwrap_or(Path::new(""));
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(TraceError::new(ErrorKind::Invalid(
            "empty manifest: expected a header path,label,group[,device] and one row per capture"
                .into(),
        ))
        .in_file(manifest));
    };
    let mut cols = Vec::new();
    crate::csv::split_cells(header, ',', &mut cols);
    let col = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(path_col), Some(label_col)) = (col("path"), col("label")) else {
        return Err(TraceError::new(ErrorKind::MissingColumn(
            "path and label (header: path,label,group[,device])".into(),
        ))
        .at_line(header_line)
        .in_file(manifest));
    };
    let (group_col, device_col) = (col("group"), col("device"));
    let mut jobs = Vec::new();
    let mut classes: Vec<Class> = Vec::new();
    // (path, device as written) -> first line, to catch repeated rows.
    let mut seen: rustc_hash::FxHashMap<(PathBuf, String), u64> = Default::default();
    let mut mac_files: rustc_hash::FxHashMap<PathBuf, Option<DeviceSpec>> = Default::default();
    let mut cells = Vec::new();
    for (line, text) in lines {
        crate::csv::split_cells(text, ',', &mut cells);
        let get = |c: Option<usize>| {
            c.and_then(|c| cells.get(c))
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let at_line = |kind: ErrorKind| TraceError::new(kind).at_line(line).in_file(manifest);
        let empty = |field: &str| {
            at_line(ErrorKind::BadField {
                field: field.into(),
                detail: "empty".into(),
            })
        };
        let path = get(Some(path_col)).ok_or_else(|| empty("path"))?;
        let label = get(Some(label_col)).ok_or_else(|| empty("label"))?;
        let path = base.join(path);
        let written = get(device_col).unwrap_or_default();
        let device = match written.to_ascii_lowercase().as_str() {
            "" => None,
            "infer" => Some(DeviceSpec::Infer),
            d => Some(if let Ok(mac) = d.parse() {
                DeviceSpec::Mac(mac)
            } else if let Ok(ip) = d.parse() {
                DeviceSpec::Ip(ip)
            } else {
                return Err(at_line(ErrorKind::BadField {
                    field: "device".into(),
                    detail: format!("{written:?} is not a MAC, an IP address or `infer`"),
                }));
            }),
        };
        if !path.exists() {
            return Err(at_line(ErrorKind::MissingPath(path)));
        }
        let device = match device {
            Some(d) => Some(d),
            None => {
                let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
                if let Some(d) = mac_files.get(&dir) {
                    d.clone()
                } else {
                    let mac_file = dir.join("_iotdevice-mac.txt");
                    let d = if mac_file.is_file() {
                        Some(DeviceSpec::Mac(read_device_mac_file(&mac_file)?))
                    } else {
                        None
                    };
                    mac_files.insert(dir, d.clone());
                    d
                }
            }
        };
        // After resolving, so that an empty device and the MAC it stands for are one device.
        let key = (path.clone(), format!("{device:?}"));
        if let Some(&first_line) = seen.get(&key) {
            return Err(at_line(ErrorKind::Duplicate {
                what: format!("row for {}", path.display()),
                first_line,
            }));
        }
        seen.insert(key, line);
        if !classes.iter().any(|c| c.label == label) {
            classes.push(Class {
                label: label.to_string(),
                path: manifest.to_path_buf(),
                line: Some(line),
            });
        }
        let group = get(group_col).map_or_else(|| path.display().to_string(), str::to_string);
        jobs.push(Job {
            path,
            label: label.to_string(),
            group,
            device,
        });
    }
    if jobs.is_empty() {
        return Err(TraceError::new(ErrorKind::Invalid(
            "the manifest lists no capture (a header and no rows)".into(),
        ))
        .in_file(manifest));
    }
    load_jobs(jobs, &classes, opts)
}

/// Read every job in parallel; keep results in job order. Fails with [`ErrorKind::EmptyClass`]
/// for a class with no readable trace.
fn load_jobs(jobs: Vec<Job>, classes: &[Class], opts: &LoadOptions<'_>) -> Result<Dataset> {
    let total = jobs.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(Job, Result<Trace>)> = jobs
        .into_par_iter()
        .map(|job| {
            let r = read_trace(&job.path, opts.read).and_then(|mut trace| {
                let spec = job
                    .device
                    .as_ref()
                    .or(opts.device)
                    .cloned()
                    .unwrap_or(DeviceSpec::Infer);
                set_direction(&mut trace, &spec)?;
                Ok(trace)
            });
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if let Some(progress) = opts.progress {
                progress(n, total);
            }
            (job, r)
        })
        .collect();
    let mut ds = Dataset {
        report: DatasetReport {
            files: total,
            ..DatasetReport::default()
        },
        ..Dataset::default()
    };
    // label -> (files, first failure), for the empty-class error.
    let mut failures: rustc_hash::FxHashMap<String, (usize, String)> = Default::default();
    for (job, r) in results {
        if let Err(e) = &r {
            failures
                .entry(job.label.clone())
                .or_insert_with(|| (0, e.to_string()))
                .0 += 1;
        }
        match r {
            Ok(trace) => {
                ds.report.reading.absorb(&trace.report);
                ds.report.files_with_backwards_timestamps +=
                    usize::from(trace.report.backwards_timestamps > 0);
                ds.traces.push(LabelledTrace {
                    label: job.label,
                    group: job.group,
                    trace,
                });
            }
            Err(e) => ds
                .report
                .not_read
                .push((job.path.display().to_string(), e.to_string())),
        }
    }
    ds.labels = sorted_labels(&ds.traces);
    for c in classes {
        if ds.label_index(&c.label).is_some() {
            continue;
        }
        let detail = match failures.get(&c.label) {
            Some((n, first)) => format!("none of its {n} captures could be read (first: {first})"),
            // Manifest classes always have a row, so only a folder gets here.
            None => "no capture file in the folder".into(),
        };
        let mut e = TraceError::new(ErrorKind::EmptyClass {
            label: c.label.clone(),
            detail,
        });
        if let Some(line) = c.line {
            e = e.at_line(line);
        }
        return Err(e.in_file(&c.path));
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iot_sentinel_map_gives_27_types() {
        let folders = [
            "Aria",
            "D-LinkCam",
            "D-LinkDayCam",
            "D-LinkDoorSensor",
            "D-LinkHomeHub",
            "D-LinkSensor",
            "D-LinkSiren",
            "D-LinkSwitch",
            "D-LinkWaterSensor",
            "EdimaxCam1",
            "EdimaxCam2",
            "EdimaxPlug1101W",
            "EdimaxPlug2101W",
            "EdnetCam1",
            "EdnetCam2",
            "EdnetGateway",
            "HomeMaticPlug",
            "HueBridge",
            "HueSwitch",
            "Lightify",
            "MAXGateway",
            "SmarterCoffee",
            "TP-LinkPlugHS100",
            "TP-LinkPlugHS110",
            "WeMoInsightSwitch",
            "WeMoInsightSwitch2",
            "WeMoLink",
            "WeMoSwitch",
            "WeMoSwitch2",
            "Withings",
            "iKettle2",
        ];
        let mut ds = Dataset {
            traces: folders
                .iter()
                .map(|f| LabelledTrace {
                    label: (*f).into(),
                    group: (*f).into(),
                    trace: Trace::default(),
                })
                .collect(),
            ..Dataset::default()
        };
        ds.labels = sorted_labels(&ds.traces);
        assert_eq!(ds.labels.len(), 31);
        ds.relabel(IOT_SENTINEL_TYPES);
        assert_eq!(ds.labels.len(), 27);
        assert!(ds.label_index("EdimaxCam").is_some() && ds.label_index("EdimaxCam1").is_none());
    }
}
