//! The simulator: hush-shape's engine on a virtual clock over a recorded trace.
//!
//! Each direction of the device's traffic runs through its own engine, exactly as it would live:
//! the device's shaper carries outbound packets, the gateway's shaper inbound ones. Every packet
//! with a transport payload becomes a message at its capture time; the engine decides when and
//! in what records it leaves; a receiver on the far side reassembles and checks every message.
//! The engines use unencrypted simulation sessions, whose records have exactly the sizes of
//! encrypted ones.
//!
//! The network model is one link between the device and the gateway with a one-way delay and,
//! optionally, a bottleneck rate per direction. The observer (the eavesdropper, and the
//! defended trace) sits at the device end of the link, where the original capture was taken:
//! it sees outbound records as they start onto the link and inbound ones as they arrive. Inbound
//! data is handed to the gateway's engine one delay before its capture time, so that with no
//! defense every packet is seen when it was captured.

use std::collections::VecDeque;

use hush_shape::{Engine, Instant, RecordKind, Session, ShapeConfig, ShaperStats};
use hush_trace::Direction;
use serde::{Deserialize, Serialize};

use crate::DefenseError;

/// Bytes below a record on the wire: Ethernet (14), IPv4 (20) and TCP with timestamps (32).
pub const DEFAULT_HEADER_BYTES: u32 = 66;

/// The link between the device and the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkModel {
    /// One-way delay between the device end and the gateway, seconds.
    #[serde(default)]
    pub one_way_delay_s: f64,
    /// Uplink (device to gateway) rate, bytes per second; `None` for no bottleneck.
    #[serde(default)]
    pub uplink_bps: Option<f64>,
    /// Downlink rate, bytes per second; `None` for no bottleneck.
    #[serde(default)]
    pub downlink_bps: Option<f64>,
    /// Bytes of lower-layer headers added to each record to give its frame size.
    #[serde(default = "default_header_bytes")]
    pub header_bytes: u32,
}

fn default_header_bytes() -> u32 {
    DEFAULT_HEADER_BYTES
}

impl Default for NetworkModel {
    fn default() -> Self {
        NetworkModel {
            one_way_delay_s: 0.0,
            uplink_bps: None,
            downlink_bps: None,
            header_bytes: DEFAULT_HEADER_BYTES,
        }
    }
}

impl NetworkModel {
    /// Check the parameters.
    pub fn validate(&self) -> Result<(), DefenseError> {
        if !(self.one_way_delay_s.is_finite() && (0.0..=60.0).contains(&self.one_way_delay_s)) {
            return Err(DefenseError::Param(format!(
                "one-way delay must be 0 to 60 s, not {}",
                self.one_way_delay_s
            )));
        }
        for r in [self.uplink_bps, self.downlink_bps].into_iter().flatten() {
            if !(r.is_finite() && r >= 1.0) {
                return Err(DefenseError::Param(format!(
                    "a bottleneck rate must be at least 1 B/s, not {r}"
                )));
            }
        }
        Ok(())
    }

    fn rate(&self, dir: Direction) -> Option<f64> {
        match dir {
            Direction::Outbound => self.uplink_bps,
            _ => self.downlink_bps,
        }
    }
}

/// What a packet of the defended trace carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireKind {
    /// An original packet, unchanged (the `none` defense, and traffic a defense leaves alone).
    Original,
    /// A record with real data (and perhaps padding).
    Data,
    /// A record with no real data.
    Cover,
}

/// One packet of a defended trace, as the observer at the device end sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePacket {
    /// Nanoseconds since the start of the original trace.
    pub t_ns: i64,
    /// Outbound (from the device) or inbound.
    pub dir: Direction,
    /// Frame size on the wire (record plus lower-layer headers, or the original frame).
    pub frame_bytes: u32,
    /// Transport payload: the record, or the original packet's payload.
    pub payload_bytes: u32,
    /// What it carries.
    pub kind: WireKind,
    /// Application bytes of the original traffic inside.
    pub real_bytes: u32,
    /// Padding bytes inside a data record.
    pub padding_bytes: u32,
    /// Framing bytes of a data record (length prefix, header, tag, length varints).
    pub framing_bytes: u32,
}

/// A message of the original traffic: time since the trace start and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// Capture time, nanoseconds since the trace start.
    pub t_ns: i64,
    /// Payload length.
    pub len_bytes: u32,
}

/// The result of one direction.
#[derive(Debug)]
pub struct DirectionRun {
    /// Wire packets in time order.
    pub packets: Vec<WirePacket>,
    /// The shaper's accounts.
    pub stats: ShaperStats,
    /// Per message: how much later than its capture time its last byte was seen, nanoseconds.
    pub delays_ns: Vec<i64>,
}

/// When a direction's engine starts and when it is told to close, in trace time (nanoseconds
/// since the trace start, at the device end of the link).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The engine (and its schedule) starts here.
    pub start_ns: i64,
    /// `close()` is called here (or after the last message, if later); records continue until
    /// the queue drains and the close rule allows the last one.
    pub close_ns: i64,
    /// Whether a close record without data appears in the output. A tunnel that runs on past
    /// the end of the trace never sends it; a defense with a defined end (BuFLO, Tamaraw) does.
    pub emit_close: bool,
}

/// Run `messages` (sorted by time) through an engine shaped by `config` over `span`.
pub fn run_direction(
    dir: Direction,
    messages: &[Message],
    config: &ShapeConfig,
    seed: u64,
    net: &NetworkModel,
    span: Span,
) -> Result<DirectionRun, DefenseError> {
    let mut config = config.clone();
    // A simulation never refuses or blocks data: what would back up on a device shows as delay.
    config.max_queue_bytes = u64::MAX;
    config.max_message_bytes = config.max_message_bytes.max(u64::from(u32::MAX));
    let (a, b) = Session::unencrypted_pair_for_simulation();
    let delay_ns = (net.one_way_delay_s * 1e9).round() as i64;
    // Engine time is trace time plus one delay, so inbound sends (capture time - delay) are >= 0.
    let offset_ns = delay_ns;
    let at = |rel_ns: i64| Instant::from_nanos((rel_ns + offset_ns).max(0) as u64);
    // Inbound data leaves the gateway one delay before the device end sees it.
    let (send_shift_ns, arrive_shift_ns) = match dir {
        Direction::Outbound => (0, 0),
        _ => (-delay_ns, delay_ns),
    };
    let start = at(span.start_ns + send_shift_ns);
    let mut tx = Engine::new(&config, a, seed, start)?;
    let mut rx = Engine::new(&config, b, seed ^ 0x5bd1_e995, start)?;
    let rate = net.rate(dir);
    let mut link_free_ns = i64::MIN;

    let mut packets = Vec::with_capacity(messages.len() + 16);
    let mut delays_ns = Vec::with_capacity(messages.len());
    let mut buf = Vec::new();
    let mut next = 0usize;
    let mut closed = false;
    let close_at = at(span.close_ns.max(messages.last().map_or(0, |m| m.t_ns)) + send_shift_ns);
    let mut received = 0usize;
    // Messages queued in the engine but not completed yet, in order (their capture times).
    let mut in_flight: VecDeque<i64> = VecDeque::new();
    loop {
        let send_at = messages.get(next).map(|m| at(m.t_ns + send_shift_ns));
        let due = tx.poll_timeout();
        let now = match (send_at, due, closed) {
            (Some(s), Some(t), _) => s.min(t),
            (Some(s), None, _) => s,
            (None, Some(t), true) => t,
            (None, Some(t), false) => t.min(close_at),
            (None, None, false) => close_at,
            (None, None, true) => break,
        };
        while let Some(m) = messages.get(next) {
            if at(m.t_ns + send_shift_ns) > now {
                break;
            }
            // The content identifies the message, so the receiver can check order and integrity.
            tx.shaper()
                .send_owned(now, vec![fill_byte(next); m.len_bytes as usize])
                .map_err(|e| DefenseError::Engine(e.to_string()))?;
            in_flight.push_back(m.t_ns);
            next += 1;
        }
        if !closed && next == messages.len() && now >= close_at {
            tx.close();
            closed = true;
        }
        while let Some(t) = tx.poll_transmit(now, &mut buf) {
            let sent_ns = now.as_nanos() as i64 - offset_ns;
            // On the link: arrival at the device end (inbound) or start onto the link (outbound),
            // after whatever is still being serialised ahead of it.
            let mut seen_ns = sent_ns + arrive_shift_ns;
            if let Some(r) = rate {
                seen_ns = seen_ns.max(link_free_ns);
                let frame = f64::from(t.size_bytes + net.header_bytes);
                link_free_ns = seen_ns + (frame / r * 1e9).round() as i64;
            }
            for _ in 0..t.messages_completed {
                let captured = in_flight.pop_front().ok_or_else(|| {
                    DefenseError::Engine("bug: more messages completed than sent".into())
                })?;
                delays_ns.push(seen_ns - captured);
            }
            let kind = match t.kind {
                RecordKind::Data => WireKind::Data,
                RecordKind::Cover => WireKind::Cover,
            };
            let shown = !(t.close && kind == WireKind::Cover && !span.emit_close);
            if shown {
                packets.push(WirePacket {
                    t_ns: seen_ns,
                    dir,
                    frame_bytes: t.size_bytes + net.header_bytes,
                    payload_bytes: t.size_bytes,
                    kind,
                    real_bytes: t.real_bytes,
                    padding_bytes: t.padding_bytes,
                    framing_bytes: t.framing_bytes,
                });
            }
            rx.receive(&buf)
                .map_err(|e| DefenseError::Engine(format!("receiver rejected a record: {e}")))?;
            while let Some(m) = rx.poll_message() {
                let want = messages.get(received).map(|m| m.len_bytes as usize);
                if Some(m.len()) != want || m.first().is_some_and(|&b| b != fill_byte(received)) {
                    return Err(DefenseError::Engine(format!(
                        "bug: message {received} arrived changed"
                    )));
                }
                received += 1;
            }
        }
        if tx.shaper().is_finished() {
            break;
        }
    }
    if received != messages.len() {
        return Err(DefenseError::Engine(format!(
            "bug: {received} of {} messages delivered",
            messages.len()
        )));
    }
    // A bottleneck can reorder nothing, but ties in time keep record order: stable sort.
    packets.sort_by_key(|p| p.t_ns);
    Ok(DirectionRun {
        packets,
        stats: tx.stats().clone(),
        delays_ns,
    })
}

fn fill_byte(i: usize) -> u8 {
    (i % 251) as u8
}
