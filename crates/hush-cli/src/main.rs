//! `hush`: measure, stop and prove the leak in IoT traffic. This binary only parses arguments and
//! calls the hush crates.

// The doc comments in this crate are clap's `--help` text, written for a terminal, where
// `[,MIN,MAX]` means "optional" and `<dataset>` a placeholder, neither a link nor HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod attack;
mod bench;
mod convert;
mod data;
mod defend;
mod inspect;
mod net;
mod shape;

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
    /// Identify devices from their traffic: evaluate, train and apply attacks.
    #[command(after_help = ATTACK_EXAMPLES)]
    Attack(attack::AttackArgs),
    /// Apply defenses to captures: the defended trace and what it cost.
    #[command(after_help = DEFEND_EXAMPLES)]
    Defend(defend::DefendArgs),
    /// What a shaping schedule costs on the wire, alone or carrying a capture's traffic.
    #[command(after_help = SHAPE_EXAMPLES)]
    Shape(shape::ShapeCmd),
    /// Run beside a device: carry its TCP connections through one shaped tunnel to a gateway.
    #[command(after_help = PROXY_EXAMPLES)]
    Proxy(net::ProxyArgs),
    /// Terminate devices' shaped tunnels and connect their streams to the real servers.
    #[command(after_help = GATEWAY_EXAMPLES)]
    Gateway(net::GatewayArgs),
    /// The bench: every defense x attack x seed over one or more datasets, adaptive and naive
    /// attackers, privacy next to cost; results as CSV and JSON, an HTML report, cached so a
    /// killed run resumes.
    #[command(after_help = EVAL_EXAMPLES)]
    Eval(bench::BenchArgs),
    /// The bench on a built-in simulated smart home (sleep monitor, camera, plug, bulb, hub):
    /// no files needed.
    Demo(bench::DemoArgs),
    /// Rebuild the HTML report (privacy-overhead frontier, latency plot, every cell) from a
    /// results.json.
    Report(bench::ReportArgs),
    /// Make a key pair for a proxy or gateway; prints the public key.
    Keygen(net::KeygenArgs),
    /// Print the public key of a private key file.
    Pubkey(net::PubkeyArgs),
}

const EVAL_EXAMPLES: &str = "\
Examples:
  hush eval --data ../shared/data/iot-sentinel --types          the catalog x the forest attacks
  hush eval --data ../shared/data/events                        activity: PingPong's and NKU's plugs
  hush eval --data DIR --defenses none,front,tamaraw --attacks flow-stats,m-seq --epochs 30
  hush eval --data DIR --defenses 'none,tamaraw:multiple_of=50|100|200'   a sweep: 4 settings
  hush eval --data DIR --seeds 0,1,2 -o runs/a                  three seeds; results in runs/a
  hush eval --data manifest.csv                                 a manifest: path,label,group[,device]
  hush eval --data home.pcap --devices devices.csv              a whole home: a trace per device and minute
  hush eval bench.toml                                          an experiment file

Each cell defends every capture with the simulator, then cross-validates the attack by capture
twice: trained on defended traffic (adaptive) and on undefended traffic (naive), both tested on
defended traffic. Activity datasets are whole captures, defended whole, then cut into windows
around each labelled event and idle windows between events. Finished cells are cached in
OUT/cache by content hash: rerun after a kill, or with one more defense, and only what is
missing is computed.

--data reads three layouts of labelled traffic:
  DIR/<label>/<captures>   one trace per file, its group (kept on one side of every split) the
                           file; a _iotdevice-mac.txt in a label folder names its device
  manifest.csv             path,label,group[,device]: one trace per row, paths relative to the
                           manifest; group defaults to the file; device is a MAC, an IP or infer
                           (default: a _iotdevice-mac.txt beside the capture, else inferred)
  CAPTURE --devices CSV    a whole-home capture (a pcap/pcapng file, or a folder of its parts)
                           and its devices, mac,name[,type]: each device's frames cut into
                           --home-window-s windows (60) on one clock grid, labelled by type,
                           else name; the windows of one --home-block-s block (600) are one
                           group for every device, so no split puts the same minutes on both sides

The table prints, per dataset and defense, the strongest attack: each attack's accuracy averaged
over the seeds, then the best. OUT/report.html draws the same frontier, the latency plot, traffic
rates and confusion matrices; `hush report OUT/results.json` rebuilds it.

An experiment file (TOML):
  seeds = [0]
  attacks = [\"iot-sentinel\", \"flow-stats\", \"m-agg\"]
  defenses = [\"none\", \"pad-mtu\", \"front\", \"tamaraw:multiple_of=50|100\"]
  [[sweep]]                      # every combination: 4 FRONT settings
  defense = \"front\"
  max_records = [100, 500]
  w_max_s = [4, 8]
  [[dataset]]
  path = \"../shared/data/iot-sentinel\"
  types = true
  [[dataset]]                    # a whole home (or path = \"manifest.csv\" for a manifest)
  path = \"home.pcap\"
  devices = \"devices.csv\"      # mac,name[,type]; home_window_s = 60, home_block_s = 600
  [[dataset]]                    # any capture with event labels
  kind = \"activity\"
  name = \"my-plug\"
  capture = \"plug.pcap\"
  labels = \"plug.csv\"          # time,device,event[,end]; or labels_format = \"phases\"/\"pingpong\"
  [network]
  one_way_delay_s = 0.01
Paths are relative to the file; flags beside it take precedence.";

const ATTACK_EXAMPLES: &str = "\
Examples:
  hush attack --list                                          the attacks and their sources
  hush attack eval -a flow-stats --data ../shared/data/iot-sentinel --types
  hush attack eval -a m-agg --data DIR --defense ilp-random --attacker both
  hush attack eval -a iot-sentinel --data DIR --per-class --json
  hush attack eval -a flow-stats --data manifest.csv            path,label,group[,device] rows
  hush attack eval -a flow-stats --data home.pcap --devices devices.csv --home-window-s 300
  hush attack train -a flow-stats --data DIR --types -m flow.model
  hush attack predict -m flow.model capture.pcap               the most likely device types
  hush attack eval -a m-seq --data DIR --types --epochs 30       iPET's BiLSTM (progress bar per epoch)
  hush attack eval -a image-cnn:bin_s=1,window=300 --data DIR --join 4   ITEMTK over joined captures
  hush attack peaks CAPTURE --labels phases.txt --labels-format phases --utc-offset +08:00
  hush attack signatures learn --event on=ON.pcap --event off=OFF.pcap -o plug.sig
  hush attack events CAPTURE --event on=ON.pcap --event off=OFF.pcap --labels times.csv

--data is a folder <label>/<captures>, a manifest CSV, or a whole-home capture with --devices
(see hush eval --help). Folds are by group (the capture, a manifest's group, a whole home's time
block), stratified by label: a group is never on both sides. --types merges IoT
Sentinel's 31 devices into the paper's 27 types. With --defense, the adaptive attacker trains on
defended traffic, the non-adaptive one on undefended traffic; both are tested on defended traffic.";

const DEFEND_EXAMPLES: &str = "\
Examples:
  hush defend --list                                        every defense, its source and defaults
  hush defend capture.pcap                                  ILP random (Datta's high latency): overhead, delay
  hush defend capture.pcap -d all                           the whole catalog, one row each
  hush defend capture.pcap -d tamaraw -o defended.pcap      the defended trace, for Wireshark
  hush defend capture.pcap -d front:max_records=300 -o defended.csv
  hush defend ../shared/data/iot-sentinel -d all --json     every capture of a folder, totals per defense
  hush defend manifest.csv -d front                         every row of a manifest (path,label,...)
  hush defend home.pcap --devices devices.csv --home-window-s 3600 -d all   each device, hour by hour
  hush defend capture.pcap -d pad-mtu --uplink-bps 12500    a 100 kbit/s uplink: padding shows as delay

Each direction runs through hush's shaping engine on a virtual clock (the engine that runs live in
hush proxy/gateway). Bytes are frames on the wire; the observer sits at the device, where the
capture was taken. Every random choice comes from --seed.";

const SHAPE_EXAMPLES: &str = "\
Examples:
  hush shape --schedule datta-low                         150 B every 50 ms: its cost per second and day
  hush shape --schedule datta-high                        gaps U[0.2,0.4] s, sizes U[50,200] B
  hush shape --schedule random --gap exp:0.3 --size normal:120,40
  hush shape --schedule on-off --on 2 --off uniform:5,30 --gap 0.05 --size 300
  hush shape --schedule adaptive --rates 2,5,20 --size 200 --hold-s 30
  hush shape --schedule constant --gap 0.1 --size 400 --max-bytes-per-day 50000000
  hush shape --schedule datta-high --trace capture.pcap   carry a real capture: overhead and delay
  hush shape --config proxy.toml --json                   the [shape] section of a config file

Sizes are whole records on the wire, hush's 22 bytes of framing and AEAD tag included.
Distributions: a number, uniform:MIN,MAX, normal:MEAN,STD[,MIN,MAX], lognormal:MU,SIGMA[,MIN,MAX],
exp:MEAN[,MIN,MAX], empirical:V1,V2,... Normal and log-normal draws are truncated to valid sizes
(23 to 65537 bytes) and gaps (0 to 1 day), never clamped into wrong values.";

const PROXY_EXAMPLES: &str = "\
Examples:
  hush keygen --out device.key                            once; give the printed key to the gateway
  hush proxy --gateway gw.example.net:7443 --gateway-key <KEY> --key device.key \\
             --socks 127.0.0.1:1080 --schedule datta-high
  hush proxy --config proxy.toml --forward 127.0.0.1:8883=broker.example.com:8883

Every connection the device makes through the SOCKS port or a forward rides one encrypted
tunnel whose records have the schedule's sizes and times, whatever the device does. Each
connection has its own flow-control window, so one that stops reading never stalls the others.
If the gateway goes away the proxy says which connections lost what, and reconnects with
backoff; new connections wait for it ([proxy.limits] reconnect_wait_s). The schedule's seed is
256 bits from the OS per tunnel and never printed; --insecure-seed N makes it reproducible (and
predictable: for reproducing a run only). Ctrl-C or SIGTERM drains the tunnel's queue before
exiting. See hush_net::config for the TOML format.";

const GATEWAY_EXAMPLES: &str = "\
Examples:
  hush keygen --out gateway.key
  hush gateway --listen 0.0.0.0:7443 --key gateway.key --allow sleep-monitor=<DEVICE KEY> \\
               --schedule datta-high
  hush gateway --config gateway.toml
  hush gateway ... --allow-target 192.168.1.20/32:1883     also reach this LAN broker

The gateway shapes what it sends to each device (the download direction) with the device's
schedule from the file, else the one given here. Only listed device keys get in; a replayed
handshake gets no answer, and nothing shaped is sent before the device's first authenticated
record. Streams may reach public addresses only: loopback, link-local, private and multicast
targets are refused unless --allow-target (or [gateway.targets] allow) lists them. Handshake
rate, tunnels, streams, buffers and timeouts are capped ([gateway.limits]).";

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
pub struct ReadArgs {
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
        Command::Attack(args) => attack::run(&args),
        Command::Defend(args) => defend::run(&args),
        Command::Shape(args) => shape::run(&args),
        Command::Proxy(args) => net::proxy(&args),
        Command::Gateway(args) => net::gateway(&args),
        Command::Keygen(args) => net::keygen(&args),
        Command::Pubkey(args) => net::pubkey(&args),
        Command::Eval(args) => bench::run_bench(&args),
        Command::Demo(args) => bench::run_demo(&args),
        Command::Report(args) => bench::run_report(&args),
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
            // serde_json keeps the io::Error inside without exposing it as a source.
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("hush: {err:#}");
    let bad_input = err.chain().any(|c| {
        c.is::<hush_trace::TraceError>()
            || c.is::<BadInput>()
            || c.downcast_ref::<hush_net::NetError>()
                .is_some_and(hush_net::NetError::is_bad_input)
    });
    ExitCode::from(if bad_input { 2 } else { 1 })
}

/// An error in what the user gave us (arguments, files), as opposed to a failure of ours.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// A progress bar for long work: drawn on a terminal, hidden when stderr is not one.
pub fn progress_bar(what: &str) -> anyhow::Result<indicatif::ProgressBar> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{eta}}"
        ))
        .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
        .progress_chars("=> "),
    );
    Ok(bar)
}
