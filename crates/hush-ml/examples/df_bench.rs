//! The hush side of `bench/df_speed.sh`: Deep Fingerprinting's network ([`Architecture::df`])
//! trained with its published schedule ([`TrainConfig::df`]: Adamax 0.002, batch 128) on the
//! rows of a CSV that `hush attack features -a df --data DIR` wrote (`dir_0000, ..., label,
//! group, fold`): fold 0 validates, the other folds train. Prints one JSON line per epoch with
//! its wall time (training and scoring the validation rows).
//!
//! `cargo run --release -p hush-ml --features neural --example df_bench -- ROWS.csv EPOCHS`

use std::collections::BTreeMap;
use std::error::Error;

use hush_ml::neural::{Architecture, SeqData, TrainConfig, train};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(epochs)) = (args.get(1), args.get(2)) else {
        return Err("usage: df_bench ROWS.csv EPOCHS".into());
    };
    let epochs: usize = epochs.parse()?;
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let steps = header.iter().filter(|h| h.starts_with("dir_")).count();
    let (label_col, fold_col) = (
        header
            .iter()
            .position(|h| *h == "label")
            .ok_or("no label column")?,
        header
            .iter()
            .position(|h| *h == "fold")
            .ok_or("no fold column")?,
    );
    let mut classes: BTreeMap<String, u32> = BTreeMap::new();
    let (mut train_rows, mut val_rows) = (Vec::new(), Vec::new());
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let x: Vec<f32> = cells[..steps]
            .iter()
            .map(|c| c.parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("line {}: {e}", n + 2))?;
        let next = classes.len() as u32;
        let y = *classes.entry(cells[label_col].to_string()).or_insert(next);
        if cells[fold_col] == "0" {
            val_rows.push((x, y));
        } else {
            train_rows.push((x, y));
        }
    }
    let data = |rows: &[(Vec<f32>, u32)]| SeqData {
        x: rows.iter().flat_map(|r| r.0.iter().copied()).collect(),
        n: rows.len(),
        steps,
        features: 1,
        extra: Vec::new(),
        extra_dim: 0,
        y: rows.iter().map(|r| r.1).collect(),
        n_classes: classes.len(),
    };
    let (tr, va) = (data(&train_rows), data(&val_rows));
    let cfg = TrainConfig {
        epochs,
        ..TrainConfig::df()
    };
    let threads = rayon::current_num_threads();
    train(&Architecture::df(), &tr, &va, &cfg, &mut |e| {
        println!(
            "{{\"tool\":\"hush\",\"threads\":{threads},\"epoch\":{},\"seconds\":{:.3},\"train_rows\":{},\"steps\":{steps},\"val_accuracy\":{:.4}}}",
            e.epoch, e.seconds, tr.n, e.val_accuracy
        );
    })?;
    Ok(())
}
