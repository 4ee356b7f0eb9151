//! Ablation: the logits without a head's or an MLP's output (zeroed or mean-ablated), one
//! component at a time or every head at once as rows of one batch.

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::interventions::{mask, record_last, record_tail, Splice, Splices};
use crate::analysis::progress::Progress;
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

/// Rows of the batched passes that ablate each head: as many texts a pass as hold about
/// 4,096 tokens, so memory does not grow with the text times the head count.
const ROW_TOKENS: usize = 4096;

/// The last `tail` positions' logits `(L·H, tail, V)` with each head ablated alone (`mode`:
/// by 0, or by its mean over the text's positions in the unablated run): row `l·H + h` has
/// head `h` of layer `l` removed. Batched passes of about [`ROW_TOKENS`] tokens (and one
/// unablated pass for the means), each reported to `progress`.
pub fn ablate_each_head(
    model: &Gpt2,
    ids: &Tensor,
    (mode, tail): (Ablation, usize),
    progress: &mut dyn Progress,
) -> Result<Tensor> {
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let rows = n_layer * nh;
    let z = |l| Hook::Block(l, BlockHook::Z);
    let means = match mode {
        Ablation::Zero => None,
        Ablation::Mean => Some(record_last(model, ids, (0..n_layer).map(z).collect())?.0),
    };
    let per = (ROW_TOKENS / ids.dim(1)?.max(1)).max(1);
    let req = Request {
        capture: CaptureSpec::default(),
        logits: TailLogits(tail),
    };
    progress.start(rows as u64, "ablated runs, one head each");
    let mut out = Vec::new();
    for first in (0..rows).step_by(per) {
        let n = per.min(rows - first);
        let mut splices = Vec::new();
        for l in 0..n_layer {
            let source = match &means {
                // (1, T, nh, hs) → (1, 1, nh, hs): each head's own mean, broadcast over
                // positions.
                Some(acts) => acts.get(z(l))?.mean_keepdim(1)?,
                None => (Tensor::zeros((1, 1, 1, 1), DType::F32, ids.device())?)
                    .to_dtype(model.dtype())?,
            };
            splices.push(Splice {
                hook: z(l),
                // (n, 1, nh, 1): row first + r (= l·H + h) loses head h here.
                mask: mask(&[n, 1, nh, 1], |i| first + i[0] == l * nh + i[2], ids)?,
                source,
            });
        }
        let batch = ids.repeat((n, 1))?;
        out.push(model.run(Inputs::new(&batch), &req, &mut Splices(splices))?);
        progress.advance(n as u64)?;
    }
    Ok(Tensor::cat(&out, 0)?)
}
