//! One file format for every trained hush model: a versioned JSON header naming the model kind
//! and the feature set it was trained on, then the model. `load` refuses a file from another
//! feature set, another version, or one that is cut short, with an error that says which, and
//! checks the model itself ([`Model::validate`]): a damaged or hostile file is an error, never a
//! panic, a loop or an allocation far beyond its size.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::MlError;
use crate::forest::RandomForest;
use crate::knn::{Knn, LeafKnn};

/// The format's name in every file.
pub const FORMAT: &str = "hush-model";
/// The format's version.
pub const VERSION: u32 = 1;

/// What a model file says about its model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written.
    pub version: u32,
    /// The attack or feature set the model expects (`iot-sentinel`, `flow-stats`, ...).
    pub feature_set: String,
    /// Feature names, in column order.
    pub feature_names: Vec<String>,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// Free-form provenance (data, seed, hush version).
    pub trained_on: String,
}

/// The model itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Model {
    /// A random forest.
    RandomForest(RandomForest),
    /// A kNN classifier.
    Knn(Knn),
    /// k-fingerprinting's k nearest neighbours over a forest's leaves.
    LeafKnn(LeafKnn),
    /// Several models, each reading its own columns, whose class probabilities are combined.
    Ensemble {
        /// The members, in column order.
        members: Vec<EnsembleMember>,
    },
    /// A neural network.
    #[cfg(feature = "neural")]
    Neural(crate::neural::NeuralModel),
}

impl Model {
    /// Checks a model read from a file, so that predicting with it is an error at worst, never
    /// a panic, a loop or a huge allocation (see each kind's `validate`), and that it predicts
    /// `n_classes` classes, as its file's header names.
    pub fn validate(&self, n_classes: usize) -> Result<(), MlError> {
        self.validate_in(n_classes, false)
    }

    fn validate_in(&self, n_classes: usize, in_ensemble: bool) -> Result<(), MlError> {
        let bad = |why: String| Err(MlError::Format(format!("the model is damaged: {why}")));
        let classes = match self {
            Model::RandomForest(f) => {
                f.validate()?;
                f.n_classes()
            }
            Model::Knn(k) => {
                k.validate()?;
                k.n_classes()
            }
            Model::LeafKnn(k) => {
                k.validate()?;
                k.forest().n_classes()
            }
            Model::Ensemble { members } => {
                if in_ensemble {
                    return bad("an ensemble inside an ensemble".into());
                }
                if members.is_empty() {
                    return bad("an ensemble without members".into());
                }
                let mut total = 0f32;
                for (i, m) in members.iter().enumerate() {
                    if !m.weight.is_finite() || m.weight < 0.0 {
                        return bad(format!("member {i} has weight {}", m.weight));
                    }
                    total += m.weight;
                    if m.columns == 0 || m.first_column.checked_add(m.columns).is_none() {
                        return bad(format!(
                            "member {i} reads {} columns from column {}",
                            m.columns, m.first_column
                        ));
                    }
                    m.model.validate_in(n_classes, true)?;
                }
                if !(total > 0.0 && total.is_finite()) {
                    return bad("the ensemble's weights do not add up to a positive number".into());
                }
                n_classes
            }
            #[cfg(feature = "neural")]
            Model::Neural(n) => {
                n.validate()?;
                n.n_classes
            }
        };
        if classes != n_classes {
            return bad(format!(
                "it predicts {classes} classes, its header names {n_classes}"
            ));
        }
        Ok(())
    }
}

/// One model of an [`Model::Ensemble`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnsembleMember {
    /// The feature set (attack) this member was trained on.
    pub feature_set: String,
    /// The first column of the ensemble's rows this member reads...
    pub first_column: usize,
    /// ...and how many.
    pub columns: usize,
    /// Its weight in the vote.
    pub weight: f32,
    /// The model.
    pub model: Model,
}

/// A model with its header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// About the model.
    pub header: ModelHeader,
    /// The model.
    pub model: Model,
}

impl ModelFile {
    /// The file's bytes (deterministic: the same model gives the same bytes).
    pub fn to_bytes(&self) -> Result<Vec<u8>, MlError> {
        serde_json::to_vec(self).map_err(|e| MlError::Format(e.to_string()))
    }

    /// Parse bytes, checking the format, version and (when given) the feature set.
    pub fn from_bytes(
        bytes: &[u8],
        expect_feature_set: Option<&str>,
    ) -> Result<ModelFile, MlError> {
        #[derive(Deserialize)]
        struct Probe {
            header: Option<ModelHeader>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_eof() {
                MlError::Format(format!("the model file is cut short ({e})"))
            } else {
                MlError::Format(format!("not a hush model file ({e})"))
            }
        })?;
        let header = probe
            .header
            .ok_or_else(|| MlError::Format("not a hush model file (no header)".into()))?;
        if header.format != FORMAT {
            return Err(MlError::Format(format!(
                "not a hush model file (format {:?})",
                header.format
            )));
        }
        if header.version != VERSION {
            return Err(MlError::Format(format!(
                "model file version {} is not supported (this hush reads version {VERSION})",
                header.version
            )));
        }
        if let Some(want) = expect_feature_set {
            if header.feature_set != want {
                return Err(MlError::FeatureSet {
                    expected: want.to_string(),
                    found: header.feature_set,
                });
            }
        }
        let file: ModelFile = serde_json::from_slice(bytes)
            .map_err(|e| MlError::Format(format!("model file is damaged ({e})")))?;
        file.model.validate(file.header.classes.len())?;
        Ok(file)
    }

    /// Write to `path` atomically (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), MlError> {
        let bytes = self.to_bytes()?;
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, &bytes).map_err(|e| MlError::Io(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|e| MlError::Io(format!("{}: {e}", path.display())))
    }

    /// Read from `path` (see [`ModelFile::from_bytes`]).
    pub fn load(path: &Path, expect_feature_set: Option<&str>) -> Result<ModelFile, MlError> {
        let bytes =
            std::fs::read(path).map_err(|e| MlError::Io(format!("{}: {e}", path.display())))?;
        ModelFile::from_bytes(&bytes, expect_feature_set).map_err(|e| e.in_file(path))
    }
}
