//! Sequence datasets: `n` windows of `steps × features` values, optional per-window scalars, and
//! labels.

use serde::{Deserialize, Serialize};

use crate::MlError;

/// `n` labelled windows, each `steps × features` values (row-major: window, then step, then
/// feature), plus `extra_dim` scalars per window that the network reads after its recurrent or
/// convolutional part (iPET's M_seq feeds the window's packet count this way).
///
/// `y` may be empty for data that is only predicted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeqData {
    /// `n × steps × features` values, row-major.
    pub x: Vec<f32>,
    /// Windows.
    pub n: usize,
    /// Time steps per window.
    pub steps: usize,
    /// Features per step.
    pub features: usize,
    /// `n × extra_dim` scalars, row-major (empty when `extra_dim` is 0).
    pub extra: Vec<f32>,
    /// Scalars per window.
    pub extra_dim: usize,
    /// Class of each window, below `n_classes` (empty: unlabelled).
    pub y: Vec<u32>,
    /// Classes.
    pub n_classes: usize,
}

impl SeqData {
    /// Values per window (`steps × features`).
    pub fn window_len(&self) -> usize {
        self.steps * self.features
    }

    /// Window `i`'s `steps × features` values.
    pub fn window(&self, i: usize) -> &[f32] {
        let w = self.window_len();
        &self.x[i * w..(i + 1) * w]
    }

    /// Window `i`'s extra scalars.
    pub fn extra_of(&self, i: usize) -> &[f32] {
        &self.extra[i * self.extra_dim..(i + 1) * self.extra_dim]
    }

    /// Check everything [`SeqData::validate_inputs`] checks, and that there is a label below
    /// `n_classes` for every window and at least two classes.
    pub fn validate(&self) -> Result<(), MlError> {
        self.validate_inputs()?;
        if self.y.len() != self.n {
            return Err(MlError::Shape(format!(
                "{} windows but {} labels",
                self.n,
                self.y.len()
            )));
        }
        if self.n_classes < 2 {
            return Err(MlError::Shape(format!(
                "{} classes: a classifier needs at least 2",
                self.n_classes
            )));
        }
        if let Some(&bad) = self.y.iter().find(|&&c| c as usize >= self.n_classes) {
            return Err(MlError::Shape(format!(
                "label {bad} but only {} classes",
                self.n_classes
            )));
        }
        Ok(())
    }

    /// Check the inputs only (labels are not needed to predict): at least one window, each
    /// with at least one step and feature, `x` and `extra` of the stated sizes, every value
    /// finite.
    pub fn validate_inputs(&self) -> Result<(), MlError> {
        if self.n == 0 {
            return Err(MlError::Empty);
        }
        if self.steps == 0 || self.features == 0 {
            return Err(MlError::Shape(format!(
                "windows of {} steps × {} features: both must be at least 1",
                self.steps, self.features
            )));
        }
        let want = self
            .n
            .checked_mul(self.steps)
            .and_then(|v| v.checked_mul(self.features));
        if want != Some(self.x.len()) {
            return Err(MlError::Shape(format!(
                "{} values do not make {} windows of {} steps × {} features",
                self.x.len(),
                self.n,
                self.steps,
                self.features
            )));
        }
        if self.n.checked_mul(self.extra_dim) != Some(self.extra.len()) {
            return Err(MlError::Shape(format!(
                "{} extra values do not make {} windows of {} scalars",
                self.extra.len(),
                self.n,
                self.extra_dim
            )));
        }
        if let Some(p) = self.x.iter().position(|v| !v.is_finite()) {
            let w = self.window_len();
            let (step, feature) = ((p % w) / self.features, p % self.features);
            return Err(MlError::NonFinite {
                row: p / w,
                feature: format!("step {step} feature {feature}"),
            });
        }
        if let Some(p) = self.extra.iter().position(|v| !v.is_finite()) {
            return Err(MlError::NonFinite {
                row: p / self.extra_dim,
                feature: format!("extra {}", p % self.extra_dim),
            });
        }
        Ok(())
    }

    /// The windows at `idx`, in that order (labels too, when there are any).
    ///
    /// # Panics
    ///
    /// If an index is `n` or more.
    pub fn select(&self, idx: &[usize]) -> SeqData {
        let mut x = Vec::with_capacity(idx.len() * self.window_len());
        let mut extra = Vec::with_capacity(idx.len() * self.extra_dim);
        for &i in idx {
            x.extend_from_slice(self.window(i));
            extra.extend_from_slice(self.extra_of(i));
        }
        SeqData {
            x,
            n: idx.len(),
            steps: self.steps,
            features: self.features,
            extra,
            extra_dim: self.extra_dim,
            y: if self.y.is_empty() {
                Vec::new()
            } else {
                idx.iter().map(|&i| self.y[i]).collect()
            },
            n_classes: self.n_classes,
        }
    }
}

/// Per-feature mean and 1/std over every step of every window (and per extra scalar), fitted
/// on training data: raw packet sizes and counts are far from unit scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeqStandardizer {
    /// Mean of each step feature.
    pub mean: Vec<f32>,
    /// 1 / std of each step feature (1 where it is constant).
    pub inv_std: Vec<f32>,
    /// Mean of each extra scalar.
    pub extra_mean: Vec<f32>,
    /// 1 / std of each extra scalar (1 where it is constant).
    pub extra_inv_std: Vec<f32>,
}

fn moments(values: impl Iterator<Item = (usize, f32)>, d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0f64; d];
    let mut sq = vec![0f64; d];
    let mut count = vec![0f64; d];
    for (j, v) in values {
        sum[j] += f64::from(v);
        sq[j] += f64::from(v) * f64::from(v);
        count[j] += 1.0;
    }
    let mut mean = vec![0f32; d];
    let mut inv_std = vec![1f32; d];
    for j in 0..d {
        let c = count[j].max(1.0);
        let m = sum[j] / c;
        let var = (sq[j] / c - m * m).max(0.0);
        mean[j] = m as f32;
        if var > 1e-12 {
            inv_std[j] = (1.0 / var.sqrt()) as f32;
        }
    }
    (mean, inv_std)
}

impl SeqStandardizer {
    /// Fit on `data` (its shapes already validated).
    pub fn fit(data: &SeqData) -> SeqStandardizer {
        let f = data.features;
        let (mean, inv_std) = moments(data.x.iter().enumerate().map(|(p, &v)| (p % f, v)), f);
        let e = data.extra_dim.max(1);
        let (extra_mean, extra_inv_std) = moments(
            data.extra.iter().enumerate().map(|(p, &v)| (p % e, v)),
            data.extra_dim,
        );
        SeqStandardizer {
            mean,
            inv_std,
            extra_mean,
            extra_inv_std,
        }
    }

    /// `data`'s step values and extra scalars, standardised.
    pub fn transform(&self, data: &SeqData) -> (Vec<f32>, Vec<f32>) {
        let f = self.mean.len().max(1);
        let x = data
            .x
            .iter()
            .enumerate()
            .map(|(p, &v)| (v - self.mean[p % f]) * self.inv_std[p % f])
            .collect();
        let e = self.extra_mean.len().max(1);
        let extra = data
            .extra
            .iter()
            .enumerate()
            .map(|(p, &v)| (v - self.extra_mean[p % e]) * self.extra_inv_std[p % e])
            .collect();
        (x, extra)
    }
}
