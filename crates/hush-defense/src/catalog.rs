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
use crate::machines::{FrontParams, MachineSet, RegulatorParams};
use crate::periods::{Periods, Quota};

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
        /// Record size (their d = 1500 bytes of IP packet, less 52 of IPv4 and TCP headers).
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
        /// Record size (750 bytes of IP packet, less 52 of headers, as in the byte-level ports of
        /// Cai et al.'s code; 750 B at 20/6 ms is the bandwidth of 1500 B at their 40/12 ms).
        #[serde(default = "d_tamaraw_size")]
        size_bytes: u32,
        /// Seconds between outbound records (ρ_out).
        #[serde(default = "d_tamaraw_out")]
        out_gap_s: f64,
        /// Seconds between inbound records (ρ_in).
        #[serde(default = "d_tamaraw_in")]
        in_gap_s: f64,
        /// Pad each direction's record count to a multiple of this.
        #[serde(default = "d_tamaraw_l")]
        multiple_of: u64,
    },
    /// FRONT (Gong and Wang 2020): per trace and direction, up to `max_records` cover records at
    /// Rayleigh-distributed times (window drawn in [w_min_s, w_max_s]) from the trace start
    /// (outbound) and from the first inbound packet (inbound); real data is never delayed and
    /// cover after the trace's last packet is dropped.
    Front {
        /// Most cover records per direction (their N; Gong's default configuration: 100).
        #[serde(default = "d_front_n")]
        max_records: u32,
        /// Smallest window, seconds.
        #[serde(default = "d_front_wmin")]
        w_min_s: f64,
        /// Largest window, seconds.
        #[serde(default = "d_front_wmax")]
        w_max_s: f64,
        /// Cover record size (one Tor cell in the original).
        #[serde(default = "d_front_size")]
        size_bytes: u32,
    },
    /// Stochastic traffic padding (Apthorpe et al., PETS 2019), in the form iPET implements it:
    /// periods of `period_s` shaped to `rate_bps` (cover fills what real data leaves), started by
    /// real traffic or, at each idle tick, with probability `q`.
    Stp {
        /// Bytes per second within a period.
        #[serde(default = "d_ipet_rate")]
        rate_bps: f64,
        /// Period length, seconds.
        #[serde(default = "d_ipet_period")]
        period_s: f64,
        /// Tick, seconds.
        #[serde(default = "d_ipet_tick")]
        tick_s: f64,
        /// Probability that an idle tick starts a cover period.
        #[serde(default = "d_ipet_q_const")]
        q: f64,
    },
    /// iPET's constant baseline: STP at 10 kB/s, 1 s periods, 100 ms ticks, q = 0.2112.
    IpetConstant {
        /// Bytes per second within a period.
        #[serde(default = "d_ipet_rate")]
        rate_bps: f64,
        /// Period length, seconds.
        #[serde(default = "d_ipet_period")]
        period_s: f64,
        /// Tick, seconds.
        #[serde(default = "d_ipet_tick")]
        tick_s: f64,
        /// Probability that an idle tick starts a cover period.
        #[serde(default = "d_ipet_q_const")]
        q: f64,
    },
    /// iPET's random baseline: a budget |N(12.5 kB, σ)| redrawn every 5 s (σ = 4 B in iPET's
    /// code), q = 0.5.
    IpetRandom {
        /// Mean budget per draw.
        #[serde(default = "d_ipet_mu")]
        mean_bytes: f64,
        /// Its standard deviation.
        #[serde(default = "d_ipet_sigma")]
        std_bytes: f64,
        /// Seconds between draws.
        #[serde(default = "d_ipet_redraw")]
        redraw_s: f64,
        /// Period length, seconds.
        #[serde(default = "d_ipet_period")]
        period_s: f64,
        /// Tick, seconds.
        #[serde(default = "d_ipet_tick")]
        tick_s: f64,
        /// Probability that an idle tick starts a cover period.
        #[serde(default = "d_ipet_q_random")]
        q: f64,
    },
    /// iPET's random+ baseline: as random, with the mean drawn once per trace in [5, 40] kB and
    /// σ = 10 kB.
    IpetRandomPlus {
        /// Smallest mean.
        #[serde(default = "d_ipet_min_mean")]
        min_mean_bytes: f64,
        /// Largest mean.
        #[serde(default = "d_ipet_max_mean")]
        max_mean_bytes: f64,
        /// Standard deviation.
        #[serde(default = "d_ipet_sigma_plus")]
        std_bytes: f64,
        /// Seconds between draws.
        #[serde(default = "d_ipet_redraw")]
        redraw_s: f64,
        /// Period length, seconds.
        #[serde(default = "d_ipet_period")]
        period_s: f64,
        /// Tick, seconds.
        #[serde(default = "d_ipet_tick")]
        tick_s: f64,
        /// Probability that an idle tick starts a cover period.
        #[serde(default = "d_ipet_q_random")]
        q: f64,
    },
    /// FRONT as a maybenot machine (maybenot-machines), on both ends, for comparison with the
    /// catalog's `front`.
    MaybenotFront {
        /// Largest padding budget, packets.
        #[serde(default = "d_front_n")]
        padding_budget_max: u32,
        /// Smallest window, seconds.
        #[serde(default = "d_front_wmin")]
        window_min_s: f64,
        /// Largest window, seconds.
        #[serde(default = "d_front_wmax")]
        window_max_s: f64,
        /// States approximating the Rayleigh distribution.
        #[serde(default = "d_mb_states")]
        num_states: usize,
        /// Size of a padding record.
        #[serde(default = "d_mtu")]
        padding_bytes: u32,
    },
    /// RegulaTor (Holland and Hopper, PETS 2022) as maybenot machines, published parameters.
    Regulator {
        /// Initial surge rate, packets per second (R).
        #[serde(default = "d_reg_r")]
        r: f64,
        /// Decay rate (D).
        #[serde(default = "d_reg_d")]
        d: f64,
        /// Surge threshold (T).
        #[serde(default = "d_reg_t")]
        t: f64,
        /// Padding budget, packets (N).
        #[serde(default = "d_reg_n")]
        n: f64,
        /// Rate bins (maybenot-machines).
        #[serde(default = "d_reg_b")]
        b: usize,
        /// Upload/download ratio (U).
        #[serde(default = "d_reg_u")]
        u: f64,
        /// Delay cap, seconds (C).
        #[serde(default = "d_reg_c")]
        c: f64,
        /// Size of a padding record.
        #[serde(default = "d_mtu")]
        padding_bytes: u32,
    },
    /// Interspace (Pulls 2020) as maybenot machines.
    Interspace {
        /// Size of a padding record.
        #[serde(default = "d_mtu")]
        padding_bytes: u32,
    },
    /// Break-Pad (Huang and Du 2024) as maybenot machines.
    BreakPad {
        /// Size of a padding record.
        #[serde(default = "d_mtu")]
        padding_bytes: u32,
    },
    /// Any maybenot machines: per end, machine strings (`02...`) or maybenot-machines names
    /// (`front 100 1000000 8000000 10`), several separated by `|`.
    Maybenot {
        /// Machines at the device.
        #[serde(default)]
        client: String,
        /// Machines at the gateway.
        #[serde(default)]
        server: String,
        /// Size of a padding record.
        #[serde(default = "d_mtu")]
        padding_bytes: u32,
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
    1448
}
fn d_buflo_gap() -> f64 {
    0.02
}
fn d_buflo_tau() -> f64 {
    10.0
}
fn d_tamaraw_size() -> u32 {
    698
}
fn d_tamaraw_out() -> f64 {
    0.02
}
fn d_tamaraw_in() -> f64 {
    0.006
}
fn d_ipet_rate() -> f64 {
    10_000.0
}
fn d_ipet_period() -> f64 {
    1.0
}
fn d_ipet_tick() -> f64 {
    0.1
}
fn d_ipet_q_const() -> f64 {
    0.2112
}
fn d_ipet_q_random() -> f64 {
    0.5
}
fn d_ipet_mu() -> f64 {
    12_500.0
}
fn d_ipet_sigma() -> f64 {
    4.0
}
fn d_ipet_redraw() -> f64 {
    5.0
}
fn d_ipet_min_mean() -> f64 {
    5_000.0
}
fn d_ipet_max_mean() -> f64 {
    40_000.0
}
fn d_ipet_sigma_plus() -> f64 {
    10_000.0
}
fn d_mb_states() -> usize {
    10
}
fn d_reg_r() -> f64 {
    277.0
}
fn d_reg_d() -> f64 {
    0.94
}
fn d_reg_t() -> f64 {
    3.55
}
fn d_reg_n() -> f64 {
    3550.0
}
fn d_reg_b() -> usize {
    100
}
fn d_reg_u() -> f64 {
    3.95
}
fn d_reg_c() -> f64 {
    1.77
}
fn d_front_n() -> u32 {
    100
}
fn d_front_wmin() -> f64 {
    1.0
}
fn d_front_wmax() -> f64 {
    8.0
}
fn d_front_size() -> u32 {
    512
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
        entry(
            "front",
            "zero-delay cover at Rayleigh-distributed times early in the trace, randomised per trace",
            "Gong and Wang, USENIX Security 2020",
        ),
        entry(
            "stp",
            "cover periods shaped like activity, started by real traffic or at random (probability q per idle tick)",
            "Apthorpe et al., PETS 2019, as implemented by iPET",
        ),
        entry(
            "ipet-constant",
            "iPET's constant baseline: STP at 10 kB/s in 1 s periods, q = 0.2112",
            "Shenoi et al., iPET, PETS 2023 (baselines/constant)",
        ),
        entry(
            "ipet-random",
            "iPET's random baseline: a 12.5 kB budget redrawn every 5 s, q = 0.5",
            "Shenoi et al., iPET, PETS 2023 (baselines/random)",
        ),
        entry(
            "ipet-random-plus",
            "iPET's random+ baseline: the budget's mean drawn per trace in [5, 40] kB, q = 0.5",
            "Shenoi et al., iPET, PETS 2023 (baselines/random+)",
        ),
        entry(
            "maybenot-front",
            "FRONT as maybenot machines (maybenot-machines), padding records of one size",
            "Gong and Wang 2020; maybenot-machines 1.0",
        ),
        entry(
            "regulator",
            "RegulaTor as maybenot machines: surge-and-decay download rate, upload tied to it",
            "Holland and Hopper, PETS 2022; maybenot-machines 1.0",
        ),
        entry(
            "interspace",
            "Interspace as maybenot machines: randomised padding and delays",
            "Pulls 2020; maybenot-machines 1.0",
        ),
        entry(
            "break-pad",
            "Break-Pad as maybenot machines: padding that breaks bursts",
            "Huang and Du 2024; maybenot-machines 1.0",
        ),
        entry(
            "maybenot",
            "any maybenot machines by string or maybenot-machines name, per end (none by default)",
            "maybenot framework 2.2 (Mullvad DAITA)",
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
            DefenseSpec::Front { .. } => "front",
            DefenseSpec::Stp { .. } => "stp",
            DefenseSpec::IpetConstant { .. } => "ipet-constant",
            DefenseSpec::IpetRandom { .. } => "ipet-random",
            DefenseSpec::IpetRandomPlus { .. } => "ipet-random-plus",
            DefenseSpec::MaybenotFront { .. } => "maybenot-front",
            DefenseSpec::Regulator { .. } => "regulator",
            DefenseSpec::Interspace { .. } => "interspace",
            DefenseSpec::BreakPad { .. } => "break-pad",
            DefenseSpec::Maybenot { .. } => "maybenot",
            DefenseSpec::Custom { .. } => "custom",
        }
    }

    /// Whether the defense is *always on*: it shapes a link continuously, whatever the device
    /// does (independent link padding, cover periods, a custom schedule), rather than a session
    /// that starts with the device's traffic and ends with it. The bench judges always-on
    /// defenses over fixed observation windows ([`crate::observe`]), since a capture's start and
    /// end are not visible on an always-on link.
    pub fn always_on(&self) -> bool {
        matches!(
            self,
            DefenseSpec::IlpConstant { .. }
                | DefenseSpec::IlpRandom { .. }
                | DefenseSpec::Stp { .. }
                | DefenseSpec::IpetConstant { .. }
                | DefenseSpec::IpetRandom { .. }
                | DefenseSpec::IpetRandomPlus { .. }
                | DefenseSpec::Custom { .. }
        )
    }

    /// How the simulator applies this defense.
    pub fn plan(&self) -> Result<Plan, DefenseError> {
        let immediate = |pad: Padding| ShapeConfig {
            pad,
            ..ShapeConfig::new(ScheduleSpec::Unshaped)
        };
        let engines = |c: ShapeConfig, close: CloseAt| Plan::Engines {
            outbound: c.clone(),
            inbound: c,
            close,
            inbound_starts_at_first_packet: false,
        };
        let plan = match self {
            DefenseSpec::None => Plan::Passthrough,
            DefenseSpec::PadMtu { size_bytes } => engines(
                immediate(Padding::ToSize {
                    size_bytes: *size_bytes,
                }),
                CloseAt::TraceEnd,
            ),
            DefenseSpec::PadPow2 => engines(immediate(Padding::PowerOfTwo), CloseAt::TraceEnd),
            DefenseSpec::RandomPad { max_extra_bytes } => engines(
                immediate(Padding::Random {
                    max_extra_bytes: *max_extra_bytes,
                }),
                CloseAt::TraceEnd,
            ),
            DefenseSpec::IlpConstant { gap_s, size_bytes } => engines(
                ShapeConfig::new(ScheduleSpec::Constant {
                    gap_s: *gap_s,
                    size_bytes: *size_bytes,
                }),
                CloseAt::TraceEnd,
            ),
            DefenseSpec::IlpRandom { gap_s, size_bytes } => engines(
                ShapeConfig::new(ScheduleSpec::Random {
                    gap_s: gap_s.clone(),
                    size_bytes: size_bytes.clone(),
                }),
                CloseAt::TraceEnd,
            ),
            DefenseSpec::Buflo {
                size_bytes,
                gap_s,
                min_duration_s,
            } => engines(
                ShapeConfig {
                    close: CloseRule {
                        min_duration_s: *min_duration_s,
                        records_multiple_of: 0,
                    },
                    ..ShapeConfig::new(ScheduleSpec::Constant {
                        gap_s: *gap_s,
                        size_bytes: *size_bytes,
                    })
                },
                CloseAt::JointDrain,
            ),
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
                Plan::Engines {
                    outbound: dir(*out_gap_s),
                    inbound: dir(*in_gap_s),
                    close: CloseAt::LastData,
                    inbound_starts_at_first_packet: false,
                }
            }
            DefenseSpec::Front {
                max_records,
                w_min_s,
                w_max_s,
                size_bytes,
            } => Plan::Engines {
                outbound: ShapeConfig::new(ScheduleSpec::Front {
                    max_records: *max_records,
                    w_min_s: *w_min_s,
                    w_max_s: *w_max_s,
                    size_bytes: Dist::constant(f64::from(*size_bytes)),
                }),
                inbound: ShapeConfig::new(ScheduleSpec::Front {
                    max_records: *max_records,
                    w_min_s: *w_min_s,
                    w_max_s: *w_max_s,
                    size_bytes: Dist::constant(f64::from(*size_bytes)),
                }),
                close: CloseAt::TraceEnd,
                inbound_starts_at_first_packet: true,
            },
            DefenseSpec::Stp {
                rate_bps,
                period_s,
                tick_s,
                q,
            }
            | DefenseSpec::IpetConstant {
                rate_bps,
                period_s,
                tick_s,
                q,
            } => Plan::Periods(Periods {
                period_s: *period_s,
                tick_s: *tick_s,
                q: *q,
                quota: Quota::Constant {
                    rate_bps: *rate_bps,
                },
            }),
            DefenseSpec::IpetRandom {
                mean_bytes,
                std_bytes,
                redraw_s,
                period_s,
                tick_s,
                q,
            } => Plan::Periods(Periods {
                period_s: *period_s,
                tick_s: *tick_s,
                q: *q,
                quota: Quota::Random {
                    mean_bytes: *mean_bytes,
                    std_bytes: *std_bytes,
                    redraw_s: *redraw_s,
                },
            }),
            DefenseSpec::IpetRandomPlus {
                min_mean_bytes,
                max_mean_bytes,
                std_bytes,
                redraw_s,
                period_s,
                tick_s,
                q,
            } => Plan::Periods(Periods {
                period_s: *period_s,
                tick_s: *tick_s,
                q: *q,
                quota: Quota::RandomPlus {
                    min_mean_bytes: *min_mean_bytes,
                    max_mean_bytes: *max_mean_bytes,
                    std_bytes: *std_bytes,
                    redraw_s: *redraw_s,
                },
            }),
            DefenseSpec::MaybenotFront { padding_bytes, .. }
            | DefenseSpec::Regulator { padding_bytes, .. }
            | DefenseSpec::Interspace { padding_bytes }
            | DefenseSpec::BreakPad { padding_bytes }
            | DefenseSpec::Maybenot { padding_bytes, .. } => {
                // Built once here to check the parameters; `defend` builds them again with the seed.
                self.machine_set(0)?;
                Plan::Machines {
                    padding_bytes: *padding_bytes,
                }
            }
            DefenseSpec::Custom { outbound, inbound } => Plan::Engines {
                outbound: (**outbound).clone(),
                inbound: (**inbound).clone(),
                close: CloseAt::TraceEnd,
                inbound_starts_at_first_packet: false,
            },
        };
        if let Plan::Periods(p) = &plan {
            p.validate()
                .map_err(|e| DefenseError::Param(format!("{}: {e}", self.name())))?;
        }
        if let Plan::Engines {
            outbound, inbound, ..
        } = &plan
        {
            for (which, c) in [("outbound", outbound), ("inbound", inbound)] {
                c.validate()
                    .and_then(|()| c.schedule.build().map(|_| ()))
                    .map_err(|e| {
                        DefenseError::Param(format!("{}: {which}: {}", self.name(), e.0))
                    })?;
                debug_assert!(c.policy == Policy::Pad || c.policy == Policy::Immediate);
            }
        }
        Ok(plan)
    }
}

impl DefenseSpec {
    /// The maybenot machines of a machine-based defense, generated from `seed`.
    pub fn machine_set(&self, seed: u64) -> Result<MachineSet, DefenseError> {
        match self {
            DefenseSpec::MaybenotFront {
                padding_budget_max,
                window_min_s,
                window_max_s,
                num_states,
                ..
            } => MachineSet::front(
                &FrontParams {
                    padding_budget_max: *padding_budget_max,
                    window_min_s: *window_min_s,
                    window_max_s: *window_max_s,
                    num_states: *num_states,
                },
                seed,
            ),
            DefenseSpec::Regulator {
                r,
                d,
                t,
                n,
                b,
                u,
                c,
                ..
            } => MachineSet::regulator(&RegulatorParams {
                r: *r,
                d: *d,
                t: *t,
                n: *n,
                b: *b,
                u: *u,
                c: *c,
            }),
            DefenseSpec::Interspace { .. } => Ok(MachineSet::interspace(seed)),
            DefenseSpec::BreakPad { .. } => Ok(MachineSet::break_pad()),
            DefenseSpec::Maybenot { client, server, .. } => {
                let split = |s: &str| -> Vec<String> {
                    s.split('|')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect()
                };
                let (c, sv) = (split(client), split(server));
                let c: Vec<&str> = c.iter().map(String::as_str).collect();
                let sv: Vec<&str> = sv.iter().map(String::as_str).collect();
                MachineSet::parse(&c, &sv, seed)
            }
            other => Err(DefenseError::Param(format!(
                "{} is not a maybenot defense",
                other.name()
            ))),
        }
    }
}

/// When each direction's engine is told to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseAt {
    /// At the end of the trace (continuous shaping: ILP, padding).
    TraceEnd,
    /// After the direction's own last packet (Tamaraw).
    LastData,
    /// When both directions have drained (BuFLO's joint stopping rule).
    JointDrain,
}

/// How the simulator applies a defense.
// One plan per `defend` call: boxing the engine configurations would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Plan {
    /// The original packets.
    Passthrough,
    /// Cover periods over both directions (STP, iPET's baselines).
    Periods(Periods),
    /// maybenot machines at both ends ([`DefenseSpec::machine_set`]), padding records of
    /// `padding_bytes`.
    Machines {
        /// Size of a padding record.
        padding_bytes: u32,
    },
    /// One hush-shape engine per direction.
    Engines {
        /// Device to network.
        outbound: ShapeConfig,
        /// Network to device.
        inbound: ShapeConfig,
        /// When to close.
        close: CloseAt,
        /// The inbound engine starts at the first inbound packet (FRONT's server side).
        inbound_starts_at_first_packet: bool,
    },
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

/// A spec's parameters (`key=value;key=value`, or `,` between them), each `key=value` whole:
/// a `,` inside a value (`gap_s=uniform:0.2,0.4`) stays in it.
pub fn split_params(params: &str) -> Vec<String> {
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
            e.defaults.plan().unwrap();
        }
    }

    #[test]
    fn parameters_parse_with_either_separator() {
        let d: DefenseSpec = "buflo:gap_s=0.01,min_duration_s=5".parse().unwrap();
        assert_eq!(
            d,
            DefenseSpec::Buflo {
                size_bytes: 1448,
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
                .plan()
                .is_err()
        );
    }
}
