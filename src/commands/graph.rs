//! `graph`: the attribution graph of a text over a transcoder set, as circuit-tracer computes
//! it (`analysis::graph`), pruned and scored as it prunes and scores; the report lists what
//! pruning kept, `-o` writes the graph file circuit-tracer's `create_graph_files` writes,
//! `--raw` the unpruned graph.

use std::io::Write;

use anyhow::Result;

use crate::analysis::graph::intervene::{check, intervene, Intervention};
use crate::analysis::graph::prune::{self, PositionNodes, Pruned};
use crate::analysis::graph::{self, Graph, Settings};
use crate::analysis::transcoder::TranscoderSet;
use crate::cli::GraphArgs;
use crate::error::usage;
use crate::model::Gpt2;
use crate::render::features::graph as printer;
use crate::render::features::graph_svg;
use crate::reports::{
    DrawnEdge, DrawnNode, GraphChange, GraphDrawing, GraphFile, GraphFileMetadata, GraphFileNode,
    GraphIntervention, GraphKept, GraphLink, GraphLogit, GraphNodeInfluence, GraphQParams,
    GraphReport, NodeKind, TokenValue,
};
use crate::session::progress::Bar;
use crate::session::texts::Texts;
use crate::session::{decoded, emit, predictions, write_file, write_svg, Session, Take};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &GraphArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    let revision = args.set.transcoders_revision.as_deref();
    let tset = session.transcoders(&args.set.transcoders, revision, cfg)?;
    let (prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::STRICT)?;
    if prepared.texts.len() > 1 {
        return Err(usage("graph explains one text; give one TEXT"));
    }
    let Texts {
        texts,
        ids,
        tokenizer,
        ..
    } = &prepared;
    let ids = with_endoftext(tokenizer, &ids[0]);
    // Checked before any work: the features an intervention names exist.
    let changes = changes(args);
    check(&changes, &tset, cfg.n_layer, ids.len()).map_err(|e| usage(e.to_string()))?;
    let settings = Settings {
        max_feature_nodes: Some(args.max_feature_nodes as usize),
        batch_size: args.backward_batch as usize,
        update_interval: args.update_interval as usize,
        max_logits: args.max_logits as usize,
        desired_logit_prob: args.logit_probability,
    };
    let bar = &mut Bar::new(session, "graph");
    let g = graph::attribute(&model, &tset, &ids, &settings, bar)?;
    let pruned = prune::prune(&g, args.node_threshold as f32, args.edge_threshold as f32)?;
    let scores = prune::scores(&g, &pruned);
    let positions = (!args.no_position_nodes).then(|| prune::positions(&g, &pruned));
    let done = Done {
        g: &g,
        pruned: &pruned,
        scores,
        positions: positions.as_ref(),
    };
    let drawn = drawing(&done, tokenizer, &model, &tset)?;
    write_files(session, args, &done, &tset, tokenizer, &drawn)?;
    let mut report = report(session, args, &done, (&tset, tokenizer), &texts[0], drawn)?;
    report.intervention = intervention(&changes, &model, &tset, tokenizer, &g.input_ids)?;
    emit(session, out, &report, printer::table)
}

/// `--clamp` and `--ablate` as interventions (an ablation sets the feature to 0).
fn changes(args: &GraphArgs) -> Vec<Intervention> {
    let ablated = args.ablate.iter().map(|&(l, f, p)| (l, f, p, 0.0));
    (args.clamp.iter().copied().chain(ablated))
        .map(|(layer, feature, pos, value)| Intervention {
            layer,
            pos,
            feature,
            value,
        })
        .collect()
}

/// `--clamp` and `--ablate`, when given: the next tokens before and after.
fn intervention(
    changes: &[Intervention],
    model: &Gpt2,
    tset: &TranscoderSet,
    tokenizer: &Tokenizer,
    ids: &[u32],
) -> Result<Option<GraphIntervention>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let (before, after) = intervene(model, tset, ids, changes)?;
    let k = 10;
    let top = |l: Vec<f32>| -> Result<_> {
        let n = l.len();
        predictions(
            tokenizer,
            &candle_core::Tensor::from_vec(l, n, &candle_core::Device::Cpu)?,
            k,
        )
    };
    Ok(Some(GraphIntervention {
        changes: (changes.iter())
            .map(|c| GraphChange {
                node_id: format!("{}_{}_{}", c.layer, c.feature, c.pos),
                layer: c.layer,
                feature: c.feature,
                position: c.pos,
                value: c.value,
            })
            .collect(),
        before: top(before)?,
        after: top(after)?,
    }))
}

/// A computed graph: pruned, scored, with our position nodes unless left out.
struct Done<'a> {
    g: &'a Graph,
    pruned: &'a Pruned,
    scores: (f64, f64),
    positions: Option<&'a PositionNodes>,
}

/// `--raw` and `-o`, when given.
fn write_files(
    session: &Session,
    args: &GraphArgs,
    d: &Done,
    tset: &TranscoderSet,
    tokenizer: &Tokenizer,
    drawing: &GraphDrawing,
) -> Result<()> {
    let g = d.g;
    if let Some(path) = &args.svg {
        write_svg(session, Some(path), |w| graph_svg::svg(w, drawing))?;
    }
    if let Some(path) = &args.raw {
        write_file(session, "--raw", Some(path), |w| {
            printer::raw(w, g, d.positions.is_some())
        })?;
    }
    if let Some(path) = &args.output {
        let slug = match &args.slug {
            Some(s) => s.clone(),
            None => (path.file_stem())
                .map_or_else(|| "graph".into(), |s| s.to_string_lossy().into_owned()),
        };
        let meta = GraphFileMetadata {
            slug,
            scan: tset.scan.clone(),
            transcoder_list: Vec::new(),
            prompt_tokens: decoded(tokenizer, &g.input_ids)?,
            prompt: tokenizer.decode(&g.input_ids)?,
            node_threshold: args.node_threshold,
            schema_version: 1,
            replacement_score: d.scores.0,
            completeness_score: d.scores.1,
        };
        let file = graph_file(d, tokenizer, meta)?;
        write_file(session, "-o", Some(path), |w| printer::graph_file(w, &file))?;
    }
    Ok(())
}

fn report(
    session: &Session,
    args: &GraphArgs,
    d: &Done,
    (tset, tokenizer): (&TranscoderSet, &Tokenizer),
    text: &str,
    graph: GraphDrawing,
) -> Result<GraphReport> {
    let g = d.g;
    let logits = (g.logits.iter())
        .map(|l| -> Result<GraphLogit> {
            Ok(GraphLogit {
                id: l.token,
                token: tokenizer.token_text(l.token)?,
                probability: l.prob,
            })
        })
        .collect::<Result<_>>()?;
    Ok(GraphReport {
        header: session.header(Some(text))?,
        transcoders: args.set.transcoders.clone(),
        scan: tset.scan.clone(),
        d_transcoder: tset.d_tc,
        skip_connection: tset.has_skip(),
        cross_layer: tset.cross_layer(),
        input_ids: g.input_ids.clone(),
        tokens: decoded(tokenizer, &g.input_ids)?,
        active_features: g.active_features.len(),
        selected_features: g.selected_features.len(),
        logits,
        replacement_score: d.scores.0,
        completeness_score: d.scores.1,
        node_threshold: args.node_threshold,
        edge_threshold: args.edge_threshold,
        kept: kept(d),
        top_nodes: top_nodes(g, d.pruned, tokenizer, args.top)?,
        token_influence: d.pruned.influence[token_range(g)].to_vec(),
        position_influence: d.positions.map(|p| p.influence.clone()),
        intervention: None,
        graph,
    })
}

/// `ids` with `<|endoftext|>` first, unless it is there: circuit-tracer's
/// `ensure_tokenized`.
fn with_endoftext(tokenizer: &Tokenizer, ids: &[u32]) -> Vec<u32> {
    match tokenizer.endoftext() {
        Some(e) if ids.first() != Some(&e) => {
            std::iter::once(e).chain(ids.iter().copied()).collect()
        }
        Some(_) | None => ids.to_vec(),
    }
}

/// The token nodes' indices among the graph's nodes.
fn token_range(g: &Graph) -> std::ops::Range<usize> {
    let start = g.selected_features.len() + g.n_layers * g.n_pos();
    start..start + g.n_pos()
}

/// What a node of the graph is.
enum Node {
    /// Index into the active features.
    Feature(usize),
    Error {
        layer: usize,
        pos: usize,
    },
    Token(usize),
    Logit(usize),
}

fn node(g: &Graph, i: usize) -> Node {
    let n_sel = g.selected_features.len();
    let errors_end = n_sel + g.n_layers * g.n_pos();
    match i {
        i if i < n_sel => Node::Feature(g.selected_features[i]),
        i if i < errors_end => Node::Error {
            layer: (i - n_sel) / g.n_pos(),
            pos: (i - n_sel) % g.n_pos(),
        },
        i if i < errors_end + g.n_pos() => Node::Token(i - errors_end),
        i => Node::Logit(i - errors_end - g.n_pos()),
    }
}

fn kept(d: &Done) -> GraphKept {
    let (g, p, positions) = (d.g, d.pruned, d.positions);
    let mut k = GraphKept {
        features: 0,
        errors: 0,
        tokens: 0,
        positions: positions.map_or(0, |_| g.n_pos()),
        logits: 0,
        edges: p.edge_mask.iter().filter(|&&e| e).count() + positions.map_or(0, |n| n.kept.len()),
    };
    for (i, _) in p.node_mask.iter().enumerate().filter(|(_, &m)| m) {
        match node(g, i) {
            Node::Feature(_) => k.features += 1,
            Node::Error { .. } => k.errors += 1,
            Node::Token(_) => k.tokens += 1,
            Node::Logit(_) => k.logits += 1,
        }
    }
    k
}

/// The kept features and errors with the most influence, at most `n`.
fn top_nodes(
    g: &Graph,
    p: &Pruned,
    tokenizer: &Tokenizer,
    n: usize,
) -> Result<Vec<GraphNodeInfluence>> {
    let mut out = Vec::new();
    for i in prune::ranked(&p.influence) {
        if out.len() == n {
            break;
        }
        if !p.node_mask[i] {
            continue;
        }
        let (kind, layer, pos, feature, activation) = match node(g, i) {
            Node::Feature(a) => {
                let [l, pos, f] = g.active_features[a];
                ("feature", l, pos, Some(f), Some(g.activation_values[a]))
            }
            Node::Error { layer, pos } => ("error", layer, pos, None, None),
            Node::Token(_) | Node::Logit(_) => continue,
        };
        out.push(GraphNodeInfluence {
            node_id: node_id(g, i),
            kind,
            layer,
            position: pos,
            token: tokenizer.token_text(g.input_ids[pos])?,
            feature,
            activation,
            influence: p.influence[i],
        });
    }
    Ok(out)
}

/// circuit-tracer's node id of node `i` (an error's `0_{layer}_{pos}` can equal a layer-0
/// feature's: Neuronpedia reads them so).
fn node_id(g: &Graph, i: usize) -> String {
    match node(g, i) {
        Node::Feature(a) => {
            let [l, p, f] = g.active_features[a];
            format!("{l}_{f}_{p}")
        }
        Node::Error { layer, pos } => format!("0_{layer}_{pos}"),
        Node::Token(p) => format!("E_{}_{p}", g.input_ids[p]),
        Node::Logit(j) => format!("{}_{}_{}", g.n_layers + 1, g.logits[j].token, g.n_pos() - 1),
    }
}

/// circuit-tracer's `Node` for node `i`.
fn file_node(g: &Graph, i: usize, p: &Pruned, tokenizer: &Tokenizer) -> Result<GraphFileNode> {
    let base = blank(node_id(g, i), Some(p.cumulative[i] as f64));
    Ok(match node(g, i) {
        Node::Feature(a) => {
            let [l, pos, f] = g.active_features[a];
            GraphFileNode {
                feature: ((l + f) * (l + f + 1) / 2 + f) as i64,
                layer: l.to_string(),
                ctx_idx: pos,
                feature_type: "cross layer transcoder".into(),
                js_node_id: format!("{l}_{f}-0"),
                activation: Some(g.activation_values[a] as f64),
                ..base
            }
        }
        Node::Error { layer, pos } => GraphFileNode {
            feature: -1,
            layer: layer.to_string(),
            ctx_idx: pos,
            feature_type: "mlp reconstruction error".into(),
            js_node_id: format!("{layer}_{pos}-0"),
            ..base
        },
        Node::Token(pos) => GraphFileNode {
            feature: pos as i64,
            layer: "E".into(),
            ctx_idx: pos,
            feature_type: "embedding".into(),
            js_node_id: format!("E_{}-{pos}", g.input_ids[pos]),
            ..base
        },
        Node::Logit(j) => {
            let l = g.logits[j];
            let pos = g.n_pos() - 1;
            GraphFileNode {
                feature: l.token as i64,
                layer: (g.n_layers + 1).to_string(),
                ctx_idx: pos,
                feature_type: "logit".into(),
                token_prob: l.prob as f64,
                is_target_logit: j == 0,
                js_node_id: format!("L_{}-{pos}", l.token),
                clerp: format!(
                    "Output \"{}\" (p={:.3})",
                    tokenizer.decode(&[l.token])?,
                    l.prob
                ),
                influence: None,
                ..base
            }
        }
    })
}

/// A node with pydantic's defaults for the fields not given.
fn blank(node_id: String, influence: Option<f64>) -> GraphFileNode {
    GraphFileNode {
        node_id,
        feature: 0,
        layer: String::new(),
        ctx_idx: 0,
        feature_type: String::new(),
        token_prob: 0.0,
        is_target_logit: false,
        run_idx: 0,
        reverse_ctx_idx: 0,
        js_node_id: String::new(),
        clerp: String::new(),
        influence,
        activation: None,
    }
}

/// A position-embedding node (gpt2-inspect's own): in the embeddings' row, with no
/// cumulative influence of circuit-tracer's (it is not among its nodes).
fn position_node(p: usize) -> GraphFileNode {
    GraphFileNode {
        feature: -2 - p as i64,
        layer: "E".into(),
        ctx_idx: p,
        feature_type: "position embedding".into(),
        js_node_id: format!("P-{p}"),
        clerp: format!("Pos: {p}"),
        ..blank(format!("P_{p}"), None)
    }
}

/// circuit-tracer's `create_nodes` and `create_used_nodes_and_edges`: the kept nodes, the
/// kept edges between them (by target, then source), and the nodes that have an edge or
/// are tokens or logits; position nodes after the tokens, their edges after each target's.
fn graph_file(d: &Done, tokenizer: &Tokenizer, metadata: GraphFileMetadata) -> Result<GraphFile> {
    let (g, p) = (d.g, d.pruned);
    let (links, used) = links(d);
    let mut nodes = Vec::new();
    for (i, &has_edge) in used.iter().enumerate() {
        let always = matches!(node(g, i), Node::Token(_) | Node::Logit(_));
        if p.node_mask[i] && (has_edge || always) {
            nodes.push(file_node(g, i, p, tokenizer)?);
        }
        if d.positions.is_some() && i == token_range(g).end - 1 {
            nodes.extend((0..g.n_pos()).map(position_node));
        }
    }
    Ok(GraphFile {
        metadata,
        q_params: GraphQParams {
            pinned_ids: Vec::new(),
            supernodes: Vec::new(),
            link_type: "both".into(),
            clicked_id: String::new(),
            sg_pos: String::new(),
        },
        nodes,
        links,
    })
}

/// The kept edges between kept nodes, by target then source (a target's position edges
/// after its other ones), and which nodes have one.
fn links(d: &Done) -> (Vec<GraphLink>, Vec<bool>) {
    let (g, p) = (d.g, d.pruned);
    let n = g.n_nodes();
    let ids: Vec<Option<String>> = (0..n)
        .map(|i| p.node_mask[i].then(|| node_id(g, i)))
        .collect();
    let mut links = Vec::new();
    let mut used = vec![false; n];
    let kept = d.positions.map_or(&[][..], |n| n.kept.as_slice());
    let mut by_target = kept.iter().peekable();
    for dst in 0..n {
        for src in 0..n {
            if let (true, Some(s), Some(t)) = (p.edge_mask[dst * n + src], &ids[src], &ids[dst]) {
                links.push(GraphLink {
                    source: s.clone(),
                    target: t.clone(),
                    weight: g.adjacency[dst * n + src] as f64,
                });
                used[src] = true;
                used[dst] = true;
            }
        }
        while let Some(&&(t, pos)) = by_target.peek().filter(|(t, _)| *t == dst) {
            by_target.next();
            links.push(GraphLink {
                source: position_node(pos).node_id,
                target: node_id(g, t),
                weight: g.position_edges[t * g.n_pos() + pos] as f64,
            });
            used[t] = true;
        }
    }
    (links, used)
}

/// Edges `--svg` draws at most: the strongest.
const DRAWN_EDGES: usize = 500;

/// What `--svg` and the explorer draw: the kept nodes (and position nodes), each feature's
/// activations and top logits, and the strongest kept edges.
fn drawing(
    d: &Done,
    tokenizer: &Tokenizer,
    model: &Gpt2,
    tset: &TranscoderSet,
) -> Result<GraphDrawing> {
    let g = d.g;
    let (mut nodes, index) = drawn_nodes(d, tokenizer)?;
    feature_details(&mut nodes, g, model, tset, tokenizer)?;
    let mut edges: Vec<DrawnEdge> = (d.pruned.edge_mask.iter().enumerate())
        .filter(|(_, &m)| m)
        .filter_map(|(k, _)| {
            let (n, w) = (g.n_nodes(), g.adjacency[k]);
            let (source, target) = (index[k % n]?, index[k / n]?);
            Some(DrawnEdge {
                source,
                target,
                weight: w,
            })
        })
        .collect();
    let first_position = nodes.len() - d.positions.map_or(0, |_| g.n_pos());
    for &(t, pos) in d.positions.map_or(&[][..], |pn| pn.kept.as_slice()) {
        if let Some(target) = index[t] {
            let weight = g.position_edges[t * g.n_pos() + pos];
            edges.push(DrawnEdge {
                source: first_position + pos,
                target,
                weight,
            });
        }
    }
    let kept_edges = edges.len();
    edges.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    edges.truncate(DRAWN_EDGES);
    Ok(GraphDrawing {
        text: tokenizer.decode(&g.input_ids)?,
        tokens: decoded(tokenizer, &g.input_ids)?,
        n_layers: g.n_layers,
        nodes,
        edges,
        kept_edges,
    })
}

/// The kept nodes, then the position nodes, and each graph node's index among them.
fn drawn_nodes(d: &Done, tokenizer: &Tokenizer) -> Result<(Vec<DrawnNode>, Vec<Option<usize>>)> {
    let (g, p) = (d.g, d.pruned);
    let n = g.n_nodes();
    let mut index = vec![None; n];
    let mut nodes = Vec::new();
    for i in (0..n).filter(|&i| p.node_mask[i]) {
        let (kind, row, position) = match node(g, i) {
            Node::Feature(a) => {
                let [l, pos, _] = g.active_features[a];
                (NodeKind::Feature, l + 1, pos)
            }
            Node::Error { layer, pos } => (NodeKind::Error, layer + 1, pos),
            Node::Token(pos) => (NodeKind::Token, 0, pos),
            Node::Logit(_) => (NodeKind::Logit, g.n_layers + 1, g.n_pos() - 1),
        };
        let id = node_id(g, i);
        let label = match node(g, i) {
            Node::Logit(j) => format!("{id}: {:?}", tokenizer.token_text(g.logits[j].token)?),
            Node::Feature(_) | Node::Error { .. } | Node::Token(_) => format!(
                "{id}: {kind:?} at {:?}",
                tokenizer.token_text(g.input_ids[position])?
            ),
        };
        index[i] = Some(nodes.len());
        let influence = p.influence[i];
        let (feature, activation) = match node(g, i) {
            Node::Feature(a) => (Some(g.active_features[a][2]), Some(g.activation_values[a])),
            Node::Error { .. } | Node::Token(_) | Node::Logit(_) => (None, None),
        };
        nodes.push(DrawnNode {
            node_id: id,
            kind,
            row,
            position,
            label,
            influence,
            feature,
            activation,
            activations: Vec::new(),
            top_logits: Vec::new(),
        });
    }
    nodes.extend(d.positions.map_or_else(Vec::new, position_nodes));
    Ok((nodes, index))
}

/// Logits listed per feature node.
const FEATURE_LOGITS: usize = 5;

/// Each feature node's activations over the prompt (from the graph's active features) and
/// the tokens its decoder vectors promote most through the unembedding.
fn feature_details(
    nodes: &mut [DrawnNode],
    g: &Graph,
    model: &Gpt2,
    tset: &TranscoderSet,
    tokenizer: &Tokenizer,
) -> Result<()> {
    let feats: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].kind == NodeKind::Feature)
        .collect();
    if feats.is_empty() {
        return Ok(());
    }
    let c = model.config().n_embd;
    let mut directions = Vec::with_capacity(feats.len());
    for &i in &feats {
        let (layer, f) = (nodes[i].row - 1, nodes[i].feature.unwrap_or(0));
        let mut acts = vec![0f32; g.n_pos()];
        for (a, &[l, p, ff]) in g.active_features.iter().enumerate() {
            if l == layer && ff == f {
                acts[p] = g.activation_values[a];
            }
        }
        nodes[i].activations = acts;
        let row = tset.layers[layer].decoder_rows(&[f as u32])?; // (1, writes · C)
        let slots = row.reshape((row.dim(1)? / c, c))?;
        directions.push(slots.sum(0)?);
    }
    // A few features' logits `(n, V)` at a time: memory does not grow with the kept nodes.
    for (chunk, dirs) in feats
        .chunks(LOGIT_CHUNK)
        .zip(directions.chunks(LOGIT_CHUNK))
    {
        let logits = model
            .unembedding()
            .matmul_t(&candle_core::Tensor::stack(dirs, 0)?)?
            .to_vec2::<f32>()?;
        for (&i, l) in chunk.iter().zip(&logits) {
            nodes[i].top_logits = (crate::dist::top_k(l, FEATURE_LOGITS).into_iter())
                .map(|t| {
                    Ok(TokenValue {
                        id: t as u32,
                        token: tokenizer.token_text(t as u32)?,
                        value: l[t],
                    })
                })
                .collect::<Result<_>>()?;
        }
    }
    Ok(())
}

/// Features whose logits are computed at once.
const LOGIT_CHUNK: usize = 32;

/// Our position-embedding nodes, as drawn.
fn position_nodes(pn: &PositionNodes) -> Vec<DrawnNode> {
    (pn.influence.iter().enumerate())
        .map(|(pos, &influence)| DrawnNode {
            node_id: format!("P_{pos}"),
            kind: NodeKind::Position,
            row: 0,
            position: pos,
            label: format!("P_{pos}: position {pos}"),
            influence,
            feature: None,
            activation: None,
            activations: Vec::new(),
            top_logits: Vec::new(),
        })
        .collect()
}
