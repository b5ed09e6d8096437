//! Speed and cost of hush's live transport on loopback: the side of `bench/shape_speed.sh` that
//! needs sockets and a real clock.
//!
//! ```text
//! net_bench throughput   unshaped tunnel throughput (tokio and blocking API) vs a plain tokio TCP copy
//! net_bench timers       lateness of records on 100 concurrent shaped tunnels (tokio API)
//! net_bench cpu          CPU per shaped stream at 20 records/s, for 1, 10 and 100 streams
//! ```
//!
//! Every result is printed as human text and as one JSON line starting with `{"bench"`. Static
//! keys and schedule seeds come from `--seed`; the Noise ephemeral keys come from the OS, which
//! changes no timing.
//!
//! `timers` and `cpu` run the shaping ends (`aio::connect`, one writer task per tunnel on a
//! runtime whose threads are named `send-worker`, plus hush's timer thread) apart from the
//! receiving ends (threads `recv-worker`), so that per-thread CPU (`/proc/self/task/*/schedstat`)
//! tells the two apart. A receiving end is by default an *observer*: it runs the responder's Noise
//! handshake itself and reads the raw record stream, noting when each record arrives and checking
//! it with `hush_shape::Receiver`, so arrival times can be set against the sender's schedule. With
//! `--duplex` it is a real `aio::accept` tunnel shaped like the sender, so both directions of every
//! tunnel are shaped (twice the shaped streams) and only send-side lateness is measured.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use clap::{Parser, Subcommand, ValueEnum};
use hush_net::{Options, Tap, aio, blocking};
use hush_shape::{
    Dist, Handshake, Keypair, PublicKey, Receiver, ScheduleSpec, ShapeConfig, ShaperStats, Transmit,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug)]
#[command(
    name = "net_bench",
    about = "Speed and cost of hush's live transport on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tunnel throughput with the unshaped schedule vs a plain tokio TCP copy on loopback.
    Throughput {
        /// Stop each run after this many application bytes...
        #[arg(long, default_value_t = 2_000_000_000)]
        bytes: u64,
        /// ...or after this many seconds, whichever comes first.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Size of each message (each write, for TCP).
        #[arg(long, default_value_t = 64 * 1024)]
        message_bytes: usize,
        /// Runs of each variant, interleaved; the median is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Tokio worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Skip the blocking API.
        #[arg(long)]
        no_blocking: bool,
        /// Seed of the static keys and schedules.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Lateness (time written - time scheduled) of every record on many shaped tunnels.
    Timers {
        /// Concurrent tunnels.
        #[arg(long, default_value_t = 100)]
        streams: usize,
        #[command(flatten)]
        run: RunArgs,
        /// Shape the receiving end too (a real tunnel instead of the raw observer).
        #[arg(long)]
        duplex: bool,
    },
    /// CPU per shaped stream, for each number of streams, and the same write pattern on plain
    /// TCP with tokio's timer as the baseline.
    Cpu {
        /// Numbers of concurrent tunnels, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        streams: Vec<usize>,
        #[command(flatten)]
        run: RunArgs,
        /// Skip the plain-TCP baseline.
        #[arg(long)]
        no_baseline: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Seconds between the last connection and the start of the measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The schedule of each shaped stream: 150-byte records at 20 per second on average.
    #[arg(long, value_enum, default_value_t = Sched::Constant)]
    schedule: Sched,
    /// Worker threads of the shaping ends' runtime.
    #[arg(long, default_value_t = 2)]
    send_workers: usize,
    /// Worker threads of the receiving ends' runtime.
    #[arg(long, default_value_t = 1)]
    recv_workers: usize,
    /// Seed of the static keys and schedules (stream i uses seed + i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Sched {
    /// A record every 50 ms.
    Constant,
    /// Exponential gaps with a 50 ms mean (a Poisson process of records).
    Exp,
}

impl Sched {
    fn spec(self) -> ScheduleSpec {
        match self {
            Sched::Constant => ScheduleSpec::Constant {
                gap_s: 0.05,
                size_bytes: 150,
            },
            Sched::Exp => ScheduleSpec::Random {
                gap_s: Dist::Exponential {
                    mean: 0.05,
                    min: None,
                    max: None,
                },
                size_bytes: Dist::constant(150.0),
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sched::Constant => "constant-50ms-150B",
            Sched::Exp => "exp-50ms-150B",
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("net_bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Throughput {
            bytes,
            seconds,
            message_bytes,
            repeat,
            workers,
            no_blocking,
            seed,
        } => throughput(&ThroughputPlan {
            bytes,
            time: Duration::from_secs_f64(seconds),
            message_bytes,
            repeat: repeat.max(1),
            workers,
            blocking: !no_blocking,
            seed,
        }),
        Command::Timers {
            streams,
            run,
            duplex,
        } => timers(streams, &run, duplex),
        Command::Cpu {
            streams,
            run,
            no_baseline,
        } => cpu(&streams, &run, !no_baseline),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys.

/// A static key from the seed: the gateway's is `key(seed, u64::MAX)`, device i's `key(seed, i)`.
fn key(seed: u64, who: u64) -> Keypair {
    let mut private = [0u8; 32];
    private[..8].copy_from_slice(&seed.to_le_bytes());
    private[8..16].copy_from_slice(&who.to_le_bytes());
    private[16..].copy_from_slice(b"hush net_bench k");
    Keypair::from_private(private)
}

const GATEWAY: u64 = u64::MAX;

// ---------------------------------------------------------------------------------------------
// throughput

struct ThroughputPlan {
    bytes: u64,
    time: Duration,
    message_bytes: usize,
    repeat: usize,
    workers: usize,
    blocking: bool,
    seed: u64,
}

/// One transfer: application bytes that arrived, from the first send to the last byte read.
struct Transfer {
    bytes: u64,
    /// Record bytes on the wire (hush only).
    wire_bytes: Option<u64>,
    elapsed: Duration,
    /// Process CPU over the transfer, seconds (both ends: they share the process).
    cpu_s: f64,
}

impl Transfer {
    fn gbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64() / 1e9
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Tcp,
    HushAio,
    HushBlocking,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Tcp => "tcp",
            Variant::HushAio => "hush-aio",
            Variant::HushBlocking => "hush-blocking",
        }
    }
}

fn throughput(plan: &ThroughputPlan) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.workers)
        .enable_all()
        .build()?;
    let message: Vec<u8> = (0..plan.message_bytes).map(|i| (i * 7) as u8).collect();
    let mut variants = vec![Variant::Tcp, Variant::HushAio];
    if plan.blocking {
        variants.push(Variant::HushBlocking);
    }
    println!(
        "== throughput on loopback: {} B messages, each run {:.1} GB or {:.0} s, {} runs, \
         {} tokio workers",
        plan.message_bytes,
        plan.bytes as f64 / 1e9,
        plan.time.as_secs_f64(),
        plan.repeat,
        plan.workers
    );
    let mut results: HashMap<&str, Vec<f64>> = HashMap::new();
    for run in 0..plan.repeat {
        for &v in &variants {
            let cpu0 = process_cpu_s()?;
            let mut t = match v {
                Variant::Tcp => rt.block_on(tcp_copy(plan, &message))?,
                Variant::HushAio => rt.block_on(hush_aio(plan, &message))?,
                Variant::HushBlocking => hush_blocking(plan, &message)?,
            };
            t.cpu_s = process_cpu_s()? - cpu0;
            let secs = t.elapsed.as_secs_f64();
            println!(
                "{:<14} run {}: {:>6.3} GB in {:>6.3} s = {:>7.3} Gbit/s, CPU {:>4.0}% of a core",
                v.name(),
                run + 1,
                t.bytes as f64 / 1e9,
                secs,
                t.gbps(),
                t.cpu_s / secs * 100.0
            );
            println!(
                "{}",
                json!({
                    "bench": "throughput", "variant": v.name(), "run": run + 1,
                    "message_bytes": plan.message_bytes, "bytes": t.bytes,
                    "wire_bytes": t.wire_bytes, "seconds": secs, "gbit_s": t.gbps(),
                    "cpu_s": t.cpu_s,
                })
            );
            results.entry(v.name()).or_default().push(t.gbps());
        }
    }
    let tcp = median(results.get("tcp").map_or(&[][..], |v| v));
    println!("== median of {} runs", plan.repeat);
    for &v in &variants {
        let m = median(&results[v.name()]);
        let goal = match v {
            Variant::Tcp => String::new(),
            _ => format!(
                "  goal >= 1 Gbit/s: {}",
                if m >= 1.0 { "met" } else { "NOT met" }
            ),
        };
        println!(
            "{:<14} {:>7.3} Gbit/s  {:>5.1}% of plain TCP{goal}",
            v.name(),
            m,
            m / tcp * 100.0
        );
        println!(
            "{}",
            json!({
                "bench": "throughput-median", "variant": v.name(), "runs": plan.repeat,
                "gbit_s": m, "ratio_to_tcp": m / tcp,
            })
        );
    }
    Ok(())
}

fn limit_reached(plan: &ThroughputPlan, sent: u64, start: Instant) -> bool {
    sent >= plan.bytes || start.elapsed() >= plan.time
}

/// The peer baseline: the same bytes through a plain TCP connection (no framing, no encryption).
async fn tcp_copy(plan: &ThroughputPlan, message: &[u8]) -> Result<Transfer> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, io::Error>((bytes, Instant::now()));
            }
            bytes += n as u64;
        }
    });
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let start = Instant::now();
    let mut sent = 0u64;
    while !limit_reached(plan, sent, start) {
        stream.write_all(message).await?;
        sent += message.len() as u64;
    }
    stream.shutdown().await?;
    let (bytes, end) = server.await??;
    ensure!(bytes == sent, "tcp: sent {sent} bytes, {bytes} arrived");
    Ok(Transfer {
        bytes,
        wire_bytes: None,
        elapsed: end - start,
        cpu_s: 0.0,
    })
}

/// The tokio API: `MessageSender::send` of owned messages, `MessageReceiver::recv` at the other end.
async fn hush_aio(plan: &ThroughputPlan, message: &[u8]) -> Result<Transfer> {
    let config = ShapeConfig::new(ScheduleSpec::Unshaped);
    let (gw, dev) = (Arc::new(key(plan.seed, GATEWAY)), key(plan.seed, 0));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn({
        let (config, gw, seed) = (config.clone(), gw.clone(), plan.seed);
        async move {
            let (stream, _) = listener.accept().await?;
            let mut tunnel =
                aio::accept(stream, &config, &gw, None, Options::new(seed + 1)).await?;
            let mut bytes = 0u64;
            while let Some(m) = tunnel.receiver.recv().await? {
                bytes += m.len() as u64;
            }
            Ok::<_, anyhow::Error>((bytes, Instant::now()))
        }
    });
    let tunnel = aio::connect(addr, &config, &dev, &gw.public(), Options::new(plan.seed)).await?;
    let start = Instant::now();
    let mut sent = 0u64;
    while !limit_reached(plan, sent, start) {
        tunnel.sender.send(message.to_vec()).await?;
        sent += message.len() as u64;
    }
    let stats = tunnel.sender.close().await?;
    let (bytes, end) = server.await??;
    ensure!(
        bytes == sent,
        "hush-aio: sent {sent} bytes, {bytes} arrived"
    );
    Ok(Transfer {
        bytes,
        wire_bytes: Some(stats.wire_bytes),
        elapsed: end - start,
        cpu_s: 0.0,
    })
}

/// The blocking API: `Connection::send` from this thread, `recv` on another.
fn hush_blocking(plan: &ThroughputPlan, message: &[u8]) -> Result<Transfer> {
    let config = ShapeConfig::new(ScheduleSpec::Unshaped);
    let (gw, dev) = (key(plan.seed, GATEWAY), key(plan.seed, 0));
    let listener = blocking::Listener::bind(
        (Ipv4Addr::LOCALHOST, 0),
        &config,
        key(plan.seed, GATEWAY),
        None,
        Options::new(plan.seed + 1),
    )?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || {
        let conn = listener.accept()?;
        let mut bytes = 0u64;
        while let Some(m) = conn.recv()? {
            bytes += m.len() as u64;
        }
        Ok::<_, anyhow::Error>((bytes, Instant::now()))
    });
    let conn =
        blocking::Connection::connect(addr, &config, &dev, &gw.public(), Options::new(plan.seed))?;
    let start = Instant::now();
    let mut sent = 0u64;
    while !limit_reached(plan, sent, start) {
        conn.send(message)?;
        sent += message.len() as u64;
    }
    let stats = conn.close()?;
    let (bytes, end) = server
        .join()
        .map_err(|_| anyhow!("hush-blocking: the receiving thread panicked"))??;
    ensure!(
        bytes == sent,
        "hush-blocking: sent {sent} bytes, {bytes} arrived"
    );
    Ok(Transfer {
        bytes,
        wire_bytes: Some(stats.wire_bytes),
        elapsed: end - start,
        cpu_s: 0.0,
    })
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------------------------
// Many shaped streams: timers and cpu.

/// What one measured run of many streams is.
struct StreamsPlan {
    streams: usize,
    run: RunArgs,
    duplex: bool,
    /// Install a lateness tap on every shaping end.
    tap: bool,
}

/// What the tap saw of one record.
#[derive(Clone, Copy)]
struct TapRecord {
    scheduled_ns: u64,
    /// The driver's `now` when it wrote the record, engine time.
    now_ns: u64,
    /// The system clock read in the tap, just after.
    wall: Instant,
}

/// Notes every record a shaping end writes.
#[derive(Default)]
struct LatenessTap {
    records: Mutex<Vec<TapRecord>>,
}

impl Tap for LatenessTap {
    fn on_record(&self, record: &Transmit, now: hush_shape::Instant) {
        let r = TapRecord {
            scheduled_ns: record.scheduled_at.as_nanos(),
            now_ns: now.as_nanos(),
            wall: Instant::now(),
        };
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r);
    }
}

impl LatenessTap {
    fn take(&self) -> Vec<TapRecord> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What an observer saw of one tunnel.
struct Observed {
    index: usize,
    /// When each record arrived (the read that completed it returned), in stream order.
    arrivals: Vec<Instant>,
}

/// The outcome of a run of many streams.
struct StreamsResult {
    /// Measurement window (system clock).
    window: (Instant, Instant),
    /// Per shaping end: what its tap saw (empty without taps).
    taps: Vec<Vec<TapRecord>>,
    /// Per device stream (observer mode): arrivals, indexed like the first `streams` taps.
    arrivals: Vec<Vec<Instant>>,
    cpu: CpuUse,
    /// Final accounts of every shaping end.
    stats: Vec<ShaperStats>,
}

fn runtime(name: &str, workers: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name(name)
        .enable_all()
        .build()?)
}

fn run_streams(plan: &StreamsPlan) -> Result<StreamsResult> {
    let n = plan.streams;
    let seed = plan.run.seed;
    let config = ShapeConfig::new(plan.run.schedule.spec());
    let gw = Arc::new(key(seed, GATEWAY));
    let devices: Vec<Keypair> = (0..n as u64).map(|i| key(seed, i)).collect();
    let index_of: Arc<HashMap<PublicKey, usize>> = Arc::new(
        devices
            .iter()
            .enumerate()
            .map(|(i, k)| (k.public(), i))
            .collect(),
    );
    // Taps 0..n are the devices' ends; n..2n the gateways' ends in duplex mode.
    let ends = if plan.duplex { 2 * n } else { n };
    let taps: Vec<Arc<LatenessTap>> = (0..ends).map(|_| Arc::default()).collect();

    let send_rt = runtime("send-worker", plan.run.send_workers)?;
    let recv_rt = runtime("recv-worker", plan.run.recv_workers)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    // The receiving ends: accept n connections, one task each.
    let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    std_listener.set_nonblocking(true)?;
    let addr: SocketAddr = std_listener.local_addr()?;
    let acceptor = recv_rt.spawn({
        let (config, gw, index_of, taps) =
            (config.clone(), gw.clone(), index_of.clone(), taps.clone());
        let duplex = plan.duplex;
        let tap = plan.tap;
        async move {
            let listener = TcpListener::from_std(std_listener)?;
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                let (stream, _) = listener.accept().await?;
                let (config, gw, index_of) = (config.clone(), gw.clone(), index_of.clone());
                tasks.push(if duplex {
                    let (taps, stop) = (taps.clone(), stop_rx.clone());
                    tokio::spawn(async move {
                        shaped_peer(stream, &config, &gw, &index_of, &taps, tap, seed, stop).await
                    })
                } else {
                    tokio::spawn(async move {
                        observe(stream, &gw, &index_of, config.max_message_bytes).await
                    })
                });
            }
            Ok::<_, anyhow::Error>(tasks)
        }
    });

    // The shaping ends, one connection after another.
    let tunnels = send_rt.block_on(async {
        let mut tunnels = Vec::with_capacity(n);
        for (i, dev) in devices.iter().enumerate() {
            let mut options = Options::new(seed.wrapping_add(i as u64));
            if plan.tap {
                options = options.with_tap(taps[i].clone());
            }
            let tunnel = aio::connect(addr, &config, dev, &gw.public(), options)
                .await
                .with_context(|| format!("connect tunnel {i}"))?;
            tunnels.push(tunnel);
        }
        Ok::<_, anyhow::Error>(tunnels)
    })?;
    let tasks = recv_rt.block_on(acceptor)??;

    std::thread::sleep(Duration::from_secs_f64(plan.run.warmup));
    let cpu0 = CpuSample::take()?;
    std::thread::sleep(Duration::from_secs_f64(plan.run.seconds));
    let cpu1 = CpuSample::take()?;
    let cpu = cpu1.since(&cpu0);

    // Close every device end (each drains, then writes its close record), then the peers.
    let mut stats = send_rt.block_on(async {
        let closes: Vec<_> = tunnels
            .iter()
            .map(|t| {
                let sender = t.sender.clone();
                tokio::spawn(async move { sender.close().await })
            })
            .collect();
        let mut stats = Vec::with_capacity(n);
        for c in closes {
            stats.push(c.await??);
        }
        Ok::<_, anyhow::Error>(stats)
    })?;
    stop_tx.send_replace(true);
    let peers = recv_rt.block_on(async {
        let mut peers = Vec::with_capacity(n);
        for t in tasks {
            peers.push(t.await??);
        }
        Ok::<_, anyhow::Error>(peers)
    })?;
    drop(tunnels);
    let mut arrivals = vec![Vec::new(); n];
    for p in peers {
        match p {
            Peer::Observed(o) => arrivals[o.index] = o.arrivals,
            Peer::Shaped(s) => stats.push(s),
        }
    }
    Ok(StreamsResult {
        window: (cpu0.wall, cpu1.wall),
        taps: taps.iter().map(|t| t.take()).collect(),
        arrivals,
        cpu,
        stats,
    })
}

enum Peer {
    Observed(Observed),
    Shaped(ShaperStats),
}

/// The raw receiving end: the responder's handshake, then every record's arrival time; each
/// record is authenticated and the stream must end with the sender's close record.
async fn observe(
    mut stream: TcpStream,
    gw: &Keypair,
    index_of: &HashMap<PublicKey, usize>,
    max_message_bytes: u64,
) -> Result<Peer> {
    stream.set_nodelay(true)?;
    let mut hs = Handshake::responder(gw, None, hush_net::os_entropy()?)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut leftover = Vec::new();
    loop {
        if let Some(out) = hs.poll_output() {
            stream.write_all(&out).await?;
        }
        if hs.is_finished() {
            break;
        }
        let n = stream.read(&mut buf).await?;
        ensure!(n > 0, "observer: the peer closed during the handshake");
        let used = hs.handle_input(&buf[..n])?;
        if hs.hello().is_some() {
            hs.respond()?;
        }
        leftover.extend_from_slice(&buf[used..n]);
    }
    let remote = hs.remote().context("observer: no peer key")?;
    let index = *index_of
        .get(&remote)
        .context("observer: an unknown device key")?;
    let (_, opener) = hs.into_session()?.split();
    let mut receiver = Receiver::new(opener, max_message_bytes);
    let mut arrivals = Vec::new();
    let mut feed = |bytes: &[u8], at: Instant| -> Result<()> {
        let before = receiver.stats().records;
        receiver
            .receive(bytes)
            .with_context(|| format!("observer of stream {index}"))?;
        while receiver.poll_message().is_some() {}
        for _ in before..receiver.stats().records {
            arrivals.push(at);
        }
        Ok(())
    };
    feed(&leftover, Instant::now())?;
    loop {
        let n = stream.read(&mut buf).await?;
        let at = Instant::now();
        if n == 0 {
            break;
        }
        feed(&buf[..n], at)?;
    }
    receiver
        .finish()
        .with_context(|| format!("observer of stream {index}"))?;
    Ok(Peer::Observed(Observed { index, arrivals }))
}

/// The receiving end as a real tunnel shaped like the sender (`--duplex`): runs until `stop`,
/// then closes its direction and reads until the device's close.
#[allow(clippy::too_many_arguments)]
async fn shaped_peer(
    stream: TcpStream,
    config: &ShapeConfig,
    gw: &Arc<Keypair>,
    index_of: &HashMap<PublicKey, usize>,
    taps: &[Arc<LatenessTap>],
    tap: bool,
    seed: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Peer> {
    let n = index_of.len();
    let responder = aio::Responder::new(Arc::clone(gw), None, hush_net::Limits::default())?;
    let mut tunnel = responder
        .accept_with(stream, |remote| {
            let i = remote.and_then(|k| index_of.get(&k).copied()).unwrap_or(0);
            let mut options = Options::new(seed.wrapping_add((n + i) as u64));
            if tap {
                options = options.with_tap(taps[n + i].clone());
            }
            (config.clone(), options)
        })
        .await?;
    ensure!(
        tunnel.peer().is_some_and(|k| index_of.contains_key(&k)),
        "duplex peer: an unknown device key"
    );
    // Messages never come (the device sends only cover); wait for the stop signal.
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let stats = tunnel.sender.close().await?;
    while tunnel.receiver.recv().await?.is_some() {}
    Ok(Peer::Shaped(stats))
}

/// Lateness of the records written inside the window, ns: `now - scheduled_at` as the tap saw it.
fn send_lateness(r: &StreamsResult) -> Vec<u64> {
    let (from, to) = r.window;
    r.taps
        .iter()
        .flatten()
        .filter(|t| t.wall >= from && t.wall <= to)
        .map(|t| t.now_ns.saturating_sub(t.scheduled_ns))
        .collect()
}

/// Records in the window written more than `threshold_ns` late, and how many separate episodes
/// they form (late records closer than `gap` in time belong to one episode).
fn late_episodes(r: &StreamsResult, threshold_ns: u64, gap: Duration) -> (usize, usize) {
    let (from, to) = r.window;
    let mut late: Vec<Instant> = r
        .taps
        .iter()
        .flatten()
        .filter(|t| t.wall >= from && t.wall <= to)
        .filter(|t| t.now_ns.saturating_sub(t.scheduled_ns) > threshold_ns)
        .map(|t| t.wall)
        .collect();
    late.sort_unstable();
    let episodes = 1 + late.windows(2).filter(|w| w[1] - w[0] > gap).count();
    (late.len(), if late.is_empty() { 0 } else { episodes })
}

/// |arrival - scheduled| of the records written inside the window, ns. The sender's clock zero
/// on the system clock is `min(wall - now)` over its records (the tap runs just after the
/// driver read `now`, so each difference is the zero plus a few ns).
fn arrival_lateness(r: &StreamsResult) -> Vec<u64> {
    let (from, to) = r.window;
    let mut out = Vec::new();
    for (tap, arrivals) in r.taps.iter().zip(&r.arrivals) {
        let Some(base) = tap
            .iter()
            .map(|t| t.wall - Duration::from_nanos(t.now_ns))
            .min()
        else {
            continue;
        };
        for (t, &arrived) in tap.iter().zip(arrivals) {
            if t.wall < from || t.wall > to {
                continue;
            }
            let scheduled = base + Duration::from_nanos(t.scheduled_ns);
            let late = if arrived >= scheduled {
                arrived - scheduled
            } else {
                scheduled - arrived
            };
            out.push(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    out
}

struct Percentiles {
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Nearest-rank percentiles, in µs.
fn percentiles(mut ns: Vec<u64>) -> Option<Percentiles> {
    if ns.is_empty() {
        return None;
    }
    ns.sort_unstable();
    let at = |p: f64| {
        let rank = ((p * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
        ns[rank - 1] as f64 / 1e3
    };
    Some(Percentiles {
        count: ns.len(),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
    })
}

fn timers(streams: usize, run: &RunArgs, duplex: bool) -> Result<()> {
    let plan = StreamsPlan {
        streams,
        run: run.clone(),
        duplex,
        tap: true,
    };
    let shaped = if duplex { 2 * streams } else { streams };
    println!(
        "== timers: {streams} tunnels ({shaped} shaped directions, {}), {:.0} s measured after \
         {:.0} s warm-up, {} send worker(s), {} recv worker(s), peer {}",
        run.schedule.name(),
        run.seconds,
        run.warmup,
        run.send_workers,
        run.recv_workers,
        if duplex { "duplex tunnel" } else { "observer" },
    );
    let r = run_streams(&plan)?;
    let window_s = (r.window.1 - r.window.0).as_secs_f64();
    let expected = shaped as f64 * 20.0 * window_s;
    let late_max_ns = r.stats.iter().map(|s| s.late_max_ns).max().unwrap_or(0);
    let report = |what: &str, ns: Vec<u64>| {
        let Some(p) = percentiles(ns) else {
            println!("{what}: no records");
            return;
        };
        let goal = if p.p99 <= 1000.0 { "met" } else { "NOT met" };
        println!(
            "{what:<28} records {:>7} (expected ~{expected:.0})  p50 {:>8.1}  p90 {:>8.1}  \
             p99 {:>8.1}  p99.9 {:>8.1}  max {:>9.1} µs   goal p99 <= 1 ms: {goal}",
            p.count, p.p50, p.p90, p.p99, p.p999, p.max
        );
        println!(
            "{}",
            json!({
                "bench": "timers", "measure": what, "schedule": run.schedule.name(),
                "streams": streams, "shaped_directions": shaped, "duplex": duplex,
                "seconds": window_s, "send_workers": run.send_workers,
                "recv_workers": run.recv_workers, "seed": run.seed, "records": p.count,
                "p50_us": p.p50, "p90_us": p.p90, "p99_us": p.p99, "p999_us": p.p999,
                "max_us": p.max,
            })
        );
    };
    report("send (tap now - scheduled)", send_lateness(&r));
    let (over, episodes) = late_episodes(&r, 1_000_000, Duration::from_millis(10));
    println!(
        "send lateness > 1 ms: {over} records in {episodes} episode(s) (records < 10 ms apart \
         count as one episode: many streams late together point at a stall of the whole process \
         or VM)"
    );
    println!(
        "{}",
        json!({
            "bench": "timers", "measure": "late-episodes", "threshold_us": 1000,
            "records": over, "episodes": episodes,
        })
    );
    if !duplex {
        report("arrival at the observer", arrival_lateness(&r));
    }
    println!(
        "engine's own late_max over the whole run (incl. warm-up, close): {:.1} µs",
        late_max_ns as f64 / 1e3
    );
    print_cpu(&r.cpu, shaped, "timers", run, streams, duplex);
    Ok(())
}

fn cpu(streams: &[usize], run: &RunArgs, baseline: bool) -> Result<()> {
    println!(
        "== cpu: {}, {:.0} s measured after {:.0} s warm-up, {} send worker(s), {} recv worker(s), \
         peer observer, no tap",
        run.schedule.name(),
        run.seconds,
        run.warmup,
        run.send_workers,
        run.recv_workers
    );
    for &n in streams {
        let plan = StreamsPlan {
            streams: n,
            run: run.clone(),
            duplex: false,
            tap: false,
        };
        let r = run_streams(&plan)?;
        let records: usize = r.arrivals.iter().map(Vec::len).sum();
        println!("-- hush: {n} stream(s), {records} records arrived over the whole run");
        print_cpu(&r.cpu, n, "cpu", run, n, false);
        if baseline {
            let p = run_plain(n, run)?;
            println!(
                "-- plain TCP baseline: {n} stream(s), {} writes in the window",
                p.lateness_ns.len()
            );
            print_cpu(&p.cpu, n, "cpu-plain-tcp", run, n, false);
            if let Some(l) = percentiles(p.lateness_ns) {
                println!(
                    "     tokio::time::sleep_until lateness (wake - deadline): p50 {:.1}  p90 {:.1}  \
                     p99 {:.1}  p99.9 {:.1}  max {:.1} µs",
                    l.p50, l.p90, l.p99, l.p999, l.max
                );
                println!(
                    "{}",
                    json!({
                        "bench": "cpu-plain-tcp", "measure": "tokio timer lateness",
                        "schedule": run.schedule.name(), "streams": n, "records": l.count,
                        "p50_us": l.p50, "p90_us": l.p90, "p99_us": l.p99, "p999_us": l.p999,
                        "max_us": l.max,
                    })
                );
            }
        }
    }
    Ok(())
}

/// The baseline of `cpu`.
struct PlainResult {
    /// `wake - deadline` of the writes inside the window, ns.
    lateness_ns: Vec<u64>,
    cpu: CpuUse,
}

/// The same write pattern without hush: each of `n` tasks sleeps with tokio's own timer until
/// the schedule's next slot (drawn from the same schedule and seeds) and writes that many zero
/// bytes to a plain TCP connection; a task per connection reads them at the other end. No
/// framing, no encryption, no precise timer.
fn run_plain(n: usize, run: &RunArgs) -> Result<PlainResult> {
    use hush_shape::{ShapeRng, SlotContext};
    use rand::SeedableRng;

    let send_rt = runtime("send-worker", run.send_workers)?;
    let recv_rt = runtime("recv-worker", run.recv_workers)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let acceptor = recv_rt.spawn(async move {
        let listener = TcpListener::from_std(std_listener)?;
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (mut stream, _) = listener.accept().await?;
            tasks.push(tokio::spawn(async move {
                stream.set_nodelay(true)?;
                let mut buf = vec![0u8; 64 * 1024];
                let mut bytes = 0u64;
                loop {
                    match stream.read(&mut buf).await? {
                        0 => return Ok::<_, io::Error>(bytes),
                        k => bytes += k as u64,
                    }
                }
            }));
        }
        Ok::<_, io::Error>(tasks)
    });
    let writers = send_rt.block_on(async {
        let mut writers = Vec::with_capacity(n);
        for i in 0..n {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut schedule = run.schedule.spec().build().map_err(|e| anyhow!("{e}"))?;
            let mut rng = ShapeRng::seed_from_u64(run.seed.wrapping_add(i as u64));
            let mut stop = stop_rx.clone();
            writers.push(tokio::spawn(async move {
                let zeros = vec![0u8; 65_537];
                let start = Instant::now();
                let mut at = start;
                let mut late = Vec::new();
                loop {
                    let ctx = SlotContext {
                        now: hush_shape::Instant::from_nanos((at - start).as_nanos() as u64),
                        queue_bytes: 0,
                    };
                    let Some(slot) = schedule.next_slot(ctx, &mut rng) else {
                        break;
                    };
                    at += slot.gap;
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        () = tokio::time::sleep_until(at.into()) => {}
                    }
                    let woke = Instant::now();
                    late.push((woke, woke - at));
                    stream.write_all(&zeros[..slot.size_bytes as usize]).await?;
                }
                stream.shutdown().await?;
                Ok::<_, io::Error>(late)
            }));
        }
        Ok::<_, anyhow::Error>(writers)
    })?;
    let readers = recv_rt.block_on(acceptor)??;

    std::thread::sleep(Duration::from_secs_f64(run.warmup));
    let cpu0 = CpuSample::take()?;
    std::thread::sleep(Duration::from_secs_f64(run.seconds));
    let cpu1 = CpuSample::take()?;
    stop_tx.send_replace(true);
    let (from, to) = (cpu0.wall, cpu1.wall);
    let lateness_ns = send_rt.block_on(async {
        let mut out = Vec::new();
        for w in writers {
            for (woke, late) in w.await?? {
                if woke >= from && woke <= to {
                    out.push(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX));
                }
            }
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    recv_rt.block_on(async {
        for r in readers {
            r.await??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(PlainResult {
        lateness_ns,
        cpu: cpu1.since(&cpu0),
    })
}

fn print_cpu(
    cpu: &CpuUse,
    shaped: usize,
    bench: &str,
    run: &RunArgs,
    streams: usize,
    duplex: bool,
) {
    let wall = cpu.wall.as_secs_f64();
    let pct = |s: f64| s / wall * 100.0;
    let per = |s: f64| pct(s) / shaped as f64;
    let send = cpu.send_s + cpu.timer_s;
    if duplex {
        println!(
            "CPU: process {:.3} s over {wall:.1} s = {:.3}% of a core per shaped direction \
             (both ends shape; per-thread: send {:.3} s, recv {:.3} s, timer {:.3} s)",
            cpu.process_s,
            per(cpu.process_s),
            cpu.send_s,
            cpu.recv_s,
            cpu.timer_s
        );
    } else if bench == "cpu-plain-tcp" {
        println!(
            "CPU over {wall:.1} s: writing ends (send workers {:.3} s) = {:.4}% of a core per \
             stream",
            cpu.send_s,
            per(cpu.send_s)
        );
        println!(
            "     reading ends {:.3} s = {:.4}% per stream; whole process {:.2} s = {:.4}% per \
             stream (/proc/self/stat, 10 ms ticks)",
            cpu.recv_s,
            per(cpu.recv_s),
            cpu.process_s,
            per(cpu.process_s)
        );
    } else {
        let goal = if per(send) <= 0.1 { "met" } else { "NOT met" };
        println!(
            "CPU over {wall:.1} s: shaping ends (send workers {:.3} s + timer thread {:.3} s) = \
             {:.4}% of a core per stream   goal <= 0.1%: {goal}",
            cpu.send_s,
            cpu.timer_s,
            per(send)
        );
        println!(
            "     receiving ends {:.3} s = {:.4}% per stream; whole process {:.2} s = {:.4}% per \
             stream (/proc/self/stat, 10 ms ticks)",
            cpu.recv_s,
            per(cpu.recv_s),
            cpu.process_s,
            per(cpu.process_s)
        );
    }
    println!(
        "     meanwhile other processes used {:.1}% of a core; steal {:.2}% of a core",
        pct(cpu.others_s),
        pct(cpu.steal_s)
    );
    println!(
        "{}",
        json!({
            "bench": bench, "measure": "cpu", "schedule": run.schedule.name(), "streams": streams,
            "shaped_directions": shaped, "duplex": duplex, "seconds": wall,
            "send_workers": run.send_workers, "recv_workers": run.recv_workers,
            "send_worker_s": cpu.send_s, "timer_thread_s": cpu.timer_s,
            "recv_worker_s": cpu.recv_s, "other_threads_s": cpu.other_s,
            "process_s": cpu.process_s, "other_processes_s": cpu.others_s,
            "steal_s": cpu.steal_s,
            "send_pct_core_per_stream": if duplex { None } else { Some(per(send)) },
            "process_pct_core_per_shaped_direction": per(cpu.process_s),
        })
    );
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc (Linux): no unsafe, no libc.

/// Linux reports `/proc/*/stat` times in USER_HZ ticks, 100 per second on every architecture
/// hush targets.
const USER_HZ: f64 = 100.0;

/// User + system CPU of the whole process (all threads, living and dead), seconds.
fn process_cpu_s() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    stat_cpu_s(&stat).context("cannot parse /proc/self/stat")
}

/// utime + stime (fields 14 and 15) of a `stat` line, seconds. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from the last `)`.
fn stat_cpu_s(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Steal time of all CPUs (the 8th value of the first line of `/proc/stat`), seconds. The
/// per-CPU busy times there are sampled at each tick and miss short bursts, so they are not used.
fn steal_s() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let steal = line
        .split_whitespace()
        .nth(8)
        .and_then(|f| f.parse::<u64>().ok())
        .context("cannot parse /proc/stat")?;
    Ok(steal as f64 / USER_HZ)
}

/// utime + stime + cutime + cstime of every process but this one, seconds: a competing process
/// counts while it runs, and a short-lived one (a compiler) once its parent reaps it.
fn other_processes_s() -> Result<HashMap<u32, f64>> {
    let me = std::process::id();
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A process may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = (11..15)
            .filter_map(|i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        out.insert(pid, ticks as f64 / USER_HZ);
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ThreadGroup {
    Send,
    Recv,
    Timer,
    Other,
}

/// CPU of the process and of each thread at one moment.
struct CpuSample {
    wall: Instant,
    process_s: f64,
    /// CPU of every other process, pid → seconds (see [`other_processes_s`]).
    others: HashMap<u32, f64>,
    /// The machine's steal time (`/proc/stat`, all CPUs), seconds.
    steal_s: f64,
    /// tid → (group, on-CPU ns from `/proc/self/task/<tid>/schedstat`).
    threads: HashMap<u32, (ThreadGroup, u64)>,
}

/// CPU spent between two samples, seconds.
struct CpuUse {
    wall: Duration,
    process_s: f64,
    /// Every other process's CPU.
    others_s: f64,
    /// Time the hypervisor ran something else while a vCPU wanted to run.
    steal_s: f64,
    send_s: f64,
    recv_s: f64,
    timer_s: f64,
    other_s: f64,
}

impl CpuSample {
    fn take() -> Result<CpuSample> {
        let mut threads = HashMap::new();
        for entry in std::fs::read_dir("/proc/self/task")? {
            let entry = entry?;
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            // A thread may end between the listing and the reads.
            let (Ok(comm), Ok(schedstat)) = (
                std::fs::read_to_string(entry.path().join("comm")),
                std::fs::read_to_string(entry.path().join("schedstat")),
            ) else {
                continue;
            };
            let ns: u64 = schedstat
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .context("cannot parse schedstat")?;
            let comm = comm.trim();
            let group = if comm.starts_with("send-worker") {
                ThreadGroup::Send
            } else if comm.starts_with("recv-worker") {
                ThreadGroup::Recv
            } else if comm == "hush-timer" {
                ThreadGroup::Timer
            } else {
                ThreadGroup::Other
            };
            threads.insert(tid, (group, ns));
        }
        Ok(CpuSample {
            wall: Instant::now(),
            process_s: process_cpu_s()?,
            others: other_processes_s()?,
            steal_s: steal_s()?,
            threads,
        })
    }

    fn since(&self, earlier: &CpuSample) -> CpuUse {
        let mut s = CpuUse {
            wall: self.wall - earlier.wall,
            process_s: self.process_s - earlier.process_s,
            others_s: self
                .others
                .iter()
                .map(|(pid, s)| (s - earlier.others.get(pid).copied().unwrap_or(0.0)).max(0.0))
                .sum(),
            steal_s: self.steal_s - earlier.steal_s,
            send_s: 0.0,
            recv_s: 0.0,
            timer_s: 0.0,
            other_s: 0.0,
        };
        for (tid, &(group, ns)) in &self.threads {
            let before = earlier.threads.get(tid).map_or(0, |&(_, ns)| ns);
            let d = ns.saturating_sub(before) as f64 * 1e-9;
            match group {
                ThreadGroup::Send => s.send_s += d,
                ThreadGroup::Recv => s.recv_s += d,
                ThreadGroup::Timer => s.timer_s += d,
                ThreadGroup::Other => s.other_s += d,
            }
        }
        s
    }
}
