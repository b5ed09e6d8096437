//! Adversaries: which device produced this encrypted traffic?
//!
//! Each [`Attack`] turns a trace into one or more feature rows ([`features`]) and classifies them
//! with a hush-ml random forest. [`evaluate`] runs the evaluation protocol every hush attack
//! shares: folds by capture (a capture is never on both sides), stratified by label, seeded;
//! accuracy, macro-F1, per-class precision and recall, the confusion matrix and chance levels;
//! and, with a defense, the **adaptive** attacker that trains on defended traffic as a real
//! eavesdropper would, or the non-adaptive one trained on undefended traffic. The defense is
//! any function over traces, so hush-defense's catalog plugs in without this crate knowing it.
//!
//! ```no_run
//! use hush_attack::{Attack, EvalOptions, evaluate};
//! use hush_trace::dataset::{load_dir, LoadOptions, IOT_SENTINEL_TYPES};
//!
//! let mut ds = load_dir("../shared/data/iot-sentinel", &LoadOptions::default())?;
//! ds.relabel(IOT_SENTINEL_TYPES);
//! let report = evaluate(&ds, &Attack::by_name("flow-stats")?, &EvalOptions::default())?;
//! println!("{:.1}% (chance {:.1}%)", 100.0 * report.window.accuracy, 100.0 * report.window.chance_majority);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod eval;
pub mod events;
pub mod features;
pub mod images;
pub mod labels;
pub mod peaks;
pub mod signatures;

use hush_ml::{
    Dataset as MlDataset, ForestParams, Matrix, MlError, Model, ModelFile, ModelHeader,
    RandomForest,
};
use hush_trace::Trace;
use rayon::prelude::*;
use serde::Serialize;

pub use eval::{ClassMetrics, EvalOptions, EvalReport, Metrics, Mode, evaluate};

/// Errors of the attacks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttackError {
    /// An unknown attack name.
    #[error("unknown attack {0:?}; known: {known}", known = NAMES.join(", "))]
    Unknown(String),
    /// Data that cannot be split or learned from (an empty dataset, a class with one capture).
    #[error("{0}")]
    Data(String),
    /// The learning substrate failed (bad features, a bad model file).
    #[error(transparent)]
    Ml(#[from] MlError),
    /// A defense failed on a trace.
    #[error("defense failed on {trace}: {reason}")]
    Defense {
        /// The trace.
        trace: String,
        /// Why.
        reason: String,
    },
}

/// The attacks, by name.
pub const NAMES: &[&str] = &["iot-sentinel", "flow-stats", "m-agg"];

/// Which features an attack uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// IoT Sentinel's fingerprint: the first 12 distinct device-sent packets × 23 features.
    IotSentinel,
    /// Flow statistics of the whole capture (k-FP/CUMUL style): sizes, timing, bursts,
    /// direction, protocol shares.
    FlowStats,
    /// iPET's aggregate attacker: 15-minute windows, per direction × TCP/UDP counts, payload
    /// length mean/min/max and duration.
    MAgg,
}

/// An attack: features and a classifier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attack {
    /// Features.
    pub kind: AttackKind,
    /// The forest.
    pub forest: ForestParams,
}

impl Attack {
    /// An attack by name with its default forest (100 trees, as scikit-learn's default, which
    /// iPET used).
    pub fn by_name(name: &str) -> Result<Attack, AttackError> {
        let kind = match name {
            "iot-sentinel" => AttackKind::IotSentinel,
            "flow-stats" => AttackKind::FlowStats,
            "m-agg" => AttackKind::MAgg,
            other => return Err(AttackError::Unknown(other.to_string())),
        };
        Ok(Attack {
            kind,
            forest: ForestParams::default(),
        })
    }

    /// Its name, which is also the feature set recorded in model files.
    pub fn name(&self) -> &'static str {
        match self.kind {
            AttackKind::IotSentinel => "iot-sentinel",
            AttackKind::FlowStats => "flow-stats",
            AttackKind::MAgg => "m-agg",
        }
    }

    /// What it is and where it comes from.
    pub fn describe(&self) -> (&'static str, &'static str) {
        match self.kind {
            AttackKind::IotSentinel => (
                "fingerprint of the first 12 distinct device-sent packets (23 features each) -> random forest",
                "Miettinen et al., IoT Sentinel, ICDCS 2017",
            ),
            AttackKind::FlowStats => (
                "sizes, timing, bursts, direction, cumulative-size curve and protocol shares of a capture -> random forest",
                "k-FP (Hayes and Danezis 2016) and CUMUL (Panchenko et al. 2016) style",
            ),
            AttackKind::MAgg => (
                "15-minute windows: per direction x TCP/UDP, packet count, payload mean/min/max, duration -> random forest",
                "Shenoi et al., iPET, PETS 2023 (M_agg)",
            ),
        }
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> Vec<String> {
        match self.kind {
            AttackKind::IotSentinel => features::sentinel_feature_names(),
            AttackKind::FlowStats => features::flow_feature_names(),
            AttackKind::MAgg => features::agg_feature_names(),
        }
    }

    /// The feature rows of one trace (one for whole-capture attacks; one per window for
    /// windowed ones; none if the trace has nothing the attack can use).
    pub fn windows(&self, trace: &Trace) -> Vec<Vec<f32>> {
        match self.kind {
            AttackKind::IotSentinel => {
                if trace
                    .packets
                    .iter()
                    .any(|p| p.dir == hush_trace::Direction::Outbound)
                {
                    vec![features::sentinel_fingerprint(trace)]
                } else {
                    Vec::new()
                }
            }
            AttackKind::FlowStats => {
                if trace
                    .packets
                    .iter()
                    .any(|p| p.dir != hush_trace::Direction::Unknown)
                {
                    vec![features::flow_stats(&trace.packets)]
                } else {
                    Vec::new()
                }
            }
            AttackKind::MAgg => features::agg_windows(trace),
        }
    }

    /// A learning dataset from traces with their labels and groups, features extracted in
    /// parallel. Also returns, per row, the index of the trace it came from.
    pub fn dataset(
        &self,
        traces: &[(&Trace, u32, u32)],
        classes: &[String],
    ) -> Result<(MlDataset, Vec<usize>), AttackError> {
        let rows: Vec<Vec<Vec<f32>>> = traces.par_iter().map(|(t, _, _)| self.windows(t)).collect();
        let mut data = Vec::new();
        let (mut y, mut groups, mut origin) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (r, (_, label, group))) in rows.iter().zip(traces).enumerate() {
            for w in r {
                data.extend_from_slice(w);
                y.push(*label);
                groups.push(*group);
                origin.push(i);
            }
        }
        let names = self.feature_names();
        let x = Matrix::new(y.len(), names.len(), data)?;
        let ds = MlDataset {
            x,
            y,
            classes: classes.to_vec(),
            groups,
            feature_names: names,
        };
        ds.validate()?;
        Ok((ds, origin))
    }

    /// Fit the attack's model and wrap it in a model file.
    pub fn fit(&self, data: &MlDataset, trained_on: &str) -> Result<ModelFile, AttackError> {
        let forest = RandomForest::fit(data, &self.forest)?;
        Ok(ModelFile {
            header: ModelHeader {
                format: hush_ml::model::FORMAT.into(),
                version: hush_ml::model::VERSION,
                feature_set: self.name().into(),
                feature_names: data.feature_names.clone(),
                classes: data.classes.clone(),
                trained_on: trained_on.into(),
            },
            model: Model::RandomForest(forest),
        })
    }

    /// Class probabilities for each window of `trace` under a model file of this attack.
    pub fn predict(&self, model: &ModelFile, trace: &Trace) -> Result<Vec<Vec<f32>>, AttackError> {
        if model.header.feature_set != self.name() {
            return Err(MlError::FeatureSet {
                expected: self.name().into(),
                found: model.header.feature_set.clone(),
            }
            .into());
        }
        let rows = self.windows(trace);
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let x = Matrix::from_rows(&rows)?;
        match &model.model {
            Model::RandomForest(f) => Ok(f.predict_proba(&x)?),
            Model::Knn(k) => {
                let n = model.header.classes.len();
                Ok(k.predict(&x)?
                    .into_iter()
                    .map(|c| {
                        let mut p = vec![0.0; n];
                        p[c as usize] = 1.0;
                        p
                    })
                    .collect())
            }
        }
    }
}
