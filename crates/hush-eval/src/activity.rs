//! Activity datasets: which user event happened (or none), from windows of a long capture.
//!
//! A defense runs on the whole capture, as it would on the device; the attacker then watches
//! fixed-length windows around each labelled event and, between events, idle windows of the
//! same length. Each window is one example and its own fold group. Cutting after defending
//! matters: a defense that spends its cover in a trace's first seconds (FRONT) protects a page
//! load, not an event half an hour into a capture.
//!
//! Two public layouts are built in (see [`discover`]); any other capture with labels is an
//! [`ActivitySpec`], as a bench TOML file's `[[dataset]]` names it.

use std::path::{Path, PathBuf};

use hush_attack::labels::{Event, read_csv, read_phases, read_pingpong};
use hush_trace::dataset::{Dataset, LabelledTrace};
use hush_trace::device::{DeviceSpec, set_direction};
use hush_trace::{ReadOptions, Trace, read_trace};
use serde::Deserialize;

use crate::EvalError;

/// How a label file is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelsFormat {
    /// hush's CSV: `time,device,event[,end]`.
    #[default]
    Csv,
    /// NKU's phase list: `phase start end [duration]`.
    Phases,
    /// PingPong's timestamp file: one `2:38:04 PM` per line, the date in the file name.
    Pingpong,
}

/// One activity dataset: a capture, its labels, and how to cut windows.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySpec {
    /// The dataset's name in results.
    pub name: String,
    /// The capture (pcap or pcapng).
    pub capture: PathBuf,
    /// The labels.
    pub labels: PathBuf,
    /// Their layout.
    #[serde(default)]
    pub labels_format: LabelsFormat,
    /// UTC offset of zone-less label times, seconds (PingPong: -25200, NKU: 28800).
    #[serde(default)]
    pub utc_offset_s: i64,
    /// The device's MAC or IP (default: inferred, the local endpoint in the most packets).
    #[serde(default)]
    pub device: Option<String>,
    /// Name unnamed events in turn (PingPong's files alternate ON and OFF).
    #[serde(default)]
    pub cycle_labels: Vec<String>,
    /// Classes by label prefix, `[prefix, class]` (e.g. `["on_", "on"]`); events matching no
    /// prefix are left out. Empty: every label is its own class.
    #[serde(default)]
    pub classes: Vec<(String, String)>,
    /// Labels starting with this are idle periods: idle windows are cut inside them. Without
    /// it, idle windows are cut between events. Either way they stay `guard_s` from any event.
    #[serde(default)]
    pub idle_prefix: Option<String>,
    /// Seconds of traffic before an event's start in its window.
    #[serde(default = "default_before_s")]
    pub before_s: f64,
    /// Seconds after its start.
    #[serde(default = "default_after_s")]
    pub after_s: f64,
    /// Idle windows stay this far from any event, seconds.
    #[serde(default = "default_guard_s")]
    pub guard_s: f64,
    /// Idle windows to cut (default: as many as the event windows kept).
    #[serde(default)]
    pub idle_windows: Option<usize>,
}

fn default_before_s() -> f64 {
    1.0
}
fn default_after_s() -> f64 {
    10.0
}
fn default_guard_s() -> f64 {
    20.0
}

/// A window of a source capture.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Index of the source in [`Activity::sources`].
    pub source: usize,
    /// Start, epoch nanoseconds (inclusive).
    pub start_ns: i64,
    /// End, epoch nanoseconds (exclusive).
    pub end_ns: i64,
    /// The class: an event or `idle`.
    pub label: String,
}

/// A loaded activity dataset.
#[derive(Clone, Debug)]
pub struct Activity {
    /// The name in results.
    pub name: String,
    /// Whole captures, directions set: what the defenses run on.
    pub sources: Vec<Trace>,
    /// What the attacker classifies.
    pub windows: Vec<Window>,
    /// Sorted distinct classes.
    pub labels: Vec<String>,
    /// Events left out (no class), for the user to see.
    pub left_out: usize,
}

/// The label of windows without an event.
pub const IDLE: &str = "idle";

fn device_spec(d: &Option<String>) -> Result<DeviceSpec, EvalError> {
    let Some(d) = d else {
        return Ok(DeviceSpec::Infer);
    };
    if let Ok(mac) = d.parse() {
        return Ok(DeviceSpec::Mac(mac));
    }
    if let Ok(ip) = d.parse() {
        return Ok(DeviceSpec::Ip(ip));
    }
    Err(EvalError::Config(format!(
        "device {d:?}: not a MAC address (50:c7:bf:33:1f:09) or an IP address"
    )))
}

impl ActivitySpec {
    /// Read the capture and labels and cut the windows.
    pub fn load(&self) -> Result<Activity, EvalError> {
        if !(self.before_s >= 0.0
            && self.after_s > 0.0
            && self.guard_s >= 0.0
            && (self.before_s + self.after_s).is_finite())
        {
            return Err(EvalError::Config(format!(
                "dataset {}: before_s must be ≥ 0, after_s > 0, guard_s ≥ 0",
                self.name
            )));
        }
        let spec = device_spec(&self.device)?;
        let mut trace = read_trace(&self.capture, ReadOptions::default())
            .map_err(|e| EvalError::Config(format!("dataset {}: {e}", self.name)))?;
        set_direction(&mut trace, &spec).map_err(|e| {
            EvalError::Config(format!(
                "dataset {}: {}: {e}",
                self.name,
                self.capture.display()
            ))
        })?;
        trace.sort_by_time();
        let bad_labels = |e: hush_attack::labels::LabelError| {
            EvalError::Config(format!("dataset {}: {e}", self.name))
        };
        let mut events = match self.labels_format {
            LabelsFormat::Csv => read_csv(&self.labels, self.utc_offset_s),
            LabelsFormat::Phases => read_phases(&self.labels, self.utc_offset_s),
            LabelsFormat::Pingpong => read_pingpong(&self.labels, self.utc_offset_s, "event"),
        }
        .map_err(bad_labels)?;
        events.sort_by_key(|e| e.start_ns);
        if !self.cycle_labels.is_empty() {
            for (i, e) in events.iter_mut().enumerate() {
                e.label = self.cycle_labels[i % self.cycle_labels.len()].clone();
            }
        }
        let (t0, t1) = match (trace.packets.first(), trace.packets.last()) {
            (Some(a), Some(b)) => (a.t_ns, b.t_ns),
            _ => {
                return Err(EvalError::Config(format!(
                    "dataset {}: {} has no packets",
                    self.name,
                    self.capture.display()
                )));
            }
        };
        Ok(self.cut(trace, &events, t0, t1))
    }

    fn class_of(&self, label: &str) -> Option<String> {
        if self.classes.is_empty() {
            return Some(label.to_string());
        }
        self.classes
            .iter()
            .find(|(p, _)| label.starts_with(p.as_str()))
            .map(|(_, c)| c.clone())
    }

    /// The windows of `trace` (first packet `t0`, last `t1`) for `events`.
    fn cut(&self, trace: Trace, events: &[Event], t0: i64, t1: i64) -> Activity {
        let ns = |s: f64| (s * 1e9) as i64;
        let (before, after, guard) = (ns(self.before_s), ns(self.after_s), ns(self.guard_s));
        let len = before + after;
        let is_idle = |e: &Event| {
            self.idle_prefix
                .as_deref()
                .is_some_and(|p| e.label.starts_with(p))
        };
        let mut windows = Vec::new();
        let mut left_out = 0;
        let inside = |s: i64| s >= t0 && s + len <= t1 + 1;
        for e in events.iter().filter(|e| !is_idle(e)) {
            let start = e.start_ns - before;
            match self.class_of(&e.label) {
                Some(c) if inside(start) => windows.push(Window {
                    source: 0,
                    start_ns: start,
                    end_ns: start + len,
                    label: c,
                }),
                _ => left_out += 1,
            }
        }
        // Idle candidates: back-to-back windows inside idle phases, or between events away
        // from every one of them; then an even spread of the wanted number (no randomness).
        let busy: Vec<(i64, i64)> = events
            .iter()
            .filter(|e| !is_idle(e))
            .map(|e| (e.start_ns - guard, e.end_ns + guard))
            .collect();
        let free = |s: i64| busy.iter().all(|&(a, b)| s + len <= a || s >= b);
        let mut candidates = Vec::new();
        let spans: Vec<(i64, i64)> = if self.idle_prefix.is_some() {
            events
                .iter()
                .filter(|e| is_idle(e))
                .map(|e| (e.start_ns.max(t0), e.end_ns.min(t1)))
                .collect()
        } else {
            vec![(t0, t1)]
        };
        // Idle windows start on whole seconds, as event windows do (labels have 1 s
        // resolution): a window's phase against a constant-rate schedule must not tell the two
        // apart.
        const SECOND: i64 = 1_000_000_000;
        let step = (len + SECOND - 1) / SECOND * SECOND;
        for (a, b) in spans {
            let mut s = a.div_euclid(SECOND) * SECOND;
            if s < a {
                s += SECOND;
            }
            while s + len <= b {
                if free(s) {
                    candidates.push(s);
                }
                s += step;
            }
        }
        let want = self
            .idle_windows
            .unwrap_or(windows.len())
            .min(candidates.len());
        for k in 0..want {
            // The middle of each of `want` equal slices of the candidates.
            let s = candidates[(2 * k + 1) * candidates.len() / (2 * want)];
            windows.push(Window {
                source: 0,
                start_ns: s,
                end_ns: s + len,
                label: IDLE.into(),
            });
        }
        windows.sort_by_key(|w| w.start_ns);
        let mut labels: Vec<String> = windows.iter().map(|w| w.label.clone()).collect();
        labels.sort();
        labels.dedup();
        Activity {
            name: self.name.clone(),
            sources: vec![trace],
            windows,
            labels,
            left_out,
        }
    }
}

impl Activity {
    /// The windows cut from `sources` (the originals, or their defended forms in the same
    /// order), one trace per window.
    pub fn cut(&self, sources: &[Trace]) -> Vec<Trace> {
        self.windows
            .iter()
            .map(|w| window_of(&sources[w.source], w))
            .collect()
    }

    /// The windows of source `source`, cut from `trace` (that source, defended or not), in the
    /// order they appear in [`Activity::windows`].
    pub fn cut_source(&self, source: usize, trace: &Trace) -> Vec<Trace> {
        self.windows
            .iter()
            .filter(|w| w.source == source)
            .map(|w| window_of(trace, w))
            .collect()
    }

    /// The undefended windows as a dataset: each window its own group.
    pub fn dataset(&self) -> Dataset {
        let traces = self
            .cut(&self.sources)
            .into_iter()
            .zip(&self.windows)
            .map(|(trace, w)| LabelledTrace {
                label: w.label.clone(),
                group: trace.name.clone(),
                trace,
            })
            .collect();
        Dataset {
            traces,
            labels: self.labels.clone(),
            report: Default::default(),
        }
    }
}

/// Window `w` of `trace`: its packets in `[start, end)`.
fn window_of(trace: &Trace, w: &Window) -> Trace {
    let a = trace.packets.partition_point(|p| p.t_ns < w.start_ns);
    let b = trace.packets.partition_point(|p| p.t_ns < w.end_ns);
    Trace {
        name: format!("{}@{:.1}s", trace.name, w.start_ns as f64 / 1e9),
        packets: trace.packets[a..b].to_vec(),
        endpoints: trace.endpoints.clone(),
        report: Default::default(),
    }
}

/// The built-in descriptions of the public activity captures under `dir` (the `events/`
/// folder of hush's shared data, or one of its subfolders): PingPong's TP-Link plug trace of
/// 12 ON/OFF events (feb-13-2018, UTC-7) and NKU's Baidu plug capture with its phase list
/// (on/off by app, remote, voice and hand; 15-minute idle phases). NKU's camera is left out:
/// its slices hold one instance of each event and no whole capture.
pub fn discover(dir: &Path) -> Vec<ActivitySpec> {
    let mut out = Vec::new();
    for base in [dir.to_path_buf(), dir.join("pingpong-tplink")] {
        let capture = base.join("wlan1.local.dns.pcap");
        let labels = base.join("timestamps/tplink_switch/tplink-feb-13-2018.timestamps");
        if capture.is_file() && labels.is_file() {
            out.push(ActivitySpec {
                name: "pingpong-tplink".into(),
                capture,
                labels,
                labels_format: LabelsFormat::Pingpong,
                utc_offset_s: -7 * 3600,
                device: Some("50:c7:bf:33:1f:09".into()),
                cycle_labels: vec!["on".into(), "off".into()],
                classes: Vec::new(),
                idle_prefix: None,
                before_s: default_before_s(),
                after_s: default_after_s(),
                guard_s: default_guard_s(),
                idle_windows: None,
            });
        }
    }
    for base in [dir.to_path_buf(), dir.join("nku-lifecycle")] {
        let capture = base.join("xiaodu_plug/xiaodu_plug.pcap");
        let labels = base.join("xiaodu_plug/xiaodu_plug.txt");
        if capture.is_file() && labels.is_file() {
            out.push(ActivitySpec {
                name: "nku-xiaodu-plug".into(),
                capture,
                labels,
                labels_format: LabelsFormat::Phases,
                utc_offset_s: 8 * 3600,
                device: None,
                cycle_labels: Vec::new(),
                classes: vec![("on_".into(), "on".into()), ("off_".into(), "off".into())],
                idle_prefix: Some("idle".into()),
                before_s: default_before_s(),
                after_s: default_after_s(),
                guard_s: default_guard_s(),
                // Two idle windows per on/off event: idle is most of a real day.
                idle_windows: Some(16),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_trace::{Direction, Packet};

    fn trace(times_s: &[f64]) -> Trace {
        let mut t = Trace {
            name: "t".into(),
            packets: Vec::new(),
            endpoints: Vec::new(),
            report: Default::default(),
        };
        for &s in times_s {
            t.packets.push(Packet {
                t_ns: (s * 1e9) as i64,
                frame_len: 100,
                dir: Direction::Outbound,
                ..Packet::default()
            });
        }
        t
    }

    fn ev(start_s: f64, end_s: f64, label: &str) -> Event {
        Event {
            start_ns: (start_s * 1e9) as i64,
            end_ns: (end_s * 1e9) as i64,
            label: label.into(),
            device: None,
        }
    }

    fn spec() -> ActivitySpec {
        ActivitySpec {
            name: "x".into(),
            capture: PathBuf::new(),
            labels: PathBuf::new(),
            labels_format: LabelsFormat::Csv,
            utc_offset_s: 0,
            device: None,
            cycle_labels: Vec::new(),
            classes: Vec::new(),
            idle_prefix: None,
            before_s: 1.0,
            after_s: 9.0,
            guard_s: 20.0,
            idle_windows: None,
        }
    }

    #[test]
    fn windows_between_events_keep_clear_of_them() {
        let t = trace(&(0..300).map(f64::from).collect::<Vec<_>>());
        let events = [ev(60.0, 60.0, "on"), ev(120.0, 120.0, "off")];
        let a = spec().cut(t, &events, 0, 299_000_000_000);
        let labels: Vec<&str> = a.windows.iter().map(|w| w.label.as_str()).collect();
        assert_eq!(labels.iter().filter(|l| **l == "idle").count(), 2);
        for w in &a.windows {
            assert_eq!(w.end_ns - w.start_ns, 10_000_000_000, "fixed length");
            if w.label == "idle" {
                for e in &events {
                    assert!(
                        w.end_ns <= e.start_ns - 20_000_000_000
                            || w.start_ns >= e.end_ns + 20_000_000_000
                    );
                }
            }
        }
        let on = a.windows.iter().find(|w| w.label == "on").unwrap();
        assert_eq!(on.start_ns, 59_000_000_000);
        let cut = a.cut(&a.sources);
        let i = a.windows.iter().position(|w| w.label == "on").unwrap();
        // Packets at 59..=68 s: ten of them.
        assert_eq!(cut[i].packets.len(), 10);
        assert_eq!(a.labels, ["idle", "off", "on"]);
        assert_eq!(a.dataset().traces.len(), a.windows.len());
    }

    #[test]
    fn classes_and_idle_phases() {
        let t = trace(&(0..400).map(f64::from).collect::<Vec<_>>());
        let mut s = spec();
        s.classes = vec![("on_".into(), "on".into())];
        s.idle_prefix = Some("idle".into());
        s.idle_windows = Some(3);
        let events = [
            ev(0.0, 200.0, "idle_on"),
            ev(250.0, 252.0, "on_local"),
            ev(300.0, 305.0, "update"),
            // Past the capture's end: left out, never a window of nothing.
            ev(1000.0, 1001.0, "on_remote"),
        ];
        let a = s.cut(t, &events, 0, 399_000_000_000);
        assert_eq!(a.left_out, 2, "update has no class, on_remote is outside");
        let idle: Vec<&Window> = a.windows.iter().filter(|w| w.label == IDLE).collect();
        assert_eq!(idle.len(), 3);
        assert!(idle.iter().all(|w| w.end_ns <= 200_000_000_000));
        // A capture that starts mid-second: idle windows still start on whole seconds.
        let t = trace(&(0..300).map(|i| f64::from(i) + 0.3).collect::<Vec<_>>());
        let a = spec().cut(t, &[ev(100.0, 100.0, "on")], 300_000_000, 299_300_000_000);
        assert!(a.windows.iter().all(|w| w.start_ns % 1_000_000_000 == 0));
        assert_eq!(a.labels, ["idle", "on"]);
    }
}
