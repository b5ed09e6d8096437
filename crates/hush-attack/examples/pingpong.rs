//! PingPong-style signatures for the TP-Link plug (PingPong's own captures): ON and OFF learnt
//! from the single-event captures and the first half of the 25-minute trace's events, then found
//! in its second half and scored against PingPong's timestamp file.
//!
//! The timestamp file's times are at UTC-7 (they fall outside the capture at the Pacific
//! standard UTC-8 of February), and its events alternate ON, OFF, ... (the first matches the ON
//! capture), which is how PingPong's experiments toggle the plug.
//!
//! `cargo run --release -p hush-attack --example pingpong`

use hush_attack::labels::{check, read_pingpong};
use hush_attack::signatures::{Pair, SignatureConfig, find, learn, pairs};
use hush_trace::device::{DeviceSpec, set_direction};
use hush_trace::{ReadOptions, read_trace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = hush_trace::data::shared_data("events")
        .ok_or("no data")?
        .join("pingpong-tplink");
    let plug = DeviceSpec::Mac("50:c7:bf:33:1f:09".parse()?);
    let read = |name: &str| -> Result<hush_trace::Trace, Box<dyn std::error::Error>> {
        let mut t = read_trace(dir.join(name), ReadOptions::default())?;
        set_direction(&mut t, &plug)?;
        Ok(t)
    };
    let long = read("wlan1.local.dns.pcap")?;
    let all = pairs(&long.packets);
    let (t0, t1) = (
        long.packets[0].t_ns,
        long.packets.last().map_or(0, |p| p.t_ns),
    );
    let events = read_pingpong(
        &dir.join("timestamps/tplink_switch/tplink-feb-13-2018.timestamps"),
        -7 * 3600,
        "toggle",
    )?;
    for w in check(&events, t0, t1) {
        eprintln!("warning: {w}");
    }
    let after = |t: i64| -> Vec<Pair> {
        all.iter()
            .filter(|p| p.t_ns >= t - 2_000_000_000 && p.t_ns <= t + 15_000_000_000)
            .copied()
            .collect()
    };
    let half = events.len() / 2;
    let cfg = SignatureConfig::default();
    let mut on_train = vec![pairs(&read("TP_LINK_LOCAL_ON.pcap")?.packets)];
    let mut off_train = vec![pairs(&read("TP_LINK_LOCAL_OFF.pcap")?.packets)];
    for (i, e) in events[..half].iter().enumerate() {
        if i % 2 == 0 {
            on_train.push(after(e.start_ns))
        } else {
            off_train.push(after(e.start_ns))
        }
    }
    let on = learn("on", &on_train, &cfg).ok_or("no ON signature")?;
    let off = learn("off", &off_train, &cfg).ok_or("no OFF signature")?;
    println!("ON  ({} instances): {:?}", on.instances, on.elements);
    println!("OFF ({} instances): {:?}", off.instances, off.elements);
    // Test on the second half of the trace only.
    let split = events[half].start_ns - 20_000_000_000;
    let test: Vec<Pair> = all.iter().filter(|p| p.t_ns >= split).copied().collect();
    let tol = 15_000_000_000i64;
    let (on_hits, off_hits) = (find(&on, &test, &cfg), find(&off, &test, &cfg));
    let mut right = 0;
    for (i, e) in events.iter().enumerate().skip(half) {
        let want = if i % 2 == 0 { &on_hits } else { &off_hits };
        let hit = want.iter().any(|&h| (h - e.start_ns).abs() <= tol);
        right += usize::from(hit);
        println!(
            "event {i} ({}): {}",
            if i % 2 == 0 { "ON" } else { "OFF" },
            if hit { "found" } else { "missed" }
        );
    }
    let n_test = events.len() - half;
    let stray = on_hits
        .iter()
        .chain(&off_hits)
        .filter(|&&h| !events[half..].iter().any(|e| (h - e.start_ns).abs() <= tol))
        .count();
    let hours = (t1 - split) as f64 * 1e-9 / 3600.0;
    println!(
        "recall {right}/{n_test}, {stray} false matches ({:.1} per hour)",
        stray as f64 / hours
    );

    // Supervised: a forest trained on the four single-event captures only (no capture on both
    // sides) classifies the window around each of the long trace's events as on or off.
    use hush_attack::events::{EventClassifier, EventWindow, capture_example, examples};
    let mut train = Vec::new();
    for (f, l) in [
        ("TP_LINK_LOCAL_ON.pcap", "on"),
        ("TP_LINK_REMOTE_ON.pcap", "on"),
        ("TP_LINK_REMOTE_CHARGING_ON.pcap", "on"),
        ("TP_LINK_LOCAL_OFF.pcap", "off"),
    ] {
        train.push(capture_example(&read(f)?, l));
    }
    let labelled: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, e)| hush_attack::labels::Event {
            label: if i % 2 == 0 { "on" } else { "off" }.into(),
            ..e.clone()
        })
        .collect();
    let w = EventWindow {
        before_s: 0.5,
        after_s: 3.0,
    };
    let test = examples(&long, &labelled, &w);
    let clf = EventClassifier::fit(&train, &hush_ml::ForestParams::default())?;
    let m = clf.score(&test)?;
    println!(
        "event classifier, trained on the 4 captures: accuracy {:.1}% over {} events",
        100.0 * m.accuracy,
        m.examples
    );
    // A split by time: also the first half of the long trace's events train; the second half tests.
    let mut more = train.clone();
    more.extend(examples(&long, &labelled[..half], &w));
    let bagged = hush_ml::ForestParams {
        max_features: hush_ml::MaxFeatures::All,
        ..hush_ml::ForestParams::default()
    };
    let clf = EventClassifier::fit(&more, &bagged)?;
    let m = clf.score(&examples(&long, &labelled[half..], &w))?;
    println!(
        "event classifier, split by time (+ first half): accuracy {:.1}% over {} events",
        100.0 * m.accuracy,
        m.examples
    );
    Ok(())
}
