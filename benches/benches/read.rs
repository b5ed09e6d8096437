//! Micro-benchmarks of hush's readers: one capture parsed from memory (whole trace, streamed,
//! frames only) and link-layer decoding of its frames.
//!
//! The capture is a real IoT Sentinel setup capture (HueSwitch/Setup-A-1-STA.pcap, 456 KB) when
//! the shared data folder is present; otherwise a synthetic one built from seed 0, so the numbers
//! are comparable between runs on the same machine.
//! Run: `cargo bench -p hush-benches --bench read`.

use std::sync::LazyLock;

use divan::Bencher;
use divan::counter::BytesCount;
use etherparse::PacketBuilder;
use hush_benches::stream_fields;
use hush_trace::capture::FrameReader;
use hush_trace::data::shared_data;
use hush_trace::decode::{LinkType, decode_frame};
use hush_trace::{ReadOptions, read_from};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn main() {
    // Load (and say which capture) before divan starts printing its table.
    LazyLock::force(&CAPTURE);
    divan::main();
}

static CAPTURE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let real = shared_data("iot-sentinel")
        .and_then(|d| std::fs::read(d.join("HueSwitch/Setup-A-1-STA.pcap")).ok());
    real.unwrap_or_else(|| synthetic_pcap(0, 2000))
});

static FRAMES: LazyLock<Vec<(LinkType, Vec<u8>)>> = LazyLock::new(|| {
    let mut reader = FrameReader::new(&CAPTURE[..]).expect("bench capture reads");
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame().expect("bench capture reads") {
        frames.push((f.link, f.data.to_vec()));
    }
    frames
});

/// A classic Ethernet pcap of `n` TCP and UDP frames with random sizes, ports and gaps.
fn synthetic_pcap(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend(v.to_le_bytes());
    }
    let mut t_us: u64 = 1_500_000_000_000_000;
    for _ in 0..n {
        t_us += rng.random_range(1..200_000);
        let payload = vec![0u8; rng.random_range(0..1400)];
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(
            [192, 168, 1, 10],
            [52, 1, 2, 3],
            64,
        );
        let (sport, dport) = (rng.random_range(1024..65535), 443);
        let mut frame = Vec::new();
        let written = if rng.random_bool(0.7) {
            eth.tcp(sport, dport, 1, 65535).write(&mut frame, &payload)
        } else {
            eth.udp(sport, dport).write(&mut frame, &payload)
        };
        written.expect("writing to a Vec cannot fail");
        let len = frame.len() as u32;
        for v in [
            (t_us / 1_000_000) as u32,
            (t_us % 1_000_000) as u32,
            len,
            len,
        ] {
            out.extend(v.to_le_bytes());
        }
        out.extend(frame);
    }
    out
}

#[divan::bench]
fn read_whole_trace(bencher: Bencher) {
    let bytes = &CAPTURE[..];
    bencher.counter(BytesCount::new(bytes.len())).bench(|| {
        read_from(divan::black_box(bytes), "bench", ReadOptions::default()).expect("reads")
    });
}

#[divan::bench]
fn stream_packets(bencher: Bencher) {
    let bytes = &CAPTURE[..];
    bencher
        .counter(BytesCount::new(bytes.len()))
        .bench(|| stream_fields(divan::black_box(bytes)).expect("reads"));
}

#[divan::bench]
fn frames_only(bencher: Bencher) {
    let bytes = &CAPTURE[..];
    bencher.counter(BytesCount::new(bytes.len())).bench(|| {
        let mut reader = FrameReader::new(divan::black_box(bytes)).expect("reads");
        let mut n = 0usize;
        while let Some(f) = reader.next_frame().expect("reads") {
            n += f.data.len();
        }
        n
    });
}

#[divan::bench]
fn decode_frames(bencher: Bencher) {
    let frames = &*FRAMES;
    let bytes: usize = frames.iter().map(|(_, f)| f.len()).sum();
    bencher.counter(BytesCount::new(bytes)).bench(|| {
        frames
            .iter()
            .filter_map(|(link, f)| decode_frame(*link, divan::black_box(f)).ok())
            .map(|d| u64::from(d.ip_len))
            .sum::<u64>()
    });
}
