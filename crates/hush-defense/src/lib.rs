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
pub mod overhead;
pub mod periods;
pub mod sim;

use hush_trace::{Direction, Endpoint, EndpointTable, Packet, Proto, Trace};
use serde::Serialize;

pub use catalog::{CatalogEntry, CloseAt, DefenseSpec, Plan, catalog};
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
    let t0 = trace.packets.first().map_or(0, |p| p.t_ns);
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

/// Apply `defense` to `trace` (directions set) with `seed`.
pub fn defend(
    trace: &Trace,
    defense: &DefenseSpec,
    seed: u64,
    net: &NetworkModel,
) -> Result<Defended, DefenseError> {
    net.validate()?;
    // Readers sort on load; a hand-built trace might not be.
    if !trace.packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns) {
        let mut sorted = trace.clone();
        sorted.sort_by_time();
        return defend(&sorted, defense, seed, net);
    }
    let t0 = trace.packets.first().map_or(0, |p| p.t_ns);
    let end_ns = trace.packets.last().map_or(0, |p| p.t_ns - t0);
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
            let zeros = |d: Direction| vec![0i64; messages(trace, d).len()];
            (
                packets,
                zeros(Direction::Outbound),
                zeros(Direction::Inbound),
            )
        }
        Plan::Machines { padding_bytes } => machines::run_machines(
            &messages(trace, Direction::Outbound),
            &messages(trace, Direction::Inbound),
            &defense.machine_set(seed)?,
            seed,
            net,
            padding_bytes,
            end_ns,
        )?,
        Plan::Periods(p) => periods::run_periods(
            &messages(trace, Direction::Outbound),
            &messages(trace, Direction::Inbound),
            &p,
            seed,
            net,
        )?,
        Plan::Engines {
            outbound,
            inbound,
            close,
            inbound_starts_at_first_packet,
        } => {
            let (out_msgs, in_msgs) = (
                messages(trace, Direction::Outbound),
                messages(trace, Direction::Inbound),
            );
            let last = |m: &[Message]| m.last().map_or(0, |m| m.t_ns);
            let in_start = if inbound_starts_at_first_packet {
                trace
                    .packets
                    .iter()
                    .find(|p| p.dir == Direction::Inbound)
                    .map_or(0, |p| p.t_ns - t0)
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
    let mut all: Vec<i64> = delays_out.iter().chain(&delays_in).copied().collect();
    let overhead = overhead::account(&trace.packets, t0, &packets, None, &mut all);
    let delays_ns = all;
    let outbound = overhead::account(
        &trace.packets,
        t0,
        &packets,
        Some(Direction::Outbound),
        &mut delays_out,
    );
    let inbound = overhead::account(
        &trace.packets,
        t0,
        &packets,
        Some(Direction::Inbound),
        &mut delays_in,
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
