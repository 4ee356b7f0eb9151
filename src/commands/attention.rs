//! `attention`: the T×T attention probabilities of one head, one layer, or all layers;
//! optionally the pre-softmax scores and the q, k, v vectors.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::cli::{AttentionArgs, AttentionFormat, FigureArgs, ScaleArg, Window};
use crate::error::usage;
use crate::input::which_text;
use crate::model::{Activations, BlockHook, CaptureSpec, Config, Gpt2, Hook, NoLogits, Request};
use crate::render::attention::{figure, table};
use crate::render::attention::{heatmap, neuron, stages};
use crate::render::color::ColourScale;
use crate::render::format::json;
use crate::render::format::printer::Format;
use crate::reports::{
    AttentionReport, Bertviz, BertvizReport, HeadStages, MaskedMatrix, Matrix, NeuronView, PerHead,
};
use crate::session::parts::per_layer;
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{check_index, decoded, emit_parts, matrix, Built, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &AttentionArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    let plan = Plan::check(args, cfg, &session.model_name)?;
    if plan.bertviz && matches!(session.output.format, Format::Csv | Format::Tsv) {
        return Err(usage(
            "--format bertviz is BertViz's JSON; drop --csv and --tsv (or --format bertviz)",
        ));
    }
    let blocks = plan.layers.last().map_or(0, |l| l + 1);
    let (prepared, model) = session.prepare_and_load(&args.input, cfg, blocks, Take::STRICT)?;
    let windows = plan.check_texts(session, args, &prepared)?;
    let req = request(args, &plan.layers);
    if plan.bertviz {
        let Built { report, problem } = bertviz(session, &prepared, &model, &req, &plan.layers)?;
        let whole = |mut all: Vec<BertvizReport>| match all.len() {
            1 => Bertviz::One(all.remove(0)),
            _ => Bertviz::Many(all),
        };
        emit_parts(session, out, report, whole, |out, r| json::write(out, r))?;
        return problem.map_or(Ok(()), Err);
    }
    let Texts { cfg, tokenizer, .. } = &prepared;
    let figure = figure::Figure {
        title: args.figure.title.clone(),
        colours: plan.colours,
        annot: args.annot,
    };
    let build = |row: Computed<NoLogits>| {
        let window = windows[row.index];
        let report = build(session, cfg, tokenizer, args, &plan.layers, &row, window)?;
        // --svg takes one text (checked before the run).
        if let Some(path) = &args.svg {
            write_svg(session, args, path, &report, &figure)?;
        }
        Ok(report)
    };
    let style = session.output.palette.map(|palette| heatmap::Style {
        palette,
        width: session.output.width,
        annot: args.annot,
        grid: args.all_heads,
        colours: plan.colours,
    });
    prepared.run(session, out, &model, &req, build, |out, r| {
        match (&r.neuron, &r.stages, &style) {
            (Some(n), _, _) => {
                neuron::neuron(out, r, n, session.output.palette, args.annot)?;
                table::scores_and_qkv(out, r)
            }
            (None, Some(s), _) => {
                stages::stages(out, r, s, session.output.palette, session.output.width)?;
                table::scores_and_qkv(out, r)
            }
            (None, None, Some(style)) => heatmap::attention(out, r, style),
            (None, None, None) => table::attention(out, r),
        }
    })
}

/// The flags, checked against the model and each other before any work: what the command
/// body starts from.
struct Plan {
    /// The layers recorded: `--layer`, or all.
    layers: Vec<usize>,
    bertviz: bool,
    colours: ColourScale,
}

impl Plan {
    fn check(args: &AttentionArgs, cfg: &Config, model: &str) -> Result<Plan> {
        if let Some(l) = args.layer {
            check_index("layer", l, cfg.n_layer, "layers", model)?;
        }
        if let Some(h) = args.head {
            check_index("head", h, cfg.n_head, "heads", model)?;
        }
        let bertviz = args.format == AttentionFormat::Bertviz;
        let narrowed = args.layer.is_some() || args.head.is_some() || args.window.is_some();
        if bertviz && (narrowed || args.scores || args.qkv || args.svg.is_some()) {
            return Err(usage(
                "--format bertviz writes every layer and head's probabilities; drop --layer, --head, --scores, --qkv, --window and --svg",
            ));
        }
        Ok(Plan {
            layers: match args.layer {
                Some(l) => vec![l],
                None => (0..cfg.n_layer).collect(),
            },
            bertviz,
            colours: colours(&args.figure)?,
        })
    }

    /// The checks that need the texts' tokens; returns each text's `--window`.
    fn check_texts(
        &self,
        session: &Session,
        args: &AttentionArgs,
        prepared: &Texts,
    ) -> Result<Vec<Option<[usize; 2]>>> {
        let n = prepared.ids.len();
        if args.svg.is_some() && n > 1 {
            return Err(usage(
                "--svg draws the attention of one text; give one TEXT (or run once per text)",
            ));
        }
        let windows = (prepared.ids.iter().enumerate())
            .map(|(i, ids)| window(args.window, ids.len(), &which_text(i, n)))
            .collect::<Result<Vec<_>>>()?;
        let heads = self.layers.len() * args.head.map_or(prepared.cfg.n_head, |_| 1);
        let lengths: Vec<usize> = (windows.iter().zip(&prepared.ids))
            .map(|(w, ids)| w.map_or(ids.len(), |[a, b]| b - a))
            .collect();
        if session.output.format.is_table()
            && !self.bertviz
            && !args.all_heads
            && args.layer.is_none()
        {
            self.refuse_long_tables(heads, lengths.iter().copied().max().unwrap_or(0), prepared)?;
        }
        if session.output.format.is_json() {
            announce_json_size(args, &prepared.cfg, heads, &lengths);
        }
        Ok(windows)
    }

    /// A table per head: every head of gpt2 at 16 tokens is 2,592 lines no one reads.
    fn refuse_long_tables(&self, heads: usize, longest: usize, prepared: &Texts) -> Result<()> {
        let lines = heads * (longest + 2);
        if heads > 16 && lines > 500 {
            return Err(usage(format!(
                "attention without --layer prints all {heads} heads ({} layers × {} heads, \
                 about {lines} lines): pick --layer L (and --head H), draw them small with \
                 --all-heads, or take every number with --json",
                self.layers.len(),
                prepared.cfg.n_head
            )));
        }
        Ok(())
    }
}

/// Says how big the JSON will be before a long silence (1,024 tokens × 144 heads is over a
/// gigabyte); `lengths` are the texts' (windowed) token counts.
fn announce_json_size(args: &AttentionArgs, cfg: &Config, heads: usize, lengths: &[usize]) {
    let numbers: usize = (lengths.iter())
        .map(|&t| {
            let per_head = t * t * (1 + usize::from(args.scores))
                + 3 * t * cfg.head_dim() * usize::from(args.qkv);
            heads * per_head
        })
        .sum();
    // About 8 characters a number ("0.012345,").
    let bytes = numbers * 8;
    if bytes > 64 << 20 {
        eprintln!(
            "writing about {} of JSON ({numbers} numbers: {heads} heads)",
            crate::units::human_size(bytes as u64)
        );
    }
}

/// What to record: the pattern, and what `--scores`, `--qkv`, `--query` or `--stages`
/// draw, of every layer in `layers` (narrowed to `--head`).
fn request(args: &AttentionArgs, layers: &[usize]) -> Request<NoLogits> {
    let mut kinds = vec![BlockHook::Pattern];
    if args.scores {
        kinds.push(BlockHook::AttnScores);
    }
    if args.qkv {
        kinds.extend([BlockHook::Q, BlockHook::K, BlockHook::V]);
    }
    // --query and --stages exclude each other (clap): each records what it draws.
    let view: &[BlockHook] = if args.neuron.is_some() {
        &[BlockHook::Q, BlockHook::K, BlockHook::AttnScores]
    } else if args.stages {
        &[
            BlockHook::Ln1Out,
            BlockHook::Q,
            BlockHook::K,
            BlockHook::V,
            BlockHook::AttnScores,
            BlockHook::Z,
            BlockHook::AttnResult,
        ]
    } else {
        &[]
    };
    for &k in view {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let hooks = (layers.iter()).flat_map(|&l| kinds.iter().map(move |&k| Hook::Block(l, k)));
    Request {
        capture: CaptureSpec::new(hooks).with_heads(args.head.map(|h| vec![h])),
        logits: NoLogits,
    }
}

/// `--format bertviz`: every layer's pattern, one object per text as BertViz reads it.
/// The reports of `--format bertviz`, one per text.
fn bertviz(
    session: &Session,
    prepared: &Texts,
    model: &Gpt2,
    req: &Request<NoLogits>,
    layers: &[usize],
) -> Result<Built<Vec<BertvizReport>>> {
    let rows = prepared.forward(model, req)?;
    let reports = rows
        .iter()
        .map(|row| {
            Ok(BertvizReport {
                header: session.header(Some(row.text))?,
                tokens: decoded(&prepared.tokenizer, row.ids)?,
                all: per_layer(&row.output.activations, layers, BlockHook::Pattern, None)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Built {
        report: reports,
        problem: rows.iter().find_map(|r| r.non_finite_error(prepared)),
    })
}

/// `--svg FILE`: the figure of `report` (its stages with `--stages`).
fn write_svg(
    session: &Session,
    args: &AttentionArgs,
    path: &std::path::Path,
    report: &AttentionReport,
    figure: &figure::Figure,
) -> Result<()> {
    if args.annot && report.stages.is_none() && !figure::annot_fits(report) {
        let several = report.weights.maps(report.layer, report.head).len() > 1;
        eprintln!(
            "--annot: the figure's cells are too small for values ({} tokens{}; values are \
             written for one head of at most 26 tokens); each cell's value is its tooltip",
            report.tokens.len(),
            if several { ", several heads" } else { "" }
        );
    }
    crate::session::write_svg(session, Some(path), |w| match &report.stages {
        Some(s) => figure::stages(w, report, s, args.figure.title.as_deref()),
        None => figure::attention(w, report, figure),
    })
}

/// The colour scale `--cmap`, `--scale`, `--vmin` and `--vmax` ask for.
fn colours(f: &FigureArgs) -> Result<ColourScale> {
    let given = |v: Option<f32>, flag| v.map(|_| flag);
    let ends = given(f.vmin, "--vmin").or(given(f.vmax, "--vmax"));
    match (f.scale, ends) {
        (ScaleArg::Row, Some(flag)) => {
            return Err(usage(format!(
                "{flag} does not apply to --scale row (each row runs from 0 to its largest value); use --scale absolute or log"
            )))
        }
        (ScaleArg::Global, _) if f.vmax.is_some() => {
            return Err(usage(
                "--vmax does not apply to --scale global (the top is the largest value shown); use --scale absolute",
            ))
        }
        _ => {}
    }
    if let (Some(lo), Some(hi)) = (f.vmin, f.vmax) {
        if lo >= hi {
            return Err(usage(format!("--vmin {lo} must be below --vmax {hi}")));
        }
    }
    if f.scale == ScaleArg::Log && f.vmin == Some(0.0) {
        return Err(usage(
            "--vmin 0 has no logarithm; give --scale log a --vmin above 0 (default 1e-4)",
        ));
    }
    Ok(ColourScale {
        cmap: crate::session::cmap(f.cmap),
        scale: crate::session::flags::scale(f.scale),
        vmin: f.vmin,
        vmax: f.vmax,
    })
}

/// `--window` for a text of `t` tokens as `[start, end)`; `None` when not asked for.
fn window(w: Option<Window>, t: usize, which: &str) -> Result<Option<[usize; 2]>> {
    let Some(w) = w else { return Ok(None) };
    let (start, end) = (w.start.unwrap_or(0), w.end.unwrap_or(t));
    if start >= end || end > t {
        return Err(usage(format!(
            "--window {}:{} is out of range: {which} has {t} tokens, positions 0 to {}; give START < END <= {t}",
            w.start.map_or(String::new(), |s| s.to_string()),
            w.end.map_or(String::new(), |e| e.to_string()),
            t - 1
        )));
    }
    Ok(Some([start, end]))
}

fn build(
    session: &Session,
    cfg: &Config,
    tokenizer: &Tokenizer,
    args: &AttentionArgs,
    layers: &[usize],
    row: &Computed<NoLogits>,
    window: Option<[usize; 2]>,
) -> Result<AttentionReport> {
    let acts = &row.output.activations;
    let [start, end] = window.unwrap_or([0, row.ids.len()]);
    let t = end - start;
    let shape = match (args.layer, args.head) {
        (Some(_), Some(_)) => vec![t, t],
        (Some(_), None) => vec![cfg.n_head, t, t],
        (None, h) => vec![cfg.n_layer, if h.is_some() { 1 } else { cfg.n_head }, t, t],
    };
    let nest = |m| PerHead::nest(m, args.layer, args.head);
    let scores = match args.scores {
        true => {
            let raw = per_layer(acts, layers, BlockHook::AttnScores, window)?;
            let each = |heads: Vec<Matrix>| heads.into_iter().map(masked).collect();
            Some(PerHead::nest(
                raw.into_iter().map(each).collect(),
                args.layer,
                args.head,
            ))
        }
        false => None,
    };
    let qkv = |k| -> Result<_> {
        Ok(match args.qkv {
            true => Some(nest(per_layer(acts, layers, k, window)?)),
            false => None,
        })
    };
    Ok(AttentionReport {
        header: session.header(Some(row.text))?,
        tokens: decoded(tokenizer, &row.ids[start..end])?,
        layer: args.layer,
        head: args.head,
        window,
        shape,
        weights: nest(per_layer(acts, layers, BlockHook::Pattern, window)?),
        scores,
        q: qkv(BlockHook::Q)?,
        k: qkv(BlockHook::K)?,
        v: qkv(BlockHook::V)?,
        neuron: match (args.neuron, args.layer, args.head) {
            (Some(query), Some(l), Some(_)) => {
                let positions = row.ids.len();
                check_index("query", query, positions, "token positions", "the text")?;
                Some(neuron(acts, l, query)?)
            }
            _ => None,
        },
        stages: match (args.stages, args.layer) {
            (true, Some(l)) => Some(stages(acts, l)?),
            _ => None,
        },
    })
}

/// The stages of the one head recorded of layer `l`: ln_1's output, q, k and v, the masked
/// scores, the pattern, z and z·W_O.
fn stages(acts: &Activations, l: usize) -> Result<HeadStages> {
    let one =
        |kind| -> Result<Matrix> { Ok(per_layer(acts, &[l], kind, None)?.remove(0).remove(0)) };
    Ok(HeadStages {
        x: matrix(&acts.get(Hook::Block(l, BlockHook::Ln1Out))?.get(0)?)?,
        q: one(BlockHook::Q)?,
        k: one(BlockHook::K)?,
        v: one(BlockHook::V)?,
        scores: masked(one(BlockHook::AttnScores)?),
        weights: one(BlockHook::Pattern)?,
        z: one(BlockHook::Z)?,
        result: one(BlockHook::AttnResult)?,
    })
}

/// Scores with the mask made explicit: the −∞ of masked keys become `None`.
fn masked(scores: Matrix) -> MaskedMatrix {
    scores
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|s| s.is_finite().then_some(s))
                .collect()
        })
        .collect()
}

/// The neuron view of `query` in the one head recorded of layer `l` (the capture is
/// narrowed to `--head`), from the recorded q, k, scores and pattern.
fn neuron(acts: &Activations, l: usize, query: usize) -> Result<NeuronView> {
    let head = |kind| -> Result<Tensor> {
        let t = acts.get(Hook::Block(l, kind))?;
        Ok(match kind {
            // (1, T, 1, hs) → (T, hs)
            BlockHook::Q | BlockHook::K => t.get(0)?.squeeze(1)?,
            // (1, 1, T, T) → the query's row (T,)
            _ => t.get(0)?.get(0)?.get(query)?,
        }
        .to_dtype(DType::F32)?)
    };
    let q = head(BlockHook::Q)?.get(query)?; // (hs,)
    let k = head(BlockHook::K)?; // (T, hs)
    let qk = k.broadcast_mul(&q.unsqueeze(0)?)?; // (T, hs)
    let dot: Vec<f32> = qk.sum(1)?.to_vec1()?; // (T,)
    let scores: Vec<f32> = head(BlockHook::AttnScores)?.to_vec1()?;
    let visible = |j: usize| j <= query;
    Ok(NeuronView {
        query,
        q: q.to_vec1()?,
        k: k.to_vec2()?,
        qk: qk.to_vec2()?,
        dot: dot
            .into_iter()
            .enumerate()
            .map(|(j, d)| visible(j).then_some(d))
            .collect(),
        scores: scores
            .into_iter()
            .enumerate()
            .map(|(j, s)| (visible(j) && s.is_finite()).then_some(s))
            .collect(),
        weights: head(BlockHook::Pattern)?.to_vec1()?,
    })
}
