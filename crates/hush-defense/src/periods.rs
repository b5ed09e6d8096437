//! Cover *periods*: stochastic traffic padding (STP, Apthorpe et al., PETS 2019) and iPET's three
//! baselines (Shenoi et al., PETS 2023), as iPET's code defines them (`baselines/*/`).
//!
//! Time is cut into ticks (100 ms); each tick has one entry per direction. A *period* of length
//! `T` shapes traffic to a byte quota: real data leaves while the quota lasts (the rest waits in a
//! buffer), and every empty tick-entry sends a cover chunk of the tick's share of the quota. A
//! period starts when real data arrives or waits, and otherwise, at each idle tick-entry, with
//! probability `q`, so an observer cannot tell user activity from cover (STP's idea; `q = 0`
//! masks only real activity, `q = 1` is independent link padding). Ticks run only within
//! activity: a gap of more than `10·T` between packets has none, as in iPET.
//!
//! Quotas: `constant` resets the period quota (rate × T) whenever a period starts; `random`
//! draws a budget |N(μ, σ)| every 5 s shared by all periods and both directions; `random+` does
//! the same with μ drawn once per trace, uniform in [5, 40] kB.
//!
//! hush fixes two bugs of the original code: the trace's last packet is no longer dropped, and a
//! buffered chunk leaves in its own direction rather than the current tick's. Each chunk is a
//! hush record: 22 bytes of framing (and the message-length varint on a message's first chunk)
//! are added on top of the chunk, as they are for every engine-based defense.

use std::collections::VecDeque;

use hush_shape::ShapeRng;
use hush_shape::frame::{RECORD_OVERHEAD_BYTES, varint_len};
use hush_trace::Direction;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::DefenseError;
use crate::sim::{Message, NetworkModel, WireKind, WirePacket};

/// How the byte quota of periods is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "quota", rename_all = "kebab-case")]
pub enum Quota {
    /// `rate_bps · period_s` per period, reset when a period starts (iPET constant, STP).
    Constant {
        /// Bytes per second within a period.
        rate_bps: f64,
    },
    /// A budget |N(mean_bytes, std_bytes)| redrawn every `redraw_s`, shared by every period and
    /// both directions (iPET random).
    Random {
        /// Mean budget.
        mean_bytes: f64,
        /// Its standard deviation.
        std_bytes: f64,
        /// Seconds between draws.
        redraw_s: f64,
    },
    /// As `Random`, with the mean drawn once per trace uniformly in [min_mean_bytes,
    /// max_mean_bytes] (iPET random+).
    RandomPlus {
        /// Smallest mean.
        min_mean_bytes: f64,
        /// Largest mean.
        max_mean_bytes: f64,
        /// Standard deviation.
        std_bytes: f64,
        /// Seconds between draws.
        redraw_s: f64,
    },
}

/// Parameters of a cover-period defense.
#[derive(Clone, Debug, PartialEq)]
pub struct Periods {
    /// Period length T, seconds.
    pub period_s: f64,
    /// Tick length, seconds.
    pub tick_s: f64,
    /// Probability that an idle tick-entry starts a cover period.
    pub q: f64,
    /// The quota.
    pub quota: Quota,
}

impl Periods {
    pub(crate) fn validate(&self) -> Result<(), DefenseError> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if !pos(self.period_s) || !pos(self.tick_s) || self.tick_s > self.period_s {
            return Err(DefenseError::Param(format!(
                "need 0 < tick_s <= period_s, not tick {} and period {}",
                self.tick_s, self.period_s
            )));
        }
        if !(0.0..=1.0).contains(&self.q) {
            return Err(DefenseError::Param(format!(
                "q must be in [0, 1], not {}",
                self.q
            )));
        }
        let ok = match &self.quota {
            Quota::Constant { rate_bps } => pos(*rate_bps),
            Quota::Random {
                mean_bytes,
                std_bytes,
                redraw_s,
            } => pos(*mean_bytes) && std_bytes.is_finite() && *std_bytes >= 0.0 && pos(*redraw_s),
            Quota::RandomPlus {
                min_mean_bytes,
                max_mean_bytes,
                std_bytes,
                redraw_s,
            } => {
                pos(*min_mean_bytes)
                    && min_mean_bytes <= max_mean_bytes
                    && std_bytes.is_finite()
                    && *std_bytes >= 0.0
                    && pos(*redraw_s)
            }
        };
        if !ok {
            return Err(DefenseError::Param(format!(
                "invalid quota {:?}",
                self.quota
            )));
        }
        Ok(())
    }
}

/// A chunk of a real message waiting in the buffer.
struct Waiting {
    dir: Direction,
    /// Index into its direction's delay list.
    message: usize,
    captured_ns: i64,
    len: u32,
    left: u32,
}

struct Run<'a> {
    p: &'a Periods,
    net: &'a NetworkModel,
    rng: ShapeRng,
    active: bool,
    started_ns: i64,
    quota_left: f64,
    quota_tick: f64,
    /// Random quotas: the current mean, and when the budget was last drawn.
    mean: f64,
    drawn_ns: i64,
    buffer: VecDeque<Waiting>,
    out: Vec<WirePacket>,
    delays: [Vec<i64>; 2],
}

fn di(dir: Direction) -> usize {
    usize::from(dir == Direction::Inbound)
}

impl Run<'_> {
    fn draw_budget(&mut self, now: i64) {
        let std = match &self.p.quota {
            Quota::Constant { .. } => return,
            Quota::Random { std_bytes, .. } | Quota::RandomPlus { std_bytes, .. } => *std_bytes,
        };
        let draw = Normal::new(self.mean, std).map_or(self.mean, |n| n.sample(&mut self.rng));
        self.quota_left = draw.abs();
        // iPET: the tick share is the budget over 20 tick-entries (10 ticks, two directions).
        self.quota_tick = self.quota_left / (2.0 * (self.p.period_s / self.p.tick_s));
        self.drawn_ns = now;
    }

    fn maybe_redraw(&mut self, now: i64) {
        if let Quota::Random { redraw_s, .. } | Quota::RandomPlus { redraw_s, .. } = self.p.quota {
            if (now - self.drawn_ns) as f64 * 1e-9 >= redraw_s {
                self.draw_budget(now);
            }
        }
    }

    fn start_period(&mut self, now: i64) {
        self.active = true;
        self.started_ns = now;
        if let Quota::Constant { rate_bps } = self.p.quota {
            self.quota_left = rate_bps * self.p.period_s;
            self.quota_tick = self.quota_left / (2.0 * (self.p.period_s / self.p.tick_s));
        }
    }

    fn emit(&mut self, now: i64, dir: Direction, kind: WireKind, chunk: u32, framing: u32) {
        let record = chunk + framing;
        self.out.push(WirePacket {
            t_ns: now,
            dir,
            frame_bytes: record + self.net.header_bytes,
            payload_bytes: record,
            kind,
            real_bytes: if kind == WireKind::Data { chunk } else { 0 },
            padding_bytes: 0,
            framing_bytes: if kind == WireKind::Data { framing } else { 0 },
        });
    }

    /// Send as much of the buffer's head chunks as the quota allows.
    fn flush(&mut self, now: i64) {
        while self.quota_left >= 1.0 {
            let Some(w) = self.buffer.front_mut() else {
                break;
            };
            let take = w.left.min(self.quota_left.floor() as u32);
            let first = w.left == w.len;
            let framing = RECORD_OVERHEAD_BYTES as u32
                + if first {
                    varint_len(u64::from(w.len)) as u32
                } else {
                    0
                };
            let (dir, done, message, captured) = (w.dir, take == w.left, w.message, w.captured_ns);
            w.left -= take;
            self.quota_left -= f64::from(take);
            self.emit(now, dir, WireKind::Data, take, framing);
            if done {
                self.buffer.pop_front();
                self.delays[di(dir)][message] = now - captured;
            } else {
                break;
            }
        }
    }

    fn entry(&mut self, now: i64, dir: Direction, real: Option<(usize, &Message)>) {
        self.maybe_redraw(now);
        if real.is_some() || !self.buffer.is_empty() || self.active {
            if !self.active {
                self.start_period(now);
            }
            self.flush(now);
            match real {
                Some((message, m)) => self.buffer.push_back(Waiting {
                    dir,
                    message,
                    captured_ns: m.t_ns,
                    len: m.len_bytes,
                    left: m.len_bytes,
                }),
                None => {
                    let chunk = self.quota_tick.min(self.quota_left).floor();
                    if chunk >= 1.0 {
                        self.quota_left -= chunk;
                        self.emit(
                            now,
                            dir,
                            WireKind::Cover,
                            chunk as u32,
                            RECORD_OVERHEAD_BYTES as u32,
                        );
                    }
                }
            }
            // A real packet that fits leaves at once (it was just buffered behind the older ones).
            self.flush(now);
        }
        if !self.active && self.p.q > 0.0 && self.rng.random::<f64>() < self.p.q {
            self.start_period(now);
        }
        if self.active && (now - self.started_ns) as f64 * 1e-9 >= self.p.period_s {
            self.active = false;
        }
    }
}

/// Apply a cover-period defense to both directions' messages: the wire packets in time order
/// and the delays of outbound and inbound messages.
///
/// `always_on_until_ns`: `None` runs ticks only within bursts of activity, as iPET does on a
/// capture; `Some(end)` runs them without a break from time 0 to `end` (and on until the buffer
/// drains), as on a link that is shaped all the time, so idle stretches draw cover periods too.
#[allow(clippy::type_complexity)]
pub fn run_periods(
    out_msgs: &[Message],
    in_msgs: &[Message],
    p: &Periods,
    seed: u64,
    net: &NetworkModel,
    always_on_until_ns: Option<i64>,
) -> Result<(Vec<WirePacket>, Vec<i64>, Vec<i64>), DefenseError> {
    p.validate()?;
    let mut rng = ShapeRng::seed_from_u64(seed);
    let mean = match &p.quota {
        Quota::Constant { .. } => 0.0,
        Quota::Random { mean_bytes, .. } => *mean_bytes,
        Quota::RandomPlus {
            min_mean_bytes,
            max_mean_bytes,
            ..
        } => rng.random_range(*min_mean_bytes..=*max_mean_bytes),
    };
    let mut run = Run {
        p,
        net,
        rng,
        active: false,
        started_ns: 0,
        quota_left: 0.0,
        quota_tick: 0.0,
        mean,
        drawn_ns: 0,
        buffer: VecDeque::new(),
        out: Vec::with_capacity(out_msgs.len() + in_msgs.len()),
        delays: [vec![0; out_msgs.len()], vec![0; in_msgs.len()]],
    };
    run.draw_budget(0);
    // Merge both directions' messages by time (outbound first on ties).
    let mut all: Vec<(i64, Direction, usize)> = out_msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (m.t_ns, Direction::Outbound, i))
        .chain(
            in_msgs
                .iter()
                .enumerate()
                .map(|(i, m)| (m.t_ns, Direction::Inbound, i)),
        )
        .collect();
    all.sort_by_key(|&(t, d, i)| (t, d == Direction::Inbound, i));
    let tick_ns = (p.tick_s * 1e9).round().max(1.0) as i64;
    let silence_ns = (10.0 * p.period_s * 1e9).round() as i64;
    let msg = |d: Direction, i: usize| {
        if d == Direction::Outbound {
            &out_msgs[i]
        } else {
            &in_msgs[i]
        }
    };
    let mut k = 0;
    // Always on: one burst from 0 to the end, whatever the traffic.
    while k < all.len() || (always_on_until_ns.is_some() && k == 0) {
        // One burst of activity: packets closer than the silence threshold.
        let (first, tick_end, end) = match always_on_until_ns {
            Some(until) => (
                0,
                until.max(all.last().map_or(0, |a| a.0)),
                all.len().saturating_sub(1),
            ),
            None => {
                let mut end = k;
                while end + 1 < all.len() && all[end + 1].0 - all[end].0 <= silence_ns {
                    end += 1;
                }
                (all[k].0, all[end].0 + silence_ns, end)
            }
        };
        let mut tick = first;
        let mut next = k;
        // Ticks until the burst's window ends and the buffer has drained.
        while tick <= tick_end || !run.buffer.is_empty() {
            // Real packets up to this tick, in time order, then the tick's two entries.
            while next <= end && next < all.len() && all[next].0 <= tick {
                let (t, d, i) = all[next];
                run.entry(t, d, Some((i, msg(d, i))));
                next += 1;
            }
            run.entry(tick, Direction::Outbound, None);
            run.entry(tick, Direction::Inbound, None);
            tick += tick_ns;
            if tick > tick_end && run.buffer.is_empty() && (next > end || next >= all.len()) {
                break;
            }
        }
        if always_on_until_ns.is_some() {
            break;
        }
        k = end + 1;
    }
    let mut packets = run.out;
    packets.sort_by_key(|p| (p.t_ns, p.dir == Direction::Inbound));
    let [d_out, d_in] = run.delays;
    Ok((packets, d_out, d_in))
}
