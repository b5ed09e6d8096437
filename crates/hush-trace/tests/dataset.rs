//! Labelled datasets and splits on the real IoT Sentinel captures.

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
