//! Training epochs of iPET's M_seq (BiLSTM(8) returning sequences → BiLSTM(8) → concat one
//! extra scalar → Dense(128, tanh) → Dropout(0.2) → classes) on synthetic windows, the hush side
//! of bench/lstm_speed.sh. Adam, lr 1e-3, batch 128, 256 validation windows per epoch.
//! Threads: `RAYON_NUM_THREADS` (burn's Flex backend is built without its rayon feature).
//!
//! usage: lstm_bench [windows] [steps] [features] [classes] [epochs]
//! Prints one JSON line per epoch.

use hush_ml::neural::{Architecture, SeqData, TrainConfig, train};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn data(n: usize, steps: usize, features: usize, classes: usize, seed: u64) -> SeqData {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let y: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let mut x = Vec::with_capacity(n * steps * features);
    for &c in &y {
        for _ in 0..steps * features {
            x.push(rng.random_range(-1.7f32..1.7) + c as f32 / classes as f32);
        }
    }
    SeqData {
        x,
        n,
        steps,
        features,
        extra: (0..n).map(|_| rng.random_range(-1.7f32..1.7)).collect(),
        extra_dim: 1,
        y,
        n_classes: classes,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (n, steps, features, classes, epochs) =
        (arg(0, 20_000), arg(1, 40), arg(2, 4), arg(3, 30), arg(4, 3));
    let threads = rayon::current_num_threads();
    let (tr, va) = (
        data(n, steps, features, classes, 1),
        data(256, steps, features, classes, 2),
    );
    let cfg = TrainConfig {
        epochs,
        early_stopping_patience: 0,
        ..TrainConfig::default()
    };
    train(&Architecture::m_seq(), &tr, &va, &cfg, &mut |r| {
        println!(
            "{}",
            serde_json::json!({
                "tool": "hush",
                "threads": threads,
                "epoch": r.epoch,
                "seconds": r.seconds,
                "train_loss": r.train_loss,
            })
        );
    })?;
    Ok(())
}
