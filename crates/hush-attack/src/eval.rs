//! The evaluation protocol: leakage-free folds, metrics, and adaptive attackers.

use hush_ml::EpochReport;
use hush_ml::forest::argmax;
use hush_trace::Trace;
use hush_trace::dataset::Dataset;
use hush_trace::split::{group_kfold, time_split};
use rayon::prelude::*;
use serde::Serialize;

use hush_ml::ModelFile;
use hush_trace::split::Fold;

use crate::{Attack, AttackError, ExampleRows};

/// A defense as the attacks see it: a function from a trace (and a per-trace seed) to the
/// defended trace.
pub type DefenseFn<'a> = &'a (dyn Fn(&Trace, u64) -> Result<Trace, String> + Sync);

/// Told after each epoch of a neural attack: the fold (from 0) and the epoch.
pub type EpochFn<'a> = &'a (dyn Fn(usize, &EpochReport) + Sync);

/// Who the attacker is when traffic is defended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Trained on defended traffic (a real eavesdropper who knows the defense).
    Adaptive,
    /// Trained on undefended traffic, tested on defended.
    NonAdaptive,
}

/// How traces are split between training and testing. Never by window: windows of one capture
/// are never on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// `folds` folds by capture group, stratified by label.
    ByCapture,
    /// One split by time: per label, the earliest `train_fraction` of its capture groups train,
    /// the later ones test (an attacker who records first and attacks later).
    ByTime {
        /// Share of each label's groups, earliest first, that train.
        train_fraction: f64,
    },
}

/// How to evaluate.
#[derive(Clone, Copy)]
pub struct EvalOptions<'a> {
    /// Folds (by capture, stratified by label) when `split` is [`Split::ByCapture`].
    pub folds: usize,
    /// By capture (k-fold) or by time (one split).
    pub split: Split,
    /// Seed of the folds and of every forest.
    pub seed: u64,
    /// A defense applied to the test traffic (and, when adaptive, the training traffic).
    pub defense: Option<DefenseFn<'a>>,
    /// The attacker under a defense.
    pub mode: Mode,
    /// Called after each epoch of a neural attack with the fold (from 0) and the epoch.
    pub on_epoch: Option<EpochFn<'a>>,
    /// Models already trained for each fold by [`fit_folds`] with the same folds, seed and
    /// training traffic: scored instead of retrained (a non-adaptive attacker is the same model
    /// under every defense).
    pub models: Option<&'a [ModelFile]>,
    /// Score captures that give the attack no row too, at the capture level: as the label most
    /// common among training captures without packets (an attacker learns what silence means),
    /// else the training majority. For activity windows, where an empty window is an answer.
    pub score_silent: bool,
    /// At most this many training rows per capture (evenly spaced over its windows); test rows
    /// are never capped. `None`: all.
    pub max_train_windows: Option<usize>,
}

impl Default for EvalOptions<'_> {
    fn default() -> Self {
        EvalOptions {
            folds: 5,
            split: Split::ByCapture,
            seed: 0,
            defense: None,
            mode: Mode::Adaptive,
            on_epoch: None,
            models: None,
            score_silent: false,
            max_train_windows: None,
        }
    }
}

/// One class's scores.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// The class.
    pub label: String,
    /// Of the examples predicted as this class, the share that are.
    pub precision: f64,
    /// Of this class's examples, the share found.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Test examples of this class.
    pub support: u64,
}

/// Scores over a set of predictions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Examples scored.
    pub examples: u64,
    /// Share predicted right.
    pub accuracy: f64,
    /// Mean F1 over classes with examples.
    pub macro_f1: f64,
    /// Accuracy of always guessing the most common class.
    pub chance_majority: f64,
    /// 1 / classes.
    pub chance_uniform: f64,
    /// Per class.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
}

impl Metrics {
    /// Scores from (true, predicted) pairs over `labels`.
    pub fn from_pairs(pairs: &[(u32, u32)], labels: &[String]) -> Metrics {
        let k = labels.len();
        let mut confusion = vec![vec![0u64; k]; k];
        for &(t, p) in pairs {
            confusion[t as usize][p as usize] += 1;
        }
        let n = pairs.len() as u64;
        let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
        let mut per_class = Vec::with_capacity(k);
        let mut f1s = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            let support: u64 = confusion[i].iter().sum();
            let predicted: u64 = (0..k).map(|t| confusion[t][i]).sum();
            let tp = confusion[i][i] as f64;
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            if support > 0 {
                f1s.push(f1);
            }
            per_class.push(ClassMetrics {
                label: label.clone(),
                precision,
                recall,
                f1,
                support,
            });
        }
        let majority = confusion
            .iter()
            .map(|r| r.iter().sum::<u64>())
            .max()
            .unwrap_or(0);
        Metrics {
            examples: n,
            accuracy: if n > 0 {
                correct as f64 / n as f64
            } else {
                0.0
            },
            macro_f1: if f1s.is_empty() {
                0.0
            } else {
                f1s.iter().sum::<f64>() / f1s.len() as f64
            },
            chance_majority: if n > 0 {
                majority as f64 / n as f64
            } else {
                0.0
            },
            chance_uniform: if k > 0 { 1.0 / k as f64 } else { 0.0 },
            per_class,
            confusion,
        }
    }
}

/// What an evaluation found.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The attack.
    pub attack: String,
    /// Folds (1 for a split by time).
    pub folds: usize,
    /// How traces were split.
    pub split: Split,
    /// Seed.
    pub seed: u64,
    /// Whether traffic was defended, and who the attacker was.
    pub defended: Option<Mode>,
    /// Class labels.
    pub labels: Vec<String>,
    /// Captures evaluated.
    pub captures: usize,
    /// Captures that gave the attack no feature row (left out).
    pub captures_without_rows: usize,
    /// Scores per feature row (window).
    pub window: Metrics,
    /// Scores per capture: the class with the highest mean probability over its windows.
    pub capture: Metrics,
    /// Window accuracy of each fold.
    pub fold_accuracy: Vec<f64>,
    /// Where the time went (not serialised: results stay byte-identical run to run).
    #[serde(skip)]
    pub timing: StageTiming,
}

/// Seconds spent in each stage of an evaluation, summed over folds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTiming {
    /// Turning traces into feature rows or sequences.
    pub features_s: f64,
    /// Fitting models.
    pub fit_s: f64,
    /// Scoring the test rows.
    pub predict_s: f64,
}

impl StageTiming {
    /// Add another stage's times.
    pub fn add(&mut self, o: &StageTiming) {
        self.features_s += o.features_s;
        self.fit_s += o.fit_s;
        self.predict_s += o.predict_s;
    }
}

/// The seed trace `i` of a dataset is defended with under evaluation seed `seed` (so every tool
/// that defends a dataset for an evaluation defends it the same way).
pub fn trace_seed(seed: u64, i: usize) -> u64 {
    seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Cross-validate `attack` on `ds` (directions set, labels as given).
pub fn evaluate(
    ds: &Dataset,
    attack: &Attack,
    opts: &EvalOptions<'_>,
) -> Result<EvalReport, AttackError> {
    if ds.traces.is_empty() {
        return Err(AttackError::Data("the dataset is empty".into()));
    }
    // Every trace once, defended once when a defense is given (the same defended trace serves
    // as test data in its fold and as training data in the others, as on a real network).
    let defended = match opts.defense {
        None => None,
        Some(f) => Some(defend_dataset(ds, f, opts.seed)?),
    };
    evaluate_defended(ds, attack, opts, defended.as_deref())
}

/// Every trace of `ds` through `defense`, trace `i` with [`trace_seed`]`(seed, i)`, in parallel.
pub fn defend_dataset(
    ds: &Dataset,
    defense: DefenseFn<'_>,
    seed: u64,
) -> Result<Vec<Trace>, AttackError> {
    ds.traces
        .par_iter()
        .enumerate()
        .map(|(i, t)| {
            defense(&t.trace, trace_seed(seed, i)).map_err(|reason| AttackError::Defense {
                trace: t.trace.name.clone(),
                reason,
            })
        })
        .collect()
}

/// [`evaluate`] with the traces already defended (`defended[i]` is trace `i`'s defended form;
/// `opts.defense` is not called): for callers that defend once and attack many times.
pub fn evaluate_defended(
    ds: &Dataset,
    attack: &Attack,
    opts: &EvalOptions<'_>,
    defended: Option<&[Trace]>,
) -> Result<EvalReport, AttackError> {
    if ds.traces.is_empty() {
        return Err(AttackError::Data("the dataset is empty".into()));
    }
    if let Some(d) = defended
        && d.len() != ds.traces.len()
    {
        return Err(AttackError::Data(format!(
            "{} defended traces for {} traces",
            d.len(),
            ds.traces.len()
        )));
    }
    let folds = plan_folds(ds, opts)?;
    let originals: Vec<&Trace> = ds.traces.iter().map(|t| &t.trace).collect();
    let defended: Option<Vec<&Trace>> = defended.map(|d| d.iter().collect());
    let test_traces = defended.as_deref().unwrap_or(&originals);
    let train_traces = match opts.mode {
        Mode::Adaptive => test_traces,
        Mode::NonAdaptive => &originals,
    };
    let mut timing = StageTiming::default();
    // Each trace's rows once: test rows whole, training rows capped.
    let t0 = std::time::Instant::now();
    let test_rows = rows_of(attack, test_traces, None);
    let owned_train: Vec<ExampleRows>;
    let train_rows: &[ExampleRows] = match opts.models {
        // Trained already: only the training traces' silence is needed.
        Some(_) => {
            owned_train = train_traces
                .iter()
                .map(|t| ExampleRows {
                    silent: t.packets.is_empty(),
                    ..ExampleRows::default()
                })
                .collect();
            &owned_train
        }
        None if opts.max_train_windows.is_none()
            && std::ptr::eq(train_traces.as_ptr(), test_traces.as_ptr()) =>
        {
            &test_rows
        }
        None => {
            owned_train = rows_of(attack, train_traces, opts.max_train_windows);
            &owned_train
        }
    };
    timing.features_s += t0.elapsed().as_secs_f64();
    let trained;
    let models = match opts.models {
        Some(m) => m,
        None => {
            let (m, t) = fit_fold_models(ds, attack, opts, &folds, train_rows)?;
            timing.add(&t);
            trained = m;
            &trained
        }
    };
    if models.len() != folds.len() {
        return Err(AttackError::Data(format!(
            "{} models for {} folds",
            models.len(),
            folds.len()
        )));
    }
    let mut probs = vec![Vec::new(); ds.traces.len()];
    for (fold, model) in folds.iter().zip(models) {
        let rows: Vec<&[Vec<f32>]> = fold.test.iter().map(|&i| &test_rows[i].rows[..]).collect();
        let t0 = std::time::Instant::now();
        let p = predict_examples(attack, model, &rows)?;
        timing.predict_s += t0.elapsed().as_secs_f64();
        for (&i, p) in fold.test.iter().zip(p) {
            probs[i] = p;
        }
    }
    let silent: Vec<bool> = train_rows.iter().map(|r| r.silent).collect();
    let mut report = score(ds, attack, opts, &folds, &probs, &silent);
    report.defended = defended.as_ref().map(|_| opts.mode);
    report.timing = timing;
    Ok(report)
}

/// Every trace's rows under `attack` (at most `max_rows` each), in parallel.
pub fn rows_of(attack: &Attack, traces: &[&Trace], max_rows: Option<usize>) -> Vec<ExampleRows> {
    traces
        .par_iter()
        .map(|t| attack.example_rows(t, max_rows))
        .collect()
}

/// The folds `opts` asks for (by capture group, or one split by time).
pub fn plan_folds(ds: &Dataset, opts: &EvalOptions<'_>) -> Result<Vec<Fold>, AttackError> {
    match opts.split {
        Split::ByCapture => group_kfold(ds, opts.folds, opts.seed),
        Split::ByTime { train_fraction } => time_split(ds, train_fraction).map(|f| vec![f]),
    }
    .map_err(|e| AttackError::Data(e.to_string()))
}

/// Class probabilities of each example's rows under one model, as [`Predictions`] gives them
/// (the same numbers however the caller groups its examples into folds).
pub fn predict_examples(
    attack: &Attack,
    model: &ModelFile,
    examples: &[&[Vec<f32>]],
) -> Result<Vec<Vec<Vec<f32>>>, AttackError> {
    let mut p = Predictions::new(attack, model);
    for e in examples {
        p.push(e)?;
    }
    p.finish()
}

/// Rows per prediction call when predictions stream: whole evaluation batches of the networks,
/// so the chunks see the windows one call over all of them would.
const STREAM_ROWS: usize = 4 * hush_ml::EVAL_BATCH;

/// Class probabilities of examples' rows under one model, fed example by example and predicted
/// in chunks of a few thousand rows. Memory holds one chunk, however many rows the examples
/// have (a day of heavy cover), and the numbers equal one call over every row: the networks
/// see the same batches, the forests score rows one by one.
pub struct Predictions<'a> {
    attack: &'a Attack,
    model: &'a ModelFile,
    cols: usize,
    /// Rows not predicted yet, row-major, and the example each belongs to.
    pending: Vec<f32>,
    owners: Vec<usize>,
    probs: Vec<Vec<Vec<f32>>>,
}

impl<'a> Predictions<'a> {
    /// Nothing fed yet.
    pub fn new(attack: &'a Attack, model: &'a ModelFile) -> Predictions<'a> {
        Predictions {
            attack,
            model,
            cols: 0,
            pending: Vec::new(),
            owners: Vec::new(),
            probs: Vec::new(),
        }
    }

    /// Adds the next example's rows (an example without rows gets no probabilities).
    pub fn push(&mut self, rows: &[Vec<f32>]) -> Result<(), AttackError> {
        let e = self.probs.len();
        self.probs.push(Vec::with_capacity(rows.len()));
        for r in rows {
            if self.owners.is_empty() {
                self.cols = r.len();
            } else if r.len() != self.cols {
                return Err(AttackError::Data(format!(
                    "example {e} has a row of {} values among rows of {}",
                    r.len(),
                    self.cols
                )));
            }
            self.pending.extend_from_slice(r);
            self.owners.push(e);
            if self.owners.len() == STREAM_ROWS {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), AttackError> {
        if self.owners.is_empty() {
            return Ok(());
        }
        let x = hush_ml::Matrix::new(
            self.owners.len(),
            self.cols,
            std::mem::take(&mut self.pending),
        )?;
        let probs = self.attack.predict_rows(self.model, &x)?;
        if probs.len() != self.owners.len() {
            return Err(AttackError::Data(format!(
                "{} predictions for {} rows",
                probs.len(),
                self.owners.len()
            )));
        }
        for (e, p) in self.owners.drain(..).zip(probs) {
            self.probs[e].push(p);
        }
        Ok(())
    }

    /// Per example fed, in order, its rows' class probabilities.
    pub fn finish(mut self) -> Result<Vec<Vec<Vec<f32>>>, AttackError> {
        self.flush()?;
        Ok(self.probs)
    }
}

/// Window and capture scores from each example's class probabilities (one per row; none for an
/// example that gave the attack no rows), fold by fold. `train_silent[i]` says whether example
/// `i`, as the attacker trained on it, had no packets (see [`EvalOptions::score_silent`]).
pub fn score(
    ds: &Dataset,
    attack: &Attack,
    opts: &EvalOptions<'_>,
    folds: &[Fold],
    probs: &[Vec<Vec<f32>>],
    train_silent: &[bool],
) -> EvalReport {
    let mut window_pairs = Vec::new();
    let mut capture_pairs = Vec::new();
    let mut fold_accuracy = Vec::new();
    let mut without_rows = 0;
    for fold in folds {
        let mut correct = 0;
        let mut rows = 0;
        for &i in &fold.test {
            let truth = class_of(ds, i) as u32;
            for p in &probs[i] {
                let pred = argmax(p);
                window_pairs.push((truth, pred));
                correct += usize::from(pred == truth);
                rows += 1;
            }
        }
        fold_accuracy.push(if rows == 0 {
            0.0
        } else {
            correct as f64 / rows as f64
        });
        // Per capture: mean probability over its windows.
        for &i in &fold.test {
            let truth = class_of(ds, i) as u32;
            if probs[i].is_empty() {
                without_rows += 1;
                if opts.score_silent {
                    capture_pairs.push((truth, silent_guess(ds, &fold.train, train_silent)));
                }
                continue;
            }
            let mut m = vec![0f32; ds.labels.len()];
            for p in &probs[i] {
                for (a, b) in m.iter_mut().zip(p.iter()) {
                    *a += b;
                }
            }
            capture_pairs.push((truth, argmax(&m)));
        }
    }
    EvalReport {
        attack: attack.name().into(),
        folds: folds.len(),
        split: opts.split,
        seed: opts.seed,
        defended: None,
        labels: ds.labels.clone(),
        captures: ds.traces.len(),
        captures_without_rows: without_rows,
        window: Metrics::from_pairs(&window_pairs, &ds.labels),
        capture: Metrics::from_pairs(&capture_pairs, &ds.labels),
        fold_accuracy,
        timing: StageTiming::default(),
    }
}

/// The label an attacker gives a capture it has no row for: the most common among training
/// captures without packets, else among all training captures (ties: the first label).
fn silent_guess(ds: &Dataset, train: &[usize], train_silent: &[bool]) -> u32 {
    let count = |only_empty: bool| {
        let mut n = vec![0usize; ds.labels.len()];
        for &i in train {
            if !only_empty || train_silent.get(i).copied().unwrap_or(false) {
                n[class_of(ds, i)] += 1;
            }
        }
        n
    };
    let best = |n: &[usize]| {
        let mut b = 0;
        for (k, &v) in n.iter().enumerate() {
            if v > n[b] {
                b = k;
            }
        }
        b as u32
    };
    let empty = count(true);
    if empty.iter().any(|&v| v > 0) {
        best(&empty)
    } else {
        best(&count(false))
    }
}

/// The attack as fold `f` trains it: seeded per fold.
fn fold_attack(attack: &Attack, opts: &EvalOptions<'_>, f: usize) -> Attack {
    let mut a = attack.clone();
    a.set_seed(opts.seed.wrapping_add(f as u64));
    a
}

/// Fold `f`'s model, trained on the rows of its training examples (`rows[i]` is example `i`'s,
/// already capped), in the fold's order. Returns the model and the time spent.
pub fn fit_fold_rows(
    ds: &Dataset,
    attack: &Attack,
    opts: &EvalOptions<'_>,
    f: usize,
    fold: &Fold,
    rows: &[ExampleRows],
) -> Result<(ModelFile, StageTiming), AttackError> {
    let mut timing = StageTiming::default();
    let items: Vec<(&[Vec<f32>], u32, u32)> = fold
        .train
        .iter()
        .map(|&i| (&rows[i].rows[..], class_of(ds, i) as u32, i as u32))
        .collect();
    let t0 = std::time::Instant::now();
    let (train, _) = attack.dataset_from_rows(&items, &ds.labels)?;
    timing.features_s += t0.elapsed().as_secs_f64();
    if train.x.rows() == 0 {
        return Err(AttackError::Data(format!(
            "fold {f}: no training rows: {}",
            attack.no_rows_hint()
        )));
    }
    let a = fold_attack(attack, opts, f);
    let t0 = std::time::Instant::now();
    let model = match opts.on_epoch {
        Some(report) => a.fit_with_progress(&train, "cross-validation", &mut |e| report(f, e))?,
        None => a.fit(&train, "cross-validation")?,
    };
    timing.fit_s += t0.elapsed().as_secs_f64();
    Ok((model, timing))
}

/// Every fold's model from the examples' (capped) training rows, fold after fold.
pub fn fit_fold_models(
    ds: &Dataset,
    attack: &Attack,
    opts: &EvalOptions<'_>,
    folds: &[Fold],
    rows: &[ExampleRows],
) -> Result<(Vec<ModelFile>, StageTiming), AttackError> {
    let mut timing = StageTiming::default();
    let mut models = Vec::with_capacity(folds.len());
    for (f, fold) in folds.iter().enumerate() {
        let (m, t) = fit_fold_rows(ds, attack, opts, f, fold, rows)?;
        timing.add(&t);
        models.push(m);
    }
    Ok((models, timing))
}

/// Train every fold's model as [`evaluate_defended`] would (same folds, seeds and training
/// traffic: `defended` when `opts.mode` is adaptive, else the undefended traces), to score
/// them later under many defenses through [`EvalOptions::models`]. Returns the models and
/// the time spent.
pub fn fit_folds(
    ds: &Dataset,
    attack: &Attack,
    opts: &EvalOptions<'_>,
    defended: Option<&[Trace]>,
) -> Result<(Vec<ModelFile>, StageTiming), AttackError> {
    let traces: Vec<&Trace> = match (opts.mode, defended) {
        (Mode::Adaptive, Some(d)) => d.iter().collect(),
        _ => ds.traces.iter().map(|t| &t.trace).collect(),
    };
    let t0 = std::time::Instant::now();
    let rows = rows_of(attack, &traces, opts.max_train_windows);
    let features_s = t0.elapsed().as_secs_f64();
    let (models, mut timing) = fit_fold_models(ds, attack, opts, &plan_folds(ds, opts)?, &rows)?;
    timing.features_s += features_s;
    Ok((models, timing))
}

/// Class of trace `i`: its label's index in `ds.labels`, which holds every trace's label (a
/// dataset builds it from them).
fn class_of(ds: &Dataset, i: usize) -> usize {
    ds.labels
        .iter()
        .position(|l| *l == ds.traces[i].label)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // 3 a (2 right), 1 b (right).
        let m = Metrics::from_pairs(&[(0, 0), (0, 0), (0, 1), (1, 1)], &labels);
        assert_eq!(m.accuracy, 0.75);
        assert_eq!(m.confusion, vec![vec![2, 1], vec![0, 1]]);
        assert_eq!(m.per_class[0].precision, 1.0);
        assert!((m.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.per_class[1].precision, 0.5);
        assert_eq!(m.chance_majority, 0.75);
        let f1a = 2.0 * 1.0 * (2.0 / 3.0) / (1.0 + 2.0 / 3.0);
        let f1b = 2.0 * 0.5 / 1.5;
        assert!((m.macro_f1 - (f1a + f1b) / 2.0).abs() < 1e-12);
    }
}
