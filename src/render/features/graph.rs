//! `graph`'s renderers: the report as a table, the graph file (circuit-tracer's JSON, as
//! pydantic's `model_dump_json(indent=2)` lays it out) and the raw graph (safetensors under
//! circuit-tracer's `Graph` field names).

use std::io::{self, Write};

use crate::analysis::graph::Graph;
use crate::render::table::{columns, predictions, quoted, Align};
use crate::reports::{GraphFile, GraphReport};

/// The columns of the kept nodes' table (the terminal's and CSV's).
pub const NODE_COLUMNS: [&str; 8] = [
    "node",
    "kind",
    "layer",
    "position",
    "token",
    "feature",
    "activation",
    "influence",
];

pub fn table(out: &mut dyn Write, r: &GraphReport) -> io::Result<()> {
    let skip = [", skip connection", ""][usize::from(!r.skip_connection)];
    let kind = ["cross-layer, ", ""][usize::from(!r.cross_layer)];
    writeln!(
        out,
        "transcoders  {} ({}, {kind}{} features per layer{skip})",
        r.transcoders, r.scan, r.d_transcoder
    )?;
    writeln!(
        out,
        "features     {} active, {} with edges in",
        r.active_features, r.selected_features
    )?;
    let logits: Vec<String> = (r.logits.iter())
        .map(|l| format!("{} {:.3}", quoted(&l.token), l.probability))
        .collect();
    writeln!(out, "logits       {}", logits.join("  "))?;
    writeln!(
        out,
        "scores       replacement {:.4}  completeness {:.4}",
        r.replacement_score, r.completeness_score
    )?;
    let k = &r.kept;
    writeln!(
        out,
        "pruned       to {} of the nodes' influence and {} of the edges': {} features, {} \
         errors, {} tokens, {} positions, {} logits; {} edges",
        r.node_threshold,
        r.edge_threshold,
        k.features,
        k.errors,
        k.tokens,
        k.positions,
        k.logits,
        k.edges
    )?;
    writeln!(out)?;
    nodes(out, r)?;
    writeln!(out)?;
    embeddings(out, r)?;
    if let Some(i) = &r.intervention {
        let changes: Vec<String> = (i.changes.iter())
            .map(|c| format!("{} = {}", c.node_id, c.value))
            .collect();
        writeln!(out)?;
        writeln!(
            out,
            "next tokens, attention frozen, with {}",
            changes.join(", ")
        )?;
        writeln!(out, "before")?;
        predictions(out, &i.before)?;
        writeln!(out, "after")?;
        predictions(out, &i.after)?;
    }
    Ok(())
}

/// The most influential kept nodes.
fn nodes(out: &mut dyn Write, r: &GraphReport) -> io::Result<()> {
    use Align::*;
    let rows: Vec<Vec<String>> = (r.top_nodes.iter())
        .map(|n| {
            vec![
                n.node_id.clone(),
                n.kind.to_string(),
                n.layer.to_string(),
                n.position.to_string(),
                quoted(&n.token),
                n.feature.map_or_else(String::new, |f| f.to_string()),
                n.activation.map_or_else(String::new, |a| format!("{a:.3}")),
                format!("{:.4}", n.influence),
            ]
        })
        .collect();
    columns(
        out,
        &NODE_COLUMNS,
        &[Left, Left, Right, Right, Left, Right, Right, Right],
        &rows,
    )
}

/// Each token's and position's influence.
fn embeddings(out: &mut dyn Write, r: &GraphReport) -> io::Result<()> {
    use Align::*;
    let rows: Vec<Vec<String>> = (r.tokens.iter().enumerate())
        .map(|(p, t)| {
            let pos = (r.position_influence.as_ref())
                .map_or_else(String::new, |v| format!("{:.4}", v[p]));
            vec![
                p.to_string(),
                quoted(t),
                format!("{:.4}", r.token_influence[p]),
                pos,
            ]
        })
        .collect();
    columns(
        out,
        &["position", "token", "token influence", "position influence"],
        &[Right, Left, Right, Right],
        &rows,
    )
}

/// The graph file, two-space indented.
pub fn graph_file(out: &mut dyn Write, file: &GraphFile) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, file)?;
    Ok(())
}

/// The unpruned graph as safetensors: circuit-tracer's `Graph` fields; with `positions`,
/// the adjacency has the position nodes after the tokens (their rows empty).
pub fn raw(out: &mut dyn Write, g: &Graph, positions: bool) -> io::Result<()> {
    use safetensors::Dtype::{F32, I64};
    let t = g.n_pos();
    let adjacency = match positions {
        false => g.adjacency.clone(),
        true => with_positions(g),
    };
    let side = g.n_nodes() + if positions { t } else { 0 };
    let ints = |v: Vec<usize>| -> Vec<i64> { v.into_iter().map(|x| x as i64).collect() };
    let i64s: Vec<(&str, Vec<usize>, Vec<i64>)> = vec![
        (
            "input_tokens",
            vec![t],
            ints(g.input_ids.iter().map(|&i| i as usize).collect()),
        ),
        (
            "active_features",
            vec![g.active_features.len(), 3],
            ints(g.active_features.iter().flatten().copied().collect()),
        ),
        (
            "selected_features",
            vec![g.selected_features.len()],
            ints(g.selected_features.clone()),
        ),
        (
            "logit_tokens",
            vec![g.logits.len()],
            ints(g.logits.iter().map(|l| l.token as usize).collect()),
        ),
    ];
    let probs: Vec<f32> = g.logits.iter().map(|l| l.prob).collect();
    let f32s: Vec<(&str, Vec<usize>, &[f32])> = vec![
        (
            "activation_values",
            vec![g.activation_values.len()],
            &g.activation_values,
        ),
        ("logit_probabilities", vec![probs.len()], &probs),
        ("adjacency_matrix", vec![side, side], &adjacency),
    ];
    let ints = i64s
        .iter()
        .map(|(n, s, v)| (*n, s, I64, bytemuck::cast_slice(v)));
    let floats = f32s
        .iter()
        .map(|(n, s, v)| (*n, s, F32, bytemuck::cast_slice(v)));
    let views = views(ints.chain(floats))?;
    let layout = match positions {
        true => "features, errors (layer * T + position), tokens, positions, logits",
        false => "features, errors (layer * T + position), tokens, logits",
    };
    let meta = [
        ("n_layers".to_string(), g.n_layers.to_string()),
        ("layout".to_string(), layout.to_string()),
    ];
    let bytes = safetensors::serialize(views, Some(meta.into())).map_err(st_error)?;
    out.write_all(&bytes)
}

fn st_error(e: safetensors::SafeTensorError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Each `(name, shape, dtype, bytes)` as a view for `safetensors::serialize`.
fn views<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a Vec<usize>, safetensors::Dtype, &'a [u8])>,
) -> io::Result<Vec<(String, safetensors::tensor::TensorView<'a>)>> {
    tensors
        .map(|(name, shape, dtype, bytes)| {
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes);
            Ok((name.to_string(), view.map_err(st_error)?))
        })
        .collect()
}

/// circuit-tracer's adjacency with `T` position nodes inserted before the logits: their
/// columns are the position edges, their rows empty.
fn with_positions(g: &Graph) -> Vec<f32> {
    let (n, t) = (g.n_nodes(), g.n_pos());
    let split = n - g.logits.len();
    let side = n + t;
    let mut out = vec![0f32; side * side];
    for i in 0..n {
        let row = if i < split { i } else { i + t };
        let src = &g.adjacency[i * n..(i + 1) * n];
        let dst = &mut out[row * side..(row + 1) * side];
        dst[..split].copy_from_slice(&src[..split]);
        dst[split..split + t].copy_from_slice(&g.position_edges[i * t..(i + 1) * t]);
        dst[split + t..].copy_from_slice(&src[split..]);
    }
    out
}
