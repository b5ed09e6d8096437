//! Exact overhead accounting of a defended trace against the original.

use serde::Serialize;

use crate::sim::{WireKind, WirePacket};
use hush_trace::{Direction, Packet};

/// Queueing delay of real data, seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Messages measured.
    pub messages: u64,
    /// Mean.
    pub mean_s: f64,
    /// Median.
    pub p50_s: f64,
    /// 95th percentile.
    pub p95_s: f64,
    /// 99th percentile.
    pub p99_s: f64,
    /// Maximum.
    pub max_s: f64,
}

impl Latency {
    /// From per-message delays in nanoseconds (any order).
    pub fn from_delays_ns(delays: &mut [i64]) -> Latency {
        if delays.is_empty() {
            return Latency::default();
        }
        delays.sort_unstable();
        let pct = |p: f64| delays[((delays.len() - 1) as f64 * p).round() as usize] as f64 * 1e-9;
        Latency {
            messages: delays.len() as u64,
            mean_s: delays.iter().map(|&d| d as f64).sum::<f64>() / delays.len() as f64 * 1e-9,
            p50_s: pct(0.5),
            p95_s: pct(0.95),
            p99_s: pct(0.99),
            max_s: delays[delays.len() - 1] as f64 * 1e-9,
        }
    }
}

/// The cost of a defense in one direction, or both.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Overhead {
    /// Packets of the original.
    pub original_packets: u64,
    /// Packets of the defended trace.
    pub defended_packets: u64,
    /// Defended minus original (negative when a tunnel merges packets).
    pub packets_added: i64,
    /// Frame bytes of the original.
    pub original_bytes: u64,
    /// Frame bytes of the defended trace.
    pub defended_bytes: u64,
    /// Defended minus original.
    pub bytes_added: i64,
    /// `bytes_added` as a percentage of the original (0 when the original is empty).
    pub bytes_added_pct: f64,
    /// Seconds of the original trace (first to last packet).
    pub original_duration_s: f64,
    /// Seconds from the original's first packet to the defended trace's last.
    pub defended_duration_s: f64,
    /// Bytes added per second of the original.
    pub added_bps: f64,
    /// Defended bytes per second of the defended trace.
    pub defended_bps: f64,
    /// Defended bytes per day at that rate: what a data cap sees.
    pub defended_bytes_per_day: f64,
    /// Added bytes per day.
    pub added_bytes_per_day: f64,
    /// Packets with no real data.
    pub cover_packets: u64,
    /// `cover_packets` over defended packets.
    pub cover_fraction: f64,
    /// Cover frame bytes over defended bytes.
    pub cover_bytes_fraction: f64,
    /// Real bytes carried (application payload).
    pub real_bytes: u64,
    /// Padding bytes inside data records.
    pub padding_bytes: u64,
    /// Framing bytes of data records.
    pub framing_bytes: u64,
    /// Delay of real data.
    pub latency: Latency,
    /// Seconds from the last real byte seen to the end of the defended trace.
    pub tail_s: f64,
}

/// Account one direction (`Some`) or both (`None`).
pub fn account(
    original: &[Packet],
    t0_ns: i64,
    defended: &[WirePacket],
    dir: Option<Direction>,
    delays_ns: &mut [i64],
) -> Overhead {
    account_over(original, t0_ns, defended, dir, delays_ns, None)
}

/// [`account`], counting only the defended packets inside `watch` = `[from, to)` (nanoseconds
/// since the original's first packet) when given, with the watched span's length as both
/// durations: how an always-on defense is costed over an observation window. The original's
/// packets and every message delay count whole.
pub fn account_over(
    original: &[Packet],
    t0_ns: i64,
    defended: &[WirePacket],
    dir: Option<Direction>,
    delays_ns: &mut [i64],
    watch: Option<(i64, i64)>,
) -> Overhead {
    let inside = |p: &WirePacket| watch.is_none_or(|(a, b)| (a..b).contains(&p.t_ns));
    let keep_o = |p: &&Packet| dir.is_none_or(|d| p.dir == d) && p.dir != Direction::Unknown;
    let keep_d = |p: &&WirePacket| dir.is_none_or(|d| p.dir == d) && inside(p);
    let orig: Vec<&Packet> = original.iter().filter(keep_o).collect();
    let def: Vec<&WirePacket> = defended.iter().filter(keep_d).collect();
    let original_bytes: u64 = orig.iter().map(|p| u64::from(p.frame_len)).sum();
    let defended_bytes: u64 = def.iter().map(|p| u64::from(p.frame_bytes)).sum();
    // Durations span the whole trace (both directions), so per-direction rates add up.
    let (original_duration_s, defended_duration_s) = match watch {
        Some((a, b)) => {
            let s = (b - a) as f64 * 1e-9;
            (s, s)
        }
        None => {
            let last_orig = original.last().map_or(t0_ns, |p| p.t_ns) - t0_ns;
            let last_def = defended
                .iter()
                .map(|p| p.t_ns)
                .max()
                .unwrap_or(0)
                .max(last_orig);
            (last_orig as f64 * 1e-9, last_def as f64 * 1e-9)
        }
    };
    let per = |b: f64, s: f64| if s > 0.0 { b / s } else { 0.0 };
    let bytes_added = defended_bytes as i64 - original_bytes as i64;
    let cover: Vec<&&WirePacket> = def.iter().filter(|p| p.kind == WireKind::Cover).collect();
    let cover_bytes: u64 = cover.iter().map(|p| u64::from(p.frame_bytes)).sum();
    let last_real = def
        .iter()
        .filter(|p| p.real_bytes > 0 || p.kind == WireKind::Original)
        .map(|p| p.t_ns)
        .max();
    let end = def.iter().map(|p| p.t_ns).max();
    let defended_bps = per(defended_bytes as f64, defended_duration_s);
    Overhead {
        original_packets: orig.len() as u64,
        defended_packets: def.len() as u64,
        packets_added: def.len() as i64 - orig.len() as i64,
        original_bytes,
        defended_bytes,
        bytes_added,
        bytes_added_pct: if original_bytes > 0 {
            100.0 * bytes_added as f64 / original_bytes as f64
        } else {
            0.0
        },
        original_duration_s,
        defended_duration_s,
        added_bps: per(bytes_added as f64, original_duration_s),
        defended_bps,
        defended_bytes_per_day: defended_bps * 86_400.0,
        added_bytes_per_day: per(bytes_added as f64, original_duration_s) * 86_400.0,
        cover_packets: cover.len() as u64,
        cover_fraction: if def.is_empty() {
            0.0
        } else {
            cover.len() as f64 / def.len() as f64
        },
        cover_bytes_fraction: if defended_bytes > 0 {
            cover_bytes as f64 / defended_bytes as f64
        } else {
            0.0
        },
        real_bytes: def.iter().map(|p| u64::from(p.real_bytes)).sum(),
        padding_bytes: def.iter().map(|p| u64::from(p.padding_bytes)).sum(),
        framing_bytes: def.iter().map(|p| u64::from(p.framing_bytes)).sum(),
        latency: Latency::from_delays_ns(delays_ns),
        tail_s: match (last_real, end) {
            (Some(r), Some(e)) => (e - r) as f64 * 1e-9,
            _ => 0.0,
        },
    }
}
