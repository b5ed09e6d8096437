//! Activity inference on the shared event captures: rate peaks on NKU's plug, PingPong
//! signatures on the TP-Link plug, and label files read as the data has them.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_attack::labels::{check, read_phases, read_pingpong};
use hush_attack::peaks::{PeakConfig, detect, score};
use hush_attack::signatures::{Pair, SignatureConfig, find, learn, pairs};
use hush_trace::device::{DeviceSpec, set_direction};
use hush_trace::{ReadOptions, read_trace};

#[test]
fn rate_peaks_find_the_plugs_events() {
    let Some(dir) = hush_trace::data::shared_data("events") else {
        return;
    };
    let dir = dir.join("nku-lifecycle/xiaodu_plug");
    let mut trace = read_trace(dir.join("xiaodu_plug.pcap"), ReadOptions::default()).unwrap();
    set_direction(&mut trace, &DeviceSpec::Infer).unwrap();
    let phases = read_phases(&dir.join("xiaodu_plug.txt"), 8 * 3600).unwrap();
    assert_eq!(phases.len(), 15);
    let (t0, t1) = (trace.packets[0].t_ns, trace.packets.last().unwrap().t_ns);
    assert!(
        check(&phases, t0, t1).is_empty(),
        "{:?}",
        check(&phases, t0, t1)
    );
    // At UTC+0 the phases miss the capture by eight hours: a warning, not silence.
    let wrong = read_phases(&dir.join("xiaodu_plug.txt"), 0).unwrap();
    assert!(check(&wrong, t0, t1)[0].contains("outside the capture"));
    let events: Vec<_> = phases
        .into_iter()
        .filter(|e| !e.label.starts_with("idle"))
        .collect();
    let s = score(
        &detect(&trace.packets, &PeakConfig::default()),
        &events,
        2.0,
        (t1 - t0) as f64 * 1e-9,
    );
    assert!(s.recall >= 0.9, "{s:?}");
    assert!(s.precision > 0.2, "{s:?}");
}

#[test]
fn pingpong_signatures_find_on_and_off() {
    let Some(dir) = hush_trace::data::shared_data("events") else {
        return;
    };
    let dir = dir.join("pingpong-tplink");
    let plug = DeviceSpec::Mac("50:c7:bf:33:1f:09".parse().unwrap());
    let read = |n: &str| {
        let mut t = read_trace(dir.join(n), ReadOptions::default()).unwrap();
        set_direction(&mut t, &plug).unwrap();
        t
    };
    let long = read("wlan1.local.dns.pcap");
    let all = pairs(&long.packets);
    let ts = dir.join("timestamps/tplink_switch/tplink-feb-13-2018.timestamps");
    let (t0, t1) = (long.packets[0].t_ns, long.packets.last().unwrap().t_ns);
    // The file's times are at UTC-7; at UTC-8 every event misses the capture.
    assert!(!check(&read_pingpong(&ts, -8 * 3600, "x").unwrap(), t0, t1).is_empty());
    let events = read_pingpong(&ts, -7 * 3600, "toggle").unwrap();
    assert!(check(&events, t0, t1).is_empty());
    assert_eq!(events.len(), 12);
    let after = |t: i64| -> Vec<Pair> {
        all.iter()
            .filter(|p| p.t_ns >= t - 2_000_000_000 && p.t_ns <= t + 15_000_000_000)
            .copied()
            .collect()
    };
    let cfg = SignatureConfig::default();
    // Learn from the single-event captures and the first half; test on the second half.
    let mut on = vec![pairs(&read("TP_LINK_LOCAL_ON.pcap").packets)];
    let mut off = vec![pairs(&read("TP_LINK_LOCAL_OFF.pcap").packets)];
    for (i, e) in events[..6].iter().enumerate() {
        if i % 2 == 0 {
            on.push(after(e.start_ns))
        } else {
            off.push(after(e.start_ns))
        }
    }
    let (on, off) = (
        learn("on", &on, &cfg).unwrap(),
        learn("off", &off, &cfg).unwrap(),
    );
    assert_ne!(
        on.elements, off.elements,
        "ON and OFF differ (556 vs 557 bytes)"
    );
    let split = events[6].start_ns - 20_000_000_000;
    let test: Vec<Pair> = all.iter().filter(|p| p.t_ns >= split).copied().collect();
    let (on_hits, off_hits) = (find(&on, &test, &cfg), find(&off, &test, &cfg));
    let tol = 15_000_000_000;
    for (i, e) in events.iter().enumerate().skip(6) {
        let (right, wrong) = if i % 2 == 0 {
            (&on_hits, &off_hits)
        } else {
            (&off_hits, &on_hits)
        };
        assert!(
            right.iter().any(|&h| (h - e.start_ns).abs() <= tol),
            "event {i} missed"
        );
        assert!(
            !wrong.iter().any(|&h| (h - e.start_ns).abs() <= tol),
            "event {i} named wrong"
        );
    }
    assert_eq!(on_hits.len() + off_hits.len(), 6, "no false matches");
}
