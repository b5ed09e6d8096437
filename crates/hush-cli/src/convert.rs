//! `hush convert`: between pcap, pcapng (in) and CSV.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use hush_trace::{ReadOptions, read_trace};

use crate::{BadInput, ConvertArgs};

/// Formats hush writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// Classic pcap, nanosecond timestamps, synthesized headers.
    Pcap,
    /// One row per packet.
    Csv,
}

pub fn run(args: &ConvertArgs) -> Result<()> {
    let format = match (args.to, extension(&args.output).as_deref()) {
        (Some(f), _) => f,
        (None, Some("pcap" | "cap")) => OutFormat::Pcap,
        (None, Some("csv")) => OutFormat::Csv,
        _ => {
            return Err(BadInput(format!(
                "{}: cannot tell the output format from the name; pass --to pcap or --to csv",
                args.output.display()
            ))
            .into());
        }
    };
    let mut trace = read_trace(
        &args.input,
        ReadOptions {
            strict: args.read.strict,
        },
    )?;
    let spec = crate::inspect::device_spec_of(&args.read)?;
    crate::inspect::apply_device(&mut trace, &args.input, spec.as_ref())?;

    let to_stdout = args.output.as_os_str() == "-";
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            File::create(&args.output)
                .with_context(|| format!("creating {}", args.output.display()))?,
        )
    };
    let mut sink = BufWriter::new(sink);
    let written = match format {
        OutFormat::Pcap => hush_trace::write::write_pcap(&trace, &mut sink, args.seed),
        OutFormat::Csv => hush_trace::csv::write_csv(&trace, &mut sink),
    };
    // Write errors are ours (disk full, closed pipe), not bad input: keep them out of TraceError.
    written.map_err(|e| {
        let context = format!("writing {}", args.output.display());
        match e.kind {
            hush_trace::ErrorKind::Io(io) => anyhow::Error::new(io).context(context),
            other => anyhow::anyhow!("{context}: {other}"),
        }
    })?;
    sink.flush()
        .with_context(|| format!("writing {}", args.output.display()))?;
    if !to_stdout {
        eprintln!(
            "wrote {} packets to {}",
            trace.packets.len(),
            args.output.display()
        );
    }
    Ok(())
}

fn extension(p: &Path) -> Option<String> {
    p.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}
