//! Lenses: how the residual stream at a depth is read as next-token logits. Depth d is the
//! stream after d blocks (block d's input); depth L, after ln_f, is the model's own output,
//! read by every lens alike. A new lens is a variant of [`Lens`]: the compiler then asks for
//! its arm in [`stream`] and [`Lens::depths`].

use std::ops::Range;
use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;

use crate::model::{Activations, BlockHook, Config, Gpt2, Hook};
use crate::reports::LensKind;

/// How a depth is read.
#[derive(Debug, Clone)]
pub enum Lens {
    /// The logit lens: ln_f and the unembedding, as if the stream were the last layer's.
    Logit,
    /// The tuned lens (tuned-lens's `TunedLens`): depth d's stream moved by its affine
    /// translator, h + (h Wᵀ + b), then ln_f and the unembedding.
    Tuned(Arc<Translators>),
    /// The Jacobian lens (TransformerLens's `JacobianLens`): block l's output moved by J_l
    /// into the last block's output basis, J_l h, then ln_f and the unembedding. Reads only
    /// the depths after a block it has a matrix for, and the last.
    Jacobian(Arc<Jacobians>),
}

impl Lens {
    /// Which lens this is, as reports name it.
    pub fn kind(&self) -> LensKind {
        match self {
            Lens::Logit => LensKind::Logit,
            Lens::Tuned(_) => LensKind::Tuned,
            Lens::Jacobian(_) => LensKind::Jacobian,
        }
    }

    /// The depths (0 to `n_layer`) this lens reads, in order; the last is the model's own.
    pub fn depths(&self, n_layer: usize) -> Vec<usize> {
        match self {
            Lens::Logit | Lens::Tuned(_) => (0..=n_layer).collect(),
            Lens::Jacobian(j) => (j.layers.iter().map(|l| l + 1))
                .filter(|&d| d < n_layer)
                .chain([n_layer])
                .collect(),
        }
    }
}

/// A Jacobian lens's transport matrices: `j[i]` `(C, C)` f32 maps block `layers[i]`'s output
/// (TransformerLens's `blocks.{l}.hook_out`; our depth l + 1) to the last block's output,
/// row = output dimension. `layers` ascending.
#[derive(Debug, Default)]
pub struct Jacobians {
    pub layers: Vec<usize>,
    pub j: Vec<Tensor>,
    /// Prompts averaged into the matrices.
    pub n_prompts: usize,
}

impl Jacobians {
    /// J_l for block `layer`'s output, if the lens has it.
    pub fn matrix(&self, layer: usize) -> Option<&Tensor> {
        let i = self.layers.iter().position(|&l| l == layer)?;
        Some(&self.j[i])
    }

    /// TransformerLens's `transport`: `x J_lᵀ` for `x` `(1, P, C)`.
    fn transport(&self, depth: usize, x: &Tensor) -> Result<Tensor> {
        let layer = depth.checked_sub(1);
        match layer.and_then(|l| self.matrix(l)) {
            Some(j) => Ok(x.to_dtype(j.dtype())?.broadcast_matmul(&j.t()?)?),
            None => anyhow::bail!("the Jacobian lens has no matrix for depth {depth}"),
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
        Lens::Jacobian(j) => model.final_norm(&j.transport(depth, &x)?.to_dtype(x.dtype())?),
    }
}
