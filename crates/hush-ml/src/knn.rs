//! k nearest neighbours: [`Knn`] on standardised features (Euclidean), and [`LeafKnn`],
//! k-fingerprinting's neighbours in a random forest's leaves (Hamming distance); majority vote
//! with the nearest neighbour breaking ties.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::MlError;
use crate::data::{Dataset, Matrix, Standardizer};
use crate::forest::{ForestParams, RandomForest};

/// A fitted kNN classifier: the standardised training set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Knn {
    k: usize,
    scale: Standardizer,
    x: Matrix,
    y: Vec<u32>,
    n_classes: usize,
}

impl Knn {
    /// Remember `data` (validated).
    pub fn fit(data: &Dataset, k: usize) -> Result<Knn, MlError> {
        data.validate()?;
        if k == 0 {
            return Err(MlError::Param("k must be at least 1".into()));
        }
        let scale = Standardizer::fit(&data.x);
        Ok(Knn {
            k: k.min(data.x.rows()),
            x: scale.transform(&data.x),
            scale,
            y: data.y.clone(),
            n_classes: data.classes.len(),
        })
    }

    /// Checks a kNN model read from a file: `k` within the training rows, a label per row, every
    /// label a class, a standardiser as wide as the rows, every number finite.
    pub fn validate(&self) -> Result<(), MlError> {
        let bad = |why: String| Err(MlError::Format(format!("the kNN model is damaged: {why}")));
        let n = self.x.rows();
        if self.k == 0 || self.k > n {
            return bad(format!("k is {} with {n} training rows", self.k));
        }
        if self.y.len() != n {
            return bad(format!("{} labels for {n} rows", self.y.len()));
        }
        if let Some(c) = self.y.iter().find(|&&c| c as usize >= self.n_classes) {
            return bad(format!("label {c} of {} classes", self.n_classes));
        }
        if !self.scale.fits(self.x.cols()) {
            return bad(format!(
                "its standardiser is not {} features wide, or not finite",
                self.x.cols()
            ));
        }
        if self.x.first_non_finite().is_some() {
            return bad("a training value is not finite".into());
        }
        Ok(())
    }

    /// Classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The class of every row.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<u32>, MlError> {
        if x.cols() != self.x.cols() {
            return Err(MlError::Shape(format!(
                "kNN was fitted on {} features, this data has {}",
                self.x.cols(),
                x.cols()
            )));
        }
        Ok((0..x.rows())
            .into_par_iter()
            .map(|i| {
                let q = self.scale.transform_row(x.row(i));
                let mut d: Vec<(f32, u32)> = (0..self.x.rows())
                    .map(|j| {
                        let s: f32 = self
                            .x
                            .row(j)
                            .iter()
                            .zip(&q)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum();
                        (s, self.y[j])
                    })
                    .collect();
                let k = self.k;
                d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
                let mut near = d[..k].to_vec();
                near.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut votes = vec![0usize; self.n_classes];
                for &(_, c) in &near {
                    votes[c as usize] += 1;
                }
                let top = votes.iter().copied().max().unwrap_or(0);
                // Among the classes with the most votes, the one with the nearest neighbour.
                near.iter()
                    .find(|(_, c)| votes[*c as usize] == top)
                    .map_or(0, |&(_, c)| c)
            })
            .collect())
    }
}

/// k-fingerprinting's classifier (Hayes and Danezis, "k-fingerprinting: A Robust Scalable
/// Website Fingerprinting Technique", USENIX Security 2016): a random forest is fitted on the
/// features, every example becomes its *leaf vector* (the leaf each tree puts it in), and an
/// example is classified by its `k` nearest training examples in Hamming distance over leaf
/// vectors (the number of trees that put the two in different leaves). The paper used 1000 trees
/// and k = 3 (k-FP's code).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeafKnn {
    k: usize,
    forest: RandomForest,
    /// Training leaf vectors, `n × trees`, row-major.
    leaves: Vec<u32>,
    y: Vec<u32>,
    n_classes: usize,
}

impl LeafKnn {
    /// Fit the forest on `data` (validated), then keep the training examples' leaf vectors.
    pub fn fit(data: &Dataset, params: &ForestParams, k: usize) -> Result<LeafKnn, MlError> {
        if k == 0 {
            return Err(MlError::Param("k must be at least 1".into()));
        }
        let forest = RandomForest::fit(data, params)?;
        let leaves = forest.apply(&data.x)?;
        Ok(LeafKnn {
            k: k.min(data.x.rows()),
            forest,
            leaves,
            y: data.y.clone(),
            n_classes: data.classes.len(),
        })
    }

    /// Checks a model read from a file: a valid forest, `k` within the training examples, one
    /// leaf vector per example and every leaf a node of its tree, every label a class.
    pub fn validate(&self) -> Result<(), MlError> {
        let bad = |why: String| {
            Err(MlError::Format(format!(
                "the k-fingerprinting model is damaged: {why}"
            )))
        };
        self.forest.validate()?;
        let n = self.y.len();
        if self.k == 0 || self.k > n {
            return bad(format!("k is {} with {n} training examples", self.k));
        }
        if self.n_classes != self.forest.n_classes() {
            return bad(format!(
                "{} classes, its forest {}",
                self.n_classes,
                self.forest.n_classes()
            ));
        }
        if n.checked_mul(self.forest.n_trees()) != Some(self.leaves.len()) {
            return bad(format!(
                "{} leaves for {n} examples of {} trees",
                self.leaves.len(),
                self.forest.n_trees()
            ));
        }
        if let Some(c) = self.y.iter().find(|&&c| c as usize >= self.n_classes) {
            return bad(format!("label {c} of {} classes", self.n_classes));
        }
        Ok(())
    }

    /// Per row, the share of its `k` nearest training examples in each class (ties in distance:
    /// the earlier training example); the class of the nearest one gets a bonus of 1/(4k), so
    /// that among classes with equally many neighbours it wins, as in [`Knn`].
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<Vec<f32>>, MlError> {
        let test = self.forest.apply(x)?;
        let t = self.forest.n_trees();
        let n_train = self.y.len();
        Ok(test
            .par_chunks(t.max(1))
            .map(|q| {
                let mut d: Vec<(u32, u32)> = (0..n_train)
                    .map(|j| {
                        let row = &self.leaves[j * t..(j + 1) * t];
                        let diff = row.iter().zip(q).filter(|(a, b)| a != b).count();
                        (diff as u32, j as u32)
                    })
                    .collect();
                let k = self.k;
                d.select_nth_unstable(k - 1);
                let mut near = d[..k].to_vec();
                near.sort_unstable();
                let mut p = vec![0f32; self.n_classes];
                for &(_, j) in &near {
                    p[self.y[j as usize] as usize] += 1.0;
                }
                p[self.y[near[0].1 as usize] as usize] += 0.25;
                let total: f32 = p.iter().sum();
                p.iter_mut().for_each(|v| *v /= total);
                p
            })
            .collect())
    }

    /// The most probable class of every row.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<u32>, MlError> {
        Ok(self
            .predict_proba(x)?
            .iter()
            .map(|p| crate::forest::argmax(p))
            .collect())
    }

    /// The forest whose leaves it compares.
    pub fn forest(&self) -> &RandomForest {
        &self.forest
    }

    /// Neighbours consulted.
    pub fn k(&self) -> usize {
        self.k
    }
}
