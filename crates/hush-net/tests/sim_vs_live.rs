//! The simulator against the live transport: one IoT Sentinel capture replayed live through
//! hush-net on loopback with ILP random, and through hush-defense's simulator with the same
//! seeds. Same engine, so the same records; the only difference is the real clock.
//!
//! ILP random here has Datta et al.'s sizes, U[50, 200] B, but gaps ten times shorter,
//! U[20, 40] ms, so the test takes seconds rather than minutes; the comparison does not depend
//! on the rate.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ks_critical_01, ks_two_sample};
use hush_defense::{DefenseSpec, NetworkModel, WirePacket, defend, messages};
use hush_net::blocking::{Connection, Listener};
use hush_net::{Options, Tap};
use hush_shape::{Dist, ShapeConfig, Transmit};
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::{Direction, ReadOptions, read_trace};

#[derive(Default)]
struct Recorder(Mutex<Vec<(hush_shape::Instant, Transmit)>>);

impl Tap for Recorder {
    fn on_record(&self, record: &Transmit, now: hush_shape::Instant) {
        self.0.lock().unwrap().push((now, *record));
    }
}

/// Send `msgs` (time since `start`, length) on `conn` at their times.
fn replay(conn: &Connection, msgs: &[hush_defense::Message], start: Instant) {
    for m in msgs {
        let due = start + Duration::from_nanos(m.t_ns as u64);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        conn.send(&vec![0x42; m.len_bytes as usize]).unwrap();
    }
}

/// Record sizes and message counts: the same engine, so they must match whatever the clock did.
#[test]
fn the_simulator_predicts_the_live_tunnels_records() {
    simulator_against_live(false);
}

/// Timing and byte totals depend on the machine's clock and load, so they are measured by
/// `bench/live_timing.sh`, not asserted in the default test run.
#[test]
#[ignore = "wall-clock timing: bench/live_timing.sh runs it"]
fn the_simulator_predicts_the_live_tunnels_timing() {
    simulator_against_live(true);
}

fn simulator_against_live(timing: bool) {
    let Some(dir) = hush_trace::data::shared_data("iot-sentinel") else {
        return;
    };
    let path = dir.join("Withings/Setup-A-1-STA.pcap");
    let mut trace = read_trace(&path, ReadOptions::default()).unwrap();
    let mac = read_device_mac_file(dir.join("Withings/_iotdevice-mac.txt")).unwrap();
    set_direction(&mut trace, &DeviceSpec::Mac(mac)).unwrap();
    let (out_msgs, in_msgs) = (
        messages(&trace, Direction::Outbound),
        messages(&trace, Direction::Inbound),
    );
    let end = Duration::from_nanos(trace.duration_ns() as u64);

    let gap_s = Dist::uniform(0.02, 0.04);
    let size_bytes = Dist::uniform(50.0, 200.0);
    let spec = DefenseSpec::IlpRandom {
        gap_s: gap_s.clone(),
        size_bytes: size_bytes.clone(),
    };
    let config = ShapeConfig::new(hush_shape::ScheduleSpec::Random { gap_s, size_bytes });
    let seed: u64 = 2024;
    // The simulator's seeds: `seed` outbound, `seed + 0x9e3779b97f4a7c15` inbound.
    let in_seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let sim = defend(&trace, &spec, seed, &NetworkModel::default()).unwrap();

    // Live: the device connects, the gateway accepts; each replays its direction.
    let (gw_key, dev_key) = (
        hush_net::generate_keypair().unwrap(),
        hush_net::generate_keypair().unwrap(),
    );
    let (dev_tap, gw_tap) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let listener = Listener::bind(
        "127.0.0.1:0",
        &config,
        common::dup(&gw_key),
        None,
        Options::new(in_seed).with_tap(gw_tap.clone()),
    )
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let start = Arc::new(Mutex::new(None::<Instant>));
    let gateway = {
        let start = Arc::clone(&start);
        let in_msgs = in_msgs.clone();
        std::thread::spawn(move || {
            let conn = Arc::new(listener.accept().unwrap());
            let t0 = Instant::now();
            *start.lock().unwrap() = Some(t0);
            let sender = {
                let conn = Arc::clone(&conn);
                std::thread::spawn(move || {
                    replay(&conn, &in_msgs, t0);
                    std::thread::sleep((t0 + end).saturating_duration_since(Instant::now()));
                    conn.close_send().unwrap();
                })
            };
            let mut got = 0;
            while conn.recv().unwrap().is_some() {
                got += 1;
            }
            sender.join().unwrap();
            got
        })
    };
    let dev = Connection::connect(
        addr,
        &config,
        &dev_key,
        &gw_key.public(),
        Options::new(seed).with_tap(dev_tap.clone()),
    )
    .unwrap();
    let t0 = Instant::now();
    replay(&dev, &out_msgs, t0);
    std::thread::sleep((t0 + end).saturating_duration_since(Instant::now()));
    let dev_stats = dev.close_send().unwrap();
    let mut inbound_got = 0;
    while dev.recv().unwrap().is_some() {
        inbound_got += 1;
    }
    let outbound_got = gateway.join().unwrap();
    assert_eq!(outbound_got, out_msgs.len());
    assert_eq!(inbound_got, in_msgs.len());

    for (name, dir, tap) in [
        ("outbound", Direction::Outbound, &dev_tap),
        ("inbound", Direction::Inbound, &gw_tap),
    ] {
        let live = tap.0.lock().unwrap().clone();
        let simd: Vec<WirePacket> = sim
            .packets
            .iter()
            .filter(|p| p.dir == dir)
            .copied()
            .collect();
        // Record sizes: identical, record for record (the close record aside).
        let n = live.len().min(simd.len()) - 1;
        let live_sizes: Vec<u32> = live[..n].iter().map(|r| r.1.size_bytes).collect();
        let sim_sizes: Vec<u32> = simd[..n].iter().map(|p| p.payload_bytes).collect();
        assert_eq!(live_sizes, sim_sizes, "{name}: record sizes");
        if !timing {
            eprintln!("{name}: {n} records identical in size");
            continue;
        }
        // Overhead: wire bytes within 5% (the runs end at slightly different times).
        let live_bytes: u64 = live.iter().map(|r| u64::from(r.1.size_bytes)).sum();
        let sim_bytes: u64 = simd.iter().map(|p| u64::from(p.payload_bytes)).sum();
        let diff = (live_bytes as f64 - sim_bytes as f64).abs() / sim_bytes as f64;
        assert!(
            diff < 0.05,
            "{name}: live {live_bytes} B vs simulated {sim_bytes} B ({:.1}%)",
            diff * 100.0
        );
        // Timing: gaps between records, live (the driver's clock at each write) and simulated.
        let live_gaps: Vec<f64> = live[..n]
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).as_secs_f64())
            .collect();
        let sim_gaps: Vec<f64> = simd[..n]
            .windows(2)
            .map(|w| (w[1].t_ns - w[0].t_ns) as f64 * 1e-9)
            .collect();
        let d = ks_two_sample(&live_gaps, &sim_gaps);
        let crit = ks_critical_01(live_gaps.len(), Some(sim_gaps.len()));
        assert!(
            d < crit,
            "{name}: gap distributions differ, D = {d:.3} >= {crit:.3}"
        );
        // How far the live records were from their schedule.
        let late: Vec<f64> = live
            .iter()
            .map(|r| (r.0 - r.1.scheduled_at).as_secs_f64())
            .collect();
        let max_late = late.iter().copied().fold(0.0, f64::max);
        eprintln!(
            "{name}: {n} records identical in size; live {live_bytes} B vs simulated {sim_bytes} B ({:+.2}%); gap KS D = {d:.3} (critical {crit:.3}); live lateness max {:.2} ms",
            (live_bytes as f64 - sim_bytes as f64) / sim_bytes as f64 * 100.0,
            max_late * 1e3
        );
    }
    assert_eq!(
        dev_stats.real_bytes,
        out_msgs.iter().map(|m| u64::from(m.len_bytes)).sum::<u64>()
    );
}
