//! Property tests: any messages, any schedule, any chunking of the byte stream: everything
//! arrives intact and in order, and the accounts add up.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use proptest::prelude::*;

use hush_shape::{Dist, Engine, Instant, Policy, RecordKind, ScheduleSpec, Session, ShapeConfig};

fn message(i: usize, len: usize) -> Vec<u8> {
    // Content depends on the index and position, so a reordered or shifted byte shows.
    (0..len)
        .map(|j| (i.wrapping_mul(131) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8)
        .collect()
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![
            2 => Just(0usize),
            6 => 0usize..130,
            3 => 130usize..70_000,
            1 => 900_000usize..=1 << 20,
        ],
        0..20,
    )
}

fn schedules() -> impl Strategy<Value = (ScheduleSpec, Policy)> {
    prop_oneof![
        (23u32..2000).prop_map(|size| (
            ScheduleSpec::Constant {
                gap_s: 0.01,
                size_bytes: size
            },
            Policy::Pad
        )),
        (23u32..60_000, 0u32..5_000).prop_map(|(lo, span)| (
            ScheduleSpec::Random {
                gap_s: "exp:0.02".parse().unwrap(),
                size_bytes: Dist::uniform(f64::from(lo), f64::from((lo + span).min(65_537))),
            },
            Policy::Pad
        )),
        Just((ScheduleSpec::Unshaped, Policy::Immediate)),
        (23u32..1000).prop_map(|size| (
            ScheduleSpec::Constant {
                gap_s: 0.05,
                size_bytes: size
            },
            Policy::Immediate
        )),
    ]
}

/// Cut `stream` at the given points (taken modulo its length).
fn chunks(stream: &[u8], cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| (w[0], w[1])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn messages_arrive_whole_and_in_order(
        sizes in sizes(),
        (schedule, policy) in schedules(),
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<usize>(), 0..400),
    ) {
        let mut config = ShapeConfig::new(schedule);
        config.policy = policy;
        config.max_queue_bytes = 64 << 20;
        let (a, b) = Session::in_memory_pair().unwrap();
        let mut dev = Engine::new(&config, a, seed, Instant::ZERO).unwrap();
        let mut gw = Engine::new(&config, b, seed ^ 1, Instant::ZERO).unwrap();
        // Tiny records carry a few bytes each: cap message sizes there so a case stays under a
        // few hundred thousand records.
        let tiny = match &config.schedule {
            ScheduleSpec::Constant { size_bytes, .. } => *size_bytes < 200,
            _ => false,
        };
        let sizes: Vec<usize> = sizes.iter().map(|&n| if tiny { n.min(20_000) } else { n }).collect();
        let sent: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| message(i, n)).collect();
        for m in &sent {
            dev.send(Instant::ZERO, m).unwrap();
        }
        dev.close();

        let mut stream = Vec::new();
        let mut buf = Vec::new();
        let (mut real, mut data_records) = (0u64, 0u64);
        while let Some(t) = dev.poll_timeout() {
            while let Some(r) = dev.poll_transmit(t, &mut buf) {
                prop_assert_eq!(buf.len(), r.size_bytes as usize);
                if r.kind == RecordKind::Data {
                    prop_assert_eq!(r.size_bytes, r.real_bytes + r.padding_bytes + r.framing_bytes);
                    data_records += 1;
                }
                real += u64::from(r.real_bytes);
                stream.extend_from_slice(&buf);
            }
        }
        for (lo, hi) in chunks(&stream, &cuts) {
            gw.receive(&stream[lo..hi]).unwrap();
        }
        gw.receiver().finish().unwrap();
        let mut got = Vec::new();
        while let Some(m) = gw.poll_message() {
            got.push(m);
        }
        prop_assert_eq!(got.len(), sent.len());
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            prop_assert!(g == s, "message {} of {} bytes differs", i, s.len());
        }
        let s = dev.stats();
        let total: u64 = sizes.iter().map(|&n| n as u64).sum();
        prop_assert_eq!(s.wire_bytes, stream.len() as u64);
        prop_assert_eq!(s.real_bytes, total);
        prop_assert_eq!(real, total);
        prop_assert_eq!(s.data_records, data_records);
        prop_assert_eq!(s.wire_bytes, s.real_bytes + s.padding_bytes + s.framing_bytes + s.cover_bytes);
        prop_assert_eq!(s.messages_sent, sent.len() as u64);
        prop_assert_eq!(gw.receiver().stats().wire_bytes, stream.len() as u64);
    }
}

/// A million messages through one session. `cargo test --release -p hush-shape --test props --
/// --ignored` (about 5 s in release).
#[test]
#[ignore = "stress: a million messages; run with --ignored"]
fn stress_one_million_messages() {
    let mut config = ShapeConfig::new(ScheduleSpec::Random {
        gap_s: "exp:0.001".parse().unwrap(),
        size_bytes: Dist::uniform(23.0, 4000.0),
    });
    config.max_queue_bytes = 1 << 30;
    let (a, b) = Session::in_memory_pair().unwrap();
    let mut dev = Engine::new(&config, a, 5, Instant::ZERO).unwrap();
    let mut gw = Engine::new(&config, b, 6, Instant::ZERO).unwrap();
    const N: usize = 1_000_000;
    let len = |i: usize| (i * 2_654_435_761) % 300;
    let mut buf = Vec::new();
    let mut received = 0usize;
    let check = |gw: &mut Engine, received: &mut usize| {
        while let Some(m) = gw.poll_message() {
            assert_eq!(m, message(*received, len(*received)), "message {received}");
            *received += 1;
        }
    };
    for i in 0..N {
        dev.send(Instant::ZERO, &message(i, len(i))).unwrap();
        if i % 10_000 == 9_999 {
            // Drain as we go so the queue stays small.
            while dev.shaper().queued_messages() > 0 {
                let t = dev.poll_timeout().unwrap();
                while dev.poll_transmit(t, &mut buf).is_some() {
                    gw.receive(&buf).unwrap();
                }
            }
            check(&mut gw, &mut received);
        }
    }
    dev.close();
    while let Some(t) = dev.poll_timeout() {
        while dev.poll_transmit(t, &mut buf).is_some() {
            gw.receive(&buf).unwrap();
        }
    }
    gw.receiver().finish().unwrap();
    check(&mut gw, &mut received);
    assert_eq!(received, N);
    assert_eq!(dev.stats().messages_sent, N as u64);
}

/// Seal `plain` as the next record of `sealer`.
fn seal(sealer: &mut hush_shape::crypto::Sealer, plain: &[u8]) -> Vec<u8> {
    let mut rec = vec![0u8; 2 + plain.len() + 16];
    rec[..2].copy_from_slice(&((plain.len() + 16) as u16).to_be_bytes());
    sealer.seal(plain, &mut rec[2..]);
    rec
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// An authenticated but hostile (or buggy) peer: any plaintext in its records. The receiver
    /// never panics, never allocates for a claimed length, and whatever it delivers before an
    /// error is exactly what a correct parse of the same bytes gives.
    #[test]
    fn hostile_records_never_panic(
        records in prop::collection::vec(
            (any::<u8>(), prop::collection::vec(any::<u8>(), 0..300), 0usize..40),
            1..12,
        ),
    ) {
        let (a, b) = Session::in_memory_pair().unwrap();
        let (mut sealer, _) = a.split();
        let (_, opener) = b.split();
        let mut rx = hush_shape::Receiver::new(opener, 1 << 20);
        let mut delivered_bytes = 0usize;
        for (flags, data, pad) in records {
            // Mostly well-formed headers so the parse gets deep; sometimes garbage.
            let mut plain = vec![1u8, flags & 0x0f, 0, 0];
            plain[2..4].copy_from_slice(&(data.len() as u16).to_be_bytes());
            if flags & 0x80 != 0 {
                plain[0] = flags;
                plain[3] = plain[3].wrapping_add(flags);
            }
            plain.extend_from_slice(&data);
            plain.resize(plain.len() + pad, 0);
            let rec = seal(&mut sealer, &plain);
            let r = rx.receive(&rec);
            while let Some(m) = rx.poll_message() {
                delivered_bytes += m.len();
            }
            if r.is_err() {
                // Final: the next record is refused too.
                prop_assert!(rx.receive(&rec).is_err());
                break;
            }
        }
        prop_assert!(delivered_bytes <= 12 * 300);
    }
}

/// What an always-on engine emits over `[0, horizon)` with `messages` (send time in ms, length)
/// sent into it: (time, size, kind) per record. Unencrypted simulation sessions give the sizes
/// encrypted ones would.
fn emitted(
    config: &ShapeConfig,
    seed: u64,
    messages: &[(u64, usize)],
    horizon_ms: u64,
) -> Vec<(u64, u32, RecordKind)> {
    let (a, _b) = Session::unencrypted_pair_for_simulation();
    let mut e = Engine::new(config, a, seed, Instant::ZERO).unwrap();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut next = 0;
    let horizon = Instant::from_nanos(horizon_ms * 1_000_000);
    loop {
        let send_at = messages
            .get(next)
            .map(|&(ms, _)| Instant::from_nanos(ms * 1_000_000));
        let now = match (send_at, e.poll_timeout()) {
            (Some(s), Some(t)) => s.min(t),
            (Some(s), None) => s,
            (None, Some(t)) => t,
            (None, None) => break,
        };
        if now >= horizon {
            break;
        }
        while let Some(&(ms, len)) = messages.get(next) {
            if Instant::from_nanos(ms * 1_000_000) > now {
                break;
            }
            e.send(now, &message(next, len)).unwrap();
            next += 1;
        }
        while let Some(t) = e.poll_transmit(now, &mut buf) {
            out.push((now.as_nanos(), t.size_bytes, t.kind));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    /// The window view's premise: an always-on schedule's wire owes nothing to where the real
    /// traffic sits. Moving the same messages to another time leaves every record's time and
    /// size the same under `pad` (only which records carry data changes), and every cover
    /// record the same under `immediate` (the data records move with the data).
    #[test]
    fn moving_real_traffic_changes_nothing_an_always_on_schedule_emits(
        (schedule, policy) in schedules(),
        seed in any::<u64>(),
        lens in prop::collection::vec(0usize..3000, 0..12),
        gaps_ms in prop::collection::vec(0u64..400, 12),
        at_ms in 0u64..4_000,
        moved_ms in 0u64..4_000,
    ) {
        prop_assume!(schedule != ScheduleSpec::Unshaped);
        let mut config = ShapeConfig::new(schedule);
        config.policy = policy;
        config.max_queue_bytes = u64::MAX;
        let place = |start_ms: u64| -> Vec<(u64, usize)> {
            let mut t = start_ms;
            lens.iter().zip(&gaps_ms).map(|(&len, &g)| { t += g; (t, len) }).collect()
        };
        let horizon_ms = 10_000;
        let a = emitted(&config, seed, &place(at_ms), horizon_ms);
        let b = emitted(&config, seed, &place(moved_ms), horizon_ms);
        match policy {
            Policy::Pad => {
                let wire = |v: &[(u64, u32, RecordKind)]| -> Vec<(u64, u32)> {
                    v.iter().map(|&(t, s, _)| (t, s)).collect()
                };
                prop_assert_eq!(wire(&a), wire(&b));
            }
            Policy::Immediate => {
                let cover = |v: &[(u64, u32, RecordKind)]| -> Vec<(u64, u32)> {
                    v.iter().filter(|r| r.2 == RecordKind::Cover).map(|&(t, s, _)| (t, s)).collect()
                };
                prop_assert_eq!(cover(&a), cover(&b));
            }
        }
    }
}
