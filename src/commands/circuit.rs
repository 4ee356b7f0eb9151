//! `circuit`: edge attribution patching. Every edge from a writer into the residual
//! stream (the embedding, a head, an MLP) to a later reader (a head's query, key or value
//! input, an MLP's input, the logits) scored from one clean run and one corrupt run with
//! its backward pass; the top edges listed and drawn, and their faithfulness measured.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::edges::{
    edge_attribution, edge_patch, faithfulness, EdgeScores, Reader, Writer,
};
use crate::analysis::grad::check_differentiable;
use crate::analysis::metric::Measure;
use crate::analysis::patching::share_span;
use crate::cli::CircuitArgs;
use crate::error::usage;
use crate::model::{Config, Gpt2};
use crate::render::causal::edges as printer;
use crate::reports::{CircuitReport, EdgeScore, Faithfulness, NodeScore};
use crate::session::metric::pair_measure;
use crate::session::pair;
use crate::session::progress::Bar;
use crate::session::{check_finite, decoded, emit, write_file, write_svg, Built, Session};

/// How many edges a model of `cfg`'s shape has.
fn edge_count(cfg: &Config) -> usize {
    let writers = Writer::all(cfg.n_layer, cfg.n_head);
    (Reader::all(cfg.n_layer, cfg.n_head).iter())
        .map(|r| writers.iter().filter(|&&w| r.reads(w, cfg.n_layer)).count())
        .sum()
}

/// The most `--ig-steps` a run takes, as `saliency --steps`.
const MAX_IG_STEPS: usize = 1000;

/// `--top`, `--ig-steps` and `--faithfulness` checked against the model's edge count.
fn check_args(args: &CircuitArgs, edges: usize) -> Result<()> {
    if args.top == 0 {
        return Err(usage("--top 0 shows no edge: give 1 or more"));
    }
    if args.ig_steps == 0 {
        return Err(usage(
            "--ig-steps 0 takes no gradient: give 1 (plain EAP) or more",
        ));
    }
    if args.ig_steps > MAX_IG_STEPS {
        return Err(usage(format!(
            "--ig-steps {} is more than EAP-IG needs: give at most {MAX_IG_STEPS} \
             (the runs are batched, so memory stays bounded, but time grows with the count)",
            args.ig_steps
        )));
    }
    if args.exact > edges {
        return Err(usage(format!(
            "--exact {} is more than the model's {edges} edges",
            args.exact
        )));
    }
    if let Some(&k) = args.faithfulness.iter().find(|&&k| k > edges) {
        return Err(usage(format!(
            "--faithfulness {k} is more than the model's {edges} edges"
        )));
    }
    Ok(())
}

pub fn run(session: &Session, args: &CircuitArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?;
    let report = &built.report;
    write_file(session, "--dot", args.dot.as_deref(), |w| {
        printer::dot(w, report)
    })?;
    write_svg(session, args.svg.as_deref(), |w| printer::svg(w, report))?;
    emit(session, out, report, |out, r| {
        printer::table(out, r, session.output.palette)
    })?;
    built.finish()
}

/// The report `circuit` prints and draws.
pub fn build(session: &Session, args: &CircuitArgs) -> Result<Built<CircuitReport>> {
    let cfg = session.config()?;
    let tokenizer = session.tokenizer()?;
    let (metric, spec) = pair_measure(&tokenizer, &args.pair, args.metric)?;
    let (clean, corrupt) = pair(session, &tokenizer, &args.pair, (cfg, metric.forced()))?;
    check_args(args, edge_count(cfg))?;
    let model = session.model(cfg, cfg.n_layer)?;
    check_differentiable(&model).map_err(|e| usage(format!("circuit: {e}")))?;
    let row =
        |ids: &[u32]| -> Result<Tensor> { Ok(Tensor::new(ids, model.device())?.unsqueeze(0)?) };
    let (clean_ids, corrupt_ids) = (row(&clean)?, row(&corrupt)?);
    let bar = &mut Bar::new(session, "circuit");
    let ids = (&clean_ids, &corrupt_ids);
    let scores = edge_attribution(&model, ids.0, ids.1, &metric, args.ig_steps, bar)?;
    let circuits = faithfulness(&model, ids, &metric, (&scores, &args.faithfulness), bar)?;
    let mut edges = edges(&scores);
    add_exact(
        &model,
        ids,
        (&metric, &scores),
        &mut edges[..args.exact],
        bar,
    )?;
    let (clean_text, corrupt_text) = crate::session::pair_texts(&tokenizer, &args.pair)?;
    let diff = spec.is_logit_diff();
    let report = CircuitReport {
        header: session.header(Some(&clean_text))?,
        clean: clean_text,
        corrupt: corrupt_text,
        tokens: decoded(&tokenizer, &clean)?,
        answer: spec.one_answer(),
        wrong: spec.wrong.clone(),
        metric: spec,
        method: if args.ig_steps > 1 { "eap-ig" } else { "eap" },
        ig_steps: args.ig_steps,
        clean_metric: scores.clean,
        corrupt_metric: scores.corrupt,
        clean_logit_diff: diff.then_some(scores.clean),
        corrupt_logit_diff: diff.then_some(scores.corrupt),
        shares_defined: share_span(scores.clean, scores.corrupt).is_some(),
        top: args.top,
        edges,
        nodes: nodes(&scores),
        faithfulness: recovered(&args.faithfulness, circuits, &scores, diff),
    };
    let values = (report.edges.iter())
        .flat_map(|e| [Some(e.score), e.exact].into_iter().flatten())
        .chain(report.faithfulness.iter().map(|f| f.metric))
        .chain([scores.clean, scores.corrupt]);
    let problem = check_finite(&model, &clean_ids, values.map(|v| v as f64))?;
    Ok(Built { report, problem })
}

/// Each of `edges` (the top ones, in order) with the metric's change when it alone is
/// patched, exactly.
fn add_exact(
    model: &Gpt2,
    (clean, corrupt): (&Tensor, &Tensor),
    (metric, s): (&Measure, &EdgeScores),
    edges: &mut [EdgeScore],
    progress: &mut Bar,
) -> Result<()> {
    if edges.is_empty() {
        return Ok(());
    }
    let top: Vec<_> = (s.edges.iter().take(edges.len()))
        .map(|&(w, r, _)| (s.writers[w], s.readers[r]))
        .collect();
    let p = edge_patch(model, clean, corrupt, metric, &top, progress)?;
    for (e, v) in edges.iter_mut().zip(p.values) {
        e.exact = Some(v - p.corrupt);
    }
    Ok(())
}

/// Each `--faithfulness` circuit's metric as a share of clean − corrupt (`diff`: the
/// metric is the logit difference, also under its older name).
fn recovered(ks: &[usize], metrics: Vec<f32>, s: &EdgeScores, diff: bool) -> Vec<Faithfulness> {
    let span = share_span(s.clean, s.corrupt);
    (ks.iter().zip(metrics))
        .map(|(&edges, m)| Faithfulness {
            edges,
            metric: m,
            logit_diff: diff.then_some(m),
            recovered: span.map(|span| (m - s.corrupt) / span),
        })
        .collect()
}

fn edges(s: &EdgeScores) -> Vec<EdgeScore> {
    let span = share_span(s.clean, s.corrupt);
    (s.edges.iter())
        .map(|&(w, r, score)| EdgeScore {
            writer: s.writers[w].name(),
            reader: s.readers[r].name(),
            score,
            share: span.map(|span| score / span),
            exact: None,
        })
        .collect()
}

/// Each writer's score: the sum of its edges' (its attribution-patching estimate).
fn nodes(s: &EdgeScores) -> Vec<NodeScore> {
    let mut sums = vec![0f64; s.writers.len()];
    for &(w, _, score) in &s.edges {
        sums[w] += score as f64;
    }
    let mut nodes: Vec<NodeScore> = (s.writers.iter().zip(sums))
        .map(|(w, score)| NodeScore {
            name: w.name(),
            score: score as f32,
        })
        .collect();
    nodes.sort_by(|a, b| b.score.abs().total_cmp(&a.score.abs()));
    nodes
}
