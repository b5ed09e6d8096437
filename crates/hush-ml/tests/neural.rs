//! Neural networks: every architecture learns a small sequence task, training is deterministic,
//! early stopping and learning-rate reduction act, models survive the model file, bad input is
//! refused. Run with `cargo test -p hush-ml --features neural`.

#![cfg(feature = "neural")]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_ml::neural::{
    Architecture, EpochReport, Optimizer, ReduceLr, SeqData, TrainConfig, train,
};
use hush_ml::{MlError, Model, ModelFile, ModelHeader};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

const STEPS: usize = 12;

/// Three classes told apart by the shape of a series over time (rising, falling, a bump in the
/// middle), on a raw scale (hundreds of bytes) with noise, plus a noise feature and a scalar.
fn task(n: usize, seed: u64) -> SeqData {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut x, mut extra, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let c = (i % 3) as u32;
        for t in 0..STEPS {
            let u = t as f32 / (STEPS - 1) as f32;
            let shape = match c {
                0 => u,
                1 => 1.0 - u,
                _ => 1.0 - 2.0 * (u - 0.5).abs(),
            };
            x.push(200.0 + 800.0 * shape + rng.random_range(-120.0..120.0));
            x.push(rng.random_range(0.0..50.0));
        }
        extra.push(rng.random_range(0.0..10.0));
        y.push(c);
    }
    SeqData {
        x,
        n,
        steps: STEPS,
        features: 2,
        extra,
        extra_dim: 1,
        y,
        n_classes: 3,
    }
}

fn quick(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        learning_rate: 1e-2,
        seed: 3,
        ..TrainConfig::default()
    }
}

fn accuracy(model: &hush_ml::neural::NeuralModel, data: &SeqData) -> f32 {
    // Every trained network passes the checks a model file's must.
    model.validate().unwrap();
    let pred = model.predict(data).unwrap();
    let right = pred.iter().zip(&data.y).filter(|(a, b)| a == b).count();
    right as f32 / data.n as f32
}

fn learns(arch: Architecture, epochs: usize) {
    let (tr, va, te) = (task(240, 1), task(90, 2), task(150, 3));
    let mut reports: Vec<EpochReport> = Vec::new();
    let model = train(&arch, &tr, &va, &quick(epochs), &mut |r| reports.push(*r)).unwrap();
    let acc = accuracy(&model, &te);
    assert_eq!(reports.len(), model.epochs_run);
    assert!(
        reports
            .iter()
            .all(|r| r.train_loss.is_finite() && r.seconds >= 0.0)
    );
    assert!(
        acc > 0.8,
        "{arch:?}: test accuracy {acc} (chance 0.33); reports {reports:?}"
    );
    let p = model.predict_proba(&te).unwrap();
    assert_eq!(p.len(), te.n);
    assert!(
        p.iter()
            .all(|r| r.len() == 3 && (r.iter().sum::<f32>() - 1.0).abs() < 1e-4)
    );
}

#[test]
fn mlp_learns() {
    learns(
        Architecture::Mlp {
            hidden: vec![32, 16],
            dropout: 0.1,
        },
        10,
    );
}

#[test]
fn cnn1d_learns() {
    learns(
        Architecture::Cnn1d {
            channels: vec![8, 8],
            kernel: 3,
            dense: 16,
            dropout: 0.1,
        },
        10,
    );
}

#[test]
fn cnn2d_learns() {
    learns(
        Architecture::Cnn2d {
            in_channels: 1,
            channels: vec![4],
            kernel: 3,
            dense: 16,
            dropout: 0.1,
        },
        10,
    );
    // The window as two images (first and second half of the steps) in two channels.
    learns(
        Architecture::Cnn2d {
            in_channels: 2,
            channels: vec![4],
            kernel: 3,
            dense: 16,
            dropout: 0.1,
        },
        10,
    );
}

#[test]
fn bilstm_learns() {
    learns(
        Architecture::BiLstm {
            hidden: 8,
            layers: 2,
            dense: 32,
            dropout: 0.2,
        },
        10,
    );
}

#[test]
fn lstm_learns() {
    learns(
        Architecture::Lstm {
            hidden: 8,
            dense: 16,
            dropout: 0.1,
        },
        10,
    );
}

#[test]
fn gru_learns_both_ways() {
    learns(
        Architecture::Gru {
            hidden: 8,
            layers: 2,
            bidirectional: true,
            dense: 16,
            dropout: 0.1,
        },
        10,
    );
    learns(
        Architecture::Gru {
            hidden: 8,
            layers: 1,
            bidirectional: false,
            dense: 0,
            dropout: 0.0,
        },
        10,
    );
}

/// Deep Fingerprinting's shape at a small size: two blocks of two convolutions with batch
/// normalisation, ELU then ReLU, strided "same" pooling and dropout; dense with batch
/// normalisation.
fn small_df() -> Architecture {
    Architecture::Df {
        filters: vec![8, 16],
        kernel: 3,
        pool: 4,
        pool_stride: 2,
        block_dropout: 0.1,
        dense: vec![32, 16],
        dense_dropout: vec![0.3, 0.2],
    }
}

#[test]
fn df_learns_with_adamax() {
    let (tr, va, te) = (task(240, 1), task(90, 2), task(150, 3));
    let cfg = TrainConfig {
        optimizer: Optimizer::Adamax,
        learning_rate: 0.002,
        ..quick(12)
    };
    let model = train(&small_df(), &tr, &va, &cfg, &mut |_| {}).unwrap();
    let acc = accuracy(&model, &te);
    assert!(acc > 0.8, "test accuracy {acc} (chance 0.33)");
    // Prediction uses the running statistics, not the batch's: a window scores the same alone
    // as among others.
    let all = model.predict_proba(&te).unwrap();
    for i in [0, 7, 100] {
        let one = model.predict_proba(&te.select(&[i])).unwrap();
        for (a, b) in one[0].iter().zip(&all[i]) {
            assert!(
                (a - b).abs() < 1e-5,
                "window {i}: {a} alone, {b} in a batch"
            );
        }
    }
}

#[test]
fn published_df_trains_on_directions() {
    // Directions of 96 packets: class 0 sends first, class 1 receives first, class 2
    // alternates; a tenth of the directions flipped at random.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let steps = 96;
    let mut make = |n: usize| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = (i % 3) as u32;
            for t in 0..steps {
                let d = match c {
                    0 => t < steps / 2,
                    1 => t >= steps / 2,
                    _ => t % 2 == 0,
                };
                let d = d != (rng.random::<f32>() < 0.1);
                x.push(if d { 1.0 } else { -1.0 });
            }
            y.push(c);
        }
        SeqData {
            x,
            n,
            steps,
            features: 1,
            extra: vec![],
            extra_dim: 0,
            y,
            n_classes: 3,
        }
    };
    let (tr, va, te) = (make(150), make(30), make(60));
    let cfg = TrainConfig {
        epochs: 6,
        batch_size: 32,
        seed: 1,
        ..TrainConfig::df()
    };
    let model = train(&Architecture::df(), &tr, &va, &cfg, &mut |_| {}).unwrap();
    let acc = accuracy(&model, &te);
    assert!(acc > 0.9, "test accuracy {acc} (chance 0.33)");
    // A file that claims DF's layers but holds a fraction of their weights is refused before a
    // network is built, as is one whose windows do not fit its standardiser.
    let mut cut = model.clone();
    cut.weights.truncate(cut.weights.len() / 8);
    let err = cut.validate().unwrap_err().to_string();
    assert!(err.contains("cannot hold a layer"), "{err}");
    let mut wide = model.clone();
    wide.features = 1 << 30;
    assert!(wide.validate().is_err());
}

#[test]
fn df_refuses_bad_shapes() {
    let (tr, va) = (task(30, 1), task(9, 2));
    let bad = |arch: Architecture| {
        matches!(
            train(&arch, &tr, &va, &quick(1), &mut |_| {}),
            Err(MlError::Param(_))
        )
    };
    let with = |f: &dyn Fn(&mut Architecture)| {
        let mut a = small_df();
        f(&mut a);
        a
    };
    assert!(bad(with(
        &|a| if let Architecture::Df { filters, .. } = a {
            filters.clear()
        }
    )));
    assert!(bad(with(
        &|a| if let Architecture::Df { pool_stride, .. } = a {
            *pool_stride = 0
        }
    )));
    assert!(bad(with(
        &|a| if let Architecture::Df { dense_dropout, .. } = a {
            dense_dropout.pop();
        }
    )));
    assert!(bad(with(
        &|a| if let Architecture::Df { block_dropout, .. } = a {
            *block_dropout = 1.0
        }
    )));
}

#[test]
fn nadam_learns() {
    let (tr, va) = (task(240, 1), task(90, 2));
    let cfg = TrainConfig {
        optimizer: Optimizer::Nadam,
        ..quick(8)
    };
    let arch = Architecture::Mlp {
        hidden: vec![16],
        dropout: 0.0,
    };
    let model = train(&arch, &tr, &va, &cfg, &mut |_| {}).unwrap();
    assert!(accuracy(&model, &task(150, 3)) > 0.8);
    // And differs from Adam.
    let adam = train(&arch, &tr, &va, &quick(8), &mut |_| {}).unwrap();
    assert_ne!(model.weights, adam.weights);
}

/// The class is in the extra scalar alone: the windows are noise.
#[test]
fn extra_scalars_reach_the_head() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let mut make = |n: usize| {
        let y: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        SeqData {
            x: (0..n * 6 * 2)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect(),
            n,
            steps: 6,
            features: 2,
            extra: y
                .iter()
                .map(|&c| 1000.0 * c as f32 + rng.random_range(0.0..300.0))
                .collect(),
            extra_dim: 1,
            y,
            n_classes: 2,
        }
    };
    let (tr, va, te) = (make(200), make(60), make(100));
    for arch in [
        Architecture::m_seq(),
        Architecture::Cnn1d {
            channels: vec![4],
            kernel: 3,
            dense: 8,
            dropout: 0.0,
        },
    ] {
        let model = train(&arch, &tr, &va, &quick(6), &mut |_| {}).unwrap();
        assert!(accuracy(&model, &te) > 0.95, "{arch:?}");
    }
}

#[test]
fn same_seed_same_weights_different_seed_different() {
    let (tr, va) = (task(120, 1), task(45, 2));
    let arch = Architecture::BiLstm {
        hidden: 4,
        layers: 2,
        dense: 8,
        dropout: 0.2,
    };
    let a = train(&arch, &tr, &va, &quick(2), &mut |_| {}).unwrap();
    let b = train(&arch, &tr, &va, &quick(2), &mut |_| {}).unwrap();
    assert_eq!(a.weights, b.weights);
    assert_eq!(a, b);
    // The thread count does not matter either.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let c = pool.install(|| train(&arch, &tr, &va, &quick(2), &mut |_| {}).unwrap());
    assert_eq!(a.weights, c.weights);
    let other = TrainConfig {
        seed: 4,
        ..quick(2)
    };
    let d = train(&arch, &tr, &va, &other, &mut |_| {}).unwrap();
    assert_ne!(a.weights, d.weights);
    // A CNN too (burn's own kernels, dropout masks).
    let cnn = Architecture::Cnn1d {
        channels: vec![4],
        kernel: 3,
        dense: 8,
        dropout: 0.3,
    };
    let e = train(&cnn, &tr, &va, &quick(2), &mut |_| {}).unwrap();
    let f = train(&cnn, &tr, &va, &quick(2), &mut |_| {}).unwrap();
    assert_eq!(e.weights, f.weights);
    // DF: batch normalisation's running statistics are part of the bytes.
    let g = train(&small_df(), &tr, &va, &quick(2), &mut |_| {}).unwrap();
    let h = pool.install(|| train(&small_df(), &tr, &va, &quick(2), &mut |_| {}).unwrap());
    assert_eq!(g.weights, h.weights);
}

/// Labels that have nothing to do with the windows: the validation loss stops improving, so
/// training stops `patience` epochs after its best one and keeps that epoch's weights; the
/// learning rate is cut on the way.
#[test]
fn early_stopping_and_lr_reduction_on_a_hopeless_task() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut noise = |n: usize| {
        let mut d = task(n, rng.random());
        d.y = (0..n).map(|_| rng.random_range(0..3)).collect();
        d
    };
    let (tr, va) = (noise(150), noise(60));
    let cfg = TrainConfig {
        epochs: 60,
        early_stopping_patience: 3,
        reduce_lr: ReduceLr {
            factor: 0.5,
            patience: 1,
            min_lr: 1e-4,
            cooldown: 0,
        },
        ..quick(60)
    };
    let arch = Architecture::Mlp {
        hidden: vec![32],
        dropout: 0.0,
    };
    let mut reports = Vec::new();
    let model = train(&arch, &tr, &va, &cfg, &mut |r| reports.push(*r)).unwrap();
    assert!(model.epochs_run < 60, "ran all {} epochs", model.epochs_run);
    assert_eq!(model.epochs_run, model.best_epoch + 3);
    let best = reports
        .iter()
        .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))
        .unwrap();
    assert_eq!(best.epoch, model.best_epoch);
    assert!(reports.last().unwrap().learning_rate < cfg.learning_rate);
    assert!(reports.iter().all(|r| r.learning_rate >= 1e-4));
    // The kept weights are the best epoch's: predicting gives that epoch's validation loss.
    let p = model.predict_proba(&va).unwrap();
    let loss: f32 = -p
        .iter()
        .zip(&va.y)
        .map(|(r, &c)| r[c as usize].ln())
        .sum::<f32>()
        / va.n as f32;
    assert!(
        (loss - best.val_loss).abs() < 1e-4,
        "{loss} vs {}",
        best.val_loss
    );
}

#[test]
fn model_file_round_trip_predicts_the_same() {
    let (tr, va, te) = (task(120, 1), task(45, 2), task(30, 3));
    for arch in [
        Architecture::m_seq(),
        Architecture::Cnn2d {
            in_channels: 1,
            channels: vec![2, 2],
            kernel: 2,
            dense: 4,
            dropout: 0.0,
        },
        small_df(),
    ] {
        let model = train(&arch, &tr, &va, &quick(1), &mut |_| {}).unwrap();
        let file = ModelFile {
            header: ModelHeader {
                format: hush_ml::model::FORMAT.into(),
                version: hush_ml::model::VERSION,
                feature_set: "ipet-seq".into(),
                feature_names: vec!["size".into(), "gap".into()],
                classes: vec!["a".into(), "b".into(), "c".into()],
                trained_on: "test".into(),
            },
            model: Model::Neural(model.clone()),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        file.save(&path).unwrap();
        let back = ModelFile::load(&path, Some("ipet-seq")).unwrap();
        assert_eq!(back, file);
        let Model::Neural(loaded) = &back.model else {
            panic!("not a neural model")
        };
        assert_eq!(
            loaded.predict_proba(&te).unwrap(),
            model.predict_proba(&te).unwrap()
        );
        assert_eq!(file.to_bytes().unwrap(), back.to_bytes().unwrap());
    }
}

#[test]
fn bad_input_is_refused() {
    let (tr, va) = (task(60, 1), task(30, 2));
    let arch = Architecture::Lstm {
        hidden: 4,
        dense: 4,
        dropout: 0.0,
    };
    let cfg = quick(1);
    let run = |t: &SeqData, v: &SeqData| train(&arch, t, v, &cfg, &mut |_| {});

    let mut nan = tr.clone();
    nan.x[10 * 2 * STEPS + 3] = f32::NAN;
    match run(&nan, &va) {
        Err(MlError::NonFinite { row, .. }) => assert_eq!(row, 10),
        other => panic!("{other:?}"),
    }
    let mut inf = tr.clone();
    inf.extra[7] = f32::INFINITY;
    assert!(matches!(
        run(&inf, &va),
        Err(MlError::NonFinite { row: 7, .. })
    ));

    let empty = SeqData {
        x: vec![],
        n: 0,
        extra: vec![],
        y: vec![],
        ..tr.clone()
    };
    assert_eq!(run(&empty, &va).unwrap_err(), MlError::Empty);

    let mut short = tr.clone();
    short.x.pop();
    assert!(matches!(run(&short, &va), Err(MlError::Shape(_))));
    let mut labels = tr.clone();
    labels.y[0] = 3;
    assert!(matches!(run(&labels, &va), Err(MlError::Shape(_))));
    let mut other_val = va.clone();
    other_val.extra_dim = 0;
    other_val.extra.clear();
    assert!(matches!(run(&tr, &other_val), Err(MlError::Shape(_))));
    let zero = Architecture::Lstm {
        hidden: 0,
        dense: 4,
        dropout: 0.0,
    };
    assert!(matches!(
        train(&zero, &tr, &va, &cfg, &mut |_| {}),
        Err(MlError::Param(_))
    ));
    let no_epochs = TrainConfig { epochs: 0, ..cfg };
    assert!(matches!(
        train(&arch, &tr, &va, &no_epochs, &mut |_| {}),
        Err(MlError::Param(_))
    ));

    let model = run(&tr, &va).unwrap();
    // Predicting needs no labels.
    let unlabelled = SeqData {
        y: vec![],
        ..va.clone()
    };
    assert_eq!(model.predict(&unlabelled).unwrap().len(), va.n);
    // Windows of another shape.
    let longer = va.select(&[0, 1]);
    let longer = SeqData {
        x: longer.x.iter().chain(&longer.x).copied().collect(),
        steps: 2 * STEPS,
        ..longer
    };
    assert!(matches!(
        model.predict_proba(&longer),
        Err(MlError::Shape(_))
    ));
    let mut nan = va.clone();
    nan.x[0] = f32::NAN;
    assert!(matches!(
        model.predict_proba(&nan),
        Err(MlError::NonFinite { row: 0, .. })
    ));
    // Damaged weights.
    let mut broken = model.clone();
    broken.weights.truncate(broken.weights.len() / 2);
    assert!(matches!(broken.predict_proba(&va), Err(MlError::Format(_))));
    let mut wrong = model.clone();
    wrong.architecture = Architecture::Lstm {
        hidden: 5,
        dense: 4,
        dropout: 0.0,
    };
    assert!(matches!(wrong.predict_proba(&va), Err(MlError::Format(_))));
}

#[test]
fn select_takes_windows_extras_and_labels() {
    let d = task(9, 1);
    let s = d.select(&[4, 0]);
    assert_eq!(s.n, 2);
    assert_eq!(s.window(0), d.window(4));
    assert_eq!(s.window(1), d.window(0));
    assert_eq!(s.extra, vec![d.extra[4], d.extra[0]]);
    assert_eq!(s.y, vec![d.y[4], d.y[0]]);
    s.validate().unwrap();
}
