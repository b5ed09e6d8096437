//! Any bytes through the streaming pcap/pcapng frame reader.
#![no_main]

use hush_trace::capture::FrameReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = FrameReader::new(data) else {
        return;
    };
    let mut frames = 0u64;
    let mut captured_bytes = 0u64;
    let mut last_offset = None;
    while let Ok(Some(frame)) = reader.next_frame() {
        frames += 1;
        captured_bytes += frame.data.len() as u64;
        // A frame never claims fewer bytes on the wire than were captured, and records move
        // forward through the input.
        assert!(frame.data.len() as u64 <= u64::from(frame.orig_len));
        assert!(frame.offset < data.len() as u64);
        assert!(last_offset.is_none_or(|o| o < frame.offset));
        last_offset = Some(frame.offset);
    }
    assert_eq!(reader.report.records, frames);
    assert_eq!(reader.report.captured_bytes, captured_bytes);
    assert!(reader.offset() <= data.len() as u64);
});
