//! What the eavesdropper observes: the observation model every result names.
//!
//! - [`View::Session`]: one capture, start to end. The defense starts with the capture's first
//!   packet; the eavesdropper sees the defended capture whole. Right for session-bounded
//!   defenses (padding, BuFLO, Tamaraw, FRONT, maybenot machines) and for comparison with
//!   website-fingerprinting papers.
//! - [`View::Window`]: an always-on link watched through fixed windows of `window_s` seconds,
//!   chosen without looking at the traffic. The capture sits inside its first window at an
//!   offset drawn at random ([`Placement::draw`]), and a capture longer than a window fills
//!   several, back to back. An always-on defense ([`DefenseSpec::always_on`]) shapes the link
//!   from [`WARMUP_S`] before the first window opens until the last one closes, and on until its
//!   queue drains: data still queued when a window closes is delivered after it, and its delay
//!   counts. A session-bounded defense runs as in the session view, and its session is seen
//!   through the windows (its start and end stay visible, as they would be on a real link).
//!
//! Without the window view, a constant-rate stream's only free variable is its length, which is
//! the capture's length: an attacker then identifies devices by how long their captures were,
//! and the bench would measure capture length instead of privacy.
//!
//! ```
//! use hush_defense::{DefenseSpec, NetworkModel, View, observe::observe};
//! use hush_trace::{Direction, Packet, Trace};
//!
//! let packets = (0..20)
//!     .map(|i| Packet { t_ns: i * 100_000_000, frame_len: 120, payload_len: 54, dir: Direction::Outbound, ..Packet::default() })
//!     .collect();
//! let trace = Trace { name: "plug".into(), packets, ..Trace::default() };
//! let ilp: DefenseSpec = "ilp-constant".parse()?;
//! let seen = observe(&trace, &ilp, 7, &NetworkModel::default(), View::Window { window_s: 30.0 })?;
//! assert_eq!(seen.windows.len(), 1);
//! // 150-byte records every 50 ms for the whole 30 s window, whatever the plug did.
//! assert_eq!(seen.windows[0].packets.len(), 2 * 600);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use hush_trace::Trace;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{
    AlwaysOn, Defended, DefenseError, DefenseSpec, NetworkModel, defend, defend_always_on,
};

/// How long an always-on defense runs before the first window opens, seconds: long enough for
/// every catalog schedule to forget its start (ILP draws a gap of at most a second; iPET redraws
/// its budget every 5 s), so nothing about the window's position leaks through the schedule.
pub const WARMUP_S: f64 = 60.0;

/// Smallest margin added to the longest capture by [`default_window_s`], seconds.
pub const MIN_MARGIN_S: f64 = 10.0;

/// What the eavesdropper observes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "observation", rename_all = "kebab-case")]
pub enum View {
    /// One capture, start to end.
    Session,
    /// Fixed, data-independent windows of an always-on link.
    Window {
        /// Window length, seconds.
        window_s: f64,
    },
}

impl View {
    /// `session` or `window`.
    pub fn name(&self) -> &'static str {
        match self {
            View::Session => "session",
            View::Window { .. } => "window",
        }
    }

    /// The window length, seconds (`None` for the session view).
    pub fn window_s(&self) -> Option<f64> {
        match self {
            View::Session => None,
            View::Window { window_s } => Some(*window_s),
        }
    }

    /// Check the window length.
    pub fn validate(&self) -> Result<(), DefenseError> {
        match self {
            View::Session => Ok(()),
            View::Window { window_s } if window_s.is_finite() && *window_s >= 0.001 => Ok(()),
            View::Window { window_s } => Err(DefenseError::Param(format!(
                "an observation window must be a positive number of seconds, not {window_s}"
            ))),
        }
    }
}

impl fmt::Display for View {
    /// `session`, or `window:W` with W in seconds (what [`View::from_str`] reads back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            View::Session => f.write_str("session"),
            View::Window { window_s } => write!(f, "window:{window_s}"),
        }
    }
}

impl FromStr for View {
    type Err = DefenseError;

    /// `session`, or `window:W` (W seconds, e.g. `window:600`).
    fn from_str(s: &str) -> Result<View, DefenseError> {
        let s = s.trim();
        let view = match s.split_once(':') {
            None if s == "session" => View::Session,
            Some(("window", w)) => View::Window {
                window_s: w.trim().trim_end_matches('s').parse().map_err(|_| {
                    DefenseError::Param(format!("observation {s:?}: {w:?} is not seconds"))
                })?,
            },
            _ => {
                return Err(DefenseError::Param(format!(
                    "observation {s:?}: expected session or window:SECONDS"
                )));
            }
        };
        view.validate()?;
        Ok(view)
    }
}

/// The default window length for captures whose spans (first to last packet) are `spans_s`:
/// the longest plus a margin of 10% (at least [`MIN_MARGIN_S`]), rounded up to whole seconds.
/// It depends on the spans alone, never on labels, and puts every capture in one window, so
/// under no defense the window view shows exactly the packets the session view shows.
pub fn default_window_s(spans_s: impl IntoIterator<Item = f64>) -> f64 {
    let longest = spans_s
        .into_iter()
        .filter(|s| s.is_finite())
        .fold(0.0f64, f64::max);
    (longest + (0.1 * longest).max(MIN_MARGIN_S)).ceil()
}

/// Where one capture sits among the windows of the always-on view, in nanoseconds relative to
/// its first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// When the first window opens (at or before the first packet).
    pub open_ns: i64,
    /// Window length.
    pub window_ns: i64,
    /// Windows, back to back, until the one holding the last packet.
    pub windows: usize,
}

impl Placement {
    /// A capture of `span_ns` (first to last packet) in windows of `window_ns`, at an offset
    /// drawn from `seed`: uniform over the offsets that keep a shorter capture inside one window,
    /// and over a whole window for a longer one. The draw never looks at the traffic.
    pub fn draw(span_ns: i64, window_ns: i64, seed: u64) -> Placement {
        let span_ns = span_ns.max(0);
        let window_ns = window_ns.max(1);
        let room = if span_ns < window_ns {
            window_ns - span_ns
        } else {
            window_ns
        };
        let mut rng = hush_shape::ShapeRng::seed_from_u64(seed);
        let offset = rng.random_range(0..room);
        Placement {
            open_ns: -offset,
            window_ns,
            windows: ((offset + span_ns) / window_ns + 1) as usize,
        }
    }

    /// Window `k`'s `[start, end)`.
    pub fn bounds(&self, k: usize) -> (i64, i64) {
        let start = self.open_ns + k as i64 * self.window_ns;
        (start, start + self.window_ns)
    }

    /// When the last window closes.
    pub fn end_ns(&self) -> i64 {
        self.open_ns + self.windows as i64 * self.window_ns
    }

    /// `trace`'s packets cut into the windows, times kept; `t0_ns` is the time the placement is
    /// relative to (the original capture's first packet). Windows of a trace longer than one are
    /// named `NAME[k]`.
    pub fn cut(&self, trace: &Trace, t0_ns: i64) -> Vec<Trace> {
        let mut out = Vec::with_capacity(self.windows);
        let mut rest = &trace.packets[..];
        for k in 0..self.windows {
            let (a, b) = self.bounds(k);
            let skip = rest.partition_point(|p| p.t_ns - t0_ns < a);
            rest = &rest[skip..];
            let take = rest.partition_point(|p| p.t_ns - t0_ns < b);
            out.push(Trace {
                name: if self.windows == 1 {
                    trace.name.clone()
                } else {
                    format!("{}[{k}]", trace.name)
                },
                packets: rest[..take].to_vec(),
                endpoints: trace.endpoints.clone(),
                report: Default::default(),
            });
            rest = &rest[take..];
        }
        out
    }
}

/// The seed of a capture's placement under defense seed `seed`: its own stream, so moving the
/// capture inside its window never changes what a defense with that seed draws.
pub fn placement_seed(seed: u64) -> u64 {
    // SplitMix64's finaliser over a stream constant: a fixed, documented derivation.
    let mut z = seed ^ 0x0b5e_7a7e_0f5e_a7ed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the eavesdropper saw of one capture under one defense, and what the defense cost.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The defended traffic as the eavesdropper sees it: the defended capture (session view), or
    /// one trace per window (window view).
    pub windows: Vec<Trace>,
    /// The accounts (without packets): for an always-on defense in the window view, over the
    /// windows; otherwise over the whole defended capture.
    pub defended: Defended,
    /// Where the capture sat (window view).
    pub placement: Option<Placement>,
}

/// The span of `trace` (first to last packet), nanoseconds.
pub fn span_ns(trace: &Trace) -> i64 {
    match (trace.packets.first(), trace.packets.last()) {
        (Some(a), Some(b)) => b.t_ns - a.t_ns,
        _ => 0,
    }
}

/// `trace` (directions set, sorted) defended by `defense` with `seed` and seen under `view`.
pub fn observe(
    trace: &Trace,
    defense: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
    view: View,
) -> Result<Observed, DefenseError> {
    view.validate()?;
    let t0 = trace.packets.first().map_or(0, |p| p.t_ns);
    let View::Window { window_s } = view else {
        let d = defend(trace, defense, seed, net)?;
        return Ok(Observed {
            windows: vec![d.to_trace(trace)],
            defended: d.without_packets(),
            placement: None,
        });
    };
    let placement = Placement::draw(
        span_ns(trace),
        (window_s * 1e9).round() as i64,
        placement_seed(seed),
    );
    let d = if defense.always_on() {
        let warmup_ns = (WARMUP_S * 1e9) as i64;
        defend_always_on(
            trace,
            defense,
            seed,
            net,
            AlwaysOn {
                start_ns: placement.open_ns - warmup_ns,
                watch_from_ns: placement.open_ns,
                watch_to_ns: placement.end_ns(),
            },
        )?
    } else {
        let mut d = defend(trace, defense, seed, net)?;
        // A session's bytes are all its own; its rate is over the time watched.
        let watched_s = (placement.end_ns() - placement.open_ns) as f64 * 1e-9;
        for o in [&mut d.overhead, &mut d.outbound, &mut d.inbound] {
            o.original_duration_s = watched_s;
            o.added_bps = o.bytes_added as f64 / watched_s;
            o.added_bytes_per_day = o.added_bps * 86_400.0;
        }
        d
    };
    let seen = d.to_trace(trace);
    Ok(Observed {
        windows: placement.cut(&seen, t0),
        defended: d.without_packets(),
        placement: Some(placement),
    })
}

/// A long capture (activity inference: windows are cut around events afterwards) defended as
/// the view has it: in the window view an always-on defense runs from [`WARMUP_S`] before the
/// capture to its end and on until its queue drains, so the capture's own start and end are not
/// the defense's; otherwise, and for session-bounded defenses, as [`defend`] does.
pub fn defend_whole(
    trace: &Trace,
    defense: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
    view: View,
) -> Result<Defended, DefenseError> {
    view.validate()?;
    match view {
        View::Window { .. } if defense.always_on() => defend_always_on(
            trace,
            defense,
            seed,
            net,
            AlwaysOn {
                start_ns: -((WARMUP_S * 1e9) as i64),
                watch_from_ns: 0,
                watch_to_ns: span_ns(trace) + 1,
            },
        ),
        _ => defend(trace, defense, seed, net),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_round_trip() {
        for text in ["session", "window:600", "window:0.5"] {
            let v: View = text.parse().unwrap();
            assert_eq!(v.to_string(), text);
        }
        assert_eq!(
            "window:90s".parse::<View>().unwrap(),
            View::Window { window_s: 90.0 }
        );
        for bad in [
            "",
            "windows:3",
            "window:",
            "window:-1",
            "window:nan",
            "session:3",
        ] {
            assert!(bad.parse::<View>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_window_holds_the_longest_capture_with_a_margin() {
        assert_eq!(default_window_s([3.0, 466.76, 71.2]), 514.0);
        assert_eq!(default_window_s([20.0]), 30.0);
        assert_eq!(default_window_s([]), 10.0);
    }

    #[test]
    fn placements_keep_short_captures_in_one_window_and_tile_long_ones() {
        let w = 10_000;
        for seed in 0..200 {
            let p = Placement::draw(7_000, w, seed);
            assert_eq!(p.windows, 1, "{p:?}");
            assert!(p.open_ns <= 0 && p.open_ns > -3_000, "{p:?}");
            assert!(p.end_ns() > 7_000);
            let long = Placement::draw(25_000, w, seed);
            assert!((3..=4).contains(&long.windows), "{long:?}");
            assert!(long.open_ns <= 0 && long.end_ns() > 25_000);
            assert!(long.end_ns() - 25_000 <= w);
        }
        // The offsets spread over the room they have.
        let offsets: std::collections::BTreeSet<i64> = (0..200)
            .map(|s| Placement::draw(7_000, w, s).open_ns)
            .collect();
        assert!(offsets.len() > 150);
        assert_eq!(Placement::draw(7_000, w, 3), Placement::draw(7_000, w, 3));
    }
}
