//! A damaged or hostile signature file: `SignatureFile::from_bytes` must refuse it or give
//! signatures that match a stream of packet pairs without panicking (any slack).
#![no_main]

use hush_attack::signatures::{Pair, SignatureConfig, SignatureFile, find};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SignatureFile::from_bytes(data) else {
        return;
    };
    let stream: Vec<Pair> = (0..64u32)
        .map(|i| Pair {
            t_ns: i64::from(i) * 50_000_000,
            device_first: i % 3 != 0,
            first_len: 40 + (i * 97) % 1500,
            second_len: 40 + (i * 31) % 1500,
        })
        .collect();
    for slack_bytes in [0, 10, u32::MAX] {
        let cfg = SignatureConfig {
            slack_bytes,
            ..SignatureConfig::default()
        };
        for s in &file.signatures {
            let hits = find(s, &stream, &cfg);
            assert!(hits.len() <= stream.len());
        }
    }
});
