//! Activation patching at every site TransformerLens patches: each cell of a grid is the
//! corrupt run with one activation (or one part of one) taken from the clean run. Cells
//! are rows of batched passes that start where they first differ from the corrupt run.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

use crate::analysis::grad::backward;
use crate::analysis::interventions::{mask, record_tail, Splice};
use crate::analysis::metric::Measure;
use crate::analysis::progress::Progress;
use crate::model::gpt2::{Gpt2, Inputs, Request, TailLogits};
use crate::model::hooks::{BlockHook, CaptureSpec, Hook};

/// Where activation patching replaces the corrupt run's activation by the clean run's,
/// with TransformerLens's `get_act_patch_*` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `hook_resid_pre` of one layer at one position.
    ResidPre,
    /// `hook_resid_mid` of one layer at one position.
    ResidMid,
    /// `hook_attn_out` of one layer at one position.
    AttnOut,
    /// `hook_mlp_out` of one layer at one position.
    MlpOut,
    /// One head's `hook_z` (at every position, or at one).
    Head,
    /// One head's `hook_q`.
    Q,
    /// One head's `hook_k`.
    K,
    /// One head's `hook_v`.
    V,
    /// One head's `hook_pattern` (whole, or one destination row).
    Pattern,
    /// One (destination, source) entry of one head's `hook_pattern`.
    PatternDestSrc,
}

impl Site {
    pub fn as_str(self) -> &'static str {
        match self {
            Site::ResidPre => "resid_pre",
            Site::ResidMid => "resid_mid",
            Site::AttnOut => "attn_out",
            Site::MlpOut => "mlp_out",
            Site::Head => "head",
            Site::Q => "q",
            Site::K => "k",
            Site::V => "v",
            Site::Pattern => "pattern",
            Site::PatternDestSrc => "pattern-dest-src",
        }
    }

    pub fn hook(self, layer: usize) -> Hook {
        Hook::Block(
            layer,
            match self {
                Site::ResidPre => BlockHook::ResidPre,
                Site::ResidMid => BlockHook::ResidMid,
                Site::AttnOut => BlockHook::AttnOut,
                Site::MlpOut => BlockHook::MlpOut,
                Site::Head => BlockHook::Z,
                Site::Q => BlockHook::Q,
                Site::K => BlockHook::K,
                Site::V => BlockHook::V,
                Site::Pattern | Site::PatternDestSrc => BlockHook::Pattern,
            },
        )
    }

    /// The names of a grid's axes after its layer axis, TransformerLens's order:
    /// `pos`, `head`, `dest` and `src`.
    pub fn axes(self, by_position: bool) -> &'static [&'static str] {
        Cells::of(self, by_position, 1, 1).names
    }
}

/// How a site's grid maps onto its hook's tensor (without the batch axis).
struct Cells {
    /// The grid after its layer axis: `[T]`, `[H]`, `[T, H]`, `[H, T]` or `[H, T, T]`.
    grid: Vec<usize>,
    names: &'static [&'static str],
    /// For each axis of the hook's tensor: the grid axis a cell fixes it to, or `None`
    /// (a cell patches all of it).
    axes: Vec<Option<usize>>,
    /// Whether a cell is a run: a pattern entry above the diagonal is masked.
    causal: bool,
}

impl Cells {
    /// `t` positions, `nh` heads.
    fn of(site: Site, by_position: bool, t: usize, nh: usize) -> Cells {
        let (grid, names, axes): (Vec<usize>, &'static [&'static str], Vec<Option<usize>>) =
            match (site, by_position) {
                // (T, C)
                (Site::ResidPre | Site::ResidMid | Site::AttnOut | Site::MlpOut, _) => {
                    (vec![t], &["pos"], vec![Some(0), None])
                }
                // (T, nh, hs)
                (Site::Head | Site::Q | Site::K | Site::V, false) => {
                    (vec![nh], &["head"], vec![None, Some(0), None])
                }
                (Site::Head | Site::Q | Site::K | Site::V, true) => {
                    (vec![t, nh], &["pos", "head"], vec![Some(0), Some(1), None])
                }
                // (nh, T, T)
                (Site::Pattern, false) => (vec![nh], &["head"], vec![Some(0), None, None]),
                (Site::Pattern, true) => {
                    (vec![nh, t], &["head", "dest"], vec![Some(0), Some(1), None])
                }
                (Site::PatternDestSrc, _) => (
                    vec![nh, t, t],
                    &["head", "dest", "src"],
                    vec![Some(0), Some(1), Some(2)],
                ),
            };
        Cells {
            grid,
            names,
            axes,
            causal: site == Site::PatternDestSrc,
        }
    }

    fn size(&self) -> usize {
        self.grid.iter().product()
    }

    /// The grid index of flat cell `i`, row-major.
    fn index(&self, mut i: usize) -> Vec<usize> {
        let mut idx = vec![0; self.grid.len()];
        for (d, &n) in self.grid.iter().enumerate().rev() {
            idx[d] = i % n;
            i /= n;
        }
        idx
    }

    /// Whether each cell of `layers` layers' grids is a run.
    fn is_run(&self, layers: usize) -> Vec<bool> {
        let mut run = vec![false; self.size()];
        for i in self.runs() {
            run[i] = true;
        }
        run.repeat(layers)
    }

    /// The flat indices of the cells that are runs.
    fn runs(&self) -> Vec<usize> {
        (0..self.size())
            .filter(|&i| {
                !self.causal || {
                    let c = self.index(i);
                    c[2] <= c[1]
                }
            })
            .collect()
    }

    /// The mask `(rows, …)` of a batch whose row `r` patches cell `cells[r]`.
    fn mask(&self, cells: &[usize], ids: &Tensor) -> Result<Tensor> {
        let mut shape = vec![cells.len()];
        shape.extend(self.axes.iter().map(|a| a.map_or(1, |g| self.grid[g])));
        let idx: Vec<Vec<usize>> = cells.iter().map(|&c| self.index(c)).collect();
        mask(
            &shape,
            |i| {
                let cell = &idx[i[0]];
                (self.axes.iter().zip(&i[1..])).all(|(a, &j)| a.is_none_or(|g| cell[g] == j))
            },
            ids,
        )
    }

    /// `score` (the hook's tensor without its batch axis) summed over what a cell
    /// patches: the grid, flat, NaN where a cell is not a run.
    fn sum(&self, score: &Tensor) -> Result<Vec<f32>> {
        let mut s = score.clone();
        for (axis, a) in self.axes.iter().enumerate().rev() {
            if a.is_none() {
                s = s.sum(axis)?;
            }
        }
        let mut values: Vec<f32> = s.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        let runs = self.runs();
        for (i, v) in values.iter_mut().enumerate() {
            if runs.binary_search(&i).is_err() {
                *v = f32::NAN;
            }
        }
        Ok(values)
    }
}

#[derive(Debug, Clone)]
pub struct Patching {
    pub clean: f32,
    pub corrupt: f32,
    /// `[L, …]`: the layer axis, then [`Site::axes`].
    pub shape: Vec<usize>,
    /// The metric of each patched run, row-major over `shape`; NaN where a cell is not a
    /// run (a masked pattern entry).
    pub values: Vec<f32>,
    /// Whether each cell is a run.
    pub is_run: Vec<bool>,
}

impl Patching {
    /// The values as rows along the last axis.
    pub fn rows(&self) -> Vec<Vec<f32>> {
        let n = *self.shape.last().unwrap_or(&1);
        self.values.chunks(n.max(1)).map(<[f32]>::to_vec).collect()
    }
}

/// Tokens per batched pass: bounds the memory of a grid of many cells.
const ROW_TOKENS: usize = 4096;

/// Both runs the same length; returns it.
pub(super) fn same_length(clean: &Tensor, corrupt: &Tensor) -> Result<usize> {
    let (_, t) = clean.dims2()?;
    if corrupt.dims2()? != (1, t) {
        bail!("clean and corrupt texts must have the same number of tokens");
    }
    Ok(t)
}

/// How far apart the clean and corrupt metrics must be for a share of their difference to
/// be a measurement: the tool's parity tolerance (1e-4), relative to the metrics' size
/// when they are larger than 1. Closer than that, `(v − corrupt) / (clean − corrupt)` is
/// float noise over float noise.
const SHARE_TOLERANCE: f32 = 1e-4;

/// `clean − corrupt` when a share of it is defined (see [`SHARE_TOLERANCE`]), the one rule
/// `patch` and `circuit` share.
pub fn share_span(clean: f32, corrupt: f32) -> Option<f32> {
    let span = clean - corrupt;
    let scale = clean.abs().max(corrupt.abs()).max(1.0);
    (span.abs() > SHARE_TOLERANCE * scale).then_some(span)
}

/// Each patched run's share of the clean run restored, `(v − corrupt) / (clean − corrupt)`:
/// 1 restores the clean metric, 0 leaves the corrupt one. NaN for every cell when the two
/// runs' metrics are equal up to float noise (the share is undefined: [`share_span`]),
/// and where a cell is not a run.
pub fn restored(values: &[f32], clean: f32, corrupt: f32) -> Vec<f32> {
    let span = share_span(clean, corrupt);
    (values.iter())
        .map(|&v| span.map_or(f32::NAN, |s| (v - corrupt) / s))
        .collect()
}

/// Activation patching from `clean` into `corrupt` (both `(1, T)`, the same length) at
/// every cell of `site` in every layer (by position too, for the head sites, when
/// `by_position`). Each layer's cells are rows of batched passes that start at that layer
/// from the corrupt run's residual stream: every patched run equals it before.
pub fn patch(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    measure: &Measure,
    site: Site,
    by_position: bool,
    progress: &mut dyn Progress,
) -> Result<Patching> {
    let t = same_length(clean, corrupt)?;
    let cfg = model.config();
    let n_layer = cfg.n_layer;
    let cells = Cells::of(site, by_position, t, cfg.n_head);
    let tail = measure.positions();
    let hooks: Vec<Hook> = (0..n_layer).map(|l| site.hook(l)).collect();
    let (clean_acts, clean_logits) = record_tail(model, clean, hooks, tail)?;
    let metric = measure.against(&clean_logits)?;
    let resid = (0..n_layer).map(|l| Hook::Block(l, BlockHook::ResidPre));
    let (corrupt_acts, corrupt_logits) = record_tail(model, corrupt, resid.collect(), tail)?;
    let req = Request {
        capture: CaptureSpec::default(),
        logits: TailLogits(tail),
    };
    let per = cells.size();
    let mut values = vec![f32::NAN; n_layer * per];
    let runs = cells.runs();
    progress.start((n_layer * runs.len()) as u64, "patched runs");
    for l in 0..n_layer {
        let source = clean_acts.get(site.hook(l))?; // (1, …) as the hook records
        let x = corrupt_acts.get(Hook::Block(l, BlockHook::ResidPre))?; // (1, T, C)
        for chunk in runs.chunks((ROW_TOKENS / t).max(1)) {
            let rows = chunk.len();
            let mut tap = Splice {
                hook: site.hook(l),
                mask: cells.mask(chunk, corrupt)?,
                source: source.clone(),
            };
            let x = x.repeat((rows, 1, 1))?; // (rows, T, C)
            let batch = corrupt.repeat((rows, 1))?; // (rows, T)
            let inputs = Inputs {
                start: Some((l, &x)),
                ..Inputs::new(&batch)
            };
            let logits = model.run(inputs, &req, &mut tap)?;
            for (&cell, v) in chunk.iter().zip(metric.of(&logits)?) {
                values[l * per + cell] = v;
            }
            progress.advance(rows as u64)?;
        }
    }
    let mut shape = vec![n_layer];
    shape.extend(&cells.grid);
    Ok(Patching {
        clean: metric.of(&clean_logits)?[0],
        corrupt: metric.of(&corrupt_logits)?[0],
        shape,
        values,
        is_run: cells.is_run(n_layer),
    })
}

/// Attribution patching (Nanda; TransformerLens's `attribution_patch`): every cell of
/// [`patch`]'s grid at each of `sites` to first order, from one clean forward pass and one
/// corrupt forward and backward pass for all of them: metric(corrupt) + (a_clean −
/// a_corrupt) · ∂metric/∂a at the corrupt run, the dot product over what the cell
/// patches. The second term is TransformerLens's attribution score (denoising). One
/// [`Patching`] per site, in order.
pub fn attribution_patch(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    measure: &Measure,
    sites: &[Site],
    by_position: bool,
) -> Result<Vec<Patching>> {
    let t = same_length(clean, corrupt)?;
    let cfg = model.config();
    let n_layer = cfg.n_layer;
    let mut hooks: Vec<Hook> = sites
        .iter()
        .flat_map(|site| (0..n_layer).map(|l| site.hook(l)))
        .collect();
    hooks.sort();
    hooks.dedup();
    let tail = measure.positions();
    let (clean_acts, clean_logits) = record_tail(model, clean, hooks.clone(), tail)?;
    let metric = measure.against(&clean_logits)?;
    let g = backward(model, (corrupt, None), tail, &hooks, |l| metric.tensor(l))?;
    let corrupt_value = g.values_of_metric[0];
    let clean_value = metric.of(&clean_logits)?[0];
    let mut out = Vec::with_capacity(sites.len());
    for &site in sites {
        let cells = Cells::of(site, by_position, t, cfg.n_head);
        let mut values = Vec::with_capacity(n_layer * cells.size());
        for l in 0..n_layer {
            let hook = site.hook(l);
            let delta = (clean_acts.get(hook)? - g.values.get(hook)?)?; // (1, …)
            let score = (delta * g.grads.get(hook)?)?.squeeze(0)?;
            values.extend(cells.sum(&score)?.into_iter().map(|s| corrupt_value + s));
        }
        let mut shape = vec![n_layer];
        shape.extend(&cells.grid);
        out.push(Patching {
            clean: clean_value,
            corrupt: corrupt_value,
            shape,
            values,
            is_run: cells.is_run(n_layer),
        });
    }
    Ok(out)
}
