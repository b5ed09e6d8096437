//! A two-defense bench through the library: `none` and FRONT, judged by the flow-statistics
//! attacker (adaptive and non-adaptive) in both observation views, on the built-in simulated
//! home or on a folder of labelled captures (`<label>/<capture files>`, IoT Sentinel's layout).
//!
//! ```text
//! cargo run --release -p hush-eval --example two_defenses
//! cargo run --release -p hush-eval --example two_defenses -- ../shared/data/iot-sentinel
//! ```
//!
//! What `hush eval --defenses none,front --attacks flow-stats` does, minus the files and the
//! report: a [`Matrix`] says what to run, [`run`] runs it over an [`Input`].

use std::process::ExitCode;

use hush_eval::home::{HomeConfig, simulate_home};
use hush_eval::matrix::{Input, Matrix, run};
use hush_trace::dataset::{LoadOptions, load_dir};

fn main() -> ExitCode {
    match go() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("two_defenses: {err}");
            ExitCode::from(2)
        }
    }
}

fn go() -> Result<(), Box<dyn std::error::Error>> {
    let (name, ds) = match std::env::args().nth(1) {
        Some(dir) => ("captures", load_dir(&dir, &LoadOptions::default())?),
        None => (
            "demo-home",
            simulate_home(&HomeConfig {
                duration_s: 600.0,
                sessions_per_device: 6,
                seed: 0,
            })?,
        ),
    };
    let matrix = Matrix {
        dataset: name.into(),
        defenses: vec!["none".into(), "front".into()],
        attacks: vec!["flow-stats".into()],
        folds: 3,
        ..Matrix::default()
    };
    let out = run(&Input::Captures(&ds), &matrix, None, &|_, _| {})?;
    println!(
        "{} traces of {} labels; chance is the largest label's share",
        ds.traces.len(),
        ds.labels.len()
    );
    println!("view     defense  attacker      accuracy  chance  bytes added");
    for c in &out.cells {
        println!(
            "{:<8} {:<8} {:<13} {:>7.1}%  {:>5.1}%  {:>9.1}%",
            c.observation,
            c.defense,
            c.attacker,
            100.0 * c.accuracy,
            100.0 * c.chance,
            c.bytes_added_pct
        );
    }
    Ok(())
}
