//! The ensemble attacker: several registered device attacks, each trained on its own view of the
//! same training captures, voting with their class probabilities (soft voting; Kittler, Hatef,
//! Duin and Matas, "On Combining Classifiers", IEEE TPAMI 1998, the mean rule).
//!
//! A row of the ensemble is the members' rows of one capture side by side, so the evaluation
//! protocol treats it like any other attack: every member is fitted on the training folds only,
//! and nothing of a test capture reaches any of them. With `combine=weighted`, each member's
//! weight is its accuracy in an inner cross-validation *on the training captures* (folds by
//! capture, as the outer protocol), so the weights never see test data either.
//!
//! Members are the attacks that read a whole capture as one row: `iot-sentinel`, `flow-stats`,
//! `k-fp`, `df`, `df-size`, `tiktok`. A member that finds nothing to read in a capture (no
//! packet the device sent, for IoT Sentinel) sees zeros.

use hush_ml::EpochReport;
use hush_ml::forest::argmax;
use hush_ml::{Dataset as MlDataset, EnsembleMember, Matrix, Model};
use hush_trace::Trace;
use serde::Serialize;

use crate::{Attack, AttackError, AttackKind};

/// Attacks that can be members, in the order their columns take in a row.
pub const MEMBERS: [&str; 6] = [
    "iot-sentinel",
    "flow-stats",
    "k-fp",
    "df",
    "df-size",
    "tiktok",
];

/// The default members: the capture-level attacks that do not train a network (the networks
/// add hours on a full bench; name them to include them: `ensemble:members=flow-stats+k-fp+df`).
pub const DEFAULT_MEMBERS: [&str; 3] = ["iot-sentinel", "flow-stats", "k-fp"];

/// How members' probabilities are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Combine {
    /// The mean of the members' class probabilities.
    Soft,
    /// Weighted by each member's accuracy in an inner cross-validation on the training data.
    Weighted,
}

/// Which members, how they vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EnsembleSpec {
    /// Bit `i` set: [`MEMBERS`]`[i]` votes.
    pub members: u8,
    /// How.
    pub combine: Combine,
    /// Sequence length of the DF-style members.
    pub df_length: usize,
}

/// Folds of the inner cross-validation that weighs members (`combine=weighted`).
pub const INNER_FOLDS: usize = 3;

impl Default for EnsembleSpec {
    fn default() -> Self {
        let mut members = 0;
        for m in DEFAULT_MEMBERS {
            members |= 1 << member_index(m).unwrap_or(0);
        }
        EnsembleSpec {
            members,
            combine: Combine::Soft,
            df_length: crate::wf::DF_LENGTH,
        }
    }
}

fn member_index(name: &str) -> Option<usize> {
    MEMBERS.iter().position(|m| *m == name)
}

impl EnsembleSpec {
    /// Options after `ensemble:`: `members=a+b+c`, `combine=soft|weighted`, `df_length=N`.
    pub fn parse(opts: &str) -> Result<EnsembleSpec, String> {
        let mut s = EnsembleSpec::default();
        for kv in opts.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("option {kv:?} is not key=value"))?;
            let v = v.trim();
            match k.trim() {
                "members" => {
                    s.members = 0;
                    for m in v.split('+').map(str::trim) {
                        let i = member_index(m).ok_or_else(|| {
                            format!(
                                "{m:?} cannot be an ensemble member (members: {})",
                                MEMBERS.join(", ")
                            )
                        })?;
                        s.members |= 1 << i;
                    }
                    if s.members.count_ones() < 2 {
                        return Err("an ensemble needs at least two members".into());
                    }
                }
                "combine" => {
                    s.combine = match v {
                        "soft" => Combine::Soft,
                        "weighted" => Combine::Weighted,
                        _ => return Err(format!("combine {v:?}: soft or weighted")),
                    }
                }
                "df_length" => {
                    s.df_length = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| format!("df_length {v:?} is not in 1..=100000"))?;
                }
                other => {
                    return Err(format!(
                        "unknown option {other:?} (known: members, combine, df_length)"
                    ));
                }
            }
        }
        Ok(s)
    }

    /// The options as [`EnsembleSpec::parse`] reads them.
    pub fn to_options(self) -> String {
        format!(
            "members={},combine={},df_length={}",
            self.member_names().join("+"),
            match self.combine {
                Combine::Soft => "soft",
                Combine::Weighted => "weighted",
            },
            self.df_length
        )
    }

    /// The members' names, in column order.
    pub fn member_names(self) -> Vec<&'static str> {
        MEMBERS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.members & (1 << i) != 0)
            .map(|(_, m)| *m)
            .collect()
    }

    /// The members as attacks (DF-style ones with this ensemble's length).
    pub fn member_attacks(self) -> Vec<Attack> {
        self.member_names()
            .into_iter()
            .filter_map(|m| {
                let name = if matches!(m, "df" | "df-size" | "tiktok") {
                    format!("{m}:length={}", self.df_length)
                } else {
                    m.to_string()
                };
                Attack::by_name(&name).ok()
            })
            .collect()
    }
}

/// How the ensemble trains: its seed and the members' epoch cap (neural members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EnsembleLearner {
    /// Seed of every member (member `i` gets `seed + i`).
    pub seed: u64,
    /// At most this many epochs for neural members.
    pub max_epochs: Option<usize>,
}

/// The ensemble's row of a trace: the members' rows side by side (zeros for a member with no
/// row); none when the trace has no packet with a known direction.
pub(crate) fn row(spec: EnsembleSpec, trace: &Trace) -> Option<Vec<f32>> {
    if !trace
        .packets
        .iter()
        .any(|p| p.dir != hush_trace::Direction::Unknown)
    {
        return None;
    }
    let mut out = Vec::new();
    for a in spec.member_attacks() {
        let width = a.feature_names().len();
        match a.windows(trace).into_iter().next() {
            Some(r) => out.extend(r),
            None => out.extend(std::iter::repeat_n(0.0, width)),
        }
    }
    Some(out)
}

/// Feature names: each member's, prefixed with its name (`k-fp/iat_max_in`).
pub(crate) fn feature_names(spec: EnsembleSpec) -> Vec<String> {
    spec.member_attacks()
        .iter()
        .flat_map(|a| {
            let n = a.name();
            a.feature_names()
                .into_iter()
                .map(move |f| format!("{n}/{f}"))
        })
        .collect()
}

/// The columns `first..first + width` of `x`.
fn columns(x: &Matrix, first: usize, width: usize) -> Result<Matrix, AttackError> {
    let mut data = Vec::with_capacity(x.rows() * width);
    for r in 0..x.rows() {
        data.extend_from_slice(&x.row(r)[first..first + width]);
    }
    Ok(Matrix::new(x.rows(), width, data)?)
}

/// The member attacks with their seeds and epoch caps, and the columns each reads.
fn members(spec: EnsembleSpec, learner: EnsembleLearner) -> Vec<(Attack, usize, usize)> {
    let mut first = 0;
    spec.member_attacks()
        .into_iter()
        .enumerate()
        .map(|(i, mut a)| {
            a.set_seed(learner.seed.wrapping_add(i as u64));
            if let Some(e) = learner.max_epochs {
                a.set_max_epochs(e);
            }
            let width = a.feature_names().len();
            let out = (a, first, width);
            first += width;
            out
        })
        .collect()
}

/// `data` restricted to one member's columns.
fn member_data(
    data: &MlDataset,
    a: &Attack,
    first: usize,
    width: usize,
) -> Result<MlDataset, AttackError> {
    Ok(MlDataset {
        x: columns(&data.x, first, width)?,
        y: data.y.clone(),
        classes: data.classes.clone(),
        groups: data.groups.clone(),
        feature_names: a.feature_names(),
    })
}

/// Fit every member on `data` (the ensemble's rows) and weigh them.
pub(crate) fn fit(
    spec: EnsembleSpec,
    learner: EnsembleLearner,
    data: &MlDataset,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<Model, AttackError> {
    data.validate()?;
    let ms = members(spec, learner);
    let expected: usize = ms.iter().map(|(_, _, w)| w).sum();
    if data.x.cols() != expected {
        return Err(hush_ml::MlError::Shape(format!(
            "ensemble rows of {} values, but its members read {expected}",
            data.x.cols()
        ))
        .into());
    }
    let weights = match spec.combine {
        Combine::Soft => vec![1.0; ms.len()],
        Combine::Weighted => inner_accuracy(&ms, data)?,
    };
    let mut out = Vec::with_capacity(ms.len());
    for ((a, first, width), weight) in ms.iter().zip(weights) {
        let d = member_data(data, a, *first, *width)?;
        let model = a.fit_with_progress(&d, "ensemble member", progress)?.model;
        out.push(EnsembleMember {
            feature_set: a.spec(),
            first_column: *first,
            columns: *width,
            weight,
            model,
        });
    }
    Ok(Model::Ensemble { members: out })
}

/// Each member's accuracy over [`INNER_FOLDS`] folds of the training rows by capture group
/// (stratified by class, seeded), floored at a small positive weight.
fn inner_accuracy(
    ms: &[(Attack, usize, usize)],
    data: &MlDataset,
) -> Result<Vec<f32>, AttackError> {
    let folds = inner_folds(data, INNER_FOLDS, ms.first().map_or(0, |m| seed_of(&m.0)));
    let mut acc = Vec::with_capacity(ms.len());
    for (a, first, width) in ms {
        let d = member_data(data, a, *first, *width)?;
        let (mut right, mut total) = (0usize, 0usize);
        for test in &folds {
            let train: Vec<usize> = (0..data.y.len()).filter(|i| !test.contains(i)).collect();
            let sub = MlDataset {
                x: d.x.select(&train),
                y: train.iter().map(|&i| d.y[i]).collect(),
                classes: d.classes.clone(),
                groups: train.iter().map(|&i| d.groups[i]).collect(),
                feature_names: d.feature_names.clone(),
            };
            let model = a.fit(&sub, "inner fold")?;
            let probs = a.predict_rows(&model, &d.x.select(test))?;
            for (p, &i) in probs.iter().zip(test) {
                right += usize::from(argmax(p) == d.y[i]);
                total += 1;
            }
        }
        acc.push((right as f32 / total.max(1) as f32).max(0.01));
    }
    Ok(acc)
}

fn seed_of(a: &Attack) -> u64 {
    match &a.learner {
        crate::Learner::Forest(f) | crate::Learner::LeafKnn { forest: f, .. } => f.seed,
        #[cfg(feature = "neural")]
        crate::Learner::Neural(n) => n.train.seed,
        crate::Learner::Ensemble(e) => e.seed,
    }
}

/// Test rows of `k` folds by group, each class's groups dealt round-robin after a seeded
/// shuffle; a class with fewer groups than folds is spread over as many folds as it has.
fn inner_folds(data: &MlDataset, k: usize, seed: u64) -> Vec<Vec<usize>> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x1e_4e_e5);
    let mut fold_of_group = std::collections::HashMap::new();
    for c in 0..data.classes.len() as u32 {
        let mut groups: Vec<u32> = data
            .y
            .iter()
            .zip(&data.groups)
            .filter(|(y, _)| **y == c)
            .map(|(_, g)| *g)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups.shuffle(&mut rng);
        for (j, g) in groups.into_iter().enumerate() {
            fold_of_group.insert((c, g), j % k);
        }
    }
    let mut folds = vec![Vec::new(); k];
    for (i, (&y, &g)) in data.y.iter().zip(&data.groups).enumerate() {
        folds[fold_of_group[&(y, g)]].push(i);
    }
    folds.retain(|f| !f.is_empty());
    folds
}

/// Class probabilities of ensemble rows: the weighted mean of the members'.
pub(crate) fn predict(
    members: &[EnsembleMember],
    n_classes: usize,
    x: &Matrix,
) -> Result<Vec<Vec<f32>>, AttackError> {
    let mut out = vec![vec![0f32; n_classes]; x.rows()];
    let total: f32 = members.iter().map(|m| m.weight).sum();
    if members.is_empty() || total.is_nan() || total <= 0.0 {
        return Err(hush_ml::MlError::Format("an ensemble model without members".into()).into());
    }
    for m in members {
        let a = Attack::by_name(&m.feature_set)?;
        if matches!(a.kind, AttackKind::Ensemble(_)) {
            return Err(hush_ml::MlError::Format("an ensemble inside an ensemble".into()).into());
        }
        if m.first_column + m.columns > x.cols() {
            return Err(hush_ml::MlError::Shape(format!(
                "member {} reads columns {}..{} of rows {} wide",
                m.feature_set,
                m.first_column,
                m.first_column + m.columns,
                x.cols()
            ))
            .into());
        }
        let probs =
            a.predict_model(&m.model, n_classes, &columns(x, m.first_column, m.columns)?)?;
        for (o, p) in out.iter_mut().zip(probs) {
            for (a, b) in o.iter_mut().zip(p) {
                *a += m.weight / total * b;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_and_refuse() {
        let d = EnsembleSpec::default();
        assert_eq!(d.member_names(), DEFAULT_MEMBERS);
        let s =
            EnsembleSpec::parse("members=flow-stats+df,combine=weighted,df_length=100").unwrap();
        assert_eq!(s.member_names(), ["flow-stats", "df"]);
        assert_eq!(s.combine, Combine::Weighted);
        assert_eq!(EnsembleSpec::parse(&s.to_options()).unwrap(), s);
        for bad in [
            "members=flow-stats",
            "members=m-agg+flow-stats",
            "members=ensemble+df",
            "combine=median",
            "df_length=0",
            "size=3",
            "members",
        ] {
            assert!(EnsembleSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inner_folds_keep_groups_whole() {
        let data = MlDataset {
            x: Matrix::new(8, 1, vec![0.0; 8]).unwrap(),
            y: vec![0, 0, 0, 0, 1, 1, 1, 1],
            classes: vec!["a".into(), "b".into()],
            groups: vec![0, 0, 1, 2, 3, 4, 5, 5],
            feature_names: vec!["f".into()],
        };
        let folds = inner_folds(&data, 3, 7);
        let mut seen: Vec<usize> = folds.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        for f in &folds {
            for &i in f {
                for &j in f.iter().chain(folds.iter().flatten()) {
                    if data.groups[i] == data.groups[j] {
                        assert!(f.contains(&j), "group split across folds");
                    }
                }
            }
        }
    }
}
