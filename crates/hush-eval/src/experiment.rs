//! Experiment files: a bench run as TOML, datasets × defenses (with parameter sweeps) ×
//! attacks × seeds.
//!
//! ```toml
//! version = 1                       # optional: the file format (another version is an error)
//! seeds = [0, 1]
//! folds = 5
//! attacks = ["flow-stats", "m-agg"]
//! # A `|` in a parameter sweeps it: three Tamaraw settings.
//! defenses = ["none", "front", "tamaraw:multiple_of=50|100|200"]
//!
//! # Sweeps as tables: every combination of the lists (four FRONT settings).
//! [[sweep]]
//! defense = "front"
//! max_records = [100, 500]
//! w_max_s = [4, 8]
//!
//! [[dataset]]                       # labelled captures, <label>/<capture files>
//! path = "../shared/data/iot-sentinel"
//! types = true
//!
//! [[dataset]]                       # a manifest: path,label,group[,device]
//! path = "manifest.csv"
//!
//! [[dataset]]                       # a whole-home capture and its devices, mac,name[,type]
//! path = "home.pcap"
//! devices = "devices.csv"
//! home_window_s = 60                # one trace per device and minute
//! home_block_s = 600                # ten-minute blocks are the groups
//!
//! [[dataset]]                       # activity: built-in layouts of the events folder
//! path = "../shared/data/events"
//!
//! [[dataset]]                       # activity: any capture with labels
//! kind = "activity"
//! name = "my-plug"
//! capture = "plug.pcap"
//! labels = "plug.csv"
//!
//! [network]                         # the simulator's link (hush defend's options)
//! one_way_delay_s = 0.01
//! ```
//!
//! The observation model (see `hush_defense::observe`): `observations = ["session", "window"]`
//! (the default: both), `window_s = 600` at the top for every dataset, or in a `[[dataset]]`
//! for that one (default: the dataset's longest capture plus a margin).
//!
//! Relative paths are relative to the file. A sweep may expand to at most
//! [`MAX_SWEEP_SETTINGS`] settings.

use std::path::{Path, PathBuf};

use hush_defense::NetworkModel;
use serde::Deserialize;

use crate::EvalError;
use crate::activity::ActivitySpec;

/// The experiment file format this hush reads (`version = 1` at the top, or nothing).
pub const EXPERIMENT_VERSION: u32 = 1;

/// The most defense settings one sweep may expand to: a file can multiply lists of values into
/// more settings than any bench could run, and would exhaust memory before saying so.
pub const MAX_SWEEP_SETTINGS: usize = 10_000;

/// A bench run as an experiment file describes it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
// Every field may be left out.
#[serde(default, deny_unknown_fields)]
pub struct Experiment {
    /// The file format's version: [`EXPERIMENT_VERSION`] when given (a file without it is read
    /// as this version).
    pub version: Option<u32>,
    /// Datasets, in order.
    #[serde(rename = "dataset")]
    pub datasets: Vec<DatasetEntry>,
    /// Defense specs; `|` between values sweeps a parameter.
    pub defenses: Vec<String>,
    /// Sweeps written as tables.
    #[serde(rename = "sweep")]
    pub sweeps: Vec<Sweep>,
    /// Attack names.
    pub attacks: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Folds by capture.
    pub folds: Option<usize>,
    /// Cap on neural attacks' epochs.
    pub epochs: Option<usize>,
    /// At most this many training windows per capture.
    pub max_train_windows: Option<usize>,
    /// Where results go.
    pub out: Option<PathBuf>,
    /// The simulator's network.
    pub network: Option<NetworkModel>,
    /// What the eavesdropper observes: `["session", "window"]` (the default: both).
    pub observations: Vec<String>,
    /// The window view's window for every dataset, seconds (a dataset's own `window_s` wins;
    /// default: derived from each dataset, see `hush_defense::observe::default_window_s`).
    pub window_s: Option<f64>,
}

/// One dataset of an experiment.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DatasetEntry {
    /// A folder of `<label>/<captures>`, or an events folder with a built-in layout.
    #[serde(rename = "captures")]
    Captures(CapturesEntry),
    /// One capture with event labels.
    #[serde(rename = "activity")]
    Activity(ActivitySpec),
}

/// Labelled traces in one of the layouts [`hush_trace::dataset::Layout`] reads: a folder of
/// `<label>/<captures>`, a manifest CSV, or a whole-home capture with its devices CSV.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapturesEntry {
    /// The folder, the manifest, or (with `devices`) the whole-home capture.
    pub path: PathBuf,
    /// A whole home's devices CSV (`mac,name[,type]`).
    #[serde(default)]
    pub devices: Option<PathBuf>,
    /// With `devices`: the length of each trace cut from the home capture (one trace per device
    /// and cut), seconds (default 60). Not the observation window, which is `window_s`.
    #[serde(default)]
    pub home_window_s: Option<f64>,
    /// With `devices`: time block length, seconds, a whole number of windows (default 600).
    #[serde(default)]
    pub home_block_s: Option<f64>,
    /// Its name in results (default: the folder's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Merge IoT Sentinel's 31 devices into the paper's 27 types.
    #[serde(default)]
    pub types: bool,
    /// The trace (or label) whose rate the report plots.
    #[serde(default)]
    pub rate_trace: Option<String>,
    /// The window view's window for this dataset, seconds.
    #[serde(default)]
    pub window_s: Option<f64>,
}

impl CapturesEntry {
    /// An entry for `path` with every other field at its default.
    pub fn new(path: PathBuf) -> Self {
        CapturesEntry {
            path,
            devices: None,
            home_window_s: None,
            home_block_s: None,
            name: None,
            types: false,
            rate_trace: None,
            window_s: None,
        }
    }

    /// Which layout it names (see [`hush_trace::dataset::Layout::detect`]); load it with
    /// [`hush_trace::dataset::Layout::load`].
    pub fn layout(&self) -> hush_trace::Result<hush_trace::dataset::Layout> {
        let defaults = hush_trace::home::HomeWindows::default();
        let windows = hush_trace::home::HomeWindows {
            window_s: self.home_window_s.unwrap_or(defaults.window_s),
            block_s: self.home_block_s.unwrap_or(defaults.block_s),
        };
        hush_trace::dataset::Layout::detect(&self.path, self.devices.as_deref(), windows)
    }
}

/// A sweep as a table: `defense` and, per parameter, the values to try.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Sweep {
    /// The defense.
    pub defense: String,
    /// Parameter → values (numbers, strings or booleans).
    #[serde(flatten)]
    pub params: std::collections::BTreeMap<String, toml::Value>,
}

/// `[[dataset]]` without `kind` reads as captures (the serde tag needs one): add it.
fn with_default_kinds(mut v: toml::Value) -> toml::Value {
    if let Some(list) = v.get_mut("dataset").and_then(|d| d.as_array_mut()) {
        for d in list {
            if let Some(t) = d.as_table_mut() {
                t.entry("kind")
                    .or_insert_with(|| toml::Value::String("captures".into()));
            }
        }
    }
    v
}

impl Experiment {
    /// Read an experiment file; relative paths become relative to its folder.
    pub fn read(path: &Path) -> Result<Experiment, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let mut e = Experiment::parse(&text)
            .map_err(|msg| EvalError::Config(format!("{}: {msg}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for d in &mut e.datasets {
            match d {
                DatasetEntry::Captures(c) => {
                    fix(&mut c.path);
                    if let Some(d) = &mut c.devices {
                        fix(d);
                    } else if c.home_window_s.is_some() || c.home_block_s.is_some() {
                        return Err(EvalError::Config(format!(
                            "{}: dataset {}: home_window_s and home_block_s need devices",
                            path.display(),
                            c.path.display()
                        )));
                    }
                }
                DatasetEntry::Activity(a) => {
                    fix(&mut a.capture);
                    fix(&mut a.labels);
                }
            }
        }
        if let Some(o) = &mut e.out {
            fix(o);
        }
        Ok(e)
    }

    /// Parse an experiment's text.
    pub fn parse(text: &str) -> Result<Experiment, String> {
        let v: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        let e: Experiment = with_default_kinds(v)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        match e.version {
            Some(v) if v != EXPERIMENT_VERSION => Err(format!(
                "experiment file version {v} is not supported (this hush reads version \
                 {EXPERIMENT_VERSION})"
            )),
            _ => Ok(e),
        }
    }

    /// Every defense setting: the list with its `|` sweeps expanded, then the tables'.
    pub fn defense_settings(&self) -> Result<Vec<String>, EvalError> {
        let mut out = Vec::new();
        for d in &self.defenses {
            out.extend(expand_sweep(d)?);
        }
        for s in &self.sweeps {
            let mut spec = s.defense.clone();
            let mut sep = if spec.contains(':') { ';' } else { ':' };
            for (k, v) in &s.params {
                let values: Vec<String> = match v {
                    toml::Value::Array(a) => a.iter().map(value_text).collect(),
                    other => vec![value_text(other)],
                };
                if values.is_empty() {
                    return Err(EvalError::Config(format!(
                        "sweep of {}: {k} has no values",
                        s.defense
                    )));
                }
                spec.push(sep);
                spec.push_str(&format!("{k}={}", values.join("|")));
                sep = ';';
            }
            out.extend(expand_sweep(&spec)?);
        }
        Ok(out)
    }
}

fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `NAME:a=1|2;b=x|y` → every combination, the first parameter varying slowest:
/// `NAME:a=1;b=x`, `NAME:a=1;b=y`, `NAME:a=2;b=x`, `NAME:a=2;b=y` (parameters split as
/// `hush defend` splits them). A spec without `|` is itself.
pub fn expand_sweep(spec: &str) -> Result<Vec<String>, EvalError> {
    let Some((name, params)) = spec.split_once(':').filter(|_| spec.contains('|')) else {
        return Ok(vec![spec.to_string()]);
    };
    let params = hush_defense::catalog::split_params(params);
    let count = params
        .iter()
        .map(|p| p.split('|').count())
        .try_fold(1usize, |n, k| n.checked_mul(k))
        .filter(|&n| n <= MAX_SWEEP_SETTINGS);
    if count.is_none() {
        return Err(EvalError::Config(format!(
            "defense {name:?}: the sweep makes more than {MAX_SWEEP_SETTINGS} settings"
        )));
    }
    let mut settings = vec![String::new()];
    for p in params {
        let p = p.as_str();
        let (k, vals) = p.split_once('=').ok_or_else(|| {
            EvalError::Config(format!("defense {spec:?}: {p:?} is not key=value"))
        })?;
        let vals: Vec<&str> = vals.split('|').collect();
        if vals.iter().any(|v| v.is_empty()) {
            return Err(EvalError::Config(format!(
                "defense {spec:?}: an empty value in {p:?}"
            )));
        }
        settings = settings
            .iter()
            .flat_map(|s| {
                vals.iter().map(move |v| {
                    if s.is_empty() {
                        format!("{k}={v}")
                    } else {
                        format!("{s};{k}={v}")
                    }
                })
            })
            .collect();
    }
    Ok(settings
        .into_iter()
        .map(|s| format!("{name}:{s}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_checked() {
        assert!(Experiment::parse("version = 1\nfolds = 3").is_ok());
        assert!(Experiment::parse("folds = 3").is_ok());
        let err = Experiment::parse("version = 2\nfolds = 3").unwrap_err();
        assert!(err.contains("version 2 is not supported"), "{err}");
    }

    #[test]
    fn sweeps_expand_in_order() {
        assert_eq!(expand_sweep("front").unwrap(), ["front"]);
        assert_eq!(
            expand_sweep("tamaraw:multiple_of=50|100,out_gap_s=0.02").unwrap(),
            [
                "tamaraw:multiple_of=50;out_gap_s=0.02",
                "tamaraw:multiple_of=100;out_gap_s=0.02"
            ]
        );
        // A comma inside a value stays in it.
        assert_eq!(
            expand_sweep("ilp-random:gap_s=uniform:0.2,0.4|constant:1;size_bytes=100").unwrap(),
            [
                "ilp-random:gap_s=uniform:0.2,0.4;size_bytes=100",
                "ilp-random:gap_s=constant:1;size_bytes=100"
            ]
        );
        assert_eq!(expand_sweep("x:a=1|2;b=3|4").unwrap().len(), 4);
        // Ten parameters of ten values would be ten billion settings: refused before any.
        let huge = (0..10)
            .map(|k| format!("p{k}=0|1|2|3|4|5|6|7|8|9"))
            .collect::<Vec<_>>()
            .join(";");
        let err = expand_sweep(&format!("front:{huge}")).unwrap_err();
        assert!(
            err.to_string().contains("more than 10000 settings"),
            "{err}"
        );
        assert_eq!(
            expand_sweep("x:a=1").unwrap(),
            ["x:a=1"],
            "no sweep: as given"
        );
        assert!(expand_sweep("x:a=1||2").is_err());
        assert!(expand_sweep("x:a|b").is_err());
    }

    #[test]
    fn a_whole_file() {
        let e = Experiment::parse(
            r#"
            seeds = [3]
            attacks = ["flow-stats"]
            defenses = ["none", "pad-mtu"]
            [[sweep]]
            defense = "front"
            max_records = [100, 500]
            [[dataset]]
            path = "data/iot-sentinel"
            types = true
            [[dataset]]
            kind = "activity"
            name = "plug"
            capture = "p.pcap"
            labels = "p.csv"
            cycle_labels = ["on", "off"]
            [network]
            one_way_delay_s = 0.02
            "#,
        )
        .unwrap();
        assert_eq!(
            e.defense_settings().unwrap(),
            [
                "none",
                "pad-mtu",
                "front:max_records=100",
                "front:max_records=500"
            ]
        );
        assert_eq!(e.datasets.len(), 2);
        assert!(matches!(&e.datasets[0], DatasetEntry::Captures(c) if c.types));
        assert!(
            matches!(&e.datasets[1], DatasetEntry::Activity(a) if a.cycle_labels == ["on", "off"])
        );
        assert_eq!(e.network.unwrap().one_way_delay_s, 0.02);
    }

    #[test]
    fn whole_home_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("home.toml");
        std::fs::write(
            &file,
            "[[dataset]]\npath = \"home.pcap\"\ndevices = \"devices.csv\"\nhome_window_s = 30\n",
        )
        .unwrap();
        let e = Experiment::read(&file).unwrap();
        let DatasetEntry::Captures(c) = &e.datasets[0] else {
            panic!("a captures entry: {:?}", e.datasets[0]);
        };
        assert_eq!(c.path, dir.path().join("home.pcap"));
        assert_eq!(
            c.devices.as_deref(),
            Some(dir.path().join("devices.csv").as_path())
        );
        assert_eq!(c.home_window_s, Some(30.0));
        // The capture is missing: the layout names it.
        let err = c.layout().unwrap_err().to_string();
        assert!(err.contains("devices.csv does not exist"), "{err}");
        std::fs::write(&file, "[[dataset]]\npath = \"m.csv\"\nhome_block_s = 60\n").unwrap();
        let err = Experiment::read(&file).unwrap_err().to_string();
        assert!(err.contains("need devices"), "{err}");
    }

    #[test]
    fn mistakes_are_named() {
        let err = Experiment::parse("seeds = [0]\nattack = [\"x\"]\n").unwrap_err();
        assert!(err.contains("attack"), "{err}");
        let err =
            Experiment::parse("[[dataset]]\nkind = \"activity\"\nname = \"x\"\n").unwrap_err();
        assert!(err.contains("capture"), "{err}");
    }
}
