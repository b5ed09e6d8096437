//! k nearest neighbours on standardised features (Euclidean), majority vote with the nearest
//! neighbour breaking ties.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::MlError;
use crate::data::{Dataset, Matrix, Standardizer};

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
