//! Extract per-packet time, length, IPv4 protocol and ports with hush and print their sums as one
//! JSON line: the hush side of `bench/read_speed.sh`.
//!
//! ```text
//! read_fields FILE...          stream each capture in turn, in constant memory, on one thread
//! read_fields --dataset DIR    read every .pcap under DIR as a whole trace, files in parallel
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hush_benches::{FieldSums, stream_fields};
use hush_trace::{ReadOptions, read_trace};
use rayon::prelude::*;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, dir] if flag == "--dataset" => dataset(Path::new(dir)),
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
