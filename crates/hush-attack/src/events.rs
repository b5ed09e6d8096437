//! Supervised event classification: the traffic around a user event (a window from a little
//! before to some seconds after it) → which event, with a hush-ml random forest over the flow
//! statistics the device attacks use plus a bag of exact packet lengths (signed by direction,
//! over the lengths seen in training): events often differ by a single byte in one packet (the
//! TP-Link plug's ON and OFF commands are 556 and 557 bytes).

use hush_ml::{Dataset as MlDataset, ForestParams, Matrix, RandomForest};
use hush_trace::{Packet, Trace};
use serde::{Deserialize, Serialize};

use crate::AttackError;
use crate::eval::Metrics;
use crate::features::{flow_feature_names, flow_stats};
use crate::labels::Event;

/// The window around an event.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventWindow {
    /// Seconds before the event's start.
    pub before_s: f64,
    /// Seconds after its end.
    pub after_s: f64,
}

impl Default for EventWindow {
    fn default() -> Self {
        EventWindow {
            before_s: 1.0,
            after_s: 10.0,
        }
    }
}

/// The packets of `trace` in the window around `e`.
pub fn window<'a>(trace: &'a Trace, e: &Event, w: &EventWindow) -> &'a [Packet] {
    let lo = e.start_ns - (w.before_s * 1e9) as i64;
    let hi = e.end_ns + (w.after_s * 1e9) as i64;
    let a = trace.packets.partition_point(|p| p.t_ns < lo);
    let b = trace.packets.partition_point(|p| p.t_ns <= hi);
    &trace.packets[a..b]
}

/// A labelled example: its features and its event label.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Flow statistics of the window.
    pub features: Vec<f32>,
    /// Frame lengths of the packets with payload, positive outbound, negative inbound.
    pub lengths: Vec<i64>,
    /// The event.
    pub label: String,
}

fn lengths(packets: &[Packet]) -> Vec<i64> {
    packets
        .iter()
        .filter(|p| p.payload_len > 0 && p.dir != hush_trace::Direction::Unknown)
        .map(|p| {
            let l = i64::from(p.frame_len);
            if p.dir == hush_trace::Direction::Outbound {
                l
            } else {
                -l
            }
        })
        .collect()
}

/// Examples from labelled events in a trace.
pub fn examples(trace: &Trace, events: &[Event], w: &EventWindow) -> Vec<Example> {
    events
        .iter()
        .map(|e| {
            let win = window(trace, e, w);
            Example {
                features: flow_stats(win),
                lengths: lengths(win),
                label: e.label.clone(),
            }
        })
        .collect()
}

/// An example from a capture that holds one event as a whole.
pub fn capture_example(trace: &Trace, label: &str) -> Example {
    Example {
        features: flow_stats(&trace.packets),
        lengths: lengths(&trace.packets),
        label: label.to_string(),
    }
}

/// A fitted event classifier.
#[derive(Clone, Debug)]
pub struct EventClassifier {
    /// Event labels.
    pub labels: Vec<String>,
    /// Signed lengths counted as features, from the training examples.
    pub vocabulary: Vec<i64>,
    forest: RandomForest,
}

/// Most distinct lengths kept as features.
const VOCABULARY: usize = 256;

fn row(e: &Example, vocabulary: &[i64]) -> Vec<f32> {
    let mut r = e.features.clone();
    r.extend(
        vocabulary
            .iter()
            .map(|v| e.lengths.iter().filter(|l| *l == v).count() as f32),
    );
    r
}

fn dataset(
    ex: &[Example],
    labels: &[String],
    vocabulary: &[i64],
) -> Result<MlDataset, AttackError> {
    let rows: Vec<Vec<f32>> = ex.iter().map(|e| row(e, vocabulary)).collect();
    let y = ex
        .iter()
        .map(|e| {
            labels
                .iter()
                .position(|l| *l == e.label)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    AttackError::Data(format!("event {:?} was not in the training data", e.label))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MlDataset {
        x: Matrix::from_rows(&rows)?,
        groups: (0..y.len() as u32).collect(),
        y,
        classes: labels.to_vec(),
        feature_names: flow_feature_names()
            .into_iter()
            .chain(vocabulary.iter().map(|v| format!("len_{v}")))
            .collect(),
    })
}

impl EventClassifier {
    /// Fit on examples.
    pub fn fit(train: &[Example], params: &ForestParams) -> Result<EventClassifier, AttackError> {
        if train.is_empty() {
            return Err(AttackError::Data("no training events".into()));
        }
        let mut labels: Vec<String> = train.iter().map(|e| e.label.clone()).collect();
        labels.sort();
        labels.dedup();
        // The lengths that occur in the most training examples.
        let mut counts: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
        for e in train {
            let mut seen: Vec<i64> = e.lengths.clone();
            seen.sort_unstable();
            seen.dedup();
            for l in seen {
                *counts.entry(l).or_default() += 1;
            }
        }
        let mut vocab: Vec<(i64, usize)> = counts.into_iter().collect();
        vocab.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut vocabulary: Vec<i64> = vocab.into_iter().take(VOCABULARY).map(|v| v.0).collect();
        vocabulary.sort_unstable();
        let forest = RandomForest::fit(&dataset(train, &labels, &vocabulary)?, params)?;
        Ok(EventClassifier {
            labels,
            vocabulary,
            forest,
        })
    }

    /// The predicted label of each example.
    pub fn predict(&self, ex: &[Example]) -> Result<Vec<String>, AttackError> {
        let rows: Vec<Vec<f32>> = ex.iter().map(|e| row(e, &self.vocabulary)).collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let pred = self.forest.predict(&Matrix::from_rows(&rows)?)?;
        Ok(pred
            .into_iter()
            .map(|c| self.labels[c as usize].clone())
            .collect())
    }

    /// Scores on test examples (labels unseen in training count as errors).
    pub fn score(&self, test: &[Example]) -> Result<Metrics, AttackError> {
        let pred = self.predict(test)?;
        let mut labels = self.labels.clone();
        for e in test {
            if !labels.contains(&e.label) {
                labels.push(e.label.clone());
            }
        }
        let idx = |l: &str| labels.iter().position(|x| x == l).unwrap_or(0) as u32;
        let pairs: Vec<(u32, u32)> = test
            .iter()
            .zip(&pred)
            .map(|(e, p)| (idx(&e.label), idx(p)))
            .collect();
        Ok(Metrics::from_pairs(&pairs, &labels))
    }
}
