//! Each catalog defense against its definition on small hand-checkable traces, conservation on
//! real captures, and ILP's independence from the workload.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_defense::{DefenseSpec, NetworkModel, WireKind, WirePacket, defend};
use hush_trace::data::shared_data;
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::{Direction, Endpoint, Packet, Proto, ReadOptions, Trace, read_trace};

const S: i64 = 1_000_000_000;

/// A trace from (time in ms, direction, payload bytes).
fn trace(packets: &[(i64, Direction, u32)]) -> Trace {
    let dev = Endpoint {
        mac: None,
        ip: Some([192, 168, 1, 2].into()),
    };
    let srv = Endpoint {
        mac: None,
        ip: Some([93, 184, 216, 34].into()),
    };
    Trace {
        name: "hand".into(),
        packets: packets
            .iter()
            .map(|&(t_ms, dir, payload)| Packet {
                t_ns: 1_700_000_000 * S + t_ms * 1_000_000,
                frame_len: payload + 66,
                ip_len: payload + 52,
                payload_len: payload,
                proto: Proto::TCP,
                src_port: if dir == Direction::Outbound {
                    40000
                } else {
                    443
                },
                dst_port: if dir == Direction::Outbound {
                    443
                } else {
                    40000
                },
                src: hush_trace::EndpointId(u32::from(dir != Direction::Outbound)),
                dst: hush_trace::EndpointId(u32::from(dir == Direction::Outbound)),
                dir,
                ip_proto: 6,
            })
            .collect(),
        endpoints: vec![dev, srv],
        report: Default::default(),
    }
}

use Direction::{Inbound as In, Outbound as Out};

fn small() -> Trace {
    trace(&[
        (0, Out, 300),
        (40, In, 1200),
        (45, In, 1400),
        (500, Out, 80),
        (2000, In, 60),
        (3000, Out, 0),
    ])
}

fn of(d: &[WirePacket], dir: Direction) -> Vec<WirePacket> {
    d.iter().filter(|p| p.dir == dir).copied().collect()
}

fn run(t: &Trace, spec: &str, seed: u64) -> hush_defense::Defended {
    defend(
        t,
        &spec.parse::<DefenseSpec>().unwrap(),
        seed,
        &NetworkModel::default(),
    )
    .unwrap()
}

fn real_bytes(d: &[WirePacket], dir: Direction) -> u64 {
    d.iter()
        .filter(|p| p.dir == dir)
        .map(|p| u64::from(p.real_bytes))
        .sum()
}

#[test]
fn none_is_the_original() {
    let t = small();
    let d = run(&t, "none", 0);
    assert_eq!(d.packets.len(), t.packets.len());
    assert!(d.packets.iter().all(|p| p.kind == WireKind::Original));
    assert_eq!(d.overhead.bytes_added, 0);
    let back = d.to_trace(&t);
    assert_eq!(back.packets, t.packets);
}

#[test]
fn size_only_defenses_pad_each_packet() {
    let t = small();
    let mtu = run(&t, "pad-mtu", 0);
    // One record per packet with payload, every one 1448 B (1514 B frames); nothing delayed.
    assert_eq!(mtu.packets.len(), 5);
    assert!(
        mtu.packets
            .iter()
            .all(|p| p.payload_bytes == 1448 && p.frame_bytes == 1514)
    );
    assert_eq!(mtu.overhead.latency.max_s, 0.0);
    let pow2 = run(&t, "pad-pow2", 0);
    let sizes: Vec<u32> = pow2.packets.iter().map(|p| p.payload_bytes).collect();
    // 22 + varint + payload rounded up: 324 -> 512, 1224 -> 2048, 1424 -> 2048, 103 -> 128, 83 -> 128.
    assert_eq!(sizes, vec![512, 2048, 2048, 128, 128]);
    let rnd = run(&t, "random-pad:max_extra_bytes=10", 0);
    for (p, base) in rnd.packets.iter().zip([324u32, 1224, 1424, 103, 83]) {
        assert!(
            (base..=base + 10).contains(&p.payload_bytes),
            "{} vs {base}",
            p.payload_bytes
        );
    }
}

#[test]
fn tamaraw_pads_each_direction_to_a_multiple_of_l() {
    let t = small();
    let d = run(&t, "tamaraw:multiple_of=10", 0);
    let (o, i) = (of(&d.packets, Out), of(&d.packets, In));
    assert_eq!(o.len() % 10, 0, "{}", o.len());
    assert_eq!(i.len() % 10, 0, "{}", i.len());
    assert!(d.packets.iter().all(|p| p.payload_bytes == 698));
    // Outbound every 20 ms, inbound every 6 ms, from the start.
    assert!(o.windows(2).all(|w| w[1].t_ns - w[0].t_ns == 20_000_000));
    assert!(i.windows(2).all(|w| w[1].t_ns - w[0].t_ns == 6_000_000));
    // Each direction stops once its own data is sent and the count is a multiple: outbound's
    // last data is at 500 ms, inbound's at 2 s.
    assert!(o.last().unwrap().t_ns < i.last().unwrap().t_ns);
    assert_eq!(real_bytes(&d.packets, Out), 380);
    assert_eq!(real_bytes(&d.packets, In), 2660);
}

#[test]
fn buflo_runs_both_directions_in_lockstep_until_both_are_done() {
    let t = small();
    let d = run(&t, "buflo:min_duration_s=1", 0);
    let (o, i) = (of(&d.packets, Out), of(&d.packets, In));
    // Same rate both ways, and both stop together, after the later direction's data (2 s) and
    // after τ = 1 s.
    let times = |v: &[WirePacket]| v.iter().map(|p| p.t_ns).collect::<Vec<_>>();
    assert_eq!(times(&o), times(&i));
    assert!(o.last().unwrap().t_ns >= 2 * S);
    assert!(d.packets.iter().all(|p| p.payload_bytes == 1448));
    let d = run(&t, "buflo:min_duration_s=10", 0);
    assert_eq!(of(&d.packets, Out).len(), 500, "10 s at 20 ms");
}

#[test]
fn front_adds_zero_delay_cover_early_and_never_after_the_trace() {
    let t = small();
    for seed in 0..20 {
        let d = run(&t, "front:max_records=50,w_min_s=0.5,w_max_s=1", seed);
        assert_eq!(d.overhead.latency.max_s, 0.0, "FRONT never delays data");
        let end = t.packets.last().unwrap().t_ns - t.packets[0].t_ns;
        for dir in [Out, In] {
            let cover: Vec<_> = of(&d.packets, dir)
                .into_iter()
                .filter(|p| p.kind == WireKind::Cover)
                .collect();
            assert!(cover.len() <= 50);
            assert!(
                cover
                    .iter()
                    .all(|p| p.t_ns <= end && p.payload_bytes == 512)
            );
        }
        // The inbound side starts at the first inbound packet (40 ms).
        assert!(of(&d.packets, In).iter().all(|p| p.t_ns >= 40_000_000));
    }
    // Randomised per trace: different seeds, different amounts of cover.
    let counts: std::collections::BTreeSet<u64> = (0..20)
        .map(|s| run(&t, "front", s).overhead.cover_packets)
        .collect();
    assert!(counts.len() > 5);
}

#[test]
fn stp_masks_activity_in_whole_periods() {
    // q = 0: only real activity starts periods. One packet: one 1 s period at 10 kB/s, its
    // quota spent over 10 ticks x 2 directions of 500 B (cover), plus the packet itself.
    let t = trace(&[(0, Out, 100)]);
    let d = run(&t, "stp:q=0", 0);
    let cover: Vec<_> = d
        .packets
        .iter()
        .filter(|p| p.kind == WireKind::Cover)
        .collect();
    let data: Vec<_> = d
        .packets
        .iter()
        .filter(|p| p.kind == WireKind::Data)
        .collect();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].real_bytes, 100);
    let cover_bytes: u32 = cover.iter().map(|p| p.payload_bytes - 22).sum();
    assert_eq!(cover_bytes + 100, 10_000, "the period's quota, exactly");
    assert!(
        d.packets.iter().all(|p| p.t_ns < S),
        "nothing after the period"
    );
    // q = 1: every idle tick starts a period, so cover runs for the burst's whole window (10 s
    // after the last packet, as in iPET), both directions.
    let d = run(&t, "stp:q=1", 0);
    let last = d.packets.iter().map(|p| p.t_ns).max().unwrap();
    assert!(last >= 10 * S - 200_000_000, "{last}");
    assert!(of(&d.packets, In).len() > 50);
    // Data beyond the quota waits for the next period: 25 kB at once takes three periods.
    let t = trace(&[(0, Out, 25_000)]);
    let d = run(&t, "ipet-constant:q=0", 0);
    assert_eq!(real_bytes(&d.packets, Out), 25_000);
    let lat = d.overhead.latency.max_s;
    assert!((2.0..3.0).contains(&lat), "{lat}");
}

#[test]
fn ipet_random_budgets_are_shared_and_redrawn() {
    let t = trace(&[(0, Out, 30_000), (0, In, 100)]);
    let d = run(&t, "ipet-random:q=0", 3);
    assert_eq!(real_bytes(&d.packets, Out), 30_000);
    assert_eq!(real_bytes(&d.packets, In), 100);
    // ~12.5 kB per 5 s window for both directions together: the 30 kB message needs 3 windows.
    let lat = d.outbound.latency.max_s;
    assert!((10.0..=15.0).contains(&lat), "{lat}");
    let plus = run(&t, "ipet-random-plus", 3);
    assert_eq!(real_bytes(&plus.packets, Out), 30_000);
}

#[test]
fn ilp_is_independent_of_the_workload() {
    // An idle hour and a busy hour of the same (synthetic) device; the busy one stays within the
    // schedule's capacity, so the queue never overflows.
    let idle: Vec<(i64, Direction, u32)> = (0..60).map(|i| (i * 60_000, Out, 40)).collect();
    let busy: Vec<(i64, Direction, u32)> = (0..36_000)
        .map(|i| {
            (
                i * 100,
                if i % 3 == 0 { In } else { Out },
                10 + (i % 7) as u32,
            )
        })
        .collect();
    let (idle, busy) = (trace(&idle), trace(&busy));
    for spec in ["ilp-constant", "ilp-random"] {
        let a = run(&idle, spec, 42);
        let b = run(&busy, spec, 42);
        let shape = |d: &hush_defense::Defended| {
            d.packets
                .iter()
                .filter(|p| p.t_ns < 3500 * S)
                .map(|p| (p.t_ns, p.dir, p.payload_bytes))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shape(&a),
            shape(&b),
            "{spec}: the same seed gives the same wire, idle or busy"
        );
        assert!(b.overhead.real_bytes > 100 * a.overhead.real_bytes);
        // Different seeds: sizes and gaps are indistinguishable (two-sample KS, α = 0.01).
        let c = run(&busy, spec, 43);
        let gaps = |d: &hush_defense::Defended| {
            let o = of(&d.packets, Out);
            o.windows(2)
                .map(|w| (w[1].t_ns - w[0].t_ns) as f64)
                .collect::<Vec<_>>()
        };
        let sizes = |d: &hush_defense::Defended| {
            of(&d.packets, Out)
                .iter()
                .map(|p| f64::from(p.payload_bytes))
                .collect::<Vec<_>>()
        };
        for (what, x, y) in [
            ("gaps", gaps(&a), gaps(&c)),
            ("sizes", sizes(&a), sizes(&c)),
        ] {
            let d = ks(&x, &y);
            let crit = 1.628 * ((x.len() + y.len()) as f64 / (x.len() * y.len()) as f64).sqrt();
            assert!(
                d < crit,
                "{spec} {what}: idle vs busy D = {d:.4} >= {crit:.4}"
            );
        }
    }
}

fn ks(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

fn sentinel_captures(limit_per_device: usize) -> Vec<Trace> {
    let Some(dir) = shared_data("iot-sentinel") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut devices: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    devices.sort();
    for d in devices {
        let mac = read_device_mac_file(d.join("_iotdevice-mac.txt")).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
            .collect();
        files.sort();
        for f in files.into_iter().take(limit_per_device) {
            let mut t = read_trace(&f, ReadOptions::default()).unwrap();
            set_direction(&mut t, &DeviceSpec::Mac(mac)).unwrap();
            out.push(t);
        }
    }
    out
}

#[test]
fn every_defense_conserves_every_real_byte_on_real_captures() {
    let traces = sentinel_captures(1);
    for t in &traces {
        let want = |dir: Direction| -> u64 {
            t.packets
                .iter()
                .filter(|p| p.dir == dir)
                .map(|p| u64::from(p.payload_len))
                .sum()
        };
        for e in hush_defense::catalog() {
            let d = defend(t, &e.defaults, 7, &NetworkModel::default()).unwrap();
            for dir in [Out, In] {
                assert_eq!(
                    real_bytes(&d.packets, dir),
                    want(dir),
                    "{} on {}: {dir:?}",
                    e.name,
                    t.name
                );
            }
            assert!(
                d.packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns),
                "{} sorted",
                e.name
            );
            assert!(
                d.overhead.latency.messages
                    == t.packets
                        .iter()
                        .filter(|p| p.dir != Direction::Unknown && p.payload_len > 0)
                        .count() as u64
            );
            // Deterministic: same seed, same bytes.
            let again = defend(t, &e.defaults, 7, &NetworkModel::default()).unwrap();
            assert_eq!(d.packets, again.packets, "{} deterministic", e.name);
        }
    }
}

#[test]
fn a_slow_uplink_shows_the_delay_of_padding() {
    let t = trace(&[
        (0, Out, 1000),
        (1, Out, 1000),
        (2, Out, 1000),
        (3, Out, 1000),
    ]);
    let fast = run(&t, "pad-mtu", 0);
    let slow = defend(
        &t,
        &"pad-mtu".parse().unwrap(),
        0,
        &NetworkModel {
            uplink_bps: Some(15_140.0),
            ..NetworkModel::default()
        },
    )
    .unwrap();
    assert_eq!(fast.overhead.latency.max_s, 0.0);
    // Four 1448 B records on a 15,140 B/s link: each takes 0.1 s, so the fourth starts at ~0.3 s.
    assert!(
        (slow.overhead.latency.max_s - 0.297).abs() < 0.01,
        "{}",
        slow.overhead.latency.max_s
    );
}

#[test]
fn defended_traces_write_as_pcap_and_read_back() {
    let t = small();
    let d = run(&t, "ilp-random", 5);
    let out = d.to_trace(&t);
    let mut buf = Vec::new();
    hush_trace::write::write_pcap(&out, &mut buf, 1).unwrap();
    let back = hush_trace::read_from(&buf[..], "defended.pcap", ReadOptions::default()).unwrap();
    assert_eq!(back.packets.len(), d.packets.len());
    let sizes: Vec<u32> = back.packets.iter().map(|p| p.frame_len).collect();
    let want: Vec<u32> = d.packets.iter().map(|p| p.frame_bytes).collect();
    assert_eq!(sizes, want);
}
