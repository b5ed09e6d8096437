//! Count packets and bytes in captures: `cargo run --release -p hush-trace --example count -- FILE...`
use hush_trace::{ReadOptions, read_trace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut packets, mut captured, mut wire) = (0u64, 0u64, 0u64);
    for path in std::env::args().skip(1) {
        let trace = read_trace(&path, ReadOptions::default())?;
        packets += trace.packets.len() as u64;
        captured += trace.report.captured_bytes;
        wire += trace.total_bytes();
    }
    println!("{packets} packets, {captured} captured bytes, {wire} wire bytes");
    Ok(())
}
