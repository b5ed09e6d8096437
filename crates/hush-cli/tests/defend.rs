//! `hush defend` as a user runs it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::{Command, Output};

use hush_trace::data::shared_data;

fn hush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .output()
        .expect("run hush")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn list_names_every_defense_with_its_defaults() {
    let o = hush(&["defend", "--list", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for want in [
        "none",
        "pad-mtu",
        "ilp-random",
        "buflo",
        "tamaraw",
        "front",
        "stp",
        "ipet-random-plus",
        "regulator",
        "break-pad",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let o = hush(&["defend", "--list"]);
    assert!(
        text(&o.stdout).contains("defaults: buflo:"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn bad_defenses_and_flags_are_one_line_exit_2() {
    let cases: [&[&str]; 5] = [
        &["defend", "x.pcap", "-d", "bufflo"],
        &["defend", "x.pcap", "-d", "buflo:rho=1"],
        &["defend", "x.pcap", "-d", "pad-mtu:size_bytes=5"],
        &["defend", "x.pcap", "--delay-ms=-5"],
        &["defend", "/nonexistent/capture.pcap"],
    ];
    for args in cases {
        let o = hush(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert_eq!(
            text(&o.stderr).lines().count(),
            1,
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

#[test]
fn a_real_capture_defended_to_pcap_and_csv() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let cap = dir.join("Withings/Setup-A-1-STA.pcap");
    let cap = cap.to_str().unwrap();
    let tmp = std::env::temp_dir().join(format!("hush-defend-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let pcap = tmp.join("d.pcap");
    let csv = tmp.join("d.csv");
    let o = hush(&[
        "defend",
        cap,
        "-d",
        "tamaraw:multiple_of=50",
        "-o",
        pcap.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let packets = v[0]["defended_packets"].as_u64().unwrap();
    assert_eq!(packets % 50, 0, "each direction a multiple of 50");
    // The pcap reads back with the same number of packets.
    let o = hush(&["inspect", pcap.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["packets"].as_u64(), Some(packets), "{s}");
    // CSV: a header and one row per packet, kinds named.
    let o = hush(&[
        "defend",
        cap,
        "-d",
        "front",
        "-o",
        csv.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let body = std::fs::read_to_string(&csv).unwrap();
    assert!(body.starts_with("time_s,direction,frame_bytes,payload_bytes,kind,"));
    assert!(body.contains(",cover,") && body.contains(",data,"));
    // Same seed, same bytes.
    let again = tmp.join("again.csv");
    hush(&[
        "defend",
        cap,
        "-d",
        "front",
        "-o",
        again.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert_eq!(std::fs::read(&csv).unwrap(), std::fs::read(&again).unwrap());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_folder_gives_one_row_per_defense() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let folder = dir.join("Withings");
    let o = hush(&[
        "defend",
        folder.to_str().unwrap(),
        "-d",
        "none",
        "-d",
        "ilp-constant",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["bytes_added_pct"].as_f64(), Some(0.0));
    assert!(rows[1]["captures"].as_u64().unwrap() >= 10);
    assert!(rows[1]["defended_bytes"].as_u64() > rows[0]["defended_bytes"].as_u64());
}
