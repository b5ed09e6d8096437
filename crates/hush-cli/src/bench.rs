//! `hush eval`: the bench. Every defense × attack × seed over one or more datasets, adaptive
//! and non-adaptive attackers, privacy next to cost, cached so a killed run resumes.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use hush_eval::activity::ActivitySpec;
use hush_eval::experiment::{CapturesEntry, DatasetEntry, Experiment, expand_sweep};
use hush_eval::matrix::{
    Cache, Cell, Input, Matrix, Observation, Results, RunOptions, RunStats, Shard, run_with,
    to_csv, write_atomic,
};

use crate::BadInput;

/// The catalog defenses the bench runs by default: the frontier.
const DEFAULT_DEFENSES: &str =
    "none,pad-mtu,ilp-constant,ilp-random,buflo,tamaraw,front,stp,ipet-constant,ipet-random";
/// The device attacks it runs by default (the forests; add m-seq, packet-lstm for the networks).
const DEFAULT_ATTACKS: &str = "iot-sentinel,flow-stats,m-agg";

/// `hush eval`.
#[derive(Args)]
pub struct BenchArgs {
    /// An experiment file (TOML: datasets, defenses with sweeps, attacks, seeds; see
    /// --help). Flags given beside it take precedence.
    #[arg(value_name = "EXPERIMENT.toml")]
    pub experiment: Option<PathBuf>,
    /// A dataset (repeatable): a folder of `<label>/<captures>` (IoT Sentinel's layout) or a
    /// manifest CSV `path,label,group[,device]` for device identification; with --devices a
    /// whole-home capture (--devices applies to every --data); or the events folder (PingPong,
    /// NKU) for activity inference.
    #[arg(long, value_name = "PATH")]
    pub data: Vec<PathBuf>,
    #[command(flatten)]
    pub layout: crate::data::LayoutArgs,
    /// Merge IoT Sentinel's 31 devices into the paper's 27 types.
    #[arg(long)]
    pub types: bool,
    /// Defense specs, comma-separated (see hush defend --list); `|` sweeps a parameter:
    /// tamaraw:multiple_of=50|100|200. [default: the catalog's frontier]
    #[arg(long, value_name = "SPECS", value_delimiter = ',')]
    pub defenses: Option<Vec<String>>,
    /// Attacks, comma-separated (see hush attack --list). [default: iot-sentinel,flow-stats,m-agg]
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub attacks: Option<Vec<String>>,
    /// Seeds, comma-separated. [default: 0]
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Folds by capture. [default: 5]
    #[arg(long)]
    pub folds: Option<usize>,
    /// Cap on neural attacks' epochs.
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// At most N training windows per capture, evenly spaced (test windows are never capped):
    /// bounds the packet-window attacks' training time under defenses that multiply packets.
    #[arg(long, value_name = "N")]
    pub max_train_windows: Option<usize>,
    /// The trace (file path as read, or a label) whose rate the report plots per defense.
    #[arg(long, value_name = "NAME")]
    pub rate_trace: Option<String>,
    /// Where results.csv, results.json, report.html, timing.json and the cell cache go.
    /// [default: hush-eval]
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Recompute every cell (the cache is still written).
    #[arg(long)]
    pub no_cache: bool,
    /// Print the results as JSON instead of the table (results.json's content: its `cells`
    /// are the rows).
    #[arg(long)]
    pub json: bool,
    /// What the eavesdropper observes, comma-separated: `session` (one capture, start to end)
    /// and/or `window` (fixed windows of an always-on link, chosen without looking at the
    /// traffic; always-on defenses run before and after each). [default: session,window]
    #[arg(long, value_name = "VIEWS", value_delimiter = ',')]
    pub observation: Option<Vec<String>>,
    /// The window view's window, seconds. [default: per dataset, its longest capture plus 10%
    /// (at least 10 s), rounded up; every capture then fits in one window]
    #[arg(long, value_name = "S")]
    pub window_s: Option<f64>,
    /// Compute only share I of N of the matrix's jobs into OUT/cache, for a batch scheduler
    /// (`--shard $SLURM_ARRAY_TASK_ID/N`, or `$((JOB_COMPLETION_INDEX+1))/N` in a Kubernetes
    /// indexed Job); then the same command without --shard assembles the results from the
    /// cache (computing whatever is still missing).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Also write the rows as OUT/results.parquet.
    #[arg(long)]
    pub parquet: bool,
    /// Also write every example's feature rows as Parquet under OUT/features/
    /// (<dataset>/<observation>/<attack>/<defense>-seed<N>.parquet). Recomputes every cell.
    #[arg(long)]
    pub features_parquet: bool,
}

/// `hush demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Seed of the simulated home, the defenses, the folds and the models.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sessions per device (each a separate "capture": folds never split one). Folds are
    /// min(N, 5); a multiple of 5 keeps every fold balanced across devices.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub sessions: usize,
    /// Length of each session, seconds.
    #[arg(long, default_value_t = 1800.0, value_name = "S")]
    pub duration_s: f64,
    /// Where results.csv, results.json, report.html, timing.json and the cell cache go.
    #[arg(long, short, value_name = "DIR", default_value = "hush-demo")]
    pub out: PathBuf,
    /// Print the results as JSON instead of the table (results.json's content: its `cells`
    /// are the rows).
    #[arg(long)]
    pub json: bool,
}

/// The demo: the built-in smart home through the catalog and the attacks.
pub fn run_demo(a: &DemoArgs) -> Result<()> {
    let cfg = hush_eval::home::HomeConfig {
        duration_s: a.duration_s,
        sessions_per_device: a.sessions,
        seed: a.seed,
    };
    let started = std::time::Instant::now();
    let ds = hush_eval::home::simulate_home(&cfg).map_err(|e| BadInput(e.to_string()))?;
    eprintln!(
        "hush: a simulated home of {} devices ({}), {} sessions of {:.0} s each, seed {}",
        ds.labels.len(),
        hush_eval::home::device_names().join(", "),
        a.sessions,
        a.duration_s,
        a.seed
    );
    let m = Matrix {
        dataset: "simulated-home".into(),
        defenses: DEFAULT_DEFENSES.split(',').map(String::from).collect(),
        attacks: ["flow-stats", "m-agg"].map(String::from).to_vec(),
        seeds: vec![a.seed],
        folds: a.sessions.clamp(2, 5),
        max_epochs: None,
        network: hush_defense::NetworkModel::default(),
        // Datta et al.'s Figure 2: the sleep monitor.
        rate_trace: Some("sleep-monitor".into()),
        ..Matrix::default()
    };
    let load_s = started.elapsed().as_secs_f64();
    run_matrices(
        vec![(Loaded::Captures(ds), m)],
        load_s,
        &a.out,
        &Outputs {
            json: a.json,
            ..Outputs::default()
        },
    )
}

/// `hush report`.
#[derive(Args)]
pub struct ReportArgs {
    /// results.json from `hush eval` or `hush demo`.
    pub results: PathBuf,
    /// Where to write the HTML (default: report.html beside the results).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Rebuild the HTML report from a results file.
pub fn run_report(a: &ReportArgs) -> Result<()> {
    let bytes =
        std::fs::read(&a.results).map_err(|e| BadInput(format!("{}: {e}", a.results.display())))?;
    let results = Results::from_json(&bytes).map_err(|e| {
        BadInput(format!(
            "{}: not a hush results file ({e})",
            a.results.display()
        ))
    })?;
    let cells = &results.cells;
    if cells.is_empty() {
        return Err(BadInput(format!("{}: no rows", a.results.display())).into());
    }
    let mut names: Vec<&str> = Vec::new();
    for c in cells {
        if !names.contains(&c.dataset.as_str()) {
            names.push(&c.dataset);
        }
    }
    let title = format!("hush: {}", names.join(", "));
    let html = hush_eval::report::render(&results, &title)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.results.with_file_name("report.html"));
    write_atomic(&out, html.as_bytes())?;
    eprintln!("hush: {} rows; report in {}", cells.len(), out.display());
    Ok(())
}

/// A dataset in memory.
enum Loaded {
    Captures(hush_trace::dataset::Dataset),
    Activity(hush_eval::activity::Activity),
}

/// A dataset as named on the command line or in the experiment file, before loading.
enum Source {
    Captures(CapturesEntry, hush_trace::dataset::Layout),
    Activity(ActivitySpec),
}

fn folder_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A folder holding the built-in activity layouts gives those; anything else is labelled traces
/// in one of the layouts `--data` reads.
fn sources_of_folder(c: CapturesEntry) -> Result<Vec<Source>> {
    let l = c.layout()?;
    if let hush_trace::dataset::Layout::Folder(dir) = &l {
        let found = hush_eval::activity::discover(dir);
        if !found.is_empty() {
            return Ok(found.into_iter().map(Source::Activity).collect());
        }
    }
    Ok(vec![Source::Captures(c, l)])
}

pub fn run_bench(a: &BenchArgs) -> Result<()> {
    let exp = match &a.experiment {
        Some(p) => Experiment::read(p).map_err(|e| BadInput(e.to_string()))?,
        None => Experiment::default(),
    };
    let mut sources = Vec::new();
    let entries: Vec<DatasetEntry> = if a.data.is_empty() {
        if a.layout.devices.is_some() {
            return Err(BadInput(
                "--devices goes with --data; in an experiment file, give devices = \"...\" in the [[dataset]]"
                    .into(),
            )
            .into());
        }
        exp.datasets.clone()
    } else {
        a.data
            .iter()
            .map(|p| {
                DatasetEntry::Captures(CapturesEntry {
                    devices: a.layout.devices.clone(),
                    home_window_s: Some(a.layout.home_window_s),
                    home_block_s: Some(a.layout.home_block_s),
                    types: a.types,
                    rate_trace: a.rate_trace.clone(),
                    ..CapturesEntry::new(p.clone())
                })
            })
            .collect()
    };
    for e in entries {
        match e {
            DatasetEntry::Captures(c) => sources.extend(sources_of_folder(c)?),
            DatasetEntry::Activity(s) => sources.push(Source::Activity(s)),
        }
    }
    if sources.is_empty() {
        return Err(BadInput(
            "no dataset: give --data PATH, or an experiment file with a [[dataset]]".into(),
        )
        .into());
    }
    let bad = |e: hush_eval::EvalError| BadInput(e.to_string());
    let defenses = match &a.defenses {
        Some(list) => {
            let mut out = Vec::new();
            for d in list {
                out.extend(expand_sweep(d).map_err(bad)?);
            }
            out
        }
        None => {
            let from_file = exp.defense_settings().map_err(bad)?;
            if from_file.is_empty() {
                DEFAULT_DEFENSES.split(',').map(String::from).collect()
            } else {
                from_file
            }
        }
    };
    let or_default = |v: &Option<Vec<String>>, file: &[String], default: &str| -> Vec<String> {
        match v {
            Some(v) => v.clone(),
            None if !file.is_empty() => file.to_vec(),
            None => default.split(',').map(String::from).collect(),
        }
    };
    let attacks = or_default(&a.attacks, &exp.attacks, DEFAULT_ATTACKS);
    let seeds = match &a.seeds {
        Some(s) => s.clone(),
        None if !exp.seeds.is_empty() => exp.seeds.clone(),
        None => vec![0],
    };
    let observations = match &a.observation {
        Some(list) => list.clone(),
        None => exp.observations.clone(),
    };
    let observations = if observations.is_empty() {
        Matrix::default().observations
    } else {
        observations
            .iter()
            .map(|o| o.parse())
            .collect::<Result<Vec<Observation>, _>>()
            .map_err(bad)?
    };
    let shard = a
        .shard
        .as_deref()
        .map(str::parse::<Shard>)
        .transpose()
        .map_err(bad)?;
    let template = Matrix {
        dataset: String::new(),
        defenses,
        attacks,
        seeds,
        folds: a.folds.or(exp.folds).unwrap_or(5),
        max_epochs: a.epochs.or(exp.epochs),
        network: exp.network.clone().unwrap_or_default(),
        rate_trace: None,
        max_train_windows: a.max_train_windows.or(exp.max_train_windows),
        observations,
        window_s: a.window_s.or(exp.window_s),
    };
    template.validate().map_err(bad)?;
    let out = a
        .out
        .clone()
        .or_else(|| exp.out.clone())
        .unwrap_or_else(|| PathBuf::from("hush-eval"));
    let started = std::time::Instant::now();
    let mut runs = Vec::new();
    for s in sources {
        let mut folds = None;
        let mut window_s = None;
        let (loaded, name, rate_trace) = match s {
            Source::Captures(c, layout) => {
                let opts = hush_trace::dataset::LoadOptions::default();
                let mut ds = crate::data::load_data(&layout, c.types, None, &opts)?;
                for t in &mut ds.traces {
                    // Results name captures by file, relative to the dataset folder.
                    if let Some(rel) = layout
                        .root()
                        .and_then(|root| Path::new(&t.trace.name).strip_prefix(root).ok())
                    {
                        t.trace.name = rel.display().to_string();
                    }
                }
                let name = c.name.clone().unwrap_or_else(|| folder_name(&c.path));
                window_s = c.window_s;
                (Loaded::Captures(ds), name, c.rate_trace.clone())
            }
            Source::Activity(spec) => {
                let act = spec.load().map_err(bad)?;
                eprintln!(
                    "hush: {}: {} windows of {:.0} s ({}){}",
                    act.name,
                    act.windows.len(),
                    spec.before_s + spec.after_s,
                    act.labels
                        .iter()
                        .map(|l| format!(
                            "{} {l}",
                            act.windows.iter().filter(|w| &w.label == l).count()
                        ))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if act.left_out > 0 {
                        format!(
                            "; {} labelled events without a class left out",
                            act.left_out
                        )
                    } else {
                        String::new()
                    }
                );
                let name = act.name.clone();
                let fewest = act
                    .labels
                    .iter()
                    .map(|l| act.windows.iter().filter(|w| &w.label == l).count())
                    .min()
                    .unwrap_or(0);
                if fewest < 2 {
                    return Err(BadInput(format!(
                        "{name}: a class with {fewest} window(s): nothing to cross-validate"
                    ))
                    .into());
                }
                if fewest < template.folds {
                    eprintln!(
                        "hush: {name}: {fewest} folds (its rarest class has {fewest} windows)"
                    );
                    folds = Some(fewest);
                }
                (Loaded::Activity(act), name, None)
            }
        };
        let m = Matrix {
            dataset: name,
            // The flag beside an experiment file wins, as every other flag does.
            rate_trace: a.rate_trace.clone().or(rate_trace),
            folds: folds.unwrap_or(template.folds),
            // The flag beats the dataset's own, which beats the file's.
            window_s: a.window_s.or(window_s).or(template.window_s),
            ..template.clone()
        };
        m.validate().map_err(bad)?;
        runs.push((loaded, m));
    }
    let load_s = started.elapsed().as_secs_f64();
    run_matrices(
        runs,
        load_s,
        &out,
        &Outputs {
            no_cache: a.no_cache,
            json: a.json,
            shard,
            parquet: a.parquet,
            features_parquet: a.features_parquet,
        },
    )
}

/// What a run writes besides results.csv, results.json, report.html and timing.json.
#[derive(Default)]
struct Outputs {
    no_cache: bool,
    json: bool,
    shard: Option<Shard>,
    parquet: bool,
    features_parquet: bool,
}

/// Where a run's time went, as timing.json holds it (kept apart from the results, which are
/// the same bytes run to run).
#[derive(serde::Serialize)]
struct Timing {
    wall_s: f64,
    load_s: f64,
    report_s: f64,
    #[serde(flatten)]
    stats: RunStats,
}

fn run_matrices(
    runs: Vec<(Loaded, Matrix)>,
    load_s: f64,
    out_dir: &Path,
    outputs: &Outputs,
) -> Result<()> {
    let started = std::time::Instant::now();
    let cache = Cache {
        dir: out_dir.join("cache"),
        read: !outputs.no_cache,
    };
    let features_dir = out_dir.join("features");
    let total: usize = runs.iter().map(|(_, m)| m.cells()).sum();
    let bar = crate::progress_bar("cells")?;
    bar.set_length(total as u64);
    let mut cells = Vec::new();
    let mut rates = Vec::new();
    let mut stats = RunStats::default();
    let mut names = Vec::new();
    let mut offset = 0;
    for (loaded, m) in &runs {
        let progress = |done: usize, _total: usize| {
            bar.set_position((offset + done) as u64);
        };
        let input = match loaded {
            Loaded::Captures(ds) => Input::Captures(ds),
            Loaded::Activity(a) => Input::Activity(a),
        };
        let r = run_with(
            &input,
            m,
            &RunOptions {
                cache: Some(&cache),
                shard: outputs.shard,
                features_dir: outputs.features_parquet.then_some(features_dir.as_path()),
                progress: Some(&progress),
            },
        )
        .map_err(|e| match e {
            hush_eval::EvalError::Config(msg) => {
                anyhow::Error::from(BadInput(format!("{}: {msg}", m.dataset)))
            }
            other => anyhow::Error::from(other).context(m.dataset.clone()),
        })?;
        offset += m.cells();
        cells.extend(r.cells);
        rates.extend(r.rates);
        stats.add(&r.stats);
        names.push(m.dataset.clone());
    }
    bar.finish_and_clear();
    if let Some(shard) = outputs.shard {
        eprintln!(
            "hush: shard {}/{}: {} cells computed into {} ({} were cached) in {:.1} s; run the \
             same command without --shard to assemble the results",
            shard.index,
            shard.count,
            stats.computed,
            cache.dir.display(),
            stats.cached,
            load_s + started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let t_report = std::time::Instant::now();
    let results = Results::new(cells, rates);
    if outputs.parquet {
        hush_eval::parquet::write_results(&out_dir.join("results.parquet"), &results.cells)?;
    }
    write_atomic(
        &out_dir.join("results.csv"),
        to_csv(&results.cells).as_bytes(),
    )?;
    let json = serde_json::to_vec_pretty(&results)?;
    write_atomic(&out_dir.join("results.json"), &json)?;
    let html = hush_eval::report::render(&results, &format!("hush: {}", names.join(", ")))?;
    write_atomic(&out_dir.join("report.html"), html.as_bytes())?;
    let timing = Timing {
        wall_s: load_s + started.elapsed().as_secs_f64(),
        load_s,
        report_s: t_report.elapsed().as_secs_f64(),
        stats,
    };
    write_atomic(
        &out_dir.join("timing.json"),
        &serde_json::to_vec_pretty(&timing)?,
    )?;
    let s = &timing.stats;
    let work = timing.load_s + s.defend_s + s.features_s + s.fit_s + s.predict_s + timing.report_s;
    let share = |v: f64| if work > 0.0 { 100.0 * v / work } else { 0.0 };
    eprintln!(
        "hush: {total} cells ({} computed, {} cached) in {:.1} s; work by stage (summed over \
         parallel jobs): loading {:.1} s ({:.0}%), defending {:.1} s ({:.0}%), features {:.1} s \
         ({:.0}%), fitting {:.1} s ({:.0}%), scoring {:.1} s ({:.0}%), report {:.1} s ({:.0}%)",
        s.computed,
        s.cached,
        timing.wall_s,
        timing.load_s,
        share(timing.load_s),
        s.defend_s,
        share(s.defend_s),
        s.features_s,
        share(s.features_s),
        s.fit_s,
        share(s.fit_s),
        s.predict_s,
        share(s.predict_s),
        timing.report_s,
        share(timing.report_s),
    );
    eprintln!(
        "hush: results.csv, results.json, report.html and timing.json in {}",
        out_dir.display()
    );
    let mut out = std::io::stdout().lock();
    if outputs.json {
        out.write_all(&json)?;
        writeln!(out)?;
        return Ok(());
    }
    for (i, name) in names.iter().enumerate() {
        if names.len() > 1 {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "{name}")?;
        }
        let mine: Vec<Cell> = results
            .cells
            .iter()
            .filter(|c| &c.dataset == name)
            .cloned()
            .collect();
        print_table(&mut out, &mine)?;
    }
    Ok(())
}

/// One line per defense: the headline (the window view for an always-on defense, the session
/// view for the rest): the strongest adaptive and naive attack (each attack's mean over seeds,
/// as the report's frontier) and the cost; then the strongest adaptive attack under each view,
/// side by side.
fn print_table(out: &mut impl Write, cells: &[Cell]) -> Result<()> {
    let views = hush_eval::report::observations(cells);
    let per_view: Vec<Vec<hush_eval::report::FrontierPoint>> = views
        .iter()
        .map(|v| hush_eval::report::frontier_of(cells, v))
        .collect();
    write!(
        out,
        "{:<16} {:>8} {:>10} {:>10} {:>7} {:>12} {:>9} {:>9} {:>8}",
        "defense",
        "observed",
        "adaptive",
        "naive",
        "chance",
        "best attack",
        "bytes +%",
        "B/s +",
        "p95 s"
    )?;
    if views.len() > 1 {
        for v in &views {
            write!(out, " {:>9}", format!("{v}"))?;
        }
    }
    writeln!(out)?;
    for p in hush_eval::report::headline(cells) {
        write!(
            out,
            "{:<16} {:>8} {:>9.1}% {:>9.1}% {:>6.1}% {:>12} {:>9.1} {:>9.1} {:>8.3}",
            p.defense,
            p.observation,
            100.0 * p.adaptive_accuracy,
            100.0 * p.naive_accuracy,
            100.0 * p.chance,
            p.adaptive_attack,
            p.bytes_added_pct,
            p.added_bps,
            p.latency_p95_s
        )?;
        if views.len() > 1 {
            for pts in &per_view {
                match pts.iter().find(|q| q.defense == p.defense) {
                    Some(q) => write!(out, " {:>8.1}%", 100.0 * q.adaptive_accuracy)?,
                    None => write!(out, " {:>9}", "-")?,
                }
            }
        }
        writeln!(out)?;
    }
    Ok(())
}
