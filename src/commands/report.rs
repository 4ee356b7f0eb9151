//! `report`: one self-contained HTML page with the tokens, every head's attention, the logit
//! lens and the next tokens of one text, from a single forward pass.

use std::io::Write;

use anyhow::Result;

use super::attention::per_layer;
use super::batch::{token_limit, Batch};
use super::{check_top_k, emit, lens, tokenize, Session};
use crate::atomic;
use crate::cli::ReportArgs;
use crate::error::usage;
use crate::model::{BlockHook, CaptureSpec, Hook, Logits, Request};
use crate::render::{html, table};
use crate::report::{PageReport, WrittenReport};

/// Tokens a page holds at most: gpt2's 144 heads at 256 tokens are 4.7 M numbers, up to
/// 35 MB of HTML, which browsers still open quickly.
const MAX_TOKENS: usize = 256;

pub fn run(session: &Session, args: &ReportArgs, out: &mut dyn Write) -> Result<()> {
    let (cfg, _) = session.config()?;
    let top_k = check_top_k(&args.top_k, &cfg, &session.model_name)?;
    // The page's own limit, named once by the message that refuses a longer text (with
    // --truncate, the last MAX_TOKENS tokens are kept).
    let limit = token_limit(&args.input, &cfg)?.at_most(MAX_TOKENS, "a report page holds");
    let (prepared, model) =
        session.prepare_and_load_within(&args.input, &cfg, limit, cfg.n_layer)?;
    let Batch {
        texts,
        cfg,
        tokenizer,
        tokens,
        ids,
        ..
    } = &prepared;
    if texts.len() > 1 {
        return Err(usage(
            "report shows one text; give one TEXT (or run once per text)",
        ));
    }
    let t = ids[0].len();
    let pattern = |l| Hook::Block(l, BlockHook::Pattern);
    let resid = |l| Hook::Block(l, BlockHook::ResidPre);
    let req = Request {
        capture: CaptureSpec::new(
            (0..cfg.n_layer)
                .flat_map(|l| [resid(l), pattern(l)])
                .chain([Hook::LnFinalOut]),
        ),
        logits: Logits::None,
    };
    let row = prepared.forward(&model, &req)?.remove(0);
    let acts = &row.output.activations;
    let layers: Vec<usize> = (0..cfg.n_layer).collect();
    let attention = per_layer(acts, &layers, BlockHook::Pattern, None)?;
    let last = t - 1;
    let page = PageReport {
        header: session.header(Some(&texts[0]))?,
        tokens: tokenize::report(session, &texts[0], tokens[0].clone())?.tokens,
        n_layer: cfg.n_layer,
        n_head: cfg.n_head,
        attention,
        lens: lens::report(
            session,
            &model,
            tokenizer,
            (&texts[0], &ids[0]),
            acts,
            last,
            top_k,
        )?,
    };

    let path = &args.output;
    atomic::write(path, "-o", &session.temps, |w| html::report(w, &page))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let written = WrittenReport {
        header: page.header.clone(),
        path: path.display().to_string(),
        bytes,
        contents: format!(
            "{} tokens, {} layers × {} heads, logit lens, top {top_k} next tokens; probabilities rounded to {} decimals",
            t,
            cfg.n_layer,
            cfg.n_head,
            html::DECIMALS
        ),
    };
    emit(session, out, &written, table::written)?;
    row.non_finite_error(1).map_or(Ok(()), Err)
}
