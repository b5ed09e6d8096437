//! Labelled datasets and splits on the real IoT Sentinel captures.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_trace::data::shared_data;
use hush_trace::dataset::{IOT_SENTINEL_TYPES, LoadOptions, load_dir, load_manifest};
use hush_trace::split::group_kfold;
use hush_trace::{Direction, Packet};

fn count(packets: &[Packet], dir: Direction) -> u64 {
    packets.iter().filter(|p| p.dir == dir).count() as u64
}

#[test]
fn iot_sentinel_loads_with_exact_counts_and_directions() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let started = std::time::Instant::now();
    let mut ds = load_dir(&dir, &LoadOptions::default()).expect("load");
    eprintln!(
        "loaded {} captures in {:.3} s",
        ds.traces.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ds.traces.len(), 550);
    assert_eq!(ds.labels.len(), 31);
    assert_eq!(ds.packet_count(), 193_421);
    let out: u64 = ds
        .traces
        .iter()
        .map(|t| count(&t.trace.packets, Direction::Outbound))
        .sum();
    let inb: u64 = ds
        .traces
        .iter()
        .map(|t| count(&t.trace.packets, Direction::Inbound))
        .sum();
    assert_eq!((out, inb), (107_652, 85_769));
    assert_eq!(ds.report.files_with_backwards_timestamps, 73);
    // The README beside the device folders is not a label folder's capture and is not counted.
    assert!(ds.report.not_read.is_empty(), "{:?}", ds.report.not_read);

    ds.relabel(IOT_SENTINEL_TYPES);
    assert_eq!(ds.labels.len(), 27);
    let folds = group_kfold(&ds, 5, 7).expect("folds");
    for f in &folds {
        for &a in &f.train {
            assert!(
                f.test
                    .iter()
                    .all(|&b| ds.traces[a].group != ds.traces[b].group)
            );
        }
    }
}

#[test]
fn manifest_names_files_labels_and_devices() {
    let Some(dir) = shared_data("events/pingpong-tplink") else {
        return;
    };
    let manifest = std::env::temp_dir().join(format!("hush-manifest-{}.csv", std::process::id()));
    let text = format!(
        "path,label,group,device\n{d}/TP_LINK_LOCAL_ON.pcap,on,a,50:c7:bf:33:1f:09\n{d}/TP_LINK_LOCAL_OFF.pcap,off,b,\n",
        d = dir.display()
    );
    std::fs::write(&manifest, text).expect("write manifest");
    let ds = load_manifest(&manifest, &LoadOptions::default()).expect("load");
    assert_eq!(ds.labels, ["off", "on"]);
    assert_eq!(ds.traces[0].group, "a");
    let on = &ds.traces[0].trace.packets;
    assert!(count(on, Direction::Outbound) > 0 && count(on, Direction::Inbound) > 0);

    std::fs::write(&manifest, "path,label,device\nx.pcap,on,not-a-mac\n").expect("write");
    let err = load_manifest(&manifest, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(":2:") && err.contains("device"), "{err}");
}

#[test]
fn two_devices_in_one_capture_split_back_apart() {
    use hush_trace::device::{DeviceKey, read_device_mac_file, split_by_device};
    use hush_trace::{EndpointTable, ReadOptions, Trace, read_trace};
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    // Two devices captured on the same network, merged as a home capture would hold them.
    let parts = ["Aria/Setup-A-1-STA.pcap", "HueBridge/Setup-A-1-STA.pcap"];
    let mut table = EndpointTable::default();
    let mut merged = Trace {
        name: "home".into(),
        ..Trace::default()
    };
    let mut macs = Vec::new();
    for part in parts {
        let path = dir.join(part);
        let t = read_trace(&path, ReadOptions::default()).expect("read");
        let folder = path.parent().expect("folder");
        macs.push((
            read_device_mac_file(folder.join("_iotdevice-mac.txt")).expect("mac"),
            t.packets.len(),
        ));
        for p in &t.packets {
            let mut p = *p;
            p.src = table.intern(*t.endpoint(p.src));
            p.dst = table.intern(*t.endpoint(p.dst));
            merged.packets.push(p);
        }
    }
    merged.endpoints = table.into_list();
    merged.sort_by_time();
    let split = split_by_device(&merged);
    for (mac, packets_in_own_capture) in macs {
        let (_, t) = split
            .iter()
            .find(|(k, _)| *k == DeviceKey::Mac(mac))
            .expect("device found");
        let sent_or_received = t
            .packets
            .iter()
            .filter(|p| p.dir != Direction::Unknown)
            .count();
        // Every packet of a device's trace is to or from it, and it has at most its own capture's
        // packets (the rest of a capture is other hosts' broadcasts).
        assert_eq!(sent_or_received, t.packets.len());
        assert!(
            t.packets.len() <= packets_in_own_capture
                && t.packets.len() * 2 > packets_in_own_capture
        );
    }
}
