//! The bench's matrix on the built-in smart home: rows for every cell and attacker, the same
//! bytes for the same configuration, a resumed or extended run computes only what is missing,
//! and a torn cache file is recomputed, never trusted.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_eval::EvalError;
use hush_eval::home::{HomeConfig, simulate_home};
use hush_eval::matrix::{Cache, Input, Matrix, run, to_csv};

fn home() -> hush_trace::dataset::Dataset {
    simulate_home(&HomeConfig {
        duration_s: 600.0,
        sessions_per_device: 5,
        seed: 1,
    })
    .unwrap()
}

fn matrix(defenses: &[&str]) -> Matrix {
    Matrix {
        dataset: "home".into(),
        defenses: defenses.iter().map(|s| s.to_string()).collect(),
        attacks: vec!["flow-stats".into()],
        seeds: vec![0],
        folds: 5,
        max_epochs: None,
        network: Default::default(),
        rate_trace: None,
        max_train_windows: None,
    }
}

/// The cells and stats of a run.
fn go(
    ds: &hush_trace::dataset::Dataset,
    m: &Matrix,
    cache: Option<&Cache>,
) -> Result<(Vec<hush_eval::matrix::Cell>, hush_eval::matrix::RunStats), EvalError> {
    run(&Input::Captures(ds), m, cache, &|_, _| {}).map(|r| (r.cells, r.stats))
}

#[test]
fn cells_are_deterministic_cached_and_resumable() {
    let ds = home();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache {
        dir: dir.path().join("cache"),
        read: true,
    };
    let m = matrix(&["none", "ilp-constant"]);
    let (cells, stats) = go(&ds, &m, Some(&cache)).unwrap();
    assert_eq!(cells.len(), 4, "two defenses x adaptive and non-adaptive");
    assert_eq!((stats.computed, stats.cached), (2, 0));
    let none = &cells[0];
    assert_eq!(
        (none.defense.as_str(), none.attacker.as_str()),
        ("none", "adaptive")
    );
    assert!(
        none.accuracy > 0.9,
        "undefended devices are easy: {}",
        none.accuracy
    );
    assert_eq!(none.bytes_added_pct, 0.0);
    // Constant-rate shaping costs bytes and hides the devices from a naive attacker.
    let (ilp_a, ilp_n) = (&cells[2], &cells[3]);
    assert!(ilp_a.bytes_added_pct > 100.0, "{}", ilp_a.bytes_added_pct);
    assert!(
        ilp_n.accuracy < 0.5,
        "non-adaptive under ILP: {}",
        ilp_n.accuracy
    );
    // The non-adaptive attacker's models, trained once and shared across defenses, score as
    // a fresh evaluation does.
    let spec: hush_defense::DefenseSpec = "ilp-constant".parse().unwrap();
    let net = hush_defense::NetworkModel::default();
    let defend = |t: &hush_trace::Trace, seed: u64| {
        hush_defense::defend(t, &spec, seed, &net)
            .map(|d| d.to_trace(t))
            .map_err(|e| e.to_string())
    };
    let fresh = hush_attack::evaluate(
        &ds,
        &hush_attack::Attack::by_name("flow-stats").unwrap(),
        &hush_attack::EvalOptions {
            folds: 5,
            defense: Some(&defend),
            mode: hush_attack::Mode::NonAdaptive,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fresh.window.accuracy, ilp_n.accuracy);
    assert_eq!(fresh.window.confusion, ilp_n.confusion);
    // Under `none` the adaptive attacker reuses those models: as a fresh undefended run.
    let plain = hush_attack::evaluate(
        &ds,
        &hush_attack::Attack::by_name("flow-stats").unwrap(),
        &hush_attack::EvalOptions {
            folds: 5,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(plain.window.confusion, none.confusion);
    assert_eq!(plain.window.accuracy, none.accuracy);
    let csv = to_csv(&cells);
    // Without the cache: the same bytes.
    let (again, _) = go(&ds, &m, None).unwrap();
    assert_eq!(to_csv(&again), csv);
    // From the cache: nothing computed, the same bytes.
    let (cached, stats) = go(&ds, &m, Some(&cache)).unwrap();
    assert_eq!((stats.computed, stats.cached), (0, 2));
    assert_eq!(to_csv(&cached), csv);
    // One more defense: only it is computed; the rest of the table is unchanged.
    let m3 = matrix(&["none", "ilp-constant", "pad-mtu"]);
    let (more, stats) = go(&ds, &m3, Some(&cache)).unwrap();
    assert_eq!((stats.computed, stats.cached), (1, 2));
    assert!(to_csv(&more).starts_with(&csv));
    // A cache file cut short (a kill mid-write of an older, non-atomic tool) is recomputed.
    for e in std::fs::read_dir(&cache.dir).unwrap() {
        let p = e.unwrap().path();
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    }
    let (redone, stats) = go(&ds, &m, Some(&cache)).unwrap();
    assert_eq!((stats.computed, stats.cached), (2, 0));
    assert_eq!(to_csv(&redone), csv);
}

#[test]
fn bad_matrices_are_errors() {
    let ds = home();
    for (m, what) in [
        (matrix(&["no-such-defense"]), "no-such-defense"),
        (
            Matrix {
                attacks: vec!["nope".into()],
                ..matrix(&["none"])
            },
            "nope",
        ),
        (
            Matrix {
                seeds: vec![],
                ..matrix(&["none"])
            },
            "seed",
        ),
        (
            Matrix {
                folds: 1,
                ..matrix(&["none"])
            },
            "folds",
        ),
    ] {
        let err = go(&ds, &m, None).unwrap_err();
        assert!(matches!(err, EvalError::Config(_)), "{err}");
        assert!(err.to_string().contains(what), "{err}");
    }
}

/// ITEMTK's own windows (8 hours of per-minute volume, one every hour) on hours-long traces:
/// the shared captures last minutes, the simulated home as long as asked.
#[test]
fn the_image_attack_with_itemtks_8_hour_windows_on_10_hour_sessions() {
    let ds = simulate_home(&HomeConfig {
        duration_s: 10.0 * 3600.0,
        sessions_per_device: 6,
        seed: 2,
    })
    .unwrap();
    let attack = hush_attack::Attack::by_name("image-cnn").unwrap();
    assert_eq!(
        attack.spec(),
        "image-cnn:bin_s=60,window=480,stride=60,size=32,mtf_bins=8"
    );
    let r = hush_attack::evaluate(
        &ds,
        &attack,
        &hush_attack::EvalOptions {
            folds: 3,
            ..Default::default()
        },
    )
    .unwrap();
    // 10 h sessions: windows start at hours 0, 1 and 2 (2 when a session's last packet comes
    // before its last minute).
    assert!(
        (5 * 6 * 2..=5 * 6 * 3).contains(&r.window.examples),
        "{} windows",
        r.window.examples
    );
    assert!(
        // The images are scale-free (each window rescaled to [-1, 1]): what is left is the
        // shape of a day, which for these steady devices is weak; still twice chance.
        r.window.accuracy > 2.0 * r.window.chance_majority,
        "{:.3} vs chance {:.3}",
        r.window.accuracy,
        r.window.chance_majority
    );
    // Train on all, predict a session.
    let (data, _) = attack.dataset_of(&ds).unwrap();
    let model = attack.fit(&data, "test").unwrap();
    let p = attack.predict(&model, &ds.traces[0].trace).unwrap();
    assert!((2..=3).contains(&p.len()));
}

/// The report's data: one trace's rate before and after each defense (the same traffic the
/// cells were scored on), and a confusion matrix per row.
#[test]
fn rate_plots_and_confusion_matrices() {
    let ds = home();
    let m = Matrix {
        rate_trace: Some("sleep-monitor".into()),
        ..matrix(&["none", "ilp-constant"])
    };
    let r = run(&Input::Captures(&ds), &m, None, &|_, _| {}).unwrap();
    let plot = &r.rates;
    assert_eq!(plot.label, "sleep-monitor");
    let t = ds
        .traces
        .iter()
        .find(|t| t.label == "sleep-monitor")
        .unwrap();
    assert_eq!(plot.trace, t.trace.name);
    // The original's bins hold all its bytes.
    let bytes: f64 = t
        .trace
        .packets
        .iter()
        .filter(|p| p.dir != hush_trace::Direction::Unknown)
        .map(|p| f64::from(p.frame_len))
        .sum();
    let binned: f64 = plot
        .original
        .out_bps
        .iter()
        .chain(&plot.original.in_bps)
        .sum::<f64>()
        * plot.bin_s;
    assert!((binned - bytes).abs() < 1e-6 * bytes, "{binned} vs {bytes}");
    assert_eq!(plot.defended.len(), 2);
    assert_eq!(plot.defended[0].0, "none");
    assert_eq!(plot.defended[0].1, plot.original, "none changes nothing");
    // Constant-rate shaping: every full bin outbound carries the same bytes, more than the
    // device sends in its busiest bin.
    let ilp = &plot.defended[1].1.out_bps;
    let full = &ilp[1..ilp.len() / 2];
    let (lo, hi) = full
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo < 0.05 * hi, "ILP constant: {lo}..{hi} B/s");
    let busiest = plot.original.out_bps.iter().fold(0f64, |a, &b| a.max(b));
    assert!(lo > busiest, "{lo} vs {busiest}");
    for c in &r.cells {
        assert_eq!(c.labels, ds.labels);
        let n: u64 = c.confusion.iter().flatten().sum();
        assert_eq!(n, c.windows, "every window counted once");
        let right: u64 = (0..c.labels.len()).map(|i| c.confusion[i][i]).sum();
        assert!((right as f64 / n as f64 - c.accuracy).abs() < 1e-12);
    }
    let bad = Matrix {
        rate_trace: Some("toaster".into()),
        ..matrix(&["none"])
    };
    let err = run(&Input::Captures(&ds), &bad, None, &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("toaster"), "{err}");
}
