//! The backward pass of the local replacement model, written out: with every attention
//! pattern and layer-norm scale held at the run's values and each MLP's output a constant
//! (but for a transcoder's skip connection), the residual stream is linear in what writes
//! to it, and the gradient of a target's input is carried down by hand through each
//! block's frozen algebra:
//!
//! ```text
//! resid_post[l] = resid_mid[l] + mlp_out[l]      mlp_out = (x W_skipᵀ) + const,  x = ln2_norm(resid_mid)
//! resid_mid[l]  = resid_pre[l] + Σ_h A_h (ln_1(resid_pre) W_V,h) W_O,h       A frozen
//! ln(x)         = (x − mean x) / σ ⊙ γ + β                                 σ frozen
//! ```
//!
//! so `∂/∂x ln(x)ᵀ g = centre(g ⊙ γ) / σ`. A source writing `v` at (layer l, position p)
//! has the direct effect `v · g` on a target, `g` the gradient at `resid_post[l][p]`
//! (circuit-tracer reads it at `hook_mlp_out`); a token's and a position's at the
//! embeddings.

use anyhow::Result;
use candle_core::{Tensor, D};

use super::Nodes;
use crate::analysis::transcoder::{Input, TranscoderSet};
use crate::model::FrozenBlock;

/// What the run froze, per layer: σ of ln_1 and ln_2 `(T, 1)`, the pattern `(nh, T, T)`
/// transposed (`Aᵀ`, keys by queries), and the block's weights; σ and γ of ln_f.
pub struct FrozenPath {
    pub blocks: Vec<FrozenLayer>,
    pub ln_f_scale: Tensor,
    pub ln_f_gain: Tensor,
}

pub struct FrozenLayer {
    pub ln1_scale: Tensor,
    pub ln2_scale: Tensor,
    pub pattern_t: Tensor,
    pub weights: FrozenBlock,
    /// What the transcoders read: ln_2's normalized input, or its output (then a gradient
    /// there passes ln_2's gain first).
    pub input: Input,
}

impl FrozenLayer {
    /// The gradient `(n, T, C)` at the block's `resid_mid` of a gradient `v` at the
    /// transcoders' input.
    fn input_back(&self, v: &Tensor) -> Result<Tensor> {
        match self.input {
            Input::Normalized => norm_back(v, &self.ln2_scale),
            Input::LnOut => norm_back(&v.broadcast_mul(&self.weights.ln2_gain)?, &self.ln2_scale),
        }
    }
}

/// A row of the graph: the node whose input is differentiated. `layer` = n_layers for a
/// logit (read at ln_f's output), else the transcoder layer whose encoder row reads its
/// input (`ln2.hook_normalized`, or ln_2's output); `vector` `(C,)`: the encoder row, or the demeaned unembedding.
pub struct Target {
    pub layer: usize,
    pub pos: usize,
    pub vector: Tensor,
}

/// `centre(x) / σ`: the input gradient of a frozen layer norm without its gain, `x`
/// `(n, T, C)`, `scale` `(T, 1)`.
fn norm_back(x: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    Ok(centred.broadcast_div(scale)?)
}

/// Every row's direct effects: `(n targets, n columns)` over circuit-tracer's columns
/// (active features, errors, tokens; not logits) and `(n, T)` over the position
/// embeddings.
pub fn rows(
    path: &FrozenPath,
    tset: &TranscoderSet,
    nodes: &Nodes,
    targets: &[Target],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let n = targets.len();
    let (t, c) = nodes.errors.dims3().map(|(_, t, c)| (t, c))?;
    let n_layers = path.blocks.len();
    let width = nodes.columns();
    // Deepest first, so the rows alive at layer l are a prefix.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(targets[i].layer));
    let alive = |l: usize| order.iter().take_while(|&&i| targets[i].layer >= l).count();
    let mut out = vec![0f32; n * width];
    let mut g = Tensor::zeros(
        (n, t, c),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let injected = inject(targets, &order, n_layers, (t, c))?;
    if let Some(v) = injected {
        let v = v.broadcast_mul(&path.ln_f_gain)?;
        g = (g + norm_back(&v, &path.ln_f_scale)?)?;
    }
    for l in (0..n_layers).rev() {
        let k = alive(l + 1);
        if k > 0 {
            scores_at(&g.narrow(0, 0, k)?, nodes, l, &order[..k], width, &mut out)?;
        }
        let k = alive(l);
        if k == 0 {
            continue;
        }
        let frozen = &path.blocks[l];
        let mut gl = g.narrow(0, 0, k)?;
        if let Some(s) = tset.layers[l].skip_gradient(&gl.reshape((k * t, c))?)? {
            gl = (&gl + frozen.input_back(&s.reshape((k, t, c))?)?)?;
        }
        if let Some(v) = inject(targets, &order[..k], l, (t, c))? {
            gl = (gl + frozen.input_back(&v)?)?;
        }
        let through = attention_back(&gl, frozen)?;
        gl = (gl + through)?;
        g = match k < n {
            true => Tensor::cat(&[&gl, &g.narrow(0, k, n - k)?], 0)?,
            false => gl,
        };
    }
    let mut positions = vec![0f32; n * t];
    embedding_scores(&g, nodes, &order, width, &mut out, &mut positions)?;
    Ok((out, positions))
}

/// The targets of `layer` among `order`'s rows as gradients `(rows, T, C)`: each one's
/// vector at its position; `None` when none is at that layer.
fn inject(
    targets: &[Target],
    order: &[usize],
    layer: usize,
    (t, c): (usize, usize),
) -> Result<Option<Tensor>> {
    if !order.iter().any(|&i| targets[i].layer == layer) {
        return Ok(None);
    }
    let mut v = vec![0f32; order.len() * t * c];
    for (row, &i) in order.iter().enumerate() {
        let target = &targets[i];
        if target.layer == layer {
            let at = (row * t + target.pos) * c;
            v[at..at + c].copy_from_slice(&target.vector.to_vec1::<f32>()?);
        }
    }
    Ok(Some(Tensor::from_vec(
        v,
        (order.len(), t, c),
        &candle_core::Device::Cpu,
    )?))
}

/// The gradient `(k, T, C)` at a block's input through its frozen attention, from the
/// gradient `g` at its output: `centre((Σ_h A_hᵀ g W_O,hᵀ) W_V,hᵀ ⊙ γ1) / σ1`.
fn attention_back(g: &Tensor, frozen: &FrozenLayer) -> Result<Tensor> {
    let (k, t, c) = g.dims3()?;
    let nh = frozen.pattern_t.dim(0)?;
    let hs = c / nh;
    let w = &frozen.weights;
    let g_z = g.reshape((k * t, c))?.matmul(&w.w_o.t()?)?; // (k·T, C)
                                                           // (k, T, nh, hs) → (nh, T, k·hs): one product per head over the queries.
    let g_z = (g_z.reshape((k, t, nh, hs))?.permute((2, 1, 0, 3))?)
        .contiguous()?
        .reshape((nh, t, k * hs))?;
    let g_v = frozen.pattern_t.matmul(&g_z)?; // (nh, T keys, k·hs)
    let g_v = (g_v.reshape((nh, t, k, hs))?.permute((2, 1, 0, 3))?)
        .contiguous()?
        .reshape((k * t, c))?;
    let g_ln = g_v.matmul(&w.w_v.t()?)?.reshape((k, t, c))?; // (k, T, C)
    norm_back(&g_ln.broadcast_mul(&w.ln1_gain)?, &frozen.ln1_scale)
}

/// Layer `l`'s sources read from `g` `(k, T, C)`, the gradient at `resid_post[l]`: each
/// active feature's `a W_dec` written to layer `l` at its position, and each position's
/// error.
fn scores_at(
    g: &Tensor,
    nodes: &Nodes,
    l: usize,
    rows: &[usize],
    width: usize,
    out: &mut [f32],
) -> Result<()> {
    let t = g.dim(1)?;
    for p in 0..t {
        let at = g.narrow(1, p, 1)?.squeeze(1)?; // (k, C)
        for (start, decoders) in nodes.decoders_at(l, p) {
            // A cross-layer feature's effect sums over the layers it writes to.
            let s = at.matmul(&decoders.t()?)?; // (k, n_lp)
            add(out, rows, width, *start, &s.to_vec2::<f32>()?);
        }
    }
    let errors = nodes.errors.narrow(0, l, 1)?; // (1, T, C)
    let e = g.broadcast_mul(&errors)?.sum(D::Minus1)?; // (k, T)
    write(
        out,
        rows,
        width,
        nodes.error_column(l, 0),
        &e.to_vec2::<f32>()?,
    );
    Ok(())
}

/// The token and position embeddings' effects from `g` `(n, T, C)`, the gradient at the
/// embeddings.
fn embedding_scores(
    g: &Tensor,
    nodes: &Nodes,
    order: &[usize],
    width: usize,
    out: &mut [f32],
    positions: &mut [f32],
) -> Result<()> {
    let tok = g
        .broadcast_mul(&nodes.tokens)?
        .sum(D::Minus1)?
        .to_vec2::<f32>()?;
    write(out, order, width, nodes.token_column(0), &tok);
    let pos = g
        .broadcast_mul(&nodes.positions)?
        .sum(D::Minus1)?
        .to_vec2::<f32>()?;
    write(positions, order, pos[0].len(), 0, &pos);
    Ok(())
}

/// Adds `values[j]` into row `rows[j]` of `out` (`width` columns) from column `start`.
fn add(out: &mut [f32], rows: &[usize], width: usize, start: usize, values: &[Vec<f32>]) {
    for (&row, v) in rows.iter().zip(values) {
        let dst = &mut out[row * width + start..row * width + start + v.len()];
        dst.iter_mut().zip(v).for_each(|(d, x)| *d += x);
    }
}

/// Writes `values[j]` into row `rows[j]` of `out` (`width` columns) from column `start`.
fn write(out: &mut [f32], rows: &[usize], width: usize, start: usize, values: &[Vec<f32>]) {
    for (&row, v) in rows.iter().zip(values) {
        out[row * width + start..row * width + start + v.len()].copy_from_slice(v);
    }
}
