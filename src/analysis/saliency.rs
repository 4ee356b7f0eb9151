//! Input attribution: one score per input token for a metric at the last position, as
//! Captum and Inseq define the gradient methods (with respect to the token embedding
//! wte[id]; the position embeddings are held fixed), and attention rollout.

use anyhow::{bail, Result};
use candle_core::Tensor;

use crate::analysis::grad::{gradients, rows_per_pass};
use crate::analysis::metric::Bound;
use crate::analysis::progress::Progress;
use crate::model::gpt2::{Gpt2, Inputs, LastLogits, Request};
use crate::model::hooks::{BlockHook, CaptureSpec, Hook};
use crate::model::tap::collect;

/// Where integrated gradients start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// All zeros.
    Zero,
    /// This token's embedding at every position (`<|endoftext|>`).
    Token(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// ‖∂metric/∂e_t‖₂ over d_model (Captum's `Saliency` with `abs=False`, L2 over the
    /// embedding, as Inseq's `saliency`).
    Gradient,
    /// Σ_c e_t,c · ∂metric/∂e_t,c (Captum's `InputXGradient`, summed).
    InputXGradient,
    /// Captum's `IntegratedGradients` (Gauss–Legendre, `steps` points), summed over d_model.
    IntegratedGradients { steps: usize, baseline: Baseline },
    /// Attention rollout (Abnar & Zuidema 2020): no gradient.
    Rollout,
}

impl Method {
    /// Its name on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::InputXGradient => "input-x-gradient",
            Method::IntegratedGradients { .. } => "integrated-gradients",
            Method::Rollout => "rollout",
        }
    }

    /// Whether its scores explain an answer (a metric's gradient): rollout follows the
    /// attention alone.
    pub fn explains_answer(&self) -> bool {
        match self {
            Method::Gradient | Method::InputXGradient | Method::IntegratedGradients { .. } => true,
            Method::Rollout => false,
        }
    }

    /// Whether its scores have a sign (gradient norms and rollout weights do not).
    pub fn signed(&self) -> bool {
        match self {
            Method::InputXGradient | Method::IntegratedGradients { .. } => true,
            Method::Gradient | Method::Rollout => false,
        }
    }
}

/// Integrated gradients' completeness check, as Captum's `return_convergence_delta`.
#[derive(Debug, Clone, Copy)]
pub struct Completeness {
    /// The metric at the baseline.
    pub baseline_metric: f32,
    /// Σ scores − (metric(e) − metric(b)).
    pub delta: f32,
}

#[derive(Debug, Clone)]
pub struct Saliency {
    /// One per input token.
    pub scores: Vec<f32>,
    /// Its value at the input itself.
    pub value: f32,
    pub completeness: Option<Completeness>,
}

/// The scores of `ids` by `method` for `metric` (of a one-token answer, taken at the last
/// position).
/// Integrated gradients report their steps to `progress`.
pub fn saliency(
    model: &Gpt2,
    ids: &[u32],
    metric: &Bound,
    method: Method,
    progress: &mut dyn Progress,
) -> Result<Saliency> {
    if ids.is_empty() {
        bail!("no tokens to attribute");
    }
    let row = Tensor::new(ids, model.device())?.unsqueeze(0)?; // (1, T)
    match method {
        Method::Gradient | Method::InputXGradient => {
            let e = token_embeddings(model, &row)?; // (1, T, C)
            let g = gradients(model, &row, Some(&e), metric, &[])?;
            let grad = given_embeddings(g.embeds)?; // (1, T, C)
            let scores = match method {
                Method::Gradient => grad.sqr()?.sum(2)?.sqrt()?,
                _ => (grad * e)?.sum(2)?,
            }; // (1, T)
            Ok(Saliency {
                scores: scores.squeeze(0)?.to_vec1()?,
                value: g.values_of_metric[0],
                completeness: None,
            })
        }
        Method::IntegratedGradients { steps, baseline } => {
            integrated_gradients(model, &row, metric, (steps, baseline), progress)
        }
        Method::Rollout => rollout(model, &row, metric),
    }
}

/// The embeddings' gradient of a backward pass that was given embeddings.
fn given_embeddings(grad: Option<Tensor>) -> Result<Tensor> {
    grad.ok_or_else(|| anyhow::anyhow!("the backward pass was given no token embeddings"))
}

/// `wte[ids]` `(B, T, C)`.
fn token_embeddings(model: &Gpt2, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let c = model.config().n_embd;
    Ok(model
        .wte()
        .embedding(&ids.flatten_all()?)?
        .reshape((b, t, c))?)
}

/// Σ_c (e − b)_t,c · Σ_i w_i ∂metric/∂e_t,c at b + α_i (e − b), with (α_i, w_i) the
/// Gauss–Legendre points and weights on [0, 1] (Captum's default `gausslegendre`).
fn integrated_gradients(
    model: &Gpt2,
    row: &Tensor,
    metric: &Bound,
    (steps, baseline): (usize, Baseline),
    progress: &mut dyn Progress,
) -> Result<Saliency> {
    let e = token_embeddings(model, row)?; // (1, T, C)
    let (_, t, _) = e.dims3()?;
    let b = match baseline {
        Baseline::Zero => e.zeros_like()?,
        Baseline::Token(id) => {
            token_embeddings(model, &Tensor::new(&[id], model.device())?.unsqueeze(0)?)?
                .broadcast_as(e.shape())?
                .contiguous()?
        }
    };
    let diff = (&e - &b)?; // (1, T, C)
    let ends = metric_of(
        model,
        &row.repeat((2, 1))?,
        &Tensor::cat(&[&e, &b], 0)?,
        metric,
    )?;
    let points = gauss_legendre(steps);
    let mut total = e.zeros_like()?; // Σ_i w_i g_i, (1, T, C)
    progress.start(
        steps as u64,
        "integrated-gradients steps (forward and backward)",
    );
    for chunk in points.chunks(rows_per_pass(model, t, steps, 0)) {
        let n = chunk.len();
        let alphas: Vec<f32> = chunk.iter().map(|&(a, _)| a as f32).collect();
        let weights: Vec<f32> = chunk.iter().map(|&(_, w)| w as f32).collect();
        let alphas = Tensor::from_vec(alphas, (n, 1, 1), e.device())?;
        let weights = Tensor::from_vec(weights, (n, 1, 1), e.device())?;
        let scaled = b.broadcast_add(&diff.broadcast_mul(&alphas)?)?; // (n, T, C)
        let ids = row.repeat((n, 1))?; // (n, T)
        let g = gradients(model, &ids, Some(&scaled), metric, &[])?;
        let grad = given_embeddings(g.embeds)?; // (n, T, C)
        total = (total + grad.broadcast_mul(&weights)?.sum_keepdim(0)?)?;
        progress.advance(n as u64)?;
    }
    let scores: Vec<f32> = (total * &diff)?.sum(2)?.squeeze(0)?.to_vec1()?;
    let sum: f64 = scores.iter().map(|&s| s as f64).sum();
    Ok(Saliency {
        scores,
        value: ends[0],
        completeness: Some(Completeness {
            baseline_metric: ends[1],
            delta: (sum - (ends[0] as f64 - ends[1] as f64)) as f32,
        }),
    })
}

/// The metric of each row of `ids` `(B, T)` with token embeddings `embeds`, no gradient.
fn metric_of(model: &Gpt2, ids: &Tensor, embeds: &Tensor, metric: &Bound) -> Result<Vec<f32>> {
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    let inputs = Inputs {
        embeds: Some(embeds),
        ..Inputs::new(ids)
    };
    let logits = model.run(
        inputs,
        &req,
        &mut collect(&req.capture, &mut Default::default()),
    )?;
    Ok(metric.tensor(&logits)?.detach().to_vec1()?)
}

/// The `n`-point Gauss–Legendre rule on [0, 1]: (point, weight) by increasing point, as
/// Captum takes them from numpy's `leggauss` (x ↦ (1 + x) / 2, w ↦ w / 2).
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            // Newton's method on P_n from the classical first guess.
            let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            for _ in 0..100 {
                let (p, d) = legendre(n, x);
                let dx = p / d;
                x -= dx;
                if dx.abs() < 1e-16 {
                    break;
                }
            }
            let d = legendre(n, x).1;
            let w = 2.0 / ((1.0 - x * x) * d * d);
            ((1.0 + x) / 2.0, w / 2.0)
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// P_n(x) and P_n'(x) by the three-term recurrence.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let k = k as f64;
        let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
        (p0, p1) = (p1, p2);
    }
    let d = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, d)
}

/// Attention rollout: per layer Â = ½·mean over heads of the pattern + ½·I, rows
/// renormalised to sum 1; R = Â_{L−1}⋯Â_0; the scores are R's last row.
fn rollout(model: &Gpt2, row: &Tensor, metric: &Bound) -> Result<Saliency> {
    let cfg = model.config();
    let (_, t) = row.dims2()?;
    let hooks = (0..cfg.n_layer).map(|l| Hook::Block(l, BlockHook::Pattern));
    let req = Request {
        capture: CaptureSpec::new(hooks),
        logits: LastLogits,
    };
    let mut acts = Default::default();
    let logits = model.run(
        Inputs::new(row),
        &req,
        &mut collect(&req.capture, &mut acts),
    )?;
    let mut r = identity(t);
    for l in 0..cfg.n_layer {
        let pattern = acts.get(Hook::Block(l, BlockHook::Pattern))?; // (1, nh, T, T)
        let mean: Vec<Vec<f32>> = pattern.squeeze(0)?.mean(0)?.to_vec2()?; // (T, T)
        let mut a = identity(t);
        for (i, row) in a.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = 0.5 * mean[i][j] as f64 + 0.5 * *v;
            }
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
        }
        r = matmul(&a, &r);
    }
    Ok(Saliency {
        scores: r[t - 1].iter().map(|&v| v as f32).collect(),
        value: metric.of(&logits)?[0],
        completeness: None,
    })
}

fn identity(t: usize) -> Vec<Vec<f64>> {
    (0..t)
        .map(|i| (0..t).map(|j| (i == j) as u8 as f64).collect())
        .collect()
}

fn matmul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    a.iter()
        .map(|row| {
            (0..b[0].len())
                .map(|j| row.iter().zip(b).map(|(x, b)| x * b[j]).sum())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy.polynomial.legendre.leggauss(3): ±√(3/5), 0 with weights 5/9, 8/9, 5/9.
    #[test]
    fn gauss_legendre_is_the_classical_rule() {
        let p = gauss_legendre(3);
        let x = (0.6f64).sqrt();
        let want = [
            ((1.0 - x) / 2.0, 5.0 / 18.0),
            (0.5, 8.0 / 18.0),
            ((1.0 + x) / 2.0, 5.0 / 18.0),
        ];
        for ((a, w), (b, v)) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-14 && (w - v).abs() < 1e-14, "{p:?}");
        }
        // 50 points integrate x^99 exactly: ∫₀¹ x^99 = 1/100.
        let sum: f64 = gauss_legendre(50).iter().map(|(a, w)| w * a.powi(99)).sum();
        assert!((sum - 0.01).abs() < 1e-14, "{sum}");
        let total: f64 = gauss_legendre(7).iter().map(|(_, w)| w).sum();
        assert!((total - 1.0).abs() < 1e-14);
    }
}
