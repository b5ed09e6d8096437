//! Issue 13: a manifest and a whole-home capture give the same dataset as the equivalent folder
//! layout, on the real IoT Sentinel captures.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use hush_trace::data::shared_data;
use hush_trace::dataset::{Dataset, LoadOptions, load_dir, load_manifest};
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::home::{HomeSpec, HomeWindows, MergePart, load_home, merge_captures};
use hush_trace::{Mac, ReadOptions, Trace, read_trace};

/// Same labels, same traces in the same order with the same label, group and packets (endpoint
/// tables included).
fn assert_same(a: &Dataset, b: &Dataset) {
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.traces.len(), b.traces.len());
    for (x, y) in a.traces.iter().zip(&b.traces) {
        assert_eq!(
            (&x.label, &x.group),
            (&y.label, &y.group),
            "{}",
            x.trace.name
        );
        assert_eq!(x.trace.packets, y.trace.packets, "{}", x.trace.name);
        assert_eq!(x.trace.endpoints, y.trace.endpoints, "{}", x.trace.name);
    }
}

#[test]
fn manifest_over_iot_sentinel_gives_the_folder_dataset() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let dir = dir.canonicalize().unwrap();
    let folder = load_dir(&dir, &LoadOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Absolute paths, no group or device: groups default to the file, the device to the
    // `_iotdevice-mac.txt` beside it, as in the folder layout.
    let mut plain = String::from("path,label\n");
    // Paths relative to the manifest (through a link to the data), explicit groups and devices.
    let mut full = String::from("# IoT Sentinel\npath,label,group,device\n");
    std::os::unix::fs::symlink(&dir, tmp.path().join("data")).unwrap();
    for t in &folder.traces {
        let path = Path::new(&t.trace.name);
        let rel = path.strip_prefix(&dir).unwrap();
        let mac = read_device_mac_file(dir.join(&t.label).join("_iotdevice-mac.txt")).unwrap();
        plain += &format!("{},{}\n", path.display(), t.label);
        full += &format!("data/{},{},\"{}\",{mac}\n", rel.display(), t.label, t.group);
    }
    for text in [plain, full] {
        let m = tmp.path().join("manifest.csv");
        std::fs::write(&m, text).unwrap();
        let manifest = load_manifest(&m, &LoadOptions::default()).unwrap();
        assert_eq!(manifest.traces.len(), 550);
        assert_eq!(manifest.packet_count(), folder.packet_count());
        assert_same(&manifest, &folder);
    }
}

/// IoT Sentinel devices for the home, and how many of each one's captures.
const DEVICES: [&str; 5] = [
    "Aria",
    "D-LinkCam",
    "EdimaxPlug1101W",
    "HueBridge",
    "WeMoSwitch",
];
const CAPTURES_PER_DEVICE: usize = 4;

struct Home {
    pcap: PathBuf,
    devices_csv: PathBuf,
    window_s: f64,
    /// (device, its MAC, capture path, shift ns) in the home's order.
    parts: Vec<(String, Mac, PathBuf, i64)>,
}

/// Captures laid on a grid: capture k of every device starts in window k, device i at i × 0.1 s.
fn build_home(dir: &Path, out: &Path) -> Home {
    let base_ns = 1_500_000_000_000_000_000i64;
    let mut chosen = Vec::new();
    let mut longest_ns = 0;
    for name in DEVICES {
        let folder = dir.join(name);
        let mac = read_device_mac_file(folder.join("_iotdevice-mac.txt")).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
            .collect();
        files.sort();
        for path in files.into_iter().take(CAPTURES_PER_DEVICE) {
            let t = read_trace(&path, ReadOptions::default()).unwrap();
            longest_ns = longest_ns.max(t.duration_ns());
            chosen.push((name.to_string(), mac, path, t.packets[0].t_ns));
        }
    }
    // A window holds the longest capture plus the devices' stagger.
    let window_s = (longest_ns as f64 / 1e9 + 1.0).ceil();
    let mut parts = Vec::new();
    let mut merge = Vec::new();
    for (i, name) in DEVICES.iter().enumerate() {
        for (k, (_, mac, path, first_ns)) in chosen.iter().filter(|c| c.0 == *name).enumerate() {
            let start_ns = base_ns + (k as f64 * window_s * 1e9) as i64 + i as i64 * 100_000_000;
            parts.push((name.to_string(), *mac, path.clone(), start_ns - first_ns));
            merge.push(MergePart {
                path: path.clone(),
                shift_ns: start_ns - first_ns,
                only_mac: None,
            });
        }
    }
    let pcap = out.join("home.pcap");
    merge_captures(&merge, std::fs::File::create(&pcap).unwrap()).unwrap();
    let mut csv = String::from("mac,name,type\n");
    for (name, mac, ..) in parts.iter().step_by(CAPTURES_PER_DEVICE) {
        csv += &format!("{mac},{name},\n");
    }
    let devices_csv = out.join("devices.csv");
    std::fs::write(&devices_csv, csv).unwrap();
    Home {
        pcap,
        devices_csv,
        window_s,
        parts,
    }
}

/// The packets of a capture sent or received by `mac`, with directions, as a whole home holds
/// them: every packet from or to the MAC.
fn own_packets(path: &Path, mac: Mac, shift_ns: i64) -> Trace {
    let mut t = read_trace(path, ReadOptions::default()).unwrap();
    set_direction(&mut t, &DeviceSpec::Mac(mac)).unwrap();
    let mine = |id: hush_trace::EndpointId| t.endpoint(id).mac == Some(mac);
    let packets = t
        .packets
        .iter()
        .filter(|p| mine(p.src) || mine(p.dst))
        .map(|p| {
            let mut p = *p;
            p.t_ns += shift_ns;
            p
        })
        .collect();
    Trace { packets, ..t }
}

#[test]
fn whole_home_gives_each_devices_own_packets_back() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = build_home(&dir, tmp.path());
    let windows = HomeWindows {
        window_s: home.window_s,
        block_s: home.window_s,
    };
    let spec = HomeSpec::new(&home.pcap, &home.devices_csv, windows).unwrap();
    let ds = load_home(&spec, &LoadOptions::default()).unwrap();
    assert!(ds.report.unseen_devices.is_empty());
    assert_eq!(ds.traces.len(), home.parts.len());
    assert_eq!(ds.labels, DEVICES);
    for (i, ((name, mac, path, shift_ns), t)) in home.parts.iter().zip(&ds.traces).enumerate() {
        let k = i % CAPTURES_PER_DEVICE;
        let start_s = k as f64 * home.window_s;
        assert_eq!(t.label, *name);
        assert_eq!(t.group, format!("home.pcap@{start_s}s"));
        assert_eq!(t.trace.name, format!("{name}@{start_s}s"));
        let want = own_packets(path, *mac, *shift_ns);
        assert!(!want.packets.is_empty());
        assert_eq!(
            t.trace.packets.len(),
            want.packets.len(),
            "{}",
            path.display()
        );
        for (got, want_p) in t.trace.packets.iter().zip(&want.packets) {
            // Same time, sizes, protocols, ports and direction; endpoints by value (each trace
            // has its own table).
            let strip = |p: &hush_trace::Packet| hush_trace::Packet {
                src: hush_trace::EndpointId(0),
                dst: hush_trace::EndpointId(0),
                ..*p
            };
            assert_eq!(strip(got), strip(want_p), "{}", path.display());
            assert_eq!(t.trace.endpoint(got.src), want.endpoint(want_p.src));
            assert_eq!(t.trace.endpoint(got.dst), want.endpoint(want_p.dst));
        }
    }
}
