//! The simulated smart home: per-device packets, bytes per second and user events.
//!
//! ```text
//! cargo run --release -p hush-eval --example home
//! cargo run --release -p hush-eval --example home -- --seed 7 --duration-s 3600 --sessions 4
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use hush_eval::home::{
    HomeConfig, calibrated_rate_bytes_per_s, device_names, simulate_home_with_events,
};
use hush_trace::Direction;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("home: {err}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = HomeConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => cfg.seed = value()?.parse()?,
            "--duration-s" => cfg.duration_s = value()?.parse()?,
            "--sessions" => cfg.sessions_per_device = value()?.parse()?,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (use --seed N, --duration-s S, --sessions N)"
                )
                .into());
            }
        }
    }

    let started = Instant::now();
    let (ds, events) = simulate_home_with_events(&cfg)?;
    let elapsed = started.elapsed();
    println!(
        "{} devices × {} sessions × {} s, seed {}: {} packets, {} events in {:.1} ms",
        device_names().len(),
        cfg.sessions_per_device,
        cfg.duration_s,
        cfg.seed,
        ds.packet_count(),
        events.len(),
        elapsed.as_secs_f64() * 1e3
    );
    println!(
        "{:<14} {:>8} {:>8} {:>9} {:>9} {:>9} {:>11}  events",
        "device", "packets", "pkt/s", "out B/s", "in B/s", "B/s", "calibrated"
    );
    let seconds = cfg.duration_s * cfg.sessions_per_device as f64;
    for &device in device_names() {
        let (mut packets, mut out_bytes, mut in_bytes) = (0u64, 0u64, 0u64);
        for t in ds.traces.iter().filter(|t| t.label == device) {
            packets += t.trace.packets.len() as u64;
            for p in &t.trace.packets {
                match p.dir {
                    Direction::Outbound => out_bytes += u64::from(p.frame_len),
                    _ => in_bytes += u64::from(p.frame_len),
                }
            }
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for e in events.iter().filter(|e| e.device == device) {
            *counts.entry(e.event.as_str()).or_default() += 1;
        }
        let counts: Vec<String> = counts.iter().map(|(e, n)| format!("{e} {n}")).collect();
        let target = calibrated_rate_bytes_per_s(device).unwrap_or(f64::NAN);
        println!(
            "{:<14} {:>8} {:>8.3} {:>9.1} {:>9.1} {:>9.1} {:>11.1}  {}",
            device,
            packets,
            packets as f64 / seconds,
            out_bytes as f64 / seconds,
            in_bytes as f64 / seconds,
            (out_bytes + in_bytes) as f64 / seconds,
            target,
            counts.join(", ")
        );
    }
    Ok(())
}
