//! The backward pass: gradients of one scalar metric of the logits with respect to the
//! token embeddings and to any hook's activation, the weights held constant.
//!
//! candle differentiates the forward pass op by op (the fused CPU kernels carry their own
//! backward rules, and the mapped weights are constants, so no weight gradient is made). A
//! [`Probe`] adds a zero variable at each hook it is asked for: the forward numbers do not
//! change (x + 0 = x) and the backward pass leaves the gradient with respect to that
//! activation on the variable. candle frees every other intermediate gradient once used.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};

use crate::analysis::metric::Bound;
use crate::model::gpt2::{Gpt2, Inputs, Request, TailLogits};
use crate::model::hooks::{Activations, CaptureSpec, Hook};
use crate::model::tap::Tap;

/// Adds a zero variable at each hook it wants and keeps the activation: after the backward
/// pass, [`Probe::split`] gives each hook's value and gradient.
#[derive(Default)]
pub struct Probe {
    hooks: Vec<Hook>,
    seen: Vec<(Hook, Tensor, Var)>,
}

impl Probe {
    pub fn new(hooks: impl IntoIterator<Item = Hook>) -> Self {
        Probe {
            hooks: hooks.into_iter().collect(),
            seen: Vec::new(),
        }
    }

    /// The values and the gradients at the probed hooks (every one must have been reached).
    fn split(self, grads: &candle_core::backprop::GradStore) -> Result<(Activations, Activations)> {
        let (mut values, mut gradients) = (Activations::default(), Activations::default());
        for hook in &self.hooks {
            let Some((_, x, var)) = self.seen.iter().find(|(h, _, _)| h == hook) else {
                bail!("the forward pass did not reach {hook}");
            };
            gradients.insert(*hook, gradient(grads, var, hook)?);
            values.insert(*hook, x.clone());
        }
        Ok((values, gradients))
    }
}

impl Tap for Probe {
    fn wants(&self, hook: Hook) -> bool {
        self.hooks.contains(&hook)
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        if !self.wants(hook) {
            return Ok(x);
        }
        let var = Var::zeros(x.shape(), x.dtype(), x.device())?;
        let y = (&x + var.as_tensor())?;
        self.seen.push((hook, x, var));
        Ok(y)
    }
}

/// The gradient left on `var`; an error when the backward pass did not reach it, which
/// means an op without a backward rule cut the graph between it and the metric.
fn gradient(
    grads: &candle_core::backprop::GradStore,
    var: &Var,
    what: &dyn std::fmt::Display,
) -> Result<Tensor> {
    match grads.get(var.as_tensor()) {
        Some(g) => Ok(g.clone()),
        None => bail!("the backward pass did not reach {what}"),
    }
}

/// The gradients are computed in f32 on the CPU, where every op of the forward pass has
/// its backward rule.
pub fn check_differentiable(model: &Gpt2) -> Result<()> {
    if !matches!(model.device(), Device::Cpu) || model.dtype() != DType::F32 {
        bail!("gradients are computed in f32 on the CPU: run without --device and --dtype");
    }
    Ok(())
}

/// How many rows of `T` tokens one backward pass takes, for `rows` rows in all, so that a
/// pass holds about [`PASS_BUDGET`] whatever `rows` is: what a pass holds for its backward
/// grows with T² per head per layer (scores, pattern and their gradients) and T·C per op,
/// about 40 d_model vectors per token per layer, and `probed` more for the hooks a caller
/// probes (each holds its value, a zero variable and its gradient). The passes are of
/// equal size, so the first (which faults in fresh memory) is no larger than it needs to
/// be. Integrated gradients and EAP-IG batch their steps by it.
pub fn rows_per_pass(model: &Gpt2, t: usize, rows: usize, probed: usize) -> usize {
    rows_within(model, (t, rows, probed), PASS_BUDGET)
}

/// [`rows_per_pass`] for passes that may hold `budget` bytes.
pub fn rows_within(model: &Gpt2, (t, rows, probed): (usize, usize, usize), budget: usize) -> usize {
    let cfg = model.config();
    let per_layer = 4 * cfg.n_head * t * t + (40 + probed) * t * cfg.n_embd;
    let bytes = 4 * (cfg.n_layer * per_layer + cfg.vocab_size * 4);
    let most = (budget / bytes.max(1)).max(1);
    rows.div_ceil(rows.div_ceil(most).max(1)).max(1)
}

/// What one batched backward pass may hold, in bytes.
pub const PASS_BUDGET: usize = 512 << 20;

/// Runs `ids` `(B, T)` (with `embeds` `(B, T, C)` as their token embeddings, if given),
/// takes `metric` at the last positions of each row and differentiates their sum: each
/// row's gradients are its own metric's (rows do not meet in the model).
pub fn gradients(
    model: &Gpt2,
    ids: &Tensor,
    embeds: Option<&Tensor>,
    metric: &Bound,
    hooks: &[Hook],
) -> Result<Backward> {
    let tail = metric.measure.positions();
    backward(model, (ids, embeds), tail, hooks, |logits| {
        metric.tensor(logits)
    })
}

/// What one backward pass gives.
#[derive(Debug)]
pub struct Backward {
    /// The metric of each row of the batch.
    pub values_of_metric: Vec<f32>,
    /// ∂metric/∂(token embeddings) `(B, T, C)`, when the run was given embeddings.
    pub embeds: Option<Tensor>,
    /// The probed hooks' activations and their gradients.
    pub values: Activations,
    pub grads: Activations,
}

/// Runs `ids` `(B, T)` (with `embeds` `(B, T, C)` as their token embeddings, if given),
/// hands the logits of the last `tail` positions `(B, tail, V)` to `metric` for one value
/// per row `(B,)` and differentiates their sum.
pub fn backward(
    model: &Gpt2,
    (ids, embeds): (&Tensor, Option<&Tensor>),
    tail: usize,
    hooks: &[Hook],
    mut metric: impl FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Backward> {
    check_differentiable(model)?;
    let var = embeds.map(Var::from_tensor).transpose()?;
    let mut probe = Probe::new(hooks.iter().copied());
    let req = Request {
        capture: CaptureSpec::default(),
        logits: TailLogits(tail),
    };
    let inputs = Inputs {
        embeds: var.as_ref().map(|v| v.as_tensor()),
        ..Inputs::new(ids)
    };
    let logits = model.run(inputs, &req, &mut probe)?; // (B, tail, V)
    let m = metric(&logits)?; // (B,)
    let grads = m.sum_all()?.backward()?;
    let embeds = match &var {
        Some(v) => Some(gradient(&grads, v, &"the token embeddings")?),
        None => None,
    };
    let (values, grads) = probe.split(&grads)?;
    Ok(Backward {
        values_of_metric: m.to_vec1()?,
        embeds,
        values,
        grads,
    })
}
