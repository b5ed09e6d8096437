//! Activity inference speed: rate-peak detection and signature search over a million packets,
//! and traffic-volume images of a day of per-minute volume.
//!
//! The packets are synthetic (a device with a heartbeat and bursts, 1,000,000 packets over about
//! 11 days) so the benchmark runs without the shared data; the item counter is packets.
//! Run: `cargo bench -p hush-benches --bench activity`.

use std::sync::LazyLock;

use divan::Bencher;
use divan::counter::ItemsCount;
use hush_attack::images::{ALL_KINDS, image_stack};
use hush_attack::peaks::{PeakConfig, detect};
use hush_attack::signatures::{Pair, PairRange, Signature, SignatureConfig, find, pairs};
use hush_trace::{Direction, EndpointId, Packet, Proto};

fn main() {
    LazyLock::force(&PACKETS);
    divan::main();
}

const N: usize = 1_000_000;

static PACKETS: LazyLock<Vec<Packet>> = LazyLock::new(|| {
    let mut t = 0i64;
    (0..N)
        .map(|i| {
            // Mostly a packet a second; every 500th starts a burst of 40 packets 5 ms apart.
            t += if i % 500 < 40 {
                5_000_000
            } else {
                1_000_000_000
            };
            let out = i % 2 == 0;
            Packet {
                t_ns: t,
                frame_len: if i % 500 < 40 {
                    556 + (i % 3) as u32
                } else {
                    120
                },
                ip_len: 100,
                payload_len: 60,
                proto: Proto::IPV4 | Proto::TCP | Proto::TLS,
                src_port: if out { 50000 } else { 443 },
                dst_port: if out { 443 } else { 50000 },
                src: EndpointId(u32::from(!out)),
                dst: EndpointId(u32::from(out)),
                dir: if out {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                },
                ip_proto: 6,
            }
        })
        .collect()
});

#[divan::bench]
fn peaks_1m_packets(bencher: Bencher) {
    bencher
        .counter(ItemsCount::new(N))
        .bench(|| detect(divan::black_box(&PACKETS), &PeakConfig::default()).len());
}

#[divan::bench]
fn signature_search_1m_packets(bencher: Bencher) {
    let sig = Signature {
        label: "on".into(),
        elements: vec![
            PairRange {
                device_first: true,
                first: (556, 556),
                second: (557, 557),
            },
            PairRange {
                device_first: true,
                first: (558, 558),
                second: (556, 556),
            },
        ],
        span_s: 1.0,
        instances: 1,
    };
    let cfg = SignatureConfig::default();
    bencher.counter(ItemsCount::new(N)).bench(|| {
        let p: Vec<Pair> = pairs(divan::black_box(&PACKETS));
        find(&sig, &p, &cfg).len()
    });
}

#[divan::bench(args = [32, 64, 128])]
fn images_one_day(bencher: Bencher, size: usize) {
    // The first day of the packets, per minute, both directions, all four kinds.
    let day: Vec<Packet> = PACKETS
        .iter()
        .take_while(|p| p.t_ns < 86_400_000_000_000)
        .copied()
        .collect();
    bencher.bench(|| image_stack(divan::black_box(&day), 1440, &ALL_KINDS, size, 8).len());
}
