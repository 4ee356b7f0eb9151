//! Arguments checked against the model, once, before any work: indices, `L.H` pairs,
//! `--top-k`, a flag that must be one token.

use anyhow::Result;

use crate::error::usage;
use crate::model::Config;
use crate::reports::NamedToken;
use crate::session::tokens::named;
use crate::tokenizer::Tokenizer;

/// `--flag L.H` as (layer, head), checked against the model.
pub fn layer_head(flag: &str, spec: &str, cfg: &Config, model: &str) -> Result<(usize, usize)> {
    let parsed = spec
        .split_once('.')
        .and_then(|(l, h)| Some((l.parse::<usize>().ok()?, h.parse::<usize>().ok()?)));
    let Some((l, h)) = parsed else {
        return Err(usage(format!(
            "--{flag} {spec}: give LAYER.HEAD, such as 1.2"
        )));
    };
    let out_of_range = |what: &str, v: usize, count: usize, of: &str| {
        usage(format!(
            "--{flag} {spec}: {what} {v} is out of range: {model} has {of} 0 to {}",
            count - 1
        ))
    };
    if l >= cfg.n_layer {
        return Err(out_of_range("layer", l, cfg.n_layer, "layers"));
    }
    if h >= cfg.n_head {
        return Err(out_of_range("head", h, cfg.n_head, "heads per layer"));
    }
    Ok((l, h))
}

/// `--flag N` must index one of `count` things.
pub fn check_index(flag: &str, value: usize, count: usize, what: &str, model: &str) -> Result<()> {
    if value >= count {
        return Err(usage(format!(
            "--{flag} {value} is out of range: {model} has {what} 0 to {}",
            count - 1
        )));
    }
    Ok(())
}

/// `--top-k` may not exceed the vocabulary.
pub fn check_top_k(top_k: u32, cfg: &Config, model: &str) -> Result<usize> {
    let k = top_k as usize;
    if k > cfg.vocab_size {
        return Err(usage(format!(
            "--top-k {k} is out of range: {model} has {} tokens, so 1 to {}",
            cfg.vocab_size, cfg.vocab_size
        )));
    }
    Ok(k)
}

/// `--flag TEXT` as the one token it must be.
pub fn one_token(tokenizer: &Tokenizer, flag: &str, text: &str) -> Result<NamedToken> {
    let ids: Vec<u32> = tokenizer.encode(text)?.iter().map(|t| t.id).collect();
    match ids.as_slice() {
        [id] => named(tokenizer, *id),
        _ => {
            let pieces = ids
                .iter()
                .map(|&id| tokenizer.token_text(id).map(|t| format!("{t:?}")))
                .collect::<Result<Vec<_>>>()?;
            Err(usage(format!(
                "--{flag} {text:?} is {} tokens ({}); give one token",
                ids.len(),
                pieces.join(", ")
            )))
        }
    }
}
