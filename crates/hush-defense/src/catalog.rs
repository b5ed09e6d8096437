//! The defense catalog: each a named, parameterised defense with defaults from its source.
//!
//! On the command line a defense is `NAME` or `NAME:key=value,key=value` (`buflo:gap_s=0.01`);
//! in TOML, a table with `defense = "NAME"` and the same keys. `hush defend --list` prints this
//! catalog.

use std::fmt;
use std::str::FromStr;

use hush_shape::{CloseRule, Dist, Padding, Policy, ScheduleSpec, ShapeConfig};
use serde::{Deserialize, Serialize};

use crate::DefenseError;

/// A defense and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "defense", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DefenseSpec {
    /// No defense: the original packets, unchanged.
    None,
    /// Every record padded to one size: an MTU-sized TCP segment by default.
    PadMtu {
        /// Record (TCP payload) size: 1448 fills a 1500-byte IPv4 packet with TCP timestamps.
        #[serde(default = "d_mtu")]
        size_bytes: u32,
    },
    /// Every record padded to the next power of two (32 B to 64 KiB).
    PadPow2,
    /// Every record gains a uniformly random 0 to `max_extra_bytes` of padding.
    RandomPad {
        /// The most padding per record.
        #[serde(default = "d_random_extra")]
        max_extra_bytes: u32,
    },
    /// Datta et al.'s low-latency independent link padding: a record of `size_bytes` every
    /// `gap_s`, each direction.
    IlpConstant {
        /// Seconds between records.
        #[serde(default = "d_ilp_gap")]
        gap_s: f64,
        /// Record size.
        #[serde(default = "d_ilp_size")]
        size_bytes: u32,
    },
    /// Datta et al.'s high-latency independent link padding: gaps and sizes drawn at random.
    IlpRandom {
        /// Seconds between records.
        #[serde(default = "d_ilp_random_gap")]
        gap_s: Dist,
        /// Record size.
        #[serde(default = "d_ilp_random_size")]
        size_bytes: Dist,
    },
    /// BuFLO (Dyer et al. 2012): fixed-size records every `gap_s` in each direction, for at
    /// least `min_duration_s` and until the data is sent.
    Buflo {
        /// Record size (their d).
        #[serde(default = "d_buflo_size")]
        size_bytes: u32,
        /// Seconds between records (their ρ).
        #[serde(default = "d_buflo_gap")]
        gap_s: f64,
        /// Minimum duration (their τ).
        #[serde(default = "d_buflo_tau")]
        min_duration_s: f64,
    },
    /// Tamaraw (Cai et al. 2014): fixed-size records at one rate outbound and another inbound;
    /// each direction's record count padded to a multiple of `multiple_of` (their L).
    Tamaraw {
        /// Record size.
        #[serde(default = "d_tamaraw_size")]
        size_bytes: u32,
        /// Seconds between outbound records (their ρ_out).
        #[serde(default = "d_tamaraw_out")]
        out_gap_s: f64,
        /// Seconds between inbound records (their ρ_in).
        #[serde(default = "d_tamaraw_in")]
        in_gap_s: f64,
        /// Pad each direction's record count to a multiple of this.
        #[serde(default = "d_tamaraw_l")]
        multiple_of: u64,
    },
    /// Any hush-shape configuration, one per direction (TOML only).
    Custom {
        /// Outbound shaping.
        outbound: Box<ShapeConfig>,
        /// Inbound shaping.
        inbound: Box<ShapeConfig>,
    },
}

fn d_mtu() -> u32 {
    1448
}
fn d_random_extra() -> u32 {
    255
}
fn d_ilp_gap() -> f64 {
    0.05
}
fn d_ilp_size() -> u32 {
    150
}
fn d_ilp_random_gap() -> Dist {
    Dist::uniform(0.2, 0.4)
}
fn d_ilp_random_size() -> Dist {
    Dist::uniform(50.0, 200.0)
}
fn d_buflo_size() -> u32 {
    1500
}
fn d_buflo_gap() -> f64 {
    0.02
}
fn d_buflo_tau() -> f64 {
    10.0
}
fn d_tamaraw_size() -> u32 {
    750
}
fn d_tamaraw_out() -> f64 {
    0.04
}
fn d_tamaraw_in() -> f64 {
    0.012
}
fn d_tamaraw_l() -> u64 {
    100
}

/// One catalog entry, for `--list`.
#[derive(Clone, Debug, Serialize)]
pub struct CatalogEntry {
    /// The name on the command line.
    pub name: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Where it comes from.
    pub source: &'static str,
    /// The defense with its default parameters.
    pub defaults: DefenseSpec,
}

/// Every defense, with defaults and sources.
pub fn catalog() -> Vec<CatalogEntry> {
    let entry = |name: &'static str, summary, source| CatalogEntry {
        name,
        summary,
        source,
        defaults: name.parse().expect("bug: catalog default does not parse"),
    };
    vec![
        entry("none", "the original packets, unchanged", "baseline"),
        entry(
            "pad-mtu",
            "each packet's data in a record padded to one size (MTU); size-only",
            "Dyer et al., S&P 2012 (shown insufficient); baseline",
        ),
        entry(
            "pad-pow2",
            "each packet's data in a record padded to the next power of two; size-only",
            "exponential padding, Dyer et al., S&P 2012; baseline",
        ),
        entry(
            "random-pad",
            "each packet's data in a record with 0..max_extra_bytes random padding",
            "random padding, Dyer et al., S&P 2012",
        ),
        entry(
            "ilp-constant",
            "independent link padding: one record size every gap, real data waits for a slot",
            "Datta, Apthorpe, Feamster 2018 (low latency)",
        ),
        entry(
            "ilp-random",
            "independent link padding with random gaps and sizes",
            "Datta, Apthorpe, Feamster 2018 (high latency)",
        ),
        entry(
            "buflo",
            "fixed-size records at a fixed rate both ways, at least min_duration_s",
            "Dyer et al., S&P 2012",
        ),
        entry(
            "tamaraw",
            "fixed-size records, separate rates per direction, counts padded to a multiple of L",
            "Cai et al., CCS 2014",
        ),
    ]
}

impl DefenseSpec {
    /// The catalog name.
    pub fn name(&self) -> &'static str {
        match self {
            DefenseSpec::None => "none",
            DefenseSpec::PadMtu { .. } => "pad-mtu",
            DefenseSpec::PadPow2 => "pad-pow2",
            DefenseSpec::RandomPad { .. } => "random-pad",
            DefenseSpec::IlpConstant { .. } => "ilp-constant",
            DefenseSpec::IlpRandom { .. } => "ilp-random",
            DefenseSpec::Buflo { .. } => "buflo",
            DefenseSpec::Tamaraw { .. } => "tamaraw",
            DefenseSpec::Custom { .. } => "custom",
        }
    }

    /// The engine configuration of each direction (outbound, inbound), or `None` for the
    /// `none` defense.
    pub fn shape_configs(&self) -> Result<Option<(ShapeConfig, ShapeConfig)>, DefenseError> {
        let immediate = |pad: Padding| ShapeConfig {
            pad,
            ..ShapeConfig::new(ScheduleSpec::Unshaped)
        };
        let both = |c: ShapeConfig| Some((c.clone(), c));
        let configs = match self {
            DefenseSpec::None => None,
            DefenseSpec::PadMtu { size_bytes } => both(immediate(Padding::ToSize {
                size_bytes: *size_bytes,
            })),
            DefenseSpec::PadPow2 => both(immediate(Padding::PowerOfTwo)),
            DefenseSpec::RandomPad { max_extra_bytes } => both(immediate(Padding::Random {
                max_extra_bytes: *max_extra_bytes,
            })),
            DefenseSpec::IlpConstant { gap_s, size_bytes } => {
                both(ShapeConfig::new(ScheduleSpec::Constant {
                    gap_s: *gap_s,
                    size_bytes: *size_bytes,
                }))
            }
            DefenseSpec::IlpRandom { gap_s, size_bytes } => {
                both(ShapeConfig::new(ScheduleSpec::Random {
                    gap_s: gap_s.clone(),
                    size_bytes: size_bytes.clone(),
                }))
            }
            DefenseSpec::Buflo {
                size_bytes,
                gap_s,
                min_duration_s,
            } => both(ShapeConfig {
                close: CloseRule {
                    min_duration_s: *min_duration_s,
                    records_multiple_of: 0,
                },
                ..ShapeConfig::new(ScheduleSpec::Constant {
                    gap_s: *gap_s,
                    size_bytes: *size_bytes,
                })
            }),
            DefenseSpec::Tamaraw {
                size_bytes,
                out_gap_s,
                in_gap_s,
                multiple_of,
            } => {
                let dir = |gap_s: f64| ShapeConfig {
                    close: CloseRule {
                        min_duration_s: 0.0,
                        records_multiple_of: *multiple_of,
                    },
                    ..ShapeConfig::new(ScheduleSpec::Constant {
                        gap_s,
                        size_bytes: *size_bytes,
                    })
                };
                Some((dir(*out_gap_s), dir(*in_gap_s)))
            }
            DefenseSpec::Custom { outbound, inbound } => {
                Some(((**outbound).clone(), (**inbound).clone()))
            }
        };
        if let Some((o, i)) = &configs {
            for (which, c) in [("outbound", o), ("inbound", i)] {
                c.validate()
                    .and_then(|()| c.schedule.build().map(|_| ()))
                    .map_err(|e| {
                        DefenseError::Param(format!("{}: {which}: {}", self.name(), e.0))
                    })?;
                debug_assert!(c.policy == Policy::Pad || c.policy == Policy::Immediate);
            }
        }
        Ok(configs)
    }
}

impl fmt::Display for DefenseSpec {
    /// `name` or `name:key=value,...` with every parameter (what `from_str` reads back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        let mut params = Vec::new();
        if let Some(map) = v.as_object() {
            for (k, val) in map {
                if k == "defense" {
                    continue;
                }
                let text = match val {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Object(_) => {
                        match serde_json::from_value::<Dist>(val.clone()) {
                            Ok(d) => d.to_string(),
                            Err(_) => val.to_string(),
                        }
                    }
                    other => other.to_string(),
                };
                params.push(format!("{k}={text}"));
            }
        }
        if params.is_empty() {
            write!(f, "{}", self.name())
        } else {
            write!(f, "{}:{}", self.name(), params.join(";"))
        }
    }
}

impl FromStr for DefenseSpec {
    type Err = DefenseError;

    /// `NAME` or `NAME:key=value;key=value` (`,` also separates parameters whose values have
    /// no commas). Values are numbers or distributions (`uniform:0.2,0.4`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, params) = match s.split_once(':') {
            Some((n, p)) => (n.trim(), p),
            None => (s, ""),
        };
        let mut map = serde_json::Map::new();
        map.insert(
            "defense".into(),
            serde_json::Value::String(name.to_string()),
        );
        for part in split_params(params) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                DefenseError::Param(format!("{name}: parameter {part:?} is not key=value"))
            })?;
            let (k, v) = (k.trim(), v.trim());
            let value = if let Ok(n) = v.parse::<u64>() {
                serde_json::Value::from(n)
            } else if let Ok(x) = v.parse::<f64>() {
                serde_json::Value::from(x)
            } else {
                serde_json::Value::String(v.to_string())
            };
            map.insert(k.to_string(), value);
        }
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            let known: Vec<&str> = catalog().iter().map(|c| c.name).collect();
            let msg = e.to_string();
            if msg.contains("unknown variant") {
                DefenseError::Param(format!(
                    "unknown defense {name:?}; known: {}",
                    known.join(", ")
                ))
            } else {
                DefenseError::Param(format!("{name}: {msg}"))
            }
        })
    }
}

/// Split `a=1;b=uniform:1,2` or `a=1,b=2`: `;` always separates; `,` only before `key=`.
fn split_params(params: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for semi in params.split(';') {
        let mut cur = String::new();
        for piece in semi.split(',') {
            let starts_key = piece.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if starts_key && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(',');
            }
            cur.push_str(piece);
        }
        if !cur.trim().is_empty() {
            out.push(cur);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_round_trips_and_builds() {
        for e in catalog() {
            let text = e.defaults.to_string();
            let back: DefenseSpec = text.parse().unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(back, e.defaults, "{text}");
            assert_eq!(e.defaults.name(), e.name);
            e.defaults.shape_configs().unwrap();
        }
    }

    #[test]
    fn parameters_parse_with_either_separator() {
        let d: DefenseSpec = "buflo:gap_s=0.01,min_duration_s=5".parse().unwrap();
        assert_eq!(
            d,
            DefenseSpec::Buflo {
                size_bytes: 1500,
                gap_s: 0.01,
                min_duration_s: 5.0
            }
        );
        let d: DefenseSpec = "ilp-random:gap_s=uniform:0.1,0.2,size_bytes=100"
            .parse()
            .unwrap();
        assert_eq!(
            d,
            DefenseSpec::IlpRandom {
                gap_s: Dist::uniform(0.1, 0.2),
                size_bytes: Dist::constant(100.0)
            }
        );
        let err = "bufflo".parse::<DefenseSpec>().unwrap_err().to_string();
        assert!(
            err.contains("unknown defense") && err.contains("buflo"),
            "{err}"
        );
        let err = "buflo:rho=3"
            .parse::<DefenseSpec>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("rho"), "{err}");
        assert!(
            "pad-mtu:size_bytes=10"
                .parse::<DefenseSpec>()
                .unwrap()
                .shape_configs()
                .is_err()
        );
    }
}
