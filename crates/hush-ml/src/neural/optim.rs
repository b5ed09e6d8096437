//! Nadam (Adam with Nesterov momentum, Dozat 2016) and Adamax (Kingma and Ba 2015, §7.1) as burn
//! [`Optimizer`]s: burn 0.22 has Adam, AdamW, Adan and others, but neither Nadam, which iPET's
//! models were trained with, nor Adamax, which Deep Fingerprinting's were.
//!
//! Nadam's update is Keras' and PyTorch's, momentum schedule included:
//!
//!
//! ```text
//! μ_t   = β1 (1 − ½·0.96^(0.004 t)),      Π_t = μ_1 ⋯ μ_t
//! m_t   = β1 m + (1 − β1) g,              v_t = β2 v + (1 − β2) g²
//! m̂     = μ_{t+1} m_t / (1 − Π_t μ_{t+1}) + (1 − μ_t) g / (1 − Π_t)
//! θ    −= lr · m̂ / (√(v_t / (1 − β2^t)) + ε)
//! ```

use std::sync::{Arc, Mutex};

use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::prelude::*;

/// The Nadam optimizer. Wrap it in a [`burn::optim::ModuleOptimizer`] (`Nadam::new(..).into()`).
#[derive(Clone, Debug)]
pub struct Nadam {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    /// Π_t for t = 1, 2, …: the same for every parameter, so computed once.
    products: Arc<Mutex<Vec<f64>>>,
}

impl Nadam {
    /// Nadam with these moment decays and ε (Keras: 0.9, 0.999, 1e-7).
    pub fn new(beta_1: f64, beta_2: f64, epsilon: f64) -> Nadam {
        Nadam {
            beta_1,
            beta_2,
            epsilon,
            products: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn mu(&self, t: usize) -> f64 {
        self.beta_1 * (1.0 - 0.5 * 0.96f64.powf(0.004 * t as f64))
    }

    /// Π_t.
    fn product(&self, t: usize) -> f64 {
        let mut p = self.products.lock().unwrap_or_else(|e| e.into_inner());
        while p.len() < t {
            let prev = p.last().copied().unwrap_or(1.0);
            let next = prev * self.mu(p.len() + 1);
            p.push(next);
        }
        p[t - 1]
    }
}

impl Optimizer for Nadam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        let (t, m, v) = match state {
            Some(s) => {
                let m = s.momentum.moment_1.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
                let v =
                    s.momentum.moment_2.mul_scalar(b2) + grad.clone().square().mul_scalar(1.0 - b2);
                (s.momentum.time + 1, m, v)
            }
            None => (
                1,
                grad.clone().mul_scalar(1.0 - b1),
                grad.clone().square().mul_scalar(1.0 - b2),
            ),
        };
        let (mu_t, mu_next) = (self.mu(t), self.mu(t + 1));
        let prod = self.product(t);
        let m_hat = m.clone().mul_scalar(mu_next / (1.0 - prod * mu_next))
            + grad.mul_scalar((1.0 - mu_t) / (1.0 - prod));
        let bias2 = 1.0 - b2.powi(t as i32);
        let denom = v.clone().div_scalar(bias2).sqrt().add_scalar(self.epsilon);
        let update = m_hat.div(denom).mul_scalar(lr);
        let state = AdamState::new(AdaptiveMomentumState::new(t, m, v));
        (tensor - update, Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// The Adamax optimizer (Adam with the infinity norm), as Keras 2 and PyTorch define it:
///
/// ```text
/// m_t = β1 m + (1 − β1) g,        u_t = max(β2 u, |g|)
/// θ  −= lr / (1 − β1^t) · m_t / (u_t + ε)
/// ```
///
/// Wrap it in a [`burn::optim::ModuleOptimizer`] (`Adamax::new(..).into()`).
#[derive(Clone, Copy, Debug)]
pub struct Adamax {
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
}

impl Adamax {
    /// Adamax with these decays and ε (Deep Fingerprinting: 0.9, 0.999, 1e-8).
    pub fn new(beta_1: f64, beta_2: f64, epsilon: f64) -> Adamax {
        Adamax {
            beta_1,
            beta_2,
            epsilon,
        }
    }
}

impl Optimizer for Adamax {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        let (t, m, u) = match state {
            Some(s) => {
                let m = s.momentum.moment_1.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
                let u = s.momentum.moment_2.mul_scalar(b2).max_pair(grad.abs());
                (s.momentum.time + 1, m, u)
            }
            None => (1, grad.clone().mul_scalar(1.0 - b1), grad.abs()),
        };
        let step = lr / (1.0 - b1.powi(t as i32));
        let update = m
            .clone()
            .div(u.clone().add_scalar(self.epsilon))
            .mul_scalar(step);
        let state = AdamState::new(AdaptiveMomentumState::new(t, m, u));
        (tensor - update, Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keras' Nadam, in f64, on one scalar.
    fn reference(grads: &[f64], lr: f64) -> Vec<f64> {
        let (b1, b2, eps) = (0.9, 0.999, 1e-7);
        let (mut theta, mut m, mut v, mut prod) = (1.0f64, 0.0, 0.0, 1.0);
        let mut out = Vec::new();
        for (i, &g) in grads.iter().enumerate() {
            let t = (i + 1) as f64;
            let u_t = b1 * (1.0 - 0.5 * 0.96f64.powf(t * 0.004));
            let u_t1 = b1 * (1.0 - 0.5 * 0.96f64.powf((t + 1.0) * 0.004));
            prod *= u_t;
            m = m + (g - m) * (1.0 - b1);
            v = v + (g * g - v) * (1.0 - b2);
            let m_hat = u_t1 * m / (1.0 - prod * u_t1) + (1.0 - u_t) * g / (1.0 - prod);
            let v_hat = v / (1.0 - b2.powf(t));
            theta -= m_hat * lr / (v_hat.sqrt() + eps);
            out.push(theta);
        }
        out
    }

    /// Keras' Adamax, in f64, on one scalar.
    fn adamax_reference(grads: &[f64], lr: f64) -> Vec<f64> {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let (mut theta, mut m, mut u) = (1.0f64, 0.0, 0.0f64);
        let mut out = Vec::new();
        for (i, &g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            m = b1 * m + (1.0 - b1) * g;
            u = (b2 * u).max(g.abs());
            theta -= lr / (1.0 - b1.powi(t)) * m / (u + eps);
            out.push(theta);
        }
        out
    }

    #[test]
    fn adamax_matches_keras() {
        let device = Device::flex();
        let grads = [0.5, -0.2, 0.3, 0.05, -1.0, 0.7, 0.0];
        let want = adamax_reference(&grads, 0.002);
        let opt = Adamax::new(0.9, 0.999, 1e-8);
        let mut theta = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
        let mut state = None;
        for (g, w) in grads.iter().zip(&want) {
            let grad = Tensor::<1>::from_data(TensorData::new(vec![*g as f32], [1]), &device);
            let (next, s) = opt.step(0.002, theta, grad, state);
            theta = next;
            state = s;
            let got = theta.clone().into_data().try_into_vec::<f32>().unwrap()[0];
            assert!((f64::from(got) - w).abs() < 1e-6, "{got} vs {w}");
        }
    }

    #[test]
    fn nadam_matches_keras() {
        let device = Device::flex();
        let grads = [0.5, -0.2, 0.3, 0.05, -1.0, 0.7];
        let want = reference(&grads, 0.01);
        let opt = Nadam::new(0.9, 0.999, 1e-7);
        let mut theta = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
        let mut state = None;
        for (g, w) in grads.iter().zip(&want) {
            let grad = Tensor::<1>::from_data(TensorData::new(vec![*g as f32], [1]), &device);
            let (next, s) = opt.step(0.01, theta, grad, state);
            theta = next;
            state = s;
            let got = theta.clone().into_data().try_into_vec::<f32>().unwrap()[0];
            assert!((f64::from(got) - w).abs() < 1e-5, "{got} vs {w}");
        }
    }
}
