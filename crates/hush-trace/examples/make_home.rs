//! Build a realistic whole-home capture from IoT Sentinel's single-device captures, for benchmarks
//! and demos of `hush eval --data HOME.pcap --devices HOME-devices.csv`:
//!
//! ```text
//! cargo run --release -p hush-trace --example make_home -- OUT.pcap [--devices 15] [--hours 1]
//!     [--events 20] [--seed 0] [--from ../shared/data/iot-sentinel]
//! ```
//!
//! Picks `--devices` of the 31 device folders (seeded) and lays `--events` captures of each over
//! `--hours` (its captures in a seeded order, cycled when it has fewer, so every device is as busy)
//! at seeded random times that never overlap for one device, while different devices' captures
//! interleave freely, as a home's devices do. Bigger homes for memory benchmarks: raise `--hours`
//! and `--events` together (e.g. `--hours 24 --events 480`). Frames are
//! copied byte for byte with shifted timestamps, other hosts' frames (the router, the phone that
//! set the device up) included, as a gateway capture would hold them. Writes OUT.pcap and, beside
//! it, OUT-devices.csv (`mac,name,type`, the types being the IoT Sentinel paper's 27). Never commit
//! the output: it is derived from third-party data.

use std::path::{Path, PathBuf};

use hush_trace::dataset::IOT_SENTINEL_TYPES;
use hush_trace::device::read_device_mac_file;
use hush_trace::home::{MergePart, merge_captures};
use hush_trace::{ReadOptions, read_trace};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

/// 2024-01-01T00:00:00Z: the home's first possible packet.
const BASE_NS: i64 = 1_704_067_200_000_000_000;

struct Args {
    out: PathBuf,
    devices: usize,
    hours: f64,
    events: usize,
    seed: u64,
    from: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let usage =
        "usage: make_home OUT.pcap [--devices N] [--hours H] [--events N] [--seed S] [--from DIR]";
    let mut args = std::env::args().skip(1);
    let mut out = None;
    let mut parsed = Args {
        out: PathBuf::new(),
        devices: 15,
        hours: 1.0,
        events: 20,
        seed: 0,
        from: None,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value; {usage}"));
        let bad = |name: &str| format!("{name}: not a valid number; {usage}");
        match a.as_str() {
            "--devices" => parsed.devices = value(&a)?.parse().map_err(|_| bad(&a))?,
            "--hours" => parsed.hours = value(&a)?.parse().map_err(|_| bad(&a))?,
            "--events" => parsed.events = value(&a)?.parse().map_err(|_| bad(&a))?,
            "--seed" => parsed.seed = value(&a)?.parse().map_err(|_| bad(&a))?,
            "--from" => parsed.from = Some(PathBuf::from(value(&a)?)),
            "-h" | "--help" => return Err(usage.into()),
            _ if out.is_none() && !a.starts_with('-') => out = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected {a:?}; {usage}")),
        }
    }
    parsed.out = out.ok_or(usage)?;
    if parsed.devices == 0 || parsed.events == 0 || !(parsed.hours > 0.0 && parsed.hours < 1e5) {
        return Err(format!(
            "--devices and --events must be at least 1, --hours positive; {usage}"
        ));
    }
    Ok(parsed)
}

/// A capture to place: its file, first packet time and length, ns.
struct Capture {
    path: PathBuf,
    first_ns: i64,
    span_ns: i64,
}

fn captures_of(folder: &Path) -> Result<Vec<Capture>, Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "pcap"));
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let t = read_trace(&path, ReadOptions::default())?;
        if let Some(first) = t.packets.first() {
            out.push(Capture {
                first_ns: first.t_ns,
                span_ns: t.duration_ns(),
                path,
            });
        }
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let from = match &args.from {
        Some(d) => d.clone(),
        None => hush_trace::data::shared_data("iot-sentinel")
            .ok_or("no IoT Sentinel folder: pass --from DIR")?,
    };
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&from)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    folders.retain(|p| p.join("_iotdevice-mac.txt").is_file());
    folders.sort();
    let mut rng = StdRng::seed_from_u64(args.seed);
    folders.shuffle(&mut rng);
    folders.truncate(args.devices);
    folders.sort();
    let duration_ns = (args.hours * 3600e9) as i64;
    let mut parts = Vec::new();
    let mut csv = String::from("mac,name,type\n");
    for folder in &folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mac = read_device_mac_file(folder.join("_iotdevice-mac.txt"))?;
        let kind = IOT_SENTINEL_TYPES
            .iter()
            .find(|(device, _)| *device == name)
            .map_or(name.as_str(), |(_, t)| t);
        csv += &format!("{mac},{name},{kind}\n");
        let mut caps = captures_of(folder)?;
        caps.shuffle(&mut rng);
        let order: Vec<&Capture> = caps.iter().cycle().take(args.events).collect();
        // Random gaps that add up to the time the captures leave free: one device never runs
        // two captures at once.
        let busy_ns: i64 = order.iter().map(|c| c.span_ns + 1).sum();
        let free_ns = duration_ns - busy_ns;
        if free_ns < 0 {
            return Err(format!(
                "{name}: its captures take {:.0} s, more than --hours allows",
                busy_ns as f64 / 1e9
            )
            .into());
        }
        let weights: Vec<f64> = (0..=order.len()).map(|_| rng.random::<f64>()).collect();
        let total: f64 = weights.iter().sum();
        let mut t_ns = BASE_NS;
        for (c, w) in order.iter().zip(&weights) {
            t_ns += (free_ns as f64 * w / total) as i64;
            parts.push(MergePart {
                path: c.path.clone(),
                shift_ns: t_ns - c.first_ns,
                only_mac: None,
            });
            t_ns += c.span_ns + 1;
        }
    }
    let file = std::fs::File::create(&args.out)?;
    let frames = merge_captures(&parts, file)?;
    let stem = args
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "home".into());
    let devices_csv = args.out.with_file_name(format!("{stem}-devices.csv"));
    std::fs::write(&devices_csv, csv)?;
    println!(
        "{}: {frames} frames of {} captures from {} devices over {} h (seed {}); devices in {}",
        args.out.display(),
        parts.len(),
        folders.len(),
        args.hours,
        args.seed,
        devices_csv.display()
    );
    println!(
        "try: hush eval --data {} --devices {}",
        args.out.display(),
        devices_csv.display()
    );
    Ok(())
}
