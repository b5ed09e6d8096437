//! `hush defend`: apply defenses to recorded captures and report what they cost.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use hush_defense::{Defended, DefenseSpec, Latency, NetworkModel, catalog, defend};
use hush_trace::{ReadOptions, read_trace};
use indicatif::{ParallelProgressIterator, ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::inspect::{apply_device, collect_files, device_spec_of};
use crate::{BadInput, ReadArgs};

/// `hush defend`.
#[derive(Args)]
pub struct DefendArgs {
    /// A capture, a folder of captures (searched recursively), a manifest CSV
    /// `path,label,group[,device]`, or with --devices a whole-home capture (one trace per device
    /// and window).
    #[arg(value_name = "PATH", required_unless_present = "list")]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub layout: crate::data::LayoutArgs,
    /// A defense: NAME or NAME:key=value,... (repeatable; `all` for the whole catalog).
    #[arg(long, short, value_name = "SPEC", default_value = "ilp-random")]
    pub defense: Vec<String>,
    /// Describe every defense and its parameters, then exit.
    #[arg(long)]
    pub list: bool,
    /// Write the defended trace here (`.pcap` or `.csv`; one capture and one defense).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Seed of every random choice of the defenses.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One-way delay between the device and the gateway, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    pub delay_ms: f64,
    /// Uplink bottleneck, bytes per second.
    #[arg(long, value_name = "B/S")]
    pub uplink_bps: Option<f64>,
    /// Downlink bottleneck, bytes per second.
    #[arg(long, value_name = "B/S")]
    pub downlink_bps: Option<f64>,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of the table: a defense over one capture or all of them.
#[derive(Serialize)]
struct Row {
    defense: String,
    captures: usize,
    original_packets: u64,
    defended_packets: u64,
    original_bytes: u64,
    defended_bytes: u64,
    bytes_added_pct: f64,
    added_bps: f64,
    defended_bytes_per_day: f64,
    cover_fraction: f64,
    latency: Latency,
    /// Longest tail after the last real byte, seconds.
    tail_max_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Defended>,
}

fn specs(args: &DefendArgs) -> Result<Vec<DefenseSpec>> {
    let mut out = Vec::new();
    for d in &args.defense {
        if d == "all" {
            out.extend(catalog().into_iter().map(|e| e.defaults));
        } else {
            out.push(d.parse().map_err(|e: hush_defense::DefenseError| {
                BadInput(format!("--defense {d:?}: {e}"))
            })?);
        }
    }
    for s in &out {
        s.plan()
            .map_err(|e| BadInput(format!("--defense {s}: {e}")))?;
    }
    Ok(out)
}

pub fn run(args: &DefendArgs) -> Result<()> {
    if args.list {
        return list(args.json);
    }
    let path = args
        .path
        .as_ref()
        .ok_or_else(|| BadInput("give a capture or a folder".into()))?;
    let specs = specs(args)?;
    let net = NetworkModel {
        one_way_delay_s: args.delay_ms / 1e3,
        uplink_bps: args.uplink_bps,
        downlink_bps: args.downlink_bps,
        ..NetworkModel::default()
    };
    // Checked here so that a bad flag is one line, before any capture is read.
    net.validate()
        .map_err(|e| BadInput(format!("network: {e}")))?;
    let spec = device_spec_of(&args.read)?;
    let read_opts = ReadOptions {
        strict: args.read.strict,
    };
    // A manifest or a whole home: its traces, as the attacks and the bench see them.
    if args.layout.devices.is_some() || hush_trace::dataset::is_manifest(path) {
        if args.out.is_some() {
            return Err(BadInput("--out needs one capture file and one defense".into()).into());
        }
        let opts = hush_trace::dataset::LoadOptions {
            read: read_opts,
            device: spec.as_ref(),
            progress: None,
        };
        let ds = crate::data::load_data(&args.layout.layout(path)?, false, None, &opts)?;
        let traces: Vec<hush_trace::Trace> = ds.traces.into_iter().map(|t| t.trace).collect();
        return defend_many(args, &specs, &net, path, &traces, &[]);
    }
    let mut files = Vec::new();
    if path.is_dir() {
        collect_files(path, &mut files).with_context(|| format!("listing {}", path.display()))?;
    } else {
        files.push(path.clone());
    }
    if args.out.is_some() && (files.len() != 1 || specs.len() != 1) {
        return Err(BadInput("--out needs one capture and one defense".into()).into());
    }
    let read = |f: &Path| -> Result<hush_trace::Trace> {
        let mut t = read_trace(
            f,
            ReadOptions {
                strict: args.read.strict,
            },
        )?;
        apply_device(&mut t, f, spec.as_ref())?;
        Ok(t)
    };
    if files.len() == 1 && !path.is_dir() {
        let trace = read(&files[0])?;
        let mut rows = Vec::new();
        for s in &specs {
            let d = defend(&trace, s, args.seed, &net)
                .map_err(|e| BadInput(format!("{}: {e}", files[0].display())))?;
            if let Some(out) = &args.out {
                write_out(out, &d, &trace)?;
            }
            let summary = d.without_packets();
            rows.push(row_of(
                &summary.defense,
                1,
                std::slice::from_ref(&summary),
                None,
            ));
            if args.json {
                if let Some(r) = rows.last_mut() {
                    r.detail = Some(summary);
                }
            }
        }
        return print(
            &rows,
            args.json,
            &format!("{}: {} packets", files[0].display(), trace.packets.len()),
        );
    }
    // A folder: every capture, every defense, in parallel; unreadable files are reported.
    let traces: Vec<(PathBuf, Result<hush_trace::Trace>)> =
        files.par_iter().map(|f| (f.clone(), read(f))).collect();
    let mut skipped = Vec::new();
    let mut good = Vec::new();
    for (f, t) in traces {
        match t {
            Ok(t) => good.push(t),
            Err(e) => skipped.push(format!("{}: {e:#}", f.display())),
        }
    }
    defend_many(args, &specs, &net, path, &good, &skipped)
}

/// Every trace under every defense, in parallel: one row per defense with the totals.
fn defend_many(
    args: &DefendArgs,
    specs: &[DefenseSpec],
    net: &NetworkModel,
    path: &Path,
    good: &[hush_trace::Trace],
    skipped: &[String],
) -> Result<()> {
    let bar = ProgressBar::new((good.len() * specs.len()) as u64).with_style(
        ProgressStyle::with_template("{spinner} defending {pos}/{len} [{bar:30}] {eta}")
            .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
            .progress_chars("=> "),
    );
    let jobs: Vec<(usize, usize)> = (0..specs.len())
        .flat_map(|s| (0..good.len()).map(move |t| (s, t)))
        .collect();
    let results: Vec<Result<Defended, String>> = jobs
        .par_iter()
        .progress_with(bar.clone())
        .map(|&(s, t)| {
            defend(&good[t], &specs[s], args.seed, net)
                .map(Defended::without_packets)
                .map_err(|e| format!("{}: {e}", good[t].name))
        })
        .collect();
    bar.finish_and_clear();
    let mut rows = Vec::new();
    for (si, s) in specs.iter().enumerate() {
        let mine: Vec<Defended> = results
            .iter()
            .zip(&jobs)
            .filter(|(_, j)| j.0 == si)
            .map(|(r, _)| r.as_ref().map_err(|e| BadInput(e.clone())).cloned())
            .collect::<Result<_, _>>()?;
        rows.push(row_of(
            &mine
                .first()
                .map_or_else(|| s.to_string(), |d| d.defense.clone()),
            mine.len(),
            &mine,
            None,
        ));
    }
    for s in skipped {
        eprintln!("hush: skipped {s}");
    }
    print(
        &rows,
        args.json,
        &format!("{}: {} traces", path.display(), good.len()),
    )
}

fn row_of(defense: &str, captures: usize, ds: &[Defended], detail: Option<Defended>) -> Row {
    let sum = |f: fn(&Defended) -> u64| ds.iter().map(f).sum::<u64>();
    let original_bytes = sum(|d| d.overhead.original_bytes);
    let defended_bytes = sum(|d| d.overhead.defended_bytes);
    let duration: f64 = ds.iter().map(|d| d.overhead.original_duration_s).sum();
    let defended_duration: f64 = ds.iter().map(|d| d.overhead.defended_duration_s).sum();
    let defended_packets = sum(|d| d.overhead.defended_packets);
    let cover = sum(|d| d.overhead.cover_packets);
    let mut delays: Vec<i64> = ds
        .iter()
        .flat_map(|d| d.delays_ns.iter().copied())
        .collect();
    let added = defended_bytes as f64 - original_bytes as f64;
    Row {
        defense: defense.to_string(),
        captures,
        original_packets: sum(|d| d.overhead.original_packets),
        defended_packets,
        original_bytes,
        defended_bytes,
        bytes_added_pct: if original_bytes > 0 {
            100.0 * added / original_bytes as f64
        } else {
            0.0
        },
        added_bps: if duration > 0.0 {
            added / duration
        } else {
            0.0
        },
        defended_bytes_per_day: if defended_duration > 0.0 {
            defended_bytes as f64 / defended_duration * 86_400.0
        } else {
            0.0
        },
        cover_fraction: if defended_packets > 0 {
            cover as f64 / defended_packets as f64
        } else {
            0.0
        },
        latency: Latency::from_delays_ns(&mut delays),
        tail_max_s: ds.iter().map(|d| d.overhead.tail_s).fold(0.0, f64::max),
        detail,
    }
}

fn print(rows: &[Row], json: bool, title: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{title}")?;
    writeln!(
        out,
        "{:<18} {:>9} {:>11} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "defense",
        "packets",
        "bytes",
        "added%",
        "added/s",
        "MB/day",
        "cover%",
        "p50 s",
        "p95 s",
        "p99 s",
        "max s"
    )?;
    for r in rows {
        let name = r.defense.split(':').next().unwrap_or(&r.defense);
        writeln!(
            out,
            "{:<18} {:>9} {:>11} {:>8.1}% {:>9.0} {:>9.2} {:>6.1}% {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            name,
            r.defended_packets,
            r.defended_bytes,
            r.bytes_added_pct,
            r.added_bps,
            r.defended_bytes_per_day / 1e6,
            100.0 * r.cover_fraction,
            r.latency.p50_s,
            r.latency.p95_s,
            r.latency.p99_s,
            r.latency.max_s
        )?;
    }
    writeln!(
        out,
        "bytes are frames on the wire (records + 66 B of Ethernet/IPv4/TCP); latency is how much later each real message's last byte is seen than in the capture; --json gives per-direction detail."
    )?;
    Ok(())
}

fn write_out(path: &Path, d: &Defended, original: &hush_trace::Trace) -> Result<()> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let is_pcap = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pcap"));
    if !is_csv && !is_pcap {
        return Err(BadInput(format!(
            "--out {}: use a .pcap or .csv file name",
            path.display()
        ))
        .into());
    }
    // Write to a temporary file beside the target, then rename: no half-written output.
    let tmp = path.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    if is_csv {
        d.write_csv(&mut w)
            .with_context(|| format!("writing {}", tmp.display()))?;
    } else {
        hush_trace::write::write_pcap(&d.to_trace(original), &mut w, d.seed)
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    w.flush()
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[derive(Serialize)]
struct ListEntry {
    name: &'static str,
    summary: &'static str,
    source: &'static str,
    spec: String,
    defaults: DefenseSpec,
}

fn list(json: bool) -> Result<()> {
    let entries: Vec<ListEntry> = catalog()
        .into_iter()
        .map(|e| ListEntry {
            name: e.name,
            summary: e.summary,
            source: e.source,
            spec: e.defaults.to_string(),
            defaults: e.defaults,
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(());
    }
    for e in &entries {
        writeln!(
            out,
            "{}\n    {}\n    source: {}\n    defaults: {}\n",
            e.name, e.summary, e.source, e.spec
        )?;
    }
    writeln!(
        out,
        "Give parameters as NAME:key=value,... e.g. --defense buflo:gap_s=0.04,min_duration_s=0"
    )?;
    Ok(())
}
