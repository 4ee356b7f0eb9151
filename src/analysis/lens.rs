//! Lenses: how the residual stream at a depth is read as next-token logits. Depth d is the
//! stream after d blocks (block d's input); depth L, after ln_f, is the model's own output,
//! read by every lens alike. A new lens (the Jacobian lens, the tuned lens) is a variant of
//! [`Lens`]: the compiler then asks for its arm in [`read`].

use std::ops::Range;
use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;

use crate::model::{Activations, BlockHook, Config, Gpt2, Hook};

/// How a depth is read.
#[derive(Debug, Clone)]
pub enum Lens {
    /// The logit lens: ln_f and the unembedding, as if the stream were the last layer's.
    Logit,
    /// The tuned lens (tuned-lens's `TunedLens`): depth d's stream moved by its affine
    /// translator, h + (h Wᵀ + b), then ln_f and the unembedding.
    Tuned(Arc<Translators>),
}

impl Lens {
    /// Its name in reports and titles.
    pub fn name(&self) -> &'static str {
        match self {
            Lens::Logit => "logit",
            Lens::Tuned(_) => "tuned",
        }
    }
}

/// A tuned lens's translators, one per layer: `weight` `(C, C)` as `nn.Linear` stores it
/// (out × in), `bias` `(C,)` when the lens has one.
#[derive(Debug, Default)]
pub struct Translators {
    pub weight: Vec<Tensor>,
    pub bias: Vec<Option<Tensor>>,
}

impl Translators {
    /// tuned-lens's `transform_hidden`: `x + (x Wᵀ + b)` for `x` `(1, P, C)`.
    fn apply(&self, depth: usize, x: &Tensor) -> Result<Tensor> {
        let moved = x.broadcast_matmul(&self.weight[depth].t()?)?;
        let moved = match &self.bias[depth] {
            Some(b) => moved.broadcast_add(b)?,
            None => moved,
        };
        Ok((x + moved)?)
    }
}

/// The hooks a lens reads: each block's input, and ln_f's output.
pub fn hooks(cfg: &Config) -> Vec<Hook> {
    (0..cfg.n_layer)
        .map(|l| Hook::Block(l, BlockHook::ResidPre))
        .chain([Hook::LnFinalOut])
        .collect()
}

/// The logits `(1, P, V)` that depth `depth` (0 to L) gives through `lens` at the
/// positions `at`. `acts` holds [`hooks`].
pub fn read(
    model: &Gpt2,
    acts: &Activations,
    lens: &Lens,
    depth: usize,
    at: Range<usize>,
) -> Result<Tensor> {
    model.unembed(&stream(model, acts, lens, depth, at)?)
}

/// What the unembedding reads at depth `depth` through `lens`, `(1, P, C)` at the positions
/// `at`: the stream after ln_f (depth L: the model's own). Several depths' streams can be
/// unembedded as one product.
pub fn stream(
    model: &Gpt2,
    acts: &Activations,
    lens: &Lens,
    depth: usize,
    at: Range<usize>,
) -> Result<Tensor> {
    let narrow = |t: &Tensor| -> Result<Tensor> { Ok(t.narrow(1, at.start, at.len())?) };
    if depth == model.config().n_layer {
        // Already through ln_f.
        return narrow(acts.get(Hook::LnFinalOut)?);
    }
    let x = narrow(acts.get(Hook::Block(depth, BlockHook::ResidPre))?)?;
    match lens {
        Lens::Logit => model.final_norm(&x),
        Lens::Tuned(t) => model.final_norm(&t.apply(depth, &x)?),
    }
}
