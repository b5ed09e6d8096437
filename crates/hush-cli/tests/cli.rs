//! The `hush` binary as a user runs it: exit codes, one-line errors, and real captures.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

use hush_trace::data::shared_data;

fn hush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .output()
        .expect("run hush")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hush-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn missing_file_is_bad_input_with_one_line() {
    let o = hush(&["inspect", "/nonexistent/capture.pcap"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/capture.pcap"), "{err}");
}

#[test]
fn not_a_capture_names_the_file() {
    let path = temp_path("garbage.bin");
    std::fs::write(&path, [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9]).expect("write");
    let o = hush(&["inspect", path.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("garbage.bin"), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a pcap"), "{}", stderr(&o));
}

#[test]
fn bad_device_flag_is_usage_error() {
    let path = temp_path("x.pcap");
    let o = hush(&[
        "inspect",
        path.to_str().expect("utf8"),
        "--device",
        "not-a-mac",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--device"), "{}", stderr(&o));
}

#[test]
fn unknown_flag_is_usage_error() {
    assert_eq!(
        hush(&["inspect", "--frobnicate", "x"]).status.code(),
        Some(2)
    );
}

#[test]
fn inspect_real_capture_text_and_json() {
    let Some(dir) = shared_data("events/pingpong-tplink") else {
        return;
    };
    let file = dir.join("TP_LINK_LOCAL_ON.pcap");
    let file = file.to_str().expect("utf8");
    let o = hush(&["inspect", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("packets") && text.contains("top flows"),
        "{text}"
    );

    let o = hush(&["inspect", file, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let packets = v["packets"].as_u64().expect("packets");
    assert!(packets > 0);
    let flows_bytes: u64 = v["top_flows"]
        .as_array()
        .expect("flows")
        .iter()
        .map(|f| {
            f["a_to_b"]["bytes"].as_u64().unwrap_or(0) + f["b_to_a"]["bytes"].as_u64().unwrap_or(0)
        })
        .sum();
    assert!(flows_bytes <= v["bytes"].as_u64().expect("bytes"));
}

#[test]
fn inspect_folder_counts_every_packet() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let o = hush(&["inspect", dir.to_str().expect("utf8"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let traces = v["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 550);
    let total: u64 = traces
        .iter()
        .map(|t| t["packets"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 193_421);
    let out: u64 = traces
        .iter()
        .map(|t| t["device"]["outbound"]["packets"].as_u64().unwrap_or(0))
        .sum();
    let inb: u64 = traces
        .iter()
        .map(|t| t["device"]["inbound"]["packets"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!((out, inb), (107_652, 85_769));
}

#[test]
fn convert_round_trips_through_csv_and_pcap() {
    let Some(dir) = shared_data("events/pingpong-tplink") else {
        return;
    };
    let input = dir.join("TP_LINK_LOCAL_ON.pcap");
    let csv = temp_path("rt.csv");
    let pcap = temp_path("rt.pcap");
    let o = hush(&[
        "convert",
        input.to_str().expect("utf8"),
        csv.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hush(&[
        "convert",
        csv.to_str().expect("utf8"),
        pcap.to_str().expect("utf8"),
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = hush(&["inspect", input.to_str().expect("utf8"), "--json"]);
    let b = hush(&["inspect", pcap.to_str().expect("utf8"), "--json"]);
    let a: serde_json::Value = serde_json::from_slice(&a.stdout).expect("json");
    let b: serde_json::Value = serde_json::from_slice(&b.stdout).expect("json");
    for key in ["packets", "bytes", "start_ns", "flows"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    // Same seed, same bytes.
    let again = temp_path("rt2.pcap");
    let o = hush(&[
        "convert",
        csv.to_str().expect("utf8"),
        again.to_str().expect("utf8"),
        "--seed",
        "3",
    ]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(&pcap).expect("read"),
        std::fs::read(&again).expect("read")
    );
}

#[test]
fn convert_needs_a_format_for_stdout() {
    let o = hush(&["convert", "x.pcap", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--to"), "{}", stderr(&o));
}
