//! Random forests: CART trees on Gini impurity, bootstrap samples, a random subset of features
//! at each split, trees fitted in parallel and each seeded from the forest's seed and its index
//! (so the forest is the same whatever the thread count).
//!
//! The algorithm follows scikit-learn's `RandomForestClassifier` defaults (Gini, `max_features =
//! sqrt`, bootstrap, thresholds midway between neighbouring values, the split search going on past
//! `max_features` candidates until a valid split is found), so results can be compared with it
//! side by side.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::MlError;
use crate::data::{Dataset, Matrix};

/// How many features each split may look at.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaxFeatures {
    /// √features (scikit-learn's default for classifiers).
    Sqrt,
    /// log2(features).
    Log2,
    /// Every feature (bagged trees).
    All,
    /// A fixed number.
    Count(usize),
}

/// Forest parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Trees.
    pub n_trees: usize,
    /// Deepest a tree may grow (`None`: until leaves are pure or too small).
    pub max_depth: Option<usize>,
    /// Fewest examples a node needs to be split.
    pub min_samples_split: usize,
    /// Fewest examples in a leaf.
    pub min_samples_leaf: usize,
    /// Features tried per split.
    pub max_features: MaxFeatures,
    /// Draw each tree's examples with replacement.
    pub bootstrap: bool,
    /// Seed.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            seed: 0,
        }
    }
}

/// One node: a split when `feature >= 0`, else a leaf whose class distribution starts at
/// `value` in the tree's `values`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Node {
    feature: i32,
    threshold: f32,
    left: u32,
    right: u32,
    value: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
    /// Leaf class distributions, `n_classes` each, normalised.
    values: Vec<f32>,
}

/// A fitted random forest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomForest {
    params: ForestParams,
    n_classes: usize,
    n_features: usize,
    trees: Vec<Tree>,
    importances: Vec<f64>,
}

fn mix(seed: u64, i: u64) -> u64 {
    // SplitMix64 of seed + i: independent streams per tree.
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Builder<'a> {
    x: &'a Matrix,
    y: &'a [u32],
    n_classes: usize,
    params: &'a ForestParams,
    mtry: usize,
    rng: Xoshiro256PlusPlus,
    nodes: Vec<Node>,
    values: Vec<f32>,
    importances: Vec<f64>,
    /// Scratch: (value, class) of the node's examples for one feature.
    pairs: Vec<(f32, u32)>,
    features: Vec<usize>,
}

/// The best split of a node.
struct Split {
    feature: usize,
    threshold: f32,
    /// Σ left² / n_left + Σ right² / n_right: larger is purer.
    score: f64,
}

impl Builder<'_> {
    fn leaf(&mut self, counts: &[u32], n: usize) -> u32 {
        let value = self.values.len() as u32;
        self.values
            .extend(counts.iter().map(|&c| c as f32 / n as f32));
        self.nodes.push(Node {
            feature: -1,
            threshold: 0.0,
            left: 0,
            right: 0,
            value,
        });
        (self.nodes.len() - 1) as u32
    }

    fn build(&mut self, idx: &mut [usize], depth: usize) -> u32 {
        let n = idx.len();
        let mut counts = vec![0u32; self.n_classes];
        for &i in idx.iter() {
            counts[self.y[i] as usize] += 1;
        }
        let pure = counts.iter().filter(|&&c| c > 0).count() <= 1;
        let too_deep = self.params.max_depth.is_some_and(|d| depth >= d);
        if pure
            || too_deep
            || n < self.params.min_samples_split
            || n < 2 * self.params.min_samples_leaf
        {
            return self.leaf(&counts, n);
        }
        let Some(split) = self.best_split(idx, &counts) else {
            return self.leaf(&counts, n);
        };
        // Partition in place: left (<= threshold) first.
        let mut l = 0;
        for k in 0..n {
            if self.x.get(idx[k], split.feature) <= split.threshold {
                idx.swap(l, k);
                l += 1;
            }
        }
        let sum_sq: f64 = counts.iter().map(|&c| f64::from(c) * f64::from(c)).sum();
        // Impurity decrease (unnormalised): n·gini(node) − nl·gini(l) − nr·gini(r)
        // = score − Σc²/n, since n·gini = n − Σc²/n.
        self.importances[split.feature] += split.score - sum_sq / n as f64;
        let me = self.nodes.len();
        self.nodes.push(Node {
            feature: split.feature as i32,
            threshold: split.threshold,
            left: 0,
            right: 0,
            value: 0,
        });
        let (left, right) = idx.split_at_mut(l);
        let li = self.build(left, depth + 1);
        let ri = self.build(right, depth + 1);
        self.nodes[me].left = li;
        self.nodes[me].right = ri;
        me as u32
    }

    fn best_split(&mut self, idx: &[usize], counts: &[u32]) -> Option<Split> {
        let d = self.x.cols();
        // A random order of features; look at mtry of them, and on until a valid split.
        self.features.clear();
        self.features.extend(0..d);
        let mut best: Option<Split> = None;
        let min_leaf = self.params.min_samples_leaf.max(1);
        let n = idx.len();
        let mut left = vec![0u32; self.n_classes];
        for k in 0..d {
            if k >= self.mtry && best.is_some() {
                break;
            }
            let j = self.rng.random_range(k..d);
            self.features.swap(k, j);
            let f = self.features[k];
            self.pairs.clear();
            self.pairs
                .extend(idx.iter().map(|&i| (self.x.get(i, f), self.y[i])));
            self.pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            if self.pairs[0].0 == self.pairs[n - 1].0 {
                continue; // constant here
            }
            left.iter_mut().for_each(|c| *c = 0);
            let (mut sl, mut sr) = (
                0f64,
                counts
                    .iter()
                    .map(|&c| f64::from(c) * f64::from(c))
                    .sum::<f64>(),
            );
            for p in 0..n - 1 {
                let c = self.pairs[p].1 as usize;
                // Move one example of class c from right to left, updating Σc² incrementally.
                let lc = f64::from(left[c]);
                let rc = f64::from(counts[c] - left[c]);
                sl += 2.0 * lc + 1.0;
                sr -= 2.0 * rc - 1.0;
                left[c] += 1;
                let nl = p + 1;
                if self.pairs[p].0 == self.pairs[p + 1].0 || nl < min_leaf || n - nl < min_leaf {
                    continue;
                }
                let score = sl / nl as f64 + sr / (n - nl) as f64;
                if best.as_ref().is_none_or(|b| score > b.score + 1e-12) {
                    let (a, b) = (self.pairs[p].0, self.pairs[p + 1].0);
                    // Midway, unless that rounds up to the right value.
                    let mut t = a + (b - a) / 2.0;
                    if t >= b || !t.is_finite() {
                        t = a;
                    }
                    best = Some(Split {
                        feature: f,
                        threshold: t,
                        score,
                    });
                }
            }
        }
        best
    }
}

impl RandomForest {
    /// Fit on `data` (validated first: no empty data, no NaN).
    pub fn fit(data: &Dataset, params: &ForestParams) -> Result<RandomForest, MlError> {
        data.validate()?;
        if params.n_trees == 0 {
            return Err(MlError::Param("n_trees must be at least 1".into()));
        }
        let (n, d) = (data.x.rows(), data.x.cols());
        let mtry = match params.max_features {
            MaxFeatures::Sqrt => (d as f64).sqrt() as usize,
            MaxFeatures::Log2 => (d as f64).log2() as usize,
            MaxFeatures::All => d,
            MaxFeatures::Count(k) => k,
        }
        .clamp(1, d.max(1));
        let n_classes = data.classes.len();
        let trees: Vec<(Tree, Vec<f64>)> = (0..params.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix(params.seed, t as u64));
                let mut idx: Vec<usize> = if params.bootstrap {
                    (0..n).map(|_| rng.random_range(0..n)).collect()
                } else {
                    (0..n).collect()
                };
                let mut b = Builder {
                    x: &data.x,
                    y: &data.y,
                    n_classes,
                    params,
                    mtry,
                    rng,
                    nodes: Vec::new(),
                    values: Vec::new(),
                    importances: vec![0.0; d],
                    pairs: Vec::with_capacity(n),
                    features: Vec::with_capacity(d),
                };
                b.build(&mut idx, 0);
                let imp = b.importances;
                (
                    Tree {
                        nodes: b.nodes,
                        values: b.values,
                    },
                    imp,
                )
            })
            .collect();
        // Importances: each tree's normalised to sum 1, then averaged (as scikit-learn does).
        let mut importances = vec![0.0; d];
        for (_, imp) in &trees {
            let total: f64 = imp.iter().sum();
            if total > 0.0 {
                for (a, v) in importances.iter_mut().zip(imp) {
                    *a += v / total;
                }
            }
        }
        let k = trees.len() as f64;
        importances.iter_mut().for_each(|v| *v /= k);
        Ok(RandomForest {
            params: params.clone(),
            n_classes,
            n_features: d,
            trees: trees.into_iter().map(|(t, _)| t).collect(),
            importances,
        })
    }

    /// Class probabilities for one row (the mean of the trees' leaf distributions).
    pub fn predict_proba_row(&self, row: &[f32]) -> Vec<f32> {
        let mut p = vec![0f32; self.n_classes];
        for t in &self.trees {
            let mut i = 0usize;
            loop {
                let node = t.nodes[i];
                if node.feature < 0 {
                    let v = node.value as usize;
                    for (a, b) in p.iter_mut().zip(&t.values[v..v + self.n_classes]) {
                        *a += b;
                    }
                    break;
                }
                // A NaN goes right, like a value above every threshold.
                i = if row[node.feature as usize] <= node.threshold {
                    node.left as usize
                } else {
                    node.right as usize
                };
            }
        }
        let k = self.trees.len() as f32;
        p.iter_mut().for_each(|v| *v /= k);
        p
    }

    /// The leaf each tree puts `row` in (an index into that tree's nodes): k-fingerprinting's
    /// fingerprint of an example (Hayes and Danezis 2016), scikit-learn's `apply`.
    pub fn apply_row(&self, row: &[f32]) -> Vec<u32> {
        self.trees
            .iter()
            .map(|t| {
                let mut i = 0usize;
                loop {
                    let node = t.nodes[i];
                    if node.feature < 0 {
                        break i as u32;
                    }
                    i = if row[node.feature as usize] <= node.threshold {
                        node.left as usize
                    } else {
                        node.right as usize
                    };
                }
            })
            .collect()
    }

    /// [`RandomForest::apply_row`] for every row: `rows × trees` leaf indices, row-major.
    pub fn apply(&self, x: &Matrix) -> Result<Vec<u32>, MlError> {
        self.check(x)?;
        Ok((0..x.rows())
            .into_par_iter()
            .flat_map_iter(|i| self.apply_row(x.row(i)))
            .collect())
    }

    /// Trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Probabilities for every row.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<Vec<f32>>, MlError> {
        self.check(x)?;
        Ok((0..x.rows())
            .into_par_iter()
            .map(|i| self.predict_proba_row(x.row(i)))
            .collect())
    }

    /// The most probable class of every row (ties: the lower index).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<u32>, MlError> {
        Ok(self.predict_proba(x)?.iter().map(|p| argmax(p)).collect())
    }

    fn check(&self, x: &Matrix) -> Result<(), MlError> {
        if x.cols() != self.n_features {
            return Err(MlError::Shape(format!(
                "the forest was fitted on {} features, this data has {}",
                self.n_features,
                x.cols()
            )));
        }
        Ok(())
    }

    /// Checks a forest read from a file, so that predicting with it cannot index out of
    /// bounds or loop: classes and trees present, every split's feature among the columns and
    /// its children after it in its tree (so every walk ends at a leaf), every leaf's class
    /// distribution inside the tree's values, every number finite.
    pub fn validate(&self) -> Result<(), MlError> {
        let bad = |why: String| Err(MlError::Format(format!("the forest is damaged: {why}")));
        if self.n_classes == 0 {
            return bad("it has no classes".into());
        }
        if self.trees.is_empty() {
            return bad("it has no trees".into());
        }
        if self.importances.len() != self.n_features {
            return bad(format!(
                "{} feature importances for {} features",
                self.importances.len(),
                self.n_features
            ));
        }
        for (ti, t) in self.trees.iter().enumerate() {
            if t.nodes.is_empty() {
                return bad(format!("tree {ti} has no nodes"));
            }
            if t.values.iter().any(|v| !v.is_finite()) {
                return bad(format!("tree {ti} has a class share that is not a number"));
            }
            let n = t.nodes.len();
            for (i, node) in t.nodes.iter().enumerate() {
                if node.feature >= 0 {
                    if node.feature as usize >= self.n_features {
                        return bad(format!(
                            "tree {ti}, node {i} splits on feature {} of {}",
                            node.feature, self.n_features
                        ));
                    }
                    if !node.threshold.is_finite() {
                        return bad(format!(
                            "tree {ti}, node {i} has a threshold that is not finite"
                        ));
                    }
                    for child in [node.left, node.right] {
                        let c = child as usize;
                        if c <= i || c >= n {
                            return bad(format!(
                                "tree {ti}, node {i} has child {c} (children come after their \
                                 parent, among {n} nodes)"
                            ));
                        }
                    }
                } else {
                    let end = (node.value as usize).checked_add(self.n_classes);
                    if end.is_none_or(|e| e > t.values.len()) {
                        return bad(format!(
                            "tree {ti}, leaf {i} points past the tree's class shares"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Features (columns) it was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Mean decrease in impurity per feature (sums to 1 unless no tree split).
    pub fn feature_importances(&self) -> &[f64] {
        &self.importances
    }

    /// The parameters it was fitted with.
    pub fn params(&self) -> &ForestParams {
        &self.params
    }

    /// Classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Nodes over all trees.
    pub fn n_nodes(&self) -> usize {
        self.trees.iter().map(|t| t.nodes.len()).sum()
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(p: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        // Class = (x0 > 0.5) xor (x1 > 0.5), plus a noise feature.
        let mut rows = Vec::new();
        let mut y = Vec::new();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for _ in 0..400 {
            let (a, b, c): (f32, f32, f32) = (rng.random(), rng.random(), rng.random());
            rows.push(vec![a, b, c]);
            y.push(u32::from((a > 0.5) != (b > 0.5)));
        }
        Dataset {
            x: Matrix::from_rows(&rows).unwrap(),
            groups: (0..400).collect(),
            y,
            classes: vec!["even".into(), "odd".into()],
            feature_names: vec!["a".into(), "b".into(), "noise".into()],
        }
    }

    #[test]
    fn learns_xor_and_ranks_the_noise_feature_last() {
        let d = toy();
        let (train, test): (Vec<usize>, Vec<usize>) = (0..400).partition(|i| i % 4 != 0);
        let f = RandomForest::fit(&d.select(&train), &ForestParams::default()).unwrap();
        let t = d.select(&test);
        let pred = f.predict(&t.x).unwrap();
        let acc = pred.iter().zip(&t.y).filter(|(a, b)| a == b).count() as f64 / t.y.len() as f64;
        assert!(acc > 0.9, "{acc}");
        let imp = f.feature_importances();
        assert!(imp[2] < imp[0] && imp[2] < imp[1], "{imp:?}");
        assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn same_seed_same_forest_any_thread_count() {
        let d = toy();
        let p = ForestParams {
            n_trees: 16,
            seed: 9,
            ..ForestParams::default()
        };
        let a = RandomForest::fit(&d, &p).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| RandomForest::fit(&d, &p).unwrap());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let c = RandomForest::fit(&d, &ForestParams { seed: 10, ..p }).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut d = toy();
        d.x = Matrix::new(1, 3, vec![0.0, f32::NAN, 1.0]).unwrap();
        d.y = vec![0];
        d.groups = vec![0];
        assert!(matches!(
            RandomForest::fit(&d, &ForestParams::default()),
            Err(MlError::NonFinite { row: 0, .. })
        ));
        let empty = Dataset {
            feature_names: vec![],
            ..Dataset::default()
        };
        assert!(matches!(
            RandomForest::fit(&empty, &ForestParams::default()),
            Err(MlError::Empty)
        ));
        let f = RandomForest::fit(
            &toy(),
            &ForestParams {
                n_trees: 2,
                ..ForestParams::default()
            },
        )
        .unwrap();
        assert!(
            f.predict(&Matrix::new(1, 2, vec![0.0, 0.0]).unwrap())
                .is_err()
        );
    }
}
