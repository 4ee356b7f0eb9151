//! Report parts that more than one command builds (`report` builds its page from them):
//! the token strip, each layer's attention tensors as plain numbers, the logit lens at one
//! position.

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::lens::{self, Lens};
use crate::dist;
use crate::model::{Activations, BlockHook, Gpt2, Hook};
use crate::reports::{LensReport, LensRow, LensStats, NamedToken, TokenRow, TokenizeReport};
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

/// How `lens` reads the depths: through which lens, and which token it also ranks.
pub struct Reading {
    pub lens: Lens,
    pub answer: Option<NamedToken>,
}

impl Reading {
    /// The logit lens, ranking no answer.
    pub fn logit() -> Reading {
        Reading {
            lens: Lens::Logit,
            answer: None,
        }
    }
}

/// A lens at `position`: every depth's top-k next tokens, and how far each depth is from
/// the model's own distribution there (KL, entropy, the final top token's probability and
/// rank, `answer`'s rank).
pub fn lens_report(
    session: &Session,
    (model, tokenizer): (&Gpt2, &Tokenizer),
    (text, ids): (&str, &[u32]),
    acts: &Activations,
    (position, top_k): (usize, usize),
    reading: &Reading,
) -> Result<LensReport> {
    let cfg = model.config();
    // The lens's depths' logits at `position`, each (V,); the last is the model's own.
    let depth_list = reading.lens.depths(cfg.n_layer);
    let logits = (depth_list.iter())
        .map(|&d| {
            let at = position..position + 1;
            Ok(lens::read(model, acts, &reading.lens, d, at)?.flatten_all()?)
        })
        .collect::<Result<Vec<Tensor>>>()?;
    let rows = (logits.iter())
        .map(|l| Ok(l.to_dtype(DType::F32)?.to_vec1::<f32>()?))
        .collect::<Result<Vec<Vec<f32>>>>()?;
    let fin = dist::Final::of(rows.last().expect("the last depth is always read"));
    let final_id = fin.top as u32;
    let depths = (logits.iter().zip(&rows).zip(depth_list))
        .map(|((l, row), depth)| {
            let s = depth_statistics(row, &fin, reading.answer.as_ref());
            Ok(LensRow {
                depth,
                predictions: predictions(tokenizer, l, top_k)?,
                final_token_prob: s.final_prob,
                stats: LensStats {
                    kl_to_final: s.kl,
                    entropy: s.entropy,
                    final_token_rank: s.final_rank,
                    answer_rank: s.answer_rank,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LensReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        position,
        final_id,
        final_token: tokenizer.token_text(final_id)?,
        lens: reading.lens.kind(),
        answer: reading.answer.clone(),
        depths,
        compared: Vec::new(),
    })
}

/// One depth's row at one position against the model's final distribution `fin` there.
pub struct DepthStatistics {
    /// The depth's top guess and its probability.
    pub top: usize,
    pub top_prob: f32,
    pub final_prob: f32,
    pub final_rank: usize,
    pub kl: f32,
    pub entropy: f32,
    pub answer_rank: Option<usize>,
}

/// [`DepthStatistics`] of `row`: a few vectorized passes over the vocabulary.
pub fn depth_statistics(
    row: &[f32],
    fin: &dist::Final,
    answer: Option<&NamedToken>,
) -> DepthStatistics {
    let s = dist::scored(row, fin.top);
    let (entropy, kl) = dist::entropy_and_kl(row, s.log_z, fin);
    let prob = |id: usize| (row[id] as f64 - s.log_z).exp() as f32;
    DepthStatistics {
        top: s.top,
        top_prob: prob(s.top),
        final_prob: prob(fin.top),
        final_rank: s.rank,
        // KL ≥ 0: rounding can leave about −1e-7 where the lens reads the model itself.
        kl: kl.max(0.0) as f32,
        entropy: entropy as f32,
        answer_rank: answer.map(|a| dist::scored(row, a.id as usize).rank),
    }
}
