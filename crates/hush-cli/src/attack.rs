//! `hush attack`: train, evaluate and apply device-identification attacks.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hush_attack::{Attack, EvalOptions, EvalReport, Mode, NAMES, evaluate};
use hush_defense::{DefenseSpec, NetworkModel, defend};
use hush_ml::ModelFile;
use hush_trace::dataset::{Dataset, IOT_SENTINEL_TYPES, LoadOptions, load_dir};
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
}

/// `hush attack features`.
#[derive(Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Folds for the `fold` column (by capture, as `eval` makes them with the same seed).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
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
    /// A folder of `<label>/<captures>` (IoT Sentinel's layout).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Merge IoT Sentinel's 31 devices into the paper's 27 device types.
    #[arg(long)]
    pub types: bool,
    /// Seed of folds and forests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `hush attack eval`.
#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
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

fn attack_of(name: &str) -> Result<Attack> {
    Attack::by_name(name).map_err(|e| BadInput(e.to_string()).into())
}

fn load(d: &DataArgs) -> Result<Dataset> {
    let bar = crate::progress_bar("reading captures")?;
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let mut ds = load_dir(
        &d.data,
        &LoadOptions {
            progress: Some(&progress),
            ..LoadOptions::default()
        },
    )?;
    bar.finish_and_clear();
    for (path, why) in &ds.report.not_read {
        eprintln!("hush: skipped {path}: {why}");
    }
    if d.types {
        ds.relabel(IOT_SENTINEL_TYPES);
    }
    if ds.traces.is_empty() {
        return Err(BadInput(format!("{}: no captures", d.data.display())).into());
    }
    Ok(ds)
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
    }
}

fn features(a: &FeaturesArgs) -> Result<()> {
    let attack = attack_of(&a.data.attack)?;
    let ds = load(&a.data)?;
    let folds = hush_trace::split::group_kfold(&ds, a.folds, a.data.seed)
        .map_err(|e| BadInput(e.to_string()))?;
    let mut fold_of = vec![0usize; ds.traces.len()];
    for (f, fold) in folds.iter().enumerate() {
        for &i in &fold.test {
            fold_of[i] = f;
        }
    }
    let items: Vec<(&hush_trace::Trace, u32, u32)> = ds
        .traces
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                &t.trace,
                ds.labels.iter().position(|l| *l == t.label).unwrap_or(0) as u32,
                i as u32,
            )
        })
        .collect();
    let (data, origin) = attack.dataset(&items, &ds.labels)?;
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
    let attack = attack_of(&a.data.attack)?;
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
    let ds = load(&a.data)?;
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
    let mut reports = Vec::new();
    for m in modes {
        let opts = EvalOptions {
            folds: a.folds,
            seed: a.data.seed,
            defense: m.map(|_| &defense_fn as hush_attack::eval::DefenseFn<'_>),
            mode: m.unwrap_or(Mode::Adaptive),
        };
        let r = evaluate(&ds, &attack, &opts).map_err(|e| match e {
            hush_attack::AttackError::Data(m) => {
                anyhow::Error::from(BadInput(format!("{}: {m}", a.data.data.display())))
            }
            other => anyhow::Error::from(other),
        })?;
        reports.push(r);
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: {} captures, {} labels, {} folds by capture, seed {}{}",
        a.data.data.display(),
        ds.traces.len(),
        ds.labels.len(),
        a.folds,
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
    for r in &reports {
        print_report(&mut out, r)?;
    }
    if a.per_class {
        for r in &reports {
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
    let attack = attack_of(&a.data.attack)?;
    let ds = load(&a.data)?;
    let mut attack = attack;
    attack.forest.seed = a.data.seed;
    let items: Vec<(&hush_trace::Trace, u32, u32)> = ds
        .traces
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                &t.trace,
                ds.labels.iter().position(|l| *l == t.label).unwrap_or(0) as u32,
                i as u32,
            )
        })
        .collect();
    let (data, _) = attack.dataset(&items, &ds.labels)?;
    let model = attack.fit(
        &data,
        &format!(
            "{} ({} captures, seed {}, hush {})",
            a.data.data.display(),
            ds.traces.len(),
            a.data.seed,
            env!("CARGO_PKG_VERSION")
        ),
    )?;
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
    let attack = attack_of(&model.header.feature_set)?;
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
