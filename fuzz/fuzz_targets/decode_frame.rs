//! Any bytes as a frame of every link type hush decodes (and one it does not).
#![no_main]

use hush_trace::Proto;
use hush_trace::decode::{LinkType, Skip, decode_frame};
use libfuzzer_sys::fuzz_target;

const LINK_TYPES: [u32; 13] = [0, 1, 12, 14, 101, 105, 108, 113, 127, 228, 229, 276, 9];

fuzz_target!(|data: &[u8]| {
    for link in LINK_TYPES.map(LinkType) {
        match decode_frame(link, data) {
            Ok(d) => {
                assert!(link.is_supported());
                // Ports only exist for TCP and UDP.
                if d.src_port != 0 || d.dst_port != 0 {
                    assert!(d.proto.intersects(Proto::TCP | Proto::UDP), "{d:?}");
                }
            }
            Err(Skip::UnsupportedLink) => assert!(!link.is_supported()),
            Err(Skip::WifiNonData) => assert!(matches!(link.0, 105 | 127)),
        }
    }
});
