//! Neural networks on [burn](https://burn.dev) (CPU, burn's Flex backend), behind the `neural`
//! feature: every sequence model in hush (iPET's M_seq, IoTFlowGenerator's LSTM adversary, the
//! image attack's CNN) is one [`Architecture`], trained by [`train`] and stored as a
//! [`NeuralModel`] in the one [`ModelFile`](crate::ModelFile) format.
//!
//! - [`SeqData`]: `n` windows of `steps × features` values, optional per-window scalars fed
//!   after the recurrent or convolutional part, labels;
//! - [`Architecture`]: MLP, 1-D CNN, Deep Fingerprinting's CNN (convolution blocks with batch
//!   normalisation, ELU/ReLU, strided max pooling and dropout), BiLSTM (M_seq), LSTM, GRU, 2-D
//!   CNN, each ending in `[features, extra scalars] → dense → dropout → classes`;
//! - [`TrainConfig`]: Adam, [`Nadam`] or [`Adamax`], batches, early stopping on validation loss
//!   (best weights kept), reduce-LR-on-plateau; defaults are M_seq's;
//! - [`NeuralModel`]: the architecture, shapes, the standardiser fitted on the training data,
//!   and the weights as burn record bytes (burnpack), base64 in the JSON model file.
//!
//! Training is seeded through and through: weights, shuffling and dropout masks come from
//! `TrainConfig::seed`, recurrent layers split a batch into fixed chunks, so the same data and
//! seed give the same weight bytes whatever the thread count.
//!
//! ```
//! use hush_ml::neural::{Architecture, SeqData, TrainConfig, train};
//! // 64 windows of 6 steps × 2 features: class 1 rises, class 0 falls.
//! let (n, steps) = (64, 6);
//! let mut x = Vec::new();
//! let mut y = Vec::new();
//! for i in 0..n {
//!     let c = (i % 2) as u32;
//!     for t in 0..steps {
//!         let v = if c == 1 { t as f32 } else { (steps - t) as f32 };
//!         x.extend([v, 1.0]);
//!     }
//!     y.push(c);
//! }
//! let data = SeqData { x, n, steps, features: 2, extra: vec![], extra_dim: 0, y, n_classes: 2 };
//! let arch = Architecture::Mlp { hidden: vec![16], dropout: 0.0 };
//! let cfg = TrainConfig { epochs: 30, batch_size: 16, learning_rate: 1e-2, ..TrainConfig::default() };
//! let model = train(&arch, &data, &data, &cfg, &mut |_| {})?;
//! let p = model.predict_proba(&data)?;
//! assert!(p[1][1] > 0.9 && p[0][0] > 0.9);
//! # Ok::<(), hush_ml::MlError>(())
//! ```

mod data;
mod net;
mod optim;
pub(crate) mod rnn;
mod train;

use serde::{Deserialize, Serialize};

pub use data::{SeqData, SeqStandardizer};
pub use optim::{Adamax, Nadam};
pub use train::train;

use crate::MlError;

pub use crate::{EVAL_BATCH, EpochReport};

/// The most values one window of a network may hold (steps × features + extra scalars): far
/// above any hush attack's (DF reads 5,000), far below a damaged file's nonsense.
const MAX_WINDOW_VALUES: usize = 1 << 24;

/// A network shape. Every architecture reads `steps × features` windows, turns them into a
/// feature vector, appends the window's extra scalars, then (unless `dense` is 0) a dense layer,
/// dropout, and a linear layer to the classes (softmax in [`NeuralModel::predict_proba`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Architecture {
    /// Fully connected layers (ReLU, each followed by dropout) over the flattened window and
    /// the extra scalars.
    Mlp {
        /// Widths of the hidden layers.
        hidden: Vec<usize>,
        /// Dropout after each hidden layer.
        dropout: f32,
    },
    /// 1-D convolutions over time (features as channels): each `channels[i]` wide, `kernel`
    /// long, "same" padding, ReLU, max pooling by 2; flattened; dense (ReLU).
    Cnn1d {
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Kernel length.
        kernel: usize,
        /// Width of the dense layer (0: none).
        dense: usize,
        /// Dropout before the output layer.
        dropout: f32,
    },
    /// iPET's M_seq: `layers` bidirectional LSTMs of `hidden` units (all but the last returning
    /// sequences), the last one's final states, the extra scalars, dense (tanh), dropout.
    /// [`Architecture::m_seq`] is BiLSTM(8) → BiLSTM(8) → Dense(128, tanh) → Dropout(0.2).
    BiLstm {
        /// Units per direction.
        hidden: usize,
        /// Stacked bidirectional layers.
        layers: usize,
        /// Width of the dense layer (0: none).
        dense: usize,
        /// Dropout before the output layer.
        dropout: f32,
    },
    /// One LSTM's final state, the extra scalars, dense (tanh), dropout (an
    /// IoTFlowGenerator-like adversary).
    Lstm {
        /// Units.
        hidden: usize,
        /// Width of the dense layer (0: none).
        dense: usize,
        /// Dropout before the output layer.
        dropout: f32,
    },
    /// Stacked GRUs (one or both directions), the last one's final states, the extra scalars,
    /// dense (tanh), dropout.
    Gru {
        /// Units per direction.
        hidden: usize,
        /// Stacked layers.
        layers: usize,
        /// Both directions.
        bidirectional: bool,
        /// Width of the dense layer (0: none).
        dense: usize,
        /// Dropout before the output layer.
        dropout: f32,
    },
    /// Deep Fingerprinting's 1-D CNN (Sirinam, Imani, Juarez and Wright, "Deep Fingerprinting:
    /// Undermining Website Fingerprinting Defenses with Deep Learning", CCS 2018): blocks of two
    /// convolutions over time (features as channels), each `kernel` long with "same" padding and
    /// followed by batch normalisation and an activation (ELU in the first block, ReLU in the
    /// others), then max pooling `pool` wide with stride `pool_stride` ("same" padding) and
    /// dropout; flattened, the extra scalars appended; dense layers each followed by batch
    /// normalisation, ReLU and their dropout; softmax. [`Architecture::df`] is the published
    /// network. Batch normalisation uses Keras' defaults, which DF trained with (ε 1e-3, running
    /// statistics with momentum 0.99), except that for the first 100 steps the running
    /// statistics are the plain mean of the batches seen (Keras would still weigh its initial
    /// 0 and 1 by 0.99^steps, a third after 100 steps, which small data sets never outgrow).
    Df {
        /// Filters of each block's two convolutions (DF: 32, 64, 128, 256).
        filters: Vec<usize>,
        /// Convolution length (DF: 8).
        kernel: usize,
        /// Max-pooling window (DF: 8).
        pool: usize,
        /// Max-pooling stride (DF: 4).
        pool_stride: usize,
        /// Dropout after each block (DF: 0.1).
        block_dropout: f32,
        /// Widths of the dense layers (DF: 512, 512).
        dense: Vec<usize>,
        /// Dropout after each dense layer (DF: 0.7, 0.5).
        dense_dropout: Vec<f32>,
    },
    /// 2-D convolutions over the window as `in_channels` images stacked along the steps (each
    /// `steps / in_channels × features`; one image when `in_channels` is 1): each
    /// `kernel × kernel`, "same" padding, ReLU, 2×2 max pooling (1 along a side already 1);
    /// flattened; dense (ReLU). Several image kinds of one window (ITEMTK's fusion) enter as
    /// channels.
    Cnn2d {
        /// Images per window, stacked along the steps (`steps` must be a multiple).
        #[serde(default = "one")]
        in_channels: usize,
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Kernel side.
        kernel: usize,
        /// Width of the dense layer (0: none).
        dense: usize,
        /// Dropout before the output layer.
        dropout: f32,
    },
}

fn one() -> usize {
    1
}

impl Architecture {
    /// iPET's M_seq: BiLSTM(8) returning sequences → BiLSTM(8) → concat extra → Dense(128,
    /// tanh) → Dropout(0.2) → softmax.
    pub fn m_seq() -> Architecture {
        Architecture::BiLstm {
            hidden: 8,
            layers: 2,
            dense: 128,
            dropout: 0.2,
        }
    }

    /// Deep Fingerprinting's network as published (Sirinam et al., CCS 2018, and its code):
    /// four blocks of 32, 64, 128 and 256 filters of 8, max pooling 8 with stride 4, dropout 0.1
    /// after each block; Dense(512) → dropout 0.7 → Dense(512) → dropout 0.5 → softmax.
    pub fn df() -> Architecture {
        Architecture::Df {
            filters: vec![32, 64, 128, 256],
            kernel: 8,
            pool: 8,
            pool_stride: 4,
            block_dropout: 0.1,
            dense: vec![512, 512],
            dense_dropout: vec![0.7, 0.5],
        }
    }

    /// Width of the dense layer of the head (0: none; the MLP's hidden layers and DF's dense
    /// layers are their own).
    fn dense(&self) -> usize {
        match self {
            Architecture::Mlp { .. } | Architecture::Df { .. } => 0,
            Architecture::Cnn1d { dense, .. }
            | Architecture::BiLstm { dense, .. }
            | Architecture::Lstm { dense, .. }
            | Architecture::Gru { dense, .. }
            | Architecture::Cnn2d { dense, .. } => *dense,
        }
    }

    /// The dropout of the head (the MLP's after each layer); DF's are per layer.
    pub(crate) fn dropout(&self) -> f32 {
        match self {
            Architecture::Df { .. } => 0.0,
            Architecture::Mlp { dropout, .. }
            | Architecture::Cnn1d { dropout, .. }
            | Architecture::BiLstm { dropout, .. }
            | Architecture::Lstm { dropout, .. }
            | Architecture::Gru { dropout, .. }
            | Architecture::Cnn2d { dropout, .. } => *dropout,
        }
    }

    /// Check the sizes: every layer at least one unit wide, kernels at least 1, dropout in
    /// `[0, 1)`.
    pub fn validate(&self) -> Result<(), MlError> {
        let p = self.dropout();
        if !(0.0..1.0).contains(&p) {
            return Err(MlError::Param(format!("dropout {p} is not in [0, 1)")));
        }
        let bad = |what: &str| Err(MlError::Param(format!("{what} must be at least 1")));
        match self {
            Architecture::Df {
                filters,
                kernel,
                pool,
                pool_stride,
                block_dropout,
                dense,
                dense_dropout,
            } => {
                if let Some(p) = dense_dropout
                    .iter()
                    .chain([block_dropout])
                    .find(|p| !(0.0..1.0).contains(*p))
                {
                    return Err(MlError::Param(format!("dropout {p} is not in [0, 1)")));
                }
                if dense.len() != dense_dropout.len() {
                    return Err(MlError::Param(format!(
                        "{} dense layers but {} dropout rates",
                        dense.len(),
                        dense_dropout.len()
                    )));
                }
                if filters.is_empty() || filters.contains(&0) {
                    bad("there must be blocks and every filter count")
                } else if dense.contains(&0) {
                    bad("every dense width")
                } else if *kernel == 0 || *pool == 0 || *pool_stride == 0 {
                    bad("the kernel, the pool and its stride")
                } else {
                    Ok(())
                }
            }
            Architecture::Mlp { hidden, .. } if hidden.contains(&0) => bad("every hidden width"),
            Architecture::Cnn2d { in_channels: 0, .. } => bad("in_channels"),
            Architecture::Cnn1d {
                channels, kernel, ..
            }
            | Architecture::Cnn2d {
                channels, kernel, ..
            } => {
                if channels.is_empty() || channels.contains(&0) {
                    bad("there must be convolutions and every channel count")
                } else if *kernel == 0 {
                    bad("the kernel")
                } else {
                    Ok(())
                }
            }
            Architecture::BiLstm { hidden, layers, .. }
            | Architecture::Gru { hidden, layers, .. } => {
                if *hidden == 0 {
                    bad("hidden")
                } else if *layers == 0 {
                    bad("layers")
                } else {
                    Ok(())
                }
            }
            Architecture::Lstm { hidden: 0, .. } => bad("hidden"),
            _ => Ok(()),
        }
    }
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Adam (β 0.9, 0.999; ε 1e-7 as in Keras).
    Adam,
    /// Adam with Nesterov momentum ([`Nadam`]; β 0.9, 0.999; ε 1e-7).
    Nadam,
    /// Adam with the infinity norm ([`Adamax`]; β 0.9, 0.999; ε 1e-8), Deep Fingerprinting's.
    Adamax,
}

/// Reduce the learning rate when the validation loss stops improving (Keras'
/// `ReduceLROnPlateau`, with no minimum improvement: any decrease counts).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceLr {
    /// Multiply the rate by this (1: never reduce).
    pub factor: f64,
    /// After this many epochs without a new best validation loss.
    pub patience: usize,
    /// Never below this.
    pub min_lr: f64,
    /// Epochs to wait after a reduction before counting again.
    pub cooldown: usize,
}

/// How to train. The defaults are iPET's M_seq's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Most epochs.
    pub epochs: usize,
    /// Windows per gradient step.
    pub batch_size: usize,
    /// Starting learning rate.
    pub learning_rate: f64,
    /// Optimiser.
    pub optimizer: Optimizer,
    /// Stop after this many epochs without a new best validation loss (the best epoch's weights
    /// are kept; 0: never stop early).
    pub early_stopping_patience: usize,
    /// Learning-rate reduction on plateaus.
    pub reduce_lr: ReduceLr,
    /// Seed of the initial weights, the shuffles and the dropout masks.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 128,
            learning_rate: 1e-3,
            optimizer: Optimizer::Adam,
            early_stopping_patience: 16,
            reduce_lr: ReduceLr {
                factor: 0.7,
                patience: 5,
                min_lr: 1e-9,
                cooldown: 3,
            },
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Deep Fingerprinting's training (Sirinam et al., CCS 2018): Adamax at 0.002 (β 0.9, 0.999,
    /// ε 1e-8), batches of 128, 30 epochs, no early stopping and no learning-rate schedule. The
    /// weights kept are still the epoch with the lowest validation loss.
    pub fn df() -> TrainConfig {
        TrainConfig {
            epochs: 30,
            batch_size: 128,
            learning_rate: 0.002,
            optimizer: Optimizer::Adamax,
            early_stopping_patience: 0,
            reduce_lr: ReduceLr {
                factor: 1.0,
                patience: 1,
                min_lr: 0.0,
                cooldown: 0,
            },
            seed: 0,
        }
    }

    /// Check the numbers.
    pub fn validate(&self) -> Result<(), MlError> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(MlError::Param(
                "epochs and batch size must be at least 1".into(),
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(MlError::Param(format!(
                "learning rate {} is not a positive number",
                self.learning_rate
            )));
        }
        let r = &self.reduce_lr;
        let factor_ok = r.factor > 0.0 && r.factor <= 1.0;
        if !factor_ok || r.min_lr.is_nan() || r.min_lr < 0.0 {
            return Err(MlError::Param(format!(
                "reduce-LR factor {} is not in (0, 1] or min_lr {} is negative",
                r.factor, r.min_lr
            )));
        }
        Ok(())
    }
}

/// A trained network: what it reads, how to standardise it, and its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuralModel {
    /// The shape.
    pub architecture: Architecture,
    /// Steps per window.
    pub steps: usize,
    /// Features per step.
    pub features: usize,
    /// Extra scalars per window.
    pub extra_dim: usize,
    /// Classes.
    pub n_classes: usize,
    /// Fitted on the training data.
    pub standardizer: SeqStandardizer,
    /// The epoch whose weights these are (the best validation loss).
    pub best_epoch: usize,
    /// Epochs run (fewer than asked when training stopped early).
    pub epochs_run: usize,
    /// burn's record of the weights (burnpack bytes), base64 in JSON.
    #[serde(with = "base64_bytes")]
    pub weights: Vec<u8>,
}

impl NeuralModel {
    /// Checks a model read from a file before any network is built from it: a valid
    /// architecture, shapes that fit each other and its standardiser, finite statistics, and
    /// weights at least as large as the network's largest layer (so a damaged or hostile file
    /// cannot make hush allocate far more than the file holds).
    pub fn validate(&self) -> Result<(), MlError> {
        let bad = |why: String| Err(MlError::Format(format!("the network is damaged: {why}")));
        self.architecture
            .validate()
            .map_err(|e| MlError::Format(format!("the network is damaged: {e}")))?;
        if self.steps == 0 || self.features == 0 || self.n_classes == 0 {
            return bad("a window needs steps, features and classes".into());
        }
        let window = self
            .steps
            .checked_mul(self.features)
            .and_then(|w| w.checked_add(self.extra_dim));
        if window.is_none_or(|w| w > MAX_WINDOW_VALUES) {
            return bad(format!(
                "windows of {} steps × {} features + {} are too large",
                self.steps, self.features, self.extra_dim
            ));
        }
        let s = &self.standardizer;
        if s.mean.len() != self.features
            || s.inv_std.len() != self.features
            || s.extra_mean.len() != self.extra_dim
            || s.extra_inv_std.len() != self.extra_dim
        {
            return bad("its standardiser does not match its shapes".into());
        }
        if [&s.mean, &s.inv_std, &s.extra_mean, &s.extra_inv_std]
            .into_iter()
            .flatten()
            .any(|v| !v.is_finite())
        {
            return bad("its standardiser holds a value that is not finite".into());
        }
        let largest = self.largest_layer_params();
        if largest.saturating_mul(4) > self.weights.len() as u128 {
            return bad(format!(
                "{} bytes of weights cannot hold a layer of {largest} parameters",
                self.weights.len()
            ));
        }
        Ok(())
    }

    /// A lower bound on the parameters of the network's largest layer (its weights hold at
    /// least this many `f32`s).
    fn largest_layer_params(&self) -> u128 {
        let u = |v: usize| v as u128;
        let (f, c, e) = (u(self.features), u(self.n_classes), u(self.extra_dim));
        let chain = |first: u128, widths: &[usize], per: u128| -> u128 {
            let mut prev = first;
            let mut most = 0u128;
            for &w in widths {
                most = most.max(prev.saturating_mul(u(w)).saturating_mul(per));
                prev = u(w);
            }
            most
        };
        let head = |last: u128, dense: usize| {
            if dense == 0 {
                last.saturating_mul(c)
            } else {
                last.saturating_mul(u(dense))
                    .max(u(dense).saturating_mul(c))
            }
        };
        match &self.architecture {
            Architecture::Mlp { hidden, .. } => {
                let input = u(self.steps).saturating_mul(f).saturating_add(e);
                chain(input, hidden, 1).max(hidden.last().map_or(input, |&h| u(h)) * c)
            }
            Architecture::Cnn1d {
                channels,
                kernel,
                dense,
                ..
            } => {
                chain(f, channels, u(*kernel)).max(head(u(*channels.last().unwrap_or(&1)), *dense))
            }
            Architecture::Cnn2d {
                in_channels,
                channels,
                kernel,
                dense,
                ..
            } => chain(
                u(*in_channels),
                channels,
                u(*kernel).saturating_mul(u(*kernel)),
            )
            .max(head(u(*channels.last().unwrap_or(&1)), *dense)),
            Architecture::Df {
                filters,
                kernel,
                dense,
                ..
            } => {
                let k = u(*kernel);
                let convs = chain(f, filters, k).max(
                    filters
                        .iter()
                        .map(|&w| u(w).saturating_mul(u(w)).saturating_mul(k))
                        .max()
                        .unwrap_or(0),
                );
                let last = u(*filters.last().unwrap_or(&1));
                convs
                    .max(chain(last, dense, 1))
                    .max(dense.last().map_or(last, |&d| u(d)).saturating_mul(c))
            }
            Architecture::BiLstm { hidden, dense, .. }
            | Architecture::Lstm { hidden, dense, .. }
            | Architecture::Gru { hidden, dense, .. } => {
                let h = u(*hidden);
                h.saturating_mul(h)
                    .max(f.saturating_mul(h))
                    .max(head(h, *dense))
            }
        }
    }

    /// Class probabilities of every window (`y` is not read). Runs without autodiff.
    pub fn predict_proba(&self, data: &SeqData) -> Result<Vec<Vec<f32>>, MlError> {
        train::predict_proba(self, data)
    }

    /// The most probable class of every window.
    pub fn predict(&self, data: &SeqData) -> Result<Vec<u32>, MlError> {
        Ok(self
            .predict_proba(data)?
            .iter()
            .map(|p| {
                let mut best = 0;
                for (c, &v) in p.iter().enumerate() {
                    if v > p[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect())
    }
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
