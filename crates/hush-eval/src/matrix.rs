//! The experiment matrix: every defense × attack × seed over one dataset. Each cell defends the
//! traces with the simulator, attacks them with an adaptive attacker (trained on defended
//! traffic) and a non-adaptive one (trained on undefended traffic), and records privacy next to
//! cost. Finished cells are cached on disk by content hash, so a killed run resumes where it
//! stopped and a run with one new defense computes only that defense.

use std::path::{Path, PathBuf};

use hush_attack::eval::{
    Predictions, fit_fold_models, fit_fold_rows, plan_folds, rows_of, score, trace_seed,
};
use hush_attack::{Attack, EvalOptions, ExampleRows, Mode, ModelFile, StageTiming};
use hush_defense::observe::{
    Placement, default_window_s, defend_whole, observe, placement_seed, span_ns,
};
use hush_defense::{DefenseSpec, NetworkModel, View};
use hush_trace::Trace;
use hush_trace::dataset::Dataset;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// What to run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Matrix {
    /// A name for the dataset in results (e.g. `iot-sentinel`).
    pub dataset: String,
    /// Defense specs, as `hush defend` reads them (`none`, `ilp-random`, `tamaraw:multiple_of=50`).
    pub defenses: Vec<String>,
    /// Attack names (`hush attack --list`).
    pub attacks: Vec<String>,
    /// Seeds: of the defenses, the folds and the models.
    pub seeds: Vec<u64>,
    /// Folds by capture.
    pub folds: usize,
    /// Cap on the epochs of neural attacks (`None`: their defaults).
    pub max_epochs: Option<usize>,
    /// The network the simulator models.
    #[serde(skip)]
    pub network: NetworkModel,
    /// The trace whose traffic rate the report plots before and after each defense: a trace
    /// name or a label (its first trace). `None`: the dataset's first trace.
    pub rate_trace: Option<String>,
    /// At most this many training windows per capture (test windows are never capped): bounds
    /// the training time of the packet-window attacks under defenses that multiply packets.
    pub max_train_windows: Option<usize>,
    /// What the eavesdropper observes: every cell runs under each (see
    /// [`hush_defense::observe`]).
    pub observations: Vec<Observation>,
    /// The window view's window, seconds; `None`: [`default_window_s`] of the dataset's
    /// captures (an activity dataset's windows are its event windows).
    pub window_s: Option<f64>,
}

impl Default for Matrix {
    /// No defenses or attacks yet; seed 0, 5 folds, both views, the default window.
    fn default() -> Matrix {
        Matrix {
            dataset: String::new(),
            defenses: Vec::new(),
            attacks: Vec::new(),
            seeds: vec![0],
            folds: 5,
            max_epochs: None,
            network: NetworkModel::default(),
            rate_trace: None,
            max_train_windows: None,
            observations: vec![Observation::Session, Observation::Window],
            window_s: None,
        }
    }
}

/// Which observation model a matrix runs (the window's length is [`Matrix::window_s`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Observation {
    /// One capture, start to end.
    Session,
    /// Fixed windows of an always-on link.
    Window,
}

impl std::str::FromStr for Observation {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Observation, EvalError> {
        match s.trim() {
            "session" => Ok(Observation::Session),
            "window" => Ok(Observation::Window),
            other => Err(EvalError::Config(format!(
                "observation {other:?}: expected session or window"
            ))),
        }
    }
}

/// What the matrix attacks.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Labelled captures, each one example (device identification).
    Captures(&'a Dataset),
    /// Windows of long captures around labelled events (activity inference), cut after the
    /// whole captures are defended.
    Activity(&'a crate::activity::Activity),
}

/// One row of the results: one defense setting, attack, attacker and seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The dataset's name.
    pub dataset: String,
    /// What the eavesdropper observed: `session` (one capture, start to end) or `window`
    /// (fixed windows of an always-on link).
    #[serde(default = "session")]
    pub observation: String,
    /// The window view's window, seconds (0 in the session view).
    #[serde(default)]
    pub window_s: f64,
    /// The defense as given.
    pub defense: String,
    /// The defense with every parameter, as the simulator ran it.
    pub parameters: String,
    /// The attack (with its options).
    pub attack: String,
    /// `adaptive` (trained on defended traffic) or `non-adaptive`.
    pub attacker: String,
    /// The seed.
    pub seed: u64,
    /// Accuracy per feature window (device datasets) or per event window, silent ones included
    /// (activity datasets).
    pub accuracy: f64,
    /// Macro-F1, scored as `accuracy` is.
    pub macro_f1: f64,
    /// Capture accuracy (mean probability over a capture's windows).
    pub capture_accuracy: f64,
    /// Accuracy of always guessing the most common class.
    pub chance: f64,
    /// Examples scored (feature windows, or event windows).
    pub windows: u64,
    /// Bytes added, % of the original (all traces pooled).
    pub bytes_added_pct: f64,
    /// Bytes added per second of original traffic.
    pub added_bps: f64,
    /// Bytes added per day at that rate.
    pub added_bytes_per_day: f64,
    /// Median delay of real data, seconds.
    pub latency_p50_s: f64,
    /// 95th percentile delay, seconds.
    pub latency_p95_s: f64,
    /// 99th percentile delay, seconds.
    pub latency_p99_s: f64,
    /// The classes, in the confusion matrix's order (JSON only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Confusion matrix, scored as `accuracy` is: `confusion[true][predicted]` counts (JSON only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confusion: Vec<Vec<u64>>,
}

fn session() -> String {
    "session".into()
}

/// Bytes per second in each direction over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Device to network, B/s per bin.
    pub out_bps: Vec<f64>,
    /// Network to device, B/s per bin.
    pub in_bps: Vec<f64>,
}

/// One trace's traffic rate before and after each defense (Datta et al.'s Figures 2 and 3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatePlot {
    /// The dataset.
    pub dataset: String,
    /// The view it was seen under (`session` or `window`).
    #[serde(default = "session")]
    pub observation: String,
    /// The trace.
    pub trace: String,
    /// Its label.
    pub label: String,
    /// Bin width, seconds; bins start at the original trace's first packet.
    pub bin_s: f64,
    /// The original traffic.
    pub original: Rates,
    /// (defense, defended traffic) for each defense, under the first seed.
    pub defended: Vec<(String, Rates)>,
}

/// Everything a run produced: what `results.json` holds and `hush report` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// `hush-results`.
    pub format: String,
    /// Version of this layout.
    pub version: u32,
    /// One row per (dataset, defense, attack, attacker, seed).
    pub cells: Vec<Cell>,
    /// Traffic rates of one trace per dataset.
    #[serde(default)]
    pub rates: Vec<RatePlot>,
}

impl Results {
    /// The layout's name and version.
    pub const FORMAT: &'static str = "hush-results";
    /// The current version (2: rows name their observation model).
    pub const VERSION: u32 = 2;

    /// Results from rows and rate plots.
    pub fn new(cells: Vec<Cell>, rates: Vec<RatePlot>) -> Results {
        Results {
            format: Self::FORMAT.into(),
            version: Self::VERSION,
            cells,
            rates,
        }
    }

    /// Read a results file's bytes: this layout, or the bare list of rows earlier versions
    /// wrote.
    pub fn from_json(bytes: &[u8]) -> Result<Results, String> {
        if let Ok(cells) = serde_json::from_slice::<Vec<Cell>>(bytes) {
            return Ok(Results::new(cells, Vec::new()));
        }
        let r: Results = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if r.format != Self::FORMAT || r.version > Self::VERSION {
            return Err(format!(
                "format {:?} version {}: this hush reads {} version {} or older",
                r.format,
                r.version,
                Self::FORMAT,
                Self::VERSION
            ));
        }
        Ok(r)
    }
}

/// Where cells are cached; `None` to compute everything.
#[derive(Clone, Debug)]
pub struct Cache {
    /// The folder (created when needed).
    pub dir: PathBuf,
    /// Read finished cells (false: recompute everything, still saving what finishes).
    pub read: bool,
}

/// What a run did, and where its time went. Stage times are summed over parallel jobs, so
/// their shares are shares of the work, and they can add up to more than the wall time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunStats {
    /// Cells computed now.
    pub computed: usize,
    /// Cells read from the cache.
    pub cached: usize,
    /// Seconds spent defending traces (the simulator).
    pub defend_s: f64,
    /// Seconds spent turning traces into feature rows and sequences.
    pub features_s: f64,
    /// Seconds spent fitting attack models.
    pub fit_s: f64,
    /// Seconds spent scoring test rows.
    pub predict_s: f64,
}

impl RunStats {
    /// Add another run's counts and times.
    pub fn add(&mut self, o: &RunStats) {
        self.computed += o.computed;
        self.cached += o.cached;
        self.defend_s += o.defend_s;
        self.features_s += o.features_s;
        self.fit_s += o.fit_s;
        self.predict_s += o.predict_s;
    }
}

/// FNV-1a, 64 bits: a stable content hash (std's hasher may change between Rust releases).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(mut self, b: &[u8]) -> Fnv {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }
    fn str(self, s: &str) -> Fnv {
        self.bytes(s.as_bytes()).bytes(&[0xff])
    }
}

/// A hash of everything an attack can see in the dataset: labels, groups and every packet's
/// time, size, direction and protocol.
pub fn dataset_hash(ds: &Dataset) -> u64 {
    let traces: Vec<(&str, &str, &Trace)> = ds
        .traces
        .iter()
        .map(|t| (t.label.as_str(), t.group.as_str(), &t.trace))
        .collect();
    hash_traces(&ds.labels, &traces)
}

fn input_hash(input: &Input<'_>) -> u64 {
    match input {
        Input::Captures(ds) => dataset_hash(ds),
        Input::Activity(a) => {
            let src: Vec<(&str, &str, &Trace)> = a.sources.iter().map(|t| ("", "", t)).collect();
            let mut h = Fnv::new().bytes(&hash_traces(&a.labels, &src).to_le_bytes());
            for w in &a.windows {
                h = h
                    .bytes(&(w.source as u64).to_le_bytes())
                    .bytes(&w.start_ns.to_le_bytes())
                    .bytes(&w.end_ns.to_le_bytes())
                    .str(&w.label);
            }
            h.0
        }
    }
}

fn hash_traces(labels: &[String], traces: &[(&str, &str, &Trace)]) -> u64 {
    let per: Vec<u64> = traces
        .par_iter()
        .map(|(label, group, trace)| {
            let mut h = Fnv::new().str(label).str(group);
            for p in &trace.packets {
                h = h
                    .bytes(&p.t_ns.to_le_bytes())
                    .bytes(&p.frame_len.to_le_bytes())
                    .bytes(&p.payload_len.to_le_bytes())
                    .bytes(&[p.dir as u8, p.ip_proto])
                    .bytes(&p.src_port.to_le_bytes())
                    .bytes(&p.dst_port.to_le_bytes());
            }
            h.0
        })
        .collect();
    let mut h = Fnv::new();
    for l in labels {
        h = h.str(l);
    }
    for x in per {
        h = h.bytes(&x.to_le_bytes());
    }
    h.0
}

fn cell_key(
    data_hash: u64,
    m: &Matrix,
    defense: &str,
    attack: &str,
    seed: u64,
    view: View,
) -> String {
    let h = Fnv::new()
        .bytes(&data_hash.to_le_bytes())
        .str(env!("CARGO_PKG_VERSION"))
        // The cell layout: rows cached before they named their observation are recomputed.
        .str("cell-v3")
        .str(&view.to_string())
        .str(defense)
        .str(attack)
        .bytes(&seed.to_le_bytes())
        .bytes(&(m.folds as u64).to_le_bytes())
        // The epoch cap changes neural attacks only; forests stay cached across it.
        .bytes(&epochs_of(m, attack).to_le_bytes())
        .bytes(
            &m.max_train_windows
                .map_or(u64::MAX, |n| n as u64)
                .to_le_bytes(),
        )
        .str(&format!("{:?}", m.network));
    format!("{:016x}", h.0)
}

fn epochs_of(m: &Matrix, attack: &str) -> u64 {
    match Attack::by_name(attack).map(|a| a.learner) {
        Ok(hush_attack::Learner::Neural(_)) => m.max_epochs.map_or(u64::MAX, |e| e as u64),
        _ => u64::MAX,
    }
}

/// Write `bytes` to `path` atomically: a temporary file beside it, then a rename, so a kill
/// leaves the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    let io = |e: std::io::Error| EvalError::Io {
        path: path.display().to_string(),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Cache {
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The cached pair of cells (adaptive, non-adaptive), if a whole, readable one is there.
    fn get(&self, key: &str) -> Option<Vec<Cell>> {
        if !self.read {
            return None;
        }
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn put(&self, key: &str, cells: &[Cell]) -> Result<(), EvalError> {
        let bytes = serde_json::to_vec(cells).map_err(|e| EvalError::Config(e.to_string()))?;
        write_atomic(&self.path(key), &bytes)
    }
}

impl Matrix {
    /// Check the names and numbers before anything runs.
    pub fn validate(&self) -> Result<(), EvalError> {
        if self.defenses.is_empty() || self.attacks.is_empty() || self.seeds.is_empty() {
            return Err(EvalError::Config(
                "a matrix needs at least one defense, attack and seed".into(),
            ));
        }
        for d in &self.defenses {
            let spec: DefenseSpec = d
                .parse()
                .map_err(|e| EvalError::Config(format!("defense {d:?}: {e}")))?;
            spec.plan()
                .map_err(|e| EvalError::Config(format!("defense {d:?}: {e}")))?;
        }
        for a in &self.attacks {
            Attack::by_name(a).map_err(|e| EvalError::Config(format!("attack {a:?}: {e}")))?;
        }
        if self.observations.is_empty() {
            return Err(EvalError::Config(
                "a matrix needs at least one observation (session, window)".into(),
            ));
        }
        if let Some(w) = self.window_s {
            View::Window { window_s: w }
                .validate()
                .map_err(|e| EvalError::Config(e.to_string()))?;
        }
        if self.folds < 2 {
            return Err(EvalError::Config(format!(
                "{} folds: at least 2",
                self.folds
            )));
        }
        Ok(())
    }

    /// Number of (defense, attack, seed, observation) cells; each gives two rows.
    pub fn cells(&self) -> usize {
        self.defenses.len() * self.attacks.len() * self.seeds.len() * self.observations.len()
    }

    /// The views this matrix runs on `input`, the session view first: the window's length is
    /// [`Matrix::window_s`], else the default for the input (see [`default_window_s`]; an
    /// activity dataset's event windows are what its eavesdropper watches).
    pub fn views(&self, input: &Input<'_>) -> Vec<View> {
        let window_s = self.window_s.unwrap_or_else(|| match input {
            Input::Captures(ds) => {
                default_window_s(ds.traces.iter().map(|t| span_ns(&t.trace) as f64 * 1e-9))
            }
            Input::Activity(a) => a
                .windows
                .iter()
                .map(|w| (w.end_ns - w.start_ns) as f64 * 1e-9)
                .fold(0.0, f64::max),
        });
        let mut out = Vec::new();
        for want in [Observation::Session, Observation::Window] {
            if self.observations.contains(&want) {
                out.push(match want {
                    Observation::Session => View::Session,
                    Observation::Window => View::Window { window_s },
                });
            }
        }
        out
    }
}

/// Pooled cost of one defense over every source.
#[derive(Clone, Debug, Default)]
struct Cost {
    parameters: String,
    bytes_added_pct: f64,
    added_bps: f64,
    added_bytes_per_day: f64,
    p50_s: f64,
    p95_s: f64,
    p99_s: f64,
}

impl Cost {
    /// Pooled over the sources' accounts (bytes and durations summed, delays together).
    fn pool(accounts: &[hush_defense::Defended]) -> Cost {
        let (mut orig, mut added, mut dur) = (0f64, 0f64, 0f64);
        let mut delays = Vec::new();
        let mut parameters = String::new();
        for d in accounts {
            orig += d.overhead.original_bytes as f64;
            added += d.overhead.bytes_added as f64;
            dur += d.overhead.original_duration_s;
            delays.extend_from_slice(&d.delays_ns);
            if parameters.is_empty() {
                parameters = d.defense.clone();
            }
        }
        let lat = hush_defense::overhead::Latency::from_delays_ns(&mut delays);
        let added_bps = if dur > 0.0 { added / dur } else { 0.0 };
        Cost {
            parameters,
            bytes_added_pct: if orig > 0.0 {
                100.0 * added / orig
            } else {
                0.0
            },
            added_bps,
            added_bytes_per_day: added_bps * 86_400.0,
            p50_s: lat.p50_s,
            p95_s: lat.p95_s,
            p99_s: lat.p99_s,
        }
    }

    fn apply(&self, c: &mut Cell) {
        c.parameters = self.parameters.clone();
        c.bytes_added_pct = self.bytes_added_pct;
        c.added_bps = self.added_bps;
        c.added_bytes_per_day = self.added_bytes_per_day;
        c.latency_p50_s = self.p50_s;
        c.latency_p95_s = self.p95_s;
        c.latency_p99_s = self.p99_s;
    }
}

/// What [`run`] returns.
#[derive(Clone, Debug)]
pub struct Run {
    /// The rows, in the matrix's order (defense, attack, seed, observation, adaptive then
    /// non-adaptive).
    pub cells: Vec<Cell>,
    /// The rate plots of the matrix's rate trace, one per observation.
    pub rates: Vec<RatePlot>,
    /// What was computed, cached, and where the time went.
    pub stats: RunStats,
}

/// A bin width that gives at most `max_bins` bins over `duration_s`, from a 1-2-5 ladder.
fn bin_width_s(duration_s: f64, max_bins: f64) -> f64 {
    const LADDER: [f64; 19] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
        3600.0, 7200.0, 21_600.0, 86_400.0,
    ];
    LADDER
        .into_iter()
        .find(|b| duration_s / b <= max_bins)
        .unwrap_or(86_400.0)
}

fn rates_of(t: &Trace, t0_ns: i64, bin_s: f64, bins: usize) -> Rates {
    let (mut out_bps, mut in_bps) = (vec![0f64; bins], vec![0f64; bins]);
    for p in &t.packets {
        let b = ((p.t_ns - t0_ns).max(0) as f64 / (bin_s * 1e9)) as usize;
        let Some(slot) = (match p.dir {
            hush_trace::Direction::Outbound => out_bps.get_mut(b),
            hush_trace::Direction::Inbound => in_bps.get_mut(b),
            hush_trace::Direction::Unknown => None,
        }) else {
            continue;
        };
        *slot += f64::from(p.frame_len) / bin_s;
    }
    Rates { out_bps, in_bps }
}

/// The rate trace's index among the sources: a trace name, else a label's first trace.
fn rate_index(m: &Matrix, sources: &[&Trace], labels: &[&str]) -> Result<usize, EvalError> {
    let Some(want) = &m.rate_trace else {
        return Ok(0);
    };
    sources
        .iter()
        .position(|t| &t.name == want)
        .or_else(|| labels.iter().position(|l| l == want))
        .ok_or_else(|| {
            EvalError::Config(format!(
                "rate trace {want:?}: no trace or label of {} has that name",
                m.dataset
            ))
        })
}

/// The rate trace before and after each defense (first seed) under one view, defended alone
/// with the seed it has in the matrix, so the plot shows the very traffic the cells were scored
/// on. In the window view the bins start when its first window opens and end when its last
/// closes; the original is the capture where it sat in them.
fn rate_plot(
    m: &Matrix,
    input: &Input<'_>,
    sources: &[&Trace],
    labels: &[&str],
    specs: &[DefenseSpec],
    view: View,
) -> Result<RatePlot, EvalError> {
    let i = rate_index(m, sources, labels)?;
    let t = sources[i];
    let seed = trace_seed(m.seeds[0], i);
    let defended: Vec<Trace> = specs
        .par_iter()
        .map(|spec| {
            let d = match input {
                Input::Captures(_) => observe(t, spec, seed, &m.network, view).map(|o| {
                    let mut all = o.windows.into_iter();
                    let mut first = all.next().unwrap_or_default();
                    for w in all {
                        first.packets.extend(w.packets);
                    }
                    first
                }),
                Input::Activity(_) => {
                    defend_whole(t, spec, seed, &m.network, view).map(|d| d.to_trace(t))
                }
            };
            d.map_err(|e| EvalError::Defense {
                trace: t.name.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    let first = t.packets.first().map_or(0, |p| p.t_ns);
    let (t0, end) = match (input, view) {
        (Input::Captures(_), View::Window { window_s }) => {
            let p = placement(t, window_s, seed);
            (first + p.open_ns, first + p.end_ns())
        }
        _ => (
            first,
            defended
                .iter()
                .chain(std::iter::once(t))
                .filter_map(|d| d.packets.last().map(|p| p.t_ns))
                .max()
                .unwrap_or(first),
        ),
    };
    let duration_s = (end - t0) as f64 / 1e9;
    let bin_s = bin_width_s(duration_s, 150.0);
    let bins = (duration_s / bin_s) as usize + 1;
    Ok(RatePlot {
        dataset: m.dataset.clone(),
        observation: view.name().into(),
        trace: t.name.clone(),
        label: labels[i].to_string(),
        bin_s,
        original: rates_of(t, t0, bin_s, bins),
        defended: m
            .defenses
            .iter()
            .zip(&defended)
            .map(|(d, dt)| (d.clone(), rates_of(dt, t0, bin_s, bins)))
            .collect(),
    })
}

/// Options of a run beyond the matrix itself.
#[derive(Clone, Copy, Default)]
pub struct RunOptions<'a> {
    /// Where cells are cached (`None`: compute everything, save nothing).
    pub cache: Option<&'a Cache>,
    /// Compute only this shard of the matrix's jobs into the cache.
    pub shard: Option<Shard>,
    /// Write every example's feature rows as Parquet under this folder (see
    /// [`crate::parquet`]).
    pub features_dir: Option<&'a Path>,
    /// Told (cells done, cells total) as cells finish.
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

/// One share of a matrix for one machine: jobs `k` with `k % count == index - 1` (1-based, as
/// `--shard 2/8` reads; a Kubernetes indexed Job passes `$((JOB_COMPLETION_INDEX + 1))/N`, a
/// Slurm array `$SLURM_ARRAY_TASK_ID/N` with `--array=1-N`). A job is one (defense, seed) and
/// its attacks and views, so a shard defends each capture once per job, as a whole run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which share, from 1.
    pub index: usize,
    /// How many shares.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = EvalError;

    /// `I/N` with 1 ≤ I ≤ N.
    fn from_str(s: &str) -> Result<Shard, EvalError> {
        let bad = || EvalError::Config(format!("shard {s:?}: expected I/N with 1 <= I <= N"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether job `k` is this shard's.
    pub fn has(&self, k: usize) -> bool {
        k % self.count == self.index - 1
    }
}

/// The examples one view makes of the input's sources, under one seed.
struct Examples<'a> {
    /// The undefended examples: their labels and groups make the folds, and they are the
    /// non-adaptive attacker's training traffic.
    ds: std::borrow::Cow<'a, Dataset>,
    /// Per source, its examples (indices into `ds`), in the order its observation gives them.
    of_source: Vec<Vec<usize>>,
    /// The examples are the session view's, packet for packet.
    same_as_session: bool,
    folds: Vec<hush_trace::split::Fold>,
}

/// One source (a capture, or an activity dataset's long capture) defended and seen under
/// `view`: its examples in `of_source` order, and the accounts.
fn observe_source(
    input: &Input<'_>,
    source: &Trace,
    s: usize,
    spec: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
    view: View,
) -> Result<(Vec<Trace>, hush_defense::Defended), EvalError> {
    let fail = |e: hush_defense::DefenseError| EvalError::Defense {
        trace: source.name.clone(),
        reason: e.to_string(),
    };
    match input {
        Input::Captures(_) => {
            let o = observe(source, spec, seed, net, view).map_err(fail)?;
            Ok((o.windows, o.defended))
        }
        Input::Activity(a) => {
            let d = defend_whole(source, spec, seed, net, view).map_err(fail)?;
            let windows = a.cut_source(s, &d.to_trace(source));
            Ok((windows, d.without_packets()))
        }
    }
}

/// A capture's placement among the windows, as [`observe`] draws it for `seed`.
fn placement(t: &Trace, window_s: f64, seed: u64) -> Placement {
    Placement::draw(
        span_ns(t),
        (window_s * 1e9).round() as i64,
        placement_seed(seed),
    )
}

/// A stable hash of examples' packets (what an attack can see).
fn packets_hash(traces: &[Trace]) -> u64 {
    let mut h = Fnv::new();
    for t in traces {
        h = h.bytes(&(t.packets.len() as u64).to_le_bytes());
        for p in &t.packets {
            h = h
                .bytes(&p.t_ns.to_le_bytes())
                .bytes(&p.frame_len.to_le_bytes())
                .bytes(&p.payload_len.to_le_bytes())
                .bytes(&[p.dir as u8, p.ip_proto])
                .bytes(&p.src_port.to_le_bytes())
                .bytes(&p.dst_port.to_le_bytes());
        }
    }
    h.0
}

/// What pass 1 of a job keeps of one source: its examples' rows per attack (capped for
/// training), whether they equal the undefended examples, a hash of them, and the accounts.
struct SourcePass {
    rows: Vec<Vec<ExampleRows>>,
    unchanged: bool,
    hash: u64,
    accounts: hush_defense::Defended,
    defend_s: f64,
    features_s: f64,
}

/// The non-adaptive attacker of one attack, seed and example set: its fold models and which of
/// its training examples were silent.
struct Naive {
    models: Vec<ModelFile>,
    silent: Vec<bool>,
}

/// Run the matrix over `input` (directions set), reading and writing finished cells in
/// `cache`. `progress` is told (cells done, cells total) as cells finish. Rows come back in
/// the matrix's order (defense, attack, seed, view, adaptive then non-adaptive), whatever ran
/// in parallel.
pub fn run(
    input: &Input<'_>,
    m: &Matrix,
    cache: Option<&Cache>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Run, EvalError> {
    run_with(
        input,
        m,
        &RunOptions {
            cache,
            progress: Some(progress),
            ..RunOptions::default()
        },
    )
}

/// [`run`] with every option: a shard of the matrix (cells into the cache only; the rows of
/// the other shards' jobs come from the cache when there, and are left out otherwise), and
/// Parquet feature files.
///
/// Memory stays bounded by one job: jobs (one defense and seed, all its attacks and views) run
/// one after another, each in parallel over its sources; a source's defended traffic is turned
/// into feature rows and dropped at once, and only the rows a model trains on (capped by
/// `max_train_windows`) are kept; test rows that a cap left out are computed again, fold by
/// fold, from a fresh defense of the same source with the same seed.
pub fn run_with(input: &Input<'_>, m: &Matrix, o: &RunOptions<'_>) -> Result<Run, EvalError> {
    m.validate()?;
    let cache = o.cache;
    let (ds, sources, source_labels): (Option<&Dataset>, Vec<&Trace>, Vec<&str>) = match input {
        Input::Captures(ds) => (
            Some(ds),
            ds.traces.iter().map(|t| &t.trace).collect(),
            ds.traces.iter().map(|t| t.label.as_str()).collect(),
        ),
        Input::Activity(a) => (
            None,
            a.sources.iter().collect(),
            a.sources.iter().map(|_| a.name.as_str()).collect(),
        ),
    };
    if sources.is_empty() || ds.is_some_and(|d| d.traces.is_empty()) {
        return Err(EvalError::Config(format!(
            "dataset {}: no traces",
            m.dataset
        )));
    }
    let specs: Vec<DefenseSpec> = m
        .defenses
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|e| EvalError::Config(format!("defense {d:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let views = m.views(input);
    let data_hash = input_hash(input);
    let attacks: Vec<Attack> = m
        .attacks
        .iter()
        .map(|name| {
            let mut a = Attack::by_name(name).map_err(|e| EvalError::Config(e.to_string()))?;
            if let Some(e) = m.max_epochs {
                a.set_max_epochs(e);
            }
            Ok(a)
        })
        .collect::<Result<_, EvalError>>()?;
    // Activity rows are scored per event window, silent windows included (no traffic is an
    // answer: nobody pressed anything); device rows per feature window, as the attacks' papers.
    let per_capture = matches!(input, Input::Activity(_));
    let opts = |seed: u64, mode: Mode| EvalOptions {
        folds: m.folds,
        seed,
        mode,
        score_silent: per_capture,
        max_train_windows: m.max_train_windows,
        ..EvalOptions::default()
    };
    let mut stats = RunStats::default();
    let key = |di: usize, ai: usize, seed: u64, view: View| {
        cell_key(data_hash, m, &m.defenses[di], &m.attacks[ai], seed, view)
    };
    // Jobs: (defense, seed), in the matrix's order.
    let jobs: Vec<(usize, usize)> = (0..m.defenses.len())
        .flat_map(|d| (0..m.seeds.len()).map(move |s| (d, s)))
        .collect();
    let total = m.cells();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = |n: usize| {
        let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if let Some(p) = o.progress {
            p(d, total);
        }
    };
    // What the cache holds: per job, per view, per attack.
    let cached: Vec<Vec<Vec<Option<Vec<Cell>>>>> = jobs
        .iter()
        .map(|&(di, si)| {
            views
                .iter()
                .map(|&v| {
                    (0..m.attacks.len())
                        .map(|ai| {
                            if o.features_dir.is_some() {
                                return None;
                            }
                            cache.and_then(|c| c.get(&key(di, ai, m.seeds[si], v)))
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mine = |k: usize| o.shard.is_none_or(|s| s.has(k));
    // The example sets each seed and view makes (built only where a job of ours needs them).
    let needed = |si: usize, vi: usize| {
        jobs.iter()
            .enumerate()
            .any(|(k, &(_, s))| s == si && mine(k) && cached[k][vi].iter().any(Option::is_none))
    };
    let mut example_sets: Vec<Vec<Option<Examples<'_>>>> = Vec::new();
    for (si, &seed) in m.seeds.iter().enumerate() {
        let mut per_view = Vec::new();
        for (vi, &view) in views.iter().enumerate() {
            per_view.push(if needed(si, vi) {
                Some(examples_of(input, &sources, view, seed, m)?)
            } else {
                None
            });
        }
        example_sets.push(per_view);
    }
    // The non-adaptive attacker never sees defended traffic: one model per fold, per attack,
    // seed and example set, trained once and scored under every defense. Example sets equal
    // to the session view's share its models.
    let mut naive_jobs: Vec<(usize, usize, usize)> = Vec::new();
    for (si, per_view) in example_sets.iter().enumerate() {
        for (vi, ex) in per_view.iter().enumerate() {
            let Some(ex) = ex else { continue };
            let vi = if ex.same_as_session && per_view[0].is_some() && views[0] == View::Session {
                0
            } else {
                vi
            };
            for ai in 0..m.attacks.len() {
                if !naive_jobs.contains(&(ai, si, vi)) {
                    naive_jobs.push((ai, si, vi));
                }
            }
        }
    }
    let naive_out: Vec<((usize, usize, usize), Naive, StageTiming)> = naive_jobs
        .par_iter()
        .map(|&(ai, si, vi)| {
            let ex = example_sets[si][vi]
                .as_ref()
                .ok_or_else(|| EvalError::Config("bug: an example set is missing".into()))?;
            let o = opts(m.seeds[si], Mode::NonAdaptive);
            let traces: Vec<&Trace> = ex.ds.traces.iter().map(|t| &t.trace).collect();
            let t0 = std::time::Instant::now();
            let rows = rows_of(&attacks[ai], &traces, m.max_train_windows);
            let features_s = t0.elapsed().as_secs_f64();
            let (models, mut timing) = fit_fold_models(&ex.ds, &attacks[ai], &o, &ex.folds, &rows)?;
            timing.features_s += features_s;
            let silent = rows.iter().map(|r| r.silent).collect();
            Ok(((ai, si, vi), Naive { models, silent }, timing))
        })
        .collect::<Result<_, EvalError>>()?;
    let mut naive: std::collections::HashMap<(usize, usize, usize), Naive> = Default::default();
    for (k, n, t) in naive_out {
        stats.features_s += t.features_s;
        stats.fit_s += t.fit_s;
        naive.insert(k, n);
    }
    let naive_of = |ai: usize, si: usize, vi: usize| -> Result<&Naive, EvalError> {
        naive
            .get(&(ai, si, vi))
            .or_else(|| naive.get(&(ai, si, 0)))
            .ok_or_else(|| EvalError::Config("bug: no non-adaptive models".into()))
    };
    let mut all: Vec<(usize, usize, usize, usize, Vec<Cell>)> = Vec::new();
    let mut features_out = Vec::new();
    for (k, &(di, si)) in jobs.iter().enumerate() {
        let seed = m.seeds[si];
        let spec = &specs[di];
        // The session view's results of this job, for a window view that sees the same.
        // Indexed by attack; set only when the session view computed every attack here.
        let mut session_done: Option<(u64, Vec<Vec<Cell>>)> = None;
        for (vi, &view) in views.iter().enumerate() {
            let mut missing = Vec::new();
            for (ai, hit) in cached[k][vi].iter().enumerate() {
                match hit {
                    Some(cells) => {
                        stats.cached += 1;
                        all.push((di, ai, si, vi, cells.clone()));
                        tick(1);
                    }
                    None => missing.push(ai),
                }
            }
            if missing.is_empty() || !mine(k) {
                continue;
            }
            let ex = example_sets[si][vi]
                .as_ref()
                .ok_or_else(|| EvalError::Config("bug: an example set is missing".into()))?;
            let job = Job {
                input,
                m,
                sources: &sources,
                spec,
                seed,
                view,
                ex,
                attacks: &attacks,
                missing: &missing,
                per_capture,
                defense: &m.defenses[di],
                features: o.features_dir.is_some(),
            };
            // A session-bounded defense seen through windows that hold all of it: the session's
            // cells, costed over the windows.
            let reuse = match &session_done {
                Some((hash, cells)) if ex.same_as_session && !spec.always_on() => {
                    let (h, accounts, t) = job.hash_only()?;
                    stats.defend_s += t;
                    (h == *hash).then(|| {
                        let mine: Vec<Vec<Cell>> =
                            missing.iter().map(|&ai| cells[ai].clone()).collect();
                        (mine, Cost::pool(&accounts))
                    })
                }
                _ => None,
            };
            let (computed, hash) = match reuse {
                Some((cells, cost)) => {
                    let cells = cells
                        .into_iter()
                        .map(|pair| {
                            pair.into_iter()
                                .map(|mut c| {
                                    cost.apply(&mut c);
                                    c.observation = view.name().into();
                                    c.window_s = view.window_s().unwrap_or(0.0);
                                    c
                                })
                                .collect()
                        })
                        .collect();
                    (cells, 0)
                }
                None => {
                    let (cells, hash, s, features) =
                        job.compute(&|ai, si2| naive_of(ai, si2, vi), si)?;
                    stats.add(&s);
                    if let Some(f) = features {
                        features_out.push(f);
                    }
                    (cells, hash)
                }
            };
            for (&ai, cells) in missing.iter().zip(&computed) {
                if let Some(c) = cache {
                    c.put(&key(di, ai, seed, view), cells)?;
                }
                stats.computed += 1;
                all.push((di, ai, si, vi, cells.clone()));
            }
            tick(missing.len());
            if view == View::Session && missing.len() == m.attacks.len() {
                session_done = Some((hash, computed));
            }
        }
    }
    if let Some(dir) = o.features_dir {
        crate::parquet::write_features(dir, &m.dataset, &features_out)?;
    }
    all.sort_by_key(|(d, a, s, v, _)| (*d, *a, *s, *v));
    let t0 = std::time::Instant::now();
    let rates = views
        .iter()
        .map(|&v| rate_plot(m, input, &sources, &source_labels, &specs, v))
        .collect::<Result<Vec<_>, _>>()?;
    stats.defend_s += t0.elapsed().as_secs_f64();
    Ok(Run {
        cells: all.into_iter().flat_map(|(_, _, _, _, c)| c).collect(),
        rates,
        stats,
    })
}

/// The example set of one view and seed.
fn examples_of<'a>(
    input: &Input<'a>,
    sources: &[&Trace],
    view: View,
    seed: u64,
    m: &Matrix,
) -> Result<Examples<'a>, EvalError> {
    let fold_opts = EvalOptions {
        folds: m.folds,
        seed,
        ..EvalOptions::default()
    };
    let (ds, of_source, same_as_session): (std::borrow::Cow<'a, Dataset>, _, bool) =
        match (input, view) {
            (Input::Captures(ds), View::Session) => (
                std::borrow::Cow::Borrowed(*ds),
                (0..ds.traces.len()).map(|i| vec![i]).collect(),
                true,
            ),
            (Input::Captures(ds), View::Window { window_s }) => {
                let placements: Vec<Placement> = sources
                    .iter()
                    .enumerate()
                    .map(|(i, t)| placement(t, window_s, trace_seed(seed, i)))
                    .collect();
                if placements.iter().all(|p| p.windows == 1) {
                    // Every capture in one window: the examples are the captures themselves.
                    (
                        std::borrow::Cow::Borrowed(*ds),
                        (0..ds.traces.len()).map(|i| vec![i]).collect(),
                        true,
                    )
                } else {
                    let mut traces = Vec::new();
                    let mut of_source = Vec::new();
                    for (t, p) in ds.traces.iter().zip(&placements) {
                        let t0 = t.trace.packets.first().map_or(0, |p| p.t_ns);
                        let mut mine = Vec::new();
                        for w in p.cut(&t.trace, t0) {
                            mine.push(traces.len());
                            traces.push(hush_trace::dataset::LabelledTrace {
                                label: t.label.clone(),
                                // Windows of one capture stay together in every split.
                                group: t.group.clone(),
                                trace: w,
                            });
                        }
                        of_source.push(mine);
                    }
                    (
                        std::borrow::Cow::Owned(Dataset {
                            traces,
                            labels: ds.labels.clone(),
                            report: Default::default(),
                        }),
                        of_source,
                        false,
                    )
                }
            }
            (Input::Activity(a), _) => {
                let mut of_source = vec![Vec::new(); a.sources.len()];
                for (i, w) in a.windows.iter().enumerate() {
                    of_source[w.source].push(i);
                }
                (std::borrow::Cow::Owned(a.dataset()), of_source, true)
            }
        };
    let folds = plan_folds(&ds, &fold_opts)?;
    Ok(Examples {
        ds,
        of_source,
        same_as_session,
        folds,
    })
}

/// One job's work on one view: every missing attack's cells.
struct Job<'a, 'b> {
    input: &'b Input<'a>,
    m: &'b Matrix,
    sources: &'b [&'a Trace],
    spec: &'b DefenseSpec,
    seed: u64,
    view: View,
    ex: &'b Examples<'a>,
    attacks: &'b [Attack],
    missing: &'b [usize],
    per_capture: bool,
    /// The defense as the matrix names it.
    defense: &'b str,
    /// Keep every example's rows for Parquet output.
    features: bool,
}

/// The feature rows of one cell's examples, for Parquet output.
pub(crate) struct CellFeatures {
    pub observation: String,
    pub defense: String,
    pub seed: u64,
    pub attack: String,
    pub feature_names: Vec<String>,
    /// Per example: its label, group, and rows.
    pub examples: Vec<(String, String, Vec<Vec<f32>>)>,
}

impl Job<'_, '_> {
    fn observe(&self, s: usize) -> Result<(Vec<Trace>, hush_defense::Defended), EvalError> {
        observe_source(
            self.input,
            self.sources[s],
            s,
            self.spec,
            trace_seed(self.seed, s),
            &self.m.network,
            self.view,
        )
    }

    /// Only the examples' hash and the accounts (to see whether another view's cells serve).
    fn hash_only(&self) -> Result<(u64, Vec<hush_defense::Defended>, f64), EvalError> {
        let t0 = std::time::Instant::now();
        let out: Vec<(u64, hush_defense::Defended)> = (0..self.sources.len())
            .into_par_iter()
            .map(|s| {
                let (w, d) = self.observe(s)?;
                Ok((packets_hash(&w), d))
            })
            .collect::<Result<_, EvalError>>()?;
        let mut h = Fnv::new();
        let mut accounts = Vec::with_capacity(out.len());
        for (x, d) in out {
            h = h.bytes(&x.to_le_bytes());
            accounts.push(d);
        }
        Ok((h.0, accounts, t0.elapsed().as_secs_f64()))
    }

    /// Defend, featurise, fit, score: the cells (adaptive, non-adaptive) of each missing attack,
    /// the examples' hash, the time spent, and the feature rows when asked for.
    #[allow(clippy::type_complexity)]
    fn compute<'n>(
        &self,
        naive_of: &(dyn Fn(usize, usize) -> Result<&'n Naive, EvalError> + Sync),
        si: usize,
    ) -> Result<(Vec<Vec<Cell>>, u64, RunStats, Option<Vec<CellFeatures>>), EvalError> {
        let mut stats = RunStats::default();
        let ex = self.ex;
        let cap = self.m.max_train_windows;
        let n_examples = ex.ds.traces.len();
        // Pass 1: every source observed, its examples' rows kept (capped), its traffic dropped.
        let pass: Vec<SourcePass> = (0..self.sources.len())
            .into_par_iter()
            .map(|s| -> Result<SourcePass, EvalError> {
                let t0 = std::time::Instant::now();
                let (windows, accounts) = self.observe(s)?;
                let defend_s = t0.elapsed().as_secs_f64();
                let t0 = std::time::Instant::now();
                let mine = &ex.of_source[s];
                if windows.len() != mine.len() {
                    return Err(EvalError::Config(format!(
                        "bug: {} examples of {} where {} were expected",
                        windows.len(),
                        self.sources[s].name,
                        mine.len()
                    )));
                }
                let unchanged = windows
                    .iter()
                    .zip(mine)
                    .all(|(w, &e)| w.packets == ex.ds.traces[e].trace.packets);
                let rows = self
                    .missing
                    .iter()
                    .map(|&ai| {
                        windows
                            .iter()
                            .map(|w| self.attacks[ai].example_rows(w, cap))
                            .collect()
                    })
                    .collect();
                Ok(SourcePass {
                    rows,
                    unchanged,
                    hash: packets_hash(&windows),
                    accounts,
                    defend_s,
                    features_s: t0.elapsed().as_secs_f64(),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut hash = Fnv::new();
        let mut unchanged = true;
        // Per attack, per example: its (capped) rows.
        let mut rows: Vec<Vec<ExampleRows>> =
            vec![vec![ExampleRows::default(); n_examples]; self.missing.len()];
        let mut accounts = Vec::with_capacity(pass.len());
        for (s, p) in pass.into_iter().enumerate() {
            hash = hash.bytes(&p.hash.to_le_bytes());
            unchanged &= p.unchanged;
            stats.defend_s += p.defend_s;
            stats.features_s += p.features_s;
            for (k, per_attack) in p.rows.into_iter().enumerate() {
                for (r, &e) in per_attack.into_iter().zip(&ex.of_source[s]) {
                    rows[k][e] = r;
                }
            }
            accounts.push(p.accounts);
        }
        let cost = Cost::pool(&accounts);
        drop(accounts);
        // Adaptive models: every (attack, fold) in parallel. A defense that changed nothing
        // (`none`): the adaptive attacker trains on the very traffic the non-adaptive one did,
        // so its models are those.
        let fit_tasks: Vec<(usize, usize)> = if unchanged {
            Vec::new()
        } else {
            (0..self.missing.len())
                .flat_map(|k| (0..ex.folds.len()).map(move |f| (k, f)))
                .collect()
        };
        let fitted: Vec<(ModelFile, StageTiming)> = fit_tasks
            .par_iter()
            .map(|&(k, f)| {
                let o = self.opts(Mode::Adaptive);
                Ok(fit_fold_rows(
                    &ex.ds,
                    &self.attacks[self.missing[k]],
                    &o,
                    f,
                    &ex.folds[f],
                    &rows[k],
                )?)
            })
            .collect::<Result<_, EvalError>>()?;
        let mut adaptive: Vec<Vec<ModelFile>> = vec![Vec::new(); self.missing.len()];
        for ((k, _), (model, t)) in fit_tasks.iter().zip(fitted) {
            stats.fit_s += t.fit_s;
            stats.features_s += t.features_s;
            adaptive[*k].push(model);
        }
        let naive: Vec<&Naive> = self
            .missing
            .iter()
            .map(|&ai| naive_of(ai, si))
            .collect::<Result<_, _>>()?;
        // Pass 2, fold by fold: each test example's rows (kept, or computed again whole when
        // the cap cut them), scored by both attackers.
        let mut probs: Vec<[Vec<Vec<Vec<f32>>>; 2]> =
            vec![[vec![Vec::new(); n_examples], vec![Vec::new(); n_examples]]; self.missing.len()];
        let mut features: Option<Vec<CellFeatures>> = self.features.then(|| {
            self.missing
                .iter()
                .map(|&ai| CellFeatures {
                    observation: self.view.name().into(),
                    defense: self.spec.to_string(),
                    seed: self.seed,
                    attack: self.attacks[ai].spec(),
                    feature_names: self.attacks[ai].feature_names(),
                    examples: Vec::new(),
                })
                .collect()
        });
        // Per example, its source and its place among the source's examples.
        let mut source_of = vec![(0, 0); n_examples];
        for (s, mine) in ex.of_source.iter().enumerate() {
            for (j, &e) in mine.iter().enumerate() {
                source_of[e] = (s, j);
            }
        }
        let threads = rayon::current_num_threads().max(1);
        for (f, fold) in ex.folds.iter().enumerate() {
            let models: Vec<[&ModelFile; 2]> = (0..self.missing.len())
                .map(|k| {
                    [
                        if unchanged {
                            &naive[k].models[f]
                        } else {
                            &adaptive[k][f]
                        },
                        &naive[k].models[f],
                    ]
                })
                .collect();
            let mut preds: Vec<[Predictions<'_>; 2]> = models
                .iter()
                .enumerate()
                .map(|(k, [a, n])| {
                    let attack = &self.attacks[self.missing[k]];
                    [Predictions::new(attack, a), Predictions::new(attack, n)]
                })
                .collect();
            // The fold's test examples in runs from one source. A run whose rows the cap cut is
            // observed again and its rows computed whole; a few runs go in parallel and their
            // rows are predicted in order as they come, so memory holds a few runs' rows rather
            // than the fold's (a heavy cover's whole rows are 170 bytes a packet).
            let runs: Vec<&[usize]> = fold
                .test
                .chunk_by(|&a, &b| source_of[a].0 == source_of[b].0)
                .collect();
            for batch in runs.chunks(threads) {
                let fresh: Vec<(Option<Vec<Vec<ExampleRows>>>, f64, f64)> = batch
                    .par_iter()
                    .map(|run| {
                        let cut = run
                            .iter()
                            .any(|&e| rows.iter().any(|per| !per[e].complete()));
                        if !cut {
                            return Ok((None, 0.0, 0.0));
                        }
                        let t0 = std::time::Instant::now();
                        let (windows, _) = self.observe(source_of[run[0]].0)?;
                        let d = t0.elapsed().as_secs_f64();
                        let t0 = std::time::Instant::now();
                        let r: Vec<Vec<ExampleRows>> = self
                            .missing
                            .iter()
                            .map(|&ai| {
                                run.iter()
                                    .map(|&e| {
                                        self.attacks[ai]
                                            .example_rows(&windows[source_of[e].1], None)
                                    })
                                    .collect()
                            })
                            .collect();
                        Ok((Some(r), d, t0.elapsed().as_secs_f64()))
                    })
                    .collect::<Result<_, EvalError>>()?;
                let t0 = std::time::Instant::now();
                for (run, (fresh, d, features_s)) in batch.iter().zip(fresh) {
                    stats.defend_s += d;
                    stats.features_s += features_s;
                    for (j, &e) in run.iter().enumerate() {
                        for (k, pair) in preds.iter_mut().enumerate() {
                            let r = match &fresh {
                                Some(fresh) => &fresh[k][j].rows,
                                None => &rows[k][e].rows,
                            };
                            for p in pair.iter_mut() {
                                p.push(r)?;
                            }
                            if let Some(out) = features.as_mut() {
                                let t = &ex.ds.traces[e];
                                out[k]
                                    .examples
                                    .push((t.label.clone(), t.group.clone(), r.clone()));
                            }
                        }
                    }
                }
                stats.predict_s += t0.elapsed().as_secs_f64();
            }
            let t0 = std::time::Instant::now();
            for (k, pair) in preds.into_iter().enumerate() {
                for (which, p) in pair.into_iter().enumerate() {
                    for (&e, p) in fold.test.iter().zip(p.finish()?) {
                        probs[k][which][e] = p;
                    }
                }
            }
            stats.predict_s += t0.elapsed().as_secs_f64();
        }
        // Scores.
        let mut cells = Vec::with_capacity(self.missing.len());
        for (k, &ai) in self.missing.iter().enumerate() {
            let attack = &self.attacks[ai];
            let mut pair = Vec::with_capacity(2);
            for (which, mode) in [Mode::Adaptive, Mode::NonAdaptive].into_iter().enumerate() {
                let silent: Vec<bool> = match (mode, unchanged) {
                    (Mode::Adaptive, false) => rows[k].iter().map(|r| r.silent).collect(),
                    _ => naive[k].silent.clone(),
                };
                let r = score(
                    &ex.ds,
                    attack,
                    &self.opts(mode),
                    &ex.folds,
                    &probs[k][which],
                    &silent,
                );
                let scored = if self.per_capture {
                    &r.capture
                } else {
                    &r.window
                };
                let mut c = Cell {
                    dataset: self.m.dataset.clone(),
                    observation: self.view.name().into(),
                    window_s: self.view.window_s().unwrap_or(0.0),
                    defense: self.defense.to_string(),
                    parameters: String::new(),
                    attack: attack.spec(),
                    attacker: match mode {
                        Mode::Adaptive => "adaptive",
                        Mode::NonAdaptive => "non-adaptive",
                    }
                    .into(),
                    seed: self.seed,
                    accuracy: scored.accuracy,
                    macro_f1: scored.macro_f1,
                    capture_accuracy: r.capture.accuracy,
                    chance: scored.chance_majority,
                    windows: scored.examples,
                    bytes_added_pct: 0.0,
                    added_bps: 0.0,
                    added_bytes_per_day: 0.0,
                    latency_p50_s: 0.0,
                    latency_p95_s: 0.0,
                    latency_p99_s: 0.0,
                    labels: r.labels.clone(),
                    confusion: scored.confusion.clone(),
                };
                cost.apply(&mut c);
                pair.push(c);
            }
            cells.push(pair);
        }
        Ok((cells, hash.0, stats, features))
    }

    fn opts(&self, mode: Mode) -> EvalOptions<'static> {
        EvalOptions {
            folds: self.m.folds,
            seed: self.seed,
            mode,
            score_silent: self.per_capture,
            max_train_windows: self.m.max_train_windows,
            ..EvalOptions::default()
        }
    }
}

/// The rows as CSV: a header, then one line per row with fixed decimals, so the same run gives
/// the same bytes.
pub fn to_csv(cells: &[Cell]) -> String {
    let mut s = String::from(
        "dataset,observation,window_s,defense,parameters,attack,attacker,seed,accuracy,macro_f1,\
         capture_accuracy,chance,windows,bytes_added_pct,added_bps,added_bytes_per_day,\
         latency_p50_s,latency_p95_s,latency_p99_s\n",
    );
    let q = |v: &str| {
        if v.contains([',', '"', '\n']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_string()
        }
    };
    for c in cells {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{},{:.3},{:.3},{:.0},{:.6},{:.6},{:.6}\n",
            q(&c.dataset),
            c.observation,
            c.window_s,
            q(&c.defense),
            q(&c.parameters),
            q(&c.attack),
            c.attacker,
            c.seed,
            c.accuracy,
            c.macro_f1,
            c.capture_accuracy,
            c.chance,
            c.windows,
            c.bytes_added_pct,
            c.added_bps,
            c.added_bytes_per_day,
            c.latency_p50_s,
            c.latency_p95_s,
            c.latency_p99_s
        ));
    }
    s
}
