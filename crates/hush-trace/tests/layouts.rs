//! The dataset layouts `--data` accepts (folder, manifest, whole home) on small synthetic
//! captures: what each gives, and the one-line error for each kind of bad input.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hush_trace::dataset::{Layout, LoadOptions, load_dir, load_manifest};
use hush_trace::home::{HomeSpec, HomeWindows, load_home};
use hush_trace::write::write_pcap;
use hush_trace::{Direction, Endpoint, EndpointId, Mac, Packet, Proto, Trace};

const PLUG: Mac = Mac([0x50, 0xc7, 0xbf, 0, 0, 1]);
const CAM: Mac = Mac([0x00, 0x62, 0x6e, 0, 0, 2]);
const ROUTER: Mac = Mac([0x02, 0, 0, 0, 0, 0xfe]);

fn ep(mac: Mac, ip: [u8; 4]) -> Endpoint {
    Endpoint {
        mac: Some(mac),
        ip: Some(IpAddr::from(ip)),
    }
}

/// A capture of `(time_s, from, to, bytes)` packets between the plug (0), the camera (1) and the
/// internet behind the router (2).
fn capture(dir: &Path, name: &str, packets: &[(f64, u32, u32, u32)]) -> PathBuf {
    let trace = Trace {
        name: name.into(),
        endpoints: vec![
            ep(PLUG, [192, 168, 1, 10]),
            ep(CAM, [192, 168, 1, 11]),
            ep(ROUTER, [52, 1, 2, 3]),
        ],
        packets: packets
            .iter()
            .map(|&(t_s, src, dst, bytes)| Packet {
                t_ns: 1_600_000_000_000_000_000 + (t_s * 1e9) as i64,
                frame_len: bytes,
                ip_len: bytes - 14,
                payload_len: bytes - 54,
                proto: Proto::IPV4 | Proto::TCP,
                src_port: 40_000,
                dst_port: 443,
                src: EndpointId(src),
                dst: EndpointId(dst),
                ip_proto: 6,
                ..Packet::default()
            })
            .collect(),
        ..Trace::default()
    };
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_pcap(&trace, std::fs::File::create(&path).unwrap(), 0).unwrap();
    path
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn err_of<T: std::fmt::Debug>(r: hush_trace::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn manifest_rows_give_labels_groups_and_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    capture(d, "caps/a.pcap", &[(0.0, 0, 2, 100), (1.0, 2, 0, 200)]);
    capture(d, "caps/b.pcap", &[(0.0, 1, 2, 300), (0.5, 2, 1, 400)]);
    let m = write(
        &d.join("m.csv"),
        "# two captures\npath,label,group,device\ncaps/a.pcap,plug,day1,50:c7:bf:00:00:01\n\
         \"caps/b.pcap\",cam,day1,infer\ncaps/a.pcap,plug,day2,192.168.1.10\n",
    );
    let ds = load_manifest(&m, &LoadOptions::default()).unwrap();
    assert_eq!(ds.labels, ["cam", "plug"]);
    let groups: Vec<&str> = ds.traces.iter().map(|t| t.group.as_str()).collect();
    assert_eq!(groups, ["day1", "day1", "day2"]);
    // The MAC, inference and the IP all find the device: first packet out, second in.
    for t in &ds.traces {
        let dirs: Vec<Direction> = t.trace.packets.iter().map(|p| p.dir).collect();
        assert_eq!(
            dirs,
            [Direction::Outbound, Direction::Inbound],
            "{}",
            t.group
        );
    }
    // Without a group column, each file is its own group.
    let m2 = write(&d.join("m2.csv"), "path,label\ncaps/a.pcap,plug\n");
    let ds = load_manifest(&m2, &LoadOptions::default()).unwrap();
    assert_eq!(
        ds.traces[0].group,
        d.join("caps/a.pcap").display().to_string()
    );
    assert_eq!(
        Layout::detect(&m2, None, HomeWindows::default()).unwrap(),
        Layout::Manifest(m2.clone())
    );
}

#[test]
fn manifest_errors_are_one_line_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    capture(d, "a.pcap", &[(0.0, 0, 2, 100)]);
    write(&d.join("notes.pcap"), "not a capture at all\n");
    let load = |text: &str| {
        err_of(load_manifest(
            write(&d.join("m.csv"), text),
            &LoadOptions::default(),
        ))
    };
    let m = d.join("m.csv").display().to_string();
    assert_eq!(
        load("path,label\na.pcap,plug\nb.pcap,plug\n"),
        format!("{m}:3: {} does not exist", d.join("b.pcap").display())
    );
    assert_eq!(
        load("path,label\na.pcap,plug\n\na.pcap,cam\n"),
        format!(
            "{m}:4: duplicate row for {}, first given on line 2",
            d.join("a.pcap").display()
        )
    );
    assert_eq!(
        load("path,label,device\na.pcap,plug,my-plug\n"),
        format!("{m}:2: field \"device\": \"my-plug\" is not a MAC, an IP address or `infer`")
    );
    let e = load("path,label\na.pcap,plug\nnotes.pcap,cam\n");
    assert!(
        e.starts_with(&format!(
            "{m}:3: class \"cam\" is empty: none of its 1 captures could be read"
        )),
        "{e}"
    );
    assert_eq!(
        load("path,label\n,plug\n"),
        format!("{m}:2: field \"path\": empty")
    );
    assert!(load("file,class\na.pcap,plug\n").starts_with(&format!("{m}:1: missing column")));
    assert!(load("path,label\n").contains("lists no capture"));
    // The same file twice with two devices is two traces, not a duplicate.
    let ok = write(
        &d.join("m.csv"),
        "path,label,device\na.pcap,plug,50:c7:bf:00:00:01\na.pcap,cam,00:62:6e:00:00:02\n",
    );
    assert_eq!(
        load_manifest(&ok, &LoadOptions::default())
            .unwrap()
            .traces
            .len(),
        2
    );
    // An empty device means the MAC file beside the capture: naming that MAC again repeats it.
    write(&d.join("_iotdevice-mac.txt"), "50:c7:bf:00:00:01\n");
    assert_eq!(
        load("path,label,device\na.pcap,plug,\na.pcap,plug,50:C7:BF:00:00:01\n"),
        format!(
            "{m}:3: duplicate row for {}, first given on line 2",
            d.join("a.pcap").display()
        )
    );
}

#[test]
fn folder_with_an_empty_class_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    capture(d, "plug/a.pcap", &[(0.0, 0, 2, 100)]);
    std::fs::create_dir_all(d.join("cam")).unwrap();
    write(&d.join("cam/README"), "no captures yet\n");
    let e = err_of(load_dir(d, &LoadOptions::default()));
    assert!(
        e.starts_with(&format!(
            "{}: class \"cam\" is empty: none of its 1 captures could be read",
            d.join("cam").display()
        )),
        "{e}"
    );
    std::fs::remove_file(d.join("cam/README")).unwrap();
    let e = err_of(load_dir(d, &LoadOptions::default()));
    assert_eq!(
        e,
        format!(
            "{}: class \"cam\" is empty: no capture file in the folder",
            d.join("cam").display()
        )
    );
}

#[test]
fn layout_detection_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pcap = capture(d, "home.pcap", &[(0.0, 0, 2, 100)]);
    let e = err_of(Layout::detect(&pcap, None, HomeWindows::default()));
    assert!(
        e.contains("home.pcap: a capture") && e.contains("mac,name[,type]"),
        "{e}"
    );
    let trace_csv = write(&d.join("t.csv"), "time,direction,size\n0.1,out,100\n");
    let e = err_of(Layout::detect(&trace_csv, None, HomeWindows::default()));
    assert!(e.contains("t.csv: not a dataset"), "{e}");
    let devices = write(&d.join("devices.csv"), "mac,name\n50:c7:bf:00:00:01,plug\n");
    assert!(matches!(
        Layout::detect(&pcap, Some(&devices), HomeWindows::default()).unwrap(),
        Layout::Home(_)
    ));
    assert_eq!(
        Layout::detect(d, None, HomeWindows::default()).unwrap(),
        Layout::Folder(d.to_path_buf())
    );
    let e = err_of(Layout::detect(
        &pcap,
        Some(&devices),
        HomeWindows {
            window_s: 60.0,
            block_s: 90.0,
        },
    ));
    assert!(e.contains("whole number of 60 s windows"), "{e}");
}

#[test]
fn whole_home_cuts_windows_and_groups_by_block() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The plug talks to the internet at 1 s, 12 s and 31 s; the camera at 2 s and 25 s, and to
    // the plug at 13 s.
    let home = capture(
        d,
        "home.pcap",
        &[
            (1.0, 0, 2, 100),
            (1.5, 2, 0, 110),
            (2.0, 1, 2, 120),
            (12.0, 0, 2, 130),
            (13.0, 1, 0, 140),
            (25.0, 1, 2, 150),
            (31.0, 2, 0, 160),
        ],
    );
    let devices = write(
        &d.join("devices.csv"),
        "mac,name,type\n50:c7:bf:00:00:01,plug,smart-plug\n00:62:6e:00:00:02,cam,\n\
         00:11:22:33:44:55,bulb,light\n",
    );
    let windows = HomeWindows {
        window_s: 10.0,
        block_s: 20.0,
    };
    let spec = HomeSpec::new(&home, &devices, windows).unwrap();
    let ds = load_home(&spec, &LoadOptions::default()).unwrap();
    type Row<'a> = (&'a str, &'a str, &'a str, Vec<(u32, Direction)>);
    let rows: Vec<Row> = ds
        .traces
        .iter()
        .map(|t| {
            (
                t.label.as_str(),
                t.group.as_str(),
                t.trace.name.as_str(),
                t.trace
                    .packets
                    .iter()
                    .map(|p| (p.frame_len, p.dir))
                    .collect(),
            )
        })
        .collect();
    use Direction::{Inbound as I, Outbound as O};
    // Windows start at the first packet (1 s): [1, 11), [11, 21), [21, 31), [31, 41); blocks are
    // two windows.
    assert_eq!(
        rows,
        [
            (
                "smart-plug",
                "home.pcap@0s",
                "plug@0s",
                vec![(100, O), (110, I)]
            ),
            (
                "smart-plug",
                "home.pcap@0s",
                "plug@10s",
                vec![(130, O), (140, I)]
            ),
            ("smart-plug", "home.pcap@20s", "plug@30s", vec![(160, I)]),
            ("cam", "home.pcap@0s", "cam@0s", vec![(120, O)]),
            ("cam", "home.pcap@0s", "cam@10s", vec![(140, O)]),
            ("cam", "home.pcap@20s", "cam@20s", vec![(150, O)]),
        ]
    );
    assert_eq!(ds.labels, ["cam", "smart-plug"]);
    assert_eq!(ds.report.unseen_devices.len(), 1);
    assert!(
        ds.report.unseen_devices[0].starts_with("bulb (00:11:22:33:44:55, ")
            && ds.report.unseen_devices[0].ends_with("devices.csv:4)"),
        "{:?}",
        ds.report.unseen_devices
    );
    // Only unseen devices: an error naming the devices CSV.
    let nobody = write(&d.join("nobody.csv"), "mac,name\n00:11:22:33:44:55,bulb\n");
    let spec = HomeSpec::new(&home, &nobody, windows).unwrap();
    let e = err_of(load_home(&spec, &LoadOptions::default()));
    assert!(e.contains("nobody.csv: none of its 1 devices"), "{e}");
    // A folder of parts reads as one capture: the same windows.
    let parts = d.join("parts");
    capture(
        &parts,
        "1.pcap",
        &[
            (1.0, 0, 2, 100),
            (1.5, 2, 0, 110),
            (2.0, 1, 2, 120),
            (12.0, 0, 2, 130),
        ],
    );
    capture(
        &parts,
        "2.pcap",
        &[(13.0, 1, 0, 140), (25.0, 1, 2, 150), (31.0, 2, 0, 160)],
    );
    write(&parts.join("notes.txt"), "not a capture\n");
    let spec = HomeSpec::new(&parts, &devices, windows).unwrap();
    assert_eq!(spec.captures.len(), 2);
    let from_parts = load_home(&spec, &LoadOptions::default()).unwrap();
    let packets = |ds: &hush_trace::dataset::Dataset| -> Vec<Vec<Packet>> {
        ds.traces.iter().map(|t| t.trace.packets.clone()).collect()
    };
    assert_eq!(packets(&from_parts), packets(&ds));
}
