//! Correctness on real third-party captures: the IoT Sentinel setup captures and the NKU and
//! PingPong event captures read to exactly the counts that an independent reader gives.
//!
//! Expected figures come from outside hush: packets and captured bytes from a 20-line Python pcap
//! walker and from `capinfos -c -d` (Wireshark 4.0.17); the 73 files with backwards timestamps
//! (253 backward steps in all) from the same Python walker, comparing each record's (s, µs) with
//! the record before it. Skips with a message when `../shared/data` is absent.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use hush_trace::data::shared_data;
use hush_trace::{Format, ReadOptions, Trace, read_trace};
use rayon::prelude::*;

/// Every `.pcap` under `dir`, sorted.
fn pcaps_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "pcap") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Read every file strictly, in parallel; any error fails the test with the file's name.
fn read_all_strict(files: &[PathBuf]) -> Vec<Trace> {
    files
        .par_iter()
        .map(|p| read_trace(p, ReadOptions { strict: true }).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn assert_clean(trace: &Trace) {
    let r = &trace.report;
    assert_eq!(r.stopped_early, None, "{}", trace.name);
    assert_eq!(r.truncated_tail_at, None, "{}", trace.name);
    assert!(
        r.skipped.is_empty(),
        "{}: skipped {:?}",
        trace.name,
        r.skipped
    );
    assert!(r.warnings.is_empty(), "{}: {:?}", trace.name, r.warnings);
    assert_eq!(r.format, Some(Format::Pcap), "{}", trace.name);
    assert_eq!(r.records, trace.packets.len() as u64, "{}", trace.name);
}

#[test]
fn iot_sentinel_reads_to_the_known_totals() {
    let Some(dir) = shared_data("iot-sentinel") else {
        return;
    };
    let files = pcaps_under(&dir);
    assert_eq!(files.len(), 550);
    let traces = read_all_strict(&files);

    let packets: usize = traces.iter().map(|t| t.packets.len()).sum();
    let captured_bytes: u64 = traces.iter().map(|t| t.report.captured_bytes).sum();
    let with_backwards = traces
        .iter()
        .filter(|t| t.report.backwards_timestamps > 0)
        .count();
    let backward_steps: u64 = traces.iter().map(|t| t.report.backwards_timestamps).sum();
    println!(
        "iot-sentinel: {} files, {packets} packets, {captured_bytes} captured bytes, \
         {with_backwards} files with backwards timestamps ({backward_steps} steps)",
        files.len()
    );
    assert_eq!(packets, 193_421);
    assert_eq!(captured_bytes, 61_269_121);
    assert_eq!(with_backwards, 73);
    assert_eq!(backward_steps, 253);

    for t in &traces {
        assert_clean(t);
        assert_eq!(
            t.report.link_types.keys().collect::<Vec<_>>(),
            ["ETHERNET"],
            "{}",
            t.name
        );
        // Sorted on load, whatever the file's order.
        assert!(
            t.packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns),
            "{}",
            t.name
        );
        // Classic pcap stores µs: every timestamp is a whole number of µs.
        assert!(t.packets.iter().all(|p| p.t_ns % 1000 == 0), "{}", t.name);
    }
}

#[test]
fn nku_and_pingpong_event_captures_read_without_errors() {
    for (sub, files_expected, packets_expected, bytes_expected) in [
        ("events/nku-lifecycle", 23, 17_794, 4_113_408),
        ("events/pingpong-tplink", 6, 4_755, 1_400_978),
    ] {
        let Some(dir) = shared_data(sub) else {
            return;
        };
        let files = pcaps_under(&dir);
        assert_eq!(files.len(), files_expected, "{sub}");
        let traces = read_all_strict(&files);
        traces.iter().for_each(assert_clean);
        let packets: usize = traces.iter().map(|t| t.packets.len()).sum();
        let captured_bytes: u64 = traces.iter().map(|t| t.report.captured_bytes).sum();
        println!(
            "{sub}: {} files, {packets} packets, {captured_bytes} bytes",
            files.len()
        );
        assert_eq!(packets, packets_expected, "{sub}");
        assert_eq!(captured_bytes, bytes_expected, "{sub}");
    }
}

/// The whole Xiaodu plug capture holds the same traffic its event slices were cut from, so every
/// slice's packets appear in it at the same times and sizes.
#[test]
fn nku_plug_slices_are_part_of_the_whole_capture() {
    let Some(dir) = shared_data("events/nku-lifecycle") else {
        return;
    };
    let whole = read_trace(
        dir.join("xiaodu_plug/xiaodu_plug.pcap"),
        ReadOptions::default(),
    )
    .unwrap();
    let in_whole: std::collections::HashSet<(i64, u32)> = whole
        .packets
        .iter()
        .map(|p| (p.t_ns, p.frame_len))
        .collect();
    let slices = pcaps_under(&dir.join("xiaodu_plug_lifecycle"));
    assert_eq!(slices.len(), 15);
    let mut found = 0;
    let mut total = 0;
    for slice in read_all_strict(&slices) {
        total += slice.packets.len();
        found += slice
            .packets
            .iter()
            .filter(|p| in_whole.contains(&(p.t_ns, p.frame_len)))
            .count();
    }
    println!("{found} of {total} slice packets found in the whole capture");
    assert!(total > 0);
    assert_eq!(found, total);
}
