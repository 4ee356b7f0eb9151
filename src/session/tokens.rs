//! Token ids as a report shows them: with their text, decoded one by one, and the ranked
//! predictions of one position's logits.

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::dist;
use crate::reports::{NamedToken, Prediction};
use crate::tokenizer::Tokenizer;

/// Token `id` with how it decodes.
pub fn named(tokenizer: &Tokenizer, id: u32) -> Result<NamedToken> {
    Ok(NamedToken {
        id,
        token: tokenizer.token_text(id)?,
    })
}

/// Each id decoded on its own: the labels of rows and columns.
pub fn decoded(tokenizer: &Tokenizer, ids: &[u32]) -> Result<Vec<String>> {
    ids.iter().map(|&id| tokenizer.token_text(id)).collect()
}

/// A `(T, d)` tensor as rows of f32.
pub fn matrix(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// The `k` highest logits of `logits` `(V,)`, with softmax probabilities and log-probabilities
/// computed in f64 from the f32 logits.
pub fn predictions(tokenizer: &Tokenizer, logits: &Tensor, k: usize) -> Result<Vec<Prediction>> {
    let logits: Vec<f32> = logits.to_dtype(DType::F32)?.to_vec1()?;
    ranked(tokenizer, &logits, k)
}

/// The `k` most likely tokens of one position's logits `(V,)`, most first.
pub fn ranked(tokenizer: &Tokenizer, logits: &[f32], k: usize) -> Result<Vec<Prediction>> {
    let log_z = dist::log_normalizer(logits);
    dist::top_k(logits, k)
        .into_iter()
        .enumerate()
        .map(|(rank, id)| {
            let logprob = logits[id] as f64 - log_z;
            Ok(Prediction {
                rank: rank + 1,
                id: id as u32,
                token: tokenizer.token_text(id as u32)?,
                prob: logprob.exp() as f32,
                logprob: logprob as f32,
                logit: logits[id],
            })
        })
        .collect()
}
