//! Attribution graphs as circuit-tracer 0.5.0 computes them (`attribute`): each MLP replaced
//! by its transcoder plus an error, attention patterns and layer-norm scales frozen, the
//! direct effect of every node on every other from batched backward passes; plus, beyond
//! circuit-tracer, GPT-2's position embeddings as nodes of their own (kept apart, so every
//! circuit-tracer number is unchanged by them). `prune.rs` prunes and scores the graph.

mod backward;
pub mod intervene;
pub mod prune;

use anyhow::{bail, ensure, Result};
use candle_core::{Device, Tensor};

use crate::analysis::progress::Progress;
use crate::analysis::transcoder::TranscoderSet;
use crate::model::{BlockHook, CaptureSpec, Gpt2, Hook, LastLogits, Request};
use backward::{FrozenLayer, FrozenPath, Target};

/// circuit-tracer's `attribute` arguments.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Features whose rows are computed (`max_feature_nodes`); all active ones when `None`.
    pub max_feature_nodes: Option<usize>,
    /// Rows per backward pass (`batch_size`).
    pub batch_size: usize,
    /// Passes between two rankings of the features left (`update_interval`).
    pub update_interval: usize,
    /// Logit nodes at most (`max_n_logits`), taken until their probability reaches
    /// `desired_logit_prob`.
    pub max_logits: usize,
    pub desired_logit_prob: f32,
}

/// A logit node: the token and its probability at the last position.
#[derive(Debug, Clone, Copy)]
pub struct LogitTarget {
    pub token: u32,
    pub prob: f32,
}

/// The unpruned graph under circuit-tracer's `Graph` field names.
pub struct Graph {
    pub input_ids: Vec<u32>,
    pub n_layers: usize,
    /// Every active feature `(layer, position, feature)`, ordered by layer, position, feature.
    pub active_features: Vec<[usize; 3]>,
    pub activation_values: Vec<f32>,
    /// Indices into `active_features` of the features with rows, ascending.
    pub selected_features: Vec<usize>,
    pub logits: Vec<LogitTarget>,
    /// `(N, N)`, row = target: selected features, errors (layer · T + position), tokens,
    /// logits — circuit-tracer's `adjacency_matrix`.
    pub adjacency: Vec<f32>,
    /// `(N, T)`: each position embedding's direct effect on each node (ours).
    pub position_edges: Vec<f32>,
}

impl Graph {
    pub fn n_pos(&self) -> usize {
        self.input_ids.len()
    }

    /// circuit-tracer's node count N.
    pub fn n_nodes(&self) -> usize {
        self.selected_features.len() + (self.n_layers + 1) * self.n_pos() + self.logits.len()
    }
}

/// The sources of a graph's rows: the active features with `a W_dec` by (layer, position),
/// the errors, the token and position embeddings.
pub struct Nodes {
    pub active: Vec<[usize; 3]>,
    pub values: Vec<f32>,
    /// At `l · T + p`: what writes to that (layer, position), one entry per source layer
    /// (the layer itself; in a cross-layer transcoder every earlier one too): the first
    /// column of that layer's features at `p` and their decoder vectors for layer `l` times
    /// their activations `(n, C)`.
    decoders: Vec<Vec<(usize, Tensor)>>,
    /// `(L, T, C)`: the MLP's output minus the transcoder's reconstruction (0 at position 0).
    pub errors: Tensor,
    /// `(T, C)`: W_E of each token, W_pos of each position.
    pub tokens: Tensor,
    pub positions: Tensor,
    n_layers: usize,
    n_pos: usize,
}

impl Nodes {
    /// circuit-tracer's columns before the logits: features, errors, tokens.
    pub fn columns(&self) -> usize {
        self.active.len() + (self.n_layers + 1) * self.n_pos
    }

    pub fn error_column(&self, l: usize, p: usize) -> usize {
        self.active.len() + l * self.n_pos + p
    }

    pub fn token_column(&self, p: usize) -> usize {
        self.active.len() + self.n_layers * self.n_pos + p
    }

    fn decoders_at(&self, l: usize, p: usize) -> &[(usize, Tensor)] {
        &self.decoders[l * self.n_pos + p]
    }
}

/// What the forward pass gives the graph: the sources and the frozen path, and the
/// last position's logits.
struct Run {
    nodes: Nodes,
    path: FrozenPath,
    logits: Vec<f32>,
}

/// The attribution graph of `ids` (with its `<|endoftext|>` first) through `tset`.
pub fn attribute(
    model: &Gpt2,
    tset: &TranscoderSet,
    ids: &[u32],
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<Graph> {
    ensure!(
        settings.batch_size > 0 && settings.update_interval > 0,
        "batch sizes are positive"
    );
    let run = forward(model, tset, ids)?;
    let logits = salient_logits(&run.logits, settings);
    let unembed = logit_vectors(model, &logits)?;
    let n_active = run.nodes.active.len();
    let budget = settings.max_feature_nodes.unwrap_or(n_active).min(n_active);
    let mut rows = Rows::new(&run.nodes, budget, logits.len());
    progress.start((budget + logits.len()) as u64, "graph rows");
    let n_layers = run.path.blocks.len();
    let last = ids.len() - 1;
    for (i, chunk) in unembed.chunks(settings.batch_size).enumerate() {
        let targets: Vec<Target> = (chunk.iter())
            .map(|v| Target {
                layer: n_layers,
                pos: last,
                vector: v.clone(),
            })
            .collect();
        let ids: Vec<usize> = (0..chunk.len())
            .map(|j| rows.logit_node(i * settings.batch_size + j))
            .collect();
        rows.compute(&run, tset, &targets, &ids)?;
        progress.advance(chunk.len() as u64)?;
    }
    let probs: Vec<f32> = logits.iter().map(|l| l.prob).collect();
    let mut visited = vec![false; n_active];
    let mut n_visited = 0;
    while n_visited < budget {
        let pending: Vec<usize> = match budget == n_active {
            true => (0..n_active).collect(),
            false => {
                let influence = prune::partial_influences(&rows, &probs)?;
                let queue =
                    (settings.update_interval * settings.batch_size).min(budget - n_visited);
                (prune::ranked(&influence[..n_active]).into_iter())
                    .filter(|&f| !visited[f])
                    .take(queue)
                    .collect()
            }
        };
        for batch in pending.chunks(settings.batch_size) {
            n_visited += batch.len();
            let targets = feature_targets(tset, &run.nodes, batch)?;
            rows.compute(&run, tset, &targets, batch)?;
            batch.iter().for_each(|&f| visited[f] = true);
            progress.advance(batch.len() as u64)?;
        }
    }
    Ok(rows.into_graph(ids, &run.nodes, n_layers, logits))
}

/// One forward pass: the transcoders' inputs and the MLPs' outputs, the frozen scales and
/// patterns, and the last position's logits.
fn forward(model: &Gpt2, tset: &TranscoderSet, ids: &[u32]) -> Result<Run> {
    use BlockHook::{Ln1Scale, Ln2Scale, MlpOut, Pattern};
    let cfg = model.config();
    let n_layers = cfg.n_layer;
    let read = tset.input.hook();
    let hooks = (0..n_layers)
        .flat_map(|l| [Ln1Scale, Pattern, Ln2Scale, read, MlpOut].map(|h| Hook::Block(l, h)));
    let req = Request {
        capture: CaptureSpec::new(hooks.chain([Hook::LnFinalScale])),
        logits: LastLogits,
    };
    let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let out = model.forward(&input, &req)?;
    let a = &out.activations;
    let first = |h: Hook| -> Result<Tensor> { Ok(a.get(h)?.squeeze(0)?) };
    let mut blocks = Vec::with_capacity(n_layers);
    let mut inputs = Vec::with_capacity(n_layers);
    let mut outputs = Vec::with_capacity(n_layers);
    for l in 0..n_layers {
        blocks.push(FrozenLayer {
            ln1_scale: first(Hook::Block(l, Ln1Scale))?,
            ln2_scale: first(Hook::Block(l, Ln2Scale))?,
            pattern_t: first(Hook::Block(l, Pattern))?
                .transpose(1, 2)?
                .contiguous()?,
            weights: model.frozen_block(l)?,
            input: tset.input,
        });
        inputs.push(first(Hook::Block(l, read))?);
        outputs.push(first(Hook::Block(l, MlpOut))?);
    }
    let (gain, _) = model.final_norm_params()?;
    let path = FrozenPath {
        blocks,
        ln_f_scale: first(Hook::LnFinalScale)?,
        ln_f_gain: gain.clone(),
    };
    let logits = out.logits.squeeze(0)?.squeeze(0)?.to_vec1::<f32>()?;
    if logits.iter().any(|l| !l.is_finite()) {
        bail!("the model's logits on this text are not finite numbers; no graph can be made");
    }
    let nodes = sources(model, tset, ids, &inputs, &outputs)?;
    Ok(Run {
        nodes,
        path,
        logits,
    })
}

/// The active features (position 0's zeroed, as circuit-tracer does), their decoder
/// vectors, the errors and the embeddings.
fn sources(
    model: &Gpt2,
    tset: &TranscoderSet,
    ids: &[u32],
    inputs: &[Tensor],
    outputs: &[Tensor],
) -> Result<Nodes> {
    let (n_layers, t, c) = (inputs.len(), ids.len(), model.config().n_embd);
    let (mut active, mut values) = (Vec::new(), Vec::new());
    let mut decoders = vec![Vec::new(); n_layers * t];
    // Σ a W_dec written to each (layer, position), from the active rows only, as
    // circuit-tracer's decode_sparse: the rest of W_dec is never read.
    let mut sums = vec![0f32; n_layers * t * c];
    for (l, x) in inputs.iter().enumerate() {
        let tc = &tset.layers[l];
        let acts = tc.encode(x)?.to_vec2::<f32>()?; // (T, d_tc)
                                                    // Position 0 is skipped: circuit-tracer zeroes its features.
        for (p, row) in acts.iter().enumerate().skip(1) {
            let feats: Vec<u32> = (0..row.len())
                .filter(|&f| row[f] != 0.0)
                .map(|f| f as u32)
                .collect();
            if feats.is_empty() {
                continue;
            }
            let a: Vec<f32> = feats.iter().map(|&f| row[f as usize]).collect();
            let scaled = tc
                .decoder_rows(&feats)?
                .broadcast_mul(&Tensor::new(a.as_slice(), &Device::Cpu)?.unsqueeze(1)?)?;
            for k in 0..tc.writes {
                let slot = scaled.narrow(1, k * c, c)?.contiguous()?; // (n, C)
                let at = (l + k) * t + p;
                let sum = slot.sum(0)?.to_vec1::<f32>()?;
                (sums[at * c..(at + 1) * c].iter_mut().zip(sum)).for_each(|(s, v)| *s += v);
                decoders[at].push((active.len(), slot));
            }
            active.extend(feats.iter().map(|&f| [l, p, f as usize]));
            values.extend(a);
        }
    }
    let sums = Tensor::from_vec(sums, (n_layers, t, c), &Device::Cpu)?;
    let mut errors = Vec::with_capacity(n_layers);
    for (l, (x, mlp_out)) in inputs.iter().zip(outputs).enumerate() {
        let recon = tset.layers[l].reconstruction(&sums.get(l)?, x)?;
        let error = (mlp_out - recon)?;
        let zero = Tensor::zeros((1, c), error.dtype(), &Device::Cpu)?;
        errors.push(Tensor::cat(&[&zero, &error.narrow(0, 1, t - 1)?], 0)?);
    }
    let id_tensor = Tensor::new(ids, &Device::Cpu)?;
    Ok(Nodes {
        active,
        values,
        decoders,
        errors: Tensor::stack(&errors, 0)?,
        tokens: model.wte().embedding(&id_tensor)?,
        positions: model.wpe().narrow(0, 0, t)?,
        n_layers,
        n_pos: t,
    })
}

/// circuit-tracer's salient logits: the most probable tokens until their cumulative
/// probability reaches `desired_logit_prob`, at most `max_logits`.
fn salient_logits(logits: &[f32], s: &Settings) -> Vec<LogitTarget> {
    let log_z = crate::dist::log_normalizer(logits);
    let probs: Vec<f32> = logits
        .iter()
        .map(|&l| (l as f64 - log_z).exp() as f32)
        .collect();
    let top = crate::dist::top_k(&probs, s.max_logits);
    let mut cumulative = 0f32;
    let mut cutoff = top.len();
    for (i, &id) in top.iter().enumerate() {
        cumulative += probs[id];
        if cumulative >= s.desired_logit_prob {
            cutoff = i;
            break;
        }
    }
    (top.into_iter().take(cutoff + 1))
        .map(|id| LogitTarget {
            token: id as u32,
            prob: probs[id],
        })
        .collect()
}

/// Each logit's demeaned unembedding `W_U[:, t] − mean_v W_U[:, v]` `(C,)`.
fn logit_vectors(model: &Gpt2, logits: &[LogitTarget]) -> Result<Vec<Tensor>> {
    let w_u = model.unembedding().tensor()?; // (V, C)
    let mean = w_u.mean(0)?;
    let ids: Vec<u32> = logits.iter().map(|l| l.token).collect();
    let cols = model
        .unembedding()
        .embedding(&Tensor::new(ids.as_slice(), &Device::Cpu)?)?;
    let cols = cols.broadcast_sub(&mean)?;
    (0..logits.len()).map(|i| Ok(cols.get(i)?)).collect()
}

/// The rows of features `batch` (indices into the active features): each one's encoder
/// row, read at its layer's transcoder input and position.
fn feature_targets(tset: &TranscoderSet, nodes: &Nodes, batch: &[usize]) -> Result<Vec<Target>> {
    batch
        .iter()
        .map(|&i| {
            let [l, p, f] = nodes.active[i];
            let row = tset.layers[l].encoder_rows(&[f as u32])?.squeeze(0)?;
            Ok(Target {
                layer: l,
                pos: p,
                vector: row,
            })
        })
        .collect()
}

/// The rows computed so far, in circuit-tracer's `edge_matrix` (logits first, then
/// features in the order they were visited) with `row_to_node_index`.
pub struct Rows {
    edges: Vec<f32>,
    positions: Vec<f32>,
    node_of_row: Vec<usize>,
    /// circuit-tracer's columns: features, errors, tokens, logits.
    width: usize,
    n_active: usize,
    n_logits: usize,
    n_pos: usize,
}

impl Rows {
    fn new(nodes: &Nodes, budget: usize, n_logits: usize) -> Self {
        let width = nodes.columns() + n_logits;
        let n = budget + n_logits;
        Rows {
            edges: Vec::with_capacity(n * width),
            positions: Vec::with_capacity(n * nodes.n_pos),
            node_of_row: Vec::with_capacity(n),
            width,
            n_active: nodes.active.len(),
            n_logits,
            n_pos: nodes.n_pos,
        }
    }

    /// The node index of logit `i`.
    fn logit_node(&self, i: usize) -> usize {
        self.width - self.n_logits + i
    }

    fn compute(
        &mut self,
        run: &Run,
        tset: &TranscoderSet,
        targets: &[Target],
        nodes: &[usize],
    ) -> Result<()> {
        let (edges, positions) = backward::rows(&run.path, tset, &run.nodes, targets)?;
        let cols = run.nodes.columns();
        for (row, &node) in edges.chunks(cols.max(1)).zip(nodes) {
            self.edges.extend_from_slice(row);
            self.edges.extend(std::iter::repeat_n(0.0, self.n_logits));
            self.node_of_row.push(node);
        }
        self.positions.extend_from_slice(&positions);
        Ok(())
    }

    pub fn n_rows(&self) -> usize {
        self.node_of_row.len()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.edges[r * self.width..(r + 1) * self.width]
    }

    pub fn node_of_row(&self) -> &[usize] {
        &self.node_of_row
    }

    /// circuit-tracer's phase 5: the columns of the selected features and every other
    /// node, the rows sorted by node (features ascending, then the logits), N × N.
    fn into_graph(
        mut self,
        ids: &[u32],
        nodes: &Nodes,
        n_layers: usize,
        logits: Vec<LogitTarget>,
    ) -> Graph {
        let mut selected: Vec<usize> = (self.node_of_row.iter().copied())
            .filter(|&n| n < self.n_active)
            .collect();
        selected.sort_unstable();
        let columns: Vec<usize> = (selected.iter().copied())
            .chain(self.n_active..self.width)
            .collect();
        let n = columns.len();
        let mut order: Vec<usize> = (0..self.n_rows()).collect();
        order.sort_by_key(|&r| self.node_of_row[r]);
        // In the rows' own memory (a second matrix would double the peak): each row's
        // columns packed to the front, the rows packed to stride n, put in node order, the
        // errors' and tokens' empty rows inserted before the logits'.
        for r in 0..self.n_rows() {
            let (src, dst) = (r * self.width, r * n);
            for (j, &c) in columns.iter().enumerate() {
                self.edges[dst + j] = self.edges[src + c];
            }
        }
        let n_sel = selected.len();
        let mut adjacency = self.edges;
        adjacency.truncate(order.len() * n);
        permute_rows(&mut adjacency, n, &order);
        let mut position_edges = self.positions;
        permute_rows(&mut position_edges, self.n_pos, &order);
        let gap = n - order.len();
        for (m, width) in [(&mut adjacency, n), (&mut position_edges, self.n_pos)] {
            m.resize(n * width, 0.0);
            m.copy_within(
                n_sel * width..(n_sel + self.n_logits) * width,
                (n - self.n_logits) * width,
            );
            m[n_sel * width..(n_sel + gap) * width].fill(0.0);
            m.shrink_to_fit();
        }
        Graph {
            input_ids: ids.to_vec(),
            n_layers,
            active_features: nodes.active.clone(),
            activation_values: nodes.values.clone(),
            selected_features: selected,
            logits,
            adjacency,
            position_edges,
        }
    }
}

/// Rows of `m` (`width` each) reordered so that row `i` is the old row `order[i]`, in place
/// (one row of scratch).
fn permute_rows(m: &mut [f32], width: usize, order: &[usize]) {
    let mut done = vec![false; order.len()];
    let mut scratch = vec![0f32; width];
    for start in 0..order.len() {
        if done[start] || order[start] == start {
            continue;
        }
        // Follow the cycle: i takes order[i]'s row, the first one's saved in scratch.
        scratch.copy_from_slice(&m[start * width..(start + 1) * width]);
        let mut i = start;
        loop {
            done[i] = true;
            let from = order[i];
            if from == start {
                m[i * width..(i + 1) * width].copy_from_slice(&scratch);
                break;
            }
            m.copy_within(from * width..(from + 1) * width, i * width);
            i = from;
        }
    }
}
