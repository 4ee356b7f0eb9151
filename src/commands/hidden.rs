//! `hidden`: the hidden state at depth D, the residual stream after D blocks (0 is the
//! embeddings, n_layer the last block's output), as `lens` numbers its rows and HF's
//! `hidden_states[D]` holds it for D < n_layer; or the final hidden state after ln_f
//! (HF's `hidden_states[n_layer]`); or per-token norms of all of them.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use crate::cli::{Depth, HiddenArgs};
use crate::dist;
use crate::model::{BlockHook, CaptureSpec, Config, Hook, NoLogits, Request};
use crate::render::tokens::table;
use crate::reports::{DepthShown, HiddenReport};
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{check_index, decoded, matrix, Session};
use crate::tokenizer::Tokenizer;

/// The hook holding depth `d`: the residual stream after `d` blocks (the last block's
/// output for `d` = n_layer), or the final hidden state after ln_f.
fn hidden_hook(d: Depth, cfg: &Config) -> Hook {
    match d {
        Depth::LnF => Hook::LnFinalOut,
        Depth::Blocks(d) if d == cfg.n_layer => Hook::Block(d - 1, BlockHook::ResidPost),
        Depth::Blocks(d) => Hook::Block(d, BlockHook::ResidPre),
    }
}

pub fn run(session: &Session, args: &HiddenArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    if let Some(Depth::Blocks(d)) = args.depth {
        check_index("depth", d, cfg.n_layer + 1, "depths", &session.model_name)?;
    }
    // Without --depth: every depth, then the final hidden state.
    let depths: Vec<Depth> = match args.depth {
        Some(d) => vec![d],
        None => (0..=cfg.n_layer)
            .map(Depth::Blocks)
            .chain([Depth::LnF])
            .collect(),
    };
    let capture = CaptureSpec::new(depths.iter().map(|&d| hidden_hook(d, cfg)));
    let (prepared, model) = session.prepare_and_load(
        &args.input,
        cfg,
        capture.blocks_needed(cfg.n_layer),
        Take::EACH,
    )?;
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
            .map(|&d| Ok(acts.get(hidden_hook(d, cfg))?.squeeze(0)?)) // (T, C)
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
    let mut norms = states
        .iter()
        .map(dist::row_norms)
        .collect::<Result<Vec<_>>>()?;
    let ln_f_norms = match args.depth {
        None => norms.pop(),
        Some(_) => None,
    };
    let t = ids.len();
    let (shape, values) = match args.depth {
        Some(_) => (vec![1, t, cfg.n_embd], Some(matrix(&states[0])?)),
        None => (vec![cfg.n_layer + 1, 1, t, cfg.n_embd], None),
    };
    Ok(HiddenReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        depth: args.depth.map(|d| match d {
            Depth::Blocks(d) => DepthShown::Blocks(d),
            Depth::LnF => DepthShown::LnF("ln_f"),
        }),
        n_layer: cfg.n_layer,
        shape,
        norms,
        ln_f_norms,
        values,
    })
}
