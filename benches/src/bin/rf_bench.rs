//! Random forest fit + predict on a feature CSV from `hush attack features`, the hush side of
//! bench/rf_speed.sh: train on every fold but `--test-fold`, test on it, `--repeat` times.
//! Prints one JSON line: fit and predict seconds (median), accuracy.

use std::io::BufRead;
use std::time::Instant;

use hush_ml::{Dataset, ForestParams, Matrix, RandomForest};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or_else(|| {
        anyhow::anyhow!("usage: rf_bench FEATURES.csv [repeat] [test_fold] [trees]")
    })?;
    let repeat: usize = args.get(2).map_or(Ok(10), |s| s.parse())?;
    let test_fold: String = args.get(3).cloned().unwrap_or_else(|| "0".into());
    let trees: usize = args.get(4).map_or(Ok(100), |s| s.parse())?;
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut lines = file.lines();
    let header = lines.next().ok_or_else(|| anyhow::anyhow!("empty CSV"))??;
    let cols: Vec<&str> = header.split(',').collect();
    let nf = cols.len() - 3;
    let mut classes: Vec<String> = Vec::new();
    let (mut tr, mut te) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for line in lines {
        let line = line?;
        let f: Vec<&str> = line.split(',').collect();
        let x: Vec<f32> = f[..nf]
            .iter()
            .map(|v| v.parse())
            .collect::<Result<_, _>>()?;
        let label = f[nf].to_string();
        let c = match classes.iter().position(|l| *l == label) {
            Some(c) => c,
            None => {
                classes.push(label);
                classes.len() - 1
            }
        } as u32;
        let side = if f[nf + 2] == test_fold {
            &mut te
        } else {
            &mut tr
        };
        side.0.push(x);
        side.1.push(c);
    }
    let names: Vec<String> = cols[..nf].iter().map(|s| s.to_string()).collect();
    let mk = |rows: &[Vec<f32>], y: &[u32]| -> anyhow::Result<Dataset> {
        Ok(Dataset {
            x: Matrix::from_rows(rows)?,
            y: y.to_vec(),
            classes: classes.clone(),
            groups: (0..y.len() as u32).collect(),
            feature_names: names.clone(),
        })
    };
    let (train, test) = (mk(&tr.0, &tr.1)?, mk(&te.0, &te.1)?);
    let params = ForestParams {
        n_trees: trees,
        seed: 0,
        ..ForestParams::default()
    };
    let (mut fit_s, mut pred_s, mut acc) = (Vec::new(), Vec::new(), 0.0);
    for r in 0..repeat {
        let t = Instant::now();
        let f = RandomForest::fit(
            &train,
            &ForestParams {
                seed: r as u64,
                ..params.clone()
            },
        )?;
        fit_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let p = f.predict(&test.x)?;
        pred_s.push(t.elapsed().as_secs_f64());
        acc += p.iter().zip(&test.y).filter(|(a, b)| a == b).count() as f64 / test.y.len() as f64;
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{{\"tool\":\"hush\",\"threads\":{},\"train_rows\":{},\"test_rows\":{},\"features\":{nf},\"trees\":{trees},\"fit_s\":{:.6},\"predict_s\":{:.6},\"accuracy\":{:.4}}}",
        rayon::current_num_threads(),
        train.x.rows(),
        test.x.rows(),
        med(&mut fit_s),
        med(&mut pred_s),
        acc / repeat as f64
    );
    Ok(())
}
