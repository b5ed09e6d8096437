//! `hush attack`: train, evaluate and apply device-identification attacks.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hush_attack::{Attack, EvalOptions, EvalReport, Mode, NAMES, evaluate};
use hush_defense::{DefenseSpec, NetworkModel, defend};
use hush_ml::ModelFile;
use hush_trace::dataset::{Dataset, LoadOptions};
use hush_trace::{ReadOptions, read_trace};
use serde::Serialize;

use crate::BadInput;
use crate::inspect::{apply_device, device_spec_of};

/// `hush attack`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AttackArgs {
    /// Describe every attack, then exit.
    #[arg(long)]
    pub list: bool,
    /// With --list: JSON.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<AttackAction>,
}

/// What to do.
#[derive(Subcommand)]
pub enum AttackAction {
    /// Cross-validate an attack on labelled captures (folds by capture, never split).
    Eval(EvalArgs),
    /// Train an attack on labelled captures and save the model.
    Train(TrainArgs),
    /// Apply a saved model to captures.
    Predict(PredictArgs),
    /// Write an attack's feature matrix as CSV (features, label, capture group, fold), for
    /// other tools such as scikit-learn.
    Features(FeaturesArgs),
    /// Detect user events as peaks in a capture's traffic rate (unsupervised), optionally scored
    /// against labels.
    Peaks(PeaksArgs),
    /// Learn packet-pair signatures of events (PingPong) or find them in a capture.
    Signatures(SignaturesArgs),
    /// Classify labelled events (which one happened?) with a forest over the traffic around
    /// each: trained on single-event captures and/or a capture's first labelled events, scored
    /// on the rest.
    Events(EventsArgs),
}

/// `hush attack events`.
#[derive(Args)]
pub struct EventsArgs {
    /// The capture whose labelled events are classified.
    pub capture: PathBuf,
    /// The device.
    #[arg(long, value_name = "MAC|IP")]
    pub device: Option<String>,
    /// NAME=CAPTURE[,CAPTURE...]: captures that each hold one instance of event NAME, for
    /// training (repeatable).
    #[arg(long, value_name = "NAME=CAPTURES")]
    pub event: Vec<String>,
    /// Also train on the capture's first N labelled events (a split by time: the test events
    /// all come later).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub train_first: usize,
    /// Name unnamed events in turn (PingPong's timestamp files alternate ON and OFF): on,off.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub cycle_labels: Vec<String>,
    /// Score every labelled event: each is classified by a model trained on all the others
    /// (plus the --event captures), and the verdict of each is printed.
    #[arg(long, conflicts_with = "train_first")]
    pub leave_one_out: bool,
    /// The classifier: a forest over flow statistics and exact lengths, or PingPong's
    /// signatures (one per event name).
    #[arg(long, value_enum, default_value = "forest")]
    pub method: MethodArg,
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub defense: DefenseArgs,
    /// Seconds of traffic before each event's start...
    #[arg(long, default_value_t = 1.0)]
    pub before_s: f64,
    /// ...and after its end.
    #[arg(long, default_value_t = 10.0)]
    pub after_s: f64,
    /// Seed of the forest.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// A random forest over flow statistics and a bag of exact packet lengths.
    Forest,
    /// PingPong's packet-pair signatures.
    Signatures,
}

/// Where event labels come from.
#[derive(Args, Clone)]
pub struct LabelArgs {
    /// Event labels: hush's CSV (time,device,event[,end]), a phase list or a PingPong timestamp
    /// file (see --labels-format).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// The labels' layout.
    #[arg(long, value_enum, default_value = "csv")]
    pub labels_format: LabelsFormat,
    /// UTC offset of label times without a zone: +08:00 (NKU), -07:00 (PingPong's files), ...
    #[arg(
        long,
        value_name = "±HH:MM",
        default_value = "+00:00",
        allow_hyphen_values = true
    )]
    pub utc_offset: String,
    /// Leave out labelled events whose name starts with this (e.g. idle for NKU's idle phases).
    #[arg(long, value_name = "PREFIX")]
    pub skip_events: Option<String>,
}

/// A defense applied to captures before an activity attack sees them.
#[derive(Args, Clone)]
pub struct DefenseArgs {
    /// Defend the capture first (a hush defend spec). For signatures, learning from defended
    /// captures is the adaptive attacker; learning from undefended ones and finding in
    /// defended traffic is the naive one.
    #[arg(long, value_name = "SPEC")]
    pub defense: Option<String>,
    /// Seed of the defense.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub defense_seed: u64,
}

impl DefenseArgs {
    fn apply(&self, t: hush_trace::Trace) -> Result<hush_trace::Trace> {
        let Some(s) = &self.defense else {
            return Ok(t);
        };
        let spec: DefenseSpec = s
            .parse()
            .map_err(|e| BadInput(format!("--defense {s:?}: {e}")))?;
        let d = defend(&t, &spec, self.defense_seed, &NetworkModel::default())
            .map_err(|e| BadInput(format!("--defense {s:?} on {}: {e}", t.name)))?;
        Ok(d.to_trace(&t))
    }
}

/// `--labels-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelsFormat {
    /// hush's CSV: time,device,event[,end].
    Csv,
    /// phase start_time end_time [duration] lines (NKU lifecycle).
    Phases,
    /// h:mm:ss AM/PM lines, the date in the file name (PingPong).
    Pingpong,
}

/// `hush attack peaks`.
#[derive(Args)]
pub struct PeaksArgs {
    /// The capture.
    pub capture: PathBuf,
    /// The device: a MAC or IP (default: a MAC file beside the capture, else inferred).
    #[arg(long, value_name = "MAC|IP")]
    pub device: Option<String>,
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub defense: DefenseArgs,
    /// Bin width, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub bin_s: f64,
    /// Peaks clear the moving median by k robust standard deviations...
    #[arg(long, default_value_t = 5.0)]
    pub k: f64,
    /// ... and by at least this many bytes per bin.
    #[arg(long, default_value_t = 2000.0)]
    pub min_excess_bytes: f64,
    /// A detection matches an event within this many seconds.
    #[arg(long, default_value_t = 2.0)]
    pub tolerance_s: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `hush attack signatures`.
#[derive(Args)]
pub struct SignaturesArgs {
    #[command(subcommand)]
    pub action: SignatureAction,
}

/// Learn or find.
#[derive(Subcommand)]
pub enum SignatureAction {
    /// Learn signatures from captures of single events (each capture one instance).
    Learn {
        /// NAME=CAPTURE[,CAPTURE...]: instances of event NAME (repeatable).
        #[arg(long, value_name = "NAME=CAPTURES", required = true)]
        event: Vec<String>,
        /// The device.
        #[arg(long, value_name = "MAC|IP")]
        device: Option<String>,
        /// Where to save the signatures (JSON).
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        defense: DefenseArgs,
    },
    /// Find learnt signatures in a capture; with labels, score the matches.
    Find {
        /// The capture.
        capture: PathBuf,
        /// Signatures from `learn`.
        #[arg(long, short, value_name = "FILE")]
        signatures: PathBuf,
        /// The device.
        #[arg(long, value_name = "MAC|IP")]
        device: Option<String>,
        #[command(flatten)]
        labels: LabelArgs,
        #[command(flatten)]
        defense: DefenseArgs,
        /// A match counts for an event within this many seconds.
        #[arg(long, default_value_t = 15.0)]
        tolerance_s: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hush attack features`.
#[derive(Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Folds for the `fold` column (by capture, as `eval` makes them with the same seed; default
    /// 5, or one per repetition for CIC IoT 2022 interactions).
    #[arg(long)]
    pub folds: Option<usize>,
    /// Output CSV (`-` for standard output).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
}

/// Where labelled data comes from.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// The attack (see --list).
    #[arg(long, short, value_name = "NAME")]
    pub attack: String,
    /// The labelled traffic: a folder of `<label>/<captures>` (IoT Sentinel's layout), a
    /// manifest CSV `path,label,group[,device]` (paths relative to it), with --devices a
    /// whole-home capture, or a folder of CIC IoT 2022 per-packet CSV files (the Interactions
    /// experiment: `<device>/<device><EVENT>_<repetition>.csv`, or one device's folder), read as
    /// one dataset per device: events as labels, repetitions as groups.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    #[command(flatten)]
    pub layout: crate::data::LayoutArgs,
    /// CIC IoT 2022 interactions: only this device's folder (repeatable; default: every
    /// device).
    #[arg(long, value_name = "DEVICE")]
    pub cic_device: Vec<String>,
    /// Merge IoT Sentinel's 31 devices into the paper's 27 device types.
    #[arg(long)]
    pub types: bool,
    /// Seed of folds and of every model (forest bootstraps; network weights, shuffles and
    /// dropout).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Join each label's captures into this many long traces, captures back to back (for
    /// image-cnn windows longer than one capture; folds then split joined traces, so a capture
    /// still never sits on both sides).
    #[arg(long, value_name = "N")]
    pub join: Option<usize>,
    /// With --join: seconds between joined captures.
    #[arg(long, default_value_t = 60.0, value_name = "S")]
    pub join_gap_s: f64,
    /// Neural attacks (m-seq, packet-lstm): train at most this many epochs (default: the
    /// source's, 100, with early stopping on held-out captures).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
}

/// `hush attack eval`.
#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Folds (by capture; default 5, or, for CIC IoT 2022 interactions, one per repetition:
    /// each fold tests one repetition of every event).
    #[arg(long)]
    pub folds: Option<usize>,
    /// Split by time instead: per label, the earliest share of captures trains, the later ones
    /// test (e.g. 0.7).
    #[arg(long, value_name = "FRACTION")]
    pub time_split: Option<f64>,
    /// Defend the traffic first (a hush defend spec, e.g. ilp-random or tamaraw:multiple_of=50).
    #[arg(long, value_name = "SPEC")]
    pub defense: Option<String>,
    /// With --defense: who the attacker is: adaptive (trained on defended traffic), non-adaptive
    /// (trained on undefended), or both.
    #[arg(long, value_enum, default_value = "adaptive")]
    pub attacker: AttackerArg,
    /// Print per-class precision and recall too.
    #[arg(long)]
    pub per_class: bool,
    /// Print the confused pairs too (true label, predicted label, captures or windows), most
    /// confused first.
    #[arg(long)]
    pub confusion: bool,
    /// Print JSON (with confusion matrices).
    #[arg(long)]
    pub json: bool,
}

/// `--attacker`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttackerArg {
    /// Trained on defended traffic.
    Adaptive,
    /// Trained on undefended traffic.
    NonAdaptive,
    /// Both.
    Both,
}

/// `hush attack train`.
#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to save the model.
    #[arg(long, short, value_name = "FILE")]
    pub model: PathBuf,
}

/// `hush attack predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The model (from `hush attack train`).
    #[arg(long, short, value_name = "FILE")]
    pub model: PathBuf,
    /// Captures.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// The device in the captures: a MAC or IP (default: a MAC file beside them, else inferred).
    #[arg(long, value_name = "MAC|IP")]
    pub device: Option<String>,
    /// How many classes to show per capture.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn attack_of(d: &DataArgs) -> Result<Attack> {
    let mut a = Attack::by_name(&d.attack).map_err(|e| BadInput(e.to_string()))?;
    a.set_seed(d.seed);
    if let Some(e) = d.epochs {
        if e == 0 {
            return Err(BadInput("--epochs must be at least 1".into()).into());
        }
        a.set_max_epochs(e);
    }
    Ok(a)
}

/// A bar over a neural attack's epochs showing the losses and validation accuracy (hidden
/// when standard error is not a terminal, like every hush bar).
fn epoch_bar(attack: &Attack, what: &str) -> Result<Option<indicatif::ProgressBar>> {
    let hush_attack::Learner::Neural(p) = &attack.learner else {
        return Ok(None);
    };
    let bar = indicatif::ProgressBar::new(p.train.epochs as u64).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{prefix}} epoch {{pos}}/{{len}} [{{bar:20}}] {{msg}}"
        ))
        .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
        .progress_chars("=> "),
    );
    Ok(Some(bar))
}

fn show_epoch(bar: &indicatif::ProgressBar, e: &hush_ml::neural::EpochReport) {
    bar.set_position(e.epoch as u64);
    bar.set_message(format!(
        "loss {:.3}, val loss {:.3}, val acc {:.1}%, lr {:.1e}, {:.1} s/epoch",
        e.train_loss,
        e.val_loss,
        100.0 * e.val_accuracy,
        e.learning_rate,
        e.seconds
    ));
}

fn load(d: &DataArgs) -> Result<Dataset> {
    if !d.cic_device.is_empty() {
        return Err(BadInput(format!(
            "--cic-device: {} is not a CIC IoT 2022 interactions folder",
            d.data.display()
        ))
        .into());
    }
    load_layout(d)
}

/// Datasets, each with its CIC device's name (`None` for a capture folder).
type Units = Vec<(Option<String>, Dataset)>;

/// The datasets `--data` names: one, or one per device for CIC IoT 2022 interactions (with the
/// device's name). Folds default to one per repetition there.
fn load_units(d: &DataArgs) -> Result<(Units, bool)> {
    if d.layout.devices.is_some() || !hush_trace::cic::looks_like_cic(&d.data) {
        return Ok((vec![(None, load(d)?)], false));
    }
    if d.types || d.join.is_some() {
        return Err(BadInput(
            "--types and --join are for capture folders, not CIC IoT 2022 interactions".into(),
        )
        .into());
    }
    let all = hush_trace::cic::load_interactions(&d.data, ReadOptions::default())
        .map_err(|e| BadInput(e.to_string()))?;
    let known: Vec<String> = all.iter().map(|u| u.device.clone()).collect();
    if let Some(bad) = d.cic_device.iter().find(|n| !known.contains(n)) {
        return Err(BadInput(format!(
            "--cic-device {bad:?}: no such device in {} (devices: {})",
            d.data.display(),
            known.join(", ")
        ))
        .into());
    }
    let mut units = Vec::new();
    for u in all {
        if !d.cic_device.is_empty() && !d.cic_device.contains(&u.device) {
            continue;
        }
        for (path, why) in &u.dataset.report.not_read {
            eprintln!("hush: skipped {path}: {why}");
        }
        if u.dataset.traces.is_empty() {
            return Err(BadInput(format!("{}: no readable interaction", u.device)).into());
        }
        units.push((Some(u.device), u.dataset));
    }
    Ok((units, true))
}

/// The one dataset of `--data` (CIC interactions: the one device `--cic-device` names).
fn load_one(d: &DataArgs) -> Result<Dataset> {
    let (mut units, cic) = load_units(d)?;
    if cic && units.len() != 1 {
        let names: Vec<String> = units.iter().filter_map(|u| u.0.clone()).collect();
        return Err(BadInput(format!(
            "{} holds {} devices' interactions; pick one with --cic-device ({})",
            d.data.display(),
            names.len(),
            names.join(", ")
        ))
        .into());
    }
    Ok(units.remove(0).1)
}

/// Repetitions per event of a CIC device dataset (the fewest any event has).
fn repetitions(ds: &Dataset) -> usize {
    ds.labels
        .iter()
        .map(|l| {
            let mut g: Vec<&str> = ds
                .traces
                .iter()
                .filter(|t| &t.label == l)
                .map(|t| t.group.as_str())
                .collect();
            g.sort_unstable();
            g.dedup();
            g.len()
        })
        .min()
        .unwrap_or(0)
}

/// A folder, a manifest or a whole-home capture, as `--data` and the layout flags name it.
fn load_layout(d: &DataArgs) -> Result<Dataset> {
    crate::data::load_data(
        &d.layout.layout(&d.data)?,
        d.types,
        d.join.map(|n| (n, d.join_gap_s)),
        &LoadOptions::default(),
    )
}

pub fn run(args: &AttackArgs) -> Result<()> {
    match &args.action {
        None if args.list => list(args.json),
        None => Err(BadInput(
            "give eval, train or predict (or --list); see hush attack --help".into(),
        )
        .into()),
        Some(AttackAction::Eval(a)) => eval(a),
        Some(AttackAction::Train(a)) => train(a),
        Some(AttackAction::Predict(a)) => predict(a),
        Some(AttackAction::Features(a)) => features(a),
        Some(AttackAction::Peaks(a)) => peaks(a),
        Some(AttackAction::Signatures(a)) => signatures(a),
        Some(AttackAction::Events(a)) => events(a),
    }
}

/// `+08:00`, `-7`, `-07:30` as seconds east of UTC.
fn utc_offset(s: &str) -> Result<i64> {
    let t = s.trim();
    let bad = || BadInput(format!("--utc-offset {t:?}: expected ±HH:MM, e.g. +08:00"));
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (
            h.parse::<i64>().map_err(|_| bad())?,
            m.parse::<i64>().map_err(|_| bad())?,
        ),
        None => (rest.parse::<i64>().map_err(|_| bad())?, 0),
    };
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad().into());
    }
    Ok(sign * (h * 3600 + m * 60))
}

fn read_labels(l: &LabelArgs) -> Result<Option<Vec<hush_attack::labels::Event>>> {
    let Some(path) = &l.labels else {
        return Ok(None);
    };
    let off = utc_offset(&l.utc_offset)?;
    let mut ev = match l.labels_format {
        LabelsFormat::Csv => hush_attack::labels::read_csv(path, off),
        LabelsFormat::Phases => hush_attack::labels::read_phases(path, off),
        LabelsFormat::Pingpong => hush_attack::labels::read_pingpong(path, off, "event"),
    }
    .map_err(|e| BadInput(e.to_string()))?;
    if let Some(p) = &l.skip_events {
        ev.retain(|e| !e.label.starts_with(p.as_str()));
    }
    Ok(Some(ev))
}

fn read_device_trace(path: &std::path::Path, device: &Option<String>) -> Result<hush_trace::Trace> {
    let spec = device_spec_of(&crate::ReadArgs {
        strict: false,
        device: device.clone(),
    })?;
    let mut t = read_trace(path, ReadOptions::default())?;
    apply_device(&mut t, path, spec.as_ref())?;
    Ok(t)
}

fn iso(t_ns: i64) -> String {
    // Days and seconds since the epoch, as a UTC date-time.
    let secs = t_ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[derive(Serialize)]
struct PeaksOut {
    capture: String,
    detections: Vec<hush_attack::peaks::Peak>,
    score: Option<hush_attack::peaks::PeakScore>,
    warnings: Vec<String>,
}

fn peaks(a: &PeaksArgs) -> Result<()> {
    let cfg = hush_attack::peaks::PeakConfig {
        bin_s: a.bin_s,
        k: a.k,
        min_excess_bytes: a.min_excess_bytes,
        ..hush_attack::peaks::PeakConfig::default()
    };
    if !(cfg.bin_s.is_finite() && cfg.bin_s > 0.0) {
        return Err(BadInput(format!("--bin-s must be positive, not {}", cfg.bin_s)).into());
    }
    let labels = read_labels(&a.labels)?;
    let t = a.defense.apply(read_device_trace(&a.capture, &a.device)?)?;
    let peaks = hush_attack::peaks::detect(&t.packets, &cfg);
    let (t0, t1) = (
        t.packets.first().map_or(0, |p| p.t_ns),
        t.packets.last().map_or(0, |p| p.t_ns),
    );
    let warnings = labels
        .as_deref()
        .map(|l| hush_attack::labels::check(l, t0, t1))
        .unwrap_or_default();
    for w in &warnings {
        eprintln!(
            "hush: warning: {}: {w}",
            a.labels
                .labels
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        );
    }
    let score = labels
        .map(|l| hush_attack::peaks::score(&peaks, &l, a.tolerance_s, (t1 - t0) as f64 * 1e-9));
    let out = PeaksOut {
        capture: a.capture.display().to_string(),
        detections: peaks,
        score,
        warnings,
    };
    let mut o = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut o, &out)?;
        writeln!(o)?;
        return Ok(());
    }
    writeln!(o, "{}: {} detections", out.capture, out.detections.len())?;
    for p in &out.detections {
        writeln!(
            o,
            "  {}  {:>5.0} s  peak {:>8.0} B/bin",
            iso(p.start_ns),
            (p.end_ns - p.start_ns) as f64 * 1e-9,
            p.max_bytes
        )?;
    }
    if let Some(s) = &out.score {
        writeln!(
            o,
            "against {} labelled events: precision {:.2}, recall {:.2}, F1 {:.2}, {:.1} false detections per hour",
            s.events, s.precision, s.recall, s.f1, s.false_per_hour
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct SignatureScore {
    labelled_events: usize,
    events_found: usize,
    stray_matches: usize,
    stray_per_hour: f64,
}

#[derive(Serialize)]
struct Match {
    event: String,
    time: String,
    t_ns: i64,
}

fn signatures(a: &SignaturesArgs) -> Result<()> {
    use hush_attack::signatures::{SignatureConfig, SignatureFile, find, learn, pairs};
    let cfg = SignatureConfig::default();
    match &a.action {
        SignatureAction::Learn {
            event,
            device,
            out,
            defense,
        } => {
            let mut sigs = Vec::new();
            for e in event {
                let (name, files) = e.split_once('=').ok_or_else(|| {
                    BadInput(format!("--event {e:?}: expected NAME=CAPTURE[,CAPTURE...]"))
                })?;
                let mut instances = Vec::new();
                for f in files.split(',') {
                    let t = defense.apply(read_device_trace(std::path::Path::new(f), device)?)?;
                    instances.push(pairs(&t.packets));
                }
                let sig = learn(name, &instances, &cfg).ok_or_else(|| {
                    BadInput(format!(
                        "event {name:?}: no packet pair recurs in its captures"
                    ))
                })?;
                eprintln!(
                    "hush: {name}: {} pairs from {} captures",
                    sig.elements.len(),
                    sig.instances
                );
                sigs.push(sig);
            }
            std::fs::write(out, SignatureFile::new(sigs).to_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            Ok(())
        }
        SignatureAction::Find {
            capture,
            signatures,
            device,
            labels,
            defense,
            tolerance_s,
            json,
        } => {
            let bytes = std::fs::read(signatures)
                .with_context(|| format!("reading {}", signatures.display()))?;
            let file = SignatureFile::from_bytes(&bytes)
                .map_err(|e| BadInput(format!("{}: {e}", signatures.display())))?;
            let labels = read_labels(labels)?;
            let t = defense.apply(read_device_trace(capture, device)?)?;
            let p = pairs(&t.packets);
            let mut matches: Vec<Match> = Vec::new();
            for s in &file.signatures {
                for h in find(s, &p, &cfg) {
                    matches.push(Match {
                        event: s.label.clone(),
                        time: iso(h),
                        t_ns: h,
                    });
                }
            }
            matches.sort_by_key(|m| m.t_ns);
            let (t0, t1) = (
                t.packets.first().map_or(0, |p| p.t_ns),
                t.packets.last().map_or(0, |p| p.t_ns),
            );
            let score = labels.map(|l| {
                for w in hush_attack::labels::check(&l, t0, t1) {
                    eprintln!("hush: warning: {w}");
                }
                let tol = (tolerance_s * 1e9) as i64;
                let found = l
                    .iter()
                    .filter(|e| matches.iter().any(|m| (m.t_ns - e.start_ns).abs() <= tol))
                    .count();
                let stray = matches
                    .iter()
                    .filter(|m| !l.iter().any(|e| (m.t_ns - e.start_ns).abs() <= tol))
                    .count();
                SignatureScore {
                    labelled_events: l.len(),
                    events_found: found,
                    stray_matches: stray,
                    stray_per_hour: stray as f64 / ((t1 - t0) as f64 * 1e-9 / 3600.0).max(1e-9),
                }
            });
            let mut o = std::io::stdout().lock();
            if *json {
                #[derive(Serialize)]
                struct FindOut<'a> {
                    capture: String,
                    matches: &'a [Match],
                    score: Option<SignatureScore>,
                }
                let out = FindOut {
                    capture: capture.display().to_string(),
                    matches: &matches,
                    score,
                };
                serde_json::to_writer_pretty(&mut o, &out)?;
                writeln!(o)?;
                return Ok(());
            }
            for m in &matches {
                writeln!(o, "{}  {}", m.time, m.event)?;
            }
            if let Some(s) = score {
                writeln!(
                    o,
                    "{} of {} labelled events matched; {} matches at no labelled event ({:.1} per hour)",
                    s.events_found, s.labelled_events, s.stray_matches, s.stray_per_hour
                )?;
            }
            Ok(())
        }
    }
}

fn features(a: &FeaturesArgs) -> Result<()> {
    let attack = attack_of(&a.data)?;
    let (mut units, cic) = load_units(&a.data)?;
    if cic && units.len() != 1 {
        // The same error as for train.
        load_one(&a.data)?;
    }
    let ds = units.remove(0).1;
    let k = a.folds.unwrap_or(if cic { repetitions(&ds) } else { 5 });
    let folds =
        hush_trace::split::group_kfold(&ds, k, a.data.seed).map_err(|e| BadInput(e.to_string()))?;
    let mut fold_of = vec![0usize; ds.traces.len()];
    for (f, fold) in folds.iter().enumerate() {
        for &i in &fold.test {
            fold_of[i] = f;
        }
    }
    let (data, origin) = attack.dataset_of(&ds)?;
    let mut w: Box<dyn Write> = if a.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?,
        ))
    };
    let header: Vec<&str> = data
        .feature_names
        .iter()
        .map(String::as_str)
        .chain(["label", "group", "fold"])
        .collect();
    writeln!(w, "{}", header.join(","))?;
    for r in 0..data.x.rows() {
        for v in data.x.row(r) {
            write!(w, "{v},")?;
        }
        writeln!(
            w,
            "{},{},{}",
            data.classes[data.y[r] as usize], data.groups[r], fold_of[origin[r]]
        )?;
    }
    w.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct ListEntry {
    name: &'static str,
    summary: &'static str,
    source: &'static str,
    features: usize,
}

fn list(json: bool) -> Result<()> {
    let entries: Vec<ListEntry> = NAMES
        .iter()
        .filter_map(|n| Attack::by_name(n).ok())
        .map(|a| {
            let (summary, source) = a.describe();
            ListEntry {
                name: a.name(),
                summary,
                source,
                features: a.feature_names().len(),
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(());
    }
    for e in &entries {
        writeln!(
            out,
            "{}\n    {}\n    source: {}\n    features: {}\n",
            e.name, e.summary, e.source, e.features
        )?;
    }
    Ok(())
}

fn eval(a: &EvalArgs) -> Result<()> {
    let attack = attack_of(&a.data)?;
    let spec: Option<DefenseSpec> = match &a.defense {
        Some(s) => {
            let spec: DefenseSpec = s
                .parse()
                .map_err(|e| BadInput(format!("--defense {s:?}: {e}")))?;
            spec.plan()
                .map_err(|e| BadInput(format!("--defense {s:?}: {e}")))?;
            Some(spec)
        }
        None => None,
    };
    let (units, cic) = load_units(&a.data)?;
    let net = NetworkModel::default();
    let defense_fn =
        |t: &hush_trace::Trace, seed: u64| -> std::result::Result<hush_trace::Trace, String> {
            let spec = spec.as_ref().ok_or("no defense")?;
            defend(t, spec, seed, &net)
                .map(|d| d.to_trace(t))
                .map_err(|e| e.to_string())
        };
    let modes: Vec<Option<Mode>> = match (&spec, a.attacker) {
        (None, _) => vec![None],
        (Some(_), AttackerArg::Adaptive) => vec![Some(Mode::Adaptive)],
        (Some(_), AttackerArg::NonAdaptive) => vec![Some(Mode::NonAdaptive)],
        (Some(_), AttackerArg::Both) => vec![Some(Mode::Adaptive), Some(Mode::NonAdaptive)],
    };
    let bar = epoch_bar(&attack, "training")?;
    let mut per_unit = Vec::new();
    for (device, ds) in &units {
        let folds = a.folds.unwrap_or(if cic { repetitions(ds) } else { 5 });
        let on_epoch = |fold: usize, e: &hush_ml::neural::EpochReport| {
            if let Some(b) = &bar {
                b.set_prefix(format!(
                    "{}fold {}/{folds}",
                    device.as_ref().map_or(String::new(), |d| format!("{d} ")),
                    fold + 1
                ));
                show_epoch(b, e);
            }
        };
        let mut reports = Vec::new();
        for m in &modes {
            let opts = EvalOptions {
                folds,
                split: match a.time_split {
                    Some(train_fraction) => hush_attack::Split::ByTime { train_fraction },
                    None => hush_attack::Split::ByCapture,
                },
                seed: a.data.seed,
                defense: m.map(|_| &defense_fn as hush_attack::eval::DefenseFn<'_>),
                mode: m.unwrap_or(Mode::Adaptive),
                on_epoch: bar
                    .as_ref()
                    .map(|_| &on_epoch as hush_attack::eval::EpochFn<'_>),
                models: None,
                score_silent: false,
                max_train_windows: None,
            };
            let r = evaluate(ds, &attack, &opts).map_err(|e| match e {
                hush_attack::AttackError::Data(m) => anyhow::Error::from(BadInput(format!(
                    "{}{}: {m}",
                    a.data.data.display(),
                    device.as_ref().map_or(String::new(), |d| format!(" ({d})"))
                ))),
                other => anyhow::Error::from(other),
            })?;
            reports.push(r);
        }
        per_unit.push((device.clone(), ds, folds, reports));
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        if cic {
            #[derive(Serialize)]
            struct DeviceReports<'a> {
                device: &'a str,
                reports: &'a [EvalReport],
            }
            let v: Vec<DeviceReports<'_>> = per_unit
                .iter()
                .map(|(d, _, _, r)| DeviceReports {
                    device: d.as_deref().unwrap_or(""),
                    reports: r,
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &v)?;
        } else {
            serde_json::to_writer_pretty(&mut out, &per_unit[0].3)?;
        }
        writeln!(out)?;
        return Ok(());
    }
    for (device, ds, folds, reports) in &per_unit {
        let groups: std::collections::HashSet<&str> =
            ds.traces.iter().map(|t| t.group.as_str()).collect();
        writeln!(
            out,
            "{}{}: {} traces in {} groups, {} labels, {}, seed {}{}",
            a.data.data.display(),
            device.as_ref().map_or(String::new(), |d| format!(" ({d})")),
            ds.traces.len(),
            groups.len(),
            ds.labels.len(),
            match a.time_split {
                Some(f) => format!("split by time (earliest {:.0}% train)", 100.0 * f),
                None if cic => format!("{folds} folds by repetition"),
                None => format!("{folds} folds by group"),
            },
            a.data.seed,
            a.defense
                .as_ref()
                .map_or(String::new(), |d| format!(", defense {d}"))
        )?;
        writeln!(
            out,
            "{:<13} {:<13} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "attack", "attacker", "windows", "accuracy", "macro-F1", "capture", "chance"
        )?;
        for r in reports {
            print_report(&mut out, r)?;
        }
        if a.confusion {
            for r in reports {
                print_confusion(&mut out, r)?;
            }
        }
        if a.per_class {
            for r in reports {
                writeln!(
                    out,
                    "\n{:<24} {:>9} {:>9} {:>9} {:>8}",
                    "label", "precision", "recall", "F1", "support"
                )?;
                for c in &r.window.per_class {
                    writeln!(
                        out,
                        "{:<24} {:>8.1}% {:>8.1}% {:>8.1}% {:>8}",
                        c.label,
                        100.0 * c.precision,
                        100.0 * c.recall,
                        100.0 * c.f1,
                        c.support
                    )?;
                }
            }
        }
        if cic {
            writeln!(out)?;
        }
    }
    if cic {
        print_device_summary(&mut out, &per_unit)?;
    }
    Ok(())
}

/// Per device: classes, captures, capture accuracy of each attacker; then the mean over devices.
fn print_device_summary(
    out: &mut impl Write,
    units: &[(Option<String>, &Dataset, usize, Vec<EvalReport>)],
) -> Result<()> {
    writeln!(
        out,
        "{:<18} {:>7} {:>8} {:>9} {:>9} {:>9}",
        "device", "events", "captures", "accuracy", "macro-F1", "chance"
    )?;
    let modes = units.first().map_or(0, |u| u.3.len());
    let mut sums = vec![0f64; modes];
    for (device, ds, _, reports) in units {
        for (k, r) in reports.iter().enumerate() {
            writeln!(
                out,
                "{:<18} {:>7} {:>8} {:>8.1}% {:>8.1}% {:>8.1}%",
                device.as_deref().unwrap_or(""),
                ds.labels.len(),
                ds.traces.len(),
                100.0 * r.capture.accuracy,
                100.0 * r.capture.macro_f1,
                100.0 * r.capture.chance_majority
            )?;
            sums[k] += r.capture.accuracy;
        }
    }
    for s in sums {
        writeln!(
            out,
            "mean over {} devices: {:.1}% (per capture)",
            units.len(),
            100.0 * s / units.len().max(1) as f64
        )?;
    }
    Ok(())
}

/// Off-diagonal cells of the capture confusion matrix, most confused first.
fn print_confusion(out: &mut impl Write, r: &EvalReport) -> Result<()> {
    let m = &r.capture;
    let mut cells: Vec<(u64, usize, usize)> = Vec::new();
    for (t, row) in m.confusion.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            if t != p && n > 0 {
                cells.push((n, t, p));
            }
        }
    }
    cells.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    writeln!(
        out,
        "\n{} confused captures ({} of {}):",
        r.attack,
        cells.iter().map(|c| c.0).sum::<u64>(),
        m.examples
    )?;
    for (n, t, p) in cells {
        let support: u64 = m.confusion[t].iter().sum();
        writeln!(
            out,
            "  {:<24} -> {:<24} {n} of {support}",
            r.labels[t], r.labels[p]
        )?;
    }
    Ok(())
}

fn print_report(out: &mut impl Write, r: &EvalReport) -> Result<()> {
    let who = match r.defended {
        None => "undefended",
        Some(Mode::Adaptive) => "adaptive",
        Some(Mode::NonAdaptive) => "non-adaptive",
    };
    writeln!(
        out,
        "{:<13} {:<13} {:>8} {:>8.1}% {:>8.1}% {:>8.1}% {:>8.1}%",
        r.attack,
        who,
        r.window.examples,
        100.0 * r.window.accuracy,
        100.0 * r.window.macro_f1,
        100.0 * r.capture.accuracy,
        100.0 * r.window.chance_majority
    )?;
    Ok(())
}

fn train(a: &TrainArgs) -> Result<()> {
    let attack = attack_of(&a.data)?;
    let ds = load_one(&a.data)?;
    let (data, _) = attack.dataset_of(&ds)?;
    if data.y.is_empty() {
        return Err(BadInput(format!(
            "{}: no feature rows: {}",
            a.data.data.display(),
            attack.no_rows_hint()
        ))
        .into());
    }
    let bar = epoch_bar(&attack, "training")?;
    let model = attack.fit_with_progress(
        &data,
        &format!(
            "{} ({} captures, seed {}, hush {})",
            a.data.data.display(),
            ds.traces.len(),
            a.data.seed,
            env!("CARGO_PKG_VERSION")
        ),
        &mut |e| {
            if let Some(b) = &bar {
                show_epoch(b, e);
            }
        },
    )?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    model
        .save(&a.model)
        .with_context(|| format!("saving {}", a.model.display()))?;
    eprintln!(
        "hush: {} model of {} labels from {} rows saved to {}",
        attack.name(),
        ds.labels.len(),
        data.x.rows(),
        a.model.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct Prediction {
    capture: String,
    windows: usize,
    top: Vec<(String, f32)>,
}

fn predict(a: &PredictArgs) -> Result<()> {
    let model = ModelFile::load(&a.model, None).map_err(|e| BadInput(e.to_string()))?;
    let attack = Attack::by_name(&model.header.feature_set).map_err(|e| BadInput(e.to_string()))?;
    let spec = device_spec_of(&crate::ReadArgs {
        strict: false,
        device: a.device.clone(),
    })?;
    let mut out = Vec::new();
    for path in &a.captures {
        let mut t = read_trace(path, ReadOptions::default())?;
        apply_device(&mut t, path, spec.as_ref())?;
        let probs = attack
            .predict(&model, &t)
            .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        let mut mean = vec![0f32; model.header.classes.len()];
        for p in &probs {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / probs.len() as f32;
            }
        }
        let mut ranked: Vec<(String, f32)> =
            model.header.classes.iter().cloned().zip(mean).collect();
        ranked.sort_by(|x, y| y.1.total_cmp(&x.1));
        ranked.truncate(a.top);
        out.push(Prediction {
            capture: path.display().to_string(),
            windows: probs.len(),
            top: ranked,
        });
    }
    let mut o = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut o, &out)?;
        writeln!(o)?;
        return Ok(());
    }
    for p in &out {
        let top: Vec<String> = p
            .top
            .iter()
            .map(|(l, v)| format!("{l} {:.0}%", 100.0 * v))
            .collect();
        writeln!(
            o,
            "{}: {}",
            p.capture,
            if p.windows == 0 {
                "no usable traffic".into()
            } else {
                top.join(", ")
            }
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct LooOut<'a> {
    capture: String,
    method: &'static str,
    events: &'a [hush_attack::events::Verdict],
    metrics: hush_attack::Metrics,
}

/// `hush attack events --leave-one-out`.
fn events_loo(
    a: &EventsArgs,
    t: &hush_trace::Trace,
    labelled: &[hush_attack::labels::Event],
    captures: &[(String, hush_trace::Trace)],
    w: &hush_attack::events::EventWindow,
) -> Result<()> {
    use hush_attack::events::{Method, leave_one_out, verdict_metrics};
    let method = match a.method {
        MethodArg::Forest => Method::Forest,
        MethodArg::Signatures => Method::Signatures,
    };
    let params = hush_ml::ForestParams {
        seed: a.seed,
        ..hush_ml::ForestParams::default()
    };
    let extra: Vec<(String, &hush_trace::Trace)> =
        captures.iter().map(|(l, c)| (l.clone(), c)).collect();
    let verdicts = leave_one_out(t, labelled, &extra, w, method, &params)
        .map_err(|e| BadInput(e.to_string()))?;
    let out = LooOut {
        capture: a.capture.display().to_string(),
        method: match method {
            Method::Forest => "forest",
            Method::Signatures => "signatures",
        },
        events: &verdicts,
        metrics: verdict_metrics(&verdicts),
    };
    let mut o = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut o, &out)?;
        writeln!(o)?;
        return Ok(());
    }
    writeln!(
        o,
        "{}: {} labelled events, each scored by a {} model trained on the other {} and {} \
         single-event captures",
        out.capture,
        verdicts.len(),
        out.method,
        verdicts.len().saturating_sub(1),
        captures.len()
    )?;
    writeln!(
        o,
        "{:>3}  {:<20}  {:<8} {:<8} {:>8}  found",
        "#", "time", "event", "said", "evidence"
    )?;
    for v in &verdicts {
        writeln!(
            o,
            "{:>3}  {:<20}  {:<8} {:<8} {:>8}  {}",
            v.index + 1,
            iso(v.start_ns),
            v.label,
            v.predicted.as_deref().unwrap_or("-"),
            v.evidence,
            if out.method == "signatures" {
                if v.matched.is_empty() {
                    "no signature".to_string()
                } else {
                    v.matched.join(", ")
                }
            } else {
                String::new()
            }
        )?;
    }
    let m = &out.metrics;
    writeln!(
        o,
        "accuracy {:.1}% ({} of {}), macro-F1 {:.1}% (chance {:.1}%)",
        100.0 * m.accuracy,
        (m.accuracy * m.examples as f64).round(),
        m.examples,
        100.0 * m.macro_f1,
        100.0 * m.chance_majority
    )?;
    Ok(())
}

#[derive(Serialize)]
struct EventsOut {
    capture: String,
    train_examples: usize,
    test_events: usize,
    metrics: hush_attack::Metrics,
}

fn events(a: &EventsArgs) -> Result<()> {
    use hush_attack::events::{EventClassifier, EventWindow, capture_example, examples};
    let w = EventWindow {
        before_s: a.before_s,
        after_s: a.after_s,
    };
    if !(w.before_s >= 0.0 && w.after_s >= 0.0 && w.before_s.is_finite() && w.after_s.is_finite()) {
        return Err(BadInput("--before-s and --after-s must be 0 or more".into()).into());
    }
    let Some(mut labelled) = read_labels(&a.labels)? else {
        return Err(BadInput("--labels FILE is needed: the events to classify".into()).into());
    };
    labelled.sort_by_key(|e| e.start_ns);
    if !a.cycle_labels.is_empty() {
        for (i, e) in labelled.iter_mut().enumerate() {
            e.label = a.cycle_labels[i % a.cycle_labels.len()].clone();
        }
    }
    let t = a.defense.apply(read_device_trace(&a.capture, &a.device)?)?;
    let (t0, t1) = (
        t.packets.first().map_or(0, |p| p.t_ns),
        t.packets.last().map_or(0, |p| p.t_ns),
    );
    for warning in hush_attack::labels::check(&labelled, t0, t1) {
        eprintln!("hush: warning: {warning}");
    }
    let mut train = Vec::new();
    let mut captures: Vec<(String, hush_trace::Trace)> = Vec::new();
    for e in &a.event {
        let (name, files) = e.split_once('=').ok_or_else(|| {
            BadInput(format!("--event {e:?}: expected NAME=CAPTURE[,CAPTURE...]"))
        })?;
        for f in files.split(',') {
            let c = a
                .defense
                .apply(read_device_trace(std::path::Path::new(f), &a.device)?)?;
            train.push(capture_example(&c, name));
            captures.push((name.to_string(), c));
        }
    }
    if a.leave_one_out {
        return events_loo(a, &t, &labelled, &captures, &w);
    }
    if a.method != MethodArg::Forest {
        return Err(BadInput(
            "--method signatures scores with --leave-one-out (or use hush attack signatures)"
                .into(),
        )
        .into());
    }
    if a.train_first >= labelled.len() {
        return Err(BadInput(format!(
            "--train-first {} leaves none of the {} labelled events to test",
            a.train_first,
            labelled.len()
        ))
        .into());
    }
    let (head, rest) = labelled.split_at(a.train_first);
    train.extend(examples(&t, head, &w));
    if train.is_empty() {
        return Err(BadInput(
            "nothing to train on: give --event NAME=CAPTURE or --train-first N".into(),
        )
        .into());
    }
    let params = hush_ml::ForestParams {
        seed: a.seed,
        ..hush_ml::ForestParams::default()
    };
    let model = EventClassifier::fit(&train, &params).map_err(|e| BadInput(e.to_string()))?;
    let test = examples(&t, rest, &w);
    let metrics = model.score(&test)?;
    let out = EventsOut {
        capture: a.capture.display().to_string(),
        train_examples: train.len(),
        test_events: test.len(),
        metrics,
    };
    let mut o = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut o, &out)?;
        writeln!(o)?;
        return Ok(());
    }
    let m = &out.metrics;
    writeln!(
        o,
        "{}: {} training examples, {} test events: accuracy {:.1}%, macro-F1 {:.1}% (chance {:.1}%)",
        out.capture,
        out.train_examples,
        out.test_events,
        100.0 * m.accuracy,
        100.0 * m.macro_f1,
        100.0 * m.chance_majority
    )?;
    writeln!(
        o,
        "{:<16} {:>9} {:>9} {:>8}",
        "event", "precision", "recall", "support"
    )?;
    for c in &m.per_class {
        writeln!(
            o,
            "{:<16} {:>8.1}% {:>8.1}% {:>8}",
            c.label,
            100.0 * c.precision,
            100.0 * c.recall,
            c.support
        )?;
    }
    Ok(())
}
