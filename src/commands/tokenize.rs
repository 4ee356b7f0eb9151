//! `tokenize`: text → tokens, ids and the attention mask, without loading the weights.

use std::io::Write;

use anyhow::Result;

use super::{emit, Session};
use crate::cli::TokenizeArgs;
use crate::input::read_text;
use crate::render::table;
use crate::report::{TokenRow, TokenizeReport};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &TokenizeArgs, out: &mut dyn Write) -> Result<()> {
    let text = read_text(&args.input)?;
    let tokenizer = session.tokenizer()?;
    let report = report(session, &tokenizer, &text)?;
    emit(session, out, &report, table::tokenize)
}

pub fn report(session: &Session, tokenizer: &Tokenizer, text: &str) -> Result<TokenizeReport> {
    let tokens = tokenizer.encode(text)?;
    Ok(TokenizeReport {
        header: session.header(Some(text)),
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
