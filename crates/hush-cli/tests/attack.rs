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
