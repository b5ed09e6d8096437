//! Every defense of the catalog on one real capture: what it costs.
//!
//! `cargo run --release -p hush-defense --example catalog_on_capture [CAPTURE]`
//! (default: an IoT Sentinel Withings setup capture from the shared data folder).

use hush_defense::{NetworkModel, catalog, defend};
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::{ReadOptions, read_trace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => hush_trace::data::shared_data("iot-sentinel")
            .ok_or("give a capture: no shared data folder")?
            .join("Withings/Setup-A-1-STA.pcap"),
    };
    let mut trace = read_trace(&path, ReadOptions::default())?;
    let mac = path
        .parent()
        .map(|d| d.join("_iotdevice-mac.txt"))
        .filter(|f| f.is_file());
    let spec = match mac {
        Some(f) => DeviceSpec::Mac(read_device_mac_file(&f)?),
        None => DeviceSpec::Infer,
    };
    set_direction(&mut trace, &spec)?;
    println!(
        "{}: {} packets over {:.1} s",
        path.display(),
        trace.packets.len(),
        trace.duration_ns() as f64 * 1e-9
    );
    println!(
        "{:<17} {:>8} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>7}",
        "defense", "packets", "bytes", "added%", "added/s", "cover%", "p50 s", "p99 s", "tail s"
    );
    for e in catalog() {
        let d = defend(&trace, &e.defaults, 1, &NetworkModel::default())?;
        let o = &d.overhead;
        println!(
            "{:<17} {:>8} {:>9} {:>8.1}% {:>8.0} {:>6.1}% {:>8.3} {:>8.3} {:>7.2}",
            e.name,
            o.defended_packets,
            o.defended_bytes,
            o.bytes_added_pct,
            o.added_bps,
            100.0 * o.cover_fraction,
            o.latency.p50_s,
            o.latency.p99_s,
            o.tail_s
        );
    }
    Ok(())
}
