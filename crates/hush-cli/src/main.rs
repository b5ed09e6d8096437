//! `hush`: measure, stop and prove the leak in IoT traffic. This binary only parses arguments and
//! calls the hush crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod convert;
mod inspect;

/// hush: IoT traffic privacy. Measure what encrypted smart-home traffic reveals, shape it so it
/// reveals nothing, and measure what that costs.
#[derive(Parser)]
#[command(name = "hush", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarise captures: per device and per flow, protocols, rate, anomalies.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Convert a capture between pcap, pcapng (input only) and CSV.
    #[command(after_help = CONVERT_EXAMPLES)]
    Convert(ConvertArgs),
}

const INSPECT_EXAMPLES: &str = "\
Examples:
  hush inspect capture.pcap                      one file: devices, flows, protocols, anomalies
  hush inspect capture.pcap --device 00:17:88:2b:9a:0c
  hush inspect ../shared/data/iot-sentinel       a folder: one row per capture, then totals
  tcpdump -w - | hush inspect -                  standard input
  hush inspect capture.pcapng --json | jq .      everything, machine-readable

Direction (outbound = sent by the device) comes from --device, else from an IoT Sentinel
_iotdevice-mac.txt beside the file, else hush infers the device: the local host in the most
packets. Formats are detected from the first bytes: pcap, pcapng, or CSV (a tshark -T fields
export with a header row, or time,direction,size).";

const CONVERT_EXAMPLES: &str = "\
Examples:
  hush convert capture.pcapng capture.pcap       pcapng to pcap (headers synthesized, sizes kept)
  hush convert capture.pcap packets.csv          one row per packet
  hush convert packets.csv trace.pcap --seed 7   CSV back to a pcap that opens in Wireshark
  hush convert capture.pcap - --to csv | head    to standard output

The output format comes from --to, else from OUT's extension (.pcap or .csv). Packet payloads are
not kept by hush's model: pcap output carries valid synthesized Ethernet/IP/TCP-UDP headers and
seeded random payload bytes of the original lengths.";

/// Options shared by every command that reads traces.
#[derive(Args, Clone)]
struct ReadArgs {
    /// Fail on a corrupt record mid-file instead of keeping the packets before it.
    #[arg(long)]
    strict: bool,
    /// The device whose traffic is outbound: a MAC (00:17:88:2b:9a:0c) or an IP address.
    #[arg(long, value_name = "MAC|IP")]
    device: Option<String>,
}

#[derive(Args)]
struct InspectArgs {
    /// Capture files or folders (searched recursively); `-` reads standard input.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// How many flows and remote endpoints to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
}

#[derive(Args)]
struct ConvertArgs {
    /// Input capture (pcap, pcapng or CSV); `-` for standard input.
    input: PathBuf,
    /// Output file; `-` for standard output (then --to is required).
    output: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    to: Option<convert::OutFormat>,
    /// Seed for the random payload bytes of pcap output (same seed, same bytes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    read: ReadArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Convert(args) => convert::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

/// Print one line for the error and pick the exit code: 2 for bad input or usage, 1 for a
/// failure of hush or the system, 0 for a closed pipe (`hush ... | head`).
fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("hush: {err:#}");
    let bad_input = err
        .chain()
        .any(|c| c.is::<hush_trace::TraceError>() || c.is::<BadInput>());
    ExitCode::from(if bad_input { 2 } else { 1 })
}

/// An error in what the user gave us (arguments, files), as opposed to a failure of ours.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);
