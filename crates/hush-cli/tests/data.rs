//! Issue 13: `--data` takes a folder, a manifest or a whole-home capture, and equivalent layouts
//! give the same rows; bad input is one line and exit 2.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hush_trace::device::read_device_mac_file;
use hush_trace::home::{MergePart, merge_captures};
use hush_trace::{ReadOptions, read_trace};

fn hush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .output()
        .expect("run hush")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const DEVICES: [&str; 4] = ["Aria", "D-LinkCam", "HueBridge", "Lightify"];
const CAPTURES_PER_DEVICE: usize = 4;

/// A whole home merged from IoT Sentinel captures (capture k of every device in window k), and
/// the layout it is equivalent to: each device's own frames of each capture in its own file, and
/// a manifest giving each file its device's label and its window's group.
struct Homes {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    devices: PathBuf,
    manifest: PathBuf,
    window_s: String,
}

fn homes() -> Option<Homes> {
    let data = hush_trace::data::shared_data("iot-sentinel")?;
    let tmp = tempfile::tempdir().unwrap();
    let base_ns = 1_500_000_000_000_000_000i64;
    let mut chosen = Vec::new();
    let mut longest_ns = 0;
    for name in DEVICES {
        let mac = read_device_mac_file(data.join(name).join("_iotdevice-mac.txt")).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(data.join(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
            .collect();
        files.sort();
        for path in files.into_iter().take(CAPTURES_PER_DEVICE) {
            let t = read_trace(&path, ReadOptions::default()).unwrap();
            longest_ns = longest_ns.max(t.duration_ns());
            chosen.push((name, mac, path, t.packets[0].t_ns));
        }
    }
    let window_s = (longest_ns as f64 / 1e9 + 1.0).ceil();
    let mut merge = Vec::new();
    let mut manifest = String::from("path,label,group\n");
    let mut devices = String::from("mac,name\n");
    for (i, name) in DEVICES.iter().enumerate() {
        let mine = chosen.iter().filter(|c| c.0 == *name);
        for (k, (_, mac, path, first_ns)) in mine.enumerate() {
            let start_ns = base_ns + (k as f64 * window_s * 1e9) as i64 + i as i64 * 100_000_000;
            let part = MergePart {
                path: path.clone(),
                shift_ns: start_ns - first_ns,
                only_mac: None,
            };
            let own = tmp.path().join(format!("own/{name}/{k}.pcap"));
            std::fs::create_dir_all(own.parent().unwrap()).unwrap();
            let only_mine = MergePart {
                only_mac: Some(*mac),
                ..part.clone()
            };
            merge_captures(&[only_mine], std::fs::File::create(&own).unwrap()).unwrap();
            let group = format!("home.pcap@{}s", k as f64 * window_s);
            manifest += &format!("own/{name}/{k}.pcap,{name},{group}\n");
            if k == 0 {
                devices += &format!("{mac},{name}\n");
            }
            merge.push(part);
        }
    }
    let home = tmp.path().join("home.pcap");
    merge_captures(&merge, std::fs::File::create(&home).unwrap()).unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Some(Homes {
        home,
        devices: write("devices.csv", &devices),
        manifest: write("manifest.csv", &manifest),
        window_s: window_s.to_string(),
        _tmp: tmp,
    })
}

/// The home's flags: one window per capture, one block per window.
fn home_args(h: &Homes) -> Vec<String> {
    [
        "--data",
        h.home.to_str().unwrap(),
        "--devices",
        h.devices.to_str().unwrap(),
        "--home-window-s",
        &h.window_s,
        "--home-block-s",
        &h.window_s,
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = hush(&args);
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    o
}

#[test]
fn whole_home_and_manifest_give_the_same_attack_rows() {
    let Some(h) = homes() else {
        return;
    };
    for attack in ["flow-stats", "iot-sentinel"] {
        let common: Vec<String> = ["attack", "eval", "-a", attack, "--folds", "3", "--json"]
            .map(String::from)
            .to_vec();
        let home = run(&[common.clone(), home_args(&h)].concat());
        let manifest = [
            common,
            vec!["--data".into(), h.manifest.display().to_string()],
        ]
        .concat();
        let manifest = run(&manifest);
        let v: serde_json::Value = serde_json::from_slice(&home.stdout).unwrap();
        assert_eq!(v[0]["captures"].as_u64(), Some(16), "{v}");
        assert_eq!(text(&home.stdout), text(&manifest.stdout), "{attack}");
    }
}

#[test]
fn whole_home_and_manifest_give_the_same_bench_rows() {
    let Some(h) = homes() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rows = |data: Vec<String>, out: &str| -> Vec<String> {
        let out = tmp.path().join(out);
        let common = [
            "eval",
            "--defenses",
            "none,front,tamaraw",
            "--attacks",
            "flow-stats,iot-sentinel",
            "--folds",
            "3",
            "-o",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        run(&[common, data].concat());
        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        // Every column but the first, the dataset's name.
        csv.lines()
            .map(|l| l.split_once(',').unwrap().1.to_string())
            .collect()
    };
    let home = rows(home_args(&h), "home");
    let manifest = rows(
        vec!["--data".into(), h.manifest.display().to_string()],
        "manifest",
    );
    // Defenses × attacks × (adaptive, non-adaptive) × (session, window).
    assert_eq!(home.len(), 1 + 3 * 2 * 2 * 2, "{home:?}");
    assert_eq!(home, manifest);
    // The same home from an experiment file (paths relative to it).
    let exp = h.home.with_file_name("home.toml");
    std::fs::write(
        &exp,
        format!(
            "[[dataset]]\npath = \"home.pcap\"\ndevices = \"devices.csv\"\n\
             home_window_s = {w}\nhome_block_s = {w}\n",
            w = h.window_s
        ),
    )
    .unwrap();
    assert_eq!(rows(vec![exp.display().to_string()], "experiment"), home);
}

#[test]
fn bad_layouts_are_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let write = |name: &str, content: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    };
    // A capture of nothing: enough for the layouts to be told apart.
    let mut pcap = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        pcap.extend(v.to_le_bytes());
    }
    let home = write("home.pcap", &pcap);
    let missing = write("m.csv", b"path,label,group\nnope.pcap,plug,a\n");
    let bad_mac = write("devices.csv", b"mac,name\n00:17:88:2b:9a,plug\n");
    let cases: [(Vec<&str>, String); 4] = [
        (
            vec!["attack", "eval", "-a", "flow-stats", "--data", &missing],
            format!(
                "{missing}:2: {} does not exist",
                d.join("nope.pcap").display()
            ),
        ),
        (
            vec!["eval", "--data", &home, "-o", d.to_str().unwrap()],
            format!("{home}: a capture, not a labelled dataset"),
        ),
        (
            vec!["defend", &home, "--devices", &bad_mac],
            format!("{bad_mac}:2: field \"mac\": \"00:17:88:2b:9a\" is not a MAC address"),
        ),
        (
            vec![
                "attack",
                "eval",
                "-a",
                "flow-stats",
                "--data",
                &home,
                "--devices",
                &bad_mac,
                "--home-window-s",
                "60",
                "--home-block-s",
                "100",
            ],
            "--home-window-s 60 --home-block-s 100: block of 100 s: it must be a whole number"
                .into(),
        ),
    ];
    for (args, want) in cases {
        let o = hush(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(&format!("hush: {want}")), "{args:?}: {err}");
    }
}

#[test]
fn unseen_devices_are_one_warning_line() {
    let Some(h) = homes() else {
        return;
    };
    let devices = Path::new(&h.devices);
    let mut csv = std::fs::read_to_string(devices).unwrap();
    csv += "00:11:22:33:44:55,ghost\n02:00:00:00:00:09,phantom\n";
    std::fs::write(devices, csv).unwrap();
    let mut args: Vec<String> = ["attack", "eval", "-a", "flow-stats", "--folds", "3"]
        .map(String::from)
        .to_vec();
    args.extend(home_args(&h));
    let o = run(&args);
    let warnings: Vec<String> = text(&o.stderr)
        .lines()
        .filter(|l| l.contains("never seen"))
        .map(String::from)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", text(&o.stderr));
    let d = devices.display();
    assert!(
        warnings[0].ends_with(&format!(
            "2 device(s) never seen in the capture, so without traces: ghost (00:11:22:33:44:55, {d}:6), phantom (02:00:00:00:00:09, {d}:7)"
        )),
        "{}",
        warnings[0]
    );
}
