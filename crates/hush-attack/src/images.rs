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
//!   matrix between bins (rows sum to 1), MTF(i, j) = W[q(xᵢ)][q(xⱼ)] over all time pairs, then
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
    fn constant_series_are_flat_not_nan() {
        for k in ALL_KINDS {
            assert!(
                image(&[5.0; 10], k, 4, 4).iter().all(|v| v.is_finite()),
                "{k:?}"
            );
        }
    }
}
