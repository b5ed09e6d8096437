//! Labelled datasets: many captures, each with a label and a group (the capture file), loaded in
//! parallel.
//!
//! The group is the unit of leakage: windows cut from one capture are correlated, so the splits
//! in [`crate::split`] keep each group wholly on one side.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::device::{DeviceSpec, read_device_mac_file, set_direction};
use crate::error::{ErrorKind, Result, TraceError};
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

fn sorted_labels(traces: &[LabelledTrace]) -> Vec<String> {
    let mut labels: Vec<String> = traces.iter().map(|t| t.label.clone()).collect();
    labels.sort();
    labels.dedup();
    labels
}

/// One file to load: path, label, group, and the device spec for its direction.
struct Job {
    path: PathBuf,
    label: String,
    group: String,
    device: Option<DeviceSpec>,
}

/// Load `<root>/<label>/**/<capture>`: every file below a label folder that hush can read.
/// A label folder's `_iotdevice-mac.txt` (IoT Sentinel) gives the device for its captures.
/// Files that are not captures (READMEs, licences) are listed in the report, not errors.
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
    }
    load_jobs(jobs, opts)
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

/// Load from a CSV manifest with a header `path,label[,group][,device]`; paths are relative to
/// the manifest's folder; `device` is a MAC or an IP (empty: `opts.device` or inference).
pub fn load_manifest(manifest: impl AsRef<Path>, opts: &LoadOptions<'_>) -> Result<Dataset> {
    let manifest = manifest.as_ref();
    let text =
        std::fs::read_to_string(manifest).map_err(|e| TraceError::from(e).in_file(manifest))?;
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Err(TraceError::new(ErrorKind::Invalid("empty manifest".into())).in_file(manifest));
    };
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (Some(path_col), Some(label_col)) = (col("path"), col("label")) else {
        return Err(
            TraceError::new(ErrorKind::MissingColumn("path and label".into()))
                .at_line(1)
                .in_file(manifest),
        );
    };
    let (group_col, device_col) = (col("group"), col("device"));
    let mut jobs = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: Option<usize>| {
            c.and_then(|c| fields.get(c))
                .copied()
                .filter(|v| !v.is_empty())
        };
        let line_err = |field: &str, detail: String| {
            TraceError::new(ErrorKind::BadField {
                field: field.into(),
                detail,
            })
            .at_line(i as u64 + 1)
            .in_file(manifest)
        };
        let path = get(Some(path_col)).ok_or_else(|| line_err("path", "empty".into()))?;
        let label = get(Some(label_col)).ok_or_else(|| line_err("label", "empty".into()))?;
        let path = base.join(path);
        let group = get(group_col).map_or_else(|| path.display().to_string(), str::to_string);
        let device = match get(device_col) {
            None => None,
            Some(d) => Some(if let Ok(mac) = d.parse() {
                DeviceSpec::Mac(mac)
            } else if let Ok(ip) = d.parse() {
                DeviceSpec::Ip(ip)
            } else {
                return Err(line_err(
                    "device",
                    format!("{d:?} is not a MAC or an IP address"),
                ));
            }),
        };
        jobs.push(Job {
            path,
            label: label.to_string(),
            group,
            device,
        });
    }
    load_jobs(jobs, opts)
}

fn load_jobs(jobs: Vec<Job>, opts: &LoadOptions<'_>) -> Result<Dataset> {
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
    for (job, r) in results {
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
