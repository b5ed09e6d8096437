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

pub mod ensemble;
pub mod eval;
pub mod events;
pub mod features;
pub mod images;
pub mod labels;
pub mod peaks;
pub mod signatures;
pub mod wf;

#[cfg(feature = "neural")]
use hush_ml::neural::{self, Architecture, SeqData, TrainConfig};
use hush_ml::{
    Dataset as MlDataset, EpochReport, ForestParams, LeafKnn, Matrix, MlError, Model, ModelHeader,
    RandomForest,
};
use hush_trace::Trace;
use rayon::prelude::*;
use serde::Serialize;

pub use eval::{
    ClassMetrics, EvalOptions, EvalReport, Metrics, Mode, Split, StageTiming, evaluate,
};
/// A trained attack's model file (hush-ml's format), as [`Attack::fit`] returns it.
pub use hush_ml::ModelFile;

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
pub const NAMES: &[&str] = &[
    "iot-sentinel",
    "flow-stats",
    "m-agg",
    "m-seq",
    "packet-lstm",
    "image-cnn",
    "df",
    "df-size",
    "tiktok",
    "k-fp",
    "ensemble",
];

/// Which features an attack uses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
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
    /// iPET's sequence attacker: 4 s windows of 40 × 100 ms slots × [in count, in bytes, out
    /// count, out bytes] and the silence before the window.
    MSeq,
    /// IoTFlowGenerator's packet-metadata adversary: windows of 20 packets × length,
    /// direction, protocol flags, ports and inter-arrival time.
    PacketLstm,
    /// ITEMTK's image attack: long windows of per-bin volume per direction as GASF, GADF, MTF
    /// and RP images, fused as channels of a 2-D CNN.
    Image(images::ImageParams),
    /// Deep Fingerprinting (Sirinam et al., CCS 2018) and its relatives: the first N packets'
    /// directions (DF), signed sizes, or directional timing (Tik-Tok, Rahman et al., PETS 2020)
    /// into DF's 1-D CNN.
    Df(wf::DfParams),
    /// k-fingerprinting (Hayes and Danezis, USENIX Security 2016): its 175 features, a forest's
    /// leaves, k nearest neighbours in Hamming distance.
    KFp,
    /// Several capture-level attacks voting with their probabilities.
    Ensemble(ensemble::EnsembleSpec),
}

impl AttackKind {
    /// `(steps, features per step, extra scalars)` of a sequence attack's rows (each row is the
    /// `steps × features` window, row-major, then the extra scalars); `None` for tabular ones.
    pub fn seq_shape(self) -> Option<(usize, usize, usize)> {
        match self {
            AttackKind::MSeq => Some((hush_trace::window::SlotConfig::default().slots, 4, 1)),
            AttackKind::PacketLstm => Some((features::PACKET_WINDOW, features::PACKET_FEATURES, 0)),
            AttackKind::Image(p) => Some((images::ImageParams::CHANNELS * p.size, p.size, 0)),
            AttackKind::Df(p) => Some((p.length, 1, 0)),
            _ => None,
        }
    }
}

/// A neural attack's network and training.
#[cfg(feature = "neural")]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeuralParams {
    /// The network.
    pub architecture: Architecture,
    /// The training loop (its seed is the attack's).
    pub train: TrainConfig,
    /// Share of each class's training captures held out, whole, to choose the epoch (early
    /// stopping and learning-rate reduction watch their loss). A class with one capture keeps
    /// it for training; if no capture is held out at all, the training windows serve.
    pub validation_share: f64,
}

/// How an attack learns.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Learner {
    /// A hush-ml random forest.
    Forest(ForestParams),
    /// A hush-ml neural network.
    #[cfg(feature = "neural")]
    Neural(NeuralParams),
    /// k-fingerprinting's classifier: a forest, then the `k` nearest training examples by the
    /// leaves they share ([`hush_ml::LeafKnn`]).
    LeafKnn {
        /// The forest whose leaves make the fingerprint.
        forest: ForestParams,
        /// Neighbours that vote.
        k: usize,
    },
    /// Every member with its own learner ([`ensemble`]).
    Ensemble(ensemble::EnsembleLearner),
}

/// An attack: features and a learner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attack {
    /// Features.
    pub kind: AttackKind,
    /// The classifier and how it is trained.
    pub learner: Learner,
}

impl Attack {
    /// An attack by name with its source's classifier: a forest of 100 trees (scikit-learn's
    /// default, which iPET used) for the tabular attacks; M_seq's published BiLSTM(8) × 2 →
    /// Dense(128) with its training (Adam 1e-3, batch 128, up to 100 epochs, early stopping
    /// after 16); an LSTM(64) → Dense(64) for the packet-metadata adversary; a small 2-D CNN
    /// (16 and 32 channels of 3 × 3, dense 64) over ITEMTK's fused images.
    ///
    /// DF, its signed-size variant and Tik-Tok use DF's published network and training
    /// ([`Architecture::df`], [`TrainConfig::df`]: Adamax 0.002, batch 128, 30 epochs) with a
    /// tenth of each class's training captures held out for validation; k-FP a forest of 1000
    /// trees and k = 3; the ensemble its members' own learners.
    ///
    /// Options follow a colon: `image-cnn:bin_s=1,window=600,stride=60,size=32` (see
    /// [`images::ImageParams::parse`]), `df:length=1000` (also `df-size`, `tiktok`; see
    /// [`wf::DfParams::parse`]), `ensemble:members=flow-stats+k-fp+df,combine=weighted` (see
    /// [`ensemble::EnsembleSpec::parse`]); [`Attack::spec`] gives the full form back.
    pub fn by_name(name: &str) -> Result<Attack, AttackError> {
        let (base, opts) = name.split_once(':').unwrap_or((name, ""));
        let takes_options = ["image-cnn", "df", "df-size", "tiktok", "ensemble"];
        if !takes_options.contains(&base) && !opts.is_empty() {
            return Err(AttackError::Data(format!(
                "{base} takes no options (these do: {})",
                takes_options.join(", ")
            )));
        }
        let bad = |e: String| AttackError::Data(format!("{name}: {e}"));
        let df = |input| wf::DfParams::new(input).parse(opts).map_err(bad);
        let kind = match base {
            "image-cnn" => AttackKind::Image(images::ImageParams::parse(opts).map_err(bad)?),
            "df" => AttackKind::Df(df(wf::DfInput::Direction)?),
            "df-size" => AttackKind::Df(df(wf::DfInput::SignedSize)?),
            "tiktok" => AttackKind::Df(df(wf::DfInput::DirectionalTiming)?),
            "k-fp" => AttackKind::KFp,
            "ensemble" => AttackKind::Ensemble(ensemble::EnsembleSpec::parse(opts).map_err(bad)?),
            "iot-sentinel" => AttackKind::IotSentinel,
            "flow-stats" => AttackKind::FlowStats,
            "m-agg" => AttackKind::MAgg,
            "m-seq" => AttackKind::MSeq,
            "packet-lstm" => AttackKind::PacketLstm,
            other => return Err(AttackError::Unknown(other.to_string())),
        };
        let learner = Attack::learner_of(&kind, base)?;
        Ok(Attack { kind, learner })
    }

    /// The learner `by_name` gives a kind: k-FP's forest and neighbours, the ensemble's members,
    /// a forest for the other tabular attacks, the source's network for the sequence ones (an
    /// error naming the attack when hush-attack is built without `neural`).
    fn learner_of(kind: &AttackKind, name: &str) -> Result<Learner, AttackError> {
        if kind.seq_shape().is_some() {
            return Attack::network_of(kind, name);
        }
        Ok(match kind {
            AttackKind::KFp => Learner::LeafKnn {
                forest: ForestParams {
                    n_trees: 1000,
                    ..ForestParams::default()
                },
                k: 3,
            },
            AttackKind::Ensemble(_) => Learner::Ensemble(ensemble::EnsembleLearner::default()),
            _ => Learner::Forest(ForestParams::default()),
        })
    }

    #[cfg(not(feature = "neural"))]
    fn network_of(_kind: &AttackKind, name: &str) -> Result<Learner, AttackError> {
        Err(AttackError::Data(format!(
            "{name}: a neural attack, and this hush was built without hush-attack's `neural` \
             feature"
        )))
    }

    /// A sequence attack's network and training, as its source published them.
    #[cfg(feature = "neural")]
    fn network_of(kind: &AttackKind, _name: &str) -> Result<Learner, AttackError> {
        let neural = |architecture, train, validation_share| {
            Learner::Neural(NeuralParams {
                architecture,
                train,
                validation_share,
            })
        };
        Ok(match kind {
            AttackKind::Image(_) => neural(
                Architecture::Cnn2d {
                    in_channels: images::ImageParams::CHANNELS,
                    channels: vec![16, 32],
                    kernel: 3,
                    dense: 64,
                    dropout: 0.3,
                },
                TrainConfig {
                    epochs: 60,
                    batch_size: 32,
                    early_stopping_patience: 10,
                    ..TrainConfig::default()
                },
                0.2,
            ),
            AttackKind::Df(_) => neural(Architecture::df(), TrainConfig::df(), 0.1),
            AttackKind::PacketLstm => neural(
                Architecture::Lstm {
                    hidden: 64,
                    dense: 64,
                    dropout: 0.2,
                },
                TrainConfig::default(),
                0.2,
            ),
            _ => neural(Architecture::m_seq(), TrainConfig::default(), 0.2),
        })
    }

    /// Seed the learner (forest bootstraps, or the network's weights, shuffles and dropout).
    pub fn set_seed(&mut self, seed: u64) {
        match &mut self.learner {
            Learner::Forest(f) | Learner::LeafKnn { forest: f, .. } => f.seed = seed,
            #[cfg(feature = "neural")]
            Learner::Neural(n) => n.train.seed = seed,
            Learner::Ensemble(e) => e.seed = seed,
        }
    }

    /// Cap the epochs of a neural learner (and of an ensemble's neural members; no effect on
    /// forests).
    pub fn set_max_epochs(&mut self, epochs: usize) {
        match &mut self.learner {
            #[cfg(feature = "neural")]
            Learner::Neural(n) => n.train.epochs = epochs,
            Learner::Ensemble(e) => e.max_epochs = Some(epochs),
            _ => {}
        }
    }

    /// Its name, which is also the feature set recorded in model files.
    pub fn name(&self) -> &'static str {
        match self.kind {
            AttackKind::IotSentinel => "iot-sentinel",
            AttackKind::FlowStats => "flow-stats",
            AttackKind::MAgg => "m-agg",
            AttackKind::MSeq => "m-seq",
            AttackKind::PacketLstm => "packet-lstm",
            AttackKind::Image(_) => "image-cnn",
            AttackKind::Df(p) => match p.input {
                wf::DfInput::Direction => "df",
                wf::DfInput::SignedSize => "df-size",
                wf::DfInput::DirectionalTiming => "tiktok",
            },
            AttackKind::KFp => "k-fp",
            AttackKind::Ensemble(_) => "ensemble",
        }
    }

    /// The name with every option spelled out (`image-cnn:bin_s=60,window=480,...`): what model
    /// files record as their feature set, since the windows depend on the options.
    pub fn spec(&self) -> String {
        match self.kind {
            AttackKind::Image(p) => format!("image-cnn:{}", p.to_options()),
            AttackKind::Df(p) => format!("{}:{}", self.name(), p.to_options()),
            AttackKind::Ensemble(s) => format!("ensemble:{}", s.to_options()),
            _ => self.name().to_string(),
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
            AttackKind::MSeq => (
                "4 s windows of 40 x 100 ms slots x [in count, in bytes, out count, out bytes] + silence -> BiLSTM(8) x 2 -> dense 128 -> softmax",
                "Shenoi et al., iPET, PETS 2023 (M_seq)",
            ),
            AttackKind::PacketLstm => (
                "windows of 20 packets x [length, direction, 16 protocol flags, port indicators, log inter-arrival] -> LSTM(64) -> dense 64 -> softmax",
                "IoTFlowGenerator's packet-metadata adversary (LSTM over packet windows)",
            ),
            AttackKind::Image(_) => (
                "per-minute in/out volume over 8 h windows (options: bin_s, window, stride, size, mtf_bins) -> GASF, GADF, MTF, RP images x 2 directions -> 2-D CNN",
                "ITEMTK (\"I Still See You\"), EWSN 2024",
            ),
            AttackKind::Df(p) => match p.input {
                wf::DfInput::Direction => (
                    "directions of the first 5000 packets (option length) -> DF's 1-D CNN: 4 blocks of 2 conv (32..256 filters of 8) + batch norm + ELU/ReLU, max pool 8/4, dropout; dense 512 x 2 -> softmax; Adamax 0.002, 30 epochs",
                    "Sirinam et al., Deep Fingerprinting, CCS 2018",
                ),
                wf::DfInput::SignedSize => (
                    "signed sizes (+ sent, - received) of the first 5000 packets (option length) -> DF's 1-D CNN and training",
                    "Deep Fingerprinting (Sirinam et al., CCS 2018) over packet sizes",
                ),
                wf::DfInput::DirectionalTiming => (
                    "directional timing (seconds since the first packet x direction) of the first 5000 packets (option length) -> DF's 1-D CNN and training",
                    "Rahman et al., Tik-Tok, PETS 2020",
                ),
            },
            AttackKind::KFp => (
                "k-FP's 175 features (timing, counts, ordering, concentration, rates, sizes) -> forest of 1000 trees -> 3 nearest neighbours in Hamming distance over leaves",
                "Hayes and Danezis, k-fingerprinting, USENIX Security 2016",
            ),
            AttackKind::Ensemble(_) => (
                "soft vote (mean probability, or weighted by inner cross-validation) of capture-level attacks (default iot-sentinel, flow-stats, k-fp; options members, combine, df_length)",
                "Kittler et al., On Combining Classifiers, TPAMI 1998 (mean rule)",
            ),
        }
    }

    /// Why traces may give this attack no rows, for error messages.
    pub fn no_rows_hint(&self) -> String {
        match self.kind {
            AttackKind::Image(p) => format!(
                "image-cnn windows span {} bins of {} s ({:.1} h) and the traces are shorter: \
                 join captures (hush attack --join N) or shorten the window \
                 (image-cnn:bin_s=1,window=300)",
                p.window_bins,
                p.bin_s,
                p.window_bins as f64 * p.bin_s / 3600.0
            ),
            AttackKind::PacketLstm => format!(
                "packet-lstm needs traces of at least {} packets with known directions",
                features::PACKET_WINDOW
            ),
            _ => "the traces have no packets with known directions".into(),
        }
    }

    /// The rows of every trace if they are all one row per capture (DF, k-FP, the ensemble and
    /// the whole-capture forests), for callers that need one row per trace.
    pub fn is_capture_level(&self) -> bool {
        matches!(
            self.kind,
            AttackKind::IotSentinel
                | AttackKind::FlowStats
                | AttackKind::Df(_)
                | AttackKind::KFp
                | AttackKind::Ensemble(_)
        )
    }

    /// Feature names, in column order.
    pub fn feature_names(&self) -> Vec<String> {
        match self.kind {
            AttackKind::IotSentinel => features::sentinel_feature_names(),
            AttackKind::FlowStats => features::flow_feature_names(),
            AttackKind::MAgg => features::agg_feature_names(),
            AttackKind::MSeq => features::seq_feature_names(),
            AttackKind::PacketLstm => features::packet_feature_names(),
            AttackKind::Df(p) => wf::df_feature_names(&p),
            AttackKind::KFp => wf::kfp_feature_names(),
            AttackKind::Ensemble(s) => ensemble::feature_names(s),
            AttackKind::Image(p) => {
                let mut out = Vec::new();
                for d in ["in", "out"] {
                    for k in images::ALL_KINDS {
                        let k = format!("{k:?}").to_ascii_lowercase();
                        for r in 0..p.size {
                            out.extend((0..p.size).map(|c| format!("{d}_{k}_r{r}c{c}")));
                        }
                    }
                }
                out
            }
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
            AttackKind::MSeq => features::seq_windows(trace)
                .into_iter()
                .map(|(mut v, silence)| {
                    v.push(silence);
                    v
                })
                .collect(),
            AttackKind::PacketLstm => features::packet_windows(trace),
            AttackKind::Image(p) => images::image_windows(trace, &p),
            AttackKind::Df(p) => wf::df_row(trace, &p).into_iter().collect(),
            AttackKind::KFp => wf::kfp_features(trace).into_iter().collect(),
            AttackKind::Ensemble(s) => ensemble::row(s, trace).into_iter().collect(),
        }
    }

    /// A learning dataset from traces with their labels and groups, features extracted in
    /// parallel. Also returns, per row, the index of the trace it came from.
    pub fn dataset(
        &self,
        traces: &[(&Trace, u32, u32)],
        classes: &[String],
    ) -> Result<(MlDataset, Vec<usize>), AttackError> {
        self.dataset_capped(traces, classes, None)
    }

    /// [`Attack::dataset`] with at most `max_rows_per_trace` rows from each trace, evenly
    /// spaced over its windows: for training sets, so a defense that multiplies a trace's
    /// packets (and packet windows) does not multiply the training time with them.
    pub fn dataset_capped(
        &self,
        traces: &[(&Trace, u32, u32)],
        classes: &[String],
        max_rows_per_trace: Option<usize>,
    ) -> Result<(MlDataset, Vec<usize>), AttackError> {
        let rows: Vec<Vec<Vec<f32>>> = traces
            .par_iter()
            .map(|(t, _, _)| cap_rows(self.windows(t), max_rows_per_trace))
            .collect();
        let items: Vec<(&[Vec<f32>], u32, u32)> = rows
            .iter()
            .zip(traces)
            .map(|(r, (_, label, group))| (r.as_slice(), *label, *group))
            .collect();
        self.dataset_from_rows(&items, classes)
    }

    /// The rows of one example (a capture, or a window of one), at most `max_rows` of them
    /// evenly spaced over all its windows, computed once to serve every fold.
    pub fn example_rows(&self, trace: &Trace, max_rows: Option<usize>) -> ExampleRows {
        let (rows, total) = match self.kind {
            // The one view whose rows grow with every packet: built capped.
            AttackKind::PacketLstm => features::packet_windows_kept(trace, max_rows),
            _ => {
                let rows = self.windows(trace);
                let total = rows.len();
                (cap_rows(rows, max_rows), total)
            }
        };
        ExampleRows {
            rows,
            total,
            silent: trace.packets.is_empty(),
        }
    }

    /// A learning dataset from rows already computed: `(rows, label, group)` per example, in
    /// order. Also returns, per row, the index of the example it came from.
    pub fn dataset_from_rows(
        &self,
        items: &[(&[Vec<f32>], u32, u32)],
        classes: &[String],
    ) -> Result<(MlDataset, Vec<usize>), AttackError> {
        let n: usize = items.iter().map(|(r, _, _)| r.len()).sum();
        let names = self.feature_names();
        let mut data = Vec::with_capacity(n * names.len());
        let (mut y, mut groups, mut origin) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (i, (rows, label, group)) in items.iter().enumerate() {
            for w in rows.iter() {
                data.extend_from_slice(w);
                y.push(*label);
                groups.push(*group);
                origin.push(i);
            }
        }
        let x = Matrix::new(y.len(), names.len(), data)?;
        let ds = MlDataset {
            x,
            y,
            classes: classes.to_vec(),
            groups,
            feature_names: names,
        };
        // No rows is no error here (a test fold of short traces); fitting on none is.
        if !ds.y.is_empty() {
            ds.validate()?;
        }
        Ok((ds, origin))
    }

    /// [`Attack::dataset`] over a whole labelled dataset, each trace its own group.
    pub fn dataset_of(
        &self,
        ds: &hush_trace::dataset::Dataset,
    ) -> Result<(MlDataset, Vec<usize>), AttackError> {
        let items: Vec<(&Trace, u32, u32)> = ds
            .traces
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let label = ds
                    .labels
                    .iter()
                    .position(|l| *l == t.label)
                    .ok_or_else(|| {
                        AttackError::Data(format!(
                            "{}: label {:?} is not in the dataset's labels",
                            t.trace.name, t.label
                        ))
                    })?;
                Ok((&t.trace, label as u32, i as u32))
            })
            .collect::<Result<_, AttackError>>()?;
        self.dataset(&items, &ds.labels)
    }

    /// Fit the attack's model and wrap it in a model file.
    pub fn fit(&self, data: &MlDataset, trained_on: &str) -> Result<ModelFile, AttackError> {
        self.fit_with_progress(data, trained_on, &mut |_| {})
    }

    /// [`Attack::fit`], calling `progress` after each epoch of a neural learner.
    pub fn fit_with_progress(
        &self,
        data: &MlDataset,
        trained_on: &str,
        progress: &mut dyn FnMut(&EpochReport),
    ) -> Result<ModelFile, AttackError> {
        if data.y.is_empty() {
            return Err(AttackError::Data(format!(
                "{}: no training rows (an empty fold, or no capture it can read)",
                self.name()
            )));
        }
        let mut present: Vec<u32> = data.y.clone();
        present.sort_unstable();
        present.dedup();
        if present.len() < 2 {
            return Err(AttackError::Data(format!(
                "{}: the training rows hold {} class{} ({}): an attack needs at least two",
                self.name(),
                present.len(),
                if present.len() == 1 { "" } else { "es" },
                present
                    .iter()
                    .map(|&c| data.classes.get(c as usize).map_or("?", String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let model = match &self.learner {
            Learner::Forest(p) => Model::RandomForest(RandomForest::fit(data, p)?),
            Learner::LeafKnn { forest, k } => Model::LeafKnn(LeafKnn::fit(data, forest, *k)?),
            Learner::Ensemble(l) => {
                let AttackKind::Ensemble(spec) = self.kind else {
                    return Err(AttackError::Data(format!(
                        "{}: an ensemble learner needs ensemble features",
                        self.name()
                    )));
                };
                ensemble::fit(spec, *l, data, progress)?
            }
            #[cfg(feature = "neural")]
            Learner::Neural(p) => {
                data.validate()?;
                let (tr, va) = validation_split(data, p.validation_share, p.train.seed);
                let val = if va.is_empty() { &tr } else { &va };
                let labels = |idx: &[usize]| idx.iter().map(|&i| data.y[i]).collect::<Vec<_>>();
                let train_seq = self.seq_data(&data.x.select(&tr), &labels(&tr), data)?;
                let val_seq = self.seq_data(&data.x.select(val), &labels(val), data)?;
                Model::Neural(neural::train(
                    &p.architecture,
                    &train_seq,
                    &val_seq,
                    &p.train,
                    progress,
                )?)
            }
        };
        Ok(ModelFile {
            header: ModelHeader {
                format: hush_ml::model::FORMAT.into(),
                version: hush_ml::model::VERSION,
                feature_set: self.spec(),
                feature_names: data.feature_names.clone(),
                classes: data.classes.clone(),
                trained_on: trained_on.into(),
            },
            model,
        })
    }

    /// Rows of a sequence attack as windows for a network.
    #[cfg(feature = "neural")]
    fn seq_data(&self, x: &Matrix, y: &[u32], data: &MlDataset) -> Result<SeqData, AttackError> {
        let (steps, features, extra_dim) = self.kind.seq_shape().ok_or_else(|| {
            AttackError::Data(format!("{} is not a sequence attack", self.name()))
        })?;
        rows_to_seq(x, y, data.classes.len(), (steps, features, extra_dim))
    }

    /// Class probabilities of feature rows under a model file of this attack.
    pub fn predict_rows(
        &self,
        model: &ModelFile,
        x: &Matrix,
    ) -> Result<Vec<Vec<f32>>, AttackError> {
        self.predict_model(&model.model, model.header.classes.len(), x)
    }

    /// Class probabilities of feature rows under a model of this attack over `n` classes.
    pub fn predict_model(
        &self,
        model: &Model,
        n: usize,
        x: &Matrix,
    ) -> Result<Vec<Vec<f32>>, AttackError> {
        match model {
            Model::RandomForest(f) => Ok(f.predict_proba(x)?),
            Model::LeafKnn(k) => Ok(k.predict_proba(x)?),
            Model::Ensemble { members } => ensemble::predict(members, n, x),
            Model::Knn(k) => Ok(k
                .predict(x)?
                .into_iter()
                .map(|c| {
                    let mut p = vec![0.0; n];
                    p[c as usize] = 1.0;
                    p
                })
                .collect()),
            #[cfg(feature = "neural")]
            Model::Neural(m) => {
                let shape = (m.steps, m.features, m.extra_dim);
                Ok(m.predict_proba(&rows_to_seq(x, &[], m.n_classes, shape)?)?)
            }
        }
    }

    /// Class probabilities for each window of `trace` under a model file of this attack.
    pub fn predict(&self, model: &ModelFile, trace: &Trace) -> Result<Vec<Vec<f32>>, AttackError> {
        if model.header.feature_set != self.spec() {
            return Err(MlError::FeatureSet {
                expected: self.spec(),
                found: model.header.feature_set.clone(),
            }
            .into());
        }
        let rows = self.windows(trace);
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let x = Matrix::from_rows(&rows)?;
        self.predict_rows(model, &x)
    }
}

/// The feature rows of one example under one attack, as [`Attack::example_rows`] computes
/// them: once per example, then shared by every fold that trains or tests on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExampleRows {
    /// The rows, at most the cap they were computed with (evenly spaced over all of them).
    pub rows: Vec<Vec<f32>>,
    /// How many rows the example has without a cap.
    pub total: usize,
    /// The example has no packets at all (an attacker learns what silence means).
    pub silent: bool,
}

impl ExampleRows {
    /// Whether `rows` holds every row (no cap cut any), so they can serve as test rows too.
    pub fn complete(&self) -> bool {
        self.rows.len() == self.total
    }
}

/// At most `cap` of `rows`: the middle of each of `cap` equal slices (deterministic, spread out).
fn cap_rows(mut rows: Vec<Vec<f32>>, cap: Option<usize>) -> Vec<Vec<f32>> {
    let keep: Vec<usize> = features::kept_indices(rows.len(), cap).collect();
    if keep.len() == rows.len() {
        return rows;
    }
    keep.into_iter()
        .map(|i| std::mem::take(&mut rows[i]))
        .collect()
}

/// Feature rows (each `steps × features` values, then `extra` scalars) as network windows.
#[cfg(feature = "neural")]
fn rows_to_seq(
    x: &Matrix,
    y: &[u32],
    n_classes: usize,
    (steps, features, extra_dim): (usize, usize, usize),
) -> Result<SeqData, AttackError> {
    let w = steps * features;
    if x.cols() != w + extra_dim {
        return Err(MlError::Shape(format!(
            "rows of {} values, but the network reads {steps} steps × {features} features + \
             {extra_dim} extra",
            x.cols()
        ))
        .into());
    }
    let mut xs = Vec::with_capacity(x.rows() * w);
    let mut extra = Vec::with_capacity(x.rows() * extra_dim);
    for i in 0..x.rows() {
        let r = x.row(i);
        xs.extend_from_slice(&r[..w]);
        extra.extend_from_slice(&r[w..]);
    }
    Ok(SeqData {
        x: xs,
        n: x.rows(),
        steps,
        features,
        extra,
        extra_dim,
        y: y.to_vec(),
        n_classes,
    })
}

#[cfg(feature = "neural")]
/// Rows for training and for validation: per class, `share` of its capture groups (rounded,
/// at least one left for training) are held out whole, chosen by a seeded shuffle.
fn validation_split(data: &MlDataset, share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut groups_of: Vec<Vec<u32>> = vec![Vec::new(); data.classes.len()];
    for (&c, &g) in data.y.iter().zip(&data.groups) {
        let list = &mut groups_of[c as usize];
        if !list.contains(&g) {
            list.push(g);
        }
    }
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x005e_ed0f_7a11);
    let mut held = std::collections::HashSet::new();
    for list in &mut groups_of {
        list.sort_unstable();
        list.shuffle(&mut rng);
        let k = ((share * list.len() as f64).round() as usize).min(list.len().saturating_sub(1));
        held.extend(list.iter().take(k).copied());
    }
    (0..data.y.len()).partition(|&r| !held.contains(&data.groups[r]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_trace::{Direction, Packet};

    #[test]
    fn capped_datasets_keep_evenly_spaced_windows() {
        // 200 packets: ten windows of 20, told apart by their first packet's size.
        let t = Trace {
            name: "t".into(),
            packets: (0..200u32)
                .map(|i| Packet {
                    t_ns: i64::from(i) * 1_000_000,
                    frame_len: 100 + i,
                    dir: Direction::Outbound,
                    ..Packet::default()
                })
                .collect(),
            endpoints: Vec::new(),
            report: Default::default(),
        };
        // Packet windows' features, whatever learns from them (a forest here, so the test runs
        // without the neural feature too).
        let a = Attack {
            kind: AttackKind::PacketLstm,
            learner: Learner::Forest(ForestParams::default()),
        };
        let classes = vec!["x".to_string()];
        let (all, _) = a.dataset(&[(&t, 0, 0)], &classes).unwrap();
        assert_eq!(all.x.rows(), 10);
        let (three, origin) = a.dataset_capped(&[(&t, 0, 0)], &classes, Some(3)).unwrap();
        assert_eq!(origin, [0, 0, 0]);
        // The middles of three equal slices of ten: windows 1, 5 and 8.
        let first = |d: &MlDataset, r: usize| d.x.row(r)[0];
        let firsts: Vec<f32> = (0..3).map(|r| first(&three, r)).collect();
        assert_eq!(firsts, [120.0, 200.0, 260.0]);
        let (same, _) = a.dataset_capped(&[(&t, 0, 0)], &classes, Some(50)).unwrap();
        assert_eq!(same.x, all.x, "a cap above the count changes nothing");
    }

    #[test]
    fn network_attacks_need_the_neural_feature_and_say_so() {
        for name in ["m-seq", "packet-lstm", "df", "tiktok", "image-cnn"] {
            let built = cfg!(feature = "neural");
            match (Attack::by_name(name), built) {
                (Ok(_), true) => {}
                (Err(e), false) => {
                    assert!(e.to_string().contains("`neural` feature"), "{e}");
                    assert!(e.to_string().starts_with(name), "{e}");
                }
                (r, _) => panic!("{name} with neural = {built}: {r:?}"),
            }
        }
        // The forests are there either way.
        for name in ["iot-sentinel", "flow-stats", "m-agg", "k-fp", "ensemble"] {
            Attack::by_name(name).unwrap();
        }
    }
}
