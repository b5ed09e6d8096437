//! Read a capture (pcap, pcapng or CSV) and print it as hush's per-packet CSV on stdout.
//!
//! ```text
//! cargo run -p hush-trace --example convert_csv -- capture.pcap > capture.csv
//! ```

use std::io::Write;

use hush_trace::csv::write_csv;
use hush_trace::{ReadOptions, read_trace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: convert_csv <capture.pcap|capture.pcapng|trace.csv|->");
        std::process::exit(2);
    };
    let trace = read_trace(&path, ReadOptions::default())?;
    let mut stdout = std::io::stdout().lock();
    write_csv(&trace, &mut stdout)?;
    stdout.flush()?;
    let report = &trace.report;
    if report.has_anomalies() {
        eprintln!("{}: {report:?}", trace.name);
    }
    Ok(())
}
