//! The learning substrate of hush: every attack, learned defense and synthetic-traffic model
//! builds its models here, one way.
//!
//! - [`data`]: [`Matrix`] (row-major `f32`), [`Dataset`] (features, labels, groups, names;
//!   validated: no empty data, no NaN), [`Standardizer`];
//! - [`forest`]: [`RandomForest`] (Gini CART, bootstrap, feature subsampling, probabilities,
//!   importances, parallel and seeded fit);
//! - [`knn`]: [`Knn`], k nearest neighbours, and [`LeafKnn`], k-fingerprinting's neighbours in
//!   a forest's leaves (Hamming distance);
//! - [`model`]: [`ModelFile`], the one versioned file format, which knows the feature set a
//!   model was trained on.
//!
//! ```
//! use hush_ml::{Dataset, ForestParams, Matrix, RandomForest};
//! let x = Matrix::from_rows(&[vec![0.0, 1.0], vec![0.1, 0.9], vec![1.0, 0.0], vec![0.9, 0.2]])?;
//! let data = Dataset {
//!     x,
//!     y: vec![0, 0, 1, 1],
//!     classes: vec!["plug".into(), "camera".into()],
//!     groups: vec![0, 1, 2, 3],
//!     feature_names: vec!["a".into(), "b".into()],
//! };
//! let forest = RandomForest::fit(&data, &ForestParams { n_trees: 10, ..ForestParams::default() })?;
//! assert_eq!(forest.predict(&data.x)?, vec![0, 0, 1, 1]);
//! # Ok::<(), hush_ml::MlError>(())
//! ```

pub mod data;
pub mod forest;
pub mod knn;
pub mod model;
#[cfg(feature = "neural")]
pub mod neural;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use data::{Dataset, Matrix, Standardizer};
pub use forest::{ForestParams, MaxFeatures, RandomForest};
pub use knn::{Knn, LeafKnn};
pub use model::{EnsembleMember, Model, ModelFile, ModelHeader};

/// Windows per forward pass when nothing is learned (validation, prediction). A caller that
/// predicts in chunks of whole multiples of it gets the numbers one call over every window gives
/// (the passes see the same windows together).
pub const EVAL_BATCH: usize = 1024;

/// What one epoch did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// From 1.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's batches (with dropout).
    pub train_loss: f32,
    /// Mean cross-entropy on the validation data (no dropout).
    pub val_loss: f32,
    /// Share of validation windows classified right.
    pub val_accuracy: f32,
    /// The rate this epoch trained with.
    pub learning_rate: f64,
    /// Wall-clock time of the epoch, validation included.
    pub seconds: f64,
}

/// Errors of the learning substrate.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MlError {
    /// No examples.
    #[error("the dataset is empty")]
    Empty,
    /// Mismatched lengths or column counts.
    #[error("{0}")]
    Shape(String),
    /// A NaN or infinite feature value.
    #[error("row {row}: feature {feature} is not a finite number")]
    NonFinite {
        /// Row.
        row: usize,
        /// Feature name.
        feature: String,
    },
    /// A parameter out of range.
    #[error("{0}")]
    Param(String),
    /// A model trained on other features.
    #[error("the model was trained on feature set {found:?}, not {expected:?}")]
    FeatureSet {
        /// What the caller needs.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// A file that is not a (readable) hush model.
    #[error("{0}")]
    Format(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl MlError {
    fn in_file(self, path: &Path) -> MlError {
        match self {
            MlError::Format(m) => MlError::Format(format!("{}: {m}", path.display())),
            MlError::FeatureSet { expected, found } => MlError::Format(format!(
                "{}: the model was trained on feature set {found:?}, not {expected:?}",
                path.display()
            )),
            other => other,
        }
    }
}
