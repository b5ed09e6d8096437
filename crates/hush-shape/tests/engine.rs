//! Transcript tests of the engine on a virtual clock: what goes in, what comes out, byte by byte.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use hush_shape::frame::{
    Flags, HEADER_BYTES, Header, LENGTH_PREFIX_BYTES, RECORD_OVERHEAD_BYTES, TAG_BYTES,
};
use hush_shape::{
    Budget, Dist, Engine, Instant, Policy, RecordKind, RecvError, ScheduleSpec, SendError, Session,
    ShapeConfig, Transmit,
};

fn ms(t: u64) -> Instant {
    Instant::ZERO + Duration::from_millis(t)
}

fn pair(config: &ShapeConfig, seed: u64) -> (Engine, Engine) {
    let (a, b) = Session::in_memory_pair().unwrap();
    (
        Engine::new(config, a, seed, Instant::ZERO).unwrap(),
        Engine::new(config, b, seed + 1, Instant::ZERO).unwrap(),
    )
}

/// Run `tx`'s records into `rx` until `until`, with application sends at given times.
/// Returns every record as (time, transmit) and every delivered message.
fn drive(
    tx: &mut Engine,
    rx: &mut Engine,
    sends: &[(Instant, Vec<u8>)],
    until: Instant,
) -> (Vec<(Instant, Transmit)>, Vec<Vec<u8>>) {
    let mut wire = Vec::new();
    let mut records = Vec::new();
    let mut messages = Vec::new();
    let mut next_send = 0;
    loop {
        let send_at = sends.get(next_send).map(|s| s.0);
        let timeout = tx.poll_timeout();
        let now = match (send_at, timeout) {
            (Some(s), Some(t)) => s.min(t),
            (Some(s), None) => s,
            (None, Some(t)) => t,
            (None, None) => break,
        };
        if now > until {
            break;
        }
        while sends.get(next_send).is_some_and(|s| s.0 <= now) {
            tx.send(now, &sends[next_send].1).unwrap();
            next_send += 1;
        }
        while let Some(t) = tx.poll_transmit(now, &mut wire) {
            assert_eq!(wire.len(), t.size_bytes as usize);
            rx.receive(&wire).unwrap();
            records.push((now, t));
        }
        while let Some(m) = rx.poll_message() {
            messages.push(m);
        }
    }
    (records, messages)
}

#[test]
fn ilp_fragments_a_long_message_into_fixed_records() {
    let config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let (mut dev, mut gw) = pair(&config, 1);
    let msg: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
    let (records, messages) = drive(&mut dev, &mut gw, &[(ms(10), msg.clone())], ms(260));
    // Slots every 50 ms; each record 150 B = 22 framing + 128 data. 2 varint bytes + 500 payload
    // = 502 bytes of stream: 128, 128, 128, 118 (+ 10 padding), then cover.
    let summary: Vec<(u64, u32, RecordKind, u32, u32)> = records
        .iter()
        .map(|(t, r)| {
            (
                t.as_nanos() / 1_000_000,
                r.size_bytes,
                r.kind,
                r.real_bytes,
                r.padding_bytes,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (50, 150, RecordKind::Data, 126, 0),
            (100, 150, RecordKind::Data, 128, 0),
            (150, 150, RecordKind::Data, 128, 0),
            (200, 150, RecordKind::Data, 118, 10),
            (250, 150, RecordKind::Cover, 0, 0),
        ]
    );
    assert_eq!(messages, vec![msg]);
    assert_eq!(records[3].1.messages_completed, 1);
    let s = dev.stats();
    assert_eq!(s.wire_bytes, 750);
    assert_eq!(s.real_bytes, 500);
    assert_eq!(s.framing_bytes, 4 * 22 + 2);
    assert_eq!(s.padding_bytes, 10);
    assert_eq!(s.cover_bytes, 150);
    assert_eq!(
        s.delay_max_ns, 190_000_000,
        "queued at 10 ms, last byte left at 200 ms"
    );
}

#[test]
fn small_messages_share_a_record_and_empty_ones_arrive() {
    let config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let (mut dev, mut gw) = pair(&config, 2);
    let sends = vec![
        (ms(1), b"a".to_vec()),
        (ms(2), Vec::new()),
        (ms(3), b"ccc".to_vec()),
    ];
    let (records, messages) = drive(&mut dev, &mut gw, &sends, ms(50));
    assert_eq!(records.len(), 1);
    let r = records[0].1;
    assert_eq!(
        (r.real_bytes, r.framing_bytes, r.messages_completed),
        (4, 22 + 3, 3)
    );
    assert_eq!(r.padding_bytes, 150 - 22 - 3 - 4);
    assert_eq!(messages, vec![b"a".to_vec(), vec![], b"ccc".to_vec()]);
}

#[test]
fn the_wire_ignores_the_workload_under_the_same_seed() {
    let config = ShapeConfig::new(ScheduleSpec::datta_high_latency());
    let wire = |sends: Vec<(Instant, Vec<u8>)>| {
        let (mut dev, mut gw) = pair(&config, 99);
        let (records, messages) = drive(&mut dev, &mut gw, &sends, ms(60_000));
        let shape: Vec<(Instant, u32)> = records.iter().map(|(t, r)| (*t, r.size_bytes)).collect();
        (shape, messages.len())
    };
    let silence = wire(Vec::new());
    let bursts = wire(
        (0..40)
            .map(|i| (ms(1000 * i + 7), vec![0x5a; (i as usize * 37) % 300]))
            .collect(),
    );
    assert_eq!(bursts.1, 40, "all 40 messages arrived");
    assert_eq!(silence.0, bursts.0, "same sizes and times, idle or busy");
    assert!(
        silence.0.len() > 150,
        "about 200 records in 60 s at 0.3 s mean gap"
    );
}

#[test]
fn immediate_policy_sends_at_once_and_fills_gaps_with_cover() {
    let mut config = ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 1.0,
        size_bytes: 100,
    });
    config.policy = Policy::Immediate;
    let (mut dev, mut gw) = pair(&config, 3);
    let (records, messages) = drive(&mut dev, &mut gw, &[(ms(300), vec![7; 40])], ms(2000));
    let summary: Vec<(u64, u32, RecordKind)> = records
        .iter()
        .map(|(t, r)| (t.as_nanos() / 1_000_000, r.size_bytes, r.kind))
        .collect();
    // Data at 300 ms sized to fit (22 + 1 + 40), cover on the 1 s grid.
    assert_eq!(
        summary,
        vec![
            (300, 63, RecordKind::Data),
            (1000, 100, RecordKind::Cover),
            (2000, 100, RecordKind::Cover)
        ]
    );
    assert_eq!(messages, vec![vec![7; 40]]);
}

#[test]
fn unshaped_sends_records_only_for_data() {
    let config = ShapeConfig::new(ScheduleSpec::Unshaped);
    let (mut dev, mut gw) = pair(&config, 4);
    let big = vec![1u8; 200_000];
    let (records, messages) = drive(&mut dev, &mut gw, &[(ms(5), big.clone())], ms(10_000));
    assert_eq!(messages, vec![big]);
    // 200,003 stream bytes in records of at most 65,537 - 22 data bytes: 4 records, all at 5 ms.
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|(t, _)| *t == ms(5)));
    assert_eq!(
        dev.poll_timeout(),
        None,
        "nothing more to do until the application sends"
    );
    let bad = ShapeConfig {
        policy: Policy::Pad,
        ..ShapeConfig::new(ScheduleSpec::Unshaped)
    };
    assert!(bad.validate().is_err());
}

#[test]
fn close_drains_the_queue_then_marks_the_last_record() {
    let config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let (mut dev, mut gw) = pair(&config, 5);
    for i in 0..20u8 {
        dev.send(ms(0), &[i; 100]).unwrap();
    }
    dev.close();
    assert_eq!(dev.send(ms(0), b"late"), Err(SendError::Closed));
    let (records, messages) = drive(&mut dev, &mut gw, &[], ms(100_000));
    assert_eq!(messages.len(), 20);
    assert!(
        messages
            .iter()
            .enumerate()
            .all(|(i, m)| m == &vec![i as u8; 100])
    );
    assert!(records.last().unwrap().1.close);
    assert!(dev.shaper().is_finished());
    assert_eq!(dev.poll_timeout(), None);
    gw.receiver().finish().unwrap();
    // 20 × 101 stream bytes = 2020 over 128-byte records: 16 records, the close rides the last.
    assert_eq!(records.len(), 16);
}

#[test]
fn max_bps_delays_slots_without_breaking_independence() {
    let mut config = ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 0.01,
        size_bytes: 1000,
    }); // wants 100 kB/s
    config.budget.max_bps = Some(10_000.0);
    let run = |sends: Vec<(Instant, Vec<u8>)>| {
        let (mut dev, mut gw) = pair(&config, 6);
        let (records, _) = drive(&mut dev, &mut gw, &sends, ms(100_000));
        records
            .iter()
            .map(|(t, r)| (*t, r.size_bytes))
            .collect::<Vec<_>>()
    };
    let idle = run(Vec::new());
    let busy = run((0..50).map(|i| (ms(i * 1000), vec![1; 5000])).collect());
    assert_eq!(idle, busy);
    // The bucket starts full (65,537 bytes), then 10 kB/s: 100 s → at most 65,537 + 1,000,000.
    let bytes: u64 = idle.iter().map(|r| u64::from(r.1)).sum();
    assert!(bytes <= 65_537 + 1_000_000 + 1000, "{bytes}");
    assert!(bytes >= 1_000_000, "{bytes}");
}

#[test]
fn daily_cap_and_metered_mode_drop_only_cover() {
    let mut config = ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 1.0,
        size_bytes: 100,
    });
    config.budget = Budget {
        max_bps: None,
        max_bytes_per_day: Some(1000),
        cover_probability: 1.0,
    };
    let (mut dev, mut gw) = pair(&config, 7);
    // 10 cover records fill the day's 1000 bytes; a message at 30 s still leaves.
    let (records, messages) = drive(
        &mut dev,
        &mut gw,
        &[(ms(30_500), b"still works".to_vec())],
        ms(60_000),
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.1.kind == RecordKind::Cover)
            .count(),
        10
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.1.kind == RecordKind::Data)
            .count(),
        1
    );
    assert_eq!(messages.len(), 1);
    assert_eq!(dev.stats().cover_slots_skipped, 60 - 11);

    config.budget = Budget {
        cover_probability: 0.25,
        ..Budget::default()
    };
    let (mut dev, mut gw) = pair(&config, 8);
    let (records, _) = drive(&mut dev, &mut gw, &[], ms(4_000_000));
    let sent = records.len() as f64 / 4000.0;
    assert!((sent - 0.25).abs() < 0.03, "{sent}");
}

#[test]
fn random_sizes_and_gaps_follow_their_distributions() {
    let config = ShapeConfig::new(ScheduleSpec::Random {
        gap_s: "exp:0.1".parse().unwrap(),
        size_bytes: Dist::Normal {
            mean: 120.0,
            std: 60.0,
            min: None,
            max: None,
        },
    });
    let (mut dev, mut gw) = pair(&config, 9);
    let (records, _) = drive(&mut dev, &mut gw, &[], ms(1_000_000));
    let sizes: Vec<u32> = records.iter().map(|r| r.1.size_bytes).collect();
    assert!(
        sizes.iter().all(|&s| s >= 23),
        "truncated at the smallest record"
    );
    let mean_gap = 1000.0 / records.len() as f64;
    assert!((mean_gap - 0.1).abs() < 0.003, "{mean_gap}");
}

// ---------- faults: each gives a typed error and never a wrong or partial message ----------

fn records_of(messages: &[&[u8]], size: u32) -> (Vec<Vec<u8>>, Engine) {
    let config = ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 0.01,
        size_bytes: size,
    });
    let (mut dev, gw) = pair(&config, 11);
    for m in messages {
        dev.send(ms(0), m).unwrap();
    }
    dev.close();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = dev.poll_timeout() {
        while dev.poll_transmit(t, &mut buf).is_some() {
            out.push(buf.clone());
        }
    }
    (out, gw)
}

#[test]
fn a_flipped_bit_fails_authentication() {
    let (records, mut gw) = records_of(&[b"first", &[9; 300]], 100);
    gw.receive(&records[0]).unwrap();
    let mut bad = records[1].clone();
    bad[40] ^= 0x10;
    assert_eq!(
        gw.receive(&bad),
        Err(RecvError::Authentication { record: 1 })
    );
    assert_eq!(gw.poll_message().as_deref(), Some(&b"first"[..]));
    assert_eq!(
        gw.poll_message(),
        None,
        "the 300-byte message is never delivered"
    );
    // The error is final.
    assert!(gw.receive(&records[2]).is_err());
}

#[test]
fn a_flipped_length_prefix_fails_too() {
    let (records, mut gw) = records_of(&[&[1; 200]], 100);
    let mut stream: Vec<u8> = records.concat();
    stream[1] ^= 0x01; // 98 → 99: the record swallows a byte of the next one
    assert!(matches!(
        gw.receive(&stream),
        Err(RecvError::Authentication { record: 0 })
    ));
    assert_eq!(gw.poll_message(), None);
}

#[test]
fn a_replayed_record_is_rejected() {
    let (records, mut gw) = records_of(&[&[1; 30], &[2; 30]], 60);
    gw.receive(&records[0]).unwrap();
    assert_eq!(
        gw.receive(&records[0]),
        Err(RecvError::Authentication { record: 1 })
    );
    assert_eq!(gw.poll_message(), Some(vec![1; 30]));
    assert_eq!(gw.poll_message(), None);
}

#[test]
fn a_truncated_stream_is_not_a_close() {
    let (records, mut gw) = records_of(&[&[3; 500]], 100);
    let stream = records.concat();
    // Cut inside the third record: the message is never delivered, finish says where.
    gw.receive(&stream[..250]).unwrap();
    assert_eq!(gw.poll_message(), None);
    assert_eq!(
        gw.receiver().finish(),
        Err(RecvError::Truncated {
            detail: "inside a record"
        })
    );

    let (records, mut gw) = records_of(&[&[3; 500]], 100);
    gw.receive(&records[..2].concat()).unwrap();
    assert_eq!(
        gw.receiver().finish(),
        Err(RecvError::Truncated {
            detail: "inside a message"
        })
    );

    let (records, mut gw) = records_of(&[b"ok"], 100);
    gw.receive(&records.concat()).unwrap();
    gw.receiver().finish().unwrap();
    assert_eq!(gw.poll_message().as_deref(), Some(&b"ok"[..]));
}

#[test]
fn a_reset_mid_record_loses_nothing_delivered_as_whole() {
    // A peer reset is an EOF at an arbitrary byte: every cut point gives whole messages only.
    let msgs: Vec<Vec<u8>> = (0..6).map(|i| vec![i; 70 * i as usize]).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let len = records_of(&refs, 90).0.concat().len();
    // Every byte of the first three records, then every 7th (each cut costs a handshake).
    for cut in (0..=len).filter(|&c| c < 270 || c % 7 == 0 || c == len) {
        // Each cut needs a fresh session: the receiver's record counter is part of the state.
        let (records, mut gw) = records_of(&refs, 90);
        let stream = records.concat();
        gw.receive(&stream[..cut]).unwrap();
        let mut got = Vec::new();
        while let Some(m) = gw.poll_message() {
            got.push(m);
        }
        assert_eq!(
            &msgs[..got.len()],
            &got[..],
            "cut at {cut}: a prefix of whole messages"
        );
        let closed = gw.receiver().finish().is_ok();
        assert_eq!(
            closed,
            cut == len,
            "only the full stream is a clean close (cut at {cut})"
        );
        if closed {
            assert_eq!(got, msgs);
        }
    }
}

#[test]
fn a_length_field_larger_than_the_record() {
    // The cleartext prefix claims 500 bytes, the stream ends after 100: truncated, not delivered.
    let (records, mut gw) = records_of(&[b"short"], 100);
    let mut r = records[0].clone();
    r[..2].copy_from_slice(&500u16.to_be_bytes());
    gw.receive(&r).unwrap();
    assert_eq!(gw.poll_message(), None);
    assert_eq!(
        gw.receiver().finish(),
        Err(RecvError::Truncated {
            detail: "inside a record"
        })
    );

    // An authentic record whose header's data length exceeds the record (a buggy peer).
    let (a, b) = Session::in_memory_pair().unwrap();
    let (mut sealer, _) = a.split();
    let config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let mut gw = Engine::new(&config, b, 0, Instant::ZERO).unwrap();
    let mut plain = vec![0u8; 60];
    Header {
        flags: Flags::default(),
        data_len: 200,
    }
    .write(&mut plain);
    let mut rec = vec![0u8; LENGTH_PREFIX_BYTES + 60 + TAG_BYTES];
    rec[..2].copy_from_slice(&((60 + TAG_BYTES) as u16).to_be_bytes());
    sealer.seal(&plain, &mut rec[2..]);
    let err = gw.receive(&rec).unwrap_err();
    assert!(
        matches!(err, RecvError::Malformed { record: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("data length 200 exceeds the 56 bytes"),
        "{err}"
    );

    // A prefix too small to hold a header and tag.
    let (_, mut gw) = records_of(&[], 100);
    assert!(matches!(
        gw.receive(&[0, 5]),
        Err(RecvError::TooShort { len: 5, .. })
    ));
}

#[test]
fn stream_inconsistencies_from_an_authentic_peer_are_errors() {
    let (a, b) = Session::in_memory_pair().unwrap();
    let (mut sealer, _) = a.split();
    let config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let mut gw = Engine::new(&config, b, 0, Instant::ZERO).unwrap();
    let mut seal = |flags: Flags, data: &[u8]| {
        let mut plain = vec![0u8; HEADER_BYTES];
        Header {
            flags,
            data_len: data.len() as u16,
        }
        .write(&mut plain);
        plain.extend_from_slice(data);
        let mut rec = vec![0u8; LENGTH_PREFIX_BYTES + plain.len() + TAG_BYTES];
        rec[..2].copy_from_slice(&((plain.len() + TAG_BYTES) as u16).to_be_bytes());
        sealer.seal(&plain, &mut rec[2..]);
        rec
    };
    // "continues" a message that never started.
    let r = seal(Flags::CONTINUES, b"abc");
    assert!(matches!(
        gw.receive(&r),
        Err(RecvError::Stream { record: 0, .. })
    ));

    let (a, b) = Session::in_memory_pair().unwrap();
    let (mut sealer, _) = a.split();
    let mut gw = Engine::new(&config, b, 0, Instant::ZERO).unwrap();
    let mut seal = |flags: Flags, data: &[u8]| {
        let mut plain = vec![0u8; HEADER_BYTES];
        Header {
            flags,
            data_len: data.len() as u16,
        }
        .write(&mut plain);
        plain.extend_from_slice(data);
        let mut rec = vec![0u8; LENGTH_PREFIX_BYTES + plain.len() + TAG_BYTES];
        rec[..2].copy_from_slice(&((plain.len() + TAG_BYTES) as u16).to_be_bytes());
        sealer.seal(&plain, &mut rec[2..]);
        rec
    };
    // A message claiming 64 MiB: refused before any allocation.
    let mut huge = Vec::new();
    hush_shape::frame::write_varint(64 << 20, &mut huge);
    let r = seal(Flags::MORE, &huge);
    assert!(
        matches!(gw.receive(&r), Err(RecvError::MessageTooLarge { len, .. }) if len == 64 << 20)
    );
}

#[test]
fn bytes_after_close_are_an_error() {
    let (records, mut gw) = records_of(&[b"bye"], 60);
    let mut stream = records.concat();
    stream.extend_from_slice(&records[0]);
    assert_eq!(gw.receive(&stream), Err(RecvError::AfterClose(60)));
    // What was whole before the close is still there.
    assert_eq!(gw.poll_message().as_deref(), Some(&b"bye"[..]));
}

#[test]
fn send_refuses_what_it_cannot_hold() {
    let mut config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    config.max_queue_bytes = 1000;
    config.max_message_bytes = 800;
    let (mut dev, _) = pair(&config, 12);
    assert!(matches!(
        dev.send(ms(0), &[0; 801]),
        Err(SendError::TooLarge { len: 801, max: 800 })
    ));
    dev.send(ms(0), &[0; 800]).unwrap();
    assert!(matches!(
        dev.send(ms(0), &[0; 300]),
        Err(SendError::QueueFull {
            queued: 800,
            max: 1000
        })
    ));
    dev.send(ms(0), &[0; 200]).unwrap();
    assert_eq!(dev.shaper().queued_bytes(), 1000);
}

#[test]
fn overhead_constants_add_up() {
    assert_eq!(RECORD_OVERHEAD_BYTES, 22);
}

fn plain_pair(config: &ShapeConfig, seed: u64) -> (Engine, Engine) {
    let (a, b) = Session::unencrypted_pair_for_simulation();
    (
        Engine::new(config, a, seed, Instant::ZERO).unwrap(),
        Engine::new(config, b, seed + 1, Instant::ZERO).unwrap(),
    )
}

fn immediate(pad: hush_shape::Padding) -> ShapeConfig {
    ShapeConfig {
        pad,
        ..ShapeConfig::new(ScheduleSpec::Unshaped)
    }
}

#[test]
fn padding_to_a_fixed_size_fragments_what_does_not_fit() {
    let config = immediate(hush_shape::Padding::ToSize { size_bytes: 1500 });
    let (mut dev, mut gw) = plain_pair(&config, 1);
    let sends = vec![(ms(1), vec![1; 100]), (ms(2), vec![2; 3000])];
    let (records, messages) = drive(&mut dev, &mut gw, &sends, ms(10));
    let sizes: Vec<(u64, u32, u32)> = records
        .iter()
        .map(|(t, r)| (t.as_nanos() / 1_000_000, r.size_bytes, r.real_bytes))
        .collect();
    // 3002 stream bytes over records carrying 1478: 1478 + 1478 + 44.
    assert_eq!(
        sizes,
        vec![
            (1, 1500, 100),
            (2, 1500, 1476),
            (2, 1500, 1478),
            (2, 1500, 46)
        ]
    );
    assert_eq!(messages, vec![vec![1; 100], vec![2; 3000]]);
}

#[test]
fn power_of_two_and_random_padding() {
    let config = immediate(hush_shape::Padding::PowerOfTwo);
    let (mut dev, mut gw) = plain_pair(&config, 2);
    let sends: Vec<(Instant, Vec<u8>)> = [1usize, 10, 100, 1000, 5000]
        .iter()
        .enumerate()
        .map(|(i, &n)| (ms(i as u64), vec![0; n]))
        .collect();
    let (records, _) = drive(&mut dev, &mut gw, &sends, ms(10));
    let sizes: Vec<u32> = records.iter().map(|r| r.1.size_bytes).collect();
    // 22 framing + varint + data, rounded up: 24 -> 32, 33 -> 64, 124 -> 128, 1024 -> 1024, 5024 -> 8192.
    assert_eq!(sizes, vec![32, 64, 128, 1024, 8192]);

    let config = immediate(hush_shape::Padding::Random {
        max_extra_bytes: 100,
    });
    let (mut dev, mut gw) = plain_pair(&config, 3);
    let sends: Vec<(Instant, Vec<u8>)> = (0..2000).map(|i| (ms(i), vec![0; 50])).collect();
    let (records, messages) = drive(&mut dev, &mut gw, &sends, ms(3000));
    assert_eq!(messages.len(), 2000);
    let extra: Vec<u32> = records
        .iter()
        .map(|r| r.1.size_bytes - (22 + 1 + 50))
        .collect();
    assert!(extra.iter().all(|&e| e <= 100));
    let mean = extra.iter().map(|&e| f64::from(e)).sum::<f64>() / extra.len() as f64;
    assert!((mean - 50.0).abs() < 3.0, "{mean}");
    assert!(extra.contains(&0) && extra.contains(&100));
}

#[test]
fn close_waits_for_the_minimum_duration_and_a_multiple_of_records() {
    let mut config = ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 0.02,
        size_bytes: 100,
    });
    config.close = hush_shape::CloseRule {
        min_duration_s: 1.0,
        records_multiple_of: 0,
    };
    let (mut dev, mut gw) = plain_pair(&config, 4);
    dev.send(ms(0), b"x").unwrap();
    dev.close();
    let (records, _) = drive(&mut dev, &mut gw, &[], ms(10_000));
    // BuFLO: records every 20 ms until at least 1 s has passed, the close record at 1.0 s.
    assert_eq!(records.last().unwrap().0, ms(1000));
    assert_eq!(records.len(), 50);

    config.close = hush_shape::CloseRule {
        min_duration_s: 0.0,
        records_multiple_of: 7,
    };
    config.policy = Policy::Immediate;
    let (mut dev, mut gw) = plain_pair(&config, 5);
    let sends: Vec<(Instant, Vec<u8>)> = (0..10).map(|i| (ms(i * 3), vec![0; 10])).collect();
    let (_, _) = drive(&mut dev, &mut gw, &sends, ms(40));
    dev.close();
    let (more, _) = drive(&mut dev, &mut gw, &[], ms(10_000));
    // Tamaraw's rule: the total is padded with cover to a multiple of L.
    assert_eq!(dev.stats().records % 7, 0);
    assert!(more.last().unwrap().1.close);
    assert!(dev.stats().records >= 10);
}

#[test]
fn simulation_sessions_keep_sizes_and_catch_corruption() {
    let config = ShapeConfig::new(ScheduleSpec::datta_high_latency());
    let run = |encrypted: bool| {
        let (a, b) = if encrypted {
            Session::in_memory_pair().unwrap()
        } else {
            Session::unencrypted_pair_for_simulation()
        };
        assert_eq!(a.is_encrypted(), encrypted);
        let mut dev = Engine::new(&config, a, 9, Instant::ZERO).unwrap();
        let mut gw = Engine::new(&config, b, 10, Instant::ZERO).unwrap();
        let sends: Vec<(Instant, Vec<u8>)> =
            (0..20).map(|i| (ms(i * 500), vec![i as u8; 300])).collect();
        let (records, messages) = drive(&mut dev, &mut gw, &sends, ms(30_000));
        assert_eq!(messages.len(), 20);
        records
            .iter()
            .map(|(t, r)| (*t, r.size_bytes, r.real_bytes))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        run(true),
        run(false),
        "the cipher never changes the shape of traffic"
    );
    let (a, b) = Session::unencrypted_pair_for_simulation();
    let mut dev = Engine::new(&config, a, 1, Instant::ZERO).unwrap();
    let mut gw = Engine::new(&config, b, 2, Instant::ZERO).unwrap();
    dev.send(ms(0), b"hello").unwrap();
    let mut buf = Vec::new();
    let t = dev.poll_timeout().unwrap();
    let _ = dev.poll_transmit(t, &mut buf).unwrap();
    let last = buf.len() - 1;
    buf[last] ^= 1;
    assert!(matches!(
        gw.receive(&buf),
        Err(RecvError::Authentication { .. })
    ));
}

/// Record sizes and times of the first `n` records of an idle shaper seeded with `seed`.
fn idle_wire(seed: impl Into<hush_shape::ScheduleSeed>, n: usize) -> Vec<(Instant, u32)> {
    let config = ShapeConfig::new(ScheduleSpec::Random {
        gap_s: Dist::uniform(0.01, 0.02),
        size_bytes: Dist::uniform(100.0, 1000.0),
    });
    let (a, _b) = Session::unencrypted_pair_for_simulation();
    let mut shaper = hush_shape::Shaper::new(&config, a.split().0, seed, Instant::ZERO).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let at = shaper.poll_timeout().unwrap();
        while let Some(t) = shaper.poll_transmit(at, &mut buf) {
            out.push((at, t.size_bytes));
        }
    }
    out
}

#[test]
fn a_256_bit_seed_decides_the_schedule_like_a_u64_one() {
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    assert_eq!(idle_wire(k1, 50), idle_wire(k1, 50), "same bits, same wire");
    assert_ne!(
        idle_wire(k1, 50),
        idle_wire(k2, 50),
        "other bits, other wire"
    );
    assert_ne!(idle_wire(k1, 50), idle_wire(1u64, 50));
    assert_eq!(idle_wire(7u64, 50), idle_wire(7u64, 50));
    // Never printed.
    let dbg = format!("{:?}", hush_shape::ScheduleSeed::from([0xab; 32]));
    assert!(!dbg.contains("171") && !dbg.contains("ab"), "{dbg}");
}
