//! Packet-level event signatures (PingPong, Trimananda et al., NDSS 2020): a user event makes a
//! device exchange a short, fixed sequence of request/response packet pairs with its server,
//! whose lengths survive encryption. Signatures are learnt from labelled event traffic by
//! clustering packet pairs (DBSCAN) across the event's instances and keeping the clusters that
//! recur in most of them, in order; they are then searched for in a long trace.

use std::collections::HashMap;

use hush_trace::{Direction, Packet, Proto};
use serde::{Deserialize, Serialize};

/// A request/response pair: two consecutive payload-carrying packets of one TCP/UDP flow in
/// opposite directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// When the first packet was seen, ns.
    pub t_ns: i64,
    /// Whether the device sent the first packet.
    pub device_first: bool,
    /// Frame length of the first packet.
    pub first_len: u32,
    /// Frame length of the second.
    pub second_len: u32,
}

type FlowKey = (u32, u32, u16, u16, u8);

/// The packet pairs of `packets` (directions set), in time order.
pub fn pairs(packets: &[Packet]) -> Vec<Pair> {
    let mut last: HashMap<FlowKey, &Packet> = HashMap::new();
    let mut out = Vec::new();
    for p in packets {
        if p.payload_len == 0
            || p.dir == Direction::Unknown
            || !p.proto.intersects(Proto::TCP | Proto::UDP)
        {
            continue;
        }
        // One key per flow, whichever way the packet goes.
        let key = if p.dir == Direction::Outbound {
            (p.src.0, p.dst.0, p.src_port, p.dst_port, p.ip_proto)
        } else {
            (p.dst.0, p.src.0, p.dst_port, p.src_port, p.ip_proto)
        };
        match last.get(&key) {
            Some(prev) if prev.dir != p.dir => {
                out.push(Pair {
                    t_ns: prev.t_ns,
                    device_first: prev.dir == Direction::Outbound,
                    first_len: prev.frame_len,
                    second_len: p.frame_len,
                });
                // A packet belongs to one pair at most.
                last.remove(&key);
            }
            _ => {
                last.insert(key, p);
            }
        }
    }
    out
}

/// One element of a signature: pairs of one orientation whose lengths fall in these ranges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairRange {
    /// Orientation.
    pub device_first: bool,
    /// Smallest and largest first length.
    pub first: (u32, u32),
    /// Smallest and largest second length.
    pub second: (u32, u32),
}

impl PairRange {
    fn matches(&self, p: &Pair, slack: u32) -> bool {
        // Saturating: a range or a slack at the top of u32 (a file can say anything) must not
        // wrap around.
        p.device_first == self.device_first
            && p.first_len.saturating_add(slack) >= self.first.0
            && p.first_len <= self.first.1.saturating_add(slack)
            && p.second_len.saturating_add(slack) >= self.second.0
            && p.second_len <= self.second.1.saturating_add(slack)
    }
}

/// The format name and version a signature file starts with.
pub const SIGNATURE_FORMAT: &str = "hush-signatures-1";

/// Signatures as `hush attack signatures learn` saves them and `find` reads them (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureFile {
    /// Always [`SIGNATURE_FORMAT`].
    pub format: String,
    /// The signatures, one per event.
    pub signatures: Vec<Signature>,
}

/// Why a signature file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignatureFileError {
    /// Not JSON of a signature file at all.
    #[error("not a hush signature file ({0})")]
    NotSignatures(String),
    /// Another format or version.
    #[error("signature file format {0:?} is not supported (this hush reads {SIGNATURE_FORMAT:?})")]
    Version(String),
    /// A signature that cannot be matched as it stands.
    #[error("signature {index} ({label:?}) is damaged: {why}")]
    Damaged {
        /// Its place in the file.
        index: usize,
        /// Its event.
        label: String,
        /// What is wrong.
        why: String,
    },
}

impl SignatureFile {
    /// The signatures of `signatures`, in the current format.
    pub fn new(signatures: Vec<Signature>) -> SignatureFile {
        SignatureFile {
            format: SIGNATURE_FORMAT.into(),
            signatures,
        }
    }

    /// The file's bytes (pretty JSON; the same signatures give the same bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parse and check a file's bytes: its format and version, and every signature usable (at
    /// least one element, ranges low to high, a finite non-negative span).
    pub fn from_bytes(bytes: &[u8]) -> Result<SignatureFile, SignatureFileError> {
        let file: SignatureFile = serde_json::from_slice(bytes)
            .map_err(|e| SignatureFileError::NotSignatures(e.to_string()))?;
        if file.format != SIGNATURE_FORMAT {
            return Err(SignatureFileError::Version(file.format));
        }
        for (index, sig) in file.signatures.iter().enumerate() {
            let damaged = |why: String| SignatureFileError::Damaged {
                index,
                label: sig.label.clone(),
                why,
            };
            if sig.elements.is_empty() {
                return Err(damaged("it has no packet pairs".into()));
            }
            if !(sig.span_s.is_finite() && sig.span_s >= 0.0) {
                return Err(damaged(format!("its span is {} s", sig.span_s)));
            }
            for (k, e) in sig.elements.iter().enumerate() {
                if e.first.0 > e.first.1 || e.second.0 > e.second.1 {
                    return Err(damaged(format!(
                        "pair {k} has a length range that runs backwards ({:?}, {:?})",
                        e.first, e.second
                    )));
                }
            }
        }
        Ok(file)
    }
}

/// A learnt signature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The event.
    pub label: String,
    /// Pairs, in the order they follow the event.
    pub elements: Vec<PairRange>,
    /// Longest time from the first to the last element among the training instances, seconds.
    pub span_s: f64,
    /// Training instances it was learnt from.
    pub instances: usize,
}

/// How signatures are learnt and matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureConfig {
    /// DBSCAN radius, bytes (Chebyshev distance on the two lengths).
    pub eps_bytes: u32,
    /// A cluster must appear in at least this share of the instances.
    pub min_share: f64,
    /// Matching tolerates this many bytes outside a cluster's range.
    pub slack_bytes: u32,
    /// A match must fit in the training span times this factor (and at least 1 s).
    pub span_factor: f64,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        SignatureConfig {
            eps_bytes: 10,
            min_share: 0.9,
            slack_bytes: 0,
            span_factor: 2.0,
        }
    }
}

/// DBSCAN over points (orientation, a, b): clusters of points within `eps` (Chebyshev) of a core
/// point with at least `min_pts` neighbours (itself included). Returns a cluster id per point
/// (`None`: noise). O(n²), for the few hundred pairs of an event's instances.
pub fn dbscan(points: &[(bool, u32, u32)], eps: u32, min_pts: usize) -> Vec<Option<usize>> {
    let n = points.len();
    let near = |i: usize, j: usize| {
        let (a, b) = (points[i], points[j]);
        a.0 == b.0 && a.1.abs_diff(b.1) <= eps && a.2.abs_diff(b.2) <= eps
    };
    let neighbours: Vec<Vec<usize>> = (0..n)
        .map(|i| (0..n).filter(|&j| near(i, j)).collect())
        .collect();
    let mut label = vec![None; n];
    let mut visited = vec![false; n];
    let mut next = 0;
    for i in 0..n {
        if visited[i] || neighbours[i].len() < min_pts {
            continue;
        }
        let c = next;
        next += 1;
        let mut stack = vec![i];
        while let Some(p) = stack.pop() {
            if visited[p] {
                continue;
            }
            visited[p] = true;
            label[p] = Some(c);
            if neighbours[p].len() >= min_pts {
                stack.extend(neighbours[p].iter().copied().filter(|&q| !visited[q]));
            }
        }
    }
    label
}

/// Learn the signature of `label` from its instances: the packet pairs of each instance (the
/// traffic of one event, e.g. a capture of it or the seconds after it).
pub fn learn(label: &str, instances: &[Vec<Pair>], cfg: &SignatureConfig) -> Option<Signature> {
    if instances.is_empty() {
        return None;
    }
    let mut points = Vec::new();
    let mut owner = Vec::new();
    for (k, inst) in instances.iter().enumerate() {
        let t0 = inst.first().map_or(0, |p| p.t_ns);
        for p in inst {
            points.push((p.device_first, p.first_len, p.second_len));
            owner.push((k, p.t_ns - t0));
        }
    }
    let need = ((cfg.min_share * instances.len() as f64).ceil() as usize).max(1);
    let labels = dbscan(&points, cfg.eps_bytes, need);
    let clusters = labels.iter().flatten().copied().max().map_or(0, |m| m + 1);
    let mut elements = Vec::new();
    for c in 0..clusters {
        let members: Vec<usize> = (0..points.len())
            .filter(|&i| labels[i] == Some(c))
            .collect();
        let mut seen: Vec<usize> = members.iter().map(|&i| owner[i].0).collect();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() < need {
            continue;
        }
        let pts: Vec<(bool, u32, u32)> = members.iter().map(|&i| points[i]).collect();
        let mut offsets: Vec<i64> = members.iter().map(|&i| owner[i].1).collect();
        offsets.sort_unstable();
        let at = offsets[offsets.len() / 2];
        elements.push((
            at,
            PairRange {
                device_first: pts[0].0,
                first: (
                    pts.iter().map(|p| p.1).min().unwrap_or(0),
                    pts.iter().map(|p| p.1).max().unwrap_or(0),
                ),
                second: (
                    pts.iter().map(|p| p.2).min().unwrap_or(0),
                    pts.iter().map(|p| p.2).max().unwrap_or(0),
                ),
            },
        ));
    }
    if elements.is_empty() {
        return None;
    }
    elements.sort_by_key(|e| e.0);
    let span_s = instances
        .iter()
        .map(|inst| match (inst.first(), inst.last()) {
            (Some(a), Some(b)) => (b.t_ns - a.t_ns) as f64 * 1e-9,
            _ => 0.0,
        })
        .fold(0.0, f64::max);
    Some(Signature {
        label: label.to_string(),
        elements: elements.into_iter().map(|e| e.1).collect(),
        span_s,
        instances: instances.len(),
    })
}

/// Where `sig` occurs in `pairs` (time order): the time of each match's first pair. Matches do
/// not overlap; elements must appear in order within the allowed span.
pub fn find(sig: &Signature, pairs: &[Pair], cfg: &SignatureConfig) -> Vec<i64> {
    let Some(first) = sig.elements.first() else {
        return Vec::new();
    };
    let span_ns = ((sig.span_s * cfg.span_factor).max(1.0) * 1e9) as i64;
    let mut out = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        if !first.matches(&pairs[i], cfg.slack_bytes) {
            i += 1;
            continue;
        }
        let start = pairs[i].t_ns;
        let mut k = 1;
        let mut j = i + 1;
        while k < sig.elements.len()
            && j < pairs.len()
            && pairs[j].t_ns.saturating_sub(start) <= span_ns
        {
            if sig.elements[k].matches(&pairs[j], cfg.slack_bytes) {
                k += 1;
            }
            j += 1;
        }
        if k == sig.elements.len() {
            out.push(start);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(t: i64, a: u32, b: u32) -> Pair {
        Pair {
            t_ns: t * 1_000_000,
            device_first: true,
            first_len: a,
            second_len: b,
        }
    }

    #[test]
    fn dbscan_by_hand() {
        let pts = [
            (true, 100, 200),
            (true, 103, 198),
            (true, 500, 500),
            (false, 100, 200),
            (true, 106, 201),
        ];
        let l = dbscan(&pts, 5, 2);
        assert_eq!(l[0], l[1]);
        assert_eq!(l[1], l[4], "chained through the core point 103/198");
        assert_eq!(l[2], None);
        assert_eq!(l[3], None, "the other orientation is another space");
    }

    #[test]
    fn learn_and_find() {
        // Three instances: the pairs (556, 1093) then (97, 66) follow every event; noise varies.
        let inst: Vec<Vec<Pair>> = (0..3)
            .map(|k| {
                vec![
                    pair(0, 300 + k * 40, 117),
                    pair(10, 556, 1093 + k),
                    pair(150, 97, 66),
                ]
            })
            .collect();
        let sig = learn("on", &inst, &SignatureConfig::default()).unwrap();
        assert_eq!(sig.elements.len(), 2, "{sig:?}");
        assert_eq!(sig.elements[0].first, (556, 556));
        assert_eq!(sig.elements[0].second, (1093, 1095));
        let stream = vec![
            pair(0, 556, 1094),
            pair(100, 12, 13),
            pair(200, 97, 66),
            pair(5000, 557, 1094),
            pair(9000, 556, 1093),
        ];
        let hits = find(&sig, &stream, &SignatureConfig::default());
        assert_eq!(
            hits,
            vec![0],
            "557 is not 556, and the last has no second element"
        );
    }

    #[test]
    fn signature_files_round_trip_and_damaged_ones_are_errors_never_panics() {
        let inst: Vec<Vec<Pair>> = (0..3)
            .map(|k| vec![pair(10, 556, 1093 + k), pair(150, 97, 66)])
            .collect();
        let sig = learn("on", &inst, &SignatureConfig::default()).unwrap();
        let file = SignatureFile::new(vec![sig]);
        let bytes = file.to_bytes();
        assert_eq!(SignatureFile::from_bytes(&bytes).unwrap(), file);
        let stream: Vec<Pair> = (0..50).map(|i| pair(i * 40, 556, 1094)).collect();
        // Damage of every kind: each mutant is refused, or found in a stream without a panic.
        let (mut state, mut refused) = (7u64, 0);
        for i in 0..3000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = (state >> 33) as usize;
            let mut b = bytes.clone();
            let at = r % b.len();
            match i % 4 {
                0 => b[at] = b"{}[],:\"-.019eE"[r % 14],
                1 => b.truncate(at),
                2 => {
                    b.drain(at..(at + 1 + r % 9).min(b.len()));
                }
                _ => {
                    let end = (at..b.len())
                        .find(|&j| !b[j].is_ascii_digit())
                        .unwrap_or(b.len());
                    let edge: &[u8] = [&b"4294967295"[..], b"0", b"1e308", b"-1"][r % 4];
                    b.splice(at..end, edge.iter().copied());
                }
            }
            match SignatureFile::from_bytes(&b) {
                Ok(f) => {
                    for s in &f.signatures {
                        let slack = SignatureConfig {
                            slack_bytes: u32::MAX,
                            ..SignatureConfig::default()
                        };
                        find(s, &stream, &SignatureConfig::default());
                        find(s, &stream, &slack);
                    }
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    refused += 1;
                }
            }
        }
        assert!(refused > 1500, "{refused} of 3000 refused");
        let other = String::from_utf8(bytes.clone())
            .unwrap()
            .replace(SIGNATURE_FORMAT, "hush-signatures-9");
        let err = SignatureFile::from_bytes(other.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("hush-signatures-9"), "{err}");
        let empty = String::from_utf8(bytes)
            .unwrap()
            .replace("\"elements\": [", "\"elements\": [], \"x\": [");
        let err = SignatureFile::from_bytes(empty.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no packet pairs"), "{err}");
    }
}
