//! Ablation: the logits without a head's or an MLP's output (zeroed or mean-ablated), one
//! component at a time or every head at once as rows of one batch.

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::interventions::{mask, record_last, record_tail, Splice, Splices};
use crate::model::gpt2::{Gpt2, Inputs, Request, TailLogits};
use crate::model::hooks::{BlockHook, CaptureSpec, Hook};

/// What an ablation removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A head's `hook_z` at every position.
    Head(usize, usize),
    /// A layer's `hook_mlp_out` at every position.
    Mlp(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ablation {
    /// Replace by 0.
    Zero,
    /// Replace by its mean over the text's positions in the unablated run.
    Mean,
}

/// The last `tail` positions' logits `(1, tail, V)` of `ids` `(1, T)` without `components`
/// ablated, and with them.
pub fn ablate(
    model: &Gpt2,
    ids: &Tensor,
    components: &[Component],
    mode: Ablation,
    tail: usize,
) -> Result<(Tensor, Tensor)> {
    let hook = |c: &Component| match *c {
        Component::Head(l, _) => Hook::Block(l, BlockHook::Z),
        Component::Mlp(l) => Hook::Block(l, BlockHook::MlpOut),
    };
    let (acts, before) = record_tail(model, ids, components.iter().map(hook).collect(), tail)?;
    if components.is_empty() {
        // Nothing to remove (`ablate --sweep`): the run is the unablated one.
        return Ok((before.clone(), before));
    }
    let nh = model.config().n_head;
    let mut splices = Vec::new();
    for c in components {
        let x = acts.get(hook(c))?; // (1, T, nh, hs) or (1, T, C)
        let fill = match mode {
            Ablation::Zero => x.zeros_like()?,
            Ablation::Mean => x.mean_keepdim(1)?, // (1, 1, …): broadcast over positions
        };
        let mask = match *c {
            Component::Head(_, h) => mask(&[1, 1, nh, 1], |i| i[2] == h, ids)?,
            Component::Mlp(_) => mask(&[1, 1, 1], |_| true, ids)?,
        };
        splices.push(Splice {
            hook: hook(c),
            mask,
            source: fill,
        });
    }
    let req = Request {
        capture: CaptureSpec::default(),
        logits: TailLogits(tail),
    };
    let mut taps = Splices(splices);
    let after = model.run(Inputs::new(ids), &req, &mut taps)?;
    Ok((before, after))
}

/// The last `tail` positions' logits `(L·H, tail, V)` with each head ablated alone (`mode`:
/// by 0, or by its mean over the text's positions in the unablated run): row `l·H + h` has
/// head `h` of layer `l` removed. One forward pass of `L·H` rows (and one unablated pass for
/// the means).
pub fn ablate_each_head(model: &Gpt2, ids: &Tensor, mode: Ablation, tail: usize) -> Result<Tensor> {
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let rows = n_layer * nh;
    let z = |l| Hook::Block(l, BlockHook::Z);
    let means = match mode {
        Ablation::Zero => None,
        Ablation::Mean => Some(record_last(model, ids, (0..n_layer).map(z).collect())?.0),
    };
    let batch = ids.repeat((rows, 1))?;
    let mut splices = Vec::new();
    for l in 0..n_layer {
        let source = match &means {
            // (1, T, nh, hs) → (1, 1, nh, hs): each head's own mean, broadcast over positions.
            Some(acts) => acts.get(z(l))?.mean_keepdim(1)?,
            None => {
                (Tensor::zeros((1, 1, 1, 1), DType::F32, ids.device())?).to_dtype(model.dtype())?
            }
        };
        splices.push(Splice {
            hook: z(l),
            // (rows, 1, nh, 1): row l·H + h loses head h here.
            mask: mask(&[rows, 1, nh, 1], |i| i[0] == l * nh + i[2], ids)?,
            source,
        });
    }
    let req = Request {
        capture: CaptureSpec::default(),
        logits: TailLogits(tail),
    };
    model.run(Inputs::new(&batch), &req, &mut Splices(splices))
}
