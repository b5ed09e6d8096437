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

/// How a classifier is scored on a capture's labelled events when every event counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The forest of [`EventClassifier`].
    Forest,
    /// PingPong's signatures ([`crate::signatures`]): one per event name, learnt from the
    /// training instances; an event is named by the signature found in its window.
    Signatures,
}

/// What leave-one-out said about one labelled event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Position among the labelled events, from 0.
    pub index: usize,
    /// Its start, ns since the epoch.
    pub start_ns: i64,
    /// Its label.
    pub label: String,
    /// What the classifier said (`None`: no signature was found in its window).
    pub predicted: Option<String>,
    /// Signatures: every event name whose signature was found in the window.
    pub matched: Vec<String>,
    /// Packet pairs (signatures) or payload packets (forest) in the window.
    pub evidence: usize,
}

/// Leave-one-event-out over a capture's labelled events: each event is classified by a model
/// trained on every *other* labelled event of the capture plus the `extra` single-event
/// captures (label, trace), so no event is ever scored by a model that saw it. Every event of
/// the capture is scored, which a split by time cannot do with a dozen events.
pub fn leave_one_out(
    trace: &Trace,
    events: &[Event],
    extra: &[(String, &Trace)],
    w: &EventWindow,
    method: Method,
    forest: &ForestParams,
) -> Result<Vec<Verdict>, AttackError> {
    if events.len() < 2 {
        return Err(AttackError::Data(format!(
            "leave-one-out needs at least 2 labelled events, not {}",
            events.len()
        )));
    }
    let cfg = crate::signatures::SignatureConfig::default();
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let rest: Vec<Event> = events
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, e)| e.clone())
            .collect();
        let win = window(trace, e, w);
        let verdict = match method {
            Method::Forest => {
                let mut train: Vec<Example> =
                    extra.iter().map(|(l, t)| capture_example(t, l)).collect();
                train.extend(examples(trace, &rest, w));
                let model = EventClassifier::fit(&train, forest)?;
                let test = examples(trace, std::slice::from_ref(e), w);
                Verdict {
                    index: i,
                    start_ns: e.start_ns,
                    label: e.label.clone(),
                    predicted: model.predict(&test)?.into_iter().next(),
                    matched: Vec::new(),
                    evidence: lengths(win).len(),
                }
            }
            Method::Signatures => {
                use crate::signatures::{find, learn, pairs};
                let mut instances: std::collections::BTreeMap<&str, Vec<Vec<_>>> =
                    std::collections::BTreeMap::new();
                for (l, t) in extra {
                    instances.entry(l).or_default().push(pairs(&t.packets));
                }
                for r in &rest {
                    instances
                        .entry(&r.label)
                        .or_default()
                        .push(pairs(window(trace, r, w)));
                }
                let sigs: Vec<_> = instances
                    .iter()
                    .filter_map(|(l, inst)| learn(l, inst, &cfg))
                    .collect();
                let here = pairs(win);
                let matched: Vec<&crate::signatures::Signature> = sigs
                    .iter()
                    .filter(|s| !find(s, &here, &cfg).is_empty())
                    .collect();
                // Several found: the most specific (most pairs) names the event.
                let predicted = matched
                    .iter()
                    .max_by_key(|s| s.elements.len())
                    .map(|s| s.label.clone());
                Verdict {
                    index: i,
                    start_ns: e.start_ns,
                    label: e.label.clone(),
                    predicted,
                    matched: matched.iter().map(|s| s.label.clone()).collect(),
                    evidence: here.len(),
                }
            }
        };
        out.push(verdict);
    }
    Ok(out)
}

/// Scores of leave-one-out verdicts; an event with no answer counts as wrong (as a label of its
/// own, `none`).
pub fn verdict_metrics(verdicts: &[Verdict]) -> Metrics {
    let mut labels: Vec<String> = verdicts.iter().map(|v| v.label.clone()).collect();
    labels.sort();
    labels.dedup();
    for v in verdicts {
        if let Some(p) = &v.predicted
            && !labels.contains(p)
        {
            labels.push(p.clone());
        }
    }
    if verdicts.iter().any(|v| v.predicted.is_none()) {
        labels.push("none".into());
    }
    let idx = |l: &str| labels.iter().position(|x| x == l).unwrap_or(0) as u32;
    let pairs: Vec<(u32, u32)> = verdicts
        .iter()
        .map(|v| (idx(&v.label), idx(v.predicted.as_deref().unwrap_or("none"))))
        .collect();
    Metrics::from_pairs(&pairs, &labels)
}
