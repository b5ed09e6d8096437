//! `hush eval`: the bench. Every defense × attack × seed over a dataset, adaptive and
//! non-adaptive attackers, privacy next to cost, cached so a killed run resumes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use hush_eval::matrix::{Cache, Cell, Input, Matrix, Results, run, to_csv, write_atomic};

use crate::BadInput;

/// The catalog defenses the bench runs by default: the frontier.
const DEFAULT_DEFENSES: &str =
    "none,pad-mtu,ilp-constant,ilp-random,buflo,tamaraw,front,stp,ipet-constant,ipet-random";
/// The device attacks it runs by default (the forests; add m-seq, packet-lstm for the networks).
const DEFAULT_ATTACKS: &str = "iot-sentinel,flow-stats,m-agg";

/// `hush eval`.
#[derive(Args)]
pub struct BenchArgs {
    /// A folder of `<label>/<captures>` (IoT Sentinel's layout).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Merge IoT Sentinel's 31 devices into the paper's 27 types.
    #[arg(long)]
    pub types: bool,
    /// Defense specs, comma-separated (see hush defend --list).
    #[arg(long, value_name = "SPECS", default_value = DEFAULT_DEFENSES, value_delimiter = ',')]
    pub defenses: Vec<String>,
    /// Attacks, comma-separated (see hush attack --list).
    #[arg(long, value_name = "NAMES", default_value = DEFAULT_ATTACKS, value_delimiter = ',')]
    pub attacks: Vec<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_name = "N,...", default_value = "0", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Folds by capture.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Cap on neural attacks' epochs.
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Where results.csv, results.json and the cell cache go.
    #[arg(long, short, value_name = "DIR", default_value = "hush-eval")]
    pub out: PathBuf,
    /// Recompute every cell (the cache is still written).
    #[arg(long)]
    pub no_cache: bool,
    /// Print the rows as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `hush demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Seed of the simulated home, the defenses, the folds and the models.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sessions per device (each a separate "capture": folds never split one).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub sessions: usize,
    /// Length of each session, seconds.
    #[arg(long, default_value_t = 1800.0, value_name = "S")]
    pub duration_s: f64,
    /// Where results.csv, results.json and the cell cache go.
    #[arg(long, short, value_name = "DIR", default_value = "hush-demo")]
    pub out: PathBuf,
    /// Print the rows as JSON instead of the table.
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
    };
    run_matrix(&ds, &m, &a.out, false, a.json)
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
    let title = format!("hush: {}", cells[0].dataset);
    let html = hush_eval::report::render(&results, &title)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.results.with_file_name("report.html"));
    write_atomic(&out, html.as_bytes())?;
    eprintln!("hush: {} rows; report in {}", cells.len(), out.display());
    Ok(())
}

pub fn run_bench(a: &BenchArgs) -> Result<()> {
    let name = a.data.file_name().map_or_else(
        || a.data.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let m = Matrix {
        dataset: name,
        defenses: a.defenses.clone(),
        attacks: a.attacks.clone(),
        seeds: a.seeds.clone(),
        folds: a.folds,
        max_epochs: a.epochs,
        network: hush_defense::NetworkModel::default(),
        rate_trace: None,
    };
    m.validate().map_err(|e| BadInput(e.to_string()))?;
    let ds = crate::attack::load_dataset(&a.data, a.types, None, 60.0)?;
    run_matrix(&ds, &m, &a.out, a.no_cache, a.json)
}

fn run_matrix(
    ds: &hush_trace::dataset::Dataset,
    m: &Matrix,
    out_dir: &std::path::Path,
    no_cache: bool,
    json_out: bool,
) -> Result<()> {
    let cache = Cache {
        dir: out_dir.join("cache"),
        read: !no_cache,
    };
    let bar = crate::progress_bar("cells")?;
    bar.set_length(m.cells() as u64);
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let started = std::time::Instant::now();
    let r = run(&Input::Captures(ds), m, Some(&cache), &progress).map_err(|e| match e {
        hush_eval::EvalError::Config(msg) => anyhow::Error::from(BadInput(msg)),
        other => anyhow::Error::from(other),
    })?;
    let (cells, stats) = (r.cells, r.stats);
    let results = Results::new(cells.clone(), vec![r.rates]);
    bar.finish_and_clear();
    let csv_path = out_dir.join("results.csv");
    write_atomic(&csv_path, to_csv(&cells).as_bytes())?;
    let json = serde_json::to_vec_pretty(&results)?;
    write_atomic(&out_dir.join("results.json"), &json)?;
    let html = hush_eval::report::render(&results, &format!("hush: {}", m.dataset))?;
    write_atomic(&out_dir.join("report.html"), html.as_bytes())?;
    eprintln!(
        "hush: {} cells ({} computed, {} cached) in {:.1} s (defending {:.1} s, features {:.1} s, \
         fitting {:.1} s, scoring {:.1} s, summed over parallel jobs); results and report.html in {}",
        m.cells(),
        stats.computed,
        stats.cached,
        started.elapsed().as_secs_f64(),
        stats.defend_s,
        stats.features_s,
        stats.fit_s,
        stats.predict_s,
        out_dir.display()
    );
    let mut out = std::io::stdout().lock();
    if json_out {
        out.write_all(&json)?;
        writeln!(out)?;
        return Ok(());
    }
    print_table(&mut out, &cells)?;
    Ok(())
}

/// One line per defense: the strongest adaptive and non-adaptive attack, and the cost.
fn print_table(out: &mut impl Write, cells: &[Cell]) -> Result<()> {
    writeln!(
        out,
        "{:<16} {:>10} {:>10} {:>7} {:>11} {:>9} {:>9} {:>8}",
        "defense", "adaptive", "naive", "chance", "best attack", "bytes +%", "B/s +", "p95 s"
    )?;
    let mut defenses: Vec<&str> = Vec::new();
    for c in cells {
        if !defenses.contains(&c.defense.as_str()) {
            defenses.push(&c.defense);
        }
    }
    for d in defenses {
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.defense == d).collect();
        let best = |who: &str| {
            mine.iter()
                .filter(|c| c.attacker == who)
                .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
                .copied()
        };
        let (Some(ad), Some(na)) = (best("adaptive"), best("non-adaptive")) else {
            continue;
        };
        writeln!(
            out,
            "{:<16} {:>9.1}% {:>9.1}% {:>6.1}% {:>11} {:>9.1} {:>9.1} {:>8.3}",
            d,
            100.0 * ad.accuracy,
            100.0 * na.accuracy,
            100.0 * ad.chance,
            ad.attack,
            ad.bytes_added_pct,
            ad.added_bps,
            ad.latency_p95_s
        )?;
    }
    Ok(())
}
