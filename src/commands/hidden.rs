//! `hidden`: the hidden state at depth D, as HF returns it in `hidden_states[D]` (the
//! residual stream after D blocks: 0 is the embeddings; n_layer is after ln_f), or
//! per-token norms at every depth.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use super::texts::{Computed, Texts};
use super::{check_index, decoded, matrix, Session};
use crate::cli::HiddenArgs;
use crate::dist;
use crate::model::{BlockHook, CaptureSpec, Config, Hook, NoLogits, Request};
use crate::render::table;
use crate::reports::HiddenReport;
use crate::tokenizer::Tokenizer;

/// The hook holding HF's `hidden_states[i]`.
fn hidden_hook(i: usize, cfg: &Config) -> Hook {
    if i == cfg.n_layer {
        Hook::LnFinalOut
    } else {
        Hook::Block(i, BlockHook::ResidPre)
    }
}

pub fn run(session: &Session, args: &HiddenArgs, out: &mut dyn Write) -> Result<()> {
    let (cfg, _) = session.config()?;
    if let Some(d) = args.depth {
        check_index("depth", d, cfg.n_layer + 1, "depths", &session.model_name)?;
    }
    let depths: Vec<usize> = match args.depth {
        Some(l) => vec![l],
        None => (0..=cfg.n_layer).collect(),
    };
    let capture = CaptureSpec::new(depths.iter().map(|&i| hidden_hook(i, &cfg)));
    let (prepared, model) =
        session.prepare_and_load_each(&args.input, &cfg, capture.blocks_needed(cfg.n_layer))?;
    let Texts { cfg, tokenizer, .. } = &prepared;
    let req = Request {
        capture,
        logits: NoLogits,
    };
    let build = |Computed {
                     text, ids, output, ..
                 }| {
        let acts = output.activations;
        let states: Vec<Tensor> = depths
            .iter()
            .map(|&i| Ok(acts.get(hidden_hook(i, cfg))?.squeeze(0)?)) // (T, C)
            .collect::<Result<_>>()?;
        build(session, cfg, tokenizer, args, text, ids, &states)
    };
    prepared.run(session, out, &model, &req, build, table::hidden)
}

fn build(
    session: &Session,
    cfg: &Config,
    tokenizer: &Tokenizer,
    args: &HiddenArgs,
    text: &str,
    ids: &[u32],
    states: &[Tensor],
) -> Result<HiddenReport> {
    let norms = states
        .iter()
        .map(dist::row_norms)
        .collect::<Result<Vec<_>>>()?;
    let t = ids.len();
    let (shape, values) = match args.depth {
        Some(_) => (vec![1, t, cfg.n_embd], Some(matrix(&states[0])?)),
        None => (vec![cfg.n_layer + 1, 1, t, cfg.n_embd], None),
    };
    Ok(HiddenReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        depth: args.depth,
        n_layer: cfg.n_layer,
        shape,
        norms,
        values,
    })
}
