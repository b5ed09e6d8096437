//! The networks as burn modules: parameters, seeded initialisation and the forward pass.
//!
//! Every parameter is created from hush's own seeded RNG (not burn's, whose seed is global to
//! the process and so shared by tests running in parallel) and gets a parameter id from its
//! position, so the same seed gives the same weights and the same record bytes.

use burn::module::{Module, Param, ParamId};
use burn::prelude::*;
use burn::tensor::activation::{elu, relu};
use burn::tensor::module::{
    batch_norm, batch_norm_train, conv1d, conv2d, linear, max_pool1d, max_pool2d,
};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::Architecture;
use super::rnn::{Cell, DirParams, Stack};

/// The shapes a network is built for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spec {
    pub arch: Architecture,
    pub steps: usize,
    pub features: usize,
    pub extra_dim: usize,
    pub n_classes: usize,
}

impl Spec {
    /// The recurrent cell, direction count, layer count and hidden size, for the recurrent
    /// architectures.
    pub(crate) fn recurrent(&self) -> Option<(Cell, usize, usize, usize)> {
        match self.arch {
            Architecture::BiLstm { hidden, layers, .. } => Some((Cell::Lstm, 2, layers, hidden)),
            Architecture::Lstm { hidden, .. } => Some((Cell::Lstm, 1, 1, hidden)),
            Architecture::Gru {
                hidden,
                layers,
                bidirectional,
                ..
            } => Some((Cell::Gru, 1 + usize::from(bidirectional), layers, hidden)),
            _ => None,
        }
    }

    /// Sizes after each convolution block (channels, then length or height × width).
    fn conv_out(&self) -> usize {
        match &self.arch {
            Architecture::Cnn1d { channels, .. } => {
                let mut len = self.steps;
                for _ in channels {
                    len = pooled(len);
                }
                channels
                    .last()
                    .map_or(self.features * self.steps, |c| c * len)
            }
            Architecture::Df {
                filters,
                pool_stride,
                ..
            } => {
                let mut len = self.steps;
                for _ in filters {
                    len = len.div_ceil(*pool_stride);
                }
                filters
                    .last()
                    .map_or(self.features * self.steps, |c| c * len)
            }
            Architecture::Cnn2d {
                channels,
                in_channels,
                ..
            } => {
                let (mut hgt, mut wid) = (self.steps / in_channels.max(&1), self.features);
                for _ in channels {
                    hgt = pooled(hgt);
                    wid = pooled(wid);
                }
                channels
                    .last()
                    .map_or(self.steps * self.features, |c| c * hgt * wid)
            }
            _ => 0,
        }
    }
}

/// A length after 2-wide max pooling (none when it is already 1).
fn pooled(len: usize) -> usize {
    if len >= 2 { len / 2 } else { len }
}

/// A fully connected layer: `x · w + b`, `w` is `in × out`.
#[derive(Module, Debug)]
pub(crate) struct Dense {
    pub w: Param<Tensor<2>>,
    pub b: Param<Tensor<1>>,
}

/// A 1-D convolution: `w` is `out × in × kernel`.
#[derive(Module, Debug)]
pub(crate) struct Conv1 {
    pub w: Param<Tensor<3>>,
    pub b: Param<Tensor<1>>,
}

/// Batch normalisation of `n` channels: scale and shift (learnt), and the running mean and
/// variance used when predicting (updated after each training step, not learnt).
#[derive(Module, Debug)]
pub(crate) struct Norm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub mean: Param<Tensor<1>>,
    pub var: Param<Tensor<1>>,
}

/// Batch normalisation's ε (Keras' default, which DF used).
pub(crate) const NORM_EPSILON: f64 = 1e-3;
/// Weight of the running statistics' past (Keras' momentum 0.99).
pub(crate) const NORM_MOMENTUM: f64 = 0.99;

/// What the forward pass needs to know about training.
pub(crate) struct Mode<'a> {
    /// Batch statistics (training) or running ones (prediction) in batch normalisation.
    pub train: bool,
    /// A dropout mask (values 0 or 1/(1−p)) for a shape and rate `p`, `None` for no dropout.
    pub dropout: &'a mut dyn FnMut([usize; 2], f32) -> Option<Tensor<2>>,
    /// Each batch normalisation's batch mean and variance, in layer order (training only).
    pub stats: Vec<(Tensor<1>, Tensor<1>)>,
}

impl Mode<'_> {
    fn drop(&mut self, h: Tensor<2>, p: f32) -> Tensor<2> {
        if p <= 0.0 {
            return h;
        }
        match (self.dropout)(h.dims(), p) {
            Some(mask) => h * mask,
            None => h,
        }
    }

    fn drop3(&mut self, h: Tensor<3>, p: f32) -> Tensor<3> {
        let [b, c, l] = h.dims();
        self.drop(h.reshape([b, c * l]), p).reshape([b, c, l])
    }

    fn norm<const D: usize>(&mut self, h: Tensor<D>, n: &Norm) -> Tensor<D> {
        if self.train {
            let r = batch_norm_train(h, n.gamma.val(), n.beta.val(), NORM_EPSILON);
            self.stats.push((r.mean.detach(), r.variance.detach()));
            r.output
        } else {
            batch_norm(
                h,
                n.gamma.val(),
                n.beta.val(),
                n.mean.val(),
                n.var.val(),
                NORM_EPSILON,
            )
        }
    }
}

/// Max pooling with Keras' "same" padding: `ceil(len / stride)` outputs, the padding (never
/// chosen: it is −∞) split with the extra one at the end.
fn same_pool(len: usize, pool: usize, stride: usize) -> MaxPoolOptions<1> {
    let out = len.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + pool).saturating_sub(len);
    MaxPoolOptions::new([pool])
        .with_stride([stride])
        .with_padding_pairs([(total / 2, total - total / 2)])
}

/// A 2-D convolution: `w` is `out × in × kernel × kernel`.
#[derive(Module, Debug)]
pub(crate) struct Conv2 {
    pub w: Param<Tensor<4>>,
    pub b: Param<Tensor<1>>,
}

/// One direction of a recurrent layer (layout in [`super::rnn`]).
#[derive(Module, Debug)]
pub(crate) struct RecDir {
    pub w_ih: Param<Tensor<2>>,
    pub w_hh: Param<Tensor<2>>,
    pub b_ih: Param<Tensor<1>>,
    pub b_hh: Param<Tensor<1>>,
}

/// One recurrent layer: one or two directions.
#[derive(Module, Debug)]
pub(crate) struct RecLayer {
    pub dirs: Vec<RecDir>,
}

/// Every architecture's parameters; the ones an architecture does not use are empty.
#[derive(Module, Debug)]
pub(crate) struct Net {
    pub mlp: Vec<Dense>,
    pub conv1: Vec<Conv1>,
    pub conv2: Vec<Conv2>,
    pub rnn: Vec<RecLayer>,
    /// Batch normalisations, in layer order (DF).
    pub norm: Vec<Norm>,
    /// The dense layer of the head (none when `dense` is 0).
    pub dense: Vec<Dense>,
    pub out: Dense,
}

/// Makes parameters: values from the seeded RNG, ids in creation order.
struct Maker<'a> {
    rng: Xoshiro256PlusPlus,
    next_id: u64,
    device: &'a Device,
}

impl Maker<'_> {
    fn param<const D: usize>(&mut self, values: Vec<f32>, shape: [usize; D]) -> Param<Tensor<D>> {
        let t = Tensor::<D>::from_data(TensorData::new(values, shape), self.device);
        let mut p = Param::from_tensor(t);
        p.id = ParamId::from(self.next_id);
        self.next_id += 1;
        p
    }

    /// Glorot (Xavier) uniform, Keras' default kernel initialiser.
    fn glorot(&mut self, n: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
        let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
        (0..n)
            .map(|_| self.rng.random_range(-limit..=limit))
            .collect()
    }

    /// A `rows × cols` matrix with orthonormal rows (rows ≤ cols) or columns, Keras' recurrent
    /// initialiser: Gram-Schmidt on Gaussian vectors.
    fn orthogonal(&mut self, rows: usize, cols: usize) -> Vec<f32> {
        let (k, d) = (rows.min(cols), rows.max(cols));
        let mut vs: Vec<Vec<f64>> = Vec::with_capacity(k);
        while vs.len() < k {
            let mut v: Vec<f64> = (0..d)
                .map(|_| {
                    // Box-Muller from two uniforms.
                    let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
                    let u2: f64 = self.rng.random_range(0.0..1.0);
                    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
                })
                .collect();
            for u in &vs {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                for (a, b) in v.iter_mut().zip(u) {
                    *a -= dot * b;
                }
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm > 1e-6 {
                v.iter_mut().for_each(|a| *a /= norm);
                vs.push(v);
            }
        }
        let mut m = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                m[i * cols + j] = if rows <= cols { vs[i][j] } else { vs[j][i] } as f32;
            }
        }
        m
    }

    /// Batch normalisation of `n` channels: γ 1, β 0, running mean 0 and variance 1.
    fn norm(&mut self, n: usize) -> Norm {
        Norm {
            gamma: self.param(vec![1.0; n], [n]),
            beta: self.param(vec![0.0; n], [n]),
            mean: self.param(vec![0.0; n], [n]).set_require_grad(false),
            var: self.param(vec![1.0; n], [n]).set_require_grad(false),
        }
    }

    fn dense(&mut self, d_in: usize, d_out: usize) -> Dense {
        let w = self.glorot(d_in * d_out, d_in, d_out);
        Dense {
            w: self.param(w, [d_in, d_out]),
            b: self.param(vec![0.0; d_out], [d_out]),
        }
    }
}

impl Net {
    /// A network for `spec`, its weights drawn from `seed`, on `device`.
    pub(crate) fn init(spec: &Spec, seed: u64, device: &Device) -> Net {
        let mut mk = Maker {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x6e65_7572_616c),
            next_id: 1,
            device,
        };
        let (mut mlp, mut conv1, mut conv2, mut rnn, mut dense) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut norm = Vec::new();
        let (steps, features, extra) = (spec.steps, spec.features, spec.extra_dim);
        let head_in = match &spec.arch {
            Architecture::Mlp { hidden, .. } => {
                let mut d = steps * features + extra;
                for &hd in hidden {
                    mlp.push(mk.dense(d, hd));
                    d = hd;
                }
                d
            }
            Architecture::Cnn1d {
                channels, kernel, ..
            } => {
                let mut c_in = features;
                for &c in channels {
                    let w = mk.glorot(c * c_in * kernel, c_in * kernel, c * kernel);
                    conv1.push(Conv1 {
                        w: mk.param(w, [c, c_in, *kernel]),
                        b: mk.param(vec![0.0; c], [c]),
                    });
                    c_in = c;
                }
                spec.conv_out() + extra
            }
            Architecture::Df {
                filters,
                kernel,
                dense: widths,
                ..
            } => {
                let mut c_in = features;
                for &f in filters {
                    for _ in 0..2 {
                        let w = mk.glorot(f * c_in * kernel, c_in * kernel, f * kernel);
                        conv1.push(Conv1 {
                            w: mk.param(w, [f, c_in, *kernel]),
                            b: mk.param(vec![0.0; f], [f]),
                        });
                        norm.push(mk.norm(f));
                        c_in = f;
                    }
                }
                let mut d = spec.conv_out() + extra;
                for &w in widths {
                    mlp.push(mk.dense(d, w));
                    norm.push(mk.norm(w));
                    d = w;
                }
                d
            }
            Architecture::Cnn2d {
                channels,
                kernel,
                in_channels,
                ..
            } => {
                let mut c_in = *in_channels;
                let k2 = kernel * kernel;
                for &c in channels {
                    let w = mk.glorot(c * c_in * k2, c_in * k2, c * k2);
                    conv2.push(Conv2 {
                        w: mk.param(w, [c, c_in, *kernel, *kernel]),
                        b: mk.param(vec![0.0; c], [c]),
                    });
                    c_in = c;
                }
                spec.conv_out() + extra
            }
            Architecture::BiLstm { .. } | Architecture::Lstm { .. } | Architecture::Gru { .. } => {
                let (cell, dirs, layers, h) = spec.recurrent().unwrap_or((Cell::Lstm, 1, 1, 1));
                let gh = cell.gates() * h;
                for l in 0..layers {
                    let d_in = if l == 0 { features } else { dirs * h };
                    let mut ds = Vec::with_capacity(dirs);
                    for _ in 0..dirs {
                        let w_ih = mk.glorot(d_in * gh, d_in, gh);
                        let w_hh = mk.orthogonal(h, gh);
                        let mut b_ih = vec![0f32; gh];
                        if cell == Cell::Lstm {
                            // Keras' unit_forget_bias: start by remembering.
                            b_ih[h..2 * h].fill(1.0);
                        }
                        ds.push(RecDir {
                            w_ih: mk.param(w_ih, [d_in, gh]),
                            w_hh: mk.param(w_hh, [h, gh]),
                            b_ih: mk.param(b_ih, [gh]),
                            b_hh: mk.param(vec![0.0; gh], [gh]),
                        });
                    }
                    rnn.push(RecLayer { dirs: ds });
                }
                dirs * h + extra
            }
        };
        let d = match spec.arch.dense() {
            0 => head_in,
            hd => {
                dense.push(mk.dense(head_in, hd));
                hd
            }
        };
        let out = mk.dense(d, spec.n_classes);
        Net {
            mlp,
            conv1,
            conv2,
            rnn,
            norm,
            dense,
            out,
        }
    }

    /// The recurrent stack's current weights, as plain buffers.
    pub(crate) fn stack(&self, spec: &Spec) -> Option<Stack> {
        let (cell, dirs, _, hidden) = spec.recurrent()?;
        let read1 = |p: &Param<Tensor<1>>| {
            p.val()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default()
        };
        let read2 = |p: &Param<Tensor<2>>| {
            p.val()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default()
        };
        let layers = self
            .rnn
            .iter()
            .map(|l| {
                l.dirs
                    .iter()
                    .map(|d| DirParams {
                        w_ih: read2(&d.w_ih),
                        w_hh: read2(&d.w_hh),
                        b_ih: read1(&d.b_ih),
                        b_hh: read1(&d.b_hh),
                    })
                    .collect()
            })
            .collect();
        Some(Stack {
            cell,
            input: spec.features,
            hidden,
            dirs,
            layers,
        })
    }

    /// Class scores (logits) for a batch.
    ///
    /// `x` is the batch's standardised windows (`B × steps × features`) for the MLP and CNNs;
    /// `rec` the recurrent stack's result (`B × dirs·hidden`) for the recurrent ones; `extra`
    /// the standardised scalars. `mode` says whether the network trains (dropout masks, batch
    /// statistics, which it collects) or predicts.
    pub(crate) fn forward(
        &self,
        spec: &Spec,
        x: Option<Tensor<3>>,
        rec: Option<Tensor<2>>,
        extra: Option<Tensor<2>>,
        mode: &mut Mode<'_>,
    ) -> Tensor<2> {
        let with_extra = |h: Tensor<2>| match &extra {
            Some(e) => Tensor::cat(vec![h, e.clone()], 1),
            None => h,
        };
        let p = spec.arch.dropout();
        let head_tanh = matches!(
            spec.arch,
            Architecture::BiLstm { .. } | Architecture::Lstm { .. } | Architecture::Gru { .. }
        );
        let feats = match &spec.arch {
            Architecture::Mlp { .. } => {
                let x = x.unwrap_or_else(|| panic!("bug: the MLP needs its input"));
                let [b, t, f] = x.dims();
                let mut h = with_extra(x.reshape([b, t * f]));
                for l in &self.mlp {
                    h = mode.drop(relu(linear(h, l.w.val(), Some(l.b.val()))), p);
                }
                h
            }
            Architecture::Df {
                kernel,
                pool,
                pool_stride,
                block_dropout,
                dense_dropout,
                ..
            } => {
                let x = x.unwrap_or_else(|| panic!("bug: DF needs its input"));
                let mut h = x.swap_dims(1, 2);
                let opts =
                    ConvOptions::new_with_padding([1], [((kernel - 1) / 2, kernel / 2)], [1], 1);
                let mut norms = self.norm.iter();
                let mut next_norm = || {
                    norms
                        .next()
                        .unwrap_or_else(|| panic!("bug: DF has fewer normalisations than layers"))
                };
                for (block, pair) in self.conv1.chunks(2).enumerate() {
                    for c in pair {
                        h = conv1d(h, c.w.val(), Some(c.b.val()), opts.clone());
                        h = mode.norm(h, next_norm());
                        h = if block == 0 { elu(h, 1.0) } else { relu(h) };
                    }
                    let len = h.dims()[2];
                    h = max_pool1d(h, same_pool(len, *pool, *pool_stride));
                    h = mode.drop3(h, *block_dropout);
                }
                let [b, c, l] = h.dims();
                let mut h = with_extra(h.reshape([b, c * l]));
                for (layer, &q) in self.mlp.iter().zip(dense_dropout) {
                    h = linear(h, layer.w.val(), Some(layer.b.val()));
                    h = relu(mode.norm(h, next_norm()));
                    h = mode.drop(h, q);
                }
                h
            }
            Architecture::Cnn1d { kernel, .. } => {
                let x = x.unwrap_or_else(|| panic!("bug: the CNN needs its input"));
                let mut h = x.swap_dims(1, 2);
                let opts =
                    ConvOptions::new_with_padding([1], [((kernel - 1) / 2, kernel / 2)], [1], 1);
                for c in &self.conv1 {
                    h = relu(conv1d(h, c.w.val(), Some(c.b.val()), opts.clone()));
                    if h.dims()[2] >= 2 {
                        h = max_pool1d(h, MaxPoolOptions::new([2]));
                    }
                }
                let [b, c, l] = h.dims();
                with_extra(h.reshape([b, c * l]))
            }
            Architecture::Cnn2d {
                kernel,
                in_channels,
                ..
            } => {
                let x = x.unwrap_or_else(|| panic!("bug: the CNN needs its input"));
                let [b, t, f] = x.dims();
                let mut h = x.reshape([b, *in_channels, t / in_channels, f]);
                let pad = ((kernel - 1) / 2, kernel / 2);
                let opts = ConvOptions::new_with_padding([1, 1], [pad, pad], [1, 1], 1);
                for c in &self.conv2 {
                    h = relu(conv2d(h, c.w.val(), Some(c.b.val()), opts.clone()));
                    let [_, _, hh, ww] = h.dims();
                    let k = [if hh >= 2 { 2 } else { 1 }, if ww >= 2 { 2 } else { 1 }];
                    if k != [1, 1] {
                        h = max_pool2d(h, MaxPoolOptions::new(k));
                    }
                }
                let [b, c, hh, ww] = h.dims();
                with_extra(h.reshape([b, c * hh * ww]))
            }
            _ => with_extra(rec.unwrap_or_else(|| panic!("bug: no recurrent features"))),
        };
        let mut h = feats;
        for l in &self.dense {
            let z = linear(h, l.w.val(), Some(l.b.val()));
            h = if head_tanh { z.tanh() } else { relu(z) };
        }
        if !matches!(
            spec.arch,
            Architecture::Mlp { .. } | Architecture::Df { .. }
        ) {
            h = mode.drop(h, p);
        }
        linear(h, self.out.w.val(), Some(self.out.b.val()))
    }
}
