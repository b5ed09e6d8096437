//! Any bytes through format detection and the whole-trace reader, lenient and strict.
#![no_main]

use hush_trace::{Format, ReadOptions, read_from};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for strict in [false, true] {
        if let Ok(trace) = read_from(data, "fuzz", ReadOptions { strict }) {
            // Each packet comes from one capture record, and the trace is sorted by time.
            if matches!(trace.report.format, Some(Format::Pcap | Format::Pcapng)) {
                assert!(trace.packets.len() as u64 <= trace.report.records);
            }
            assert!(trace.packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
            for p in &trace.packets {
                assert!((p.src.0 as usize) < trace.endpoints.len());
                assert!((p.dst.0 as usize) < trace.endpoints.len());
            }
        }
    }
});
