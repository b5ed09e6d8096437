//! The simulator's speed: input packets per second through `hush_defense::defend`, one core.
//!
//! Each iteration applies one defense to every IoT Sentinel capture (550 files, 193,421
//! packets, directions from each folder's MAC file; or, without the shared data, a synthetic
//! trace of 200,000 packets) on one thread. The item counter is *input* packets, so "item/s"
//! reads as packets per second per core. Seeds are fixed.
//! Run: `cargo bench -p hush-benches --bench defense`.

use std::sync::LazyLock;

use divan::Bencher;
use divan::counter::ItemsCount;
use hush_defense::{DefenseSpec, NetworkModel, defend};
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::{Direction, ReadOptions, Trace};

fn main() {
    LazyLock::force(&TRACES);
    divan::main();
}

static TRACES: LazyLock<Vec<Trace>> = LazyLock::new(load);

fn load() -> Vec<Trace> {
    let Some(dir) = hush_trace::data::shared_data("iot-sentinel") else {
        return vec![synthetic()];
    };
    let mut out = Vec::new();
    let mut devices: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    devices.sort();
    for d in devices {
        let Ok(mac) = read_device_mac_file(d.join("_iotdevice-mac.txt")) else {
            continue;
        };
        let mut files: Vec<_> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
            .collect();
        files.sort();
        for f in files {
            if let Ok(mut t) = hush_trace::read_trace(&f, ReadOptions::default()) {
                if set_direction(&mut t, &DeviceSpec::Mac(mac)).is_ok() {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// 200,000 packets over an hour: a device talking in bursts.
fn synthetic() -> Trace {
    let mut packets = Vec::with_capacity(200_000);
    for i in 0..200_000i64 {
        packets.push(hush_trace::Packet {
            t_ns: i * 18_000_000,
            frame_len: 66 + (i % 900) as u32,
            ip_len: 52 + (i % 900) as u32,
            payload_len: (i % 900) as u32,
            proto: hush_trace::Proto::TCP,
            src_port: 1,
            dst_port: 2,
            src: hush_trace::EndpointId(0),
            dst: hush_trace::EndpointId(1),
            dir: if i % 3 == 0 {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            ip_proto: 6,
        });
    }
    Trace {
        name: "synthetic".into(),
        packets,
        endpoints: vec![
            hush_trace::trace::UNKNOWN_ENDPOINT,
            hush_trace::trace::UNKNOWN_ENDPOINT,
        ],
        report: Default::default(),
    }
}

fn packets() -> u64 {
    TRACES.iter().map(|t| t.packets.len() as u64).sum()
}

#[divan::bench(args = ["none", "pad-mtu", "ilp-constant", "ilp-random", "front", "tamaraw", "ipet-constant"])]
fn defend_all_captures(bencher: Bencher, name: &str) {
    let spec: DefenseSpec = name.parse().expect("catalog name");
    let net = NetworkModel::default();
    bencher.counter(ItemsCount::new(packets())).bench(|| {
        let mut wire = 0usize;
        for t in TRACES.iter() {
            wire += defend(divan::black_box(t), &spec, 1, &net)
                .expect("defend")
                .packets
                .len();
        }
        wire
    });
}
