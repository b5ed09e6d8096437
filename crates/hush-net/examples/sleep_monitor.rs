//! A sleep-monitor-like device on loopback: replays the message sizes and times of a real
//! capture's outbound traffic through hush's blocking API to a receiver, then prints what the
//! shaping cost and what the eavesdropper would have seen.
//!
//! ```text
//! cargo run --release -p hush-net --example sleep_monitor                 # Withings capture, Datta high latency
//! cargo run --release -p hush-net --example sleep_monitor -- CAPTURE.pcap --schedule datta-low --speed 4
//! ```
//!
//! Without a capture argument it uses `iot-sentinel/Withings/Setup-A-1-STA.pcap` from the shared
//! data folder, or, when that is absent, a synthetic sleep monitor at the 143.78 B/s Datta et
//! al. measured for a Sense sleep monitor (a 144-byte reading each second). `--synthetic-bps R
//! --seconds S` sends 144-byte messages at R application bytes per second for S seconds (Datta
//! et al.'s Nestcam motion detector: 346).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hush_net::Options;
use hush_net::blocking::{Connection, Listener};
use hush_shape::{ScheduleSpec, ShapeConfig};
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::{Direction, ReadOptions, read_trace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut capture = None;
    let mut schedule = ScheduleSpec::datta_high_latency();
    let mut speed = 1.0f64;
    let mut synthetic_bps: Option<f64> = None;
    let mut seconds = 60.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--schedule" => {
                schedule = match args.next().as_deref() {
                    Some("datta-low") => ScheduleSpec::datta_low_latency(),
                    Some("datta-high") => ScheduleSpec::datta_high_latency(),
                    other => {
                        return Err(
                            format!("--schedule datta-low|datta-high, not {other:?}").into()
                        );
                    }
                }
            }
            "--speed" => {
                speed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--speed takes a number (2 = twice as fast)")?;
                if speed.is_nan() || speed <= 0.0 {
                    return Err("--speed must be positive".into());
                }
            }
            "--synthetic-bps" => {
                let r: f64 = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--synthetic-bps takes bytes per second")?;
                if r.is_nan() || r <= 0.0 {
                    return Err("--synthetic-bps must be positive".into());
                }
                synthetic_bps = Some(r);
            }
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a number")?;
            }
            path => capture = Some(std::path::PathBuf::from(path)),
        }
    }
    let capture = match synthetic_bps {
        Some(_) => None,
        None => capture.or_else(|| {
            hush_trace::data::shared_data("iot-sentinel")
                .map(|d| d.join("Withings/Setup-A-1-STA.pcap"))
        }),
    };

    // (seconds after start, message length)
    let (source, messages, original_bytes, span_s) = match &capture {
        Some(path) => {
            let mut trace = read_trace(path, ReadOptions::default())?;
            let mac_file = path
                .parent()
                .map(|d| d.join("_iotdevice-mac.txt"))
                .filter(|f| f.is_file());
            let spec = match mac_file {
                Some(f) => DeviceSpec::Mac(read_device_mac_file(&f)?),
                None => DeviceSpec::Infer,
            };
            set_direction(&mut trace, &spec)?;
            let t0 = trace.packets.first().map_or(0, |p| p.t_ns);
            let out: Vec<_> = trace
                .packets
                .iter()
                .filter(|p| p.dir == Direction::Outbound)
                .collect();
            let original: u64 = out.iter().map(|p| u64::from(p.frame_len)).sum();
            let msgs: Vec<(f64, usize)> = out
                .iter()
                .filter(|p| p.payload_len > 0)
                .map(|p| ((p.t_ns - t0) as f64 * 1e-9 / speed, p.payload_len as usize))
                .collect();
            let span = trace.duration_ns() as f64 * 1e-9 / speed;
            (path.display().to_string(), msgs, original, span)
        }
        None => {
            // 144-byte readings, spaced to give the requested rate of application bytes.
            let bps = synthetic_bps.unwrap_or(143.78);
            let gap_s = 144.0 / bps;
            let n = (seconds / gap_s).floor() as usize;
            let msgs: Vec<(f64, usize)> = (0..n).map(|i| (i as f64 * gap_s / speed, 144)).collect();
            let name = format!("synthetic device, 144-byte messages at {bps} B/s");
            (name, msgs, n as u64 * 144, seconds / speed)
        }
    };
    let config = ShapeConfig::new(schedule);
    println!(
        "device traffic: {source}: {} messages over {span_s:.1} s",
        messages.len()
    );

    let (gateway_key, device_key) = (hush_net::generate_keypair()?, hush_net::generate_keypair()?);
    let gateway_public = gateway_key.public();
    let listener = Listener::bind(
        "127.0.0.1:0",
        &config,
        gateway_key,
        Some(vec![device_key.public()]),
        Options::new(1),
    )?;
    let addr = listener.local_addr()?;
    let arrivals: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let receiver = {
        let arrivals = Arc::clone(&arrivals);
        std::thread::spawn(move || -> Result<(), hush_net::NetError> {
            let conn = listener.accept()?;
            while let Some(m) = conn.recv()? {
                arrivals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((Instant::now(), m.len()));
            }
            conn.close().map(|_| ())
        })
    };

    let conn = Connection::connect(addr, &config, &device_key, &gateway_public, Options::new(2))?;
    let start = Instant::now();
    let mut sent_at = Vec::with_capacity(messages.len());
    for &(t, len) in &messages {
        let due = start + Duration::from_secs_f64(t);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // The payload bytes are not in the capture (it is encrypted traffic); their sizes are.
        conn.send(&vec![0x5a; len])?;
        sent_at.push(Instant::now());
    }
    let stats = conn.close()?;
    receiver.join().map_err(|_| "receiver thread panicked")??;
    let elapsed = start.elapsed().as_secs_f64();

    let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
    if arrivals.len() != messages.len() || arrivals.iter().zip(&messages).any(|(a, m)| a.1 != m.1) {
        return Err(format!(
            "{} of {} messages arrived with the right sizes",
            arrivals.len(),
            messages.len()
        )
        .into());
    }
    let mut delays: Vec<f64> = arrivals
        .iter()
        .zip(&sent_at)
        .map(|(a, s)| (a.0 - *s).as_secs_f64())
        .collect();
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        delays
            .get(((delays.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let per_s = |b: u64| b as f64 / elapsed;
    let ip = stats.wire_bytes + 52 * stats.records;
    println!("schedule: {} (Datta et al.)", config.schedule.kind());
    println!(
        "all {} messages arrived whole and in order ({} bytes)",
        messages.len(),
        stats.real_bytes
    );
    println!(
        "device's own traffic {:.1} B/s over {span_s:.1} s; shaped tunnel {:.1} B/s of records, {:.1} B/s with TCP/IPv4 headers, over {elapsed:.1} s (until the queue drained)",
        original_bytes as f64 / span_s.max(1e-9),
        per_s(stats.wire_bytes),
        per_s(ip)
    );
    println!(
        "records {} ({} cover); bytes: real {} + padding {} + framing {} + cover {} = {}",
        stats.records,
        stats.cover_records,
        stats.real_bytes,
        stats.padding_bytes,
        stats.framing_bytes,
        stats.cover_bytes,
        stats.wire_bytes
    );
    println!(
        "message delay (send to delivery): p50 {:.3} s, p95 {:.3} s, max {:.3} s",
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
    Ok(())
}
