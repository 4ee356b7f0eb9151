//! A clean and a corrupt text (`--clean`, `--corrupt` or their ids) as the causal commands
//! take them: the same number of tokens, within the model's limit, and the answers.

use anyhow::Result;

use crate::cli::{PairArgs, TokenIds};
use crate::error::usage;
use crate::model::Config;
use crate::session::{decoded, Session};
use crate::tokenizer::Tokenizer;

/// `--clean` and `--corrupt` as ids, each followed by `forced` (a teacher-forced answer's
/// tokens): the same number of tokens, within the model's limit.
pub fn pair(
    session: &Session,
    tokenizer: &Tokenizer,
    args: &PairArgs,
    (cfg, forced): (&Config, &[u32]),
) -> Result<(Vec<u32>, Vec<u32>)> {
    let encode = |text: &Option<String>, ids: &Option<TokenIds>, flag: &str| match (text, ids) {
        (Some(text), _) => session.ids(tokenizer, text),
        (None, Some(ids)) => session.given_ids(tokenizer, &ids.0, flag),
        (None, None) => Err(usage(format!("give {flag} or {flag}-ids"))),
    };
    let clean = [
        encode(&args.clean, &args.clean_ids, "--clean")?,
        forced.to_vec(),
    ]
    .concat();
    let corrupt = [
        encode(&args.corrupt, &args.corrupt_ids, "--corrupt")?,
        forced.to_vec(),
    ]
    .concat();
    if clean.len() != corrupt.len() {
        return Err(usage(format!(
            "--clean is {} tokens ({}), --corrupt {} ({}); patching needs the same number",
            clean.len(),
            decoded(tokenizer, &clean)?.join("|"),
            corrupt.len(),
            decoded(tokenizer, &corrupt)?.join("|"),
        )));
    }
    // A text too long (or empty) is exit 1, as in every command; the pair's mismatch above
    // is misuse.
    if clean.is_empty() || clean.len() > cfg.n_positions {
        anyhow::bail!(
            "--clean is {} tokens long (with the answer's forced tokens); the model sees at most {} \
             (and patching needs 1 or more)",
            clean.len(),
            cfg.n_positions
        );
    }
    Ok((clean, corrupt))
}

/// The pair's texts: as given, or as their `--clean-ids` and `--corrupt-ids` spell them.
pub fn pair_texts(tokenizer: &Tokenizer, args: &PairArgs) -> Result<(String, String)> {
    let text = |text: &Option<String>, ids: &Option<TokenIds>| -> Result<String> {
        match (text, ids) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(ids)) => Ok(tokenizer.from_ids(&ids.0)?.0),
            (None, None) => Ok(String::new()),
        }
    };
    Ok((
        text(&args.clean, &args.clean_ids)?,
        text(&args.corrupt, &args.corrupt_ids)?,
    ))
}
