//! maybenot padding machines on recorded traces, with hush's byte-level accounting.
//!
//! [maybenot](https://maybenot.io) defenses (FRONT, RegulaTor, Interspace, Break-Pad, Tamaraw from
//! `maybenot-machines`, or any serialized machine) were designed for Tor cells and DAITA's
//! WireGuard packets. [`run_machines`] runs them on an IoT trace: one maybenot `Framework` at the
//! device (client) and one at the gateway (server), in a discrete-event simulation on a virtual
//! clock, over the same link model as [`crate::sim`]. The output is the [`WirePacket`]s and
//! per-message delays that [`crate::overhead::account`] turns into overhead figures.
//!
//! # What goes on the wire
//!
//! - Real messages become hush records exactly as hush's `immediate` policy frames them: messages
//!   that are due at the same instant share a stream, cut into records of at most
//!   [`MAX_RECORD_BYTES`]; a record is `RECORD_OVERHEAD_BYTES` (22) plus the message-length
//!   varints plus the data, with `real_bytes`, `framing_bytes` (22 + varints) and no padding. Each
//!   record is one maybenot "packet".
//! - A padding packet is a cover record of `padding_record_bytes` (1448 fills an MTU).
//! - A frame is the record plus [`NetworkModel::header_bytes`]. No close record is sent: the
//!   tunnel is assumed to run on past the trace.
//!
//! # The integration contract, as implemented
//!
//! Each framework has, per machine, one action timer and one internal timer, and one blocking
//! state (until when, and whether bypassable). For each [`TriggerAction`]:
//!
//! - `Cancel` clears the action timer, the internal timer or both; no event.
//! - `SendPadding` / `BlockOutgoing` (re)set the machine's action timer, overwriting whatever it
//!   held.
//! - `UpdateTimer` sets the internal timer to `now + duration` if `replace` or if that is later
//!   than the timer's remaining time (or there is none); `TimerBegin` is triggered in every case
//!   (as maybenot's crate documentation asks), `TimerEnd` when it expires (not on cancel).
//! - An expired `BlockOutgoing` starts blocking if none is active; if blocking is active, it
//!   replaces the end time when `replace`, otherwise keeps the later of the two. Whenever the end
//!   time is set, the bypassable flag becomes the action's `bypass`. `BlockingBegin` is triggered
//!   regardless; `BlockingEnd` when the (framework-wide) blocking ends. A duration of 0 ends
//!   blocking at once (Tamaraw and RegulaTor end blocking that way).
//! - An expired `SendPadding` follows the table in maybenot's documentation. Not blocking: the
//!   padding is sent now. Blocking: if `replace` and a packet is queued, the padding is replaced —
//!   by sending the oldest queued packet now when both `bypass` and the blocking's bypassable flag
//!   are set, otherwise by nothing (the queued packet stays queued); if nothing is queued (or not
//!   `replace`), the padding is sent now when `bypass` and the blocking is bypassable, else queued.
//!   `PaddingSent` is triggered in every case, then `TunnelSent` if a packet left.
//!
//! Real records trigger `NormalSent` when they are created (at the message's capture time at the
//! device, one delay earlier at the gateway) and `TunnelSent` when they leave — at once unless
//! the framework is blocking, when they wait in a FIFO queue (with any queued padding) until
//! blocking ends or a bypass+replace padding lets the oldest out. A packet's arrival at the
//! other end triggers `TunnelRecv`, then `NormalRecv` or `PaddingRecv`. Events are triggered one
//! at a time (no batching), so no machine action is lost to a later event in the same batch.
//!
//! At one instant the simulation handles, in order: blocking expiry, messages due, arrivals,
//! internal timers, action timers (maybenot-simulator's priorities: tunnel activity before
//! machine timers), the device before the gateway. When blocking ends, `BlockingEnd` is
//! triggered first, then everything queued leaves, in order.
//!
//! # The link
//!
//! As in [`crate::sim`]: a one-way delay between the device end and the gateway, an optional
//! bottleneck per direction (a serialisation queue), and the observer at the device end. Outbound
//! records are seen when they start onto the link and arrive at the gateway one delay later;
//! inbound records are sent by the gateway and seen (and received by the device) when they
//! arrive. Real inbound data reaches the gateway one delay before its capture time, so with no
//! defense every packet is seen at its capture time. `TunnelSent` is when a packet leaves the
//! framework's queue; the bottleneck is part of the network (as in maybenot-simulator).
//! Blocking does not feed back into the application: the trace's send times are fixed and what
//! a machine holds back shows as delay (maybenot-simulator instead shifts later traffic by the
//! blocking, modelling a TCP sender that waits).
//!
//! # When it stops
//!
//! The horizon is `end_ns` (or the last message, if later). While real data is left to send,
//! every event is handled, whenever it falls. Once all real data has left, each side stops at its
//! first event beyond the horizon (for the gateway, beyond the horizon minus one delay, so its
//! packets are seen by the horizon); a side also stops when nothing is pending (all machines
//! ended and their timers ran out). So padding after the end of the capture is cut, as a capture
//! of the same length would cut it, while real data is never lost. maybenot-simulator by default
//! stops at the last normal packet, which also cuts padding between that packet and the end of
//! the trace; this simulation keeps it.
//!
//! # Determinism and limits
//!
//! Every random choice (machine generation, both frameworks) comes from `seed` through
//! xoshiro256** generators, so the same seed gives the same output. Framework-wide padding and
//! blocking limits are off (0.0, as maybenot-simulator's default); each machine's own limits
//! apply. A run fails with [`DefenseError::Param`] if machines loop without time advancing,
//! hold real data for more than [`MAX_HOLD_S`] past the horizon, or put more than
//! [`MAX_WIRE_PACKETS`] packets on the wire.

use std::collections::VecDeque;
use std::ops::AddAssign;
use std::str::FromStr;

use hush_shape::frame::{MAX_RECORD_BYTES, MIN_RECORD_BYTES, RECORD_OVERHEAD_BYTES, varint_len};
use hush_trace::Direction;
use maybenot::{Framework, Machine, MachineId, Timer, TriggerAction, TriggerEvent};
use maybenot_machines::StaticMachine;
use rand_xoshiro::Xoshiro256StarStar;
use rand_xoshiro::rand_core::SeedableRng;

use crate::DefenseError;
use crate::sim::{Message, NetworkModel, WireKind, WirePacket};

/// maybenot's no-op machine: valid, never acts.
pub const NOOP_MACHINE: &str = "02eNpjYEAHjOgCAAA0AAI=";

/// The default cover record size: an MTU-sized TCP segment (1500-byte IPv4 packet with TCP
/// timestamps).
pub const DEFAULT_PADDING_RECORD_BYTES: u32 = 1448;

/// Real data may be held at most this long past the horizon before the run is refused.
pub const MAX_HOLD_S: f64 = 2.0 * 86_400.0;

/// The most packets a run may put on the wire (about 1 GiB of [`WirePacket`]s).
pub const MAX_WIRE_PACKETS: usize = 1 << 25;

/// Events at one instant after which machines are taken to loop without time advancing.
const MAX_STEPS_PER_INSTANT: u32 = 1 << 20;

/// The names [`MachineSet::named`] knows.
pub const NAMES: &[&str] = &[
    "noop",
    "front",
    "regulator",
    "interspace",
    "break-pad",
    "tamaraw",
];

/// Machines for both ends of the tunnel.
#[derive(Clone, Debug, Default)]
pub struct MachineSet {
    /// At the device (maybenot's client): shapes outbound traffic.
    pub client: Vec<Machine>,
    /// At the gateway (maybenot's server): shapes inbound traffic.
    pub server: Vec<Machine>,
}

/// FRONT in `maybenot-machines` form (Gong and Wang, USENIX Security 2020): per side, a padding
/// budget drawn in `[1, padding_budget_max)` and a window drawn in `[window_min_s, window_max_s)`,
/// padding at Rayleigh-distributed times from the first packet, approximated by `num_states`
/// states.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrontParams {
    /// The largest padding budget (packets) to draw.
    pub padding_budget_max: u32,
    /// Smallest window, seconds.
    pub window_min_s: f64,
    /// Largest window, seconds.
    pub window_max_s: f64,
    /// Padding states approximating the Rayleigh distribution.
    pub num_states: usize,
}

impl Default for FrontParams {
    /// The same budget and windows as the catalog's `front` (N = 100, W in [1, 8) s), so the two
    /// implementations can be compared; 10 states.
    fn default() -> Self {
        FrontParams {
            padding_budget_max: 100,
            window_min_s: 1.0,
            window_max_s: 8.0,
            num_states: 10,
        }
    }
}

/// RegulaTor (Holland and Hopper, PETS 2022) in `maybenot-machines` form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegulatorParams {
    /// Initial surge rate, packets per second (their R).
    pub r: f64,
    /// Decay rate (their D).
    pub d: f64,
    /// Surge threshold ratio (their T).
    pub t: f64,
    /// Padding budget, packets (their N).
    pub n: f64,
    /// Bins approximating the decaying rate (a maybenot-machines parameter).
    pub b: usize,
    /// Upload/download packet ratio (their U).
    pub u: f64,
    /// Delay cap, seconds (their C).
    pub c: f64,
}

impl Default for RegulatorParams {
    /// The published parameters (R = 277, D = 0.94, T = 3.55, N = 3550, U = 3.95, C = 1.77) and
    /// 100 bins (our choice: the rate decays to 1 packet/s in about 91 s, so about 0.9 s a bin).
    fn default() -> Self {
        RegulatorParams {
            r: 277.0,
            d: 0.94,
            t: 3.55,
            n: 3550.0,
            b: 100,
            u: 3.95,
            c: 1.77,
        }
    }
}

/// Tamaraw (Cai et al., CCS 2014) with the soft stop of Gong et al. (WFDefProxy), in
/// `maybenot-machines` form: constant-rate padding that real packets replace, blocking
/// everything else.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TamarawParams {
    /// Seconds between outbound packets (their ρ_out).
    pub out_gap_s: f64,
    /// Seconds between inbound packets (their ρ_in).
    pub in_gap_s: f64,
    /// Seconds without a real packet after which a side pads to a multiple of 100 packets and
    /// stops until the next real packet.
    pub stop_window_s: f64,
}

impl Default for TamarawParams {
    /// The catalog's `tamaraw` rates (20 ms out, 6 ms in) and a 2 s stop window (our choice).
    fn default() -> Self {
        TamarawParams {
            out_gap_s: 0.02,
            in_gap_s: 0.006,
            stop_window_s: 2.0,
        }
    }
}

impl MachineSet {
    /// These machines.
    pub fn new(client: Vec<Machine>, server: Vec<Machine>) -> MachineSet {
        MachineSet { client, server }
    }

    /// Machines from strings, per side: each a serialized maybenot machine (`02...`) or a
    /// `maybenot-machines` static machine (`front 100 1000000 8000000 10`, `regulator_client
    /// 3.95 1.77`, `regulator_server 277 0.94 3.55 3550 100`, `tamaraw 0.02 2000000`,
    /// `interspace_client`, `interspace_server`, `break_pad_client`, `break_pad_server`, `noop`,
    /// ...; times in microseconds, as that crate takes them). Random choices in machine
    /// generation (FRONT's budget and window, Interspace's distributions) come from `seed`.
    pub fn parse(client: &[&str], server: &[&str], seed: u64) -> Result<MachineSet, DefenseError> {
        let mut rng = Xoshiro256StarStar::seed_from_u64(mix(seed, SEED_GEN_CLIENT));
        let client = parse_side(client, &mut rng)?;
        let mut rng = Xoshiro256StarStar::seed_from_u64(mix(seed, SEED_GEN_SERVER));
        let server = parse_side(server, &mut rng)?;
        Ok(MachineSet { client, server })
    }

    /// A defense by name (see [`NAMES`]) with its default parameters.
    pub fn named(name: &str, seed: u64) -> Result<MachineSet, DefenseError> {
        match name {
            "noop" => MachineSet::parse(&[NOOP_MACHINE], &[NOOP_MACHINE], seed),
            "front" => MachineSet::front(&FrontParams::default(), seed),
            "regulator" => MachineSet::regulator(&RegulatorParams::default()),
            "interspace" => Ok(MachineSet::interspace(seed)),
            "break-pad" => Ok(MachineSet::break_pad()),
            "tamaraw" => MachineSet::tamaraw(&TamarawParams::default()),
            _ => Err(DefenseError::Param(format!(
                "unknown maybenot defense {name:?} (known: {})",
                NAMES.join(", ")
            ))),
        }
    }

    /// FRONT on both sides, each with its own draw of budget and window.
    pub fn front(p: &FrontParams, seed: u64) -> Result<MachineSet, DefenseError> {
        let ok = p.padding_budget_max >= 2
            && p.window_min_s.is_finite()
            && p.window_min_s > 0.0
            && p.window_max_s.is_finite()
            && p.window_max_s > p.window_min_s
            && (1..=10_000).contains(&p.num_states);
        if !ok {
            return Err(DefenseError::Param(format!(
                "FRONT needs padding_budget_max >= 2, 0 < window_min_s < window_max_s and 1 to \
                 10000 states, not {p:?}"
            )));
        }
        let m = StaticMachine::Front {
            padding_budget_max: p.padding_budget_max,
            window_min: p.window_min_s * 1e6,
            window_max: p.window_max_s * 1e6,
            num_states: p.num_states,
        };
        let mut rng = Xoshiro256StarStar::seed_from_u64(mix(seed, SEED_GEN_CLIENT));
        let client = generate(&m, &mut rng)?;
        let mut rng = Xoshiro256StarStar::seed_from_u64(mix(seed, SEED_GEN_SERVER));
        let server = generate(&m, &mut rng)?;
        Ok(MachineSet { client, server })
    }

    /// RegulaTor: the client machines at the device, the server machines at the gateway (no
    /// randomness in generation).
    pub fn regulator(p: &RegulatorParams) -> Result<MachineSet, DefenseError> {
        let mut rng = Xoshiro256StarStar::seed_from_u64(0);
        let client = generate(&StaticMachine::RegulatorClient { u: p.u, c: p.c }, &mut rng)?;
        let server = generate(
            &StaticMachine::RegulatorServer {
                r: p.r,
                d: p.d,
                t: p.t,
                n: p.n,
                b: p.b,
            },
            &mut rng,
        )?;
        Ok(MachineSet { client, server })
    }

    /// Interspace (Pulls 2020): its client and server machines, with distributions drawn from
    /// `seed`.
    pub fn interspace(seed: u64) -> MachineSet {
        let mut rng = Xoshiro256StarStar::seed_from_u64(mix(seed, SEED_GEN_CLIENT));
        let client = maybenot_machines::interspace::interspace_client(&mut rng);
        let mut rng = Xoshiro256StarStar::seed_from_u64(mix(seed, SEED_GEN_SERVER));
        let server = maybenot_machines::interspace::interspace_server(&mut rng);
        MachineSet { client, server }
    }

    /// Break-Pad (Huang and Du 2024): its client and server machines.
    pub fn break_pad() -> MachineSet {
        MachineSet {
            client: maybenot_machines::break_pad::break_pad_client(),
            server: maybenot_machines::break_pad::break_pad_server(),
        }
    }

    /// Tamaraw with the soft stop, one rate per side.
    pub fn tamaraw(p: &TamarawParams) -> Result<MachineSet, DefenseError> {
        let mut rng = Xoshiro256StarStar::seed_from_u64(0);
        let side = |gap: f64, rng: &mut Xoshiro256StarStar| {
            generate(
                &StaticMachine::Tamaraw {
                    p: gap,
                    stop_window: p.stop_window_s * 1e6,
                },
                rng,
            )
        };
        Ok(MachineSet {
            client: side(p.out_gap_s, &mut rng)?,
            server: side(p.in_gap_s, &mut rng)?,
        })
    }
}

// Labels that derive independent generator seeds from the one hush seed.
const SEED_GEN_CLIENT: u64 = 1;
const SEED_GEN_SERVER: u64 = 2;
const SEED_FW_CLIENT: u64 = 3;
const SEED_FW_SERVER: u64 = 4;

/// SplitMix64 of the seed and a label: independent streams from one seed.
fn mix(seed: u64, label: u64) -> u64 {
    let mut z = seed ^ label.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn parse_side(specs: &[&str], rng: &mut Xoshiro256StarStar) -> Result<Vec<Machine>, DefenseError> {
    let mut out = Vec::with_capacity(specs.len());
    for &s in specs {
        let s = s.trim();
        if s.starts_with("02") && !s.contains(char::is_whitespace) {
            let m = Machine::from_str(s).map_err(|e| {
                DefenseError::Param(format!("bad maybenot machine {}: {e}", shorten(s)))
            })?;
            out.push(m);
        } else {
            let m = StaticMachine::from_str(s).map_err(|e| {
                DefenseError::Param(format!(
                    "bad maybenot machine {} (neither a serialized machine nor a \
                     maybenot-machines name): {e}",
                    shorten(s)
                ))
            })?;
            out.extend(generate(&m, rng).map_err(|e| match e {
                DefenseError::Param(msg) => {
                    DefenseError::Param(format!("bad maybenot machine {}: {msg}", shorten(s)))
                }
                e => e,
            })?);
        }
    }
    Ok(out)
}

/// A quoted string, cut to 60 characters for error messages.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 60 {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(57).collect();
        format!("{head:?}...")
    }
}

/// `maybenot-machines` builds its machines with `unwrap` and samples ranges that panic when
/// empty, so check the parameters it would trip on first.
fn check_static(m: &StaticMachine) -> Result<(), String> {
    let pos = |x: f64| x.is_finite() && x > 0.0;
    let ok = match *m {
        StaticMachine::Front {
            padding_budget_max,
            window_min,
            window_max,
            num_states,
        } => {
            padding_budget_max >= 2
                && pos(window_min)
                && window_max.is_finite()
                && window_max > window_min
                && (1..=10_000).contains(&num_states)
        }
        StaticMachine::RegulatorClient { u, c } => pos(u) && pos(c),
        StaticMachine::RegulatorServer { r, d, t, n, b } => {
            r.is_finite()
                && r > 1.0
                && d > 0.0
                && d < 1.0
                && pos(t)
                && pos(n)
                && (1..=10_000).contains(&b)
        }
        StaticMachine::Tamaraw { p, stop_window } => pos(p) && pos(stop_window),
        StaticMachine::ScramblerServer {
            interval,
            min_count,
            min_trail,
            max_trail,
        } => pos(interval) && pos(min_count) && pos(min_trail) && max_trail >= min_trail,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("parameters out of range: {m:?}"))
    }
}

fn generate(m: &StaticMachine, rng: &mut Xoshiro256StarStar) -> Result<Vec<Machine>, DefenseError> {
    check_static(m).map_err(DefenseError::Param)?;
    // Anything the checks above missed panics inside maybenot-machines: turn it into an error.
    let machines = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        maybenot_machines::get_machine(std::slice::from_ref(m), rng)
    }))
    .map_err(|_| DefenseError::Param(format!("maybenot-machines could not build {m:?}")))?;
    for x in &machines {
        x.validate()
            .map_err(|e| DefenseError::Param(format!("{m:?} gave an invalid machine: {e}")))?;
    }
    Ok(machines)
}

// ---------------------------------------------------------------------------------------------
// Virtual time for the frameworks: nanoseconds from the simulation's origin.

#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
struct VInstant(u64);

#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
struct VDuration(u64);

impl AddAssign for VDuration {
    fn add_assign(&mut self, rhs: VDuration) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

impl maybenot::time::Duration for VDuration {
    fn zero() -> Self {
        VDuration(0)
    }
    fn from_micros(micros: u64) -> Self {
        VDuration(micros.saturating_mul(1000))
    }
    fn is_zero(&self) -> bool {
        self.0 == 0
    }
    fn div_duration_f64(self, rhs: Self) -> f64 {
        self.0 as f64 / rhs.0 as f64
    }
}

impl maybenot::time::Instant for VInstant {
    type Duration = VDuration;
    fn saturating_duration_since(&self, earlier: Self) -> VDuration {
        VDuration(self.0.saturating_sub(earlier.0))
    }
}

/// No timer.
const NONE: i64 = i64::MAX;
/// Longest duration taken from a machine (beyond maybenot's own one-day caps).
const MAX_DURATION_NS: u64 = 1 << 60;

fn after(now: i64, d: VDuration) -> i64 {
    now.saturating_add(d.0.min(MAX_DURATION_NS) as i64)
}

// ---------------------------------------------------------------------------------------------
// The simulation.

/// A record in a framework's queue or on its way out.
#[derive(Clone, Copy, Debug)]
struct Pkt {
    size: u32,
    real: u32,
    framing: u32,
    /// Messages whose last byte is in this record.
    completes: u32,
    cover: bool,
}

#[derive(Clone, Copy, Debug)]
enum Act {
    Padding {
        bypass: bool,
        replace: bool,
    },
    Block {
        duration: VDuration,
        bypass: bool,
        replace: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Blocking {
    until: i64,
    bypassable: bool,
}

/// One end: its framework, timers, blocking, queue and outgoing link.
struct Side<'a> {
    fw: Framework<&'a [Machine], Xoshiro256StarStar, VInstant>,
    origin_ns: i64,
    /// Per machine: when its action timer expires ([`NONE`] if unset) and what it does.
    action_at: Vec<i64>,
    action: Vec<Act>,
    /// Per machine: when its internal timer expires.
    internal_at: Vec<i64>,
    blocking: Option<Blocking>,
    queue: VecDeque<Pkt>,
    /// Real records in `queue`.
    queued_data: usize,
    /// Scratch: events that actions led to, still to trigger.
    events: Vec<TriggerEvent>,

    // Traffic this side sends.
    msgs: &'a [Message],
    next_msg: usize,
    /// Added to a message's capture time to give the time it is due here.
    send_shift_ns: i64,
    /// Arrivals from the other side: (time, padding), in time order.
    arrivals: VecDeque<(i64, bool)>,

    // The link out of this side.
    dir: Direction,
    /// From sending here to being seen by the observer.
    seen_shift_ns: i64,
    /// From being seen to arriving at the other side.
    arrive_shift_ns: i64,
    rate_bps: Option<f64>,
    link_free_ns: i64,
    header_bytes: u32,
    wire: Vec<WirePacket>,
    delays: Vec<i64>,
    /// Messages completed so far.
    completed: usize,
    /// Stopped after the horizon.
    done: bool,
}

/// Sources of events, in their order at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    BlockingEnd,
    Send,
    Arrival,
    Internal(usize),
    Action(usize),
}

impl Source {
    fn rank(self) -> u8 {
        match self {
            Source::BlockingEnd => 0,
            Source::Send => 1,
            Source::Arrival => 2,
            Source::Internal(_) => 3,
            Source::Action(_) => 4,
        }
    }
}

impl<'a> Side<'a> {
    fn new(
        machines: &'a [Machine],
        msgs: &'a [Message],
        fw_seed: u64,
        dir: Direction,
        net: &NetworkModel,
    ) -> Result<Side<'a>, DefenseError> {
        let delay_ns = one_way_delay_ns(net);
        let rng = Xoshiro256StarStar::seed_from_u64(fw_seed);
        let fw = Framework::new(machines, 0.0, 0.0, VInstant(0), rng)
            .map_err(|e| DefenseError::Param(format!("bad maybenot machine: {e}")))?;
        let n = machines.len();
        let outbound = dir == Direction::Outbound;
        Ok(Side {
            fw,
            // The frameworks' clock starts at the earliest moment anything can happen: the
            // gateway sends inbound data one delay before its capture time.
            origin_ns: -delay_ns,
            action_at: vec![NONE; n],
            action: vec![
                Act::Padding {
                    bypass: false,
                    replace: false
                };
                n
            ],
            internal_at: vec![NONE; n],
            blocking: None,
            queue: VecDeque::new(),
            queued_data: 0,
            events: Vec::with_capacity(4),
            msgs,
            next_msg: 0,
            send_shift_ns: if outbound { 0 } else { -delay_ns },
            arrivals: VecDeque::with_capacity(64),
            dir,
            seen_shift_ns: if outbound { 0 } else { delay_ns },
            arrive_shift_ns: if outbound { delay_ns } else { 0 },
            rate_bps: if outbound {
                net.uplink_bps
            } else {
                net.downlink_bps
            },
            link_free_ns: i64::MIN,
            header_bytes: net.header_bytes,
            wire: Vec::with_capacity(msgs.len() + msgs.len() / 8 + 64),
            delays: Vec::with_capacity(msgs.len()),
            completed: 0,
            done: false,
        })
    }

    fn vt(&self, t: i64) -> VInstant {
        VInstant((t - self.origin_ns).max(0) as u64)
    }

    fn data_pending(&self) -> bool {
        self.next_msg < self.msgs.len() || self.queued_data > 0
    }

    /// The earliest event here: its time and source (at equal times, in [`Source`] order).
    fn next_event(&self) -> Option<(i64, Source)> {
        if self.done {
            return None;
        }
        let earliest = |ts: &[i64]| {
            let (mut bt, mut bi) = (NONE, 0);
            for (i, &t) in ts.iter().enumerate() {
                if t < bt {
                    (bt, bi) = (t, i);
                }
            }
            (bt, bi)
        };
        let (ti, ii) = earliest(&self.internal_at);
        let (ta, ia) = earliest(&self.action_at);
        let candidates = [
            (self.blocking.map_or(NONE, |b| b.until), Source::BlockingEnd),
            (
                self.msgs
                    .get(self.next_msg)
                    .map_or(NONE, |m| m.t_ns.saturating_add(self.send_shift_ns)),
                Source::Send,
            ),
            (self.arrivals.front().map_or(NONE, |a| a.0), Source::Arrival),
            (ti, Source::Internal(ii)),
            (ta, Source::Action(ia)),
        ];
        let (mut bt, mut bs) = (NONE, Source::BlockingEnd);
        for (t, s) in candidates {
            if t < bt {
                (bt, bs) = (t, s);
            }
        }
        (bt != NONE).then_some((bt, bs))
    }

    /// Trigger `event` and everything it leads to at `now` (TimerBegin after UpdateTimer).
    fn trigger(&mut self, event: TriggerEvent, now: i64) {
        let vnow = self.vt(now);
        let Side {
            fw,
            action_at,
            action,
            internal_at,
            events,
            ..
        } = self;
        let mut event = Some(event);
        let mut i = 0;
        while let Some(e) = event.take() {
            for a in fw.trigger_events(std::slice::from_ref(&e), vnow) {
                match *a {
                    TriggerAction::Cancel { machine, timer } => {
                        let m = machine.into_raw();
                        if matches!(timer, Timer::Action | Timer::All) {
                            action_at[m] = NONE;
                        }
                        if matches!(timer, Timer::Internal | Timer::All) {
                            internal_at[m] = NONE;
                        }
                    }
                    TriggerAction::SendPadding {
                        timeout,
                        bypass,
                        replace,
                        machine,
                    } => {
                        let m = machine.into_raw();
                        action_at[m] = after(now, timeout);
                        action[m] = Act::Padding { bypass, replace };
                    }
                    TriggerAction::BlockOutgoing {
                        timeout,
                        duration,
                        bypass,
                        replace,
                        machine,
                    } => {
                        let m = machine.into_raw();
                        action_at[m] = after(now, timeout);
                        action[m] = Act::Block {
                            duration,
                            bypass,
                            replace,
                        };
                    }
                    TriggerAction::UpdateTimer {
                        duration,
                        replace,
                        machine,
                    } => {
                        let m = machine.into_raw();
                        let at = after(now, duration);
                        let cur = internal_at[m];
                        if replace || cur == NONE || cur < at {
                            internal_at[m] = at;
                        }
                        events.push(TriggerEvent::TimerBegin { machine });
                    }
                }
            }
            // Events the actions led to, in order.
            if i < events.len() {
                event = Some(events[i].clone());
                i += 1;
            } else {
                events.clear();
            }
        }
    }
}

/// The link model and accounting, separate from the side so that both can be borrowed.
fn transmit(side: &mut Side, other_arrivals: &mut VecDeque<(i64, bool)>, p: Pkt, now: i64) {
    let mut seen = now + side.seen_shift_ns;
    if let Some(r) = side.rate_bps {
        seen = seen.max(side.link_free_ns);
        side.link_free_ns = seen + (f64::from(p.size) / r * 1e9).round() as i64;
    }
    side.wire.push(WirePacket {
        t_ns: seen,
        dir: side.dir,
        frame_bytes: p.size + side.header_bytes,
        payload_bytes: p.size,
        kind: if p.cover {
            WireKind::Cover
        } else {
            WireKind::Data
        },
        real_bytes: p.real,
        padding_bytes: 0,
        framing_bytes: p.framing,
    });
    for _ in 0..p.completes {
        let captured = side.msgs[side.completed].t_ns;
        side.delays.push(seen - captured);
        side.completed += 1;
    }
    other_arrivals.push_back((seen + side.arrive_shift_ns, p.cover));
}

fn one_way_delay_ns(net: &NetworkModel) -> i64 {
    (net.one_way_delay_s * 1e9).round() as i64
}

/// Stream bytes a record can hold.
const RECORD_CAPACITY: u32 = MAX_RECORD_BYTES - RECORD_OVERHEAD_BYTES as u32;

/// Cut `msgs` (due together) into records as hush's immediate policy does, calling `emit` for
/// each in order.
fn frame_messages(msgs: &[Message], mut emit: impl FnMut(Pkt)) {
    let overhead = RECORD_OVERHEAD_BYTES as u32;
    let (mut used, mut real, mut varints, mut completes) = (0u32, 0u32, 0u32, 0u32);
    let mut flush = |used: &mut u32, real: &mut u32, varints: &mut u32, completes: &mut u32| {
        emit(Pkt {
            size: overhead + *used,
            real: *real,
            framing: overhead + *varints,
            completes: *completes,
            cover: false,
        });
        (*used, *real, *varints, *completes) = (0, 0, 0, 0);
    };
    for m in msgs {
        let mut prefix = varint_len(u64::from(m.len_bytes)) as u32;
        while prefix > 0 {
            if used == RECORD_CAPACITY {
                flush(&mut used, &mut real, &mut varints, &mut completes);
            }
            let take = prefix.min(RECORD_CAPACITY - used);
            used += take;
            varints += take;
            prefix -= take;
        }
        let mut left = m.len_bytes;
        while left > 0 {
            if used == RECORD_CAPACITY {
                flush(&mut used, &mut real, &mut varints, &mut completes);
            }
            let take = left.min(RECORD_CAPACITY - used);
            used += take;
            real += take;
            left -= take;
        }
        completes += 1;
    }
    if used > 0 {
        flush(&mut used, &mut real, &mut varints, &mut completes);
    }
}

/// Run `machines` over a trace's messages (each direction sorted by time, times relative to the
/// trace start) and return the wire packets in time order and the per-message delays of each
/// direction. See the [module docs](self) for the model. `padding_record_bytes` is the size of a
/// padding packet's record ([`DEFAULT_PADDING_RECORD_BYTES`] fills an MTU); `end_ns` is the end
/// of the trace.
#[allow(clippy::type_complexity)]
pub fn run_machines(
    out_msgs: &[Message],
    in_msgs: &[Message],
    machines: &MachineSet,
    seed: u64,
    net: &NetworkModel,
    padding_record_bytes: u32,
    end_ns: i64,
) -> Result<(Vec<WirePacket>, Vec<i64>, Vec<i64>), DefenseError> {
    net.validate()?;
    if !(MIN_RECORD_BYTES..=MAX_RECORD_BYTES).contains(&padding_record_bytes) {
        return Err(DefenseError::Param(format!(
            "padding record size must be {MIN_RECORD_BYTES} to {MAX_RECORD_BYTES} bytes, not \
             {padding_record_bytes}"
        )));
    }
    let delay_ns = one_way_delay_ns(net);
    let last_msg = |m: &[Message]| m.iter().map(|m| m.t_ns).max().unwrap_or(0);
    let horizon = end_ns.max(last_msg(out_msgs)).max(last_msg(in_msgs));
    let mut sides = [
        Side::new(
            &machines.client,
            out_msgs,
            mix(seed, SEED_FW_CLIENT),
            Direction::Outbound,
            net,
        )?,
        Side::new(
            &machines.server,
            in_msgs,
            mix(seed, SEED_FW_SERVER),
            Direction::Inbound,
            net,
        )?,
    ];
    // Each side's last instant once real data is out (the gateway's packets are seen one delay
    // after it sends them).
    let side_horizon = [horizon, horizon - delay_ns];
    let cover = Pkt {
        size: padding_record_bytes,
        real: 0,
        framing: 0,
        completes: 0,
        cover: true,
    };

    let mut now = i64::MIN;
    let mut steps_at_now = 0u32;
    // Each side's next event, kept until a step changes that side.
    let mut cached: [Option<Option<(i64, Source)>>; 2] = [None, None];
    loop {
        let pending = sides[0].data_pending() || sides[1].data_pending();
        // The earliest event of either side; the device first on ties.
        let mut pick: Option<(i64, Source, usize)> = None;
        for (k, side) in sides.iter_mut().enumerate() {
            let next = *cached[k].get_or_insert_with(|| side.next_event());
            let Some((t, s)) = next else {
                continue;
            };
            if !pending && t > side_horizon[k] {
                side.done = true;
                cached[k] = Some(None);
                continue;
            }
            if pick.is_none_or(|(pt, ps, _)| t < pt || (t == pt && s.rank() < ps.rank())) {
                pick = Some((t, s, k));
            }
        }
        let Some((t, source, k)) = pick else {
            break;
        };
        // Messages due before `now` (an unsorted trace) leave now, as in sim.rs.
        let t = t.max(now);
        if t == now {
            steps_at_now += 1;
            if steps_at_now > MAX_STEPS_PER_INSTANT {
                return Err(DefenseError::Param(format!(
                    "maybenot machines loop: {MAX_STEPS_PER_INSTANT} events at {:.6} s without \
                     time advancing",
                    t as f64 * 1e-9
                )));
            }
        } else {
            now = t;
            steps_at_now = 0;
            if pending && (now - horizon) as f64 * 1e-9 > MAX_HOLD_S {
                return Err(DefenseError::Param(format!(
                    "maybenot machines hold real data more than {MAX_HOLD_S} s past the end of \
                     the trace"
                )));
            }
        }
        let [a, b] = &mut sides;
        let (side, other) = if k == 0 { (a, b) } else { (b, a) };
        let other_idle = other.arrivals.is_empty();
        step(side, &mut other.arrivals, source, now, cover);
        cached[k] = None;
        // The other side changed only if an arrival became its next one.
        if other_idle && !other.arrivals.is_empty() {
            cached[1 - k] = None;
        }
        if side.wire.len() + other.wire.len() > MAX_WIRE_PACKETS {
            return Err(DefenseError::Param(format!(
                "maybenot machines put more than {MAX_WIRE_PACKETS} packets on the wire"
            )));
        }
    }

    let [client, server] = sides;
    for s in [&client, &server] {
        if s.completed != s.msgs.len() {
            return Err(DefenseError::Engine(format!(
                "bug: {} of {} {:?} messages delivered",
                s.completed,
                s.msgs.len(),
                s.dir
            )));
        }
    }
    let packets = merge(client.wire, server.wire);
    Ok((packets, client.delays, server.delays))
}

/// Handle one event of `side` at `now`.
fn step(side: &mut Side, other: &mut VecDeque<(i64, bool)>, source: Source, now: i64, cover: Pkt) {
    match source {
        Source::BlockingEnd => {
            side.blocking = None;
            side.trigger(TriggerEvent::BlockingEnd, now);
            while let Some(p) = side.queue.pop_front() {
                if !p.cover {
                    side.queued_data -= 1;
                }
                transmit(side, other, p, now);
                side.trigger(TriggerEvent::TunnelSent, now);
            }
        }
        Source::Send => {
            let from = side.next_msg;
            let mut to = from;
            while side
                .msgs
                .get(to)
                .is_some_and(|m| m.t_ns.saturating_add(side.send_shift_ns) <= now)
            {
                to += 1;
            }
            // The sort above guarantees at least the message that was due.
            let to = to.max(from + 1);
            side.next_msg = to;
            let msgs = side.msgs;
            frame_messages(&msgs[from..to], |p| {
                side.trigger(TriggerEvent::NormalSent, now);
                if side.blocking.is_some() {
                    side.queue.push_back(p);
                    side.queued_data += 1;
                } else {
                    transmit(side, other, p, now);
                    side.trigger(TriggerEvent::TunnelSent, now);
                }
            });
        }
        Source::Arrival => {
            let Some((_, padding)) = side.arrivals.pop_front() else {
                return;
            };
            side.trigger(TriggerEvent::TunnelRecv, now);
            side.trigger(
                if padding {
                    TriggerEvent::PaddingRecv
                } else {
                    TriggerEvent::NormalRecv
                },
                now,
            );
        }
        Source::Internal(m) => {
            side.internal_at[m] = NONE;
            side.trigger(
                TriggerEvent::TimerEnd {
                    machine: MachineId::from_raw(m),
                },
                now,
            );
        }
        Source::Action(m) => {
            side.action_at[m] = NONE;
            let machine = MachineId::from_raw(m);
            match side.action[m] {
                Act::Padding { bypass, replace } => {
                    let sent = match side.blocking {
                        None => {
                            transmit(side, other, cover, now);
                            true
                        }
                        Some(b) => {
                            let may_bypass = bypass && b.bypassable;
                            if replace && !side.queue.is_empty() {
                                if may_bypass {
                                    if let Some(p) = side.queue.pop_front() {
                                        if !p.cover {
                                            side.queued_data -= 1;
                                        }
                                        transmit(side, other, p, now);
                                    }
                                    true
                                } else {
                                    // Replaced by the packet already queued.
                                    false
                                }
                            } else if may_bypass {
                                transmit(side, other, cover, now);
                                true
                            } else {
                                side.queue.push_back(cover);
                                false
                            }
                        }
                    };
                    side.trigger(TriggerEvent::PaddingSent { machine }, now);
                    if sent {
                        side.trigger(TriggerEvent::TunnelSent, now);
                    }
                }
                Act::Block {
                    duration,
                    bypass,
                    replace,
                } => {
                    let until = after(now, duration);
                    side.blocking = Some(match side.blocking {
                        Some(b) if !replace && b.until >= until => b,
                        _ => Blocking {
                            until,
                            bypassable: bypass,
                        },
                    });
                    side.trigger(TriggerEvent::BlockingBegin { machine }, now);
                }
            }
        }
    }
}

/// Both directions in time order; outbound first at equal times (as [`crate::defend`] sorts).
fn merge(out: Vec<WirePacket>, inb: Vec<WirePacket>) -> Vec<WirePacket> {
    let mut all = Vec::with_capacity(out.len() + inb.len());
    let (mut i, mut j) = (0, 0);
    while i < out.len() && j < inb.len() {
        if out[i].t_ns <= inb[j].t_ns {
            all.push(out[i]);
            i += 1;
        } else {
            all.push(inb[j]);
            j += 1;
        }
    }
    all.extend_from_slice(&out[i..]);
    all.extend_from_slice(&inb[j..]);
    all
}
