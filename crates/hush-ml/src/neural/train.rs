//! The training loop and prediction.

use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use burn::tensor::activation::{log_softmax, softmax};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::net::{Mode, NORM_MOMENTUM, Net, Spec};
use super::rnn::Stack;
use super::{
    Adamax, Architecture, EVAL_BATCH, EpochReport, Nadam, NeuralModel, Optimizer, SeqData,
    SeqStandardizer, TrainConfig,
};
use crate::MlError;

/// Train `arch` on `train`, choosing weights by the loss on `val`, calling `progress` after each
/// epoch.
///
/// Each epoch shuffles the training windows (seeded), steps through them in batches of
/// `cfg.batch_size` minimising cross-entropy, then measures `val`. The learning rate drops by
/// `cfg.reduce_lr.factor` after `patience` epochs without a new best validation loss; training
/// stops after `cfg.early_stopping_patience` such epochs, and the model keeps the weights of the
/// best epoch. The standardiser is fitted on `train`.
///
/// Errors: [`MlError::Empty`], [`MlError::Shape`] or [`MlError::NonFinite`] for bad data (or
/// `val` shaped unlike `train`), [`MlError::Param`] for a bad architecture or configuration.
pub fn train(
    arch: &Architecture,
    train: &SeqData,
    val: &SeqData,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<NeuralModel, MlError> {
    arch.validate()?;
    cfg.validate()?;
    train.validate()?;
    val.validate()?;
    if (val.steps, val.features, val.extra_dim, val.n_classes)
        != (
            train.steps,
            train.features,
            train.extra_dim,
            train.n_classes,
        )
    {
        return Err(MlError::Shape(format!(
            "validation windows are {}×{} with {} extra and {} classes, training windows {}×{} \
             with {} extra and {} classes",
            val.steps,
            val.features,
            val.extra_dim,
            val.n_classes,
            train.steps,
            train.features,
            train.extra_dim,
            train.n_classes
        )));
    }
    if let Architecture::Cnn2d { in_channels, .. } = arch
        && train.steps % in_channels != 0
    {
        return Err(MlError::Shape(format!(
            "{} steps do not split into {in_channels} images",
            train.steps
        )));
    }
    let spec = Spec {
        arch: arch.clone(),
        steps: train.steps,
        features: train.features,
        extra_dim: train.extra_dim,
        n_classes: train.n_classes,
    };
    let scaler = SeqStandardizer::fit(train);
    let (tx, te) = scaler.transform(train);
    let (vx, ve) = scaler.transform(val);

    let device = Device::flex().autodiff();
    let mut net = Net::init(&spec, cfg.seed, &device);
    let mut optim: ModuleOptimizer = match cfg.optimizer {
        Optimizer::Adam => AdamConfig::new().with_epsilon(1e-7).init(),
        Optimizer::Nadam => Nadam::new(0.9, 0.999, 1e-7).into(),
        Optimizer::Adamax => Adamax::new(0.9, 0.999, 1e-8).into(),
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut lr = cfg.learning_rate;
    let mut best: Option<(f32, usize, Net)> = None;
    let (mut es_wait, mut rl_best, mut rl_wait, mut cooldown) = (0, f32::INFINITY, 0, 0);
    let mut epochs_run = 0;
    let mut order: Vec<usize> = (0..train.n).collect();
    let mut steps = 0usize;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        epochs_run = epoch;
        // Fisher-Yates, seeded.
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let mut loss_sum = 0f64;
        for batch in order.chunks(cfg.batch_size) {
            steps += 1;
            let (loss, next) = step(
                &spec, net, &mut optim, lr, batch, &tx, &te, &train.y, &mut rng, &device, steps,
            );
            net = next;
            loss_sum += f64::from(loss) * batch.len() as f64;
        }
        let train_loss = (loss_sum / train.n as f64) as f32;
        let valid = net.valid();
        let probs = probabilities(&spec, &valid, &vx, &ve, val.n);
        let (val_loss, val_accuracy) = loss_and_accuracy(&probs, &val.y, spec.n_classes);
        progress(&EpochReport {
            epoch,
            train_loss,
            val_loss,
            val_accuracy,
            learning_rate: lr,
            seconds: t0.elapsed().as_secs_f64(),
        });
        if best.as_ref().is_none_or(|b| val_loss < b.0) {
            best = Some((val_loss, epoch, valid));
            es_wait = 0;
        } else {
            es_wait += 1;
        }
        // Keras' ReduceLROnPlateau, with min_delta 0.
        let r = &cfg.reduce_lr;
        if cooldown > 0 {
            cooldown -= 1;
            rl_wait = 0;
        }
        if val_loss < rl_best {
            rl_best = val_loss;
            rl_wait = 0;
        } else if cooldown == 0 {
            rl_wait += 1;
            if rl_wait >= r.patience && lr > r.min_lr && r.factor < 1.0 {
                lr = (lr * r.factor).max(r.min_lr);
                cooldown = r.cooldown;
                rl_wait = 0;
            }
        }
        if cfg.early_stopping_patience > 0 && es_wait >= cfg.early_stopping_patience {
            break;
        }
    }
    let (_, best_epoch, best_net) = best.unwrap_or_else(|| panic!("bug: no epoch ran"));
    let weights = best_net
        .into_record()
        .into_bytes()
        .map_err(|e| MlError::Format(format!("cannot record the weights: {e}")))?;
    Ok(NeuralModel {
        architecture: arch.clone(),
        steps: spec.steps,
        features: spec.features,
        extra_dim: spec.extra_dim,
        n_classes: spec.n_classes,
        standardizer: scaler,
        best_epoch,
        epochs_run,
        weights: weights.to_vec(),
    })
}

/// The rows `idx` of a row-major buffer of rows `width` wide.
fn gather(idx: &[usize], src: &[f32], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * width);
    for &i in idx {
        out.extend_from_slice(&src[i * width..(i + 1) * width]);
    }
    out
}

fn tensor2(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .unwrap_or_else(|e| panic!("bug: a float tensor does not read as f32: {e:?}"))
}

/// The inputs of one batch as the network wants them: the windows (MLP, CNNs) or the
/// recurrent stack's result, and the extra scalars.
struct Inputs {
    x: Option<Tensor<3>>,
    rec: Option<Tensor<2>>,
    extra: Option<Tensor<2>>,
}

fn inputs(
    spec: &Spec,
    stack: Option<&Stack>,
    xb: &[f32],
    eb: Vec<f32>,
    rows: usize,
    keep: bool,
    device: &Device,
) -> (Inputs, Option<super::rnn::Forward>) {
    let extra = (spec.extra_dim > 0).then(|| tensor2(eb, [rows, spec.extra_dim], device));
    match stack {
        Some(s) => {
            let (feat, fwd) = s.forward(xb, rows, spec.steps, keep);
            let mut rec = tensor2(feat, [rows, s.output()], device);
            if keep {
                rec = rec.require_grad();
            }
            let inputs = Inputs {
                x: None,
                rec: Some(rec),
                extra,
            };
            (inputs, fwd)
        }
        None => {
            let x = Tensor::<3>::from_data(
                TensorData::new(xb.to_vec(), [rows, spec.steps, spec.features]),
                device,
            );
            let inputs = Inputs {
                x: Some(x),
                rec: None,
                extra,
            };
            (inputs, None)
        }
    }
}

/// One gradient step on the windows `batch`; returns the batch's mean loss.
#[allow(clippy::too_many_arguments)]
fn step(
    spec: &Spec,
    net: Net,
    optim: &mut ModuleOptimizer,
    lr: f64,
    batch: &[usize],
    tx: &[f32],
    te: &[f32],
    y: &[u32],
    rng: &mut Xoshiro256PlusPlus,
    device: &Device,
    step_number: usize,
) -> (f32, Net) {
    let rows = batch.len();
    let xb = gather(batch, tx, spec.steps * spec.features);
    let eb = gather(batch, te, spec.extra_dim);
    let stack = net.stack(spec);
    let (inp, fwd) = inputs(spec, stack.as_ref(), &xb, eb, rows, true, device);
    let mut dropout = |shape: [usize; 2], p: f32| -> Option<Tensor<2>> {
        if p <= 0.0 {
            return None;
        }
        let keep = 1.0 - p;
        let mask = (0..shape[0] * shape[1])
            .map(|_| {
                if rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        Some(tensor2(mask, shape, device))
    };
    let rec = inp.rec.clone();
    let mut mode = Mode {
        train: true,
        dropout: &mut dropout,
        stats: Vec::new(),
    };
    let logits = net.forward(spec, inp.x, inp.rec, inp.extra, &mut mode);
    let stats = mode.stats;
    let mut onehot = vec![0f32; rows * spec.n_classes];
    for (r, &i) in batch.iter().enumerate() {
        onehot[r * spec.n_classes + y[i] as usize] = 1.0;
    }
    let onehot = tensor2(onehot, [rows, spec.n_classes], device);
    let loss = (log_softmax(logits, 1) * onehot)
        .sum()
        .neg()
        .div_scalar(rows as f64);
    let loss_value = values(loss.clone())[0];
    let mut grads = loss.backward();
    let d_rec = rec.and_then(|r| r.grad(&grads)).map(values);
    let mut gp = GradientsParams::from_module(&mut grads, &net);
    if let (Some(stack), Some(fwd), Some(d_rec)) = (stack, fwd, d_rec) {
        let plain = device.clone().without_autodiff();
        let g = stack.backward(&fwd, &xb, spec.steps, &d_rec);
        for (layer, gl) in net.rnn.iter().zip(g) {
            for (dir, gd) in layer.dirs.iter().zip(gl) {
                let gh = gd.b_ih.len();
                let d_in = gd.w_ih.len() / gh;
                let h = gd.w_hh.len() / gh;
                gp.register(dir.w_ih.id, tensor2(gd.w_ih, [d_in, gh], &plain));
                gp.register(dir.w_hh.id, tensor2(gd.w_hh, [h, gh], &plain));
                gp.register(
                    dir.b_ih.id,
                    Tensor::<1>::from_data(TensorData::new(gd.b_ih, [gh]), &plain),
                );
                gp.register(
                    dir.b_hh.id,
                    Tensor::<1>::from_data(TensorData::new(gd.b_hh, [gh]), &plain),
                );
            }
        }
    }
    let mut net = optim.step(lr, net, gp);
    // Batch normalisation's running statistics follow the batches: Keras' momentum 0.99, but the
    // plain mean of the batches so far while there are fewer than 100 (the initial 0 and 1 would
    // otherwise weigh 0.99^steps, a third after 100 steps, which a small data set never outgrows).
    let keep = NORM_MOMENTUM.min((step_number as f64 - 1.0) / step_number as f64);
    for (n, (mean, var)) in net.norm.iter_mut().zip(stats) {
        let blend = |old: &Param<Tensor<1>>, new: Tensor<1>| {
            let t = old.val().detach().mul_scalar(keep) + new.mul_scalar(1.0 - keep);
            Param::initialized(old.id, t.detach()).set_require_grad(false)
        };
        n.mean = blend(&n.mean, mean);
        n.var = blend(&n.var, var);
    }
    (loss_value, net)
}

/// Class probabilities of `n` standardised windows, in batches, without autodiff.
fn probabilities(spec: &Spec, net: &Net, x: &[f32], extra: &[f32], n: usize) -> Vec<f32> {
    let device = Device::flex();
    let stack = net.stack(spec);
    let (w, e) = (spec.steps * spec.features, spec.extra_dim);
    let mut out = Vec::with_capacity(n * spec.n_classes);
    let mut start = 0;
    while start < n {
        let rows = EVAL_BATCH.min(n - start);
        let xb = &x[start * w..(start + rows) * w];
        let eb = extra[start * e..(start + rows) * e].to_vec();
        let (inp, _) = inputs(spec, stack.as_ref(), xb, eb, rows, false, &device);
        let mut mode = Mode {
            train: false,
            dropout: &mut |_, _| None,
            stats: Vec::new(),
        };
        let logits = net.forward(spec, inp.x, inp.rec, inp.extra, &mut mode);
        out.extend(values(softmax(logits, 1)));
        start += rows;
    }
    out
}

/// Mean cross-entropy and accuracy of row-major probabilities against labels.
fn loss_and_accuracy(probs: &[f32], y: &[u32], classes: usize) -> (f32, f32) {
    let mut loss = 0f64;
    let mut right = 0usize;
    for (p, &c) in probs.chunks_exact(classes).zip(y) {
        loss -= f64::from(p[c as usize].max(1e-12)).ln();
        let mut best = 0;
        for (k, &v) in p.iter().enumerate() {
            if v > p[best] {
                best = k;
            }
        }
        right += usize::from(best == c as usize);
    }
    let n = y.len().max(1) as f64;
    ((loss / n) as f32, (right as f64 / n) as f32)
}

/// See [`NeuralModel::predict_proba`].
pub(super) fn predict_proba(model: &NeuralModel, data: &SeqData) -> Result<Vec<Vec<f32>>, MlError> {
    data.validate_inputs()?;
    if (data.steps, data.features, data.extra_dim) != (model.steps, model.features, model.extra_dim)
    {
        return Err(MlError::Shape(format!(
            "the model reads windows of {} steps × {} features with {} extra scalars, not {} × {} \
             with {}",
            model.steps, model.features, model.extra_dim, data.steps, data.features, data.extra_dim
        )));
    }
    model.architecture.validate()?;
    let spec = Spec {
        arch: model.architecture.clone(),
        steps: model.steps,
        features: model.features,
        extra_dim: model.extra_dim,
        n_classes: model.n_classes,
    };
    let s = &model.standardizer;
    if s.mean.len() != spec.features
        || s.inv_std.len() != spec.features
        || s.extra_mean.len() != spec.extra_dim
        || s.extra_inv_std.len() != spec.extra_dim
    {
        return Err(MlError::Format(
            "the model's standardiser does not match its shapes".into(),
        ));
    }
    let device = Device::flex();
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model.weights.clone()))
        .map_err(|e| MlError::Format(format!("the model's weights are damaged ({e})")))?;
    let net = Net::init(&spec, 0, &device)
        .try_load_record(record)
        .map_err(|e| MlError::Format(format!("the model's weights do not fit it ({e})")))?;
    let (x, extra) = s.transform(data);
    let probs = probabilities(&spec, &net, &x, &extra, data.n);
    Ok(probs
        .chunks_exact(spec.n_classes)
        .map(<[f32]>::to_vec)
        .collect())
}
