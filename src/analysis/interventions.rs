//! Interventions as taps: a `Splice` replaces, in chosen rows of a batch, an activation by
//! another run's, so that independent patched runs are rows of one forward pass; `record`
//! runs a text once and keeps what the intervention will need.

use anyhow::Result;
use candle_core::Tensor;

use crate::model::gpt2::{Gpt2, Inputs, LastLogits, Request, TailLogits, WantLogits};
use crate::model::hooks::{Activations, CaptureSpec, Hook};
use crate::model::tap::{collect, Tap};

/// Replaces, at `hook`, the rows of the batch where `mask` `(B, T or 1, H or 1, 1 or C)` is
/// 1 by `source` (broadcast over the batch). Exact: each element is either kept or taken.
pub(crate) struct Splice {
    pub(crate) hook: Hook,
    pub(crate) mask: Tensor,
    pub(crate) source: Tensor,
}

impl Tap for Splice {
    fn wants(&self, hook: Hook) -> bool {
        hook == self.hook
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        if hook != self.hook {
            return Ok(x);
        }
        let source = self.source.broadcast_as(x.shape())?;
        let mask = self.mask.broadcast_as(x.shape())?;
        Ok(mask.where_cond(&source, &x)?)
    }
}

/// Runs `ids` `(1, T)` once, recording `hooks`; returns the activations and the logits
/// `logits` asks for.
pub(crate) fn record<W: WantLogits>(
    model: &Gpt2,
    ids: &Tensor,
    hooks: Vec<Hook>,
    logits: W,
) -> Result<(Activations, W::Out)> {
    let req = Request {
        capture: CaptureSpec::new(hooks),
        logits,
    };
    let mut acts = Activations::default();
    let logits = model.run(
        Inputs::new(ids),
        &req,
        &mut collect(&req.capture, &mut acts),
    )?;
    Ok((acts, logits))
}

/// [`record`] with the last position's logits.
pub(crate) fn record_last(
    model: &Gpt2,
    ids: &Tensor,
    hooks: Vec<Hook>,
) -> Result<(Activations, Tensor)> {
    record(model, ids, hooks, LastLogits)
}

/// [`record`] with the last `n` positions' logits `(1, n, V)`.
pub(crate) fn record_tail(
    model: &Gpt2,
    ids: &Tensor,
    hooks: Vec<Hook>,
    n: usize,
) -> Result<(Activations, Tensor)> {
    record(model, ids, hooks, TailLogits(n))
}

/// A u8 mask tensor `shape` with ones where `on(index)` holds.
pub(crate) fn mask(shape: &[usize], on: impl Fn(&[usize]) -> bool, ids: &Tensor) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut data = Vec::with_capacity(n);
    for _ in 0..n {
        data.push(on(&idx) as u8);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(Tensor::from_vec(data, shape, ids.device())?)
}

/// Several splices, applied in turn (two heads of one layer share a hook).
pub(crate) struct Splices(pub(crate) Vec<Splice>);

impl Tap for Splices {
    fn wants(&self, hook: Hook) -> bool {
        self.0.iter().any(|s| s.wants(hook))
    }

    fn tap(&mut self, hook: Hook, mut x: Tensor) -> Result<Tensor> {
        for s in &mut self.0 {
            x = s.tap(hook, x)?;
        }
        Ok(x)
    }
}
