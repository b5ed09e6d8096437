//! Distributions for record sizes and gaps, truncated exactly to the range where a value is valid.
//!
//! Datta et al.'s Python library drew Gaussian sizes that could come out negative and corrupt
//! data. Here every distribution has a support, sampling draws exactly one uniform number and maps
//! it through the (truncated) inverse CDF, so a sample is always inside its range, costs bounded
//! work, and two engines with the same seed consume their random streams in lockstep.
//!
//! In TOML and on the command line a distribution is a number (a constant), a short string or a
//! table:
//!
//! ```text
//! size_bytes = 150                                   # constant
//! size_bytes = "uniform:50,200"                      # min,max
//! gap_s      = "normal:0.3,0.05"                     # mean,std[,min,max]
//! gap_s      = "lognormal:-1.2,0.4"                  # mu,sigma of ln(x)[,min,max]
//! gap_s      = "exp:0.3"                             # mean[,min,max]
//! size_bytes = "empirical:60,60,120,1400"            # equally likely values
//! size_bytes = { kind = "histogram", edges = [50, 100, 1500], weights = [9, 1] }
//! ```

use std::fmt;
use std::str::FromStr;

use rand::RngExt;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::ShapeRng;

/// A distribution of non-negative real values (seconds or bytes).
///
/// `min`/`max` of the normal, log-normal and exponential kinds truncate them; left out, the
/// distribution is truncated to the range where its user needs values (record sizes between
/// [`crate::frame::MIN_RECORD_BYTES`] and [`crate::frame::MAX_RECORD_BYTES`], gaps ≥ 0).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Dist {
    /// Always `value`.
    Constant {
        /// The value.
        value: f64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Normal with `mean` and standard deviation `std`, truncated to `[min, max]`.
    Normal {
        /// Mean before truncation.
        mean: f64,
        /// Standard deviation before truncation.
        std: f64,
        /// Lower truncation bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Upper truncation bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// `exp(N(mu, sigma))`, truncated to `[min, max]`.
    LogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
        /// Lower truncation bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Upper truncation bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// Exponential with the given mean, truncated to `[min, max]` (memoryless gaps: a Poisson
    /// process of records).
    Exponential {
        /// Mean before truncation.
        mean: f64,
        /// Lower truncation bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Upper truncation bound.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// One of `values`, with probabilities proportional to `weights` (equal when empty): for
    /// example the record sizes seen in a real capture.
    Empirical {
        /// The values.
        values: Vec<f64>,
        /// Their weights (same length as `values`, or empty for equal weights).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        weights: Vec<f64>,
    },
    /// Piecewise uniform: bin `i` is `[edges[i], edges[i+1])` with probability proportional to
    /// `weights[i]`.
    Histogram {
        /// Bin edges, increasing; one more than `weights`.
        edges: Vec<f64>,
        /// Bin weights.
        weights: Vec<f64>,
    },
}

/// A distribution whose parameters are invalid for where it is used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DistError(pub String);

fn bad(msg: impl Into<String>) -> DistError {
    DistError(msg.into())
}

/// A [`Dist`] checked against a valid range and prepared for sampling: one uniform draw per
/// sample, mapped through the truncated inverse CDF.
#[derive(Clone, Debug)]
pub struct Sampler {
    kind: SamplerKind,
}

#[derive(Clone, Debug)]
enum SamplerKind {
    Constant(f64),
    Uniform {
        min: f64,
        max: f64,
    },
    /// Truncated normal in standard units, possibly mirrored so the CDF values stay accurate in
    /// the upper tail; `log` applies `exp` afterwards (log-normal).
    Normal {
        mean: f64,
        std: f64,
        cdf_lo: f64,
        cdf_hi: f64,
        mirrored: bool,
        log: bool,
        min: f64,
        max: f64,
    },
    Exponential {
        mean: f64,
        min: f64,
        span_mass: f64,
        max: f64,
    },
    /// Cumulative weights (normalised so the last is 1) and the value or bin of each.
    Discrete {
        cumulative: Vec<f64>,
        values: Vec<f64>,
    },
    Histogram {
        cumulative: Vec<f64>,
        edges: Vec<f64>,
    },
}

impl Dist {
    /// A constant.
    pub fn constant(value: f64) -> Dist {
        Dist::Constant { value }
    }

    /// Uniform on `[min, max]`.
    pub fn uniform(min: f64, max: f64) -> Dist {
        Dist::Uniform { min, max }
    }

    /// Check the parameters, truncate to `[lo, hi]` and prepare for sampling. `what` names the
    /// field in errors (`"size_bytes"`).
    pub fn sampler(&self, what: &str, lo: f64, hi: f64) -> Result<Sampler, DistError> {
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad(format!(
                    "{what}: {name} must be a finite number, not {v}"
                )))
            }
        };
        let within = |name: &str, v: f64| {
            if v < lo || v > hi {
                Err(bad(format!(
                    "{what}: {name} {v} is outside the valid range [{lo}, {hi}]"
                )))
            } else {
                Ok(v)
            }
        };
        let bounds = |min: Option<f64>, max: Option<f64>| -> Result<(f64, f64), DistError> {
            let min = match min {
                Some(m) => within("min", finite("min", m)?)?,
                None => lo,
            };
            let max = match max {
                Some(m) => within("max", finite("max", m)?)?,
                None => hi,
            };
            if min > max {
                return Err(bad(format!("{what}: min {min} is above max {max}")));
            }
            Ok((min, max))
        };
        let kind = match self {
            Dist::Constant { value } => {
                SamplerKind::Constant(within("value", finite("value", *value)?)?)
            }
            Dist::Uniform { min, max } => {
                let (min, max) = (
                    within("min", finite("min", *min)?)?,
                    within("max", finite("max", *max)?)?,
                );
                if min > max {
                    return Err(bad(format!("{what}: uniform min {min} is above max {max}")));
                }
                SamplerKind::Uniform { min, max }
            }
            Dist::Normal {
                mean,
                std,
                min,
                max,
            } => {
                let (mean, std) = (finite("mean", *mean)?, finite("std", *std)?);
                if std <= 0.0 {
                    return Err(bad(format!(
                        "{what}: normal std must be positive, not {std}"
                    )));
                }
                let (min, max) = bounds(*min, *max)?;
                normal_sampler(what, mean, std, min, max, false)?
            }
            Dist::LogNormal {
                mu,
                sigma,
                min,
                max,
            } => {
                let (mu, sigma) = (finite("mu", *mu)?, finite("sigma", *sigma)?);
                if sigma <= 0.0 {
                    return Err(bad(format!(
                        "{what}: lognormal sigma must be positive, not {sigma}"
                    )));
                }
                let (min, max) = bounds(*min, *max)?;
                normal_sampler(what, mu, sigma, min, max, true)?
            }
            Dist::Exponential { mean, min, max } => {
                let mean = finite("mean", *mean)?;
                if mean <= 0.0 {
                    return Err(bad(format!(
                        "{what}: exponential mean must be positive, not {mean}"
                    )));
                }
                let (min, max) = bounds(*min, *max)?;
                // Mass of [min, max] relative to [min, inf): 1 - e^{-(max-min)/mean}.
                let span_mass = -(-(max - min) / mean).exp_m1();
                SamplerKind::Exponential {
                    mean,
                    min,
                    span_mass,
                    max,
                }
            }
            Dist::Empirical { values, weights } => {
                if values.is_empty() {
                    return Err(bad(format!("{what}: empirical needs at least one value")));
                }
                for &v in values {
                    within("value", finite("value", v)?)?;
                }
                let weights = if weights.is_empty() {
                    vec![1.0; values.len()]
                } else if weights.len() != values.len() {
                    return Err(bad(format!(
                        "{what}: empirical has {} values but {} weights",
                        values.len(),
                        weights.len()
                    )));
                } else {
                    weights.clone()
                };
                SamplerKind::Discrete {
                    cumulative: cumulative(what, &weights)?,
                    values: values.clone(),
                }
            }
            Dist::Histogram { edges, weights } => {
                if edges.len() < 2 || edges.len() != weights.len() + 1 {
                    return Err(bad(format!(
                        "{what}: histogram needs one more edge than weights (got {} edges, {} weights)",
                        edges.len(),
                        weights.len()
                    )));
                }
                for w in edges.windows(2) {
                    if w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less) {
                        return Err(bad(format!(
                            "{what}: histogram edges must increase ({} then {})",
                            w[0], w[1]
                        )));
                    }
                }
                for &e in edges {
                    within("edge", finite("edge", e)?)?;
                }
                SamplerKind::Histogram {
                    cumulative: cumulative(what, weights)?,
                    edges: edges.clone(),
                }
            }
        };
        Ok(Sampler { kind })
    }
}

fn cumulative(what: &str, weights: &[f64]) -> Result<Vec<f64>, DistError> {
    let mut total = 0.0;
    let mut out = Vec::with_capacity(weights.len());
    for &w in weights {
        if !w.is_finite() || w < 0.0 {
            return Err(bad(format!(
                "{what}: weights must be finite and non-negative, not {w}"
            )));
        }
        total += w;
        out.push(total);
    }
    if total <= 0.0 {
        return Err(bad(format!("{what}: weights must not all be zero")));
    }
    for c in &mut out {
        *c /= total;
    }
    Ok(out)
}

fn normal_sampler(
    what: &str,
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
    log: bool,
) -> Result<SamplerKind, DistError> {
    let (lo, hi) = if log {
        // ln(0) = -inf is fine: Φ(-inf) = 0.
        (min.ln(), max.ln())
    } else {
        (min, max)
    };
    let (mut a, mut b) = ((lo - mean) / std, (hi - mean) / std);
    // Work in the lower tail, where Φ keeps its relative precision.
    let mirrored = a > 0.0;
    if mirrored {
        (a, b) = (-b, -a);
    }
    let (cdf_lo, cdf_hi) = (std_normal_cdf(a), std_normal_cdf(b));
    if cdf_hi.partial_cmp(&cdf_lo) != Some(std::cmp::Ordering::Greater) {
        return Err(bad(format!(
            "{what}: the distribution has no probability mass in [{min}, {max}] (mean {mean}, std {std}{})",
            if log { ", of ln(x)" } else { "" }
        )));
    }
    Ok(SamplerKind::Normal {
        mean,
        std,
        cdf_lo,
        cdf_hi,
        mirrored,
        log,
        min,
        max,
    })
}

impl Sampler {
    /// One sample; always inside the range the sampler was built for. Consumes exactly one `u64`
    /// of `rng` (none for a constant).
    pub fn sample(&self, rng: &mut ShapeRng) -> f64 {
        let u = match self.kind {
            SamplerKind::Constant(v) => return v,
            _ => rng.random::<f64>(),
        };
        self.quantile(u)
    }

    /// The value at cumulative probability `u` in `[0, 1)`.
    pub fn quantile(&self, u: f64) -> f64 {
        match &self.kind {
            SamplerKind::Constant(v) => *v,
            SamplerKind::Uniform { min, max } => min + u * (max - min),
            SamplerKind::Normal {
                mean,
                std,
                cdf_lo,
                cdf_hi,
                mirrored,
                log,
                min,
                max,
            } => {
                // Mirrored: walk the lower tail downwards so the quantile still increases with u.
                let z = if *mirrored {
                    -std_normal_quantile(cdf_hi - u * (cdf_hi - cdf_lo))
                } else {
                    std_normal_quantile(cdf_lo + u * (cdf_hi - cdf_lo))
                };
                let x = mean + std * z;
                let x = if *log { x.exp() } else { x };
                x.clamp(*min, *max)
            }
            SamplerKind::Exponential {
                mean,
                min,
                span_mass,
                max,
            } => (min - mean * (-u * span_mass).ln_1p()).clamp(*min, *max),
            SamplerKind::Discrete { cumulative, values } => {
                let i = cumulative
                    .partition_point(|&c| c <= u)
                    .min(values.len() - 1);
                values[i]
            }
            SamplerKind::Histogram { cumulative, edges } => {
                let i = cumulative
                    .partition_point(|&c| c <= u)
                    .min(cumulative.len() - 1);
                let below = if i == 0 { 0.0 } else { cumulative[i - 1] };
                let width = cumulative[i] - below;
                let frac = if width > 0.0 {
                    (u - below) / width
                } else {
                    0.0
                };
                edges[i] + frac * (edges[i + 1] - edges[i])
            }
        }
    }

    /// P(X ≤ x).
    pub fn cdf(&self, x: f64) -> f64 {
        match &self.kind {
            SamplerKind::Constant(v) => f64::from(u8::from(x >= *v)),
            SamplerKind::Uniform { min, max } => {
                if x >= *max {
                    1.0
                } else if x < *min {
                    0.0
                } else {
                    (x - min) / (max - min)
                }
            }
            SamplerKind::Normal {
                mean,
                std,
                cdf_lo,
                cdf_hi,
                mirrored,
                log,
                min,
                max,
            } => {
                if x < *min {
                    return 0.0;
                }
                if x >= *max {
                    return 1.0;
                }
                let y = if *log { x.ln() } else { x };
                let z = (y - mean) / std;
                let mass = cdf_hi - cdf_lo;
                if *mirrored {
                    // P(Z ≤ z) = P(-Z ≥ -z) in mirrored units.
                    (cdf_hi - std_normal_cdf(-z)).clamp(0.0, mass) / mass
                } else {
                    (std_normal_cdf(z) - cdf_lo).clamp(0.0, mass) / mass
                }
            }
            SamplerKind::Exponential {
                mean,
                min,
                span_mass,
                max,
            } => {
                if x < *min {
                    0.0
                } else if x >= *max {
                    1.0
                } else {
                    -(-(x - min) / mean).exp_m1() / span_mass
                }
            }
            SamplerKind::Discrete { cumulative, values } => {
                let mut p = 0.0;
                let mut below = 0.0;
                for (c, v) in cumulative.iter().zip(values) {
                    if *v <= x {
                        p += c - below;
                    }
                    below = *c;
                }
                p
            }
            SamplerKind::Histogram { cumulative, edges } => {
                if x < edges[0] {
                    return 0.0;
                }
                let mut below = 0.0;
                for (i, c) in cumulative.iter().enumerate() {
                    if x < edges[i + 1] {
                        return below + (c - below) * (x - edges[i]) / (edges[i + 1] - edges[i]);
                    }
                    below = *c;
                }
                1.0
            }
        }
    }

    /// The mean, computed numerically from the quantile function (exact for constants and
    /// uniforms, within 1e-6 relative otherwise): used to report a schedule's expected rate.
    pub fn mean(&self) -> f64 {
        match &self.kind {
            SamplerKind::Constant(v) => *v,
            SamplerKind::Uniform { min, max } => (min + max) / 2.0,
            SamplerKind::Discrete { cumulative, values } => {
                let mut below = 0.0;
                let mut m = 0.0;
                for (c, v) in cumulative.iter().zip(values) {
                    m += (c - below) * v;
                    below = *c;
                }
                m
            }
            SamplerKind::Histogram { cumulative, edges } => {
                let mut below = 0.0;
                let mut m = 0.0;
                for (i, c) in cumulative.iter().enumerate() {
                    m += (c - below) * (edges[i] + edges[i + 1]) / 2.0;
                    below = *c;
                }
                m
            }
            _ => {
                // Midpoint rule over u; the quantile is monotone and bounded, so this converges.
                const N: usize = 200_000;
                (0..N)
                    .map(|i| self.quantile((i as f64 + 0.5) / N as f64))
                    .sum::<f64>()
                    / N as f64
            }
        }
    }

    /// The smallest value a sample can take.
    pub fn min(&self) -> f64 {
        self.quantile(0.0)
    }
}

/// Φ(x), the standard normal CDF.
pub fn std_normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Φ⁻¹(p): Acklam's rational approximation refined by one Halley step (relative error ~1e-15).
pub fn std_normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.38357751867269e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    const P_LOW: f64 = 0.02425;
    let x = if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // Halley refinement against the exact CDF.
    let e = std_normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

impl fmt::Display for Dist {
    /// The short string form that [`Dist::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bounds =
            |f: &mut fmt::Formatter<'_>, min: &Option<f64>, max: &Option<f64>| -> fmt::Result {
                match (min, max) {
                    (None, None) => Ok(()),
                    (min, max) => write!(
                        f,
                        ",{},{}",
                        min.map_or(String::new(), |v| v.to_string()),
                        max.map_or(String::new(), |v| v.to_string())
                    ),
                }
            };
        match self {
            Dist::Constant { value } => write!(f, "{value}"),
            Dist::Uniform { min, max } => write!(f, "uniform:{min},{max}"),
            Dist::Normal {
                mean,
                std,
                min,
                max,
            } => {
                write!(f, "normal:{mean},{std}")?;
                bounds(f, min, max)
            }
            Dist::LogNormal {
                mu,
                sigma,
                min,
                max,
            } => {
                write!(f, "lognormal:{mu},{sigma}")?;
                bounds(f, min, max)
            }
            Dist::Exponential { mean, min, max } => {
                write!(f, "exp:{mean}")?;
                bounds(f, min, max)
            }
            Dist::Empirical { values, weights } if weights.is_empty() => {
                let v: Vec<String> = values.iter().map(f64::to_string).collect();
                write!(f, "empirical:{}", v.join(","))
            }
            Dist::Empirical { values, weights } => {
                write!(f, "empirical(values={values:?}, weights={weights:?})")
            }
            Dist::Histogram { edges, weights } => {
                write!(f, "histogram(edges={edges:?}, weights={weights:?})")
            }
        }
    }
}

impl FromStr for Dist {
    type Err = DistError;

    /// `150`, `uniform:MIN,MAX`, `normal:MEAN,STD[,MIN,MAX]`, `lognormal:MU,SIGMA[,MIN,MAX]`,
    /// `exp:MEAN[,MIN,MAX]`, `empirical:V1,V2,...` (an empty MIN or MAX means unbounded).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let syntax = || {
            bad(format!(
                "{s:?} is not a distribution: use a number or uniform:MIN,MAX, normal:MEAN,STD[,MIN,MAX], \
                 lognormal:MU,SIGMA[,MIN,MAX], exp:MEAN[,MIN,MAX], empirical:V1,V2,..."
            ))
        };
        let Some((kind, args)) = s.split_once(':') else {
            return s.parse::<f64>().map(Dist::constant).map_err(|_| syntax());
        };
        let args: Vec<Option<f64>> = args
            .split(',')
            .map(|a| {
                let a = a.trim();
                if a.is_empty() {
                    Ok(None)
                } else {
                    a.parse::<f64>().map(Some).map_err(|_| syntax())
                }
            })
            .collect::<Result<_, _>>()?;
        let req = |i: usize| args.get(i).copied().flatten().ok_or_else(syntax);
        let opt = |i: usize| args.get(i).copied().flatten();
        let arity = |lo: usize, hi: usize| {
            if (lo..=hi).contains(&args.len()) {
                Ok(())
            } else {
                Err(syntax())
            }
        };
        match kind.trim().to_ascii_lowercase().as_str() {
            "constant" | "const" => {
                arity(1, 1)?;
                Ok(Dist::constant(req(0)?))
            }
            "uniform" | "u" => {
                arity(2, 2)?;
                Ok(Dist::uniform(req(0)?, req(1)?))
            }
            "normal" | "gauss" | "gaussian" => {
                arity(2, 4)?;
                Ok(Dist::Normal {
                    mean: req(0)?,
                    std: req(1)?,
                    min: opt(2),
                    max: opt(3),
                })
            }
            "lognormal" | "log-normal" => {
                arity(2, 4)?;
                Ok(Dist::LogNormal {
                    mu: req(0)?,
                    sigma: req(1)?,
                    min: opt(2),
                    max: opt(3),
                })
            }
            "exp" | "exponential" => {
                arity(1, 3)?;
                Ok(Dist::Exponential {
                    mean: req(0)?,
                    min: opt(1),
                    max: opt(2),
                })
            }
            "empirical" => {
                let values = (0..args.len()).map(req).collect::<Result<Vec<_>, _>>()?;
                Ok(Dist::Empirical {
                    values,
                    weights: Vec::new(),
                })
            }
            _ => Err(syntax()),
        }
    }
}

/// The table form, as serde derives it (private mirror of [`Dist`] for the map case).
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum DistTable {
    Constant {
        value: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    Normal {
        mean: f64,
        std: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    #[serde(alias = "lognormal")]
    LogNormal {
        mu: f64,
        sigma: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    #[serde(alias = "exp")]
    Exponential {
        mean: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    Empirical {
        values: Vec<f64>,
        #[serde(default)]
        weights: Vec<f64>,
    },
    Histogram {
        edges: Vec<f64>,
        weights: Vec<f64>,
    },
}

impl From<DistTable> for Dist {
    fn from(t: DistTable) -> Dist {
        match t {
            DistTable::Constant { value } => Dist::Constant { value },
            DistTable::Uniform { min, max } => Dist::Uniform { min, max },
            DistTable::Normal {
                mean,
                std,
                min,
                max,
            } => Dist::Normal {
                mean,
                std,
                min,
                max,
            },
            DistTable::LogNormal {
                mu,
                sigma,
                min,
                max,
            } => Dist::LogNormal {
                mu,
                sigma,
                min,
                max,
            },
            DistTable::Exponential { mean, min, max } => Dist::Exponential { mean, min, max },
            DistTable::Empirical { values, weights } => Dist::Empirical { values, weights },
            DistTable::Histogram { edges, weights } => Dist::Histogram { edges, weights },
        }
    }
}

impl<'de> Deserialize<'de> for Dist {
    /// A number, a short string (see [`Dist::from_str`]) or a table with a `kind`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DistVisitor;
        impl<'de> Visitor<'de> for DistVisitor {
            type Value = Dist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a string like \"uniform:50,200\", or a table with a `kind`")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dist, E> {
                Ok(Dist::constant(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dist, E> {
                Ok(Dist::constant(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dist, E> {
                Ok(Dist::constant(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dist, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dist, A::Error> {
                DistTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(Dist::from)
            }
        }
        deserializer.deserialize_any(DistVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> ShapeRng {
        ShapeRng::seed_from_u64(7)
    }

    #[test]
    fn quantile_inverts_cdf() {
        for p in [1e-300, 1e-20, 1e-5, 0.01, 0.3, 0.5, 0.77, 0.99, 1.0 - 1e-12] {
            let z = std_normal_quantile(p);
            let back = std_normal_cdf(z);
            assert!(((back - p) / p).abs() < 1e-9, "p={p} z={z} back={back}");
        }
    }

    #[test]
    fn gaussian_sizes_never_leave_their_range() {
        // Datta's bug: N(50, 100) drew negative sizes. Truncated to [23, 65537] it cannot.
        let d: Dist = "normal:50,100".parse().unwrap();
        let s = d.sampler("size_bytes", 23.0, 65537.0).unwrap();
        let mut r = rng();
        for _ in 0..100_000 {
            let x = s.sample(&mut r);
            assert!((23.0..=65537.0).contains(&x), "{x}");
        }
    }

    #[test]
    fn far_upper_tail_truncation_is_exact() {
        // Mean 0, truncated to [10, 11] standard deviations: mass ~1e-23, still sampled exactly.
        let d = Dist::Normal {
            mean: 0.0,
            std: 1.0,
            min: Some(10.0),
            max: Some(11.0),
        };
        let s = d.sampler("x", 0.0, 100.0).unwrap();
        let mut r = rng();
        let xs: Vec<f64> = (0..1000).map(|_| s.sample(&mut r)).collect();
        assert!(xs.iter().all(|x| (10.0..=11.0).contains(x)));
        // The truncated density decays like e^{-10 x}: almost all mass in [10, 10.5].
        assert!(xs.iter().filter(|&&x| x < 10.5).count() > 990);
    }

    #[test]
    fn no_mass_is_an_error() {
        let d = Dist::Normal {
            mean: 0.0,
            std: 1.0,
            min: Some(60.0),
            max: Some(61.0),
        };
        assert!(d.sampler("gap_s", 0.0, 100.0).is_err());
        let e = Dist::uniform(10.0, 200.0)
            .sampler("size_bytes", 23.0, 65537.0)
            .unwrap_err();
        assert!(e.0.contains("size_bytes: min 10"), "{e}");
    }

    #[test]
    fn means_match_closed_forms() {
        let check = |d: Dist, lo: f64, hi: f64, want: f64| {
            let m = d.sampler("x", lo, hi).unwrap().mean();
            assert!((m - want).abs() / want < 1e-4, "{d}: {m} vs {want}");
        };
        check(Dist::uniform(0.2, 0.4), 0.0, 1e9, 0.3);
        check("exp:0.5".parse().unwrap(), 0.0, f64::INFINITY, 0.5);
        // Half-normal: E = σ√(2/π) for N(0,σ) truncated to [0, inf).
        check(
            "normal:0,2".parse().unwrap(),
            0.0,
            f64::INFINITY,
            2.0 * (2.0 / std::f64::consts::PI).sqrt(),
        );
        // Log-normal, untruncated in effect: e^{μ+σ²/2}.
        check(
            "lognormal:1,0.5".parse().unwrap(),
            0.0,
            f64::INFINITY,
            (1.0f64 + 0.125).exp(),
        );
        check("empirical:1,2,3,6".parse().unwrap(), 0.0, 10.0, 3.0);
    }

    #[test]
    fn sample_means_converge() {
        let s = Dist::Histogram {
            edges: vec![0.0, 1.0, 3.0],
            weights: vec![1.0, 3.0],
        }
        .sampler("x", 0.0, 10.0)
        .unwrap();
        let mut r = rng();
        let n = 200_000;
        let m = (0..n).map(|_| s.sample(&mut r)).sum::<f64>() / n as f64;
        assert!((m - s.mean()).abs() < 0.01, "{m} vs {}", s.mean());
        assert!((s.mean() - (0.25 * 0.5 + 0.75 * 2.0)).abs() < 1e-12);
        assert!((s.cdf(1.0) - 0.25).abs() < 1e-12 && (s.cdf(2.0) - 0.625).abs() < 1e-12);
    }

    #[test]
    fn parses_every_form() {
        assert_eq!("150".parse::<Dist>().unwrap(), Dist::constant(150.0));
        assert_eq!(
            "uniform:50,200".parse::<Dist>().unwrap(),
            Dist::uniform(50.0, 200.0)
        );
        assert_eq!(
            "normal:1,2,,9".parse::<Dist>().unwrap(),
            Dist::Normal {
                mean: 1.0,
                std: 2.0,
                min: None,
                max: Some(9.0)
            }
        );
        for bad in [
            "",
            "uniform:1",
            "normal",
            "poisson:3",
            "uniform:a,b",
            "exp:1,2,3,4",
        ] {
            assert!(bad.parse::<Dist>().is_err(), "{bad}");
        }
        for d in [
            "uniform:50,200",
            "normal:1,2,0,9",
            "exp:0.3",
            "empirical:1,2",
            "lognormal:0,1",
        ] {
            let parsed: Dist = d.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<Dist>().unwrap(), parsed);
        }
    }

    #[test]
    fn deserializes_numbers_strings_and_tables() {
        #[derive(Deserialize)]
        struct T {
            a: Dist,
            b: Dist,
            c: Dist,
        }
        let t: T =
            toml::from_str("a = 150\nb = \"uniform:50,200\"\nc = { kind = \"exp\", mean = 0.3 }")
                .unwrap();
        assert_eq!(t.a, Dist::constant(150.0));
        assert_eq!(t.b, Dist::uniform(50.0, 200.0));
        assert_eq!(
            t.c,
            Dist::Exponential {
                mean: 0.3,
                min: None,
                max: None
            }
        );
        let err = toml::from_str::<T>("a = 1\nb = 2\nc = { kind = \"uniform\", min = 1 }")
            .err()
            .unwrap();
        assert!(err.to_string().contains("max"), "{err}");
    }
}
