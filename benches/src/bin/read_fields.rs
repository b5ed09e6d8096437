//! Extract per-packet time, length, IPv4 protocol and ports with hush and print their sums as one
//! JSON line: the hush side of `bench/read_speed.sh`.
//!
//! ```text
//! read_fields FILE...          stream each capture in turn, in constant memory, on one thread
//! read_fields --dataset DIR    read every .pcap under DIR as a whole trace, files in parallel
//! read_fields --dump FILE      print the fields of each packet, tab-separated, in file order
//! ```
//!
//! `--dump` prints what `tshark -T fields -e frame.time_epoch -e frame.len -e ip.proto -e
//! tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport` would, ports in the TCP or UDP
//! columns, for comparing packet by packet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hush_benches::{FieldSums, stream_fields};
use hush_trace::{PacketStream, Proto, ReadOptions, read_trace};
use rayon::prelude::*;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, dir] if flag == "--dataset" => dataset(Path::new(dir)),
        [flag, file] if flag == "--dump" => dump(file),
        [] => Err("usage: read_fields FILE... | read_fields --dataset DIR".to_string()),
        files => stream(files),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("read_fields: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stream(files: &[String]) -> Result<String, String> {
    let mut sums = FieldSums::default();
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let one = stream_fields(file).map_err(|e| e.in_file(path).to_string())?;
        sums.absorb(&one);
    }
    Ok(sums.to_json())
}

fn dump(path: &str) -> Result<String, String> {
    use std::io::Write;
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut stream = PacketStream::new(file).map_err(|e| e.in_file(path).to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut packets = 0u64;
    while let Some(p) = stream
        .next_packet()
        .map_err(|e| e.in_file(path).to_string())?
    {
        packets += 1;
        let opt = |on: bool, v: u16| if on { v.to_string() } else { String::new() };
        let (tcp, udp) = (p.proto.contains(Proto::TCP), p.proto.contains(Proto::UDP));
        let ip_proto = opt(p.proto.contains(Proto::IPV4), u16::from(p.ip_proto));
        writeln!(
            out,
            "{}.{:06}\t{}\t{ip_proto}\t{}\t{}\t{}\t{}",
            p.t_ns.div_euclid(1_000_000_000),
            p.t_ns.rem_euclid(1_000_000_000) / 1000,
            p.frame_len,
            opt(tcp, p.src_port),
            opt(tcp, p.dst_port),
            opt(udp, p.src_port),
            opt(udp, p.dst_port),
        )
        .map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(format!("# {packets} packets"))
}

fn dataset(dir: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    collect_pcaps(dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
    let per_file: Vec<FieldSums> = files
        .par_iter()
        .map(|path| {
            let trace = read_trace(path, ReadOptions::default()).map_err(|e| e.to_string())?;
            let mut sums = FieldSums::default();
            trace.packets.iter().for_each(|p| sums.add(p));
            Ok(sums)
        })
        .collect::<Result<_, String>>()?;
    let mut sums = FieldSums::default();
    per_file.iter().for_each(|s| sums.absorb(s));
    let json = sums.to_json();
    Ok(format!(
        "{}, \"files\": {}}}",
        json.trim_end_matches('}'),
        files.len()
    ))
}

fn collect_pcaps(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_pcaps(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            out.push(path);
        }
    }
    Ok(())
}
