//! Schedules: when the next record may leave and exactly how big it is on the wire.
//!
//! A schedule is a sequence of send opportunities ([`Slot`]s) drawn from a seeded RNG. Under
//! independent link padding (the [`crate::Policy::Pad`] policy) real data only ever leaves in
//! these slots, so what an eavesdropper sees (sizes and gaps) is a function of the seed alone.
//! The one exception is [`Adaptive`], which by design looks at the queue and leaks which of its
//! few rates is in use, and is documented with its bound.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ShapeRng;
use crate::dist::{Dist, DistError, Sampler};
use crate::frame::{MAX_RECORD_BYTES, MIN_RECORD_BYTES};
use crate::time::{Instant, secs_to_nanos};

/// One send opportunity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Time after the previous slot (or after the start, for the first).
    pub gap: Duration,
    /// The record's whole size on the wire, framing and tag included.
    pub size_bytes: u32,
}

/// What a schedule may look at when it draws the next slot.
#[derive(Clone, Copy, Debug)]
pub struct SlotContext {
    /// The previous slot's time (the start, before the first slot).
    pub now: Instant,
    /// Real bytes waiting to be sent. Only [`Adaptive`] reads it.
    pub queue_bytes: u64,
}

/// A source of send opportunities. Implementations must take every random choice from `rng`.
pub trait Schedule: Send + fmt::Debug {
    /// The next slot, or `None` when the schedule offers no more (an unshaped link).
    fn next_slot(&mut self, ctx: SlotContext, rng: &mut ShapeRng) -> Option<Slot>;

    /// Long-run mean wire bytes per second when every slot is used, if the schedule knows it.
    fn expected_bps(&self) -> Option<f64> {
        None
    }
}

/// A schedule as configured (TOML `[shape.schedule]`, flags, presets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScheduleSpec {
    /// A record of `size_bytes` every `gap_s` seconds (Datta et al.'s low-latency mode).
    Constant {
        /// Seconds between records.
        gap_s: f64,
        /// Record size on the wire.
        size_bytes: u32,
    },
    /// Gaps and sizes drawn independently from distributions (Datta et al.'s high-latency mode).
    Random {
        /// Seconds between records.
        gap_s: Dist,
        /// Record size on the wire.
        size_bytes: Dist,
    },
    /// Bursts of records separated by silences: during an "on" period records leave every
    /// `gap_s`; then nothing for an "off" period.
    OnOff {
        /// Length of each burst, seconds.
        on_s: Dist,
        /// Length of each silence, seconds.
        off_s: Dist,
        /// Seconds between records within a burst.
        gap_s: Dist,
        /// Record size on the wire.
        size_bytes: Dist,
    },
    /// A few fixed rates; the schedule steps up one rate when the queue would take longer than
    /// `up_after_s` to drain and down one when the queue is empty, holding each rate at least
    /// `hold_s` (in the spirit of CS-BuFLO).
    ///
    /// Leak bound: over a period `T`, an observer learns at most `T / hold_s` rate changes, each
    /// one step up or down, so at most `(T / hold_s) · log2(3)` bits (with the rate at each
    /// change point also visible, at most `log2(rates)` bits per hold period).
    Adaptive {
        /// Records per second at each step, increasing.
        rates_hz: Vec<f64>,
        /// Record size on the wire.
        size_bytes: Dist,
        /// Minimum seconds at one rate.
        #[serde(default = "default_hold_s")]
        hold_s: f64,
        /// Step up when the queue needs longer than this to drain at the current rate.
        #[serde(default = "default_up_after_s")]
        up_after_s: f64,
    },
    /// No schedule: records leave as soon as data arrives, sized to it (encryption and framing
    /// only). Only valid with the `immediate` policy; it is the baseline that measures the cost
    /// of the tunnel itself.
    Unshaped,
    /// FRONT (Gong and Wang, USENIX Security 2020): once per trace, draw a number of cover
    /// records `n ~ U[1, max_records]` and a window `w ~ U[w_min_s, w_max_s]`, and send the
    /// records at times drawn from a Rayleigh distribution of scale `w` after the start; then no
    /// more slots. Zero delay for real data: use it with the `immediate` policy.
    Front {
        /// Most cover records (their N).
        max_records: u32,
        /// Smallest window, seconds (their W_min).
        w_min_s: f64,
        /// Largest window, seconds (their W_max).
        w_max_s: f64,
        /// Cover record size on the wire.
        size_bytes: Dist,
    },
}

fn default_hold_s() -> f64 {
    10.0
}

fn default_up_after_s() -> f64 {
    1.0
}

impl ScheduleSpec {
    /// Datta et al.'s low-latency setting: 150-byte records every 50 ms.
    pub fn datta_low_latency() -> ScheduleSpec {
        ScheduleSpec::Constant {
            gap_s: 0.05,
            size_bytes: 150,
        }
    }

    /// Datta et al.'s high-latency setting: gaps U[0.2, 0.4] s, sizes U[50, 200] bytes.
    pub fn datta_high_latency() -> ScheduleSpec {
        ScheduleSpec::Random {
            gap_s: Dist::uniform(0.2, 0.4),
            size_bytes: Dist::uniform(50.0, 200.0),
        }
    }

    /// A short name (`constant`, `random`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ScheduleSpec::Constant { .. } => "constant",
            ScheduleSpec::Random { .. } => "random",
            ScheduleSpec::OnOff { .. } => "on-off",
            ScheduleSpec::Adaptive { .. } => "adaptive",
            ScheduleSpec::Unshaped => "unshaped",
            ScheduleSpec::Front { .. } => "front",
        }
    }

    /// Check the parameters and build the schedule.
    pub fn build(&self) -> Result<Box<dyn Schedule>, DistError> {
        let size = |d: &Dist| {
            d.sampler(
                "size_bytes",
                f64::from(MIN_RECORD_BYTES),
                f64::from(MAX_RECORD_BYTES),
            )
        };
        // Gaps up to a day: longer is certainly a typo (seconds, not milliseconds).
        let gap = |what: &str, d: &Dist| d.sampler(what, 0.0, 86_400.0);
        let positive_mean = |what: &str, s: &Sampler| {
            if s.mean() < 1e-6 {
                Err(DistError(format!(
                    "{what}: mean must be at least 1 µs, or records never stop"
                )))
            } else {
                Ok(())
            }
        };
        Ok(match self {
            ScheduleSpec::Constant { gap_s, size_bytes } => {
                let gap_s = gap("gap_s", &Dist::constant(*gap_s))?;
                positive_mean("gap_s", &gap_s)?;
                size(&Dist::constant(f64::from(*size_bytes)))?;
                Box::new(Constant {
                    gap: Duration::from_nanos(secs_to_nanos(gap_s.mean())),
                    size_bytes: *size_bytes,
                })
            }
            ScheduleSpec::Random { gap_s, size_bytes } => {
                let gap_s = gap("gap_s", gap_s)?;
                positive_mean("gap_s", &gap_s)?;
                Box::new(Random {
                    gap: gap_s,
                    size: size(size_bytes)?,
                })
            }
            ScheduleSpec::OnOff {
                on_s,
                off_s,
                gap_s,
                size_bytes,
            } => {
                let (on, off, gap_s) = (
                    gap("on_s", on_s)?,
                    gap("off_s", off_s)?,
                    gap("gap_s", gap_s)?,
                );
                positive_mean("gap_s", &gap_s)?;
                positive_mean("on_s", &on)?;
                Box::new(OnOff {
                    on,
                    off,
                    gap: gap_s,
                    size: size(size_bytes)?,
                    on_left: None,
                })
            }
            ScheduleSpec::Adaptive {
                rates_hz,
                size_bytes,
                hold_s,
                up_after_s,
            } => {
                if rates_hz.is_empty() {
                    return Err(DistError("rates_hz: give at least one rate".into()));
                }
                for w in rates_hz.windows(2) {
                    if w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less) {
                        return Err(DistError(format!(
                            "rates_hz must increase ({} then {})",
                            w[0], w[1]
                        )));
                    }
                }
                if !rates_hz
                    .iter()
                    .all(|r| r.is_finite() && *r > 0.0 && *r <= 1e6)
                {
                    return Err(DistError(
                        "rates_hz: each rate must be in (0, 1e6] records/s".into(),
                    ));
                }
                let non_negative = |v: f64| v.is_finite() && v >= 0.0;
                if !non_negative(*hold_s) || !non_negative(*up_after_s) {
                    return Err(DistError(
                        "hold_s and up_after_s must be non-negative seconds".into(),
                    ));
                }
                let size = size(size_bytes)?;
                let payload_bytes =
                    (size.mean() - crate::frame::RECORD_OVERHEAD_BYTES as f64).max(1.0);
                Box::new(Adaptive {
                    rates_hz: rates_hz.clone(),
                    size,
                    payload_bytes,
                    hold: Duration::from_nanos(secs_to_nanos(*hold_s)),
                    up_after_s: *up_after_s,
                    current: 0,
                    since: None,
                })
            }
            ScheduleSpec::Unshaped => Box::new(Unshaped),
            ScheduleSpec::Front {
                max_records,
                w_min_s,
                w_max_s,
                size_bytes,
            } => {
                if *max_records == 0 {
                    return Err(DistError("max_records must be at least 1".into()));
                }
                let ok = |w: f64| w.is_finite() && w > 0.0;
                if !ok(*w_min_s) || !ok(*w_max_s) || w_min_s > w_max_s {
                    return Err(DistError(format!(
                        "FRONT window: need 0 < w_min_s <= w_max_s, not {w_min_s} and {w_max_s}"
                    )));
                }
                Box::new(Front {
                    max_records: *max_records,
                    w_min_s: *w_min_s,
                    w_max_s: *w_max_s,
                    size: size(size_bytes)?,
                    times: None,
                    next: 0,
                })
            }
        })
    }
}

fn size_bytes(s: &Sampler, rng: &mut ShapeRng) -> u32 {
    // The sampler keeps values inside [MIN_RECORD_BYTES, MAX_RECORD_BYTES].
    s.sample(rng).round() as u32
}

fn gap(s: &Sampler, rng: &mut ShapeRng) -> Duration {
    Duration::from_nanos(secs_to_nanos(s.sample(rng)))
}

/// A fixed size every fixed gap.
#[derive(Debug, Clone)]
pub struct Constant {
    /// Between records.
    pub gap: Duration,
    /// Record size on the wire.
    pub size_bytes: u32,
}

impl Schedule for Constant {
    fn next_slot(&mut self, _: SlotContext, _: &mut ShapeRng) -> Option<Slot> {
        Some(Slot {
            gap: self.gap,
            size_bytes: self.size_bytes,
        })
    }

    fn expected_bps(&self) -> Option<f64> {
        Some(f64::from(self.size_bytes) / self.gap.as_secs_f64())
    }
}

/// Independent random gaps and sizes. Each slot draws the gap first, then the size.
#[derive(Debug, Clone)]
pub struct Random {
    gap: Sampler,
    size: Sampler,
}

impl Schedule for Random {
    fn next_slot(&mut self, _: SlotContext, rng: &mut ShapeRng) -> Option<Slot> {
        let gap = gap(&self.gap, rng);
        Some(Slot {
            gap,
            size_bytes: size_bytes(&self.size, rng),
        })
    }

    fn expected_bps(&self) -> Option<f64> {
        Some(self.size.mean() / self.gap.mean())
    }
}

/// Bursts and silences.
#[derive(Debug, Clone)]
pub struct OnOff {
    on: Sampler,
    off: Sampler,
    gap: Sampler,
    size: Sampler,
    /// Time left in the current burst; `None` before the first.
    on_left: Option<Duration>,
}

impl Schedule for OnOff {
    fn next_slot(&mut self, _: SlotContext, rng: &mut ShapeRng) -> Option<Slot> {
        let on_left = match self.on_left {
            Some(left) => left,
            None => {
                // The first burst starts at the start, with a slot at once.
                self.on_left = Some(gap(&self.on, rng));
                return Some(Slot {
                    gap: Duration::ZERO,
                    size_bytes: size_bytes(&self.size, rng),
                });
            }
        };
        let g = gap(&self.gap, rng);
        let total = if g <= on_left {
            self.on_left = Some(on_left - g);
            g
        } else {
            // The burst ends; a silence, then a new burst that opens with a slot.
            let off = gap(&self.off, rng);
            self.on_left = Some(gap(&self.on, rng));
            on_left + off
        };
        Some(Slot {
            gap: total,
            size_bytes: size_bytes(&self.size, rng),
        })
    }

    fn expected_bps(&self) -> Option<f64> {
        let (on, off, g) = (self.on.mean(), self.off.mean(), self.gap.mean());
        // Per cycle: about on/gap slots plus the opening one, over on + off seconds.
        Some(self.size.mean() * (on / g + 1.0) / (on + off))
    }
}

/// A few rates, stepped by queue length, each held for a minimum time.
#[derive(Debug, Clone)]
pub struct Adaptive {
    rates_hz: Vec<f64>,
    size: Sampler,
    /// Mean data bytes a record carries (its size less the framing).
    payload_bytes: f64,
    hold: Duration,
    up_after_s: f64,
    current: usize,
    since: Option<Instant>,
}

impl Adaptive {
    /// The rate in use, records per second.
    pub fn rate_hz(&self) -> f64 {
        self.rates_hz[self.current]
    }
}

impl Schedule for Adaptive {
    fn next_slot(&mut self, ctx: SlotContext, rng: &mut ShapeRng) -> Option<Slot> {
        let since = *self.since.get_or_insert(ctx.now);
        if ctx.now - since >= self.hold {
            let drain_s = ctx.queue_bytes as f64 / (self.rate_hz() * self.payload_bytes);
            let before = self.current;
            if drain_s > self.up_after_s && self.current + 1 < self.rates_hz.len() {
                self.current += 1;
            } else if ctx.queue_bytes == 0 && self.current > 0 {
                self.current -= 1;
            }
            if self.current != before {
                self.since = Some(ctx.now);
            }
        }
        Some(Slot {
            gap: Duration::from_secs_f64(1.0 / self.rate_hz()),
            size_bytes: size_bytes(&self.size, rng),
        })
    }

    fn expected_bps(&self) -> Option<f64> {
        // At the lowest rate, which is where an idle device sits.
        Some(self.size.mean() * self.rates_hz[0])
    }
}

/// FRONT's one burst of cover at Rayleigh-distributed times.
#[derive(Debug, Clone)]
pub struct Front {
    max_records: u32,
    w_min_s: f64,
    w_max_s: f64,
    size: Sampler,
    /// Cover times after the start, sorted; drawn at the first slot.
    times: Option<Vec<Duration>>,
    next: usize,
}

impl Schedule for Front {
    fn next_slot(&mut self, _: SlotContext, rng: &mut ShapeRng) -> Option<Slot> {
        use rand::RngExt;
        let times = self.times.get_or_insert_with(|| {
            let n = rng.random_range(1..=self.max_records);
            let w = rng.random_range(self.w_min_s..=self.w_max_s);
            // Rayleigh(w) by inversion: w * sqrt(-2 ln U), U in (0, 1].
            let mut t: Vec<Duration> = (0..n)
                .map(|_| {
                    let u = 1.0 - rng.random::<f64>();
                    Duration::from_nanos(secs_to_nanos(w * (-2.0 * u.ln()).sqrt()))
                })
                .collect();
            t.sort_unstable();
            t
        });
        let at = *times.get(self.next)?;
        let prev = if self.next == 0 {
            Duration::ZERO
        } else {
            times[self.next - 1]
        };
        self.next += 1;
        Some(Slot {
            gap: at - prev,
            size_bytes: size_bytes(&self.size, rng),
        })
    }
}

/// No slots at all.
#[derive(Debug, Clone, Copy)]
pub struct Unshaped;

impl Schedule for Unshaped {
    fn next_slot(&mut self, _: SlotContext, _: &mut ShapeRng) -> Option<Slot> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShapeConfig;
    use rand::SeedableRng;

    fn slots(spec: &ScheduleSpec, n: usize, queue_bytes: impl Fn(usize) -> u64) -> Vec<(f64, u32)> {
        let mut s = spec.build().unwrap();
        let mut rng = ShapeRng::seed_from_u64(1);
        let mut now = Instant::ZERO;
        (0..n)
            .map(|i| {
                let slot = s
                    .next_slot(
                        SlotContext {
                            now,
                            queue_bytes: queue_bytes(i),
                        },
                        &mut rng,
                    )
                    .unwrap();
                now += slot.gap;
                (now.as_secs_f64(), slot.size_bytes)
            })
            .collect()
    }

    #[test]
    fn constant_is_a_metronome() {
        let s = slots(&ScheduleSpec::datta_low_latency(), 3, |_| 0);
        let ms: Vec<(u64, u32)> = s
            .iter()
            .map(|&(t, b)| ((t * 1000.0).round() as u64, b))
            .collect();
        assert_eq!(ms, vec![(50, 150), (100, 150), (150, 150)]);
        assert_eq!(
            ScheduleSpec::datta_low_latency()
                .build()
                .unwrap()
                .expected_bps(),
            Some(3000.0)
        );
    }

    #[test]
    fn random_stays_in_range() {
        let s = slots(&ScheduleSpec::datta_high_latency(), 10_000, |_| 0);
        let mut prev = 0.0;
        for &(t, b) in &s {
            assert!(
                (0.2 - 1e-9..=0.4 + 1e-9).contains(&(t - prev)),
                "gap {}",
                t - prev
            );
            assert!((50..=200).contains(&b));
            prev = t;
        }
        // 125 B per 0.3 s.
        let bps = ScheduleSpec::datta_high_latency()
            .build()
            .unwrap()
            .expected_bps()
            .unwrap();
        assert!((bps - 125.0 / 0.3).abs() < 1e-9);
    }

    #[test]
    fn on_off_bursts_and_silences() {
        let spec = ScheduleSpec::OnOff {
            on_s: Dist::constant(1.0),
            off_s: Dist::constant(4.0),
            gap_s: Dist::constant(0.25),
            size_bytes: Dist::constant(100.0),
        };
        let times: Vec<f64> = slots(&spec, 10, |_| 0)
            .iter()
            .map(|s| (s.0 * 1e6).round() / 1e6)
            .collect();
        // A burst at 0, .25, .5, .75, 1.0; silence until 5.0; the next burst.
        assert_eq!(
            times,
            vec![0.0, 0.25, 0.5, 0.75, 1.0, 5.0, 5.25, 5.5, 5.75, 6.0]
        );
    }

    #[test]
    fn adaptive_steps_one_rate_at_a_time_and_holds() {
        let spec = ScheduleSpec::Adaptive {
            rates_hz: vec![1.0, 10.0, 100.0],
            size_bytes: Dist::constant(122.0),
            hold_s: 2.0,
            up_after_s: 1.0,
        };
        // A big queue for the first 30 slots, then empty.
        let s = slots(&spec, 300, |i| if i < 30 { 1_000_000 } else { 0 });
        let gaps: Vec<f64> = std::iter::once(s[0].0)
            .chain(s.windows(2).map(|w| w[1].0 - w[0].0))
            .collect();
        let rate = |g: f64| (1.0 / g).round();
        // Starts at 1/s, steps to 10/s only after holding 2 s, then to 100/s 2 s later.
        assert_eq!(rate(gaps[0]), 1.0);
        assert_eq!(rate(gaps[1]), 1.0);
        assert_eq!(rate(gaps[2]), 10.0);
        assert!(gaps.iter().any(|&g| rate(g) == 100.0));
        // Never jumps two steps: consecutive rates differ by at most one index.
        let idx = |g: f64| {
            [1.0, 10.0, 100.0]
                .iter()
                .position(|&r| r == rate(g))
                .unwrap() as i32
        };
        assert!(gaps.windows(2).all(|w| (idx(w[1]) - idx(w[0])).abs() <= 1));
        // With the queue empty it comes back down to the lowest rate.
        assert_eq!(rate(*gaps.last().unwrap()), 1.0);
    }

    #[test]
    fn front_draws_one_rayleigh_burst_per_run() {
        let spec = ScheduleSpec::Front {
            max_records: 2000,
            w_min_s: 2.0,
            w_max_s: 2.0,
            size_bytes: Dist::constant(512.0),
        };
        let mut s = spec.build().unwrap();
        let mut rng = ShapeRng::seed_from_u64(3);
        let mut t = Instant::ZERO;
        let mut times = Vec::new();
        while let Some(slot) = s.next_slot(
            SlotContext {
                now: t,
                queue_bytes: 0,
            },
            &mut rng,
        ) {
            t += slot.gap;
            times.push(t.as_secs_f64());
            assert_eq!(slot.size_bytes, 512);
        }
        assert!((1..=2000).contains(&times.len()));
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        // Rayleigh(2): mean 2·sqrt(π/2) ≈ 2.507 s, for a large enough draw.
        if times.len() > 500 {
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            assert!((mean - 2.507).abs() < 0.15, "{mean}");
        }
        assert!(ShapeConfig::new(spec.clone()).validate().is_ok());
        let padded = ShapeConfig {
            policy: crate::Policy::Pad,
            ..ShapeConfig::new(spec)
        };
        assert!(padded.validate().is_err(), "FRONT strands padded data");
    }

    #[test]
    fn bad_specs_are_errors() {
        let bad = [
            ScheduleSpec::Constant {
                gap_s: 0.0,
                size_bytes: 150,
            },
            ScheduleSpec::Constant {
                gap_s: 0.05,
                size_bytes: 10,
            },
            ScheduleSpec::Random {
                gap_s: Dist::uniform(0.2, 0.4),
                size_bytes: Dist::uniform(50.0, 70_000.0),
            },
            ScheduleSpec::Adaptive {
                rates_hz: vec![5.0, 1.0],
                size_bytes: Dist::constant(100.0),
                hold_s: 1.0,
                up_after_s: 1.0,
            },
        ];
        for spec in bad {
            assert!(spec.build().is_err(), "{spec:?}");
        }
    }

    #[test]
    fn toml_round_trip() {
        let spec: ScheduleSpec = toml::from_str(
            "kind = \"random\"\ngap_s = \"uniform:0.2,0.4\"\nsize_bytes = \"uniform:50,200\"",
        )
        .unwrap();
        assert_eq!(spec, ScheduleSpec::datta_high_latency());
        let back: ScheduleSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        let err = toml::from_str::<ScheduleSpec>(
            "kind = \"constant\"\ngap_s = 1\nsize_bytes = 100\nextra = 1",
        )
        .unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }
}
