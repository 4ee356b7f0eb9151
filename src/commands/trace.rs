//! `trace`: the whole data flow as one report, text → tokens → embeddings → blocks →
//! ln_f → logits → next token, with every stage's name, shape and dtype.

use std::io::Write;

use anyhow::Result;
use candle_core::DType;

use crate::cli::TraceArgs;
use crate::model::{BlockHook, CaptureSpec, Config, Gpt2, Hook, LastLogits, Request};
use crate::render::tokens::table;
use crate::reports::{ShapeStep, TraceReport};
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{check_top_k, decoded, predictions, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &TraceArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    let top_k = check_top_k(args.top_k.top_k, cfg, &session.model_name)?;
    let (prepared, model) = session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::EACH)?;
    let Texts { cfg, tokenizer, .. } = &prepared;
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    let build = |row| build(session, (cfg, &model, tokenizer), row, top_k);
    prepared.run(session, out, &model, &req, build, table::trace)
}

/// The report `trace` prints for one text.
pub fn build(
    session: &Session,
    (cfg, model, tokenizer): (&Config, &Gpt2, &Tokenizer),
    row: Computed<LastLogits>,
    top_k: usize,
) -> Result<TraceReport> {
    let Computed {
        text, ids, output, ..
    } = row;
    let logits = output.logits; // (1, 1, V)
    let dtype = logits.dtype().as_str().to_string();
    Ok(TraceReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        input_ids: ids.to_vec(),
        stages: shapes(cfg, model, ids.len(), &dtype)?,
        predictions: predictions(tokenizer, &logits.flatten_all()?, top_k)?,
    })
}

/// Every step of the data flow for a text of `t` tokens, with its shape and dtype.
/// Activation shapes come from the hook table, which the parity tests hold to the tensors
/// the forward pass records; nothing is kept just to be measured.
fn shapes(cfg: &Config, model: &Gpt2, t: usize, dtype: &str) -> Result<Vec<ShapeStep>> {
    let hook = |h: Hook, note: &str| stage(h.to_string(), h.shape(cfg, 1, t), dtype, note);
    let mut stages = vec![
        stage(
            "input_ids".into(),
            vec![1, t],
            DType::U32.as_str(),
            "token ids from the byte-level BPE tokenizer",
        ),
        stage(
            "wte".into(),
            {
                let (v, c) = model.wte().dims()?;
                vec![v, c]
            },
            dtype,
            "token embedding matrix, one row per vocabulary entry",
        ),
        stage(
            "wpe".into(),
            model.wpe().dims().to_vec(),
            dtype,
            "position embedding matrix, one row per position",
        ),
        hook(Hook::Embed, "token embeddings wte[input_ids]"),
        hook(Hook::PosEmbed, "position embeddings wpe[0..T]"),
        stage(
            "embeddings".into(),
            vec![1, t, cfg.n_embd],
            dtype,
            "hook_embed + hook_pos_embed = hidden_states[0], the input of block 0",
        ),
    ];
    stages.extend(after_embeddings(cfg, t, dtype));
    Ok(stages)
}

/// The steps from the first block to the probabilities, each with its shape for a text of
/// `t` tokens.
fn after_embeddings(cfg: &Config, t: usize, dtype: &str) -> Vec<ShapeStep> {
    let hook = |h: Hook, note: &str| stage(h.to_string(), h.shape(cfg, 1, t), dtype, note);
    let mut stages = Vec::new();
    for l in 0..cfg.n_layer {
        stages.push(hook(
            Hook::Block(l, BlockHook::Pattern),
            "attentions: one T×T map per head, rows sum to 1",
        ));
        stages.push(hook(
            Hook::Block(l, BlockHook::ResidPost),
            "hidden state after the block: residual + attention + MLP",
        ));
    }
    stages.push(hook(
        Hook::LnFinalOut,
        "final layer norm = hidden_states[n_layer]",
    ));
    stages.push(hook(
        Hook::Logits,
        match cfg.tie_word_embeddings {
            true => "hidden · wteᵀ; only the last position is computed",
            false => "hidden · lm_head.weightᵀ (untied); only the last position is computed",
        },
    ));
    stages.push(stage(
        "probabilities".into(),
        vec![1, cfg.vocab_size],
        "f32",
        "softmax of the last position's logits: the next-token distribution",
    ));
    stages
}

/// One step of the data flow.
fn stage(name: String, shape: Vec<usize>, dtype: &str, note: &str) -> ShapeStep {
    ShapeStep {
        name,
        shape,
        dtype: dtype.to_string(),
        note: note.to_string(),
    }
}
