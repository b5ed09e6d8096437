//! maybenot machines through hush's `run_machines` and through maybenot-simulator's own `sim`,
//! on the same IoT captures: packets each puts on the wire, and how fast, on one core.
//!
//! `cargo run --release -p hush-defense --example maybenot_compare [--reps N] [--only NAME]
//! [--hush-only] [CAPTURE...]` (default: every IoT Sentinel capture in the shared data folder;
//! `--reps` repeats each run to time it more steadily, `--only` runs one defense of
//! `machines::NAMES`, `--hush-only` skips maybenot-simulator, for profiling).
//!
//! maybenot-simulator runs in its packet-count mode (every packet one unit, no sizes), with a
//! seeded RNG, no integration delays, the same one-way delay (0) and its default stop at the last
//! normal packet (capped at four times hush's packet count in network events, as some machines
//! run on for millions of packets past it); hush's run goes to the end of the trace and frames every message as a hush
//! record. So the packet counts differ a little; the rates (packets out per second of CPU) are
//! what to compare.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hush_defense::machines::{DEFAULT_PADDING_RECORD_BYTES, MachineSet, NAMES, run_machines};
use hush_defense::{Message, NetworkModel, messages};
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::{Direction, ReadOptions, read_trace};
use maybenot::TriggerEvent;
use maybenot_simulator::network::Network;
use maybenot_simulator::{SimulatorArgs, parse_trace, sim_advanced};

struct Capture {
    out: Vec<Message>,
    inb: Vec<Message>,
    end_ns: i64,
    /// The trace in maybenot-simulator's format: `time_ns,s|r` lines.
    text: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut reps = 1usize;
    let mut only: Option<String> = None;
    let mut hush_only = false;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--reps" {
            reps = args.next().ok_or("--reps N")?.parse()?;
        } else if a == "--only" {
            only = Some(args.next().ok_or("--only NAME")?);
        } else if a == "--hush-only" {
            hush_only = true;
        } else {
            paths.push(PathBuf::from(a));
        }
    }
    if paths.is_empty() {
        let dir = hush_trace::data::shared_data("iot-sentinel")
            .ok_or("give captures: no shared data folder")?;
        for device in std::fs::read_dir(&dir)? {
            let device = device?.path();
            if device.is_dir() {
                for f in std::fs::read_dir(&device)? {
                    let f = f?.path();
                    if f.extension().is_some_and(|e| e == "pcap") {
                        paths.push(f);
                    }
                }
            }
        }
        paths.sort();
    }
    let captures = paths
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let n_msgs: usize = captures.iter().map(|c| c.out.len() + c.inb.len()).sum();
    println!(
        "{} captures, {} messages, {} repetitions",
        captures.len(),
        n_msgs,
        reps
    );
    println!(
        "{:<11} {:>10} {:>8} {:>11} {:>10} {:>8} {:>11} {:>7}",
        "machines",
        "hush pkts",
        "hush s",
        "hush pkt/s",
        "mbnt pkts",
        "mbnt s",
        "mbnt pkt/s",
        "ratio"
    );
    let net = NetworkModel::default();
    for &name in NAMES {
        if only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        // Machines are drawn once per capture (outside the timing), as a defense would be.
        let sets = (0..captures.len())
            .map(|i| MachineSet::named(name, i as u64))
            .collect::<Result<Vec<_>, _>>()?;
        let mut hush_pkts = 0usize;
        let mut hush_t = Duration::ZERO;
        // Per capture, hush's packet count: maybenot-simulator stops at four times as many
        // network events (a packet is two: sent and received), since machines such as Tamaraw
        // can keep it going for millions of packets past the last normal one.
        let mut caps = vec![0usize; captures.len()];
        for _ in 0..reps {
            for (i, (c, m)) in captures.iter().zip(&sets).enumerate() {
                let t = Instant::now();
                let (p, _, _) = run_machines(
                    &c.out,
                    &c.inb,
                    m,
                    i as u64,
                    &net,
                    DEFAULT_PADDING_RECORD_BYTES,
                    c.end_ns,
                )?;
                hush_t += t.elapsed();
                hush_pkts += p.len();
                caps[i] = 4 * p.len() + 100;
            }
        }
        let mut mb_pkts = 0usize;
        let mut mb_t = Duration::ZERO;
        for _ in 0..if hush_only { 0 } else { reps } {
            for (i, (c, m)) in captures.iter().zip(&sets).enumerate() {
                let t = Instant::now();
                let network = Network::new(Duration::ZERO, None);
                let mut sq = parse_trace(&c.text, network);
                let mut args = SimulatorArgs::new(network, caps[i], true);
                args.insecure_rng_seed = Some(i as u64);
                let trace = sim_advanced(&m.client, &m.server, &mut sq, &args);
                mb_t += t.elapsed();
                mb_pkts += trace
                    .iter()
                    .filter(|e| e.event == TriggerEvent::TunnelSent)
                    .count();
            }
        }
        let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
        let (hr, mr) = (rate(hush_pkts, hush_t), rate(mb_pkts, mb_t));
        println!(
            "{:<11} {:>10} {:>8.3} {:>11.0} {:>10} {:>8.3} {:>11.0} {:>6.1}x",
            name,
            hush_pkts,
            hush_t.as_secs_f64(),
            hr,
            mb_pkts,
            mb_t.as_secs_f64(),
            mr,
            hr / mr
        );
    }
    Ok(())
}

fn load(path: &Path) -> Result<Capture, Box<dyn std::error::Error>> {
    let mut trace = read_trace(path, ReadOptions::default())?;
    trace.sort_by_time();
    let mac = path
        .parent()
        .map(|d| d.join("_iotdevice-mac.txt"))
        .filter(|f| f.is_file());
    let spec = match mac {
        Some(f) => DeviceSpec::Mac(read_device_mac_file(&f)?),
        None => DeviceSpec::Infer,
    };
    set_direction(&mut trace, &spec)?;
    let out = messages(&trace, Direction::Outbound);
    let inb = messages(&trace, Direction::Inbound);
    let mut all: Vec<(i64, char)> = out
        .iter()
        .map(|m| (m.t_ns, 's'))
        .chain(inb.iter().map(|m| (m.t_ns, 'r')))
        .collect();
    all.sort();
    let text = all
        .iter()
        .map(|(t, d)| format!("{t},{d}"))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Capture {
        out,
        inb,
        end_ns: trace.duration_ns(),
        text,
    })
}
