//! Shaping flags shared by `hush shape`, `hush proxy` and `hush gateway`, and `hush shape` itself:
//! what a schedule costs on the wire, alone or carrying a real capture's traffic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hush_shape::{
    Budget, Dist, Engine, Instant, Policy, ScheduleSpec, Session, ShapeConfig, ShaperStats,
};
use hush_trace::{Direction, ReadOptions, read_trace};
use serde::Serialize;

use crate::BadInput;
use crate::inspect::{apply_device, device_spec_of};

/// Bytes of TCP/IPv4 headers (20 + 20 + 12 bytes of timestamp option) each record pays below the
/// tunnel when it leaves as its own segment, as with TCP_NODELAY at these rates.
pub const TCP_IPV4_HEADER_BYTES: u64 = 52;

/// Schedules by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// A fixed size every fixed gap (--gap, --size are numbers).
    Constant,
    /// Gaps and sizes from distributions (--gap, --size).
    Random,
    /// Bursts (--on) and silences (--off), records every --gap inside bursts.
    OnOff,
    /// A few rates (--rates) stepped by queue length, each held --hold-s.
    Adaptive,
    /// No shaping: records sized to the data, sent at once (needs --policy immediate).
    Unshaped,
    /// Datta et al. low latency: 150 B every 50 ms.
    DattaLow,
    /// Datta et al. high latency: gaps U[0.2, 0.4] s, sizes U[50, 200] B.
    DattaHigh,
}

/// How a tunnel end shapes what it sends. Flags override the configuration file's `[shape]`.
#[derive(Args, Clone, Debug, Default)]
pub struct ShapeArgs {
    /// The schedule. Without it, the configuration file's [shape.schedule] (or datta-high).
    #[arg(long, value_enum, value_name = "KIND")]
    pub schedule: Option<ScheduleKind>,
    /// Seconds between records: a number or a distribution (uniform:0.2,0.4, exp:0.3,
    /// normal:MEAN,STD[,MIN,MAX], lognormal:MU,SIGMA[,MIN,MAX], empirical:V1,V2,...).
    #[arg(long, value_name = "DIST")]
    pub gap: Option<Dist>,
    /// Record size on the wire in bytes (framing and tag included): a number or a distribution.
    #[arg(long, value_name = "DIST")]
    pub size: Option<Dist>,
    /// On/off schedule: seconds of each burst.
    #[arg(long, value_name = "DIST")]
    pub on: Option<Dist>,
    /// On/off schedule: seconds of each silence.
    #[arg(long, value_name = "DIST")]
    pub off: Option<Dist>,
    /// Adaptive schedule: records per second at each step, e.g. 2,5,20.
    #[arg(long, value_name = "HZ,...", value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Adaptive schedule: seconds to hold a rate before stepping.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub hold_s: f64,
    /// pad: data waits for slots (independent link padding); immediate: data leaves at once and
    /// slots add cover.
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,
    /// Budget: at most this many wire bytes per second (delays slots).
    #[arg(long, value_name = "B/S")]
    pub max_bps: Option<f64>,
    /// Budget: after this many wire bytes in a day, cover stops until the next day.
    #[arg(long, value_name = "BYTES")]
    pub max_bytes_per_day: Option<u64>,
    /// Metered mode: send each cover record with this probability.
    #[arg(long, value_name = "P")]
    pub cover_probability: Option<f64>,
}

/// `--policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Independent link padding.
    Pad,
    /// Cover only.
    Immediate,
}

fn need(d: &Option<Dist>, flag: &str, kind: &str) -> Result<Dist> {
    d.clone()
        .ok_or_else(|| BadInput(format!("--schedule {kind} needs {flag}")).into())
}

fn constant_of(d: &Dist, flag: &str) -> Result<f64> {
    match d {
        Dist::Constant { value } => Ok(*value),
        other => Err(BadInput(format!(
            "--schedule constant takes a number for {flag}, not {other}"
        ))
        .into()),
    }
}

impl ShapeArgs {
    /// The shaping config: `base` (from a file, or the default) with these flags applied.
    pub fn config(&self, base: Option<ShapeConfig>) -> Result<ShapeConfig> {
        let mut config =
            base.unwrap_or_else(|| ShapeConfig::new(ScheduleSpec::datta_high_latency()));
        if let Some(kind) = self.schedule {
            config.schedule = match kind {
                ScheduleKind::Constant => ScheduleSpec::Constant {
                    gap_s: constant_of(&need(&self.gap, "--gap", "constant")?, "--gap")?,
                    size_bytes: constant_of(&need(&self.size, "--size", "constant")?, "--size")?
                        .round() as u32,
                },
                ScheduleKind::Random => ScheduleSpec::Random {
                    gap_s: need(&self.gap, "--gap", "random")?,
                    size_bytes: need(&self.size, "--size", "random")?,
                },
                ScheduleKind::OnOff => ScheduleSpec::OnOff {
                    on_s: need(&self.on, "--on", "on-off")?,
                    off_s: need(&self.off, "--off", "on-off")?,
                    gap_s: need(&self.gap, "--gap", "on-off")?,
                    size_bytes: need(&self.size, "--size", "on-off")?,
                },
                ScheduleKind::Adaptive => {
                    if self.rates.is_empty() {
                        return Err(BadInput(
                            "--schedule adaptive needs --rates, e.g. --rates 2,5,20".into(),
                        )
                        .into());
                    }
                    ScheduleSpec::Adaptive {
                        rates_hz: self.rates.clone(),
                        size_bytes: need(&self.size, "--size", "adaptive")?,
                        hold_s: self.hold_s,
                        up_after_s: 1.0,
                    }
                }
                ScheduleKind::Unshaped => ScheduleSpec::Unshaped,
                ScheduleKind::DattaLow => ScheduleSpec::datta_low_latency(),
                ScheduleKind::DattaHigh => ScheduleSpec::datta_high_latency(),
            };
            if kind == ScheduleKind::Unshaped {
                config.policy = Policy::Immediate;
            }
        } else if self.gap.is_some()
            || self.size.is_some()
            || self.on.is_some()
            || self.off.is_some()
        {
            return Err(BadInput("--gap, --size, --on and --off need --schedule".into()).into());
        }
        if let Some(p) = self.policy {
            config.policy = match p {
                PolicyArg::Pad => Policy::Pad,
                PolicyArg::Immediate => Policy::Immediate,
            };
        }
        let b: &mut Budget = &mut config.budget;
        if self.max_bps.is_some() {
            b.max_bps = self.max_bps;
        }
        if self.max_bytes_per_day.is_some() {
            b.max_bytes_per_day = self.max_bytes_per_day;
        }
        if let Some(p) = self.cover_probability {
            b.cover_probability = p;
        }
        config.validate().map_err(|e| BadInput(e.0))?;
        config.schedule.build().map_err(|e| BadInput(e.0))?;
        Ok(config)
    }
}

/// `hush shape` arguments.
#[derive(Args)]
pub struct ShapeCmd {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// A TOML file with a [shape] section (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Carry this capture's traffic through the schedule on a virtual clock: each packet's
    /// TCP/UDP payload becomes a message at the packet's time, per direction.
    #[arg(long, value_name = "CAPTURE")]
    pub trace: Option<PathBuf>,
    /// The device in --trace: a MAC or IP (default: _iotdevice-mac.txt beside it, else inferred).
    #[arg(long, value_name = "MAC|IP")]
    pub device: Option<String>,
    /// Without --trace: how long to run the schedule, seconds of virtual time.
    #[arg(long, value_name = "S", default_value_t = 3600.0)]
    pub duration_s: f64,
    /// Seed of the schedule.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The cost of one direction.
#[derive(Debug, Serialize)]
pub struct DirectionCost {
    /// `out` (device to network), `in`, or `idle` (the schedule alone).
    pub direction: &'static str,
    /// Seconds the figures are per.
    pub duration_s: f64,
    /// Application messages carried.
    pub messages: u64,
    /// Application bytes carried.
    pub real_bytes: u64,
    /// The capture's own frame bytes in this direction (what the device sent without hush).
    pub original_frame_bytes: u64,
    /// Records sent.
    pub records: u64,
    /// Of which cover.
    pub cover_records: u64,
    /// Tunnel bytes (records).
    pub wire_bytes: u64,
    /// Zero padding inside data records.
    pub padding_bytes: u64,
    /// Cover record bytes.
    pub cover_bytes: u64,
    /// Framing of data records: length prefix, header, AEAD tag, message-length varints.
    pub framing_bytes: u64,
    /// Real bytes per second.
    pub real_bps: f64,
    /// Tunnel bytes per second.
    pub wire_bps: f64,
    /// Tunnel bytes per second with TCP/IPv4 headers (52 B per record).
    pub wire_ip_bps: f64,
    /// The capture's own frame bytes per second.
    pub original_bps: f64,
    /// What the schedule adds over the device's own traffic, bytes per second (with headers).
    pub added_ip_bps: f64,
    /// Data the schedule could carry per second (record sizes less framing).
    pub capacity_bps: f64,
    /// Bytes per day at this rate (with headers).
    pub bytes_per_day: f64,
    /// Queueing delay of messages, seconds.
    pub delay_mean_s: f64,
    /// Median.
    pub delay_p50_s: f64,
    /// 95th percentile.
    pub delay_p95_s: f64,
    /// 99th percentile.
    pub delay_p99_s: f64,
    /// Maximum.
    pub delay_max_s: f64,
}

/// Run one direction: `messages` (time since start, length) through a fresh engine.
pub fn replay(
    config: &ShapeConfig,
    seed: u64,
    direction: &'static str,
    messages: &[(Duration, usize)],
    end: Duration,
    original: u64,
) -> Result<DirectionCost> {
    let (a, b) = Session::in_memory_pair().context("in-memory session")?;
    let mut tx = Engine::new(config, a, seed, Instant::ZERO).map_err(|e| BadInput(e.0))?;
    let mut rx = Engine::new(config, b, seed ^ 1, Instant::ZERO).map_err(|e| BadInput(e.0))?;
    tx.shaper().track_messages(true);
    let end = Instant::ZERO + end;
    let mut buf = Vec::new();
    let mut next = 0;
    let mut delays = Vec::with_capacity(messages.len());
    let mut last = Instant::ZERO;
    let payload = vec![0u8; messages.iter().map(|m| m.1).max().unwrap_or(0)];
    loop {
        let send_at = messages.get(next).map(|m| Instant::ZERO + m.0);
        let due = tx.poll_timeout();
        let now = match (send_at, due) {
            (Some(s), Some(t)) => s.min(t),
            (Some(s), None) => s,
            (None, Some(t)) => t,
            (None, None) => break,
        };
        // Run to the end of the capture, and on until everything queued has left.
        if now > end && send_at.is_none() && tx.shaper().queued_messages() == 0 {
            break;
        }
        while messages
            .get(next)
            .is_some_and(|m| Instant::ZERO + m.0 <= now)
        {
            let len = messages[next].1;
            // The queue is large enough for any capture: a full queue is a failure here.
            tx.send(now, &payload[..len])
                .context("queueing a message")?;
            next += 1;
        }
        while tx.poll_transmit(now, &mut buf).is_some() {
            rx.receive(&buf).context("receiver rejected a record")?;
            last = now;
        }
        while let Some(s) = tx.shaper().poll_sent() {
            delays.push(s.delay().as_secs_f64());
        }
        while rx.poll_message().is_some() {}
    }
    let duration_s = (last.max(end)).as_secs_f64().max(1e-9);
    let s: ShaperStats = tx.stats().clone();
    anyhow::ensure!(
        rx.receiver().stats().real_bytes == s.real_bytes,
        "bug: delivered bytes differ from sent bytes"
    );
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if delays.is_empty() {
            0.0
        } else {
            delays[((delays.len() - 1) as f64 * p).round() as usize]
        }
    };
    let per_s = |b: u64| b as f64 / duration_s;
    let ip = s.wire_bytes + s.records * TCP_IPV4_HEADER_BYTES;
    let capacity = s
        .wire_bytes
        .saturating_sub(s.records * hush_shape::frame::RECORD_OVERHEAD_BYTES as u64);
    Ok(DirectionCost {
        direction,
        duration_s,
        messages: s.messages_sent,
        real_bytes: s.real_bytes,
        original_frame_bytes: original,
        records: s.records,
        cover_records: s.cover_records,
        wire_bytes: s.wire_bytes,
        padding_bytes: s.padding_bytes,
        cover_bytes: s.cover_bytes,
        framing_bytes: s.framing_bytes,
        real_bps: per_s(s.real_bytes),
        wire_bps: per_s(s.wire_bytes),
        wire_ip_bps: per_s(ip),
        original_bps: per_s(original),
        added_ip_bps: per_s(ip) - per_s(original),
        capacity_bps: per_s(capacity),
        bytes_per_day: per_s(ip) * 86_400.0,
        delay_mean_s: s.mean_delay_s(),
        delay_p50_s: pct(0.5),
        delay_p95_s: pct(0.95),
        delay_p99_s: pct(0.99),
        delay_max_s: s.delay_max_ns as f64 * 1e-9,
    })
}

#[derive(Serialize)]
struct ShapeReport {
    schedule: ShapeConfig,
    seed: u64,
    trace: Option<String>,
    directions: Vec<DirectionCost>,
}

/// `hush shape`.
pub fn run(cmd: &ShapeCmd) -> Result<()> {
    let base = match &cmd.config {
        Some(path) => hush_net::config::ConfigFile::read(path)?.shape,
        None => None,
    };
    let config = cmd.shape.config(base)?;
    let mut directions = Vec::new();
    if let Some(path) = &cmd.trace {
        let mut trace = read_trace(path, ReadOptions::default())?;
        let spec = device_spec_of(&crate::ReadArgs {
            strict: false,
            device: cmd.device.clone(),
        })?;
        apply_device(&mut trace, path, spec.as_ref())?;
        let t0 = trace.packets.first().map_or(0, |p| p.t_ns);
        let end = Duration::from_nanos(
            trace
                .packets
                .last()
                .map_or(0, |p| (p.t_ns - t0).max(0) as u64),
        );
        for (dir, name, seed) in [
            (Direction::Outbound, "out", cmd.seed),
            (Direction::Inbound, "in", cmd.seed.wrapping_add(1)),
        ] {
            let pkts = trace.packets.iter().filter(|p| p.dir == dir);
            let original: u64 = pkts.clone().map(|p| u64::from(p.frame_len)).sum();
            let messages: Vec<(Duration, usize)> = pkts
                .filter(|p| p.payload_len > 0)
                .map(|p| {
                    (
                        Duration::from_nanos((p.t_ns - t0).max(0) as u64),
                        p.payload_len as usize,
                    )
                })
                .collect();
            directions.push(replay(&config, seed, name, &messages, end, original)?);
        }
    } else {
        if !(cmd.duration_s.is_finite() && cmd.duration_s > 0.0) {
            return Err(BadInput(format!(
                "--duration-s must be positive, not {}",
                cmd.duration_s
            ))
            .into());
        }
        directions.push(replay(
            &config,
            cmd.seed,
            "idle",
            &[],
            Duration::from_secs_f64(cmd.duration_s),
            0,
        )?);
    }
    let report = ShapeReport {
        schedule: config,
        seed: cmd.seed,
        trace: cmd.trace.as_deref().map(|p| p.display().to_string()),
        directions,
    };
    let mut out = std::io::stdout().lock();
    if cmd.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    print_report(&mut out, &report, cmd.trace.as_deref())?;
    Ok(())
}

/// One line: `random: gap uniform:0.2,0.4 s, size uniform:50,200 B; policy pad`.
pub fn describe(c: &ShapeConfig) -> String {
    let sched = match &c.schedule {
        ScheduleSpec::Constant { gap_s, size_bytes } => {
            format!("constant: {size_bytes} B every {gap_s} s")
        }
        ScheduleSpec::Random { gap_s, size_bytes } => {
            format!("random: gap {gap_s} s, size {size_bytes} B")
        }
        ScheduleSpec::OnOff {
            on_s,
            off_s,
            gap_s,
            size_bytes,
        } => format!("on-off: on {on_s} s, off {off_s} s, gap {gap_s} s, size {size_bytes} B"),
        ScheduleSpec::Adaptive {
            rates_hz,
            size_bytes,
            hold_s,
            ..
        } => format!("adaptive: rates {rates_hz:?}/s held {hold_s} s, size {size_bytes} B"),
        ScheduleSpec::Unshaped => "unshaped".to_string(),
        ScheduleSpec::Front {
            max_records,
            w_min_s,
            w_max_s,
            size_bytes,
        } => format!(
            "front: up to {max_records} records of {size_bytes} B, Rayleigh window {w_min_s}-{w_max_s} s"
        ),
    };
    let policy = match c.policy {
        Policy::Pad => "pad",
        Policy::Immediate => "immediate",
    };
    let mut budget = Vec::new();
    if let Some(b) = c.budget.max_bps {
        budget.push(format!("max {b} B/s"));
    }
    if let Some(b) = c.budget.max_bytes_per_day {
        budget.push(format!("max {b} B/day"));
    }
    if c.budget.cover_probability < 1.0 {
        budget.push(format!("cover p={}", c.budget.cover_probability));
    }
    if budget.is_empty() {
        format!("{sched}; policy {policy}")
    } else {
        format!("{sched}; policy {policy}; budget {}", budget.join(", "))
    }
}

fn print_report(out: &mut impl Write, r: &ShapeReport, trace: Option<&Path>) -> Result<()> {
    writeln!(out, "schedule: {} (seed {})", describe(&r.schedule), r.seed)?;
    if let Some(t) = trace {
        writeln!(out, "traffic: {}", t.display())?;
    }
    writeln!(
        out,
        "\n{:<5} {:>8} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "dir",
        "seconds",
        "real B/s",
        "orig B/s",
        "wire B/s",
        "+IP hdr B/s",
        "added",
        "MB/day",
        "cover%",
        "p50 s",
        "p99 s"
    )?;
    for d in &r.directions {
        writeln!(
            out,
            "{:<5} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>9.1} {:>9.2} {:>7.1}% {:>8.3} {:>8.3}",
            d.direction,
            d.duration_s,
            d.real_bps,
            d.original_bps,
            d.wire_bps,
            d.wire_ip_bps,
            d.added_ip_bps,
            d.bytes_per_day / 1e6,
            100.0 * d.cover_records as f64 / d.records.max(1) as f64,
            d.delay_p50_s,
            d.delay_p99_s
        )?;
    }
    writeln!(
        out,
        "\nwire = tunnel records (framing and AEAD tag included); +IP hdr adds {TCP_IPV4_HEADER_BYTES} B of TCP/IPv4 headers per record; \
         added = wire with headers minus the capture's own frame bytes."
    )?;
    Ok(())
}
