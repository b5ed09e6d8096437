//! maybenot machines through `run_machines`: the no-op machine against hush's own immediate
//! framing, FRONT's cover, Tamaraw's and RegulaTor's blocking, conservation, determinism and bad
//! input, on hand-made traces and on real IoT Sentinel captures.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_defense::machines::{
    DEFAULT_PADDING_RECORD_BYTES, FrontParams, MachineSet, NAMES, NOOP_MACHINE, TamarawParams,
    run_machines,
};
use hush_defense::{DefenseError, Message, NetworkModel, WireKind, WirePacket, messages};
use hush_shape::{Engine, Instant, ScheduleSpec, Session, ShapeConfig};
use hush_trace::data::shared_data;
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::{Direction, ReadOptions, read_trace};

const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;

type Run = (Vec<WirePacket>, Vec<i64>, Vec<i64>);

fn msgs(list: &[(i64, u32)]) -> Vec<Message> {
    list.iter()
        .map(|&(t_ms, len)| Message {
            t_ns: t_ms * MS,
            len_bytes: len,
        })
        .collect()
}

/// Small messages, two at one instant, one spanning two records, in both directions.
fn small() -> (Vec<Message>, Vec<Message>) {
    let out = msgs(&[
        (0, 100),
        (1, 200),
        (1, 50),
        (5, 70_000),
        (2_000, 10),
        (3_500, 1400),
        (3_500, 127),
        (3_500, 128),
    ]);
    let inb = msgs(&[
        (2, 300),
        (6, 1200),
        (6, 1200),
        (2_500, 80_000),
        (2_501, 65_515),
        (4_000, 1),
    ]);
    (out, inb)
}

/// A minute of IoT-like chatter: request/response bursts every few seconds, a keep-alive every
/// 15 s, from a fixed LCG so the trace is the same on every run.
fn chatty() -> (Vec<Message>, Vec<Message>) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    let (mut out, mut inb) = (Vec::new(), Vec::new());
    let mut t = 100 * MS;
    while t < 60 * S {
        out.push(Message {
            t_ns: t,
            len_bytes: 80 + rnd(400) as u32,
        });
        let mut u = t + 30 * MS + rnd(20) as i64 * MS;
        for _ in 0..1 + rnd(6) {
            inb.push(Message {
                t_ns: u,
                len_bytes: 200 + rnd(1300) as u32,
            });
            u += rnd(3) as i64 * MS;
        }
        out.push(Message {
            t_ns: u + 5 * MS,
            len_bytes: 52 + rnd(40) as u32,
        });
        t += 2 * S + rnd(4000) as i64 * MS;
    }
    let mut k = 15 * S;
    while k < 60 * S {
        out.push(Message {
            t_ns: k,
            len_bytes: 4,
        });
        k += 15 * S;
    }
    out.sort_by_key(|m| m.t_ns);
    inb.sort_by_key(|m| m.t_ns);
    (out, inb)
}

fn end_of(out: &[Message], inb: &[Message]) -> i64 {
    out.iter().chain(inb).map(|m| m.t_ns).max().unwrap_or(0)
}

fn run(out: &[Message], inb: &[Message], m: &MachineSet, seed: u64, net: &NetworkModel) -> Run {
    run_machines(
        out,
        inb,
        m,
        seed,
        net,
        DEFAULT_PADDING_RECORD_BYTES,
        end_of(out, inb),
    )
    .unwrap()
}

fn noop() -> MachineSet {
    MachineSet::parse(&[NOOP_MACHINE], &[NOOP_MACHINE], 0).unwrap()
}

fn delayed() -> NetworkModel {
    NetworkModel {
        one_way_delay_s: 0.025,
        ..NetworkModel::default()
    }
}

fn bottleneck() -> NetworkModel {
    NetworkModel {
        one_way_delay_s: 0.01,
        uplink_bps: Some(50_000.0),
        downlink_bps: Some(200_000.0),
        ..NetworkModel::default()
    }
}

/// (size, real, framing) of the records hush's engine sends for `msgs` under the `immediate`
/// policy with no padding (messages due together share records); the close record left out.
fn hush_immediate(msgs: &[Message]) -> Vec<(u32, u32, u32)> {
    let config = ShapeConfig::new(ScheduleSpec::Unshaped);
    let (a, _b) = Session::unencrypted_pair_for_simulation();
    let mut tx = Engine::new(&config, a, 1, Instant::ZERO).unwrap();
    let mut buf = Vec::new();
    let mut records = Vec::new();
    let mut i = 0;
    while i < msgs.len() {
        let t = msgs[i].t_ns;
        let now = Instant::from_nanos(t as u64);
        while i < msgs.len() && msgs[i].t_ns == t {
            tx.shaper()
                .send_owned(now, vec![7; msgs[i].len_bytes as usize])
                .unwrap();
            i += 1;
        }
        while let Some(r) = tx.poll_transmit(now, &mut buf) {
            records.push((r.size_bytes, r.real_bytes, r.framing_bytes));
        }
    }
    records
}

fn of(packets: &[WirePacket], dir: Direction) -> Vec<WirePacket> {
    packets.iter().filter(|p| p.dir == dir).copied().collect()
}

fn cover(packets: &[WirePacket], dir: Direction) -> usize {
    packets
        .iter()
        .filter(|p| p.dir == dir && p.kind == WireKind::Cover)
        .count()
}

/// The properties every run must have, whatever the machines: each direction's real bytes all
/// delivered, every message delivered once and in order, never before its capture, packets in
/// time order and accounted exactly.
fn check_conservation(what: &str, out: &[Message], inb: &[Message], run: &Run, net: &NetworkModel) {
    let (packets, d_out, d_in) = run;
    assert!(
        packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns),
        "{what}: packets out of time order"
    );
    for (dir, ms, delays) in [
        (Direction::Outbound, out, d_out),
        (Direction::Inbound, inb, d_in),
    ] {
        let real: u64 = of(packets, dir)
            .iter()
            .map(|p| u64::from(p.real_bytes))
            .sum();
        let sent: u64 = ms.iter().map(|m| u64::from(m.len_bytes)).sum();
        assert_eq!(real, sent, "{what} {dir:?}: real bytes");
        assert_eq!(delays.len(), ms.len(), "{what} {dir:?}: messages delivered");
        assert!(
            delays.iter().all(|&d| d >= 0),
            "{what} {dir:?}: a message seen before its capture"
        );
        // In order: each message is seen no earlier than the one before it.
        let seen: Vec<i64> = ms.iter().zip(delays).map(|(m, d)| m.t_ns + d).collect();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "{what} {dir:?}: messages delivered out of order"
        );
        for p in of(packets, dir) {
            assert_eq!(p.frame_bytes, p.payload_bytes + net.header_bytes, "{what}");
            assert_eq!(p.padding_bytes, 0, "{what}");
            match p.kind {
                WireKind::Data => {
                    assert!(p.real_bytes > 0, "{what}: a data record without data");
                    assert_eq!(p.payload_bytes, p.real_bytes + p.framing_bytes, "{what}");
                    assert!(p.framing_bytes >= 22, "{what}: framing {p:?}");
                }
                WireKind::Cover => {
                    assert_eq!(p.payload_bytes, DEFAULT_PADDING_RECORD_BYTES, "{what}");
                    assert_eq!((p.real_bytes, p.framing_bytes), (0, 0), "{what}");
                }
                WireKind::Original => panic!("{what}: an original packet"),
            }
        }
    }
}

/// The no-op machine (or no machine at all) sends every message at once in hush's immediate
/// records: no cover, no delay.
fn check_unchanged(what: &str, out: &[Message], inb: &[Message], run: &Run, net: &NetworkModel) {
    check_conservation(what, out, inb, run, net);
    let (packets, d_out, d_in) = run;
    assert_eq!(
        cover(packets, Direction::Outbound),
        0,
        "{what}: outbound cover"
    );
    assert_eq!(
        cover(packets, Direction::Inbound),
        0,
        "{what}: inbound cover"
    );
    assert!(d_out.iter().chain(d_in).all(|&d| d == 0), "{what}: delay");
    for (dir, ms) in [(Direction::Outbound, out), (Direction::Inbound, inb)] {
        let got: Vec<(u32, u32, u32)> = of(packets, dir)
            .iter()
            .map(|p| (p.payload_bytes, p.real_bytes, p.framing_bytes))
            .collect();
        assert_eq!(got, hush_immediate(ms), "{what} {dir:?}: records");
        // Every record is seen when its messages were captured.
        let mut times: Vec<i64> = ms.iter().map(|m| m.t_ns).collect();
        times.dedup();
        let mut seen: Vec<i64> = of(packets, dir).iter().map(|p| p.t_ns).collect();
        seen.dedup();
        assert_eq!(seen, times, "{what} {dir:?}: times");
    }
}

#[test]
fn noop_machine_changes_nothing_but_framing() {
    let (out, inb) = small();
    for net in [NetworkModel::default(), delayed()] {
        for (name, m) in [("noop", noop()), ("no machines", MachineSet::default())] {
            let r = run(&out, &inb, &m, 1, &net);
            check_unchanged(name, &out, &inb, &r, &net);
        }
    }
    // By hand: 100 B in 22 + 1 + 100; 200 B and 50 B together in 22 + 2 + 200 + 1 + 50; 70,000 B
    // in a full record of 65,537 (3 varint bytes) and the 4,488 B left in 22 + 4,488.
    let r = run(&out, &inb, &noop(), 1, &NetworkModel::default());
    let o = of(&r.0, Direction::Outbound);
    let sizes: Vec<u32> = o.iter().take(4).map(|p| p.payload_bytes).collect();
    assert_eq!(sizes, [123, 275, 65_537, 4_510]);
    assert_eq!(o[2].framing_bytes, 25);
    assert_eq!(o[3].real_bytes, 4_488);
    assert_eq!(o[0].frame_bytes, 123 + 66);
}

#[test]
fn front_pads_both_directions_and_never_delays() {
    let (out, inb) = chatty();
    let p = FrontParams {
        padding_budget_max: 1000,
        ..FrontParams::default()
    };
    for net in [NetworkModel::default(), delayed()] {
        for seed in 0..4 {
            let m = MachineSet::front(&p, seed).unwrap();
            let r = run(&out, &inb, &m, seed, &net);
            check_conservation("front", &out, &inb, &r, &net);
            let (packets, d_out, d_in) = &r;
            assert!(
                d_out.iter().chain(d_in).all(|&d| d == 0),
                "FRONT delayed data"
            );
            for dir in [Direction::Outbound, Direction::Inbound] {
                let c: Vec<i64> = of(packets, dir)
                    .iter()
                    .filter(|p| p.kind == WireKind::Cover)
                    .map(|p| p.t_ns)
                    .collect();
                assert!(!c.is_empty(), "seed {seed}: no {dir:?} cover");
                // The window is seconds (maybenot-machines takes microseconds): padding spreads
                // over a second or more, not a burst.
                if c.len() >= 10 {
                    let span = c[c.len() - 1] - c[0];
                    assert!(span > S / 2, "seed {seed} {dir:?}: cover within {span} ns");
                }
            }
        }
    }
}

#[test]
fn conservation_for_every_named_defense() {
    let (out, inb) = chatty();
    let (s_out, s_in) = small();
    for &name in NAMES {
        for net in [NetworkModel::default(), delayed(), bottleneck()] {
            let m = MachineSet::named(name, 3).unwrap();
            let r = run(&out, &inb, &m, 3, &net);
            check_conservation(name, &out, &inb, &r, &net);
            let r = run(&s_out, &s_in, &m, 3, &net);
            check_conservation(name, &s_out, &s_in, &r, &net);
        }
    }
}

#[test]
fn same_seed_same_output() {
    let (out, inb) = chatty();
    let net = delayed();
    for name in ["front", "interspace", "regulator", "break-pad", "tamaraw"] {
        let a = run(&out, &inb, &MachineSet::named(name, 9).unwrap(), 9, &net);
        let b = run(&out, &inb, &MachineSet::named(name, 9).unwrap(), 9, &net);
        assert_eq!(a, b, "{name}: same seed, different output");
    }
    // A different seed draws different machines and different timings.
    let a = run(&out, &inb, &MachineSet::named("front", 9).unwrap(), 9, &net);
    let b = run(
        &out,
        &inb,
        &MachineSet::named("front", 10).unwrap(),
        10,
        &net,
    );
    assert_ne!(a.0, b.0, "FRONT ignores the seed");
    // The framework's own draws follow the seed too (same machines, other run seed).
    let m = MachineSet::named("interspace", 9).unwrap();
    assert_ne!(
        run(&out, &inb, &m, 9, &net).0,
        run(&out, &inb, &m, 11, &net).0
    );
}

#[test]
fn tamaraw_blocks_and_real_data_takes_the_padding_slots() {
    let (out, inb) = chatty();
    let net = NetworkModel::default();
    let p = TamarawParams::default();
    let r = run(&out, &inb, &MachineSet::tamaraw(&p).unwrap(), 5, &net);
    check_conservation("tamaraw", &out, &inb, &r, &net);
    let (packets, d_out, d_in) = &r;
    for (dir, d, gap) in [
        (Direction::Outbound, d_out, p.out_gap_s),
        (Direction::Inbound, d_in, p.in_gap_s),
    ] {
        assert!(d.iter().any(|&x| x > 0), "{dir:?}: Tamaraw delayed nothing");
        // A message waits at most for the queue ahead of it, one slot per record; in this sparse
        // trace that is a few slots.
        let max = *d.iter().max().unwrap();
        assert!(
            (max as f64) < 20.0 * gap * 1e9,
            "{dir:?}: a message waited {max} ns"
        );
        // While it runs, packets (real or cover) leave one slot apart: the most common gap
        // between packets is the slot.
        let t: Vec<i64> = of(packets, dir).iter().map(|p| p.t_ns).collect();
        let slot = (gap * 1e9).round() as i64;
        let at_slot = t.windows(2).filter(|w| w[1] - w[0] == slot).count();
        assert!(
            at_slot * 2 > t.len(),
            "{dir:?}: only {at_slot} of {} gaps are one slot",
            t.len()
        );
    }
    assert!(cover(packets, Direction::Outbound) > 0);
    assert!(cover(packets, Direction::Inbound) > 0);
}

#[test]
fn regulator_delays_real_data_and_reports_it() {
    let (out, inb) = chatty();
    for net in [NetworkModel::default(), delayed()] {
        let m = MachineSet::named("regulator", 0).unwrap();
        let r = run(&out, &inb, &m, 0, &net);
        check_conservation("regulator", &out, &inb, &r, &net);
        let (packets, d_out, d_in) = &r;
        // The gateway sends at its decaying rate and holds data back until a slot.
        assert!(
            d_in.iter().any(|&x| x > 0),
            "RegulaTor delayed no inbound data"
        );
        assert!(cover(packets, Direction::Inbound) > 0);
        // The delay reported is the one on the wire: a data record is seen at every message's
        // capture time plus its delay.
        let inbound = of(packets, Direction::Inbound);
        for (m, d) in inb.iter().zip(d_in) {
            let seen = m.t_ns + d;
            assert!(
                inbound
                    .iter()
                    .any(|p| p.t_ns == seen && p.kind == WireKind::Data),
                "no data record at the reported time {seen}"
            );
        }
        // The device's client machines are bounded by C = 1.77 s: no message waits longer
        // than that plus a slot.
        assert!(d_out.iter().all(|&x| x < 2 * S), "outbound waited too long");
    }
}

#[test]
fn bad_machines_are_refused_by_name() {
    let msg = |r: Result<MachineSet, DefenseError>| match r {
        Err(DefenseError::Param(m)) => m,
        other => panic!("expected a parameter error, got {other:?}"),
    };
    let m = msg(MachineSet::parse(&["02nonsense"], &[], 0));
    assert!(m.contains("02nonsense"), "{m}");
    let m = msg(MachineSet::parse(&[NOOP_MACHINE], &["front 100 1"], 0));
    assert!(m.contains("front 100 1"), "{m}");
    let m = msg(MachineSet::parse(&["not a machine"], &[], 0));
    assert!(m.contains("not a machine"), "{m}");
    // Parameters that maybenot-machines would panic on are errors, not panics.
    let m = msg(MachineSet::parse(&["front 1 1000000 2000000 5"], &[], 0));
    assert!(m.contains("front 1 1000000 2000000 5"), "{m}");
    msg(MachineSet::parse(
        &["regulator_server 0.5 0.94 3.55 3550 100"],
        &[],
        0,
    ));
    msg(MachineSet::named("tor", 0));
    msg(MachineSet::front(
        &FrontParams {
            window_min_s: 3.0,
            window_max_s: 2.0,
            ..FrontParams::default()
        },
        0,
    ));
    // Good strings of both kinds are accepted.
    let ok = MachineSet::parse(
        &[
            NOOP_MACHINE,
            "break_pad_client",
            "regulator_client 3.95 1.77",
        ],
        &["front 100 1000000 8000000 10", "interspace_server"],
        0,
    )
    .unwrap();
    assert_eq!(ok.client.len(), 1 + 1 + 3);
    // A padding size that is no record.
    let (out, inb) = small();
    let r = run_machines(&out, &inb, &noop(), 0, &NetworkModel::default(), 5, 0);
    assert!(matches!(r, Err(DefenseError::Param(_))));
}

/// Real captures: the device's own traffic, directions from its MAC file.
fn captures() -> Vec<(String, Vec<Message>, Vec<Message>, i64)> {
    let Some(dir) = shared_data("iot-sentinel") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (device, file) in [
        ("Withings", "Setup-A-1-STA.pcap"),
        ("HueSwitch", "Setup-A-1-STA.pcap"),
        ("D-LinkHomeHub", "Setup-C-2-STA.pcap"),
        ("TP-LinkPlugHS110", "Setup-A-1-STA.pcap"),
    ] {
        let path = dir.join(device).join(file);
        if !path.is_file() {
            hush_trace::data::skip(&format!("{} not found", path.display()));
            continue;
        }
        let mut trace = read_trace(&path, ReadOptions::default()).unwrap();
        trace.sort_by_time();
        let mac = read_device_mac_file(dir.join(device).join("_iotdevice-mac.txt")).unwrap();
        set_direction(&mut trace, &DeviceSpec::Mac(mac)).unwrap();
        let o = messages(&trace, Direction::Outbound);
        let i = messages(&trace, Direction::Inbound);
        out.push((format!("{device}/{file}"), o, i, trace.duration_ns()));
    }
    out
}

#[test]
fn real_captures() {
    for (name, out, inb, end) in captures() {
        assert!(!out.is_empty() && !inb.is_empty(), "{name}: one-sided");
        let net = NetworkModel::default();
        let go = |m: &MachineSet, net: &NetworkModel| {
            run_machines(&out, &inb, m, 4, net, DEFAULT_PADDING_RECORD_BYTES, end).unwrap()
        };
        let r = go(&noop(), &net);
        check_unchanged(&format!("{name} noop"), &out, &inb, &r, &net);
        for &defense in NAMES {
            for net in [NetworkModel::default(), bottleneck()] {
                let m = MachineSet::named(defense, 4).unwrap();
                let r = go(&m, &net);
                check_conservation(&format!("{name} {defense}"), &out, &inb, &r, &net);
                if defense == "front" {
                    assert!(r.1.iter().chain(&r.2).all(|&d| d == 0) || net.uplink_bps.is_some());
                    assert!(cover(&r.0, Direction::Outbound) + cover(&r.0, Direction::Inbound) > 0);
                }
            }
        }
    }
}
