//! `hush inspect`: summaries of captures, as tables or JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hush_trace::device::{DeviceSpec, read_device_mac_file, set_direction};
use hush_trace::summary::TraceSummary;
use hush_trace::{ReadOptions, Trace, read_trace};
use indicatif::{ParallelProgressIterator, ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::{BadInput, InspectArgs, ReadArgs};

/// Rate bins in the sparkline.
const SPARK_BINS: usize = 48;

pub fn run(args: &InspectArgs) -> Result<()> {
    let spec = device_spec_of(&args.read)?;
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            collect_files(path, &mut files)
                .with_context(|| format!("listing {}", path.display()))?;
        } else {
            files.push(path.clone());
        }
    }
    let single = files.len() == 1 && !args.paths[0].is_dir();
    if single {
        let summary = summarise(&files[0], &args.read, spec.as_ref(), args.top)?;
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &summary)?;
            writeln!(out)?;
        } else {
            print_one(&mut out, &summary)?;
        }
        return Ok(());
    }

    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} reading {pos}/{len} files [{bar:30}] {eta}")
            .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
            .progress_chars("=> "),
    );
    let results: Vec<(PathBuf, Result<TraceSummary>)> = files
        .par_iter()
        .progress_with(bar.clone())
        .map(|f| (f.clone(), summarise(f, &args.read, spec.as_ref(), args.top)))
        .collect();
    bar.finish_and_clear();

    let mut summaries = Vec::new();
    let mut skipped = Vec::new();
    for (path, r) in results {
        match r {
            Ok(s) => summaries.push(s),
            // A folder holds READMEs and licences too: report them, don't stop.
            Err(e) => skipped.push((path, format!("{e:#}"))),
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let skipped_json: Vec<_> = skipped
            .iter()
            .map(|(p, e)| serde_json::json!({ "path": p.display().to_string(), "error": e }))
            .collect();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({ "traces": summaries, "unreadable": skipped_json }),
        )?;
        writeln!(out)?;
    } else {
        print_many(&mut out, &summaries, &skipped)?;
    }
    if summaries.is_empty() {
        return Err(BadInput("no readable capture among the given paths".into()).into());
    }
    Ok(())
}

pub fn device_spec_of(read: &ReadArgs) -> Result<Option<DeviceSpec>> {
    let Some(d) = &read.device else {
        return Ok(None);
    };
    if let Ok(mac) = d.parse() {
        return Ok(Some(DeviceSpec::Mac(mac)));
    }
    if let Ok(ip) = d.parse() {
        return Ok(Some(DeviceSpec::Ip(ip)));
    }
    Err(BadInput(format!(
        "--device {d:?}: not a MAC address (00:17:88:2b:9a:0c) or an IP address"
    ))
    .into())
}

pub fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        if e.file_type()?.is_dir() {
            collect_files(&path, out)?;
        } else if !is_side_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Files that sit beside captures but are not traffic.
fn is_side_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.starts_with('_') || name.starts_with('.')
}

/// Read one file, set directions (flag, then a MAC file beside it, then inference) and summarise.
pub fn summarise(
    path: &Path,
    read: &ReadArgs,
    spec: Option<&DeviceSpec>,
    top: usize,
) -> Result<TraceSummary> {
    let mut trace = read_trace(
        path,
        ReadOptions {
            strict: read.strict,
        },
    )?;
    apply_device(&mut trace, path, spec)?;
    Ok(TraceSummary::new(&trace, top, SPARK_BINS))
}

/// Set packet directions on `trace` read from `path`.
pub fn apply_device(trace: &mut Trace, path: &Path, spec: Option<&DeviceSpec>) -> Result<()> {
    let spec = match spec {
        Some(s) => s.clone(),
        None => {
            let mac_file = path.parent().map(|d| d.join("_iotdevice-mac.txt"));
            match mac_file.filter(|f| f.is_file()) {
                Some(f) => DeviceSpec::Mac(read_device_mac_file(&f)?),
                None => DeviceSpec::Infer,
            }
        }
    };
    set_direction(trace, &spec)?;
    Ok(())
}

fn print_one(out: &mut impl Write, s: &TraceSummary) -> Result<()> {
    writeln!(out, "{}", s.name)?;
    writeln!(
        out,
        "  {} packets, {}, {:.1} s, {}/s mean, {} endpoints, {} flows",
        s.packets,
        human_bytes(s.bytes),
        s.duration_s,
        human_bytes(s.mean_rate_bps as u64),
        s.endpoints,
        s.flows
    )?;
    writeln!(
        out,
        "  rate |{}| {} per bin",
        s.sparkline(),
        human_duration(s.rate_bin_s)
    )?;
    if let Some(d) = &s.device {
        writeln!(out, "\ndevice {}", d.device)?;
        writeln!(
            out,
            "  out {} packets {}   in {} packets {}   other hosts {} packets",
            d.outbound.packets,
            human_bytes(d.outbound.bytes),
            d.inbound.packets,
            human_bytes(d.inbound.bytes),
            d.unrelated.packets
        )?;
        writeln!(out, "  top remote endpoints:")?;
        for (name, packets, bytes) in &d.top_remotes {
            writeln!(
                out,
                "    {name:<44} {packets:>8} pkts {:>10}",
                human_bytes(*bytes)
            )?;
        }
    }
    if s.local_devices.len() > 1 {
        writeln!(out, "\nlocal devices (busiest first)")?;
        for d in &s.local_devices {
            writeln!(
                out,
                "  {:<20} out {:>8} pkts {:>10}   in {:>8} pkts {:>10}",
                d.device,
                d.outbound.packets,
                human_bytes(d.outbound.bytes),
                d.inbound.packets,
                human_bytes(d.inbound.bytes)
            )?;
        }
    }
    writeln!(out, "\nprotocols")?;
    for p in &s.protocols {
        writeln!(
            out,
            "  {:<12} {:>8} pkts {:>10}",
            p.protocol,
            p.packets,
            human_bytes(p.bytes)
        )?;
    }
    writeln!(out, "\ntop flows by bytes")?;
    writeln!(
        out,
        "  {:<8} {:<50} {:>14} {:>14} {:>9}",
        "proto", "a -> b", "a->b", "b->a", "dur s"
    )?;
    for f in &s.top_flows {
        let ends = format!("{}:{} -> {}:{}", f.a, f.a_port, f.b, f.b_port);
        writeln!(
            out,
            "  {:<8} {:<50} {:>14} {:>14} {:>9.1}",
            f.protocol,
            ends,
            format!("{}/{}", f.a_to_b.packets, human_bytes(f.a_to_b.bytes)),
            format!("{}/{}", f.b_to_a.packets, human_bytes(f.b_to_a.bytes)),
            f.duration_s
        )?;
    }
    let anomalies = anomaly_lines(s);
    if !anomalies.is_empty() {
        writeln!(out, "\nanomalies")?;
        for a in anomalies {
            writeln!(out, "  {a}")?;
        }
    }
    Ok(())
}

fn print_many(
    out: &mut impl Write,
    summaries: &[TraceSummary],
    skipped: &[(PathBuf, String)],
) -> Result<()> {
    writeln!(
        out,
        "{:<60} {:>8} {:>10} {:>9} {:>8} {:>8}  anomalies",
        "file", "packets", "bytes", "dur s", "out", "in"
    )?;
    let (mut packets, mut bytes, mut outbound, mut inbound, mut backwards) = (0, 0, 0, 0, 0);
    for s in summaries {
        let (o, i) = s
            .device
            .as_ref()
            .map_or((0, 0), |d| (d.outbound.packets, d.inbound.packets));
        writeln!(
            out,
            "{:<60} {:>8} {:>10} {:>9.1} {:>8} {:>8}  {}",
            shorten(&s.name, 60),
            s.packets,
            human_bytes(s.bytes),
            s.duration_s,
            o,
            i,
            anomaly_lines(s).join("; ")
        )?;
        packets += s.packets;
        bytes += s.bytes;
        outbound += o;
        inbound += i;
        backwards += u64::from(s.report.backwards_timestamps > 0);
    }
    writeln!(
        out,
        "\n{} captures: {packets} packets, {} ({bytes} bytes), {outbound} outbound, {inbound} inbound; \
         {backwards} files with backwards timestamps",
        summaries.len(),
        human_bytes(bytes),
    )?;
    for (path, err) in skipped {
        writeln!(out, "not read: {}: {err}", path.display())?;
    }
    Ok(())
}

fn anomaly_lines(s: &TraceSummary) -> Vec<String> {
    let r = &s.report;
    let mut lines = Vec::new();
    if r.backwards_timestamps > 0 {
        lines.push(format!(
            "{} backwards timestamps (sorted)",
            r.backwards_timestamps
        ));
    }
    if r.snap_truncated > 0 {
        lines.push(format!(
            "{} records cut by the snap length",
            r.snap_truncated
        ));
    }
    if let Some(at) = r.truncated_tail_at {
        lines.push(format!("last record truncated at byte {at}"));
    }
    if let Some(e) = &r.stopped_early {
        lines.push(format!("stopped early: {e}"));
    }
    for (reason, n) in &r.skipped {
        lines.push(format!("{n} skipped: {reason}"));
    }
    lines.extend(r.warnings.iter().cloned());
    lines
}

fn shorten(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(n - width + 1).collect::<String>())
    }
}

/// A duration with a unit that keeps two or three significant digits.
fn human_duration(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else if s >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// Bytes with a binary unit, for people.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
