//! Training epochs on synthetic windows, the hush side of bench/lstm_speed.sh: iPET's M_seq
//! (BiLSTM(8) returning sequences → BiLSTM(8) → concat one extra scalar → Dense(128, tanh) →
//! Dropout(0.2) → classes), or with `ARCH=packet-lstm` hush's packet-metadata attack (LSTM(64) →
//! Dense(64, tanh) → Dropout(0.2) → classes, no extra scalar). Adam, lr 1e-3, batch 128, 256
//! validation windows per epoch. Threads: `RAYON_NUM_THREADS` (burn's Flex backend is built
//! without its rayon feature).
//!
//! usage: `[ARCH=m-seq|packet-lstm] lstm_bench [windows] [steps] [features] [classes] [epochs]`
//! Prints one JSON line per epoch.

use hush_ml::neural::{Architecture, SeqData, TrainConfig, train};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn data(
    n: usize,
    steps: usize,
    features: usize,
    classes: usize,
    extra_dim: usize,
    seed: u64,
) -> SeqData {
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
        extra: (0..n * extra_dim)
            .map(|_| rng.random_range(-1.7f32..1.7))
            .collect(),
        extra_dim,
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
    let arch_name = std::env::var("ARCH").unwrap_or_else(|_| "m-seq".into());
    let (arch, extra_dim) = match arch_name.as_str() {
        "m-seq" => (Architecture::m_seq(), 1),
        // As hush-attack's packet-lstm builds it.
        "packet-lstm" => (
            Architecture::Lstm {
                hidden: 64,
                dense: 64,
                dropout: 0.2,
            },
            0,
        ),
        other => anyhow::bail!("ARCH: unknown architecture {other:?} (m-seq or packet-lstm)"),
    };
    let (tr, va) = (
        data(n, steps, features, classes, extra_dim, 1),
        data(256, steps, features, classes, extra_dim, 2),
    );
    let cfg = TrainConfig {
        epochs,
        early_stopping_patience: 0,
        ..TrainConfig::default()
    };
    train(&arch, &tr, &va, &cfg, &mut |r| {
        println!(
            "{}",
            serde_json::json!({
                "tool": "hush",
                "arch": arch_name,
                "threads": threads,
                "epoch": r.epoch,
                "seconds": r.seconds,
                "train_loss": r.train_loss,
            })
        );
    })?;
    Ok(())
}
