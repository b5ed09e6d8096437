//! Traffic volume as images (ITEMTK, "I Still See You", EWSN 2024): per-minute inbound and
//! outbound volume over hours becomes Gramian angular summation and difference fields, a Markov
//! transition field and a recurrence plot, at a chosen resolution, for a 2-D CNN.
//!
//! The transforms follow their usual definitions (Wang and Oates 2015 for GAF and MTF; Eckmann
//! et al. 1987 for recurrence plots):
//!
//! - the series is reduced to `size` points by piecewise aggregate approximation (means of equal
//!   spans) and rescaled to [-1, 1];
//! - GASF(i, j) = cos(φᵢ + φⱼ) = x̃ᵢx̃ⱼ − √(1−x̃ᵢ²)√(1−x̃ⱼ²), GADF(i, j) = sin(φᵢ − φⱼ) =
//!   √(1−x̃ᵢ²)x̃ⱼ − x̃ᵢ√(1−x̃ⱼ²), with φ = arccos(x̃);
//! - MTF: the full series quantised into `bins` quantile bins, W the first-order transition
//!   matrix between bins (rows sum to 1), MTF(i, j) = `W[q(xᵢ)][q(xⱼ)]` over all time pairs, then
//!   averaged over `size × size` blocks;
//! - RP(i, j) = |x̃ᵢ − x̃ⱼ| / 2 (unthresholded, in [0, 1]).

use hush_trace::{Direction, Packet};
use serde::{Deserialize, Serialize};

/// The image kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// Gramian angular summation field.
    Gasf,
    /// Gramian angular difference field.
    Gadf,
    /// Markov transition field.
    Mtf,
    /// Recurrence plot.
    Rp,
}

/// Every image kind.
pub const ALL_KINDS: [ImageKind; 4] = [
    ImageKind::Gasf,
    ImageKind::Gadf,
    ImageKind::Mtf,
    ImageKind::Rp,
];

/// Bytes per minute in each direction from the first packet's minute, over `minutes` minutes
/// (longer traces are cut, shorter ones padded with zeros). Returns (inbound, outbound).
pub fn per_minute(packets: &[Packet], minutes: usize) -> (Vec<f64>, Vec<f64>) {
    let mut inb = vec![0f64; minutes];
    let mut out = vec![0f64; minutes];
    let Some(first) = packets.first() else {
        return (inb, out);
    };
    let t0 = first.t_ns;
    for p in packets {
        let m = ((p.t_ns - t0) / 60_000_000_000) as usize;
        if m >= minutes {
            break;
        }
        match p.dir {
            Direction::Inbound => inb[m] += f64::from(p.frame_len),
            Direction::Outbound => out[m] += f64::from(p.frame_len),
            Direction::Unknown => {}
        }
    }
    (inb, out)
}

/// Piecewise aggregate approximation of `x` to `size` points (means of equal spans; a span
/// boundary inside a point splits it proportionally).
pub fn paa(x: &[f64], size: usize) -> Vec<f64> {
    let n = x.len();
    if n == 0 || size == 0 {
        return vec![0.0; size];
    }
    if n == size {
        return x.to_vec();
    }
    (0..size)
        .map(|i| {
            let (a, b) = (
                i as f64 * n as f64 / size as f64,
                (i + 1) as f64 * n as f64 / size as f64,
            );
            let (mut sum, mut w) = (0.0, 0.0);
            let mut k = a.floor() as usize;
            while (k as f64) < b && k < n {
                let lo = a.max(k as f64);
                let hi = b.min(k as f64 + 1.0);
                if hi > lo {
                    sum += x[k] * (hi - lo);
                    w += hi - lo;
                }
                k += 1;
            }
            if w > 0.0 { sum / w } else { 0.0 }
        })
        .collect()
}

/// `x` rescaled to [-1, 1] (all zeros for a constant series).
pub fn rescale(x: &[f64]) -> Vec<f64> {
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if hi.is_nan() || lo.is_nan() || hi <= lo {
        return vec![0.0; x.len()];
    }
    x.iter()
        .map(|&v| ((v - hi) + (v - lo)) / (hi - lo))
        .collect()
}

/// One `size × size` image of `kind` from series `x` (row-major).
pub fn image(x: &[f64], kind: ImageKind, size: usize, bins: usize) -> Vec<f32> {
    match kind {
        ImageKind::Gasf | ImageKind::Gadf | ImageKind::Rp => {
            let s = rescale(&paa(x, size));
            let root: Vec<f64> = s.iter().map(|v| (1.0 - v * v).max(0.0).sqrt()).collect();
            let mut out = Vec::with_capacity(size * size);
            for i in 0..size {
                for j in 0..size {
                    out.push(match kind {
                        ImageKind::Gasf => s[i] * s[j] - root[i] * root[j],
                        ImageKind::Gadf => root[i] * s[j] - s[i] * root[j],
                        _ => (s[i] - s[j]).abs() / 2.0,
                    } as f32);
                }
            }
            out
        }
        ImageKind::Mtf => mtf(x, size, bins),
    }
}

fn mtf(x: &[f64], size: usize, bins: usize) -> Vec<f32> {
    let n = x.len();
    if n == 0 || size == 0 {
        return vec![0.0; size * size];
    }
    let bins = bins.max(1);
    // Quantile bin edges.
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edges: Vec<f64> = (1..bins)
        .map(|k| sorted[(k * n / bins).min(n - 1)])
        .collect();
    let q: Vec<usize> = x
        .iter()
        .map(|&v| edges.partition_point(|&e| e <= v).min(bins - 1))
        .collect();
    let mut w = vec![vec![0f64; bins]; bins];
    for t in 1..n {
        w[q[t - 1]][q[t]] += 1.0;
    }
    for row in &mut w {
        let s: f64 = row.iter().sum();
        if s > 0.0 {
            row.iter_mut().for_each(|v| *v /= s);
        }
    }
    // Block-average the n × n field down to size × size.
    let span = |i: usize| -> (usize, usize) {
        let a = i * n / size;
        let b = ((i + 1) * n / size).max(a + 1).min(n);
        (a, b)
    };
    let mut out = Vec::with_capacity(size * size);
    for i in 0..size {
        let (ia, ib) = span(i);
        for j in 0..size {
            let (ja, jb) = span(j);
            let mut s = 0.0;
            for a in ia..ib {
                for b in ja..jb {
                    s += w[q[a]][q[b]];
                }
            }
            out.push((s / ((ib - ia) * (jb - ja)) as f64) as f32);
        }
    }
    out
}

/// A stack of images for one trace window: for each direction (inbound, outbound) and each kind,
/// a `size × size` image; channels first (`2 × kinds × size × size`).
pub fn image_stack(
    packets: &[Packet],
    minutes: usize,
    kinds: &[ImageKind],
    size: usize,
    bins: usize,
) -> Vec<f32> {
    let (inb, out) = per_minute(packets, minutes);
    let mut v = Vec::with_capacity(2 * kinds.len() * size * size);
    for series in [&inb, &out] {
        for &k in kinds {
            v.extend(image(series, k, size, bins));
        }
    }
    v
}

/// How the image attack (ITEMTK) turns a trace into windows. The defaults are ITEMTK's:
/// per-minute volume, 8-hour windows starting every hour, 32 × 32 images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageParams {
    /// Width of a volume bin, seconds (ITEMTK: 60).
    pub bin_s: f64,
    /// Bins per window (ITEMTK: 480, 8 hours of minutes; 1440 is a day).
    pub window_bins: usize,
    /// Bins from one window's start to the next.
    pub stride_bins: usize,
    /// Image side, pixels.
    pub size: usize,
    /// Quantile bins of the Markov transition field.
    pub mtf_bins: usize,
}

impl Default for ImageParams {
    fn default() -> Self {
        ImageParams {
            bin_s: 60.0,
            window_bins: 480,
            stride_bins: 60,
            size: 32,
            mtf_bins: 8,
        }
    }
}

impl ImageParams {
    /// Images per window: inbound and outbound × [`ALL_KINDS`].
    pub const CHANNELS: usize = 2 * ALL_KINDS.len();

    /// Parse `bin_s=1,window=600,stride=60,size=32,mtf_bins=8` (any subset; the rest default).
    pub fn parse(opts: &str) -> Result<ImageParams, String> {
        let mut p = ImageParams::default();
        for kv in opts.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{kv:?}: expected key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            let int = || {
                v.parse::<usize>()
                    .map_err(|_| format!("{k}={v}: not a whole number"))
            };
            match k {
                "bin_s" => {
                    p.bin_s = v
                        .parse::<f64>()
                        .map_err(|_| format!("bin_s={v}: not a number"))?
                }
                "window" => p.window_bins = int()?,
                "stride" => p.stride_bins = int()?,
                "size" => p.size = int()?,
                "mtf_bins" => p.mtf_bins = int()?,
                other => {
                    return Err(format!(
                        "unknown image option {other:?}; known: bin_s, window, stride, size, mtf_bins"
                    ));
                }
            }
        }
        p.validate()?;
        Ok(p)
    }

    /// Check the numbers: a positive bin, at least 2 bins per window and pixels per side, a
    /// stride of at least 1, at least 2 MTF bins.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.bin_s.is_finite() && self.bin_s > 0.0) {
            return Err(format!("bin_s={} must be a positive number", self.bin_s));
        }
        if self.window_bins < 2 || self.size < 2 || self.stride_bins == 0 || self.mtf_bins < 2 {
            return Err(format!(
                "window={} and size={} must be at least 2, stride={} at least 1, mtf_bins={} at least 2",
                self.window_bins, self.size, self.stride_bins, self.mtf_bins
            ));
        }
        Ok(())
    }

    /// The options as [`ImageParams::parse`] reads them.
    pub fn to_options(&self) -> String {
        format!(
            "bin_s={},window={},stride={},size={},mtf_bins={}",
            self.bin_s, self.window_bins, self.stride_bins, self.size, self.mtf_bins
        )
    }
}

/// Bytes per `bin_s` bin in each direction from the first packet to the last. Returns
/// (inbound, outbound).
pub fn volume_series(packets: &[Packet], bin_s: f64) -> (Vec<f64>, Vec<f64>) {
    let (Some(first), Some(last)) = (packets.first(), packets.last()) else {
        return (Vec::new(), Vec::new());
    };
    let bin_ns = bin_s * 1e9;
    let n = ((last.t_ns - first.t_ns).max(0) as f64 / bin_ns) as usize + 1;
    let (mut inb, mut out) = (vec![0f64; n], vec![0f64; n]);
    for p in packets {
        // Packets are in time order; clamp anyway so a stray timestamp cannot index past.
        let b = (((p.t_ns - first.t_ns).max(0) as f64 / bin_ns) as usize).min(n - 1);
        match p.dir {
            Direction::Inbound => inb[b] += f64::from(p.frame_len),
            Direction::Outbound => out[b] += f64::from(p.frame_len),
            Direction::Unknown => {}
        }
    }
    (inb, out)
}

/// The image attack's windows of a trace: every `window_bins` span of its volume series,
/// starting every `stride_bins` bins, that has traffic, as [`ImageParams::CHANNELS`] images of
/// `size × size` (inbound GASF, GADF, MTF, RP, then outbound), channels first. A trace shorter
/// than one window gives none.
pub fn image_windows(trace: &hush_trace::Trace, p: &ImageParams) -> Vec<Vec<f32>> {
    let (inb, out) = volume_series(&trace.packets, p.bin_s);
    let n = inb.len();
    if n < p.window_bins {
        return Vec::new();
    }
    (0..=n - p.window_bins)
        .step_by(p.stride_bins)
        .filter_map(|start| {
            let span = start..start + p.window_bins;
            let (i, o) = (&inb[span.clone()], &out[span]);
            if i.iter().chain(o).all(|&v| v == 0.0) {
                return None;
            }
            let mut v = Vec::with_capacity(ImageParams::CHANNELS * p.size * p.size);
            for series in [i, o] {
                for k in ALL_KINDS {
                    v.extend(image(series, k, p.size, p.mtf_bins));
                }
            }
            Some(v)
        })
        .collect()
}

/// Long traces from short captures, for windows longer than any one capture (the shared data's
/// captures last minutes; ITEMTK's windows last hours): each label's captures, in order of
/// their first packet, are dealt in turn into `per_label` traces, and each of those plays its
/// captures back to back, `gap_s` apart. A joined trace never shares a capture with another,
/// so folds over joined traces still keep every capture on one side. Labels with fewer
/// captures than `per_label` give one trace per capture.
pub fn join_captures(
    ds: &hush_trace::dataset::Dataset,
    per_label: usize,
    gap_s: f64,
) -> hush_trace::dataset::Dataset {
    use hush_trace::dataset::{Dataset, LabelledTrace};
    let gap_ns = (gap_s.max(0.0) * 1e9) as i64;
    let mut traces = Vec::new();
    for label in &ds.labels {
        let mut mine: Vec<&LabelledTrace> = ds
            .traces
            .iter()
            .filter(|t| &t.label == label && !t.trace.packets.is_empty())
            .collect();
        mine.sort_by_key(|t| (t.trace.packets[0].t_ns, t.trace.name.clone()));
        let k = per_label.clamp(1, mine.len().max(1));
        for j in 0..k {
            let parts: Vec<&LabelledTrace> = mine.iter().skip(j).step_by(k).copied().collect();
            if parts.is_empty() {
                continue;
            }
            let mut joined = hush_trace::Trace {
                name: format!("{label}#joined{j}"),
                packets: Vec::new(),
                endpoints: Vec::new(),
                report: Default::default(),
            };
            let mut next_start: Option<i64> = None;
            for part in &parts {
                let t = &part.trace;
                let first = t.packets[0].t_ns;
                let start = next_start.unwrap_or(first);
                let base = joined.endpoints.len() as u32;
                joined.endpoints.extend_from_slice(&t.endpoints);
                let mut end = start;
                for pk in &t.packets {
                    let mut q = *pk;
                    q.t_ns = start + (pk.t_ns - first).max(0);
                    q.src.0 += base;
                    q.dst.0 += base;
                    end = end.max(q.t_ns);
                    joined.packets.push(q);
                }
                next_start = Some(end + gap_ns);
            }
            traces.push(LabelledTrace {
                label: label.clone(),
                group: joined.name.clone(),
                trace: joined,
            });
        }
    }
    Dataset {
        traces,
        labels: ds.labels.clone(),
        report: ds.report.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (f64::from(*x) - y).abs() < 1e-6)
    }

    #[test]
    fn gaf_by_hand() {
        // x = [0, 1, 2] rescales to [-1, 0, 1]: roots [0, 1, 0].
        let x = [0.0, 1.0, 2.0];
        assert_eq!(rescale(&x), vec![-1.0, 0.0, 1.0]);
        // GASF = s_i s_j - r_i r_j
        let gasf = [1.0, 0.0, -1.0, 0.0, -1.0, 0.0, -1.0, 0.0, 1.0];
        assert!(close(&image(&x, ImageKind::Gasf, 3, 2), &gasf));
        // GADF = r_i s_j - s_i r_j
        let gadf = [0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0];
        assert!(close(&image(&x, ImageKind::Gadf, 3, 2), &gadf));
        let rp = [0.0, 0.5, 1.0, 0.5, 0.0, 0.5, 1.0, 0.5, 0.0];
        assert!(close(&image(&x, ImageKind::Rp, 3, 2), &rp));
    }

    #[test]
    fn paa_and_mtf_by_hand() {
        assert_eq!(paa(&[1.0, 3.0, 5.0, 7.0], 2), vec![2.0, 6.0]);
        // Three points into two: [1, 2, 3] -> spans [0, 1.5) and [1.5, 3): (1 + 0.5*2)/1.5, (0.5*2 + 3)/1.5.
        let p = paa(&[1.0, 2.0, 3.0], 2);
        assert!((p[0] - 4.0 / 3.0).abs() < 1e-12 && (p[1] - 8.0 / 3.0).abs() < 1e-12);
        // x = [0, 0, 1, 1] in 2 quantile bins: q = [0, 0, 1, 1]; transitions 0->0, 0->1, 1->1:
        // W = [[0.5, 0.5], [0, 1]]; MTF(i, j) = W[q_i][q_j].
        let m = image(&[0.0, 0.0, 1.0, 1.0], ImageKind::Mtf, 4, 2);
        let want = [
            0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0,
        ];
        assert!(close(&m, &want), "{m:?}");
        // Downsampled to 2 x 2: block means.
        let m2 = image(&[0.0, 0.0, 1.0, 1.0], ImageKind::Mtf, 2, 2);
        assert!(close(&m2, &[0.5, 0.5, 0.0, 1.0]), "{m2:?}");
    }

    #[test]
    fn volume_windows_and_joined_captures() {
        use hush_trace::{EndpointId, Proto};
        let mk = |t_s: f64, dir: Direction| Packet {
            t_ns: (t_s * 1e9) as i64,
            frame_len: 100,
            ip_len: 86,
            payload_len: 46,
            proto: Proto::IPV4 | Proto::UDP,
            src_port: 1,
            dst_port: 2,
            src: EndpointId(0),
            dst: EndpointId(1),
            dir,
            ip_proto: 17,
        };
        let trace = |name: &str, t0: f64| hush_trace::Trace {
            name: name.into(),
            // 10 s of one packet a second, alternating directions.
            packets: (0..10)
                .map(|i| {
                    let d = if i % 2 == 0 {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    };
                    mk(t0 + f64::from(i), d)
                })
                .collect(),
            endpoints: vec![hush_trace::trace::UNKNOWN_ENDPOINT; 2],
            report: Default::default(),
        };
        let (i, o) = volume_series(&trace("a", 0.0).packets, 2.0);
        assert_eq!(i, vec![100.0; 5]);
        assert_eq!(o, vec![100.0; 5]);
        let p = ImageParams {
            bin_s: 1.0,
            window_bins: 4,
            stride_bins: 3,
            size: 2,
            mtf_bins: 2,
        };
        // 10 bins: windows at 0, 3, 6; 8 channels of 2 x 2.
        let w = image_windows(&trace("a", 0.0), &p);
        assert_eq!(w.len(), 3);
        assert!(w.iter().all(|v| v.len() == 8 * 4));
        let long = ImageParams {
            window_bins: 11,
            ..p
        };
        assert!(
            image_windows(&trace("a", 0.0), &long).is_empty(),
            "shorter than a window"
        );
        // Five captures of one label dealt into two joined traces: 3 + 2 captures, 5 s apart.
        let ds = hush_trace::dataset::Dataset {
            traces: (0..5)
                .map(|k| hush_trace::dataset::LabelledTrace {
                    label: "x".into(),
                    group: format!("c{k}"),
                    trace: trace(&format!("c{k}"), 1000.0 * f64::from(k)),
                })
                .collect(),
            labels: vec!["x".into()],
            report: Default::default(),
        };
        let j = join_captures(&ds, 2, 5.0);
        assert_eq!(j.traces.len(), 2);
        let (a, b) = (&j.traces[0].trace, &j.traces[1].trace);
        assert_eq!((a.packets.len(), b.packets.len()), (30, 20));
        // Captures 0, 2, 4: 0..9 s, then 14..23 s, then 28..37 s.
        assert_eq!(a.packets[10].t_ns, 14_000_000_000);
        assert_eq!(a.packets[29].t_ns, 37_000_000_000);
        assert_eq!(
            a.packets[10].src.0, 2,
            "endpoints of the second capture follow the first's"
        );
        assert_ne!(j.traces[0].group, j.traces[1].group);
        assert_eq!(ImageParams::parse(&p.to_options()).unwrap(), p);
        assert!(ImageParams::parse("window=1").is_err());
        assert!(ImageParams::parse("colour=red").is_err());
    }

    #[test]
    fn constant_series_are_flat_not_nan() {
        for k in ALL_KINDS {
            assert!(
                image(&[5.0; 10], k, 4, 4).iter().all(|v| v.is_finite()),
                "{k:?}"
            );
        }
    }
}
