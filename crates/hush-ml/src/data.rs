//! Feature matrices and labelled datasets.

use serde::{Deserialize, Serialize};

use crate::MlError;

/// A dense row-major matrix of `f32` features: one row per example.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MatrixFields")]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

/// A matrix as a file holds it, checked by [`Matrix::new`] before it becomes one (a file whose
/// shape does not fit its values would index past them).
#[derive(Deserialize)]
struct MatrixFields {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl TryFrom<MatrixFields> for Matrix {
    type Error = MlError;

    fn try_from(m: MatrixFields) -> Result<Matrix, MlError> {
        Matrix::new(m.rows, m.cols, m.data)
    }
}

impl Matrix {
    /// A matrix from row-major data; `data.len()` must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Matrix, MlError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(MlError::Shape(format!(
                "{} values do not make {rows} rows of {cols} columns",
                data.len()
            )));
        }
        Ok(Matrix { rows, cols, data })
    }

    /// A matrix from rows of equal length.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Matrix, MlError> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != cols {
                return Err(MlError::Shape(format!(
                    "row {i} has {} columns, row 0 has {cols}",
                    r.len()
                )));
            }
            data.extend_from_slice(r);
        }
        Ok(Matrix {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Value at row `i`, column `j`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }

    /// The first non-finite value, as (row, column), if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        self.data
            .iter()
            .position(|v| !v.is_finite())
            .map(|p| (p / self.cols.max(1), p % self.cols.max(1)))
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}

/// Examples with class labels, the group (capture) each came from, and names for the features.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Features.
    pub x: Matrix,
    /// Class index of each row, into `classes`.
    pub y: Vec<u32>,
    /// Class names.
    pub classes: Vec<String>,
    /// Group of each row (the capture it came from): splits never separate a group.
    pub groups: Vec<u32>,
    /// Feature names, one per column.
    pub feature_names: Vec<String>,
}

impl Dataset {
    /// Check shapes and values: a row per label and group, labels in range, finite features,
    /// at least one row.
    pub fn validate(&self) -> Result<(), MlError> {
        if self.x.rows() == 0 {
            return Err(MlError::Empty);
        }
        if self.y.len() != self.x.rows() || self.groups.len() != self.x.rows() {
            return Err(MlError::Shape(format!(
                "{} rows but {} labels and {} groups",
                self.x.rows(),
                self.y.len(),
                self.groups.len()
            )));
        }
        if self.feature_names.len() != self.x.cols() {
            return Err(MlError::Shape(format!(
                "{} columns but {} feature names",
                self.x.cols(),
                self.feature_names.len()
            )));
        }
        if let Some(&bad) = self.y.iter().find(|&&c| c as usize >= self.classes.len()) {
            return Err(MlError::Shape(format!(
                "label {bad} but only {} classes",
                self.classes.len()
            )));
        }
        if let Some((r, c)) = self.x.first_non_finite() {
            return Err(MlError::NonFinite {
                row: r,
                feature: self
                    .feature_names
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| c.to_string()),
            });
        }
        Ok(())
    }

    /// The rows at `idx`.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            classes: self.classes.clone(),
            groups: idx.iter().map(|&i| self.groups[i]).collect(),
            feature_names: self.feature_names.clone(),
        }
    }

    /// Rows per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &y in &self.y {
            c[y as usize] += 1;
        }
        c
    }

    /// Write as CSV: the feature names, then `label`; one row per example (for peers such as
    /// scikit-learn).
    pub fn write_csv(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        let header: Vec<&str> = self
            .feature_names
            .iter()
            .map(String::as_str)
            .chain(["label", "group"])
            .collect();
        writeln!(out, "{}", header.join(","))?;
        for i in 0..self.x.rows() {
            for v in self.x.row(i) {
                write!(out, "{v},")?;
            }
            writeln!(
                out,
                "{},{}",
                self.classes[self.y[i] as usize], self.groups[i]
            )?;
        }
        Ok(())
    }
}

/// Per-feature mean and standard deviation, fitted on training data and applied to any data
/// (kNN and neural models need it; trees do not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    mean: Vec<f32>,
    /// 1 / std (1 where a feature is constant).
    inv_std: Vec<f32>,
}

impl Standardizer {
    /// Fit on `x`.
    pub fn fit(x: &Matrix) -> Standardizer {
        let (n, d) = (x.rows().max(1) as f64, x.cols());
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for i in 0..x.rows() {
            for (j, &v) in x.row(i).iter().enumerate() {
                mean[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let mut inv_std = vec![1f32; d];
        for j in 0..d {
            mean[j] /= n;
            let var = (sq[j] / n - mean[j] * mean[j]).max(0.0);
            if var > 1e-12 {
                inv_std[j] = (1.0 / var.sqrt()) as f32;
            }
        }
        Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            inv_std,
        }
    }

    /// `x` standardised.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let mut data = x.data.clone();
        for row in data.chunks_mut(x.cols.max(1)) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[j]) * self.inv_std[j];
            }
        }
        Matrix {
            rows: x.rows,
            cols: x.cols,
            data,
        }
    }

    /// Whether it standardises rows of `cols` finite features (a file's can be damaged).
    pub fn fits(&self, cols: usize) -> bool {
        self.mean.len() == cols
            && self.inv_std.len() == cols
            && self.mean.iter().chain(&self.inv_std).all(|v| v.is_finite())
    }

    /// Standardise one row.
    pub fn transform_row(&self, row: &[f32]) -> Vec<f32> {
        row.iter()
            .enumerate()
            .map(|(j, &v)| (v - self.mean[j]) * self.inv_std[j])
            .collect()
    }
}
