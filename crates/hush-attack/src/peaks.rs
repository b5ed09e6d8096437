//! Rate-peak event detection (Apthorpe et al., "A Smart Home is No Castle", 2017): user events
//! show as peaks in an encrypted device's traffic rate. Bytes per bin, a robust moving baseline
//! (median and median absolute deviation of the surrounding bins), peaks where the rate clears
//! the baseline by a margin, nearby peak bins merged into one event. Unsupervised: nothing is
//! trained.

use hush_trace::{Direction, Packet};
use serde::{Deserialize, Serialize};

use crate::labels::Event;

/// Which traffic counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    /// Both directions.
    Both,
    /// Sent by the device.
    Outbound,
    /// Received.
    Inbound,
}

/// Detector parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakConfig {
    /// Bin width, seconds.
    pub bin_s: f64,
    /// Baseline window around each bin, seconds (both sides together).
    pub baseline_s: f64,
    /// Threshold: median + `k` · 1.4826 · MAD of the baseline window.
    pub k: f64,
    /// The rate must also clear the median by this many bytes per bin.
    pub min_excess_bytes: f64,
    /// Peak bins closer than this are one event, seconds.
    pub merge_s: f64,
    /// Traffic that counts.
    pub which: Which,
}

impl Default for PeakConfig {
    fn default() -> Self {
        PeakConfig {
            bin_s: 1.0,
            baseline_s: 120.0,
            k: 5.0,
            min_excess_bytes: 2000.0,
            merge_s: 5.0,
            which: Which::Both,
        }
    }
}

/// A detected event.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Peak {
    /// First peak bin's start, ns since the epoch.
    pub start_ns: i64,
    /// Last peak bin's end.
    pub end_ns: i64,
    /// Largest bin, bytes.
    pub max_bytes: f64,
}

/// Bytes per bin of `packets` (sorted) from the first packet's bin.
pub fn bin_bytes(packets: &[Packet], bin_s: f64, which: Which) -> (i64, Vec<f64>) {
    let Some(first) = packets.first() else {
        return (0, Vec::new());
    };
    let bin_ns = ((bin_s * 1e9).round() as i64).max(1);
    let t0 = first.t_ns - first.t_ns.rem_euclid(bin_ns);
    let last = packets.last().map_or(t0, |p| p.t_ns);
    let mut bins = vec![0f64; ((last - t0) / bin_ns + 1) as usize];
    for p in packets {
        let keep = match which {
            Which::Both => p.dir != Direction::Unknown,
            Which::Outbound => p.dir == Direction::Outbound,
            Which::Inbound => p.dir == Direction::Inbound,
        };
        if keep {
            bins[((p.t_ns - t0) / bin_ns) as usize] += f64::from(p.frame_len);
        }
    }
    (t0, bins)
}

fn median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    v.select_nth_unstable_by(mid, f64::total_cmp);
    v[mid]
}

/// Detect events in `packets` (sorted by time, directions set).
pub fn detect(packets: &[Packet], cfg: &PeakConfig) -> Vec<Peak> {
    let (t0, bins) = bin_bytes(packets, cfg.bin_s, cfg.which);
    let bin_ns = ((cfg.bin_s * 1e9).round() as i64).max(1);
    let half = ((cfg.baseline_s / cfg.bin_s / 2.0).round() as usize).max(1);
    let mut window = Vec::with_capacity(2 * half + 1);
    let mut hot = vec![false; bins.len()];
    for i in 0..bins.len() {
        window.clear();
        let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(bins.len()));
        window.extend_from_slice(&bins[lo..hi]);
        let m = median(&mut window);
        for v in window.iter_mut() {
            *v = (*v - m).abs();
        }
        let mad = median(&mut window);
        let threshold = m + (cfg.k * 1.4826 * mad).max(cfg.min_excess_bytes);
        hot[i] = bins[i] > threshold;
    }
    let merge = ((cfg.merge_s / cfg.bin_s).round() as usize).max(1);
    let mut out: Vec<Peak> = Vec::new();
    let mut last_hot: Option<usize> = None;
    for (i, &h) in hot.iter().enumerate() {
        if !h {
            continue;
        }
        let start = t0 + i as i64 * bin_ns;
        match (last_hot, out.last_mut()) {
            (Some(j), Some(p)) if i - j <= merge => {
                p.end_ns = start + bin_ns;
                p.max_bytes = p.max_bytes.max(bins[i]);
            }
            _ => out.push(Peak {
                start_ns: start,
                end_ns: start + bin_ns,
                max_bytes: bins[i],
            }),
        }
        last_hot = Some(i);
    }
    out
}

/// Detections against labelled events.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeakScore {
    /// Peaks detected.
    pub detections: usize,
    /// Labelled events.
    pub events: usize,
    /// Detections that overlap an event (within the tolerance).
    pub true_detections: usize,
    /// Events some detection overlaps.
    pub found_events: usize,
    /// `true_detections / detections`.
    pub precision: f64,
    /// `found_events / events`.
    pub recall: f64,
    /// Harmonic mean.
    pub f1: f64,
    /// Detections matching no event, per hour of the capture.
    pub false_per_hour: f64,
}

/// Score `peaks` against `events` (intervals; instants are fine): a detection is true when it
/// overlaps an event widened by `tolerance_s` on each side.
pub fn score(peaks: &[Peak], events: &[Event], tolerance_s: f64, capture_s: f64) -> PeakScore {
    let tol = (tolerance_s * 1e9) as i64;
    let hit = |p: &Peak, e: &Event| p.start_ns <= e.end_ns + tol && p.end_ns >= e.start_ns - tol;
    let true_detections = peaks
        .iter()
        .filter(|p| events.iter().any(|e| hit(p, e)))
        .count();
    let found_events = events
        .iter()
        .filter(|e| peaks.iter().any(|p| hit(p, e)))
        .count();
    let precision = if peaks.is_empty() {
        0.0
    } else {
        true_detections as f64 / peaks.len() as f64
    };
    let recall = if events.is_empty() {
        0.0
    } else {
        found_events as f64 / events.len() as f64
    };
    PeakScore {
        detections: peaks.len(),
        events: events.len(),
        true_detections,
        found_events,
        precision,
        recall,
        f1: if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        },
        false_per_hour: if capture_s > 0.0 {
            (peaks.len() - true_detections) as f64 / (capture_s / 3600.0)
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_trace::{EndpointId, Proto};

    fn pkt(t_s: f64, len: u32) -> Packet {
        Packet {
            t_ns: (t_s * 1e9) as i64,
            frame_len: len,
            ip_len: len,
            payload_len: len,
            proto: Proto::TCP,
            src_port: 1,
            dst_port: 2,
            src: EndpointId(0),
            dst: EndpointId(1),
            dir: Direction::Outbound,
            ip_proto: 6,
        }
    }

    #[test]
    fn finds_bursts_over_a_heartbeat() {
        // A 100-byte heartbeat every 2 s for 10 minutes; bursts of 24 kB at 200 s and 16 kB at 400 s.
        let mut p: Vec<Packet> = (0..300).map(|i| pkt(f64::from(i) * 2.0, 100)).collect();
        for t in [200.3, 200.6, 201.1, 400.2, 400.5] {
            p.push(pkt(t, 8000));
        }
        p.sort_by_key(|p| p.t_ns);
        let peaks = detect(&p, &PeakConfig::default());
        assert_eq!(peaks.len(), 2, "{peaks:?}");
        assert_eq!(peaks[0].start_ns, 200_000_000_000);
        assert_eq!(peaks[0].end_ns, 202_000_000_000, "two adjacent bins merged");
        let events = vec![
            Event {
                start_ns: 200_000_000_000,
                end_ns: 200_000_000_000,
                label: "on".into(),
                device: None,
            },
            Event {
                start_ns: 300_000_000_000,
                end_ns: 300_000_000_000,
                label: "off".into(),
                device: None,
            },
        ];
        let s = score(&peaks, &events, 2.0, 600.0);
        assert_eq!((s.true_detections, s.found_events), (1, 1));
        assert_eq!(s.precision, 0.5);
        assert_eq!(s.recall, 0.5);
        assert_eq!(s.false_per_hour, 6.0);
    }
}
