//! The causal toolkit on top of taps: activation patching, ablation and head detection,
//! each as few forward passes as the question allows (independent patched runs are rows
//! of one batch).

use anyhow::Result;
use candle_core::{DType, Tensor};

pub use super::measure::{Bound, Kind, Measure};
pub use super::patching::{attribution_patch, patch, Patching, Site};

use super::gpt2::{AllLogits, Gpt2, Inputs, LastLogits, NoLogits, Request, TailLogits, WantLogits};
use super::hooks::{Activations, BlockHook, CaptureSpec, Hook};
use super::tap::{collect, Tap};

/// Replaces, at `hook`, the rows of the batch where `mask` `(B, T or 1, H or 1, 1 or C)` is
/// 1 by `source` (broadcast over the batch). Exact: each element is either kept or taken.
pub(super) struct Splice {
    pub(super) hook: Hook,
    pub(super) mask: Tensor,
    pub(super) source: Tensor,
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
fn record<W: WantLogits>(
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
pub(super) fn record_last(
    model: &Gpt2,
    ids: &Tensor,
    hooks: Vec<Hook>,
) -> Result<(Activations, Tensor)> {
    record(model, ids, hooks, LastLogits)
}

/// [`record`] with the last `n` positions' logits `(1, n, V)`.
pub(super) fn record_tail(
    model: &Gpt2,
    ids: &Tensor,
    hooks: Vec<Hook>,
    n: usize,
) -> Result<(Activations, Tensor)> {
    record(model, ids, hooks, TailLogits(n))
}

/// A u8 mask tensor `shape` with ones where `on(index)` holds.
pub(super) fn mask(shape: &[usize], on: impl Fn(&[usize]) -> bool, ids: &Tensor) -> Result<Tensor> {
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

/// Several splices, applied in turn (two heads of one layer share a hook).
struct Splices(Vec<Splice>);

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

/// The four head scores of TransformerLens-style detection, each `[L][H]`.
#[derive(Debug, Clone)]
pub struct HeadScores {
    pub previous_token: Vec<Vec<f32>>,
    pub first_token: Vec<Vec<f32>>,
    pub induction: Vec<Vec<f32>>,
    pub duplicate_token: Vec<Vec<f32>>,
}

/// Scores every head on `x` = s + s `(1, 2n)`, with A the head's attention:
/// previous_token = mean over i = 1..2n−1 of A[i][i−1]; first_token = mean over i of
/// A[i][0]; induction = mean over i = n..2n−1 of A[i][i−n+1]; duplicate_token = mean over
/// i = n..2n−1 of A[i][i−n].
pub fn head_scores(model: &Gpt2, x: &Tensor, n: usize) -> Result<HeadScores> {
    let cfg = model.config();
    let hooks: Vec<Hook> = (0..cfg.n_layer)
        .map(|l| Hook::Block(l, BlockHook::Pattern))
        .collect();
    let (acts, _) = record(model, x, hooks.clone(), NoLogits)?;
    let mut scores = HeadScores {
        previous_token: vec![],
        first_token: vec![],
        induction: vec![],
        duplicate_token: vec![],
    };
    for hook in hooks {
        // (1, nh, 2n, 2n) → per head, the rows of A.
        let a: Vec<Vec<Vec<f32>>> = acts
            .get(hook)?
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .to_vec3()?;
        let mean =
            |a: &Vec<Vec<f32>>, rows: std::ops::Range<usize>, col: &dyn Fn(usize) -> usize| {
                let len = rows.len() as f32;
                rows.map(|i| a[i][col(i)]).sum::<f32>() / len
            };
        scores
            .previous_token
            .push(a.iter().map(|a| mean(a, 1..2 * n, &|i| i - 1)).collect());
        scores
            .first_token
            .push(a.iter().map(|a| mean(a, 0..2 * n, &|_| 0)).collect());
        scores.induction.push(
            a.iter()
                .map(|a| mean(a, n..2 * n, &|i| i - n + 1))
                .collect(),
        );
        scores
            .duplicate_token
            .push(a.iter().map(|a| mean(a, n..2 * n, &|i| i - n)).collect());
    }
    Ok(scores)
}

/// Direct logit attribution at one position: each component of the residual stream read
/// through ln_f (its scale frozen from the real run) and the unembedding direction.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// `(name, layer, head, value)`: `embed`, `pos_embed`, `L{l}H{h}`, `L{l}.attn_bias`,
    /// `L{l}.mlp`, in the order they are added to the residual stream.
    pub components: Vec<(String, Option<usize>, Option<usize>, f64)>,
    /// `b_lnf · direction`.
    pub constant: f64,
    /// The model's own logit (difference) at the position.
    pub logit: f64,
}

/// W_U[:, answer] − W_U[:, wrong] (or W_U[:, answer] alone) in f64: rows of the LM head
/// (`wte` when tied).
fn unembedding_direction(model: &Gpt2, answer: u32, wrong: Option<u32>) -> Result<Vec<f64>> {
    let w_u = |id: u32| -> Result<Vec<f64>> {
        let row = model
            .unembedding()
            .embedding(&Tensor::new(&[id], model.device())?)?;
        Ok(row.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
    };
    let mut direction = w_u(answer)?;
    if let Some(w) = wrong {
        let minus = w_u(w)?;
        direction.iter_mut().zip(minus).for_each(|(d, m)| *d -= m);
    }
    Ok(direction)
}

pub fn attribute(
    model: &Gpt2,
    ids: &Tensor,
    position: usize,
    answer: u32,
    wrong: Option<u32>,
) -> Result<Attribution> {
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let mut hooks = vec![Hook::Embed, Hook::PosEmbed, Hook::LnFinalScale];
    for l in 0..n_layer {
        hooks.push(Hook::Block(l, BlockHook::AttnResult));
        hooks.push(Hook::Block(l, BlockHook::MlpOut));
    }
    let (acts, logits) = record(model, ids, hooks, AllLogits)?;
    let vec =
        |t: &Tensor| -> Result<Vec<f64>> { Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?) };
    let at = |hook: Hook| -> Result<Tensor> { Ok(acts.get(hook)?.narrow(1, position, 1)?) };
    let (w_lnf, b_lnf) = model.final_norm_params()?;
    let direction = unembedding_direction(model, answer, wrong)?;
    let w_lnf = vec(w_lnf)?;
    let scale = vec(&at(Hook::LnFinalScale)?)?[0];
    // ((c − mean c) / scale) · (w_lnf ⊙ direction), in f64.
    let read = |c: Vec<f64>| -> f64 {
        let mean = c.iter().sum::<f64>() / c.len() as f64;
        c.iter()
            .zip(&w_lnf)
            .zip(&direction)
            .map(|((x, w), d)| (x - mean) / scale * w * d)
            .sum()
    };
    let embed = read(vec(&at(Hook::Embed)?)?);
    let pos_embed = read(vec(&at(Hook::PosEmbed)?)?);
    let mut components = vec![
        ("embed".to_string(), None, None, embed),
        ("pos_embed".to_string(), None, None, pos_embed),
    ];
    for l in 0..n_layer {
        let result = at(Hook::Block(l, BlockHook::AttnResult))?; // (1, 1, nh, C)
        for h in 0..nh {
            let c = vec(&result.narrow(2, h, 1)?)?;
            components.push((format!("L{l}H{h}"), Some(l), Some(h), read(c)));
        }
        let bias = vec(model.attn_out_bias(l)?)?;
        components.push((format!("L{l}.attn_bias"), Some(l), None, read(bias)));
        let mlp = vec(&at(Hook::Block(l, BlockHook::MlpOut))?)?;
        components.push((format!("L{l}.mlp"), Some(l), None, read(mlp)));
    }
    let constant: f64 = vec(b_lnf)?.iter().zip(&direction).map(|(b, d)| b * d).sum();
    let row = vec(&logits.narrow(1, position, 1)?)?;
    let logit = row[answer as usize] - wrong.map_or(0.0, |w| row[w as usize]);
    Ok(Attribution {
        components,
        constant,
        logit,
    })
}
