//! `hush attack` as a user runs it, on a folder of a few IoT Sentinel devices (symlinks into the
//! shared data; nothing copied).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

fn hush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .output()
        .expect("run hush")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temporary `<label>/` folder of symlinks to five devices' folders.
fn five_devices() -> Option<(tempfile::TempDir, PathBuf)> {
    let data = hush_trace::data::shared_data("iot-sentinel")?;
    let tmp = tempfile::tempdir().unwrap();
    for d in ["Aria", "HueBridge", "Lightify", "D-LinkCam", "WeMoSwitch"] {
        std::os::unix::fs::symlink(data.join(d), tmp.path().join(d)).unwrap();
    }
    let p = tmp.path().to_path_buf();
    Some((tmp, p))
}

#[test]
fn list_and_bad_usage() {
    let o = hush(&["attack", "--list", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), hush_attack::NAMES.len());
    let o = hush(&["attack", "eval", "-a", "nope", "--data", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("unknown attack"),
        "{}",
        text(&o.stderr)
    );
    let o = hush(&[
        "attack",
        "eval",
        "-a",
        "flow-stats",
        "--data",
        "/nonexistent",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr).lines().count(), 1, "{}", text(&o.stderr));
}

#[test]
fn eval_train_predict_on_real_captures() {
    let Some((_tmp, dir)) = five_devices() else {
        return;
    };
    let d = dir.to_str().unwrap();
    let o = hush(&["attack", "eval", "-a", "flow-stats", "--data", d, "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let acc = v[0]["window"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "{acc}");
    assert_eq!(v[0]["labels"].as_array().unwrap().len(), 5);
    // A defense: both attackers reported, the adaptive one stronger.
    let o = hush(&[
        "attack",
        "eval",
        "-a",
        "m-agg",
        "--data",
        d,
        "--defense",
        "pad-mtu",
        "--attacker",
        "both",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (a, n) = (
        v[0]["window"]["accuracy"].as_f64().unwrap(),
        v[1]["window"]["accuracy"].as_f64().unwrap(),
    );
    assert!(a > n, "adaptive {a} vs non-adaptive {n}");
    // Train, then predict a capture of a known device.
    let model = dir.join("flow.model");
    let o = hush(&[
        "attack",
        "train",
        "-a",
        "flow-stats",
        "--data",
        d,
        "-m",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cap = hush_trace::data::shared_data("iot-sentinel")
        .unwrap()
        .join("HueBridge/Setup-A-1-STA.pcap");
    let o = hush(&[
        "attack",
        "predict",
        "-m",
        model.to_str().unwrap(),
        cap.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["top"][0][0].as_str(), Some("HueBridge"), "{v}");
    // A truncated model file is bad input, named.
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 3]).unwrap();
    let o = hush(&[
        "attack",
        "predict",
        "-m",
        model.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("flow.model") && text(&o.stderr).contains("cut short"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn neural_attacks_train_and_predict_from_the_cli() {
    let Some((_tmp, dir)) = five_devices() else {
        return;
    };
    let d = dir.to_str().unwrap();
    let model = dir.join("lstm.model");
    let o = hush(&[
        "attack",
        "train",
        "-a",
        "packet-lstm",
        "--data",
        d,
        "--epochs",
        "3",
        "-m",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cap = hush_trace::data::shared_data("iot-sentinel")
        .unwrap()
        .join("D-LinkCam/Setup-A-1-STA.pcap");
    let o = hush(&[
        "attack",
        "predict",
        "-m",
        model.to_str().unwrap(),
        cap.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0]["windows"].as_u64().unwrap() > 0, "{v}");
    // The image attack over joined captures, with its window as options.
    let o = hush(&[
        "attack",
        "eval",
        "-a",
        "image-cnn:bin_s=1,window=240,stride=60,size=16",
        "--data",
        d,
        "--join",
        "4",
        "--folds",
        "4",
        "--epochs",
        "5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v[0]["captures"].as_u64(),
        Some(20),
        "five devices x four joined traces"
    );
    // ITEMTK's own 8-hour windows on minutes-long captures: told what to do, exit 2.
    let o = hush(&[
        "attack",
        "train",
        "-a",
        "image-cnn",
        "--data",
        d,
        "-m",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--join"), "{}", text(&o.stderr));
    let o = hush(&[
        "attack", "eval", "-a", "m-seq", "--data", d, "--epochs", "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn activity_attacks_run_on_defended_traffic() {
    let Some(ev) = hush_trace::data::shared_data("events") else {
        return;
    };
    let tp = ev.join("pingpong-tplink");
    let sig = tempfile::NamedTempFile::new().unwrap();
    let learn = |defense: &str| {
        hush(&[
            "attack",
            "signatures",
            "learn",
            "--device",
            "50:c7:bf:33:1f:09",
            "-o",
            sig.path().to_str().unwrap(),
            "--event",
            &format!("on={}", tp.join("TP_LINK_LOCAL_ON.pcap").display()),
            "--event",
            &format!("off={}", tp.join("TP_LINK_LOCAL_OFF.pcap").display()),
            "--defense",
            defense,
        ])
    };
    let find = |defense: &str| {
        let o = hush(&[
            "attack",
            "signatures",
            "find",
            tp.join("wlan1.local.dns.pcap").to_str().unwrap(),
            "-s",
            sig.path().to_str().unwrap(),
            "--device",
            "50:c7:bf:33:1f:09",
            "--labels",
            tp.join("timestamps/tplink_switch/tplink-feb-13-2018.timestamps")
                .to_str()
                .unwrap(),
            "--labels-format",
            "pingpong",
            "--utc-offset",
            "-07:00",
            "--defense",
            defense,
            "--json",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["score"]["events_found"].as_u64().unwrap()
    };
    // Padding every packet to the MTU erases the lengths the signatures learnt from undefended
    // captures; an attacker who learns from padded captures finds the events by timing alone.
    assert!(learn("none").status.success());
    assert_eq!(find("pad-mtu"), 0);
    assert!(learn("pad-mtu").status.success());
    assert!(find("pad-mtu") >= 10);
    let o = learn("no-such-defense");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // The supervised classifier: trained on the single-event captures, scored on the trace.
    let events = |extra: &[&str]| {
        let mut args = vec![
            "attack".to_string(),
            "events".into(),
            tp.join("wlan1.local.dns.pcap").display().to_string(),
            "--device".into(),
            "50:c7:bf:33:1f:09".into(),
            "--event".into(),
            format!("on={}", tp.join("TP_LINK_LOCAL_ON.pcap").display()),
            "--event".into(),
            format!("off={}", tp.join("TP_LINK_LOCAL_OFF.pcap").display()),
            "--labels".into(),
            tp.join("timestamps/tplink_switch/tplink-feb-13-2018.timestamps")
                .display()
                .to_string(),
            "--labels-format".into(),
            "pingpong".into(),
            "--utc-offset".into(),
            "-07:00".into(),
            "--cycle-labels".into(),
            "on,off".into(),
            "--json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        hush(&refs)
    };
    let o = events(&[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["test_events"].as_u64(), Some(12));
    assert_eq!(v["metrics"]["per_class"].as_array().unwrap().len(), 2);
    let o = events(&["--train-first", "12"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

/// A CIC IoT 2022 interactions folder: one plug, two events told apart by a packet size, three
/// repetitions each, in the dataset's per-packet CSV layout.
fn cic_folder() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("plug");
    std::fs::create_dir(&dev).unwrap();
    let me = 3_232_270_669u32; // 192.168.137.77
    let cloud = 583_304_131u32;
    for (event, size) in [("LANON", 556), ("LANOFF", 557)] {
        for rep in 1..=3 {
            let mut csv = String::from(
                "Unnamed: 0,pck_size,ip_dst_new,ethernet_frame_size ,total_length,protocol ,source_port,dest_port,epoch_timestamp\n",
            );
            for i in 0..20u32 {
                let (dst, len) = if i % 2 == 0 {
                    (me, size)
                } else {
                    (cloud, 90 + i)
                };
                let t = 1_633_349_379.0 + f64::from(rep) * 1000.0 + f64::from(i) * 0.1;
                csv.push_str(&format!(
                    "{i},{},{dst},{len},{},6,443,50000,{t}\n",
                    len - 34,
                    len - 14
                ));
            }
            std::fs::write(dev.join(format!("plug{event}_{rep}.csv")), csv).unwrap();
        }
    }
    let p = tmp.path().to_path_buf();
    (tmp, p)
}

#[test]
fn cic_interactions_evaluate_per_device_by_repetition() {
    let (_tmp, dir) = cic_folder();
    let d = dir.to_str().unwrap();
    let o = hush(&["attack", "eval", "-a", "flow-stats", "--data", d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("(plug): 6 traces in 3 groups, 2 labels, 3 folds by repetition"),
        "{out}"
    );
    assert!(out.contains("mean over 1 devices: 100.0%"), "{out}");
    // One device picked by name; an unknown one is bad input.
    let o = hush(&[
        "attack",
        "eval",
        "-a",
        "k-fp",
        "--data",
        d,
        "--cic-device",
        "plug",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = hush(&[
        "attack",
        "eval",
        "-a",
        "k-fp",
        "--data",
        d,
        "--cic-device",
        "kettle",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no such device"),
        "{}",
        text(&o.stderr)
    );
    // A CSV cell that does not parse names its file, line and column; exit 2.
    let bad = dir.join("plug").join("plugLANON_1.csv");
    let mut text_in = std::fs::read_to_string(&bad).unwrap();
    text_in = text_in.replacen(",556,", ",5x6,", 1);
    std::fs::write(&bad, text_in).unwrap();
    let o = hush(&["inspect", "--strict", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("plugLANON_1.csv:2") && err.contains("ethernet_frame_size (column 4)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
