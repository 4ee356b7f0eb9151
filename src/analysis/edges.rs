//! Circuits as edges: which writer into the residual stream matters to which reader.
//!
//! Writers: the embedding (token + position), each head (its share of c_proj, without the
//! bias) and each MLP. Readers: each head's query, key and value inputs (its own copy of
//! the residual stream before ln_1, TransformerLens's split inputs), each MLP's input
//! (before ln_2) and the logits (the residual stream before ln_f). Every reader's input
//! is the sum of the writers before it and the attention biases, so an edge is one term
//! of one reader's input.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

use crate::analysis::grad::{backward, rows_per_pass};
use crate::analysis::interventions::record_tail;
use crate::analysis::metric::Measure;
use crate::analysis::patching::{same_length, Patching};
use crate::analysis::progress::Progress;
use crate::model::gpt2::{Gpt2, Inputs, Request, TailLogits};
use crate::model::hooks::{Activations, BlockHook, CaptureSpec, Hook};
use crate::model::tap::Tap;

/// A node that adds to the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Embed,
    Head(usize, usize),
    Mlp(usize),
}

/// Which of a head's inputs a reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qkv {
    Q,
    K,
    V,
}

/// A node's input, read from the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Head(usize, usize, Qkv),
    Mlp(usize),
    Logits,
}

impl Writer {
    /// `embed`, `L{l}H{h}`, `mlp{l}`.
    pub fn name(self) -> String {
        match self {
            Writer::Embed => "embed".into(),
            Writer::Head(l, h) => format!("L{l}H{h}"),
            Writer::Mlp(l) => format!("mlp{l}"),
        }
    }

    /// Every writer in the order they add to the residual stream.
    pub fn all(n_layer: usize, n_head: usize) -> Vec<Writer> {
        let mut out = vec![Writer::Embed];
        for l in 0..n_layer {
            out.extend((0..n_head).map(|h| Writer::Head(l, h)));
            out.push(Writer::Mlp(l));
        }
        out
    }

    /// Its step in the data flow: a reader at a later step reads it.
    fn step(self) -> usize {
        match self {
            Writer::Embed => 0,
            Writer::Head(l, _) => 2 * l + 1,
            Writer::Mlp(l) => 2 * l + 2,
        }
    }

    /// The hooks its value is made of.
    fn hooks(self) -> Vec<Hook> {
        match self {
            Writer::Embed => vec![Hook::Embed, Hook::PosEmbed],
            Writer::Head(l, _) => vec![Hook::Block(l, BlockHook::AttnResult)],
            Writer::Mlp(l) => vec![Hook::Block(l, BlockHook::MlpOut)],
        }
    }

    /// Its value `(B, T, C)` in a run that recorded [`Writer::hooks`].
    fn value(self, acts: &Activations) -> Result<Tensor> {
        Ok(match self {
            Writer::Embed => acts
                .get(Hook::Embed)?
                .broadcast_add(acts.get(Hook::PosEmbed)?)?,
            Writer::Head(l, h) => acts
                .get(Hook::Block(l, BlockHook::AttnResult))?
                .narrow(2, h, 1)?
                .squeeze(2)?,
            Writer::Mlp(l) => acts.get(Hook::Block(l, BlockHook::MlpOut))?.clone(),
        })
    }
}

impl Reader {
    /// `L{l}H{h}.q` (`.k`, `.v`), `mlp{l}`, `logits`.
    pub fn name(self) -> String {
        match self {
            Reader::Head(l, h, qkv) => format!("L{l}H{h}.{}", qkv.as_str()),
            Reader::Mlp(l) => format!("mlp{l}"),
            Reader::Logits => "logits".into(),
        }
    }

    /// Every reader in data-flow order: per layer each head's q, k, v, then the MLP; last
    /// the logits.
    pub fn all(n_layer: usize, n_head: usize) -> Vec<Reader> {
        let mut out = Vec::new();
        for l in 0..n_layer {
            for h in 0..n_head {
                out.extend([Qkv::Q, Qkv::K, Qkv::V].map(|x| Reader::Head(l, h, x)));
            }
            out.push(Reader::Mlp(l));
        }
        out.push(Reader::Logits);
        out
    }

    fn step(self, n_layer: usize) -> usize {
        match self {
            Reader::Head(l, _, _) => 2 * l + 1,
            Reader::Mlp(l) => 2 * l + 2,
            Reader::Logits => 2 * n_layer + 1,
        }
    }

    /// Whether `w` is among the writers this reader's input sums.
    pub fn reads(self, w: Writer, n_layer: usize) -> bool {
        w.step() < self.step(n_layer)
    }

    /// The hook that holds its input: hook_q_input (k, v), hook_mlp_in, or the last
    /// block's hook_resid_post (read by ln_f alone).
    fn hook(self, n_layer: usize) -> Hook {
        match self {
            Reader::Head(l, _, x) => Hook::Block(l, x.input()),
            Reader::Mlp(l) => Hook::Block(l, BlockHook::MlpIn),
            Reader::Logits => Hook::Block(n_layer - 1, BlockHook::ResidPost),
        }
    }

    /// The block a run patching this reader starts at.
    fn layer(self, n_layer: usize) -> usize {
        match self {
            Reader::Head(l, _, _) | Reader::Mlp(l) => l,
            Reader::Logits => n_layer - 1,
        }
    }
}

impl Qkv {
    pub fn as_str(self) -> &'static str {
        match self {
            Qkv::Q => "q",
            Qkv::K => "k",
            Qkv::V => "v",
        }
    }

    fn input(self) -> BlockHook {
        match self {
            Qkv::Q => BlockHook::QInput,
            Qkv::K => BlockHook::KInput,
            Qkv::V => BlockHook::VInput,
        }
    }
}

/// The hooks every writer's value is made of, and every reader's input hook.
fn writer_hooks(writers: &[Writer]) -> Vec<Hook> {
    let mut hooks: Vec<Hook> = writers.iter().flat_map(|w| w.hooks()).collect();
    hooks.sort();
    hooks.dedup();
    hooks
}

/// `x` + `delta` at each of its hooks.
struct AddAt(Vec<(Hook, Tensor)>);

impl Tap for AddAt {
    fn wants(&self, hook: Hook) -> bool {
        self.0.iter().any(|(h, _)| *h == hook)
    }

    fn tap(&mut self, hook: Hook, mut x: Tensor) -> Result<Tensor> {
        for (h, delta) in &self.0 {
            if *h == hook {
                x = x.broadcast_add(delta)?;
            }
        }
        Ok(x)
    }
}

/// The metric of the clean run, of the corrupt run, and of each edge patched alone.
#[derive(Debug, Clone)]
pub struct EdgePatches {
    pub clean: f32,
    pub corrupt: f32,
    pub values: Vec<f32>,
}

/// Exact edge patching (Wang et al. 2022, path patching's direct edges): for each edge,
/// the corrupt run with the reader's input given the writer's clean-minus-corrupt value
/// (the reader's layer norm recomputed), and everything after that reader recomputed
/// from it; every other reader sees the corrupt run. Edges are rows of batched passes,
/// one per reader layer, that start there from the corrupt run's residual stream.
pub fn edge_patch(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    measure: &Measure,
    edges: &[(Writer, Reader)],
    progress: &mut dyn Progress,
) -> Result<EdgePatches> {
    let t = same_length(clean, corrupt)?;
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    for &(w, r) in edges {
        if !r.reads(w, n_layer) {
            bail!("{} does not read {}", r.name(), w.name());
        }
    }
    let writers: Vec<Writer> = edges.iter().map(|e| e.0).collect();
    let hooks = writer_hooks(&writers);
    let tail = measure.positions();
    let (clean_acts, clean_logits) = record_tail(model, clean, hooks.clone(), tail)?;
    let metric = measure.against(&clean_logits)?;
    let resid = (0..n_layer).map(|l| Hook::Block(l, BlockHook::ResidPre));
    let hooks = resid.chain(hooks).collect();
    let (corrupt_acts, corrupt_logits) = record_tail(model, corrupt, hooks, tail)?;
    let req = Request {
        capture: CaptureSpec::default(),
        logits: TailLogits(tail),
    };
    let mut values = vec![f32::NAN; edges.len()];
    progress.start(edges.len() as u64, "edge patches");
    for l in 0..n_layer {
        let rows: Vec<usize> = (0..edges.len())
            .filter(|&i| edges[i].1.layer(n_layer) == l)
            .collect();
        for chunk in rows.chunks((4096 / t).max(1)) {
            let chunk_edges: Vec<_> = chunk.iter().map(|&i| edges[i]).collect();
            let mut tap = addends(&chunk_edges, (&clean_acts, &corrupt_acts), n_layer, nh)?;
            let x = corrupt_acts
                .get(Hook::Block(l, BlockHook::ResidPre))?
                .repeat((chunk.len(), 1, 1))?; // (rows, T, C)
            let batch = corrupt.repeat((chunk.len(), 1))?;
            let inputs = Inputs {
                start: Some((l, &x)),
                ..Inputs::new(&batch)
            };
            let logits = model.run(inputs, &req, &mut tap)?;
            for (&i, v) in chunk.iter().zip(metric.of(&logits)?) {
                values[i] = v;
            }
            progress.advance(chunk.len() as u64)?;
        }
    }
    Ok(EdgePatches {
        clean: metric.of(&clean_logits)?[0],
        corrupt: metric.of(&corrupt_logits)?[0],
        values,
    })
}

/// Path patching from head `sender` `(layer, head)`: its edge to `to` of every later head
/// (`[L, H]`, the cells of its own layer and earlier not runs), or with `to` `None` its
/// edge to the logits, its direct effect (shape `[]`, one value). See [`edge_patch`].
pub fn path_patch(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    measure: &Measure,
    sender: (usize, usize),
    to: Option<Qkv>,
    progress: &mut dyn Progress,
) -> Result<Patching> {
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let w = Writer::Head(sender.0, sender.1);
    let (shape, cells): (Vec<usize>, Vec<(usize, Reader)>) = match to {
        None => (vec![], vec![(0, Reader::Logits)]),
        Some(x) => (
            vec![n_layer, nh],
            (sender.0 + 1..n_layer)
                .flat_map(|l| (0..nh).map(move |h| (l * nh + h, Reader::Head(l, h, x))))
                .collect(),
        ),
    };
    let edges: Vec<(Writer, Reader)> = cells.iter().map(|&(_, r)| (w, r)).collect();
    let p = edge_patch(model, clean, corrupt, measure, &edges, progress)?;
    let size = shape.iter().product();
    let (mut values, mut is_run) = (vec![f32::NAN; size], vec![false; size]);
    for (&(i, _), v) in cells.iter().zip(p.values) {
        values[i] = v;
        is_run[i] = true;
    }
    Ok(Patching {
        clean: p.clean,
        corrupt: p.corrupt,
        shape,
        values,
        is_run,
    })
}

/// The tap of a batch whose row `i` patches `edges[i]`: each reader's input plus its
/// writer's clean − corrupt value.
fn addends(
    edges: &[(Writer, Reader)],
    (clean, corrupt): (&Activations, &Activations),
    n_layer: usize,
    nh: usize,
) -> Result<AddAt> {
    let mut adds: Vec<(Hook, Vec<Tensor>)> = Vec::new();
    for (row, &(w, r)) in edges.iter().enumerate() {
        let delta = (w.value(clean)? - w.value(corrupt)?)?; // (1, T, C)
        add_row(&mut adds, r.hook(n_layer), row, edges.len(), delta, r, nh)?;
    }
    Ok(AddAt(
        adds.into_iter()
            .map(|(h, rows)| Ok((h, Tensor::cat(&rows, 0)?)))
            .collect::<Result<_>>()?,
    ))
}

/// Puts `delta` `(1, T, C)` at row `row` of `rows` in `hook`'s addend (`(rows, T, nh, C)`
/// for a head's input, at the reader's head; `(rows, T, C)` otherwise), zeros elsewhere.
fn add_row(
    adds: &mut Vec<(Hook, Vec<Tensor>)>,
    hook: Hook,
    row: usize,
    rows: usize,
    delta: Tensor,
    reader: Reader,
    nh: usize,
) -> Result<()> {
    let (_, t, c) = delta.dims3()?;
    let one = match reader {
        Reader::Head(_, h, _) => {
            let z = Tensor::zeros((1, t, nh, c), delta.dtype(), delta.device())?;
            z.slice_assign(&[0..1, 0..t, h..h + 1, 0..c], &delta.unsqueeze(2)?)?
        }
        Reader::Mlp(_) | Reader::Logits => delta,
    };
    let i = match adds.iter().position(|(h, _)| *h == hook) {
        Some(i) => i,
        None => {
            let zero = one.zeros_like()?;
            adds.push((hook, vec![zero; rows]));
            adds.len() - 1
        }
    };
    adds[i].1[row] = one;
    Ok(())
}

/// Every edge's attribution score, and the runs' metrics.
#[derive(Debug, Clone)]
pub struct EdgeScores {
    pub clean: f32,
    pub corrupt: f32,
    pub writers: Vec<Writer>,
    pub readers: Vec<Reader>,
    /// `(writer index, reader index, score)` of every edge, by |score| descending (ties in
    /// data-flow order).
    pub edges: Vec<(usize, usize, f32)>,
}

/// Edge attribution patching (EAP, Syed et al. 2023): each edge's score is (writer_clean
/// − writer_corrupt) · ∂metric/∂(reader's input), summed over positions and d_model, the
/// gradient taken at the corrupt run through every layer norm. With `ig_steps` = N > 1
/// (EAP-IG, Hanna et al. 2024, as their `eap` library computes it): the gradient averaged
/// over the N runs whose token embeddings are corrupt + k/N · (clean − corrupt), k = 0 …
/// N − 1 (k = 0 is the corrupt run: N = 1 is plain EAP). One clean forward pass and
/// batched forward and backward passes of the N rows, as many rows a pass as hold about
/// [`crate::analysis::grad::PASS_BUDGET`].
pub fn edge_attribution(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    measure: &Measure,
    ig_steps: usize,
    progress: &mut dyn Progress,
) -> Result<EdgeScores> {
    // What the probes add per token per layer, in d_model vectors: each head's q, k and v
    // inputs are a d_model vector per head, and each keeps about 18 of them for the
    // backward (its value, the zero variable, its gradient, and ln_1's and the
    // projection's intermediates over the split input). Measured: on gpt2 with 16 tokens,
    // each row of a pass adds about 500 MB (scripts/bench.sh, circuit --ig-steps).
    let probed = 18 * 3 * model.config().n_head + 6;
    let per_pass = rows_per_pass(model, clean.dim(1)?, ig_steps.max(1), probed);
    let runs = (clean, corrupt);
    edge_attribution_in_passes(model, runs, measure, (ig_steps, per_pass), progress)
}

/// [`edge_attribution`] with the N rows run `per_pass` at a time.
pub fn edge_attribution_in_passes(
    model: &Gpt2,
    (clean, corrupt): (&Tensor, &Tensor),
    measure: &Measure,
    (ig_steps, per_pass): (usize, usize),
    progress: &mut dyn Progress,
) -> Result<EdgeScores> {
    same_length(clean, corrupt)?;
    let cfg = model.config();
    let (n_layer, nh) = (cfg.n_layer, cfg.n_head);
    let writers = Writer::all(n_layer, nh);
    let readers = Reader::all(n_layer, nh);
    let w_hooks = writer_hooks(&writers);
    let tail = measure.positions();
    let (clean_acts, clean_logits) = record_tail(model, clean, w_hooks.clone(), tail)?;
    let metric = measure.against(&clean_logits)?;
    let mut hooks = w_hooks;
    hooks.extend(readers.iter().map(|r| r.hook(n_layer)));
    hooks.sort();
    hooks.dedup();
    let runs = (clean, corrupt);
    let (delta, corrupt_metric, grads) = ig_passes(
        model,
        runs,
        &metric,
        (&hooks, tail),
        (ig_steps, per_pass),
        progress,
        (&writers, &readers, &clean_acts),
    )?;
    let scores: Vec<Vec<f32>> = delta.matmul(&grads.t()?)?.to_dtype(DType::F32)?.to_vec2()?; // (W, R)
    let mut edges = Vec::new();
    for (ri, r) in readers.iter().enumerate() {
        for (wi, &w) in writers.iter().enumerate() {
            if r.reads(w, n_layer) {
                edges.push((wi, ri, scores[wi][ri]));
            }
        }
    }
    edges.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
    Ok(EdgeScores {
        clean: metric.of(&clean_logits)?[0],
        corrupt: corrupt_metric,
        writers,
        readers,
        edges,
    })
}

/// EAP-IG's N runs (N = `ig_steps`, 1 for EAP) in passes of `per` rows (a bounded size:
/// [`rows_per_pass`]): the reader gradients are summed pass by pass, so memory does not
/// grow with N. Returns Δ (W, T·C) = clean − corrupt of each writer (row 0 of the first pass
/// is the corrupt run), the corrupt run's metric, and each reader's mean gradient (R, T·C).
fn ig_passes(
    model: &Gpt2,
    (clean, corrupt): (&Tensor, &Tensor),
    metric: &crate::analysis::metric::Bound,
    (hooks, tail): (&[Hook], usize),
    (ig_steps, per): (usize, usize),
    progress: &mut dyn Progress,
    (writers, readers, clean_acts): (&[Writer], &[Reader], &Activations),
) -> Result<(Tensor, f32, Tensor)> {
    let n_layer = model.config().n_layer;
    let n = ig_steps.max(1);
    let per = per.max(1);
    let (mut first, mut sums) = (None, None);
    progress.start(n as u64, "gradient runs (forward and backward)");
    for start in (0..n).step_by(per) {
        let rows = start..(start + per).min(n);
        let ids = corrupt.repeat((rows.len(), 1))?; // (rows, T)
        let embeds = interpolated_embeds(model, clean, corrupt, rows, n)?; // (rows, T, C)
        let g = backward(model, (&ids, Some(&embeds)), tail, hooks, |l| {
            metric.tensor(l)
        })?;
        if first.is_none() {
            let row0 = |t: Tensor| -> Result<Tensor> { Ok(t.narrow(0, 0, 1)?) };
            let d = (writers.iter())
                .map(|w| Ok((w.value(clean_acts)? - row0(w.value(&g.values)?)?)?.flatten_all()?))
                .collect::<Result<Vec<_>>>()?;
            first = Some((Tensor::stack(&d, 0)?, g.values_of_metric[0]));
        }
        let s = reader_grad_sums(readers, &g.grads, n_layer)?; // (R, T·C)
        sums = Some(match sums {
            Some(total) => (total + s)?,
            None => s,
        });
        progress.advance(per.min(n - start) as u64)?;
    }
    let (delta, corrupt_metric) = first.expect("at least one pass");
    let grads = (sums.expect("at least one pass") / n as f64)?;
    Ok((delta, corrupt_metric, grads))
}

/// Each reader's gradient, summed over the batch's rows: `(R, T·C)`.
fn reader_grad_sums(readers: &[Reader], grads: &Activations, n_layer: usize) -> Result<Tensor> {
    let rows = readers
        .iter()
        .map(|&r| {
            let g = grads.get(r.hook(n_layer))?.sum(0)?; // (T, nh, C) or (T, C)
            let g = match r {
                Reader::Head(_, h, _) => g.narrow(1, h, 1)?.squeeze(1)?,
                Reader::Mlp(_) | Reader::Logits => g,
            };
            Ok(g.flatten_all()?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&rows, 0)?)
}

/// Token embeddings `(rows, T, C)`: row k is corrupt + k/N · (clean − corrupt), for k in
/// `rows` of 0 … N − 1.
fn interpolated_embeds(
    model: &Gpt2,
    clean: &Tensor,
    corrupt: &Tensor,
    rows: std::ops::Range<usize>,
    n: usize,
) -> Result<Tensor> {
    let embed = |ids: &Tensor| -> Result<Tensor> { model.wte().embedding(&ids.flatten_all()?) };
    let (from, to) = (embed(corrupt)?, embed(clean)?); // (T, C)
    let step = (to - &from)?;
    let rows = rows
        .map(|k| Ok((&from + (&step * (k as f64 / n as f64))?)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::stack(&rows, 0)?)
}

/// Faithfulness of the top edges: for each `k` in `ks`, the metric of the clean run in
/// which only the first `k` of `scores.edges` carry their writer's value from this run;
/// every other edge carries the writer's corrupt value (each reader's input rebuilt as the
/// sum of its writers: this run's input minus, for each edge left out, the writer's value
/// here minus its corrupt value). Batched forward passes, a row per `k`, as many rows a
/// pass as hold about [`crate::analysis::grad::PASS_BUDGET`] (every writer's difference is
/// kept for every row).
pub fn faithfulness(
    model: &Gpt2,
    (clean, corrupt): (&Tensor, &Tensor),
    measure: &Measure,
    (scores, ks): (&EdgeScores, &[usize]),
    progress: &mut dyn Progress,
) -> Result<Vec<f32>> {
    let t = same_length(clean, corrupt)?;
    if ks.is_empty() {
        return Ok(vec![]);
    }
    let cfg = model.config();
    let hooks = writer_hooks(&scores.writers);
    let tail = measure.positions();
    let (corrupt_acts, _) = record_tail(model, corrupt, hooks, tail)?;
    let (_, clean_logits) = record_tail(model, clean, vec![], tail)?;
    let metric = measure.against(&clean_logits)?;
    let corrupt_values = (scores.writers.iter())
        .map(|w| w.value(&corrupt_acts))
        .collect::<Result<Vec<_>>>()?; // each (1, T, C)
    let (nw, nr) = (scores.writers.len(), scores.readers.len());
    let row_bytes = 3 * nw * t * cfg.n_embd * 4;
    let per = (crate::analysis::grad::PASS_BUDGET / row_bytes.max(1)).max(1);
    let req = Request {
        capture: CaptureSpec::default(),
        logits: TailLogits(tail),
    };
    let mut values = Vec::with_capacity(ks.len());
    progress.start(ks.len() as u64, "circuits run for --faithfulness");
    for chunk in ks.chunks(per) {
        // kept[b][w·R + r]: whether row b's circuit keeps edge (w, r).
        let kept: Vec<Vec<bool>> = (chunk.iter())
            .map(|&k| {
                let mut keep = vec![false; nw * nr];
                for &(w, r, _) in scores.edges.iter().take(k) {
                    keep[w * nr + r] = true;
                }
                keep
            })
            .collect();
        let mut tap = Circuit {
            writers: &scores.writers,
            readers: &scores.readers,
            n_layer: cfg.n_layer,
            corrupt: corrupt_values.clone(),
            kept,
            seen: Vec::new(),
            embed: None,
        };
        let batch = clean.repeat((chunk.len(), 1))?;
        let logits = model.run(Inputs::new(&batch), &req, &mut tap)?;
        values.extend(metric.of(&logits)?);
        progress.advance(chunk.len() as u64)?;
    }
    Ok(values)
}

/// Rebuilds each reader's input from its writers, as [`faithfulness`] describes: it sees
/// the writers pass (in [`Writer::all`]'s order) and keeps each one's difference from
/// its corrupt value.
struct Circuit<'a> {
    writers: &'a [Writer],
    readers: &'a [Reader],
    n_layer: usize,
    /// Each writer's corrupt value `(1, T, C)`.
    corrupt: Vec<Tensor>,
    kept: Vec<Vec<bool>>,
    /// This run's writers so far, minus their corrupt values: `(B, T, C)` each.
    seen: Vec<Tensor>,
    /// The token embedding, until the position embedding joins it.
    embed: Option<Tensor>,
}

impl Circuit<'_> {
    fn push(&mut self, value: Tensor) -> Result<()> {
        let i = self.seen.len();
        if i >= self.writers.len() {
            bail!("more writers passed than the circuit has");
        }
        self.seen.push(value.broadcast_sub(&self.corrupt[i])?);
        Ok(())
    }

    /// What to take off the inputs of `readers` (indices): for each row and reader, the
    /// sum of the left-out writers' differences, `(B, n, T, C)`.
    fn left_out(&self, readers: &[usize]) -> Result<Tensor> {
        let d = Tensor::stack(&self.seen, 1)?; // (B, W_seen, T, C)
        let (b, w, t, c) = d.dims4()?;
        let nr = self.readers.len();
        let mut m = Vec::with_capacity(b * readers.len() * w);
        for keep in &self.kept {
            for &r in readers {
                m.extend((0..w).map(|wi| if keep[wi * nr + r] { 0f32 } else { 1f32 }));
            }
        }
        let m = Tensor::from_vec(m, (b, readers.len(), w), d.device())?.to_dtype(d.dtype())?;
        let out = m.matmul(&d.reshape((b, w, t * c))?)?; // (B, n, T·C)
        Ok(out.reshape((b, readers.len(), t, c))?)
    }

    fn index(&self, reader: Reader) -> Result<usize> {
        match self.readers.iter().position(|&r| r == reader) {
            Some(i) => Ok(i),
            None => bail!("{} is not a reader of this model", reader.name()),
        }
    }

    /// `x` with the left-out edges of the readers at `hook` taken off.
    fn rebuild(&mut self, l: usize, hook: BlockHook, x: Tensor) -> Result<Tensor> {
        let qkv = match hook {
            BlockHook::QInput => Some(Qkv::Q),
            BlockHook::KInput => Some(Qkv::K),
            BlockHook::VInput => Some(Qkv::V),
            _ => None,
        };
        let Some(qkv) = qkv else {
            let reader = match hook {
                BlockHook::MlpIn => Reader::Mlp(l),
                _ => Reader::Logits,
            };
            let off = self.left_out(&[self.index(reader)?])?.squeeze(1)?; // (B, T, C)
            return Ok((x - off)?);
        };
        let nh = x.dim(2)?;
        let readers = (0..nh)
            .map(|h| self.index(Reader::Head(l, h, qkv)))
            .collect::<Result<Vec<_>>>()?;
        let off = self.left_out(&readers)?.transpose(1, 2)?; // (B, T, nh, C)
        Ok((x - off)?)
    }
}

impl Tap for Circuit<'_> {
    fn wants(&self, hook: Hook) -> bool {
        use BlockHook::*;
        match hook {
            Hook::Embed | Hook::PosEmbed => true,
            Hook::Block(l, ResidPost) => l + 1 == self.n_layer,
            Hook::Block(_, h) => {
                matches!(h, AttnResult | MlpOut | QInput | KInput | VInput | MlpIn)
            }
            _ => false,
        }
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> Result<Tensor> {
        use BlockHook::*;
        match hook {
            Hook::Embed => self.embed = Some(x.clone()),
            Hook::PosEmbed => match self.embed.take() {
                Some(e) => self.push(e.broadcast_add(&x)?)?,
                None => bail!("the position embedding came before the token embedding"),
            },
            Hook::Block(_, AttnResult) => {
                for h in 0..x.dim(2)? {
                    self.push(x.narrow(2, h, 1)?.squeeze(2)?)?;
                }
            }
            Hook::Block(_, MlpOut) => self.push(x.clone())?,
            Hook::Block(l, h @ (QInput | KInput | VInput | MlpIn)) => return self.rebuild(l, h, x),
            Hook::Block(l, ResidPost) if l + 1 == self.n_layer => {
                return self.rebuild(l, ResidPost, x)
            }
            _ => {}
        }
        Ok(x)
    }
}
