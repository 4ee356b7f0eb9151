//! Fitting a Jacobian lens with TransformerLens's estimator (`JacobianLens.fit`, 4.3.0).
//!
//! For one prompt of T tokens, V = {skip, …, T − 2} and, for each source block l,
//!
//!   J_p[l][i, j] = (1/|V|) Σ_{t∈V} Σ_{t'∈V} ∂h_{L−1}[t', i] / ∂h_l[t, j]
//!
//! (h_l: block l's output; causal attention makes the terms with t' < t zero, so summing
//! over every target in V sums over t' ≥ t). Row i is one backward pass from a cotangent
//! that is 1 in dimension i at every target in V: one forward pass of the prompt repeated
//! B times, then ⌈C / B⌉ backward passes, each taking B rows at once and leaving the
//! gradient at every source block (a zero variable added at each block's output, as
//! [`crate::analysis::grad`] probes hooks). J is the plain mean of J_p over the prompts.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};

use crate::analysis::lens::Jacobians;
use crate::model::{BlockHook, CaptureSpec, Gpt2, Hook, Inputs, NoLogits, Request, Tap};

/// What the estimator is asked for (TransformerLens's `fit` arguments).
#[derive(Debug, Clone)]
pub struct FitSettings {
    /// Source blocks, ascending, each below the last.
    pub source_layers: Vec<usize>,
    /// Prompts are cut to this many tokens (after the BOS, when one is put first).
    pub max_seq_len: usize,
    /// Leading positions left out of the sources and targets.
    pub skip_first: usize,
}

impl FitSettings {
    /// Whether a prompt of `t` tokens (after the cut) has a position to fit on.
    pub fn fits(&self, t: usize) -> bool {
        t.min(self.max_seq_len) > self.skip_first + 1
    }
}

/// The running sum of per-prompt matrices (f64, `C·C` per source block, row-major) and the
/// prompts in it: what a fit adds to, and what shards of one merge by adding.
#[derive(Debug, Clone)]
pub struct JacobianSums {
    pub layers: Vec<usize>,
    pub d_model: usize,
    pub sums: Vec<Vec<f64>>,
    pub n_prompts: usize,
}

impl JacobianSums {
    pub fn new(layers: &[usize], d_model: usize) -> Self {
        JacobianSums {
            layers: layers.to_vec(),
            d_model,
            sums: layers
                .iter()
                .map(|_| vec![0.0; d_model * d_model])
                .collect(),
            n_prompts: 0,
        }
    }

    /// Adds one prompt's J_p (`ids` already cut; it must [`FitSettings::fits`]), its
    /// backward passes taking `rows` output dimensions each. `pass_done` is told after
    /// each backward pass (progress; an error stops the fit).
    pub fn add_prompt(
        &mut self,
        model: &Gpt2,
        ids: &[u32],
        (settings, rows): (&FitSettings, usize),
        pass_done: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let per_prompt = prompt_jacobians(model, ids, (settings, rows), pass_done)?;
        for (sum, j) in self.sums.iter_mut().zip(per_prompt) {
            for (s, v) in sum.iter_mut().zip(j) {
                *s += v as f64;
            }
        }
        self.n_prompts += 1;
        Ok(())
    }

    /// The mean over the prompts, as f32 `(C, C)` matrices.
    pub fn mean(&self) -> Result<Jacobians> {
        let n = self.n_prompts.max(1) as f64;
        let d = self.d_model;
        let j = (self.sums.iter())
            .map(|s| {
                let m: Vec<f32> = s.iter().map(|v| (v / n) as f32).collect();
                Ok(Tensor::from_vec(m, (d, d), &Device::Cpu)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Jacobians {
            layers: self.layers.clone(),
            j,
            n_prompts: self.n_prompts,
        })
    }
}

/// Backward passes a prompt of `t` tokens needs with `rows` dimensions per pass.
pub fn passes(d_model: usize, rows: usize) -> usize {
    d_model.div_ceil(rows.max(1))
}

/// One prompt's J_p for every source block, each `C·C` row-major.
fn prompt_jacobians(
    model: &Gpt2,
    ids: &[u32],
    (settings, rows): (&FitSettings, usize),
    pass_done: &mut dyn FnMut() -> Result<()>,
) -> Result<Vec<Vec<f32>>> {
    let cfg = model.config();
    let (c, t) = (cfg.n_embd, ids.len());
    let rows = rows.clamp(1, c);
    let (skip, valid) = (settings.skip_first, t - 1 - settings.skip_first);
    // (B, T): the prompt once per output dimension of a pass.
    let repeated: Vec<u32> = (0..rows).flat_map(|_| ids.iter().copied()).collect();
    let ids = Tensor::from_vec(repeated, (rows, t), model.device())?;
    let mut tap = Sources::new(&settings.source_layers, cfg.n_layer - 1);
    let req = Request {
        capture: CaptureSpec::new([Hook::Block(cfg.n_layer - 1, BlockHook::ResidPost)]),
        logits: NoLogits,
    };
    model.run(Inputs::new(&ids), &req, &mut tap)?;
    let target = tap.target.take().expect("the last block ran"); // (B, T, C)
    let mut out: Vec<Vec<f32>> = tap.vars.iter().map(|_| vec![0.0; c * c]).collect();
    for start in (0..c).step_by(rows) {
        let n = rows.min(c - start);
        // 1 at (b, t', start + b) for every target t' in V.
        let mut cot = vec![0f32; rows * t * c];
        for b in 0..n {
            for tp in skip..skip + valid {
                cot[(b * t + tp) * c + start + b] = 1.0;
            }
        }
        let cot = Tensor::from_vec(cot, (rows, t, c), model.device())?;
        let grads = (&target * &cot)?.sum_all()?.backward()?;
        for (var, j) in tap.vars.iter().zip(out.iter_mut()) {
            let g = grads
                .get(var.as_tensor())
                .ok_or_else(|| anyhow::anyhow!("the backward pass did not reach a source block"))?; // (B, T, C)
            let mean = (g.narrow(1, skip, valid)?.sum(1)? / valid as f64)?; // (B, C)
            let mean = mean.narrow(0, 0, n)?.flatten_all()?.to_vec1::<f32>()?;
            j[start * c..(start + n) * c].copy_from_slice(&mean);
        }
        pass_done()?;
    }
    Ok(out)
}

/// Adds a zero variable at each source block's output and keeps the target block's.
struct Sources {
    layers: Vec<usize>,
    target_layer: usize,
    vars: Vec<Var>,
    target: Option<Tensor>,
}

impl Sources {
    fn new(layers: &[usize], target_layer: usize) -> Self {
        Sources {
            layers: layers.to_vec(),
            target_layer,
            vars: Vec::new(),
            target: None,
        }
    }
}

impl Tap for Sources {
    fn wants(&self, hook: Hook) -> bool {
        match hook {
            Hook::Block(l, BlockHook::ResidPost) => {
                self.layers.contains(&l) || l == self.target_layer
            }
            _ => false,
        }
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        let Hook::Block(l, BlockHook::ResidPost) = hook else {
            return Ok(x);
        };
        let x = match self.layers.contains(&l) {
            true => {
                let var = Var::zeros(x.shape(), x.dtype(), x.device())?;
                let y = (&x + var.as_tensor())?;
                self.vars.push(var);
                y
            }
            false => x,
        };
        if l == self.target_layer {
            self.target = Some(x.clone());
        }
        Ok(x)
    }
}
