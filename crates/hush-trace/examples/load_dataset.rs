//! Load a labelled dataset (`<root>/<label>/<captures>`) and print what it holds and how long it
//! took: `cargo run --release -p hush-trace --example load_dataset -- ../shared/data/iot-sentinel`
use hush_trace::Direction;
use hush_trace::dataset::{LoadOptions, load_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).ok_or("usage: load_dataset DIR")?;
    let started = std::time::Instant::now();
    let ds = load_dir(&root, &LoadOptions::default())?;
    let elapsed_s = started.elapsed().as_secs_f64();
    let packets = ds.traces.iter().flat_map(|t| &t.trace.packets);
    let (out, inb) = packets.fold((0u64, 0u64), |(o, i), p| match p.dir {
        Direction::Outbound => (o + 1, i),
        Direction::Inbound => (o, i + 1),
        Direction::Unknown => (o, i),
    });
    println!(
        "{} captures, {} labels, {} packets ({out} outbound, {inb} inbound), {} not read, loaded in {elapsed_s:.3} s",
        ds.traces.len(),
        ds.labels.len(),
        ds.packet_count(),
        ds.report.not_read.len()
    );
    Ok(())
}
