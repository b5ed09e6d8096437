//! Train iPET's M_seq (BiLSTM(8) → BiLSTM(8) → Dense(128, tanh) → Dropout(0.2)) on synthetic
//! windows and print each epoch: `cargo run --release -p hush-ml --features neural --example
//! bilstm`.

use hush_ml::neural::{Architecture, SeqData, TrainConfig, train};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// `n` windows of 40 packets (size, direction, gap, burst) from `classes` device types, each
/// with its own typical packet size and rhythm, plus the window's packet count.
fn windows(n: usize, classes: usize, seed: u64) -> SeqData {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let steps = 40;
    let (mut x, mut extra, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % classes;
        let size = 80.0 + 40.0 * c as f32;
        let period = 2 + c % 5;
        for t in 0..steps {
            let burst = (t % period == 0) as u8 as f32;
            x.push(size * (1.0 + burst) + rng.random_range(-60.0..60.0));
            x.push(if rng.random::<f32>() < 0.5 { 1.0 } else { -1.0 });
            x.push(rng.random_range(0.0..0.2) + 0.05 * (c % 3) as f32);
            x.push(burst);
        }
        extra.push(30.0 + rng.random_range(0.0..10.0) + c as f32);
        y.push(c as u32);
    }
    SeqData {
        x,
        n,
        steps,
        features: 4,
        extra,
        extra_dim: 1,
        y,
        n_classes: classes,
    }
}

fn main() -> Result<(), hush_ml::MlError> {
    let (tr, va, te) = (
        windows(3000, 10, 1),
        windows(600, 10, 2),
        windows(600, 10, 3),
    );
    let cfg = TrainConfig {
        epochs: 15,
        ..TrainConfig::default()
    };
    let model = train(&Architecture::m_seq(), &tr, &va, &cfg, &mut |r| {
        println!(
            "epoch {:>3}  train loss {:.4}  val loss {:.4}  val acc {:.3}  lr {:.1e}  {:.2} s",
            r.epoch, r.train_loss, r.val_loss, r.val_accuracy, r.learning_rate, r.seconds
        );
    })?;
    let pred = model.predict(&te)?;
    let right = pred.iter().zip(&te.y).filter(|(a, b)| a == b).count();
    println!(
        "best epoch {} of {}; test accuracy {:.3}; weights {} bytes",
        model.best_epoch,
        model.epochs_run,
        right as f64 / te.n as f64,
        model.weights.len()
    );
    Ok(())
}
