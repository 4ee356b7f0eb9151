//! Texts as a batch: reading and cutting them to the model's limit, right padding, running
//! them as one forward pass and cutting each text's share back out, and writing one report
//! per text.

use std::io::{self, Write};

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

use super::{emit, Session};
use crate::cli::{TextArgs, Truncate};
use crate::error::usage;
use crate::input::which_text;
use crate::model::{Config, Gpt2, Output, Request};
use crate::render;
use crate::report::{BatchReport, Padding, SCHEMA};
use crate::tokenizer::{Token, Tokenizer};

/// Texts ready for the model: the texts, the config, the tokenizer and each text's tokens
/// and their ids, cut to the limit as the user asked.
pub(super) struct Batch {
    pub(super) texts: Vec<String>,
    pub(super) cfg: Config,
    pub(super) tokenizer: Tokenizer,
    pub(super) tokens: Vec<Vec<Token>>,
    pub(super) ids: Vec<Vec<u32>>,
    /// The id padding a batch.
    pub(super) pad: u32,
}

/// One text of a batch, with what the model computed for it alone.
pub(super) struct Computed<'a> {
    pub(super) text: &'a str,
    pub(super) ids: &'a [u32],
    pub(super) output: Output,
}

/// Writes one report as is, several in the batch envelope (JSON) or one after another
/// under a heading (tables).
pub(super) fn emit_texts<R: serde::Serialize>(
    session: &Session,
    out: &mut dyn Write,
    texts: &[String],
    ids: &[Vec<u32>],
    pad: u32,
    reports: Vec<R>,
    table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
) -> Result<()> {
    if let [report] = reports.as_slice() {
        return emit(session, out, report, table);
    }
    if session.json {
        let report = BatchReport {
            schema: SCHEMA,
            model: session.model_name.clone(),
            batch: reports,
            padding: padded(ids, pad),
        };
        render::json::write(out, &report)?;
        return Ok(());
    }
    for (i, (text, report)) in texts.iter().zip(&reports).enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        render::table::batch_heading(out, i, texts.len(), text)?;
        table(out, report)?;
    }
    Ok(())
}

impl Batch {
    /// Runs every text, as one right-padded batch when there are several, and cuts out each
    /// text's share: the same numbers (within float rounding) as running it alone.
    pub(super) fn forward(&self, model: &Gpt2, req: &Request) -> Result<Vec<Computed<'_>>> {
        let input = self.input(model.device())?; // (B, T)
        let output = match self.lengths() {
            Some(lengths) => model.forward_padded(&input, &lengths, req)?,
            None => model.forward(&input, req)?,
        };
        self.texts
            .iter()
            .zip(&self.ids)
            .enumerate()
            .map(|(i, (text, ids))| {
                Ok(Computed {
                    text,
                    ids,
                    output: output.sequence(i, ids.len(), &self.cfg)?,
                })
            })
            .collect()
    }

    /// The padded batch as the model's input, `(B, T)` u32.
    pub(super) fn input(&self, device: &Device) -> Result<Tensor> {
        let batch = padded(&self.ids, self.pad);
        let [b, t] = batch.shape;
        Ok(Tensor::from_vec(batch.input_ids.concat(), (b, t), device)?)
    }

    /// Real tokens per text when there are several (the rest of each row is padding).
    pub(super) fn lengths(&self) -> Option<Vec<usize>> {
        (self.ids.len() > 1).then(|| self.ids.iter().map(Vec::len).collect())
    }

    /// Writes one report per text (see [`emit_texts`]).
    pub(super) fn emit<R: serde::Serialize>(
        &self,
        session: &Session,
        out: &mut dyn Write,
        reports: Vec<R>,
        table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
    ) -> Result<()> {
        emit_texts(
            session,
            out,
            &self.texts,
            &self.ids,
            self.pad,
            reports,
            table,
        )
    }
}

/// The pad token of a batch: `<|endoftext|>` (as `tokenizer.pad_token = eos_token`), or 0
/// where the vocabulary (or the model's) has no such id. Padding is masked, so its id
/// changes no number; it only has to be a valid row of wte.
pub(super) fn pad_id(tokenizer: &Tokenizer, vocab_size: Option<usize>) -> u32 {
    tokenizer
        .endoftext()
        .filter(|&id| vocab_size.is_none_or(|v| (id as usize) < v))
        .unwrap_or(0)
}

/// Right padding with `pad`, as Hugging Face's `tokenizer(texts, padding=True)`.
pub(super) fn padded(ids: &[Vec<u32>], pad: u32) -> Padding {
    let t = ids.iter().map(Vec::len).max().unwrap_or(0);
    let fill = |mut row: Vec<u32>, with: u32| {
        row.resize(t, with);
        row
    };
    Padding {
        input_ids: ids.iter().map(|r| fill(r.clone(), pad)).collect(),
        attention_mask: ids.iter().map(|r| fill(vec![1; r.len()], 0)).collect(),
        shape: [ids.len(), t],
    }
}

/// The most tokens a text may have: n_positions, or --max-length below it.
pub(super) fn token_limit(input: &TextArgs, cfg: &Config) -> Result<usize> {
    match input.max_length.map(|n| n as usize) {
        Some(n) if n > cfg.n_positions => Err(usage(format!(
            "--max-length {n} is out of range: the model sees at most {} tokens (n_positions)",
            cfg.n_positions
        ))),
        Some(n) => Ok(n),
        None => Ok(cfg.n_positions),
    }
}

/// Each text's tokens, after `bos` when given (`--prepend-bos`: it counts toward the limit
/// and is never cut); a text over `limit` is cut as `truncate` says (reported on stderr), or
/// refused.
pub(super) fn encode_all(
    tokenizer: &Tokenizer,
    texts: &[String],
    limit: Option<usize>,
    truncate: Option<Truncate>,
    bos: Option<u32>,
) -> Result<Vec<Vec<Token>>> {
    let limit = match bos {
        Some(_) => limit.map(|l| l.saturating_sub(1)),
        None => limit,
    };
    let mut all = encode_texts(tokenizer, texts, limit, truncate)?;
    if let Some(id) = bos {
        let symbol = tokenizer.decode(&[id])?;
        for tokens in &mut all {
            // Not part of the text: an empty byte span at its start.
            let bos = Token {
                id,
                symbol: symbol.clone(),
                text: symbol.clone(),
                start: 0,
                end: 0,
            };
            tokens.insert(0, bos);
        }
    }
    Ok(all)
}

/// [`encode_all`] without the BOS. A long text is tokenized a piece at a time, keeping only
/// the tokens that stay, so memory follows the limit, not the text.
fn encode_texts(
    tokenizer: &Tokenizer,
    texts: &[String],
    limit: Option<usize>,
    truncate: Option<Truncate>,
) -> Result<Vec<Vec<Token>>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut kept: Vec<Token> = Vec::new();
            let mut total = 0;
            tokenizer.encode_pieces(text, |piece| {
                total += piece.len();
                match (limit, truncate) {
                    (None, _) => kept.extend(piece),
                    (Some(l), Some(Truncate::Left)) => {
                        kept.extend(piece);
                        let over = kept.len().saturating_sub(l);
                        kept.drain(..over);
                    }
                    // The first `limit` tokens, and one more to tell that there are more.
                    (Some(l), _) => {
                        let room = (l + 1).saturating_sub(kept.len());
                        kept.extend(piece.into_iter().take(room));
                    }
                }
                Ok(())
            })?;
            let Some(limit) = limit.filter(|&l| total > l) else {
                return Ok(kept);
            };
            let which = which_text(i, texts.len());
            let cut = total - limit;
            match truncate {
                None => bail!(
                    "{which} is {total} tokens long; the model sees at most {limit}. Add --truncate left \
                     to keep the last {limit} tokens (for next-token prediction), --truncate right \
                     to keep the first {limit}, or --max-length N for a lower limit"
                ),
                Some(Truncate::Left) => {
                    eprintln!("{which}: cut the first {cut} tokens (--truncate left); {limit} remain");
                }
                Some(Truncate::Right) => {
                    kept.truncate(limit);
                    eprintln!("{which}: cut the last {cut} tokens (--truncate right); {limit} remain");
                }
            }
            Ok(kept)
        })
        .collect()
}
