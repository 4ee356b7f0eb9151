//! Report parts that more than one command builds (`report` builds its page from them):
//! the token strip, each layer's attention tensors as plain numbers, the logit lens at one
//! position.

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::lens::{self, Lens};
use crate::dist;
use crate::model::{Activations, BlockHook, Gpt2, Hook};
use crate::reports::{LensReport, LensRow, TokenRow, TokenizeReport};
use crate::session::{decoded, predictions, Session};
use crate::tokenizer::{Token, Tokenizer};

/// `[layer][head]` matrices of a per-head hook: `[T][T]` maps, or `[T][d_head]` for q/k/v;
/// with a window `[start, end)`, just those positions (rows, and columns of maps).
pub fn per_layer(
    acts: &Activations,
    layers: &[usize],
    kind: BlockHook,
    window: Option<[usize; 2]>,
) -> Result<Vec<Vec<Vec<Vec<f32>>>>> {
    layers
        .iter()
        .map(|&l| {
            let t: &Tensor = acts.get(Hook::Block(l, kind))?;
            // q/k/v/z are (1, T, nh, hs), the result (1, T, nh, C); scores and pattern are
            // (1, nh, T, T).
            let mut t = match kind {
                BlockHook::Q
                | BlockHook::K
                | BlockHook::V
                | BlockHook::Z
                | BlockHook::AttnResult => {
                    t.transpose(1, 2)? // (1, nh, T, ·)
                }
                _ => t.clone(),
            };
            if let Some([start, end]) = window {
                t = t.narrow(2, start, end - start)?; // (1, nh, t, ·)
                let per_token = matches!(
                    kind,
                    BlockHook::Q
                        | BlockHook::K
                        | BlockHook::V
                        | BlockHook::Z
                        | BlockHook::AttnResult
                );
                if !per_token {
                    t = t.narrow(3, start, end - start)?; // (1, nh, t, t)
                }
            }
            Ok(t.squeeze(0)?.to_dtype(DType::F32)?.to_vec3::<f32>()?)
        })
        .collect()
}

/// The `tokenize` report of `text` and its tokens.
pub fn tokenize_report(
    session: &Session,
    text: &str,
    tokens: Vec<Token>,
) -> Result<TokenizeReport> {
    Ok(TokenizeReport {
        header: session.header(Some(text))?,
        input_ids: tokens.iter().map(|t| t.id).collect(),
        attention_mask: vec![1; tokens.len()],
        shape: [1, tokens.len()],
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                token: t.symbol,
                text: t.text,
                start: t.start,
                end: t.end,
            })
            .collect(),
    })
}

/// The logit lens at `position`: every depth's top-k next tokens and the model's final
/// top token's probability there.
pub fn lens_report(
    session: &Session,
    model: &Gpt2,
    tokenizer: &Tokenizer,
    (text, ids): (&str, &[u32]),
    acts: &Activations,
    position: usize,
    top_k: usize,
) -> Result<LensReport> {
    let cfg = model.config();
    // (L + 1) depths' logits at `position`, each (V,).
    let logits = (0..=cfg.n_layer)
        .map(|d| {
            Ok(lens::read(model, acts, Lens::Logit, d, position..position + 1)?.flatten_all()?)
        })
        .collect::<Result<Vec<Tensor>>>()?;

    let final_preds = predictions(tokenizer, &logits[cfg.n_layer], 1)?;
    let final_id = final_preds[0].id;
    let depths = logits
        .iter()
        .enumerate()
        .map(|(depth, l)| {
            let row: Vec<f32> = l.to_dtype(DType::F32)?.to_vec1()?;
            Ok(LensRow {
                depth,
                predictions: predictions(tokenizer, l, top_k)?,
                final_token_prob: dist::log_prob(&row, final_id as usize).exp() as f32,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LensReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        position,
        final_id,
        final_token: final_preds[0].token.clone(),
        depths,
    })
}
