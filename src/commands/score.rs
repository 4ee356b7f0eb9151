//! `score`: for each token after the first, its log-probability given the tokens before it,
//! its rank in the vocabulary and the model's top guess; then perplexity.

use std::io::Write;

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::cli::{ScoreArgs, Shard};
use crate::commands::score_shards::ShardRun;
use crate::dist;
use crate::model::{AllLogits, CaptureSpec, Request};
use crate::render::tokens::table;
use crate::reports::{Guess, ScoreReport, ScoredToken};
use crate::session::steer::Steering;
use crate::session::texts::{Computed, Texts};
use crate::session::Session;
use crate::session::Take;
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &ScoreArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(path) = &args.shards.partial {
        let run = |s: &Session, shard| shard_run(s, args, shard);
        return super::score_shards::partial(session, args, path, run);
    }
    score(session, args, (None, out), &mut |_| {})
}

/// One shard's texts scored into `--jsonl` lines, with their line numbers and the lines
/// that could not be run (whose error ends the run once the others are written).
fn shard_run(session: &Session, args: &ScoreArgs, shard: Shard) -> Result<ShardRun> {
    let mut jsonl = Vec::new();
    let (mut lines, mut not_run, mut pad) = (Vec::new(), Vec::new(), 0);
    let result = score(session, args, (Some(shard), &mut jsonl), &mut |t| {
        pad = t.pad;
        lines = t
            .lines
            .as_ref()
            .map(|l| l.numbers.clone())
            .unwrap_or_default();
        not_run = (t.failed.iter())
            .map(|(i, why)| (lines[*i], why.clone()))
            .collect();
    });
    match result {
        Err(e) if not_run.is_empty() => Err(e),
        _ => Ok(ShardRun {
            jsonl,
            lines,
            not_run,
            pad,
        }),
    }
}

/// Scores the texts (with `shard`, only its lines), printing to `out`; `seen` is shown the
/// texts about to run.
fn score(
    session: &Session,
    args: &ScoreArgs,
    (shard, out): (Option<Shard>, &mut dyn Write),
    seen: &mut dyn FnMut(&Texts),
) -> Result<()> {
    let cfg = session.config()?;
    let steering = Steering::from_args(session, &args.steer, cfg)?;
    let top_k = (args.top_k)
        .map(|top_k| crate::session::check_top_k(top_k, cfg, &session.model_name))
        .transpose()?;
    let (mut prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::EACH)?;
    prepared.reject(|which, ids| match ids.len() {
        0 | 1 => bail!(
            "score needs at least two tokens: the first is only context; {which} has {}",
            ids.len()
        ),
        _ => Ok(()),
    })?;
    if let Some(shard) = shard {
        prepared.retain_shard(shard);
    }
    seen(&prepared);
    let Texts { tokenizer, .. } = &prepared;
    let req = Request {
        capture: CaptureSpec::default(),
        logits: AllLogits,
    };
    let build = |Computed {
                     text, ids, output, ..
                 }| {
        let mut report = match &steering {
            None => build(session, tokenizer, (text, ids), &output.logits, top_k)?, // (1, T, V)
            Some(s) => build(
                session,
                tokenizer,
                (text, ids),
                &s.all_logits(&model, ids)?,
                top_k,
            )?,
        };
        report.steered = steering.as_ref().map(Steering::describe);
        report.steered_at = steering.as_ref().map(|s| s.hook.to_string());
        Ok(report)
    };
    prepared.run(session, out, &model, &req, build, table::score)
}

/// The token `id` at `position`, scored by the logits `row` of the position before it.
fn scored(
    tokenizer: &Tokenizer,
    row: &[f32],
    (position, id): (usize, u32),
    top_k: Option<usize>,
) -> Result<ScoredToken> {
    let actual = id as usize;
    let dist::Scored { log_z, top, rank } = dist::scored(row, actual);
    Ok(ScoredToken {
        position,
        id,
        token: tokenizer.token_text(id)?,
        logprob: (row[actual] as f64 - log_z) as f32,
        rank,
        top: Guess {
            id: top as u32,
            token: tokenizer.token_text(top as u32)?,
            prob: (row[top] as f64 - log_z).exp() as f32,
        },
        alternatives: top_k
            .map(|k| crate::session::ranked(tokenizer, row, k))
            .transpose()?,
        entropy_bits: top_k.map(|_| dist::entropy(row) / std::f64::consts::LN_2),
    })
}

fn build(
    session: &Session,
    tokenizer: &Tokenizer,
    (text, ids): (&str, &[u32]),
    logits: &Tensor,
    top_k: Option<usize>,
) -> Result<ScoreReport> {
    let t = ids.len();
    // Computed i predicts token i + 1; the last row predicts past the text and is not needed.
    let logits = logits.squeeze(0)?.narrow(0, 0, t - 1)?; // (T-1, V)
    let v = logits.dim(1)?;
    // One copy, read a row at a time (not T-1 vectors of V).
    let flat: Vec<f32> = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    // Each position's row on its own: the rows are shared among the pool's threads.
    let tokens = (flat.par_chunks_exact(v).enumerate())
        .map(|(i, row)| scored(tokenizer, row, (i + 1, ids[i + 1]), top_k))
        .collect::<Result<Vec<_>>>()?;
    let total: f64 = tokens.iter().map(|s| s.logprob as f64).sum();
    let mean_nll = -total / tokens.len() as f64;
    Ok(ScoreReport {
        header: session.header(Some(text))?,
        input_ids: ids.to_vec(),
        tokens,
        total_logprob: total,
        mean_surprisal_bits: mean_nll / std::f64::consts::LN_2,
        perplexity: mean_nll.exp(),
        steered: None,
        steered_at: None,
    })
}
