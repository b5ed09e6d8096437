//! The experiment matrix: every defense × attack × seed over one dataset. Each cell defends the
//! traces with the simulator, attacks them with an adaptive attacker (trained on defended
//! traffic) and a non-adaptive one (trained on undefended traffic), and records privacy next to
//! cost. Finished cells are cached on disk by content hash, so a killed run resumes where it
//! stopped and a run with one new defense computes only that defense.

use std::path::{Path, PathBuf};

use hush_attack::eval::{evaluate_defended, fit_folds, trace_seed};
use hush_attack::{Attack, EvalOptions, Mode};
use hush_defense::{DefenseSpec, NetworkModel, defend};
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
    /// The current version.
    pub const VERSION: u32 = 1;

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

fn cell_key(data_hash: u64, m: &Matrix, defense: &str, attack: &str, seed: u64) -> String {
    let h = Fnv::new()
        .bytes(&data_hash.to_le_bytes())
        .str(env!("CARGO_PKG_VERSION"))
        // The cell layout: rows cached before confusion matrices were kept are recomputed.
        .str("cell-v2")
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
        if self.folds < 2 {
            return Err(EvalError::Config(format!(
                "{} folds: at least 2",
                self.folds
            )));
        }
        Ok(())
    }

    /// Number of (defense, attack, seed) cells; each gives two rows.
    pub fn cells(&self) -> usize {
        self.defenses.len() * self.attacks.len() * self.seeds.len()
    }
}

/// Pooled cost of one defense over every trace.
struct Cost {
    parameters: String,
    bytes_added_pct: f64,
    added_bps: f64,
    added_bytes_per_day: f64,
    p50_s: f64,
    p95_s: f64,
    p99_s: f64,
}

fn defend_all(
    sources: &[&Trace],
    spec: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
) -> Result<(Vec<Trace>, Cost), EvalError> {
    let out: Vec<(Trace, hush_defense::Defended)> = sources
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            let d = defend(t, spec, trace_seed(seed, i), net).map_err(|e| EvalError::Defense {
                trace: t.name.clone(),
                reason: e.to_string(),
            })?;
            Ok((d.to_trace(t), d.without_packets()))
        })
        .collect::<Result<_, EvalError>>()?;
    let (mut orig, mut added, mut dur) = (0f64, 0f64, 0f64);
    let mut delays = Vec::new();
    let mut parameters = String::new();
    for (_, d) in &out {
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
    let cost = Cost {
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
    };
    Ok((out.into_iter().map(|(t, _)| t).collect(), cost))
}

/// What [`run`] returns.
#[derive(Clone, Debug)]
pub struct Run {
    /// The rows, in the matrix's order (defense, attack, seed, adaptive then non-adaptive).
    pub cells: Vec<Cell>,
    /// The rate plot of the matrix's rate trace.
    pub rates: RatePlot,
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

/// The rate trace before and after each defense (first seed), defended alone with the seed it
/// has in the matrix, so the plot shows the very traffic the cells were scored on.
fn rate_plot(
    m: &Matrix,
    sources: &[&Trace],
    labels: &[&str],
    specs: &[DefenseSpec],
) -> Result<RatePlot, EvalError> {
    let i = rate_index(m, sources, labels)?;
    let t = sources[i];
    let seed = m.seeds[0];
    let defended: Vec<Trace> = specs
        .par_iter()
        .map(|spec| {
            defend(t, spec, trace_seed(seed, i), &m.network)
                .map(|d| d.to_trace(t))
                .map_err(|e| EvalError::Defense {
                    trace: t.name.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let t0 = t.packets.first().map_or(0, |p| p.t_ns);
    let end = defended
        .iter()
        .chain(std::iter::once(t))
        .filter_map(|d| d.packets.last().map(|p| p.t_ns))
        .max()
        .unwrap_or(t0);
    let duration_s = (end - t0) as f64 / 1e9;
    let bin_s = bin_width_s(duration_s, 150.0);
    let bins = (duration_s / bin_s) as usize + 1;
    Ok(RatePlot {
        dataset: m.dataset.clone(),
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

/// Run the matrix over `input` (directions set), reading and writing finished cells in
/// `cache`. `progress` is told (cells done, cells total) as cells finish. Rows come back in
/// the matrix's order (defense, attack, seed, adaptive then non-adaptive), whatever ran in
/// parallel.
pub fn run(
    input: &Input<'_>,
    m: &Matrix,
    cache: Option<&Cache>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Run, EvalError> {
    m.validate()?;
    // The examples the attacks see, undefended; the sources the defenses run on; and how to
    // turn defended sources into defended examples.
    let windows_ds;
    let (ds, sources, source_labels): (&Dataset, Vec<&Trace>, Vec<&str>) = match input {
        Input::Captures(ds) => (
            ds,
            ds.traces.iter().map(|t| &t.trace).collect(),
            ds.traces.iter().map(|t| t.label.as_str()).collect(),
        ),
        Input::Activity(a) => {
            windows_ds = a.dataset();
            (
                &windows_ds,
                a.sources.iter().collect(),
                a.sources.iter().map(|_| a.name.as_str()).collect(),
            )
        }
    };
    let examples = |defended: Vec<Trace>| match input {
        Input::Captures(_) => defended,
        Input::Activity(a) => a.cut(&defended),
    };
    if ds.traces.is_empty() {
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
    let data_hash = input_hash(input);
    let total = m.cells();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(d, total);
    };
    // What the cache already holds.
    let key = |di: usize, ai: usize, seed: u64| {
        cell_key(data_hash, m, &m.defenses[di], &m.attacks[ai], seed)
    };
    let cached: Vec<Vec<Vec<Option<Vec<Cell>>>>> = (0..m.defenses.len())
        .map(|di| {
            m.seeds
                .iter()
                .map(|&seed| {
                    (0..m.attacks.len())
                        .map(|ai| cache.and_then(|c| c.get(&key(di, ai, seed))))
                        .collect()
                })
                .collect()
        })
        .collect();
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
    // The non-adaptive attacker never sees defended traffic: one model per fold, trained once
    // on the undefended traces and scored under every defense.
    let mut stats = RunStats::default();
    let naive_jobs: Vec<(usize, usize)> = (0..m.attacks.len())
        .flat_map(|ai| (0..m.seeds.len()).map(move |si| (ai, si)))
        .filter(|&(ai, si)| cached.iter().any(|d| d[si][ai].is_none()))
        .collect();
    type FoldModels = (Vec<hush_attack::ModelFile>, hush_attack::StageTiming);
    let naive: Vec<((usize, usize), FoldModels)> = naive_jobs
        .par_iter()
        .map(|&(ai, si)| {
            let o = opts(m.seeds[si], Mode::NonAdaptive);
            Ok(((ai, si), fit_folds(ds, &attacks[ai], &o, None)?))
        })
        .collect::<Result<_, EvalError>>()?;
    for (_, (_, t)) in &naive {
        stats.features_s += t.features_s;
        stats.fit_s += t.fit_s;
    }
    let naive_models = |ai: usize, si: usize| {
        naive
            .iter()
            .find(|(k, _)| *k == (ai, si))
            .map(|(_, (models, _))| models.as_slice())
    };
    // One job per (defense, seed): the traces are defended once for all its attacks.
    let jobs: Vec<(usize, usize)> = (0..m.defenses.len())
        .flat_map(|d| (0..m.seeds.len()).map(move |s| (d, s)))
        .collect();
    type JobOut = (Vec<(usize, usize, usize, Vec<Cell>)>, RunStats);
    let outs: Vec<JobOut> = jobs
        .par_iter()
        .map(|&(di, si)| -> Result<JobOut, EvalError> {
            let (defense, seed) = (&m.defenses[di], m.seeds[si]);
            let mut stats = RunStats::default();
            let mut rows = Vec::new();
            let mut missing = Vec::new();
            for (ai, hit) in cached[di][si].iter().enumerate() {
                match hit {
                    Some(cells) => {
                        stats.cached += 1;
                        rows.push((di, si, ai, cells.clone()));
                        tick();
                    }
                    None => missing.push(ai),
                }
            }
            if missing.is_empty() {
                return Ok((rows, stats));
            }
            let t0 = std::time::Instant::now();
            let (defended, cost) = defend_all(&sources, &specs[di], seed, &m.network)?;
            let defended = examples(defended);
            stats.defend_s += t0.elapsed().as_secs_f64();
            // A defense that changed nothing (none): the adaptive attacker trains on the very
            // traffic the non-adaptive one did, so its models are those.
            let unchanged = defended
                .iter()
                .zip(&ds.traces)
                .all(|(d, t)| d.packets == t.trace.packets);
            for ai in missing {
                let attack = &attacks[ai];
                let mut cells = Vec::with_capacity(2);
                for mode in [Mode::Adaptive, Mode::NonAdaptive] {
                    let o = EvalOptions {
                        models: match mode {
                            Mode::Adaptive if !unchanged => None,
                            _ => naive_models(ai, si),
                        },
                        ..opts(seed, mode)
                    };
                    let r = evaluate_defended(ds, attack, &o, Some(&defended))?;
                    stats.features_s += r.timing.features_s;
                    stats.fit_s += r.timing.fit_s;
                    stats.predict_s += r.timing.predict_s;
                    let scored = if per_capture { &r.capture } else { &r.window };
                    cells.push(Cell {
                        dataset: m.dataset.clone(),
                        defense: defense.clone(),
                        parameters: cost.parameters.clone(),
                        attack: attack.spec(),
                        attacker: match mode {
                            Mode::Adaptive => "adaptive",
                            Mode::NonAdaptive => "non-adaptive",
                        }
                        .into(),
                        seed,
                        accuracy: scored.accuracy,
                        macro_f1: scored.macro_f1,
                        capture_accuracy: r.capture.accuracy,
                        chance: scored.chance_majority,
                        windows: scored.examples,
                        bytes_added_pct: cost.bytes_added_pct,
                        added_bps: cost.added_bps,
                        added_bytes_per_day: cost.added_bytes_per_day,
                        latency_p50_s: cost.p50_s,
                        latency_p95_s: cost.p95_s,
                        latency_p99_s: cost.p99_s,
                        labels: r.labels.clone(),
                        confusion: scored.confusion.clone(),
                    });
                }
                if let Some(c) = cache {
                    c.put(&key(di, ai, seed), &cells)?;
                }
                stats.computed += 1;
                rows.push((di, si, ai, cells));
                tick();
            }
            Ok((rows, stats))
        })
        .collect::<Result<_, _>>()?;
    let mut all = Vec::new();
    for (rows, s) in outs {
        stats.add(&s);
        all.extend(rows);
    }
    all.sort_by_key(|(d, s, a, _)| (*d, *a, *s));
    let t0 = std::time::Instant::now();
    let rates = rate_plot(m, &sources, &source_labels, &specs)?;
    stats.defend_s += t0.elapsed().as_secs_f64();
    Ok(Run {
        cells: all.into_iter().flat_map(|(_, _, _, c)| c).collect(),
        rates,
        stats,
    })
}

/// The rows as CSV: a header, then one line per row with fixed decimals, so the same run gives
/// the same bytes.
pub fn to_csv(cells: &[Cell]) -> String {
    let mut s = String::from(
        "dataset,defense,parameters,attack,attacker,seed,accuracy,macro_f1,capture_accuracy,chance,windows,\
         bytes_added_pct,added_bps,added_bytes_per_day,latency_p50_s,latency_p95_s,latency_p99_s\n",
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
            "{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{},{:.3},{:.3},{:.0},{:.6},{:.6},{:.6}\n",
            q(&c.dataset),
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
