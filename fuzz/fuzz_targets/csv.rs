//! Any bytes through the per-packet CSV reader, lenient and strict.
#![no_main]

use hush_trace::ReadOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for strict in [false, true] {
        if let Ok(trace) = hush_trace::csv::read_csv(data, "fuzz", ReadOptions { strict }) {
            assert!(trace.packets.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
        }
    }
});
