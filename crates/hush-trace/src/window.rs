//! Windows over a trace: by packet count, by fixed time with slots, and by activity.
//!
//! All three take packets sorted by time (as every [`Trace`](crate::Trace) is) and return plain
//! ranges or flat `f32` buffers, so hush-ml can turn them into tensors without copying per packet.

use std::ops::Range;

use serde::Serialize;

use crate::packet::{Direction, Packet};

/// Windows of `len` consecutive packets, each starting `stride` packets after the previous
/// (IoTFlowGenerator's L-packet windows use `stride == len`). The last, shorter remainder is
/// dropped, so every window has exactly `len` packets. `len == 0` or `stride == 0` gives none.
pub fn count_windows(
    packet_count: usize,
    len: usize,
    stride: usize,
) -> impl Iterator<Item = Range<usize>> {
    let n = if len == 0 || stride == 0 || packet_count < len {
        0
    } else {
        (packet_count - len) / stride + 1
    };
    (0..n).map(move |k| k * stride..k * stride + len)
}

/// iPET's slotted time windows: `window_s` seconds cut into `slots` equal slots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlotConfig {
    /// Window length, seconds (iPET: 4).
    pub window_s: f64,
    /// Slots per window (iPET: 40, so 100 ms each).
    pub slots: usize,
    /// Start of one window to the next, seconds; `None` means `window_s` (no overlap).
    pub stride_s: Option<f64>,
    /// Leave out windows with no packet (an idle day would otherwise be mostly zeros).
    pub skip_empty: bool,
}

impl Default for SlotConfig {
    fn default() -> Self {
        SlotConfig {
            window_s: 4.0,
            slots: 40,
            stride_s: None,
            skip_empty: true,
        }
    }
}

/// Features per slot: `[in_count, in_bytes, out_count, out_bytes]`.
pub const SLOT_FEATURES: usize = 4;

/// Slotted windows as flat buffers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlotWindows {
    /// `windows × slots × 4` values, row-major: window, then slot, then
    /// `[in_count, in_bytes, out_count, out_bytes]` (frame bytes).
    pub values: Vec<f32>,
    /// Per window: seconds from the last packet before the window to its start (0 when none).
    pub silence_before_s: Vec<f32>,
    /// Per window: start time, ns.
    pub starts_ns: Vec<i64>,
    /// Per window: the packets it holds.
    pub packets: Vec<Range<usize>>,
    /// Slots per window.
    pub slots: usize,
}

impl SlotWindows {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.starts_ns.len()
    }

    /// True when there is no window.
    pub fn is_empty(&self) -> bool {
        self.starts_ns.is_empty()
    }

    /// The `slots × 4` values of window `i`.
    pub fn window(&self, i: usize) -> Option<&[f32]> {
        let w = self.slots * SLOT_FEATURES;
        self.values.get(i * w..(i + 1) * w)
    }
}

/// Cut `packets` into slotted windows starting at the first packet. Packets of unknown direction
/// are left out of the counts (they are neither sent nor received by the device).
pub fn slot_windows(packets: &[Packet], cfg: &SlotConfig) -> SlotWindows {
    let mut out = SlotWindows {
        slots: cfg.slots,
        ..SlotWindows::default()
    };
    let (Some(first), Some(last)) = (packets.first(), packets.last()) else {
        return out;
    };
    // NaN and non-positive lengths give no window.
    if cfg.slots == 0 || cfg.window_s.is_nan() || cfg.window_s <= 0.0 {
        return out;
    }
    let window_ns = (cfg.window_s * 1e9).round().max(1.0) as i64;
    let stride_ns = cfg
        .stride_s
        .map_or(window_ns, |s| (s * 1e9).round().max(1.0) as i64);
    let slot_ns = (window_ns as f64 / cfg.slots as f64).max(1.0);
    let t0 = first.t_ns;
    let mut begin = 0usize;
    let mut k = 0i64;
    while let Some(start) = k.checked_mul(stride_ns).and_then(|o| t0.checked_add(o)) {
        if start > last.t_ns {
            break;
        }
        let end = start.saturating_add(window_ns);
        while begin < packets.len() && packets[begin].t_ns < start {
            begin += 1;
        }
        let stop = begin + packets[begin..].partition_point(|p| p.t_ns < end);
        k += 1;
        if cfg.skip_empty && stop == begin {
            // Jump straight to the window holding the next packet instead of walking idle hours.
            // The first window that ends after the next packet: start + window > t_next.
            if let Some(next) = packets.get(stop) {
                let d = next.t_ns - t0 - window_ns;
                if d >= 0 {
                    k = k.max(d / stride_ns + 1);
                }
            }
            continue;
        }
        let base = out.values.len();
        out.values.resize(base + cfg.slots * SLOT_FEATURES, 0.0);
        for p in &packets[begin..stop] {
            let slot = (((p.t_ns - start) as f64 / slot_ns) as usize).min(cfg.slots - 1);
            let at = base + slot * SLOT_FEATURES;
            let off = match p.dir {
                Direction::Inbound => 0,
                Direction::Outbound => 2,
                Direction::Unknown => continue,
            };
            out.values[at + off] += 1.0;
            out.values[at + off + 1] += p.frame_len as f32;
        }
        let silence = match begin.checked_sub(1).and_then(|i| packets.get(i)) {
            Some(prev) => (start - prev.t_ns) as f64 * 1e-9,
            None => 0.0,
        };
        out.silence_before_s.push(silence as f32);
        out.starts_ns.push(start);
        out.packets.push(begin..stop);
    }
    out
}

/// A run of packets with no gap longer than the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Burst {
    /// First packet time, ns.
    pub start_ns: i64,
    /// Last packet time, ns.
    pub end_ns: i64,
    /// The packets.
    pub packets: Range<usize>,
    /// Packets and frame bytes received by the device.
    pub in_packets: u64,
    /// Frame bytes received by the device.
    pub in_bytes: u64,
    /// Packets sent by the device.
    pub out_packets: u64,
    /// Frame bytes sent by the device.
    pub out_bytes: u64,
}

/// Split `packets` wherever two consecutive packets are more than `gap_s` seconds apart.
pub fn bursts(packets: &[Packet], gap_s: f64) -> Vec<Burst> {
    let gap_ns = (gap_s * 1e9).max(0.0) as i64;
    let mut out: Vec<Burst> = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let extend = out.last().is_some_and(|b| p.t_ns - b.end_ns <= gap_ns);
        if !extend {
            out.push(Burst {
                start_ns: p.t_ns,
                end_ns: p.t_ns,
                packets: i..i,
                in_packets: 0,
                in_bytes: 0,
                out_packets: 0,
                out_bytes: 0,
            });
        }
        let Some(b) = out.last_mut() else {
            unreachable!("bug: a burst was just pushed")
        };
        b.end_ns = p.t_ns;
        b.packets.end = i + 1;
        match p.dir {
            Direction::Inbound => {
                b.in_packets += 1;
                b.in_bytes += u64::from(p.frame_len);
            }
            Direction::Outbound => {
                b.out_packets += 1;
                b.out_bytes += u64::from(p.frame_len);
            }
            Direction::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets from `(ms, direction, bytes)`.
    fn pkts(spec: &[(i64, Direction, u32)]) -> Vec<Packet> {
        spec.iter()
            .map(|&(ms, dir, len)| Packet {
                t_ns: ms * 1_000_000,
                dir,
                frame_len: len,
                ..Packet::default()
            })
            .collect()
    }

    const OUT: Direction = Direction::Outbound;
    const IN: Direction = Direction::Inbound;

    #[test]
    fn count_windows_drop_the_remainder() {
        assert_eq!(count_windows(7, 3, 3).collect::<Vec<_>>(), [0..3, 3..6]);
        assert_eq!(
            count_windows(7, 3, 2).collect::<Vec<_>>(),
            [0..3, 2..5, 4..7]
        );
        assert_eq!(count_windows(2, 3, 1).count(), 0);
        assert_eq!(count_windows(5, 0, 1).count(), 0);
    }

    #[test]
    fn ipet_slots_by_hand() {
        // 4 s windows of 40 × 100 ms slots. Window 0 starts at 1000 ms.
        let p = pkts(&[
            (1000, OUT, 100),
            (1050, IN, 60),
            (1150, OUT, 200),
            (4999, IN, 1500),
            (9500, OUT, 80),
        ]);
        let w = slot_windows(&p, &SlotConfig::default());
        // Windows [1000,5000) and [9000,13000); the empty one in between is skipped.
        assert_eq!(w.starts_ns, [1_000_000_000, 9_000_000_000]);
        assert_eq!(w.packets, [0..4, 4..5]);
        let w0 = w.window(0).unwrap();
        assert_eq!(&w0[0..4], &[1.0, 60.0, 1.0, 100.0]); // slot 0: in 1/60, out 1/100
        assert_eq!(&w0[4..8], &[0.0, 0.0, 1.0, 200.0]); // slot 1
        assert_eq!(&w0[39 * 4..40 * 4], &[1.0, 1500.0, 0.0, 0.0]); // slot 39 (4999 ms)
        assert_eq!(w0.iter().sum::<f32>(), 4.0 + 1860.0);
        let w1 = w.window(1).unwrap();
        assert_eq!(&w1[5 * 4..6 * 4], &[0.0, 0.0, 1.0, 80.0]); // 9500 ms is slot 5 of [9000, ...)
        assert_eq!(w.silence_before_s, [0.0, 9.0 - 4.999]);
    }

    #[test]
    fn empty_windows_kept_on_request() {
        let p = pkts(&[(0, OUT, 1), (9000, OUT, 1)]);
        let cfg = SlotConfig {
            skip_empty: false,
            ..SlotConfig::default()
        };
        let w = slot_windows(&p, &cfg);
        assert_eq!(w.len(), 3);
        assert_eq!(w.packets, [0..1, 1..1, 1..2]);
    }

    #[test]
    fn overlapping_stride() {
        let p = pkts(&[(0, OUT, 10), (3000, IN, 20), (5000, OUT, 30)]);
        let cfg = SlotConfig {
            stride_s: Some(2.0),
            ..SlotConfig::default()
        };
        let w = slot_windows(&p, &cfg);
        assert_eq!(w.packets, [0..2, 1..3, 2..3]);
    }

    #[test]
    fn bursts_split_on_gaps() {
        let p = pkts(&[
            (0, OUT, 10),
            (500, IN, 20),
            (3000, OUT, 30),
            (3100, Direction::Unknown, 5),
        ]);
        let b = bursts(&p, 1.0);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].packets.clone(), b[0].out_bytes, b[0].in_bytes),
            (0..2, 10, 20)
        );
        assert_eq!(
            (b[1].start_ns, b[1].end_ns, b[1].out_packets),
            (3_000_000_000, 3_100_000_000, 1)
        );
        assert!(bursts(&[], 1.0).is_empty());
    }

    proptest::proptest! {
        /// Skipping idle windows by jumping gives exactly the non-empty windows of a full walk.
        #[test]
        fn skipping_matches_the_full_walk(
            mut times_ms in proptest::collection::vec(0i64..60_000, 1..60),
            window_ms in 100i64..5000,
            stride_ms in 50i64..6000,
        ) {
            times_ms.sort();
            let p: Vec<Packet> = times_ms.iter().map(|&t| Packet { t_ns: t * 1_000_000, dir: OUT, frame_len: 1, ..Packet::default() }).collect();
            let cfg = SlotConfig { window_s: window_ms as f64 / 1e3, slots: 10, stride_s: Some(stride_ms as f64 / 1e3), skip_empty: true };
            let skipped = slot_windows(&p, &cfg);
            let full = slot_windows(&p, &SlotConfig { skip_empty: false, ..cfg });
            let keep: Vec<usize> = (0..full.len()).filter(|&i| !full.packets[i].is_empty()).collect();
            proptest::prop_assert_eq!(skipped.len(), keep.len());
            for (j, &i) in keep.iter().enumerate() {
                proptest::prop_assert_eq!(skipped.starts_ns[j], full.starts_ns[i]);
                proptest::prop_assert_eq!(skipped.window(j), full.window(i));
                proptest::prop_assert_eq!(skipped.silence_before_s[j], full.silence_before_s[i]);
            }
        }
    }
}
