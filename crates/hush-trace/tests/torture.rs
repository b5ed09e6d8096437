//! Reader robustness on the torture folder of real parser test files (tcpdump's test suite, the
//! pcap-parser crate's and npm package's assets, python-pcapng's samples): every file either reads
//! or fails with an error that names it, in lenient and strict mode, without a panic and without
//! memory that grows with what a header claims rather than with what the file holds.
//!
//! Skips with a message when `../shared/data/torture` is absent.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use hush_trace::capture::{FrameReader, sniff_format};
use hush_trace::data::shared_data;
use hush_trace::{ErrorKind, ReadOptions, Trace, TraceError, read_trace};

/// Every regular file under `dir`, sorted so reports are stable.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn kind_name(e: &TraceError) -> &'static str {
    match e.kind {
        ErrorKind::Io(_) => "io",
        ErrorKind::UnknownFormat(_) => "unknown format",
        ErrorKind::TruncatedHeader(_) => "truncated header",
        ErrorKind::BadHeader { .. } => "bad header",
        ErrorKind::RecordTooLarge { .. } => "record too large",
        ErrorKind::Malformed { .. } => "malformed",
        ErrorKind::MissingColumn(_) => "missing column",
        ErrorKind::BadField { .. } => "bad field",
        ErrorKind::Invalid(_) => "invalid",
        _ => "other",
    }
}

/// True when the first bytes announce pcap or pcapng, so an error must carry a byte offset.
fn is_binary_capture(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    sniff_format(&bytes).is_some()
}

/// Read under `catch_unwind`; `Err(message)` means the reader panicked.
fn read_guarded(path: &Path, strict: bool) -> Result<Result<Trace, TraceError>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        read_trace(path, ReadOptions { strict })
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic".to_string())
    })
}

/// Peak resident memory of this process in KiB (Linux), for the memory bound.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn every_torture_file_reads_or_fails_cleanly() {
    let Some(dir) = shared_data("torture") else {
        return;
    };
    let files = files_under(&dir);
    assert!(
        files.len() >= 400,
        "torture folder has {} files",
        files.len()
    );

    let mut problems = Vec::new();
    let mut read_ok = 0;
    let mut packets = 0;
    let mut records = 0;
    let mut stopped_early = 0;
    let mut truncated_tail = 0;
    let mut errors_by_kind: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for path in &files {
        let shown = path.display().to_string();
        let binary = is_binary_capture(path);
        for strict in [false, true] {
            let mode = if strict { "strict" } else { "lenient" };
            match read_guarded(path, strict) {
                Err(panic) => problems.push(format!("{shown} ({mode}): PANIC {panic}")),
                Ok(Ok(trace)) => {
                    if strict {
                        continue;
                    }
                    read_ok += 1;
                    packets += trace.packets.len();
                    records += trace.report.records;
                    stopped_early += u32::from(trace.report.stopped_early.is_some());
                    truncated_tail += u32::from(trace.report.truncated_tail_at.is_some());
                    // Packets are never invented: each comes from one record.
                    if trace.packets.len() as u64 > trace.report.records {
                        problems.push(format!(
                            "{shown}: {} packets from {} records",
                            trace.packets.len(),
                            trace.report.records
                        ));
                    }
                    if trace.packets.windows(2).any(|w| w[1].t_ns < w[0].t_ns) {
                        problems.push(format!("{shown}: packets not sorted by time"));
                    }
                }
                Ok(Err(e)) => {
                    *errors_by_kind.entry((mode, kind_name(&e))).or_default() += 1;
                    let msg = e.to_string();
                    if !msg.starts_with(&shown) {
                        problems.push(format!(
                            "{shown} ({mode}): error does not name the file: {msg}"
                        ));
                    }
                    if binary && e.offset.is_none() {
                        problems.push(format!("{shown} ({mode}): error has no byte offset: {msg}"));
                    }
                }
            }
        }
    }

    println!(
        "torture: {} files, {read_ok} read leniently ({records} records, {packets} packets, \
         {stopped_early} stopped early, {truncated_tail} with a truncated last record)",
        files.len()
    );
    for ((mode, kind), n) in &errors_by_kind {
        println!("  {mode:7} errors, {kind}: {n}");
    }
    if let Some(kib) = peak_rss_kib() {
        println!("  peak RSS {} MiB", kib / 1024);
        // Readers buffer at most one record plus a 1 MiB read buffer; the largest torture file is
        // under 1 MiB. Far above that means a header's claim was allocated up front.
        assert!(kib < 256 * 1024, "peak RSS {kib} KiB");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The folder holds three non-captures (licences, one fake pcap) and a few deliberately broken
    // files; nearly everything else must read.
    assert!(read_ok >= files.len() - 12, "only {read_ok} files read");
}

/// Record counts per file as capinfos reports them (`capinfos -T -r -c -M`), plus the partial
/// count capinfos gives for files it stops reading early.
fn capinfos_counts(files: &[PathBuf]) -> Option<BTreeMap<PathBuf, (u64, bool)>> {
    let out = Command::new("capinfos")
        .args(["-T", "-r", "-c", "-M"])
        .args(files)
        .output()
        .ok()?;
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((path, n)) = line.rsplit_once('\t')
            && let Ok(n) = n.trim().parse()
        {
            counts.insert(PathBuf::from(path), (n, true));
        }
    }
    // "capinfos: An error occurred after reading 3 packets from "x.pcap"."
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if let Some(rest) = line.strip_prefix("capinfos: An error occurred after reading ")
            && let Some((n, rest)) = rest.split_once(" packets from \"")
            && let Some(path) = rest.strip_suffix("\".")
            && let Ok(n) = n.parse()
        {
            counts.insert(PathBuf::from(path), (n, false));
        }
    }
    Some(counts)
}

/// Files where hush and Wireshark 4.0 disagree on purpose, with the reason.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "python-pcapng/test007.ntar",
        "a simple packet block holds 123 bytes for an interface with a 96-byte snap length; \
         Wireshark reads 96 and looks for the block trailer there, hush trusts the block length \
         (its trailer agrees) and keeps the packet cut to 96 bytes",
    ),
    ("python-pcapng/test010.ntar", "same bytes as test007.ntar"),
];

/// Records hush reads leniently agree with capinfos (Wireshark's reader) on every file both read,
/// except where hush is documented to differ. Skips when capinfos is not installed.
#[test]
fn record_counts_agree_with_capinfos() {
    let Some(dir) = shared_data("torture") else {
        return;
    };
    let files: Vec<PathBuf> = files_under(&dir)
        .into_iter()
        .filter(|p| is_binary_capture(p))
        .collect();
    let Some(counts) = capinfos_counts(&files) else {
        eprintln!("skipped: capinfos not installed (apt-get install tshark)");
        return;
    };
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for path in &files {
        let Some(&(theirs, clean)) = counts.get(path) else {
            continue;
        };
        let ours = match read_trace(path, ReadOptions::default()) {
            Ok(t) => t.report.records,
            Err(_) => 0,
        };
        compared += 1;
        let known = KNOWN_DIFFERENCES
            .iter()
            .find(|(name, _)| path.ends_with(name));
        if let Some((name, why)) = known {
            assert_ne!(
                ours, theirs,
                "{name} no longer differs: drop it from the list"
            );
            println!("known difference {name}: hush {ours}, capinfos {theirs}: {why}");
            continue;
        }
        if ours != theirs {
            let how = if clean {
                ""
            } else {
                " (capinfos stopped early)"
            };
            disagreements.push(format!(
                "{}: hush {ours}, capinfos {theirs}{how}",
                path.display()
            ));
        }
    }
    println!("compared {compared} files with capinfos");
    assert!(compared > 300, "capinfos read only {compared} files");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Byte offset of the last record of a capture, read with the frame reader itself.
fn last_record_offset(bytes: &[u8]) -> (u64, u64) {
    let mut reader = FrameReader::new(bytes).unwrap();
    let (mut n, mut last) = (0, 0);
    while let Some(frame) = reader.next_frame().unwrap() {
        n += 1;
        last = frame.offset;
    }
    (n, last)
}

/// A real capture cut inside its last record keeps every packet before it and says where the cut
/// record starts, for classic pcap and for pcapng.
#[test]
fn truncated_last_record_keeps_packets_before_it() {
    let Some(dir) = shared_data("torture") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "npm-pcap-parser/smtp.pcap",
        "pcap-parser-crate/wireshark_samples-test.pcapng",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (records, last_at) = last_record_offset(&bytes);
        assert!(records > 2, "{name}: {records} records");
        // Cut 20 bytes into the last record: inside it, before its end.
        let cut_len = last_at as usize + 20;
        assert!(cut_len < bytes.len());
        let cut = tmp.path().join(Path::new(name).file_name().unwrap());
        std::fs::write(&cut, &bytes[..cut_len]).unwrap();
        for strict in [false, true] {
            let trace = read_trace(&cut, ReadOptions { strict }).unwrap();
            assert_eq!(trace.report.records, records - 1, "{name}");
            assert_eq!(trace.report.truncated_tail_at, Some(last_at), "{name}");
            assert_eq!(trace.report.stopped_early, None, "{name}");
        }
        let whole = read_trace(dir.join(name), ReadOptions::default()).unwrap();
        assert_eq!(whole.report.records, records);
        assert_eq!(whole.report.truncated_tail_at, None);
    }
}
