//! The causal toolkit on top of taps: activation patching, ablation and head detection,
//! each as few forward passes as the question allows (independent patched runs are rows
//! of one batch).

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

use super::gpt2::{AllLogits, Gpt2, Inputs, LastLogits, NoLogits, Request, WantLogits};
use super::grad::{gradients, Metric, Quantity};
use super::hooks::{Activations, BlockHook, CaptureSpec, Hook};
use super::tap::{collect, Tap};

/// Where activation patching replaces the corrupt run's activation by the clean run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `hook_resid_pre` of one layer at one position.
    ResidPre,
    /// `hook_attn_out` of one layer at one position.
    AttnOut,
    /// `hook_mlp_out` of one layer at one position.
    MlpOut,
    /// One head's `hook_z` at every position.
    Head,
}

impl Site {
    pub fn as_str(self) -> &'static str {
        match self {
            Site::ResidPre => "resid_pre",
            Site::AttnOut => "attn_out",
            Site::MlpOut => "mlp_out",
            Site::Head => "head",
        }
    }

    fn hook(self, layer: usize) -> Hook {
        Hook::Block(
            layer,
            match self {
                Site::ResidPre => BlockHook::ResidPre,
                Site::AttnOut => BlockHook::AttnOut,
                Site::MlpOut => BlockHook::MlpOut,
                Site::Head => BlockHook::Z,
            },
        )
    }
}

/// The metric of patching: `logit[answer] - logit[wrong]` at the last position.
#[derive(Debug, Clone, Copy)]
pub struct LogitDiff {
    pub answer: u32,
    pub wrong: u32,
}

impl LogitDiff {
    fn of(&self, logits: &Tensor) -> Result<Vec<f32>> {
        // logits (B, 1, V) → one value per row.
        let rows: Vec<Vec<f32>> = logits.squeeze(1)?.to_dtype(DType::F32)?.to_vec2()?;
        Ok(rows
            .iter()
            .map(|r| r[self.answer as usize] - r[self.wrong as usize])
            .collect())
    }
}

#[derive(Debug, Clone)]
pub struct Patching {
    pub clean: f32,
    pub corrupt: f32,
    /// `[L][T]` for a position site, `[L][H]` for heads: the metric of each patched run.
    pub values: Vec<Vec<f32>>,
}

/// Replaces, at `hook`, the rows of the batch where `mask` `(B, T or 1, H or 1, 1 or C)` is
/// 1 by `source` (broadcast over the batch). Exact: each element is either kept or taken.
struct Splice {
    hook: Hook,
    mask: Tensor,
    source: Tensor,
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
fn record_last(model: &Gpt2, ids: &Tensor, hooks: Vec<Hook>) -> Result<(Activations, Tensor)> {
    record(model, ids, hooks, LastLogits)
}

/// A u8 mask tensor `shape` with ones where `on(index)` holds.
fn mask(shape: &[usize], on: impl Fn(&[usize]) -> bool, ids: &Tensor) -> Result<Tensor> {
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

/// Activation patching from `clean` into `corrupt` (both `(1, T)`, the same length) at
/// every layer and position (or head) of `site`. One batched forward pass per layer: row
/// `r` of the batch patches position `r` (or head `r`).
pub fn patch(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    metric: LogitDiff,
    site: Site,
) -> Result<Patching> {
    let (_, t) = clean.dims2()?;
    if corrupt.dims2()? != (1, t) {
        bail!("clean and corrupt texts must have the same number of tokens");
    }
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let hooks: Vec<Hook> = (0..n_layer).map(|l| site.hook(l)).collect();
    let (clean_acts, clean_logits) = record_last(model, clean, hooks)?;
    // Every patched run equals the corrupt run before the patched layer: it starts there,
    // from the corrupt run's residual stream.
    let resid: Vec<Hook> = (0..n_layer)
        .map(|l| Hook::Block(l, BlockHook::ResidPre))
        .collect();
    let (corrupt_acts, corrupt_logits) = record_last(model, corrupt, resid)?;
    let rows = if site == Site::Head { nh } else { t };
    let batch = corrupt.repeat((rows, 1))?; // (rows, T)
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    let mut values = Vec::with_capacity(n_layer);
    for l in 0..n_layer {
        let source = clean_acts.get(site.hook(l))?.clone(); // (1, T, C) or (1, T, nh, hs)
        let mask = match site {
            // (rows, T, 1): row r takes position r.
            Site::ResidPre | Site::AttnOut | Site::MlpOut => {
                mask(&[rows, t, 1], |i| i[0] == i[1], corrupt)?
            }
            // (rows, 1, nh, 1): row r takes head r at every position.
            Site::Head => mask(&[rows, 1, nh, 1], |i| i[0] == i[2], corrupt)?,
        };
        let mut tap = Splice {
            hook: site.hook(l),
            mask,
            source,
        };
        let x = corrupt_acts
            .get(Hook::Block(l, BlockHook::ResidPre))?
            .repeat((rows, 1, 1))?; // (rows, T, C)
        let inputs = Inputs {
            start: Some((l, &x)),
            ..Inputs::new(&batch)
        };
        let logits = model.run(inputs, &req, &mut tap)?;
        values.push(metric.of(&logits)?);
    }
    Ok(Patching {
        clean: metric.of(&clean_logits)?[0],
        corrupt: metric.of(&corrupt_logits)?[0],
        values,
    })
}

/// Attribution patching (Nanda; TransformerLens's `attribution_patch`): every cell of
/// [`patch`]'s grid at each of `sites` to first order, from one clean forward pass and one
/// corrupt forward and backward pass for all of them: metric(corrupt) + (a_clean −
/// a_corrupt) · ∂metric/∂a at the corrupt run, the dot product over d_model at each layer
/// and position, or over positions and d_head of one head's z. The second term is
/// TransformerLens's attribution score (denoising). One [`Patching`] per site, in order.
pub fn attribution_patch(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    metric: LogitDiff,
    sites: &[Site],
) -> Result<Vec<Patching>> {
    let (_, t) = clean.dims2()?;
    if corrupt.dims2()? != (1, t) {
        bail!("clean and corrupt texts must have the same number of tokens");
    }
    let n_layer = model.config().n_layer;
    let hooks: Vec<Hook> = sites
        .iter()
        .flat_map(|site| (0..n_layer).map(|l| site.hook(l)))
        .collect();
    let (clean_acts, clean_logits) = record_last(model, clean, hooks.clone())?;
    let diff = Metric {
        answer: Some(metric.answer),
        wrong: Some(metric.wrong),
        quantity: Quantity::Logit,
    };
    let g = gradients(model, corrupt, None, &diff, &hooks)?;
    let corrupt_value = g.values_of_metric[0];
    let clean_value = metric.of(&clean_logits)?[0];
    let mut out = Vec::with_capacity(sites.len());
    for (&site, hooks) in sites.iter().zip(hooks.chunks(n_layer)) {
        let mut values = Vec::with_capacity(n_layer);
        for &hook in hooks {
            let delta = (clean_acts.get(hook)? - g.values.get(hook)?)?; // (1, T, C) or (1, T, nh, hs)
            let score = (delta * g.grads.get(hook)?)?.squeeze(0)?; // (T, C) or (T, nh, hs)
            let score = match site {
                Site::Head => score.sum(2)?.sum(0)?, // (nh,)
                Site::ResidPre | Site::AttnOut | Site::MlpOut => score.sum(1)?, // (T,)
            };
            let row: Vec<f32> = score.to_vec1()?;
            values.push(row.into_iter().map(|s| corrupt_value + s).collect());
        }
        out.push(Patching {
            clean: clean_value,
            corrupt: corrupt_value,
            values,
        });
    }
    Ok(out)
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

/// Last-position logits `(V,)` of `ids` `(1, T)` with `components` ablated, and without.
pub fn ablate(
    model: &Gpt2,
    ids: &Tensor,
    components: &[Component],
    mode: Ablation,
) -> Result<(Tensor, Tensor)> {
    let hook = |c: &Component| match *c {
        Component::Head(l, _) => Hook::Block(l, BlockHook::Z),
        Component::Mlp(l) => Hook::Block(l, BlockHook::MlpOut),
    };
    let (acts, before) = record_last(model, ids, components.iter().map(hook).collect())?;
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
        logits: LastLogits,
    };
    let mut taps = Splices(splices);
    let after = model.run(Inputs::new(ids), &req, &mut taps)?;
    Ok((before.flatten_all()?, after.flatten_all()?))
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

/// Last-position logits `(L·H, V)` with each head zero-ablated alone: row `l·H + h` has
/// head `h` of layer `l` removed. One forward pass of `L·H` rows.
pub fn zero_each_head(model: &Gpt2, ids: &Tensor) -> Result<Tensor> {
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let rows = n_layer * nh;
    let batch = ids.repeat((rows, 1))?;
    let mut splices = Vec::new();
    for l in 0..n_layer {
        let zero = Tensor::zeros(1, DType::F32, ids.device())?.to_dtype(model.dtype())?;
        splices.push(Splice {
            hook: Hook::Block(l, BlockHook::Z),
            // (rows, 1, nh, 1): row l·H + h loses head h here.
            mask: mask(&[rows, 1, nh, 1], |i| i[0] == l * nh + i[2], ids)?,
            source: zero.reshape((1, 1, 1, 1))?,
        });
    }
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    Ok(model
        .run(Inputs::new(&batch), &req, &mut Splices(splices))?
        .squeeze(1)?)
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

/// `direction` is `W_U[:, answer]` (minus `W_U[:, wrong]`); `ids` `(1, T)`.
/// W_U[:, answer] − W_U[:, wrong] (or W_U[:, answer] alone) in f64: rows of wte, the
/// tied head.
fn unembedding_direction(model: &Gpt2, answer: u32, wrong: Option<u32>) -> Result<Vec<f64>> {
    let w_u = |id: u32| -> Result<Vec<f64>> {
        let row = model
            .wte()
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
