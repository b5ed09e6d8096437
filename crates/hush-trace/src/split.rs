//! Train/test splits that never put one capture on both sides.
//!
//! iPET split windows of the same day at random, so near-identical windows of one capture landed
//! in both train and test and inflated accuracy. Here the unit of every split is the group
//! ([`LabelledTrace::group`](crate::dataset::LabelledTrace::group), the capture file by default).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rustc_hash::FxHashMap;

use crate::dataset::Dataset;
use crate::error::{ErrorKind, Result, TraceError};

/// Indices into [`Dataset::traces`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fold {
    /// Training traces.
    pub train: Vec<usize>,
    /// Test traces.
    pub test: Vec<usize>,
}

fn invalid(msg: String) -> TraceError {
    TraceError::new(ErrorKind::Invalid(msg))
}

/// Groups per label: label → list of (group, trace indices), in dataset order.
fn groups_by_label(ds: &Dataset) -> BTreeMap<&str, Vec<(&str, Vec<usize>)>> {
    let mut out: BTreeMap<&str, Vec<(&str, Vec<usize>)>> = BTreeMap::new();
    for (i, t) in ds.traces.iter().enumerate() {
        let groups = out.entry(t.label.as_str()).or_default();
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((t.group.as_str(), vec![i])),
        }
    }
    out
}

/// Stratified k-fold by group: each label's groups are shuffled (seeded) and dealt round-robin
/// to the folds, so every fold's test side has each label in proportion and no group is ever on
/// both sides. A group that several labels share (a whole home's time block) goes where the first
/// label dealt it, for all of them. Fails when k < 2 or a label has fewer than k groups (naming
/// the label).
pub fn group_kfold(ds: &Dataset, k: usize, seed: u64) -> Result<Vec<Fold>> {
    if k < 2 {
        return Err(invalid(format!("k-fold needs k >= 2, got {k}")));
    }
    if ds.traces.is_empty() {
        return Err(invalid("cannot split an empty dataset".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fold_of = vec![0usize; ds.traces.len()];
    // A running offset spreads labels' remainders over the folds instead of piling on fold 0.
    let mut offset = 0;
    let mut fold_of_group: FxHashMap<&str, usize> = FxHashMap::default();
    for (label, mut groups) in groups_by_label(ds) {
        if groups.len() < k {
            return Err(invalid(format!(
                "label {label:?} has {} capture group(s), fewer than the {k} folds",
                groups.len()
            )));
        }
        groups.shuffle(&mut rng);
        // Counts only the groups this label deals, so without shared groups every label's j-th
        // group goes to fold (j + offset) % k.
        let mut j = 0;
        for (group, idx) in &groups {
            let fold = *fold_of_group.entry(group).or_insert_with(|| {
                j += 1;
                (j - 1 + offset) % k
            });
            for &i in idx {
                fold_of[i] = fold;
            }
        }
        offset += j;
    }
    Ok((0..k)
        .map(|f| Fold {
            train: (0..ds.traces.len()).filter(|&i| fold_of[i] != f).collect(),
            test: (0..ds.traces.len()).filter(|&i| fold_of[i] == f).collect(),
        })
        .collect())
}

/// One stratified split by group with about `test_fraction` of each label's groups in test (at
/// least one group on each side, unless groups shared with other labels were placed already).
/// Fails for a label with a single group.
pub fn group_train_test(ds: &Dataset, test_fraction: f64, seed: u64) -> Result<Fold> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(invalid(format!(
            "test fraction must be in (0, 1), got {test_fraction}"
        )));
    }
    if ds.traces.is_empty() {
        return Err(invalid("cannot split an empty dataset".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fold = Fold::default();
    let mut placed = FxHashMap::default();
    for (label, mut groups) in groups_by_label(ds) {
        if groups.len() < 2 {
            return Err(invalid(format!(
                "label {label:?} has one capture group; it cannot be on both sides"
            )));
        }
        groups.shuffle(&mut rng);
        let n_test =
            ((groups.len() as f64 * test_fraction).round() as usize).clamp(1, groups.len() - 1);
        deal(
            &groups,
            n_test,
            &mut placed,
            &mut fold.test,
            &mut fold.train,
        );
    }
    fold.train.sort_unstable();
    fold.test.sort_unstable();
    Ok(fold)
}

/// Deal one label's groups, in order: the first `n` to `first`, the rest to `rest`. A group that
/// an earlier label placed (`placed`: group -> went to `first`) stays on its side and counts
/// towards `n`, so a group shared by labels is never split.
fn deal<'a>(
    groups: &[(&'a str, Vec<usize>)],
    n: usize,
    placed: &mut FxHashMap<&'a str, bool>,
    first: &mut Vec<usize>,
    rest: &mut Vec<usize>,
) {
    let mut in_first = groups
        .iter()
        .filter(|(g, _)| placed.get(g) == Some(&true))
        .count();
    for (group, idx) in groups {
        let to_first = *placed.entry(group).or_insert_with(|| {
            in_first += 1;
            in_first <= n
        });
        if to_first {
            first.extend(idx)
        } else {
            rest.extend(idx)
        }
    }
}

/// Split by time: per label, groups ordered by their first packet; the earliest
/// `train_fraction` of them train and the rest test, as an attacker who records first and
/// attacks later would. At least one group on each side per label.
pub fn time_split(ds: &Dataset, train_fraction: f64) -> Result<Fold> {
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(invalid(format!(
            "train fraction must be in (0, 1), got {train_fraction}"
        )));
    }
    if ds.traces.is_empty() {
        return Err(invalid("cannot split an empty dataset".into()));
    }
    let mut fold = Fold::default();
    let mut placed = FxHashMap::default();
    for (label, mut groups) in groups_by_label(ds) {
        if groups.len() < 2 {
            return Err(invalid(format!(
                "label {label:?} has one capture group; it cannot be on both sides"
            )));
        }
        let start = |idx: &Vec<usize>| {
            idx.iter()
                .filter_map(|&i| ds.traces[i].trace.packets.first().map(|p| p.t_ns))
                .min()
                .unwrap_or(i64::MAX)
        };
        groups.sort_by(|a, b| start(&a.1).cmp(&start(&b.1)).then_with(|| a.0.cmp(b.0)));
        let n_train =
            ((groups.len() as f64 * train_fraction).round() as usize).clamp(1, groups.len() - 1);
        deal(
            &groups,
            n_train,
            &mut placed,
            &mut fold.train,
            &mut fold.test,
        );
    }
    fold.train.sort_unstable();
    fold.test.sort_unstable();
    Ok(fold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::LabelledTrace;
    use crate::packet::Packet;
    use crate::trace::Trace;

    /// `labels[i]` groups for label i, each group holding `per_group` traces; trace start times
    /// increase with the group number.
    fn ds(groups_per_label: &[usize], per_group: usize) -> Dataset {
        let mut traces = Vec::new();
        for (l, &groups) in groups_per_label.iter().enumerate() {
            for g in 0..groups {
                for _ in 0..per_group {
                    let trace = Trace {
                        packets: vec![Packet {
                            t_ns: g as i64,
                            ..Packet::default()
                        }],
                        ..Trace::default()
                    };
                    traces.push(LabelledTrace {
                        label: format!("L{l}"),
                        group: format!("L{l}/g{g}"),
                        trace,
                    });
                }
            }
        }
        let mut labels: Vec<String> = traces.iter().map(|t| t.label.clone()).collect();
        labels.dedup();
        Dataset {
            traces,
            labels,
            ..Dataset::default()
        }
    }

    /// Like [`ds`], but group g of every label is one group: a time block of a whole home.
    fn ds_shared(groups_per_label: &[usize], per_group: usize) -> Dataset {
        let mut d = ds(groups_per_label, per_group);
        for t in &mut d.traces {
            t.group = t.group.split('/').nth(1).unwrap_or_default().to_string();
        }
        d
    }

    fn no_group_on_both_sides(d: &Dataset, f: &Fold) -> bool {
        f.train.iter().all(|&a| {
            f.test
                .iter()
                .all(|&b| d.traces[a].group != d.traces[b].group)
        })
    }

    #[test]
    fn kfold_covers_every_trace_once_and_keeps_groups_whole() {
        let d = ds(&[5, 7, 10], 3);
        let folds = group_kfold(&d, 5, 42).unwrap();
        let mut seen = vec![0; d.traces.len()];
        for f in &folds {
            assert!(no_group_on_both_sides(&d, f));
            assert_eq!(f.train.len() + f.test.len(), d.traces.len());
            for &i in &f.test {
                seen[i] += 1;
            }
            // Every label is in every test fold (each has >= 5 groups).
            for l in 0..3 {
                assert!(f.test.iter().any(|&i| d.traces[i].label == format!("L{l}")));
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        assert_eq!(folds, group_kfold(&d, 5, 42).unwrap());
        assert_ne!(folds, group_kfold(&d, 5, 43).unwrap());
    }

    #[test]
    fn kfold_errors_name_the_problem() {
        let d = ds(&[5, 2], 1);
        let err = group_kfold(&d, 3, 0).unwrap_err().to_string();
        assert!(
            err.contains("\"L1\"") && err.contains("2 capture group"),
            "{err}"
        );
        assert!(group_kfold(&d, 1, 0).is_err());
        assert!(group_kfold(&Dataset::default(), 2, 0).is_err());
    }

    #[test]
    fn train_test_and_time_split() {
        let d = ds(&[4, 10], 2);
        let f = group_train_test(&d, 0.25, 1).unwrap();
        assert!(no_group_on_both_sides(&d, &f));
        assert_eq!(f.test.len(), 2 + 6); // L0: 1 of 4 groups; L1: round(2.5) = 3 of 10 groups... x2 traces
        let t = time_split(&d, 0.5).unwrap();
        assert!(no_group_on_both_sides(&d, &t));
        // Earliest groups train: every test trace starts no earlier than every train trace of its label.
        for &a in &t.train {
            for &b in &t.test {
                if d.traces[a].label == d.traces[b].label {
                    assert!(d.traces[a].trace.packets[0].t_ns <= d.traces[b].trace.packets[0].t_ns);
                }
            }
        }
        assert!(time_split(&ds(&[1], 3), 0.5).is_err());
    }

    proptest::proptest! {
        #[test]
        fn random_datasets_never_leak(groups in proptest::collection::vec(3usize..9, 1..5), per in 1usize..4, seed: u64) {
            let d = ds(&groups, per);
            for f in group_kfold(&d, 3, seed).unwrap() {
                proptest::prop_assert!(no_group_on_both_sides(&d, &f));
            }
            let f = group_train_test(&d, 0.3, seed).unwrap();
            proptest::prop_assert!(no_group_on_both_sides(&d, &f));
            proptest::prop_assert_eq!(f.train.len() + f.test.len(), d.traces.len());
        }

        #[test]
        fn groups_shared_by_labels_are_never_split(groups in proptest::collection::vec(3usize..9, 1..5), per in 1usize..4, seed: u64) {
            let d = ds_shared(&groups, per);
            for f in group_kfold(&d, 3, seed).unwrap() {
                proptest::prop_assert!(no_group_on_both_sides(&d, &f));
                proptest::prop_assert_eq!(f.train.len() + f.test.len(), d.traces.len());
            }
            for f in [group_train_test(&d, 0.3, seed).unwrap(), time_split(&d, 0.6).unwrap()] {
                proptest::prop_assert!(no_group_on_both_sides(&d, &f));
                proptest::prop_assert_eq!(f.train.len() + f.test.len(), d.traces.len());
            }
        }
    }
}
