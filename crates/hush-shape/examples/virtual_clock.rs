//! The engine on a virtual clock, no sockets: a device sends a few readings through Datta et al.'s
//! low-latency schedule and we print every record an eavesdropper would see.
//!
//! `cargo run -p hush-shape --example virtual_clock`

use std::time::Duration;

use hush_shape::{Engine, Instant, RecordKind, ScheduleSpec, Session, ShapeConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (device_session, gateway_session) = Session::in_memory_pair()?;
    let config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let mut device = Engine::new(&config, device_session, 7, Instant::ZERO)?;
    let mut gateway = Engine::new(&config, gateway_session, 8, Instant::ZERO)?;

    // Readings at 10 ms and 130 ms, one large upload at 160 ms.
    let sends = [(10, 60usize), (130, 60), (160, 700)];
    let end = Instant::ZERO + Duration::from_millis(500);
    let mut wire = Vec::new();
    let mut next = 0;
    println!(
        "{:>8} {:>6} {:>6} {:>5} {:>8}",
        "time_ms", "bytes", "kind", "real", "padding"
    );
    while let Some(deadline) = device.poll_timeout() {
        let send_at = sends
            .get(next)
            .map(|s| Instant::ZERO + Duration::from_millis(s.0));
        let now = send_at.map_or(deadline, |s| s.min(deadline));
        if now > end {
            break;
        }
        if send_at == Some(now) {
            device.send(now, &vec![1u8; sends[next].1])?;
            next += 1;
        }
        while let Some(t) = device.poll_transmit(now, &mut wire) {
            gateway.receive(&wire)?;
            let kind = if t.kind == RecordKind::Cover {
                "cover"
            } else {
                "data"
            };
            println!(
                "{:>8.1} {:>6} {:>6} {:>5} {:>8}",
                now.as_secs_f64() * 1e3,
                t.size_bytes,
                kind,
                t.real_bytes,
                t.padding_bytes
            );
        }
    }
    let mut delivered = Vec::new();
    while let Some(m) = gateway.poll_message() {
        delivered.push(m.len());
    }
    let s = device.stats();
    println!("\ndelivered message sizes: {delivered:?}");
    println!(
        "{} records, {} wire bytes = {} real + {} padding + {} framing + {} cover; mean delay {:.0} ms",
        s.records,
        s.wire_bytes,
        s.real_bytes,
        s.padding_bytes,
        s.framing_bytes,
        s.cover_bytes,
        s.mean_delay_s() * 1e3
    );
    Ok(())
}
