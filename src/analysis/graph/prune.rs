//! circuit-tracer's influence, pruning and scores (`graph.py`): each row of |A| normalised
//! to sum to one, a node's influence on the logits as the power series `w A + w A² + …`
//! (`w` the logits' probabilities), nodes and edges kept by their cumulative share of it.

use anyhow::{bail, Result};

use super::{Graph, Rows};

/// `m` `(rows, cols)` made `|m|` with each row divided by its sum (at least `floor`), in
/// place; returns each row's |sum| (before the floor).
fn normalize_in_place(m: &mut [f32], cols: usize, floor: f32) -> Vec<f32> {
    (m.chunks_mut(cols.max(1)))
        .map(|row| {
            row.iter_mut().for_each(|v| *v = v.abs());
            let sum = row.iter().sum::<f32>();
            let divisor = sum.max(floor);
            row.iter_mut().for_each(|v| *v /= divisor);
            sum
        })
        .collect()
}

/// `v A` for `v` `(rows,)` and `A` `(rows, cols)`.
fn times(v: &[f32], a: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; cols];
    for (&w, row) in v.iter().zip(a.chunks(cols.max(1))) {
        if w != 0.0 {
            out.iter_mut().zip(row).for_each(|(o, &x)| *o += w * x);
        }
    }
    out
}

/// circuit-tracer's `compute_partial_influences`: every column's influence on the logits
/// through the rows computed so far (each row's |A| normalised on the fly, nothing copied).
pub fn partial_influences(rows: &Rows, probs: &[f32]) -> Result<Vec<f32>> {
    let width = rows.width();
    let sums: Vec<f32> = (0..rows.n_rows())
        .map(|r| rows.row(r).iter().map(|v| v.abs()).sum::<f32>().max(1e-8))
        .collect();
    let mut influences = vec![0f32; width];
    let mut prod = vec![0f32; width];
    prod[width - probs.len()..].copy_from_slice(probs);
    for _ in 0..128 {
        let mut next = vec![0f32; width];
        for (r, &node) in rows.node_of_row().iter().enumerate() {
            let w = prod[node];
            if w != 0.0 {
                let row = rows.row(r);
                let sum = sums[r];
                next.iter_mut()
                    .zip(row)
                    .for_each(|(o, &x)| *o += w * (x.abs() / sum));
            }
        }
        prod = next;
        if prod.iter().all(|&v| v == 0.0) {
            return Ok(influences);
        }
        influences.iter_mut().zip(&prod).for_each(|(i, p)| *i += p);
    }
    bail!("the features' influence did not converge in 128 steps")
}

/// Indices by value, largest first; equal values by index.
pub fn ranked(values: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx
}

/// circuit-tracer's `compute_influence`: `w A + w A² + …` until a term is zero.
fn influence(a: &[f32], n: usize, weights: &[f32]) -> Result<Vec<f32>> {
    let mut current = times(weights, a, n);
    let mut total = current.clone();
    for _ in 0..1000 {
        if current.iter().all(|&v| v == 0.0) {
            return Ok(total);
        }
        current = times(&current, a, n);
        total.iter_mut().zip(&current).for_each(|(t, c)| *t += c);
    }
    bail!("the graph's influence did not converge in 1000 steps")
}

/// The logits' probabilities as a weight on each node (zero elsewhere).
fn logit_weights(graph: &Graph) -> Vec<f32> {
    let n = graph.n_nodes();
    let mut w = vec![0f32; n];
    for (i, l) in graph.logits.iter().enumerate() {
        w[n - graph.logits.len() + i] = l.prob;
    }
    w
}

/// circuit-tracer's `find_threshold`: the score at which the largest scores first reach
/// the share `threshold` of their sum (cumulated as torch does: in f64, each stored in f32).
fn find_threshold(scores: &[f32], threshold: f32) -> f32 {
    let mut sorted: Vec<f32> = scores.iter().copied().filter(|&s| s != 0.0).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let zeros = scores.len() - sorted.len();
    let total = sorted.iter().map(|&s| s as f64).sum::<f64>() as f32;
    let mut cumulative = 0f64;
    for &s in &sorted {
        cumulative += s as f64;
        if (cumulative as f32) / total >= threshold {
            return s;
        }
    }
    match zeros {
        0 => sorted.last().copied().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// What pruning keeps, and each node's cumulative share of the influence.
pub struct Pruned {
    pub node_mask: Vec<bool>,
    /// `(N, N)`, row = target.
    pub edge_mask: Vec<bool>,
    pub cumulative: Vec<f32>,
    /// Each node's influence on the logits in the unpruned graph.
    pub influence: Vec<f32>,
    /// Each row's |A| sum in the unpruned graph.
    sums: Vec<f32>,
    /// Of the graph with the dropped nodes' edges zeroed: each row's |A| sum, each node's
    /// influence plus its logit weight, and the score an edge needed to stay.
    row_sums: Vec<f32>,
    through: Vec<f32>,
    edge_cut: f32,
}

/// circuit-tracer's `prune_graph`.
pub fn prune(graph: &Graph, node_threshold: f32, edge_threshold: f32) -> Result<Pruned> {
    let n = graph.n_nodes();
    let (n_logits, n_tokens) = (graph.logits.len(), graph.n_pos());
    let n_features = graph.selected_features.len();
    let weights = logit_weights(graph);
    // One matrix: |A| normalised for the nodes' influence, then (the dropped nodes' edges
    // zeroed) for the edges' scores, made in place.
    let mut edge_scores = graph.adjacency.clone();
    let sums = normalize_in_place(&mut edge_scores, n, 1e-10);
    let node_influence = influence(&edge_scores, n, &weights)?;
    let cut = find_threshold(&node_influence, node_threshold);
    let mut node_mask: Vec<bool> = node_influence.iter().map(|&v| v >= cut).collect();
    node_mask[n - n_logits - n_tokens..]
        .iter_mut()
        .for_each(|m| *m = true);
    edge_scores.copy_from_slice(&graph.adjacency);
    for (i, row) in edge_scores.chunks_mut(n).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            if !node_mask[i] || !node_mask[j] {
                *v = 0.0;
            }
        }
    }
    let row_sums = normalize_in_place(&mut edge_scores, n, 1e-10);
    let mut through = influence(&edge_scores, n, &weights)?;
    through.iter_mut().zip(&weights).for_each(|(t, w)| *t += w);
    for (row, &t) in edge_scores.chunks_mut(n).zip(&through) {
        row.iter_mut().for_each(|v| *v *= t);
    }
    let edge_cut = find_threshold(&edge_scores, edge_threshold);
    let mut edge_mask: Vec<bool> = edge_scores.iter().map(|&s| s >= edge_cut).collect();
    let ends = n - n_logits - n_tokens;
    let mut before = node_mask.clone();
    need_edges(&mut node_mask, &edge_mask, n, ends, n_features);
    // circuit-tracer's loop: drop the edges of dropped nodes until no more nodes go.
    while node_mask != before {
        before.clone_from(&node_mask);
        for (k, e) in edge_mask.iter_mut().enumerate() {
            *e &= node_mask[k / n] && node_mask[k % n];
        }
        need_edges(&mut node_mask, &edge_mask, n, ends, n_features);
    }
    Ok(Pruned {
        node_mask,
        edge_mask,
        cumulative: cumulative_shares(&node_influence),
        influence: node_influence,
        sums,
        row_sums,
        through,
        edge_cut,
    })
}

/// Feature and error nodes (`..ends`) keep only with an outgoing edge, features
/// (`..n_features`) only with an incoming one.
fn need_edges(mask: &mut [bool], edges: &[bool], n: usize, ends: usize, n_features: usize) {
    let mut outgoing = vec![false; n];
    for row in edges.chunks(n) {
        outgoing.iter_mut().zip(row).for_each(|(o, &e)| *o |= e);
    }
    for j in 0..ends {
        mask[j] &= outgoing[j];
    }
    for i in 0..n_features {
        mask[i] &= edges[i * n..(i + 1) * n].iter().any(|&e| e);
    }
}

/// Each node's share of the influence of it and every node ranked above it.
fn cumulative_shares(influence: &[f32]) -> Vec<f32> {
    let order = ranked(influence);
    let total = influence.iter().map(|&v| v as f64).sum::<f64>() as f32;
    let mut out = vec![0f32; influence.len()];
    let mut cumulative = 0f64;
    for i in order {
        cumulative += influence[i] as f64;
        out[i] = cumulative as f32 / total;
    }
    out
}

/// circuit-tracer's `compute_graph_scores` on the unpruned graph: the replacement score
/// (the tokens' share of the influence that tokens and errors have) and the completeness
/// score (the influence-weighted share of each node's input not from errors). The nodes'
/// influence and rows' sums are those `prune` computed of the same graph.
pub fn scores(graph: &Graph, pruned: &Pruned) -> (f64, f64) {
    let n = graph.n_nodes();
    let n_features = graph.selected_features.len();
    let (error_start, error_end) = (n_features, n_features + graph.n_pos() * graph.n_layers);
    let token_end = error_end + graph.n_pos();
    let weights = logit_weights(graph);
    let node_influence = &pruned.influence;
    let sum = |r: std::ops::Range<usize>| node_influence[r].iter().map(|&v| v as f64).sum::<f64>();
    let (tokens, errors) = (sum(error_end..token_end), sum(error_start..error_end));
    let replacement = tokens / (tokens + errors);
    let (mut weighted, mut total) = (0f64, 0f64);
    for (i, row) in graph.adjacency.chunks(n).enumerate() {
        let errors: f64 = row[error_start..error_end]
            .iter()
            .map(|v| v.abs() as f64)
            .sum();
        let from_errors = errors / pruned.sums[i].max(1e-10) as f64;
        let output = (node_influence[i] + weights[i]) as f64;
        weighted += (1.0 - from_errors) * output;
        total += output;
    }
    (replacement, weighted / total)
}

/// Our position nodes, measured as circuit-tracer measures a node without changing any of
/// its numbers: an edge's share is |A[t, p]| over its target's circuit-tracer row sum, and
/// its score that share times the target's influence plus logit weight. Returns each
/// position's influence in the unpruned graph, and the edges `(target, position)` that
/// pruning keeps: their score reaches the cut circuit-tracer's edges needed, into kept nodes.
/// (Circuit-tracer's numbers are left as they are: nothing here feeds back into them.)
pub fn positions(graph: &Graph, pruned: &Pruned) -> PositionNodes {
    let t = graph.n_pos();
    let weights = logit_weights(graph);
    let mut influence = vec![0f32; t];
    let mut kept = Vec::new();
    for (i, row) in graph.position_edges.chunks(t).enumerate() {
        let whole = pruned.influence[i] + weights[i];
        let share = pruned.row_sums[i].max(1e-10);
        for (p, &v) in row.iter().enumerate() {
            influence[p] += v.abs() / pruned.sums[i].max(1e-10) * whole;
            let score = v.abs() / share * pruned.through[i];
            if pruned.node_mask[i] && v != 0.0 && score >= pruned.edge_cut {
                kept.push((i, p));
            }
        }
    }
    PositionNodes { influence, kept }
}

/// Our position nodes: each one's influence on the logits, and the kept edges
/// `(target, position)`.
pub struct PositionNodes {
    pub influence: Vec<f32>,
    pub kept: Vec<(usize, usize)>,
}
