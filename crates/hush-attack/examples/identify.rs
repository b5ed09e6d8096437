//! Device identification on IoT Sentinel: every attack, 31 devices and 27 types, 5 folds by capture.
//!
//! `cargo run --release -p hush-attack --example identify [DATA_DIR]`

use hush_attack::{Attack, EvalOptions, NAMES, evaluate};
use hush_trace::dataset::{IOT_SENTINEL_TYPES, LoadOptions, load_dir};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => hush_trace::data::shared_data("iot-sentinel").ok_or("no data folder")?,
    };
    let devices = load_dir(&dir, &LoadOptions::default())?;
    let mut types = devices.clone();
    types.relabel(IOT_SENTINEL_TYPES);
    println!(
        "{} captures, {} devices, {} types",
        devices.traces.len(),
        devices.labels.len(),
        types.labels.len()
    );
    for name in NAMES {
        let attack = Attack::by_name(name)?;
        for (what, ds) in [("devices", &devices), ("types", &types)] {
            let t = std::time::Instant::now();
            let r = evaluate(ds, &attack, &EvalOptions::default())?;
            println!(
                "{name:<13} {what:<8} window acc {:5.1}%  macro-F1 {:5.1}%  capture acc {:5.1}%  (chance {:4.1}% / {:4.1}%)  {:.1} s",
                100.0 * r.window.accuracy,
                100.0 * r.window.macro_f1,
                100.0 * r.capture.accuracy,
                100.0 * r.window.chance_majority,
                100.0 * r.window.chance_uniform,
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
