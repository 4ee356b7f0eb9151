//! `attention`: the T×T attention probabilities of one head, one layer, or all layers;
//! optionally the pre-softmax scores and the q, k, v vectors.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};

use super::{check_index, decoded, Prepared, Row, Session};
use crate::cli::{AttentionArgs, AttentionFormat};
use crate::error::usage;
use crate::model::{Activations, BlockHook, CaptureSpec, Config, Hook, Logits, Request};
use crate::render::{json, table};
use crate::report::{AttentionReport, BertvizReport, PerHead};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &AttentionArgs, out: &mut dyn Write) -> Result<()> {
    let prepared = session.prepare(&args.input)?;
    let Prepared { cfg, tokenizer, .. } = &prepared;
    if let Some(l) = args.layer {
        check_index("layer", l, cfg.n_layer, "layers", &session.model_name)?;
    }
    if let Some(h) = args.head {
        check_index("head", h, cfg.n_head, "heads", &session.model_name)?;
    }
    let bertviz = args.format == AttentionFormat::Bertviz;
    if bertviz && (args.layer.is_some() || args.head.is_some() || args.scores || args.qkv) {
        return Err(usage(
            "--format bertviz writes every layer and head's probabilities; drop --layer, --head, --scores and --qkv",
        ));
    }
    let layers: Vec<usize> = match args.layer {
        Some(l) => vec![l],
        None => (0..cfg.n_layer).collect(),
    };
    let mut kinds = vec![BlockHook::Pattern];
    if args.scores {
        kinds.push(BlockHook::AttnScores);
    }
    if args.qkv {
        kinds.extend([BlockHook::Q, BlockHook::K, BlockHook::V]);
    }
    let model = session.model(cfg, layers.last().map_or(0, |l| l + 1))?;
    let req = Request {
        capture: CaptureSpec::new(
            layers
                .iter()
                .flat_map(|&l| kinds.iter().map(move |&k| Hook::Block(l, k))),
        )
        .with_heads(args.head.map(|h| vec![h])),
        logits: Logits::None,
    };
    let rows = prepared.forward(&model, &req)?;
    if bertviz {
        let reports = rows
            .iter()
            .map(|row| {
                Ok(BertvizReport {
                    tokens: decoded(tokenizer, row.ids)?,
                    all: per_layer(&row.output.activations, &layers, BlockHook::Pattern)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // BertViz reads one object per text: a batch is a JSON array of them.
        match reports.as_slice() {
            [one] => json::write(out, one)?,
            _ => json::write(out, &reports)?,
        }
        return Ok(());
    }
    let reports = rows
        .iter()
        .map(|row| report(session, cfg, tokenizer, args, &layers, row))
        .collect::<Result<Vec<_>>>()?;
    prepared.emit(session, out, reports, table::attention)
}

fn report(
    session: &Session,
    cfg: &Config,
    tokenizer: &Tokenizer,
    args: &AttentionArgs,
    layers: &[usize],
    row: &Row,
) -> Result<AttentionReport> {
    let acts = &row.output.activations;
    let t = row.ids.len();
    let shape = match (args.layer, args.head) {
        (Some(_), Some(_)) => vec![t, t],
        (Some(_), None) => vec![cfg.n_head, t, t],
        (None, h) => vec![cfg.n_layer, if h.is_some() { 1 } else { cfg.n_head }, t, t],
    };
    let nest = |m| PerHead::nest(m, args.layer, args.head);
    let scores = if args.scores {
        let raw = per_layer(acts, layers, BlockHook::AttnScores)?;
        let masked = raw
            .into_iter()
            .map(|heads| {
                heads
                    .into_iter()
                    .map(|m| {
                        m.into_iter()
                            .map(|row| {
                                row.into_iter()
                                    .map(|s| s.is_finite().then_some(s))
                                    .collect()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Some(PerHead::nest(masked, args.layer, args.head))
    } else {
        None
    };
    let qkv = |k| -> Result<_> {
        Ok(match args.qkv {
            true => Some(nest(per_layer(acts, layers, k)?)),
            false => None,
        })
    };
    Ok(AttentionReport {
        header: session.header(Some(row.text)),
        tokens: decoded(tokenizer, row.ids)?,
        layer: args.layer,
        head: args.head,
        shape,
        weights: nest(per_layer(acts, layers, BlockHook::Pattern)?),
        scores,
        q: qkv(BlockHook::Q)?,
        k: qkv(BlockHook::K)?,
        v: qkv(BlockHook::V)?,
    })
}

/// `[layer][head]` matrices of a per-head hook: `[T][T]` maps, or `[T][d_head]` for q/k/v.
fn per_layer(
    acts: &Activations,
    layers: &[usize],
    kind: BlockHook,
) -> Result<Vec<Vec<Vec<Vec<f32>>>>> {
    layers
        .iter()
        .map(|&l| {
            let t: &Tensor = acts.get(Hook::Block(l, kind))?;
            // q/k/v are (1, T, nh, hs); scores and pattern are (1, nh, T, T).
            let t = match kind {
                BlockHook::Q | BlockHook::K | BlockHook::V => t.transpose(1, 2)?, // (1, nh, T, hs)
                _ => t.clone(),
            };
            Ok(t.squeeze(0)?.to_dtype(DType::F32)?.to_vec3::<f32>()?)
        })
        .collect()
}
