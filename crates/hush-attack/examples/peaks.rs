//! Rate-peak event detection on NKU's Baidu plug against its phase list.
//!
//! `cargo run --release -p hush-attack --example peaks`

use hush_attack::labels::{check, read_phases};
use hush_attack::peaks::{PeakConfig, detect, score};
use hush_trace::device::{DeviceSpec, set_direction};
use hush_trace::{ReadOptions, read_trace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = hush_trace::data::shared_data("events")
        .ok_or("no data")?
        .join("nku-lifecycle/xiaodu_plug");
    let mut trace = read_trace(dir.join("xiaodu_plug.pcap"), ReadOptions::default())?;
    set_direction(&mut trace, &DeviceSpec::Infer)?;
    let phases = read_phases(&dir.join("xiaodu_plug.txt"), 8 * 3600)?;
    let (t0, t1) = (
        trace.packets[0].t_ns,
        trace.packets.last().map_or(0, |p| p.t_ns),
    );
    for w in check(&phases, t0, t1) {
        eprintln!("warning: {w}");
    }
    let events: Vec<_> = phases
        .into_iter()
        .filter(|e| !e.label.starts_with("idle"))
        .collect();
    println!(
        "{} packets over {:.0} s; {} events",
        trace.packets.len(),
        (t1 - t0) as f64 * 1e-9,
        events.len()
    );
    for (bin_s, min) in [
        (1.0, 300.0),
        (1.0, 2000.0),
        (1.0, 5000.0),
        (5.0, 2000.0),
        (5.0, 5000.0),
        (5.0, 8000.0),
    ] {
        let cfg = PeakConfig {
            bin_s,
            min_excess_bytes: min,
            ..PeakConfig::default()
        };
        print!("bin {bin_s} s, +{min} B: ");
        let peaks = detect(&trace.packets, &cfg);
        let s = score(&peaks, &events, 2.0, (t1 - t0) as f64 * 1e-9);
        println!(
            "{} detections, precision {:.2}, recall {:.2} ({}/{}), {:.1} false per hour",
            s.detections, s.precision, s.recall, s.found_events, s.events, s.false_per_hour
        );
    }
    Ok(())
}
