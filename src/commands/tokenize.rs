//! `tokenize`: text → tokens, ids and the attention mask, without loading the weights.

use std::io::Write;

use anyhow::Result;

use crate::cli::TokenizeArgs;
use crate::render::tokens::table;
use crate::reports::TokenizeReport;
use crate::session::parts::tokenize_report;
use crate::session::texts::{emit_texts, pad_id, padded, token_limit, Encoded};
use crate::session::Session;

pub fn run(session: &Session, args: &TokenizeArgs, out: &mut dyn Write) -> Result<()> {
    let input = &args.input;
    let tokenizer = session.tokenizer()?;
    // Tokenizing needs no limit; the model's applies only when the user asks to cut.
    let limit = match (input.truncate, input.max_length) {
        (None, None) => None,
        _ => Some(token_limit(input, session.config()?)?),
    };
    let (mut texts, _, encoded) = session.encode(&tokenizer, input, limit)?;
    let encoded = encoded.into_iter().collect::<Result<Vec<_>>>()?;
    let ids: Vec<Vec<u32>> = (encoded.iter())
        .map(|e| e.tokens.iter().map(|t| t.id).collect())
        .collect();
    let reports = (texts.iter_mut().zip(encoded))
        .map(|(text, encoded)| build(session, text, encoded))
        .collect::<Result<Vec<_>>>()?;
    let pad = pad_id(&tokenizer, None);
    emit_texts(session, out, &texts, &ids, pad, reports, table::tokenize)?;
    if texts.len() > 1 && session.output.format.is_table() {
        writeln!(out)?;
        table::padding(out, &padded(&ids, pad))?;
    }
    Ok(())
}

/// The report `tokenize` prints for one text (`text` becomes what `--truncate` kept).
pub fn build(session: &Session, text: &mut String, encoded: Encoded) -> Result<TokenizeReport> {
    let Encoded { tokens, cut } = encoded;
    let truncated = cut.map(|(kept, truncated)| {
        *text = kept;
        truncated
    });
    let mut report = tokenize_report(session, text, tokens)?;
    report.header.truncated = truncated;
    Ok(report)
}
