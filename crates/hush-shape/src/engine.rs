//! The engine: a [`Shaper`] for the outbound direction and a [`Receiver`] for the inbound one.

use std::collections::VecDeque;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::ShapeRng;
use crate::crypto::{Opener, Sealer, Session};
use crate::dist::DistError;
use crate::frame::{
    Flags, HEADER_BYTES, Header, HeaderError, LENGTH_PREFIX_BYTES, MAX_RECORD_BYTES,
    RECORD_OVERHEAD_BYTES, TAG_BYTES, VarintError, read_varint, varint_len, write_varint,
};
use crate::schedule::{Schedule, ScheduleSpec, SlotContext};
use crate::time::Instant;

/// What real data does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Independent link padding: real data waits for the next slot and is padded or fragmented
    /// into it; slots with nothing to carry are cover. The wire depends on the seed alone.
    #[default]
    Pad,
    /// Real data leaves at once in records sized to it; slots only add cover records (the
    /// cover-only defenses, and the `unshaped` schedule).
    Immediate,
}

/// Caps on what shaping may spend.
///
/// `max_bps` delays slots (real and cover alike, so it keeps the wire independent of the data);
/// `max_bytes_per_day` and `cover_probability` drop cover records, which saves bytes at a
/// privacy cost: a dropped slot can only be one that had nothing to carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Wire bytes per second at most, averaged by a token bucket one second (or one largest
    /// record) deep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bps: Option<f64>,
    /// Wire bytes per day (from the engine's start, in 24-hour periods) after which cover stops
    /// for the rest of the period. Real data is never held back by this cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_day: Option<u64>,
    /// Metered mode: each cover record is sent with this probability (1 sends all).
    #[serde(default = "one")]
    pub cover_probability: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_bps: None,
            max_bytes_per_day: None,
            cover_probability: 1.0,
        }
    }
}

/// Everything that configures one direction's shaping (TOML `[shape]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeConfig {
    /// When records leave and how big they are.
    pub schedule: ScheduleSpec,
    /// What real data does.
    #[serde(default)]
    pub policy: Policy,
    /// Caps on bandwidth.
    #[serde(default)]
    pub budget: Budget,
    /// Real bytes that may wait before [`Shaper::send`] pushes back with
    /// [`SendError::QueueFull`].
    #[serde(default = "default_max_queue_bytes")]
    pub max_queue_bytes: u64,
    /// The largest message either end accepts.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// How records sized by the `immediate` policy are padded.
    #[serde(default, skip_serializing_if = "Padding::is_none")]
    pub pad: Padding,
    /// When the last record may leave after [`Shaper::close`].
    #[serde(default, skip_serializing_if = "CloseRule::is_default")]
    pub close: CloseRule,
}

/// Padding of the records that the `immediate` policy sizes to their data (the size-only
/// defenses; `pad` slots are sized by the schedule).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Padding {
    /// Records fit their data.
    #[default]
    None,
    /// Every record is exactly `size_bytes` (pad to the MTU); more data takes more records.
    ToSize {
        /// Record size on the wire.
        size_bytes: u32,
    },
    /// Records round up to the next power of two (at least 32, at most 65,536 bytes).
    PowerOfTwo,
    /// Each record gains 0 to `max_extra_bytes` of padding, uniformly at random.
    Random {
        /// The most padding a record gets.
        max_extra_bytes: u32,
    },
}

impl Padding {
    fn is_none(&self) -> bool {
        *self == Padding::None
    }
}

/// Conditions for the close record (BuFLO's minimum duration, Tamaraw's multiple of L): until
/// both hold, a closing shaper keeps sending cover in its slots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRule {
    /// Not before this many seconds after the start.
    #[serde(default)]
    pub min_duration_s: f64,
    /// Only when the number of records sent (the close record included) is a multiple of this
    /// (0 or 1: any number).
    #[serde(default)]
    pub records_multiple_of: u64,
}

impl CloseRule {
    fn is_default(&self) -> bool {
        *self == CloseRule::default()
    }
}

fn default_max_queue_bytes() -> u64 {
    16 << 20
}

fn default_max_message_bytes() -> u64 {
    16 << 20
}

impl ShapeConfig {
    /// A config with this schedule and defaults elsewhere (the `pad` policy, except `immediate`
    /// for the `unshaped` schedule).
    pub fn new(schedule: ScheduleSpec) -> ShapeConfig {
        let policy = if matches!(
            schedule,
            ScheduleSpec::Unshaped | ScheduleSpec::Front { .. }
        ) {
            Policy::Immediate
        } else {
            Policy::Pad
        };
        ShapeConfig {
            schedule,
            policy,
            budget: Budget::default(),
            max_queue_bytes: default_max_queue_bytes(),
            max_message_bytes: default_max_message_bytes(),
            pad: Padding::None,
            close: CloseRule::default(),
        }
    }

    /// Check that the pieces fit together (the schedule's own parameters are checked by
    /// [`ScheduleSpec::build`]).
    pub fn validate(&self) -> Result<(), DistError> {
        if matches!(self.schedule, ScheduleSpec::Front { .. }) && self.policy == Policy::Pad {
            return Err(DistError(
                "FRONT's cover ends after its burst, so padded data would have no slots: use policy = \"immediate\"".into(),
            ));
        }
        if self.schedule == ScheduleSpec::Unshaped && self.policy == Policy::Pad {
            return Err(DistError(
                "the unshaped schedule has no slots for padded data to wait for: use policy = \"immediate\"".into(),
            ));
        }
        if let Some(bps) = self.budget.max_bps {
            if !(bps.is_finite() && bps >= 1.0) {
                return Err(DistError(format!(
                    "budget.max_bps must be at least 1, not {bps}"
                )));
            }
        }
        let p = self.budget.cover_probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(DistError(format!(
                "budget.cover_probability must be in [0, 1], not {p}"
            )));
        }
        if self.max_message_bytes == 0 || self.max_queue_bytes == 0 {
            return Err(DistError(
                "max_message_bytes and max_queue_bytes must be positive".into(),
            ));
        }
        if let Padding::ToSize { size_bytes } = self.pad {
            if !(crate::frame::MIN_RECORD_BYTES..=MAX_RECORD_BYTES).contains(&size_bytes) {
                return Err(DistError(format!(
                    "pad.size_bytes {size_bytes} must be between {} and {MAX_RECORD_BYTES}",
                    crate::frame::MIN_RECORD_BYTES
                )));
            }
        }
        let c = &self.close;
        if !(c.min_duration_s.is_finite() && c.min_duration_s >= 0.0) {
            return Err(DistError(format!(
                "close.min_duration_s must be non-negative, not {}",
                c.min_duration_s
            )));
        }
        if self.schedule == ScheduleSpec::Unshaped
            && (c.min_duration_s > 0.0 || c.records_multiple_of > 1)
        {
            return Err(DistError(
                "a close rule needs a schedule with slots to keep sending cover".into(),
            ));
        }
        Ok(())
    }
}

/// Why [`Shaper::send`] did not accept a message. Nothing was queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// [`Shaper::close`] was called.
    #[error("the shaper is closed")]
    Closed,
    /// Larger than `max_message_bytes`.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The message.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The queue is full: send again after records have drained it.
    #[error("queue full: {queued} bytes waiting, limit {max}")]
    QueueFull {
        /// Bytes waiting.
        queued: u64,
        /// The limit.
        max: u64,
    },
}

/// What a record carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// Some message data (possibly with padding).
    Data,
    /// No message data: cover traffic (or the bare close record).
    Cover,
}

/// A record that [`Shaper::poll_transmit`] wrote to the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// When the schedule wanted it to leave (the driver's `now` may be later).
    pub scheduled_at: Instant,
    /// Bytes in the buffer, all of them for the wire.
    pub size_bytes: u32,
    /// Data or cover.
    pub kind: RecordKind,
    /// Application bytes carried.
    pub real_bytes: u32,
    /// Zero bytes filling a data record.
    pub padding_bytes: u32,
    /// Length prefix, header, tag and message-length varints (data records only; a cover
    /// record's bytes all count as cover).
    pub framing_bytes: u32,
    /// Messages whose last byte is in this record.
    pub messages_completed: u32,
    /// This is the shaper's last record.
    pub close: bool,
}

/// A message that has left completely (see [`Shaper::track_messages`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The id [`Shaper::send`] returned.
    pub id: u64,
    /// Its length.
    pub len_bytes: u64,
    /// When it was accepted.
    pub enqueued_at: Instant,
    /// When its last byte left (the `now` of that record's `poll_transmit`).
    pub sent_at: Instant,
}

impl SentMessage {
    /// Time it waited in the shaper.
    pub fn delay(&self) -> Duration {
        self.sent_at - self.enqueued_at
    }
}

/// Exact accounting of one direction, as the shaper wrote it. For every record
/// `size = real + padding + framing` (data) or `size = cover` (cover), so
/// `wire_bytes = real_bytes + padding_bytes + framing_bytes + cover_bytes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ShaperStats {
    /// Records written.
    pub records: u64,
    /// Records carrying message data.
    pub data_records: u64,
    /// Records with no message data.
    pub cover_records: u64,
    /// Every byte written.
    pub wire_bytes: u64,
    /// Application bytes.
    pub real_bytes: u64,
    /// Zero padding inside data records.
    pub padding_bytes: u64,
    /// Bytes of cover records.
    pub cover_bytes: u64,
    /// Prefix, header, tag and varints of data records.
    pub framing_bytes: u64,
    /// Messages accepted by `send`.
    pub messages_accepted: u64,
    /// Messages whose last byte has left.
    pub messages_sent: u64,
    /// Sum of the queueing delays of sent messages, nanoseconds.
    pub delay_sum_ns: u64,
    /// Largest queueing delay, nanoseconds.
    pub delay_max_ns: u64,
    /// Cover slots the budget dropped.
    pub cover_slots_skipped: u64,
    /// Largest `now - scheduled_at` over records: how late the driver was.
    pub late_max_ns: u64,
}

impl ShaperStats {
    /// Mean queueing delay of sent messages, seconds.
    pub fn mean_delay_s(&self) -> f64 {
        if self.messages_sent == 0 {
            0.0
        } else {
            self.delay_sum_ns as f64 * 1e-9 / self.messages_sent as f64
        }
    }

    /// Bytes on the wire that are not application data.
    pub fn overhead_bytes(&self) -> u64 {
        self.wire_bytes - self.real_bytes
    }
}

#[derive(Debug)]
struct Queued {
    id: u64,
    data: Vec<u8>,
    /// Payload bytes already sent.
    offset: usize,
    /// Bytes of the length varint already sent (it may span records, so that even the
    /// smallest records can carry any message).
    prefix_sent: usize,
    enqueued_at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct NextSlot {
    at: Instant,
    size_bytes: u32,
}

#[derive(Debug)]
struct TokenBucket {
    rate_bps: f64,
    depth_bytes: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn tokens_at(&self, t: Instant) -> f64 {
        (self.tokens + (t - self.at).as_secs_f64() * self.rate_bps).min(self.depth_bytes)
    }

    /// The earliest time at or after `t` when `size` bytes may leave.
    fn ready_at(&self, t: Instant, size: u32) -> Instant {
        let t = t.max(self.at);
        let deficit = f64::from(size) - self.tokens_at(t);
        if deficit <= 0.0 {
            t
        } else {
            t + Duration::from_secs_f64(deficit / self.rate_bps)
        }
    }

    fn spend(&mut self, t: Instant, size: u32) {
        let t = t.max(self.at);
        self.tokens = self.tokens_at(t) - f64::from(size);
        self.at = t;
    }
}

/// What seeds a shaper's random draws: a `u64` to reproduce a run (simulation, tests,
/// `--insecure-seed`), or 256 bits from a CSPRNG for a live session. The caller supplies it:
/// hush-shape reads no entropy source. `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum ScheduleSeed {
    /// A reproducible seed (expanded as every earlier version of hush did).
    U64(u64),
    /// 256 secret bits (zeroed on drop).
    Bytes(zeroize::Zeroizing<[u8; 32]>),
}

impl From<u64> for ScheduleSeed {
    fn from(seed: u64) -> Self {
        ScheduleSeed::U64(seed)
    }
}

impl From<[u8; 32]> for ScheduleSeed {
    fn from(bytes: [u8; 32]) -> Self {
        ScheduleSeed::Bytes(zeroize::Zeroizing::new(bytes))
    }
}

impl std::fmt::Debug for ScheduleSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleSeed::U64(s) => write!(f, "ScheduleSeed::U64({s})"),
            ScheduleSeed::Bytes(_) => f.write_str("ScheduleSeed::Bytes(..)"),
        }
    }
}

/// The outbound half: queues messages, emits records when the schedule allows.
///
/// Driver contract (MUST): after [`Shaper::send`] or when [`Shaper::poll_timeout`] is reached,
/// call [`Shaper::poll_transmit`] until it returns `None`, writing each record's bytes to the
/// transport in order; then wait until the new `poll_timeout`. Records must be written whole and
/// in order; the engine never reorders them and the receiver rejects any that are not.
#[derive(Debug)]
pub struct Shaper {
    schedule: Box<dyn Schedule>,
    policy: Policy,
    budget: Budget,
    bucket: Option<TokenBucket>,
    start: Instant,
    day_start: Instant,
    pad: Padding,
    close_rule: CloseRule,
    /// Padding for the next immediate record under `Padding::Random`, drawn ahead so that
    /// `poll_timeout` and `poll_transmit` agree on its size.
    next_extra: u32,
    bytes_today: u64,
    max_queue_bytes: u64,
    max_message_bytes: u64,
    sched_rng: ShapeRng,
    policy_rng: ShapeRng,
    next: Option<NextSlot>,
    queue: VecDeque<Queued>,
    queue_bytes: u64,
    next_id: u64,
    closing: bool,
    close_sent: bool,
    last_now: Instant,
    sealer: Sealer,
    stats: ShaperStats,
    sent_log: Option<VecDeque<SentMessage>>,
    plain: Vec<u8>,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Shaper {
    /// A shaper that starts at `now`. `seed` decides every schedule draw: the same seed gives the
    /// same record sizes and times, whatever the application sends (except for the `adaptive`
    /// schedule, which reads the queue, and budget drops of cover). A `u64` is for simulation and
    /// reproduction; a live session passes 256 bits from the OS ([`ScheduleSeed::Bytes`]).
    pub fn new(
        config: &ShapeConfig,
        sealer: Sealer,
        seed: impl Into<ScheduleSeed>,
        now: Instant,
    ) -> Result<Shaper, DistError> {
        config.validate()?;
        let schedule = config.schedule.build()?;
        // Two streams from one seed: schedule draws never depend on data, policy draws do.
        let (sched_rng, policy_rng) = match seed.into() {
            ScheduleSeed::U64(seed) => {
                let mut seeder = ShapeRng::seed_from_u64(seed);
                let sched = ShapeRng::seed_from_u64(seeder.random());
                (sched, ShapeRng::seed_from_u64(seeder.random()))
            }
            ScheduleSeed::Bytes(bytes) => {
                // Keep all 256 bits in each stream's state (xoshiro256++ holds exactly 256).
                let mut seeder = ShapeRng::from_seed(*bytes);
                let sched = ShapeRng::from_seed(seeder.random());
                (sched, ShapeRng::from_seed(seeder.random()))
            }
        };
        let bucket = config.budget.max_bps.map(|rate_bps| {
            let depth_bytes = rate_bps.max(f64::from(MAX_RECORD_BYTES));
            TokenBucket {
                rate_bps,
                depth_bytes,
                tokens: depth_bytes,
                at: now,
            }
        });
        let mut shaper = Shaper {
            schedule,
            policy: config.policy,
            budget: config.budget.clone(),
            bucket,
            start: now,
            day_start: now,
            pad: config.pad.clone(),
            close_rule: config.close.clone(),
            next_extra: 0,
            bytes_today: 0,
            max_queue_bytes: config.max_queue_bytes,
            max_message_bytes: config.max_message_bytes,
            sched_rng,
            policy_rng,
            next: None,
            queue: VecDeque::new(),
            queue_bytes: 0,
            next_id: 0,
            closing: false,
            close_sent: false,
            last_now: now,
            sealer,
            stats: ShaperStats::default(),
            sent_log: None,
            plain: Vec::new(),
        };
        shaper.draw_extra();
        shaper.advance(now);
        Ok(shaper)
    }

    /// Keep a [`SentMessage`] for every message that leaves, for [`Shaper::poll_sent`]
    /// (the simulator uses this for per-message delays; live drivers usually do not).
    pub fn track_messages(&mut self, on: bool) {
        self.sent_log = on.then(VecDeque::new);
    }

    /// Queue a message. Returns its id. Empty messages are messages too and arrive as such.
    pub fn send(&mut self, now: Instant, message: &[u8]) -> Result<u64, SendError> {
        self.check_send(message.len())?;
        self.push(now, message.to_vec())
    }

    /// [`Shaper::send`] without a copy.
    pub fn send_owned(&mut self, now: Instant, message: Vec<u8>) -> Result<u64, SendError> {
        self.check_send(message.len())?;
        self.push(now, message)
    }

    /// Whether [`Shaper::send`] would accept a message of `len` bytes now.
    pub fn check_send(&self, len: usize) -> Result<(), SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        let len = len as u64;
        if len > self.max_message_bytes {
            return Err(SendError::TooLarge {
                len,
                max: self.max_message_bytes,
            });
        }
        if !self.queue.is_empty() && self.queue_bytes + len > self.max_queue_bytes {
            return Err(SendError::QueueFull {
                queued: self.queue_bytes,
                max: self.max_queue_bytes,
            });
        }
        Ok(())
    }

    fn push(&mut self, now: Instant, message: Vec<u8>) -> Result<u64, SendError> {
        let len = message.len() as u64;
        self.last_now = self.last_now.max(now);
        let id = self.next_id;
        self.next_id += 1;
        self.queue_bytes += len;
        self.stats.messages_accepted += 1;
        self.queue.push_back(Queued {
            id,
            data: message,
            offset: 0,
            prefix_sent: 0,
            enqueued_at: now,
        });
        Ok(id)
    }

    /// Stop accepting messages. Everything already accepted still leaves on schedule, then a
    /// final record marked close; after it [`Shaper::is_finished`] is true.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Whether [`Shaper::close`] has been called (no more messages are accepted).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Whether the close record has been written.
    pub fn is_finished(&self) -> bool {
        self.close_sent
    }

    /// Real bytes waiting.
    pub fn queued_bytes(&self) -> u64 {
        self.queue_bytes
    }

    /// Messages waiting (including one partly sent).
    pub fn queued_messages(&self) -> usize {
        self.queue.len()
    }

    /// The accounts so far.
    pub fn stats(&self) -> &ShaperStats {
        &self.stats
    }

    /// The next fully sent message, if tracking is on.
    pub fn poll_sent(&mut self) -> Option<SentMessage> {
        self.sent_log.as_mut()?.pop_front()
    }

    /// The schedule's long-run wire rate when every slot is used, if known.
    pub fn expected_bps(&self) -> Option<f64> {
        self.schedule.expected_bps()
    }

    fn immediate_pending(&self) -> bool {
        self.policy == Policy::Immediate
            && (!self.queue.is_empty()
                || (self.closing && self.close_allowed(self.last_now, self.stats.records)))
    }

    /// Whether a close record may leave at `at` as record number `records` (from 0).
    fn close_allowed(&self, at: Instant, records: u64) -> bool {
        let r = &self.close_rule;
        (at - self.start).as_secs_f64() >= r.min_duration_s
            && (r.records_multiple_of <= 1 || (records + 1) % r.records_multiple_of == 0)
    }

    fn draw_extra(&mut self) {
        if let Padding::Random { max_extra_bytes } = self.pad {
            self.next_extra = self.policy_rng.random_range(0..=max_extra_bytes);
        }
    }

    /// When [`Shaper::poll_transmit`] next has something to do; `None` once finished or when
    /// nothing can happen until the application sends.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.close_sent {
            return None;
        }
        let ready = |at: Instant, size: u32| match &self.bucket {
            Some(b) => b.ready_at(at, size),
            None => at,
        };
        if self.immediate_pending() {
            return Some(ready(self.last_now, self.immediate_size()));
        }
        self.next.map(|s| ready(s.at, s.size_bytes))
    }

    /// Write the next record due at `now` into `buf` (replacing its contents), or return `None`
    /// if nothing is due. A driver that was late gets the missed slots one call at a time.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.last_now = self.last_now.max(now);
        loop {
            if self.close_sent {
                return None;
            }
            if self.immediate_pending() {
                let size = self.immediate_size();
                let ready = self.bucket.as_ref().map_or(now, |b| b.ready_at(now, size));
                if ready > now {
                    return None;
                }
                let t = self.emit(now, now, size, buf);
                self.draw_extra();
                return Some(t);
            }
            let slot = self.next?;
            let ready = self
                .bucket
                .as_ref()
                .map_or(slot.at, |b| b.ready_at(slot.at, slot.size_bytes));
            if ready > now {
                return None;
            }
            let has_data = self.policy == Policy::Pad && (!self.queue.is_empty() || self.closing);
            if !has_data && !self.cover_allowed(ready, slot.size_bytes) {
                self.stats.cover_slots_skipped += 1;
                self.advance(ready);
                continue;
            }
            let t = self.emit(now, ready, slot.size_bytes, buf);
            self.advance(ready);
            return Some(t);
        }
    }

    /// Draw the slot after one at `at`.
    fn advance(&mut self, at: Instant) {
        let ctx = SlotContext {
            now: at,
            queue_bytes: self.queue_bytes,
        };
        self.next = self
            .schedule
            .next_slot(ctx, &mut self.sched_rng)
            .map(|s| NextSlot {
                at: at + s.gap,
                size_bytes: s
                    .size_bytes
                    .clamp(crate::frame::MIN_RECORD_BYTES, MAX_RECORD_BYTES),
            });
    }

    fn cover_allowed(&mut self, at: Instant, size: u32) -> bool {
        if let Some(cap) = self.budget.max_bytes_per_day {
            self.roll_day(at);
            if self.bytes_today + u64::from(size) > cap {
                return false;
            }
        }
        let p = self.budget.cover_probability;
        p >= 1.0 || self.policy_rng.random::<f64>() < p
    }

    fn roll_day(&mut self, at: Instant) {
        while at - self.day_start >= DAY {
            self.day_start += DAY;
            self.bytes_today = 0;
        }
    }

    /// The record size for immediate data: what carries everything queued (up to the largest
    /// record), padded as configured.
    fn immediate_size(&self) -> u32 {
        let mut need = RECORD_OVERHEAD_BYTES as u64;
        for q in &self.queue {
            need += (varint_len(q.data.len() as u64) - q.prefix_sent) as u64;
            need += (q.data.len() - q.offset) as u64;
            if need >= u64::from(MAX_RECORD_BYTES) {
                break;
            }
        }
        let need = need.min(u64::from(MAX_RECORD_BYTES)) as u32;
        match self.pad {
            Padding::None => need,
            Padding::ToSize { size_bytes } => size_bytes,
            Padding::PowerOfTwo => need.max(32).next_power_of_two().min(1 << 16),
            Padding::Random { .. } => need.saturating_add(self.next_extra).min(MAX_RECORD_BYTES),
        }
    }

    /// Build, seal and account one record of exactly `size` bytes.
    fn emit(
        &mut self,
        now: Instant,
        scheduled_at: Instant,
        size: u32,
        buf: &mut Vec<u8>,
    ) -> Transmit {
        let capacity = size as usize - RECORD_OVERHEAD_BYTES;
        // Decided before the queue is drained into this record: close if nothing will be left.
        let may_close = self.closing && self.close_allowed(scheduled_at, self.stats.records);
        let plain = &mut self.plain;
        plain.clear();
        plain.resize(HEADER_BYTES, 0);
        let mut flags = Flags::default();
        if self.queue.front().is_some_and(|q| q.prefix_sent > 0) {
            flags.insert(Flags::CONTINUES);
        }
        let mut real = 0usize;
        let mut varints = 0usize;
        let mut completed = 0u32;
        let mut varint = Vec::with_capacity(10);
        while let Some(q) = self.queue.front_mut() {
            let room = capacity - (plain.len() - HEADER_BYTES);
            if room == 0 {
                break;
            }
            let vl = varint_len(q.data.len() as u64);
            if q.prefix_sent < vl {
                varint.clear();
                write_varint(q.data.len() as u64, &mut varint);
                let n = room.min(vl - q.prefix_sent);
                plain.extend_from_slice(&varint[q.prefix_sent..q.prefix_sent + n]);
                q.prefix_sent += n;
                varints += n;
                if q.prefix_sent < vl {
                    break;
                }
            }
            let room = capacity - (plain.len() - HEADER_BYTES);
            let take = room.min(q.data.len() - q.offset);
            plain.extend_from_slice(&q.data[q.offset..q.offset + take]);
            q.offset += take;
            real += take;
            if q.offset < q.data.len() {
                break;
            }
            completed += 1;
            let q = self.queue.pop_front().expect("front exists");
            self.stats.messages_sent += 1;
            let delay = u64::try_from((now - q.enqueued_at).as_nanos()).unwrap_or(u64::MAX);
            self.stats.delay_sum_ns = self.stats.delay_sum_ns.saturating_add(delay);
            self.stats.delay_max_ns = self.stats.delay_max_ns.max(delay);
            if let Some(log) = &mut self.sent_log {
                log.push_back(SentMessage {
                    id: q.id,
                    len_bytes: q.data.len() as u64,
                    enqueued_at: q.enqueued_at,
                    sent_at: now,
                });
            }
        }
        self.queue_bytes -= real as u64;
        let data_len = plain.len() - HEADER_BYTES;
        if self.queue.front().is_some_and(|q| q.prefix_sent > 0) {
            flags.insert(Flags::MORE);
        }
        if data_len == 0 {
            flags.insert(Flags::COVER);
        }
        let close = may_close && self.queue.is_empty();
        if close {
            flags.insert(Flags::CLOSE);
            self.close_sent = true;
        }
        // data_len ≤ capacity ≤ 65,535 - 20.
        Header {
            flags,
            data_len: data_len as u16,
        }
        .write(&mut plain[..HEADER_BYTES]);
        plain.resize(size as usize - LENGTH_PREFIX_BYTES - TAG_BYTES, 0);
        buf.clear();
        let sealed_len = size as usize - LENGTH_PREFIX_BYTES;
        buf.extend_from_slice(&(sealed_len as u16).to_be_bytes());
        self.sealer.seal_append(plain, buf);

        let s = &mut self.stats;
        s.records += 1;
        s.wire_bytes += u64::from(size);
        s.late_max_ns = s
            .late_max_ns
            .max(u64::try_from((now - scheduled_at).as_nanos()).unwrap_or(u64::MAX));
        let (kind, padding, framing) = if data_len == 0 {
            s.cover_records += 1;
            s.cover_bytes += u64::from(size);
            (RecordKind::Cover, 0, 0)
        } else {
            let framing = RECORD_OVERHEAD_BYTES + varints;
            let padding = capacity - data_len;
            s.data_records += 1;
            s.real_bytes += real as u64;
            s.padding_bytes += padding as u64;
            s.framing_bytes += framing as u64;
            (RecordKind::Data, padding as u32, framing as u32)
        };
        if let Some(b) = &mut self.bucket {
            b.spend(scheduled_at, size);
        }
        if self.budget.max_bytes_per_day.is_some() {
            self.roll_day(scheduled_at);
            self.bytes_today += u64::from(size);
        }
        Transmit {
            scheduled_at,
            size_bytes: size,
            kind,
            real_bytes: real as u32,
            padding_bytes: padding,
            framing_bytes: framing,
            messages_completed: completed,
            close,
        }
    }
}

/// Why the inbound stream cannot be trusted any more. Every error is final: the receiver
/// delivers nothing after it, and nothing partial before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The record failed AEAD authentication: altered, replayed, reordered, dropped before it,
    /// or from another session.
    #[error(
        "record {record} failed authentication (tampered, replayed, reordered or from another session)"
    )]
    Authentication {
        /// Its number in the stream, from 0.
        record: u64,
    },
    /// The length prefix is too small for a record.
    #[error("record {record}: length {len} is shorter than the {min}-byte minimum")]
    TooShort {
        /// Its number.
        record: u64,
        /// The prefix's value.
        len: usize,
        /// Header plus tag.
        min: usize,
    },
    /// An authentic record whose header is wrong (a peer speaking another version, or a bug).
    #[error("record {record}: {reason}")]
    Malformed {
        /// Its number.
        record: u64,
        /// What is wrong.
        reason: HeaderError,
    },
    /// The message stream inside the records is inconsistent.
    #[error("record {record}: {reason}")]
    Stream {
        /// Its number.
        record: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A message longer than this receiver accepts.
    #[error("record {record}: message of {len} bytes exceeds the {max}-byte limit")]
    MessageTooLarge {
        /// Its number.
        record: u64,
        /// Declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// Bytes after the peer's close record.
    #[error("{0} bytes after the peer's close record")]
    AfterClose(usize),
    /// The transport ended before the peer's close record (a reset, a cut connection).
    #[error("stream ended without the peer's close record ({detail})")]
    Truncated {
        /// Where it ended.
        detail: &'static str,
    },
}

/// Inbound accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// Records opened.
    pub records: u64,
    /// Of which cover.
    pub cover_records: u64,
    /// Bytes read off the transport.
    pub wire_bytes: u64,
    /// Application bytes in delivered messages.
    pub real_bytes: u64,
    /// Messages delivered.
    pub messages: u64,
}

/// Where the receiver is in the message stream.
#[derive(Debug)]
enum Assembly {
    /// Between messages.
    Idle,
    /// Inside a message's length varint.
    Length { bytes: [u8; 10], n: usize },
    /// Inside a message body of `len` bytes.
    Body { len: u64, data: Vec<u8> },
}

impl Assembly {
    fn in_message(&self) -> bool {
        !matches!(self, Assembly::Idle)
    }
}

/// The inbound half: accepts the byte stream in any chunking, opens records and reassembles
/// whole messages.
#[derive(Debug)]
pub struct Receiver {
    opener: Opener,
    max_message_bytes: u64,
    prefix: [u8; LENGTH_PREFIX_BYTES],
    prefix_len: usize,
    /// Sealed bytes of the current record, once its length is known.
    sealed: Vec<u8>,
    sealed_need: usize,
    plain: Vec<u8>,
    assembly: Assembly,
    messages: VecDeque<Vec<u8>>,
    peer_closed: bool,
    error: Option<RecvError>,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver that accepts messages up to `max_message_bytes`.
    pub fn new(opener: Opener, max_message_bytes: u64) -> Receiver {
        Receiver {
            opener,
            max_message_bytes,
            prefix: [0; LENGTH_PREFIX_BYTES],
            prefix_len: 0,
            sealed: Vec::new(),
            sealed_need: 0,
            plain: Vec::new(),
            assembly: Assembly::Idle,
            messages: VecDeque::new(),
            peer_closed: false,
            error: None,
            stats: ReceiverStats::default(),
        }
    }

    /// Feed bytes from the transport, in any chunking.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), RecvError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.receive_inner(bytes);
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    fn fail(&mut self, e: RecvError) {
        self.error = Some(e);
        self.assembly = Assembly::Idle;
    }

    fn receive_inner(&mut self, mut bytes: &[u8]) -> Result<(), RecvError> {
        if self.peer_closed && !bytes.is_empty() {
            return Err(RecvError::AfterClose(bytes.len()));
        }
        self.stats.wire_bytes += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.prefix_len < LENGTH_PREFIX_BYTES {
                let take = (LENGTH_PREFIX_BYTES - self.prefix_len).min(bytes.len());
                self.prefix[self.prefix_len..self.prefix_len + take]
                    .copy_from_slice(&bytes[..take]);
                self.prefix_len += take;
                bytes = &bytes[take..];
                if self.prefix_len == LENGTH_PREFIX_BYTES {
                    let len = usize::from(u16::from_be_bytes(self.prefix));
                    let min = HEADER_BYTES + TAG_BYTES;
                    if len < min {
                        return Err(RecvError::TooShort {
                            record: self.opener.records(),
                            len,
                            min,
                        });
                    }
                    self.sealed_need = len;
                    self.sealed.clear();
                }
                continue;
            }
            // The usual case, a whole record in the chunk: open it where it lies.
            if self.sealed.is_empty() && bytes.len() >= self.sealed_need {
                let (record, rest) = bytes.split_at(self.sealed_need);
                bytes = rest;
                self.prefix_len = 0;
                self.open_record(record)?;
            } else {
                let take = (self.sealed_need - self.sealed.len()).min(bytes.len());
                self.sealed.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.sealed.len() < self.sealed_need {
                    continue;
                }
                self.prefix_len = 0;
                let sealed = std::mem::take(&mut self.sealed);
                let r = self.open_record(&sealed);
                self.sealed = sealed;
                self.sealed.clear();
                r?;
            }
            if self.peer_closed && !bytes.is_empty() {
                return Err(RecvError::AfterClose(bytes.len()));
            }
        }
        Ok(())
    }

    fn open_record(&mut self, sealed: &[u8]) -> Result<(), RecvError> {
        let record = self.opener.records();
        self.plain.resize(sealed.len() - TAG_BYTES, 0);
        if self.opener.open(sealed, &mut self.plain).is_none() {
            return Err(RecvError::Authentication { record });
        }
        self.stats.records += 1;
        let header =
            Header::parse(&self.plain).map_err(|reason| RecvError::Malformed { record, reason })?;
        if header.flags.contains(Flags::CONTINUES) != self.assembly.in_message() {
            return Err(RecvError::Stream {
                record,
                reason: if self.assembly.in_message() {
                    "a message is incomplete but the record does not continue it"
                } else {
                    "the record continues a message that was never started"
                },
            });
        }
        let data_len = usize::from(header.data_len);
        if data_len == 0 {
            self.stats.cover_records += 1;
        }
        let mut pos = HEADER_BYTES;
        let end = HEADER_BYTES + data_len;
        while pos < end {
            match &mut self.assembly {
                Assembly::Idle => {
                    self.assembly = Assembly::Length {
                        bytes: [0; 10],
                        n: 0,
                    };
                }
                Assembly::Length { bytes, n } => {
                    bytes[*n] = self.plain[pos];
                    *n += 1;
                    pos += 1;
                    match read_varint(&bytes[..*n]) {
                        Err(VarintError::Incomplete) => {}
                        Err(VarintError::Overflow) => {
                            return Err(RecvError::Stream {
                                record,
                                reason: "a message length is not a valid varint",
                            });
                        }
                        Ok((len, _)) => {
                            if len > self.max_message_bytes {
                                return Err(RecvError::MessageTooLarge {
                                    record,
                                    len,
                                    max: self.max_message_bytes,
                                });
                            }
                            // Grow with the bytes that arrive, not with what the length claims.
                            self.assembly = Assembly::Body {
                                len,
                                data: Vec::new(),
                            };
                            self.complete_if_whole();
                        }
                    }
                }
                Assembly::Body { len, data } => {
                    let want = (*len - data.len() as u64).min((end - pos) as u64) as usize;
                    data.extend_from_slice(&self.plain[pos..pos + want]);
                    pos += want;
                    self.complete_if_whole();
                }
            }
        }
        if header.flags.contains(Flags::MORE) != self.assembly.in_message() {
            return Err(RecvError::Stream {
                record,
                reason: "the record's fragment flag disagrees with where its data ends",
            });
        }
        if header.flags.contains(Flags::CLOSE) {
            self.peer_closed = true;
        }
        Ok(())
    }

    fn complete_if_whole(&mut self) {
        if let Assembly::Body { len, data } = &mut self.assembly {
            if data.len() as u64 == *len {
                let data = std::mem::take(data);
                self.stats.messages += 1;
                self.stats.real_bytes += *len;
                self.messages.push_back(data);
                self.assembly = Assembly::Idle;
            }
        }
    }

    /// The transport has ended (EOF). `Ok` if the peer closed cleanly; otherwise the stream was
    /// cut, and any message in progress is discarded, never delivered.
    pub fn finish(&mut self) -> Result<(), RecvError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.peer_closed {
            return Ok(());
        }
        let detail = if self.prefix_len > 0 {
            "inside a record"
        } else if self.assembly.in_message() {
            "inside a message"
        } else {
            "between records"
        };
        let e = RecvError::Truncated { detail };
        self.fail(e.clone());
        Err(e)
    }

    /// The next whole message.
    pub fn poll_message(&mut self) -> Option<Vec<u8>> {
        self.messages.pop_front()
    }

    /// Whether the peer's close record has arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The accounts so far.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }
}

/// Both directions of one end of a tunnel: a [`Shaper`] for what we send and a [`Receiver`] for
/// what the peer sends. Drivers that want them on different threads use [`Engine::split`].
#[derive(Debug)]
pub struct Engine {
    shaper: Shaper,
    receiver: Receiver,
}

impl Engine {
    /// An engine over an established session, starting at `now`.
    pub fn new(
        config: &ShapeConfig,
        session: Session,
        seed: impl Into<ScheduleSeed>,
        now: Instant,
    ) -> Result<Engine, DistError> {
        let (sealer, opener) = session.split();
        Ok(Engine {
            shaper: Shaper::new(config, sealer, seed, now)?,
            receiver: Receiver::new(opener, config.max_message_bytes),
        })
    }

    /// Queue a message (see [`Shaper::send`]).
    pub fn send(&mut self, now: Instant, message: &[u8]) -> Result<u64, SendError> {
        self.shaper.send(now, message)
    }

    /// The next record due (see [`Shaper::poll_transmit`]).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.shaper.poll_transmit(now, buf)
    }

    /// When to call `poll_transmit` next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shaper.poll_timeout()
    }

    /// Bytes from the peer (see [`Receiver::receive`]).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), RecvError> {
        self.receiver.receive(bytes)
    }

    /// The next whole message from the peer.
    pub fn poll_message(&mut self) -> Option<Vec<u8>> {
        self.receiver.poll_message()
    }

    /// Stop sending after the queue drains.
    pub fn close(&mut self) {
        self.shaper.close()
    }

    /// The outbound half.
    pub fn shaper(&mut self) -> &mut Shaper {
        &mut self.shaper
    }

    /// The inbound half.
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// Outbound accounting.
    pub fn stats(&self) -> &ShaperStats {
        self.shaper.stats()
    }

    /// The two halves, for drivers that run them apart.
    pub fn split(self) -> (Shaper, Receiver) {
        (self.shaper, self.receiver)
    }
}
