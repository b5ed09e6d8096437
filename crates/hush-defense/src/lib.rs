//! Defenses on recorded traffic: what a capture looks like after a defense, and what it cost.
//!
//! hush-defense drives hush-shape's engine (the one that runs live in hush-net) on a virtual
//! clock over a trace ([`sim`]), offers a catalog of named defenses with their published
//! defaults ([`catalog()`]), runs maybenot machines ([`machines`]) and cover periods
//! ([`periods`]), and accounts for every byte ([`overhead`]).
//!
//! ```no_run
//! use hush_defense::{defend, DefenseSpec, NetworkModel};
//! use hush_trace::{read_trace, ReadOptions};
//!
//! let mut trace = read_trace("capture.pcap", ReadOptions::default())?;
//! hush_trace::device::set_direction(&mut trace, &hush_trace::device::DeviceSpec::Infer)?;
//! let defense: DefenseSpec = "ilp-random".parse()?;
//! let out = defend(&trace, &defense, 42, &NetworkModel::default())?;
//! println!("{:.1}% more bytes, p99 delay {:.2} s", out.overhead.bytes_added_pct, out.overhead.latency.p99_s);
//! let defended = out.to_trace(&trace); // write with hush_trace::write::write_pcap
//! # let _ = defended;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod catalog;
pub mod machines;
pub mod observe;
pub mod overhead;
pub mod periods;
pub mod sim;

use hush_trace::{Direction, Endpoint, EndpointTable, Packet, Proto, Trace};
use serde::Serialize;

pub use catalog::{CatalogEntry, CloseAt, DefenseSpec, Plan, catalog};
pub use observe::{Observed, Placement, View};
pub use overhead::{Latency, Overhead};
pub use sim::{Message, NetworkModel, Span, WireKind, WirePacket};

/// Why a defense could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefenseError {
    /// A parameter is invalid or unknown (bad input).
    #[error("{0}")]
    Param(String),
    /// The engine refused something (a hush bug if it ever happens in a simulation).
    #[error("engine: {0}")]
    Engine(String),
}

impl From<hush_shape::DistError> for DefenseError {
    fn from(e: hush_shape::DistError) -> Self {
        DefenseError::Param(e.0)
    }
}

/// A defended trace and its accounts.
#[derive(Clone, Debug, Serialize)]
pub struct Defended {
    /// The defense, with every parameter (`name:key=value;...`).
    pub defense: String,
    /// The seed.
    pub seed: u64,
    /// Packets on the wire, in time order.
    #[serde(skip)]
    pub packets: Vec<WirePacket>,
    /// Both directions.
    pub overhead: Overhead,
    /// Device to network.
    pub outbound: Overhead,
    /// Network to device.
    pub inbound: Overhead,
    /// Original packets with an unknown direction (not the device's), left out.
    pub ignored_packets: u64,
    /// Original packets without a transport payload (ACKs, ARP, ...) that a tunnel does not
    /// carry as data.
    pub payloadless_packets: u64,
    /// Start of the original trace, nanoseconds since the epoch.
    pub t0_ns: i64,
    /// Every message's delay, nanoseconds (outbound then inbound), for pooling across traces.
    #[serde(skip)]
    pub delays_ns: Vec<i64>,
}

/// The messages of one direction: every packet with a transport payload, at its time.
pub fn messages(trace: &Trace, dir: Direction) -> Vec<Message> {
    messages_from(trace, dir, trace.packets.first().map_or(0, |p| p.t_ns))
}

/// The messages of one direction, times relative to `base_ns` (nanoseconds since the epoch).
fn messages_from(trace: &Trace, dir: Direction, t0: i64) -> Vec<Message> {
    trace
        .packets
        .iter()
        .filter(|p| p.dir == dir && p.payload_len > 0)
        .map(|p| Message {
            t_ns: p.t_ns - t0,
            len_bytes: p.payload_len,
        })
        .collect()
}

/// Apply `defense` to `trace` (directions set) with `seed`, as a session: the defense starts
/// with the capture and ends with it (or when its own rule says).
pub fn defend(
    trace: &Trace,
    defense: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
) -> Result<Defended, DefenseError> {
    defend_in(trace, defense, seed, net, None)
}

/// How an always-on defense runs around a capture, in nanoseconds relative to the capture's
/// first packet: shaping starts at `start_ns` (at or before the first packet, so the schedule's
/// state owes nothing to where the real traffic sits), the eavesdropper watches
/// `[watch_from_ns, watch_to_ns)`, and the engines are told to close at `watch_to_ns`: data
/// still queued then is delivered after it, and its delay counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlwaysOn {
    /// When shaping starts (at most 0, and at most `watch_from_ns`).
    pub start_ns: i64,
    /// Start of what the eavesdropper sees.
    pub watch_from_ns: i64,
    /// End of what the eavesdropper sees (exclusive), after the capture's last packet.
    pub watch_to_ns: i64,
}

/// Apply an always-on defense ([`DefenseSpec::always_on`]) over `run`: the defended packets
/// cover everything it sent (before, inside and after the watched span, times relative to the
/// capture's first packet and possibly negative), while the accounts count only what it sent
/// inside the watched span, over the span's length: an always-on link's bytes outside it belong
/// to the neighbouring spans. Every message's delay counts, delivered inside the span or after.
pub fn defend_always_on(
    trace: &Trace,
    defense: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
    run: AlwaysOn,
) -> Result<Defended, DefenseError> {
    if !defense.always_on() {
        return Err(DefenseError::Param(format!(
            "{} is not an always-on defense: it runs as a session",
            defense.name()
        )));
    }
    let last = trace
        .packets
        .iter()
        .map(|p| p.t_ns)
        .max()
        .zip(trace.packets.iter().map(|p| p.t_ns).min())
        .map_or(0, |(a, b)| a - b);
    if run.start_ns > 0.min(run.watch_from_ns) || run.watch_to_ns <= last {
        return Err(DefenseError::Param(format!(
            "an always-on run must start by the capture's first packet and its watch end after              its last: start {} ns, watch [{}, {}) ns, last packet {last} ns",
            run.start_ns, run.watch_from_ns, run.watch_to_ns
        )));
    }
    defend_in(trace, defense, seed, net, Some(run))
}

fn defend_in(
    trace: &Trace,
    defense: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
    always_on: Option<AlwaysOn>,
) -> Result<Defended, DefenseError> {
    net.validate()?;
    // Readers sort on load; a hand-built trace might not be.
    if !trace.packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns) {
        let mut sorted = trace.clone();
        sorted.sort_by_time();
        return defend_in(&sorted, defense, seed, net, always_on);
    }
    let t0 = trace.packets.first().map_or(0, |p| p.t_ns);
    // Engine time starts at `shift_ns` before the capture (always-on: the warm-up).
    let shift_ns = always_on.map_or(0, |a| -a.start_ns);
    let messages = |d: Direction| messages_from(trace, d, t0 - shift_ns);
    let end_ns = match always_on {
        Some(a) => a.watch_to_ns + shift_ns,
        None => trace.packets.last().map_or(0, |p| p.t_ns - t0),
    };
    let ignored = trace
        .packets
        .iter()
        .filter(|p| p.dir == Direction::Unknown)
        .count() as u64;
    let payloadless = trace
        .packets
        .iter()
        .filter(|p| p.dir != Direction::Unknown && p.payload_len == 0)
        .count() as u64;
    let (packets, mut delays_out, mut delays_in) = match defense.plan()? {
        Plan::Passthrough => {
            let packets = trace
                .packets
                .iter()
                .filter(|p| p.dir != Direction::Unknown)
                .map(|p| WirePacket {
                    t_ns: p.t_ns - t0,
                    dir: p.dir,
                    frame_bytes: p.frame_len,
                    payload_bytes: p.payload_len,
                    kind: WireKind::Original,
                    real_bytes: p.payload_len,
                    padding_bytes: 0,
                    framing_bytes: 0,
                })
                .collect::<Vec<_>>();
            let zeros = |d: Direction| vec![0i64; messages(d).len()];
            (
                packets,
                zeros(Direction::Outbound),
                zeros(Direction::Inbound),
            )
        }
        Plan::Machines { padding_bytes } => machines::run_machines(
            &messages(Direction::Outbound),
            &messages(Direction::Inbound),
            &defense.machine_set(seed)?,
            seed,
            net,
            padding_bytes,
            end_ns,
        )?,
        Plan::Periods(p) => periods::run_periods(
            &messages(Direction::Outbound),
            &messages(Direction::Inbound),
            &p,
            seed,
            net,
            always_on.map(|_| end_ns),
        )?,
        Plan::Engines {
            outbound,
            inbound,
            close,
            inbound_starts_at_first_packet,
        } => {
            let (out_msgs, in_msgs) = (messages(Direction::Outbound), messages(Direction::Inbound));
            let last = |m: &[Message]| m.last().map_or(0, |m| m.t_ns);
            let in_start = if inbound_starts_at_first_packet {
                trace
                    .packets
                    .iter()
                    .find(|p| p.dir == Direction::Inbound)
                    .map_or(0, |p| p.t_ns - t0 + shift_ns)
            } else {
                0
            };
            // Independent seeds per direction, both from the one seed.
            let in_seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let emit_close = close != CloseAt::TraceEnd;
            let run = |out_close: i64, in_close: i64| -> Result<_, DefenseError> {
                let o = sim::run_direction(
                    Direction::Outbound,
                    &out_msgs,
                    &outbound,
                    seed,
                    net,
                    Span {
                        start_ns: 0,
                        close_ns: out_close,
                        emit_close,
                    },
                )?;
                let i = sim::run_direction(
                    Direction::Inbound,
                    &in_msgs,
                    &inbound,
                    in_seed,
                    net,
                    Span {
                        start_ns: in_start,
                        close_ns: in_close,
                        emit_close,
                    },
                )?;
                Ok((o, i))
            };
            let (o, i) = match close {
                CloseAt::TraceEnd => run(end_ns, end_ns)?,
                CloseAt::LastData => run(last(&out_msgs), last(&in_msgs))?,
                CloseAt::JointDrain => {
                    // Each direction drains on its own first; then both close when the later one
                    // has. The schedules are data-independent, so the second run differs only in
                    // its tail.
                    let (o, i) = run(last(&out_msgs), last(&in_msgs))?;
                    let drained =
                        |r: &sim::DirectionRun| r.packets.iter().map(|p| p.t_ns).max().unwrap_or(0);
                    let both = drained(&o).max(drained(&i));
                    run(both, both)?
                }
            };
            let mut packets = o.packets;
            packets.extend(i.packets);
            packets.sort_by_key(|p| (p.t_ns, p.dir == Direction::Inbound));
            (packets, o.delays_ns, i.delays_ns)
        }
    };
    let mut packets = packets;
    if shift_ns != 0 {
        for p in &mut packets {
            p.t_ns -= shift_ns;
        }
    }
    let watch = always_on.map(|a| (a.watch_from_ns, a.watch_to_ns));
    let mut all: Vec<i64> = delays_out.iter().chain(&delays_in).copied().collect();
    let overhead = overhead::account_over(&trace.packets, t0, &packets, None, &mut all, watch);
    let delays_ns = all;
    let outbound = overhead::account_over(
        &trace.packets,
        t0,
        &packets,
        Some(Direction::Outbound),
        &mut delays_out,
        watch,
    );
    let inbound = overhead::account_over(
        &trace.packets,
        t0,
        &packets,
        Some(Direction::Inbound),
        &mut delays_in,
        watch,
    );
    Ok(Defended {
        defense: defense.to_string(),
        seed,
        packets,
        overhead,
        outbound,
        inbound,
        ignored_packets: ignored,
        payloadless_packets: payloadless,
        t0_ns: t0,
        delays_ns,
    })
}

/// Where the defended tunnel's far end is drawn in pcap output (TEST-NET-3, RFC 5737).
const GATEWAY_IP: [u8; 4] = [203, 0, 113, 1];
/// The tunnel's ports in pcap output.
const DEVICE_PORT: u16 = 50_000;
const GATEWAY_PORT: u16 = 7443;

impl Defended {
    /// The defended trace as packets, for pcap or CSV output and for attacks. Records are TCP
    /// segments between the device and a gateway; original packets (the `none` defense) keep
    /// their own endpoints and ports.
    pub fn to_trace(&self, original: &Trace) -> Trace {
        let device = device_endpoint(original);
        let mut table = EndpointTable::from_list(original.endpoints.clone());
        let dev_id = table.intern(device);
        let gw_id = table.intern(Endpoint {
            mac: None,
            ip: Some(std::net::IpAddr::from(GATEWAY_IP)),
        });
        let mut originals = original
            .packets
            .iter()
            .filter(|p| p.dir != Direction::Unknown);
        let mut packets = Vec::with_capacity(self.packets.len());
        for w in &self.packets {
            if w.kind == WireKind::Original {
                if let Some(p) = originals.next() {
                    packets.push(*p);
                }
                continue;
            }
            let (src, dst, sp, dp) = match w.dir {
                Direction::Outbound => (dev_id, gw_id, DEVICE_PORT, GATEWAY_PORT),
                _ => (gw_id, dev_id, GATEWAY_PORT, DEVICE_PORT),
            };
            packets.push(Packet {
                t_ns: self.t0_ns + w.t_ns,
                frame_len: w.frame_bytes,
                ip_len: w.frame_bytes.saturating_sub(14),
                payload_len: w.payload_bytes,
                proto: Proto::TCP,
                src_port: sp,
                dst_port: dp,
                src,
                dst,
                dir: w.dir,
                ip_proto: 6,
            });
        }
        let mut t = Trace {
            name: format!("{}#{}", original.name, self.defense),
            packets,
            endpoints: table.into_list(),
            report: Default::default(),
        };
        t.sort_by_time();
        t
    }
}

impl Defended {
    /// The accounts alone (the packets dropped), to keep many runs in memory.
    pub fn without_packets(mut self) -> Defended {
        self.packets = Vec::new();
        self
    }

    /// The defended trace as CSV, one row per packet:
    /// `time_s,direction,frame_bytes,payload_bytes,kind,real_bytes,padding_bytes,framing_bytes`
    /// (time since the original trace's start; direction `out` or `in`; kind `original`,
    /// `data` or `cover`).
    pub fn write_csv(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "time_s,direction,frame_bytes,payload_bytes,kind,real_bytes,padding_bytes,framing_bytes"
        )?;
        for p in &self.packets {
            let kind = match p.kind {
                WireKind::Original => "original",
                WireKind::Data => "data",
                WireKind::Cover => "cover",
            };
            let dir = if p.dir == Direction::Outbound {
                "out"
            } else {
                "in"
            };
            writeln!(
                out,
                "{:.9},{dir},{},{},{kind},{},{},{}",
                p.t_ns as f64 * 1e-9,
                p.frame_bytes,
                p.payload_bytes,
                p.real_bytes,
                p.padding_bytes,
                p.framing_bytes
            )?;
        }
        Ok(())
    }
}

/// The device's endpoint: the source of its first outbound packet.
fn device_endpoint(trace: &Trace) -> Endpoint {
    trace
        .packets
        .iter()
        .find(|p| p.dir == Direction::Outbound)
        .map(|p| *trace.endpoint(p.src))
        .unwrap_or(Endpoint {
            mac: None,
            ip: Some(std::net::IpAddr::from([192, 168, 1, 2])),
        })
}
