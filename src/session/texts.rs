//! Texts as a batch: reading and cutting them to the model's limit, right padding, running
//! them as one forward pass and cutting each text's share back out, and writing one report
//! per text.

use std::io::{self, Write};

use anyhow::{bail, Result};
use candle_core::Tensor;

use crate::analysis::progress::Progress;
use crate::cli::{TextArgs, Truncate};
use crate::error::usage;
use crate::input::{text_name, Lines};
use crate::model::{Config, Gpt2, Hook, Logits, Output, Request, WantLogits};
use crate::render::format::delimited::Tabular;
use crate::reports::{Headed, NotRun, Padding, Truncated};
use crate::session::Session;
use crate::tokenizer::{Token, Tokenizer};

/// The texts of a run, ready for the model (run in padded batches of `batch_size`): the
/// texts, the config, the tokenizer and each text's tokens and their ids, cut to the limit
/// as the user asked.
pub(crate) struct Texts {
    pub(crate) texts: Vec<String>,
    pub(crate) cfg: Config,
    pub(crate) tokenizer: std::sync::Arc<Tokenizer>,
    pub(crate) tokens: Vec<Vec<Token>>,
    pub(crate) ids: Vec<Vec<u32>>,
    /// The id padding a batch.
    pub(crate) pad: u32,
    /// The most texts run as one padded batch (`--batch-size`).
    pub(crate) batch_size: usize,
    /// With --lines: each text's line, for messages.
    pub(crate) lines: Option<Lines>,
    /// The texts that cannot be run, in input order, and why (their `ids` are empty). Only
    /// with --lines and without --fail-fast; otherwise the first such text is the run's error.
    pub(crate) failed: Vec<(usize, String)>,
    /// Whether a text that cannot be run is skipped ([`Self::failed`]) rather than an error.
    pub(crate) lenient: bool,
    /// What `--truncate` cut from each text (`texts` holds what it kept).
    pub(crate) truncated: Vec<Option<Truncated>>,
}

/// One text of a batch, with what the model computed for it alone.
pub(crate) struct Computed<'a, W: WantLogits = Logits> {
    /// Which text of the batch, from 0.
    pub(crate) index: usize,
    pub(crate) text: &'a str,
    pub(crate) ids: &'a [u32],
    pub(crate) output: Output<W>,
    /// Where values stopped being finite numbers for this text, if they did.
    pub(crate) non_finite: Option<Hook>,
}

impl<W: WantLogits> Computed<'_, W> {
    /// The error to end with after this text's report was written, when its numbers are
    /// not all finite: exit 1, and where the NaN or infinity first appeared.
    pub(crate) fn non_finite_error(&self, texts: &Texts) -> Option<anyhow::Error> {
        let n = texts.texts.len();
        self.non_finite.map(|hook| {
            crate::session::non_finite_error(hook, (n > 1).then(|| texts.name(self.index)))
        })
    }
}

/// Writes one report per text through the session's printer.
pub(crate) fn emit_texts<R: serde::Serialize + Tabular>(
    session: &Session,
    out: &mut dyn Write,
    texts: &[String],
    ids: &[Vec<u32>],
    pad: u32,
    reports: Vec<R>,
    table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
) -> Result<()> {
    let mut printer = session.printer(texts, ids, pad, &table)?;
    for report in &reports {
        printer.print(out, report)?;
    }
    printer.finish(out)
}

/// The most padded tokens (rows × the longest row) in one batch of several texts: a batch's
/// activations follow it, so a long text among short ones runs in a smaller batch (alone,
/// past it) rather than making every row as long as itself.
const TOKEN_BUDGET: usize = 4096;

/// The budget when every position's logits are made: 1024 tokens' are 206 MB (gpt2's
/// 50,257 a position), where 4096 tokens' were 823 MB of memory touched afresh each batch.
const ALL_LOGITS_BUDGET: usize = 1024;

/// The padded tokens one batch may hold, for a request of `which` logits.
fn token_budget(which: Logits) -> usize {
    match which {
        Logits::All => ALL_LOGITS_BUDGET,
        _ => TOKEN_BUDGET,
    }
}

/// Consecutive runs of `order` (indices sorted by length) of at most `size` texts, at most
/// `budget` padded tokens, and no text more than twice as long as the batch's first (plus
/// 16 tokens): padding stays under about half of a batch. A single text may exceed the
/// budget.
fn chunks<'o>(
    order: &'o [usize],
    ids: &[Vec<u32>],
    (size, budget): (usize, usize),
) -> Vec<&'o [usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in 1..=order.len() {
        let rows = end - start;
        let longest = order[start..end]
            .iter()
            .map(|&i| ids[i].len())
            .max()
            .unwrap_or(0);
        let ragged = longest > 2 * ids[order[start]].len() + 16;
        if rows > 1 && (rows > size || rows * longest > budget || ragged) {
            out.push(&order[start..end - 1]);
            start = end - 1;
        }
    }
    if start < order.len() {
        out.push(&order[start..]);
    }
    out
}

/// Texts of a window are sorted by length and run `batch_size` at a time; a window's reports
/// are written in input order once all of them are done. Memory holds a window's reports.
const WINDOW_BATCHES: usize = 8;

impl Texts {
    /// Runs every text, as one right-padded batch when there are several, and cuts out each
    /// text's share: the same numbers (within float rounding) as running it alone.
    pub(crate) fn forward<W: WantLogits>(
        &self,
        model: &Gpt2,
        req: &Request<W>,
    ) -> Result<Vec<Computed<'_, W>>> {
        self.all_run()?;
        let all: Vec<usize> = (0..self.texts.len()).collect();
        self.forward_some(model, req, &all)
    }

    /// Nothing is skipped: for commands that need every text.
    pub(crate) fn all_run(&self) -> Result<()> {
        match self.failed.first() {
            Some((_, why)) => bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Texts `which` right-padded into one `(B, T)` u32 tensor, written straight into its
    /// rows, and each text's length.
    pub(crate) fn padded_input(
        &self,
        which: &[usize],
        device: &candle_core::Device,
    ) -> Result<(Tensor, Vec<usize>)> {
        let lengths: Vec<usize> = which.iter().map(|&i| self.ids[i].len()).collect();
        let (b, t) = (which.len(), lengths.iter().copied().max().unwrap_or(0));
        let mut flat = Vec::with_capacity(b * t);
        for &i in which {
            flat.extend_from_slice(&self.ids[i]);
            flat.resize(flat.len().next_multiple_of(t.max(1)), self.pad);
        }
        Ok((Tensor::from_vec(flat, (b, t), device)?, lengths))
    }

    /// Runs texts `which` as one right-padded batch when there are several.
    fn forward_some<W: WantLogits>(
        &self,
        model: &Gpt2,
        req: &Request<W>,
        which: &[usize],
    ) -> Result<Vec<Computed<'_, W>>> {
        let (input, lengths) = self.padded_input(which, model.device())?; // (B, T)
        let output = match which.len() {
            // One text needs no padding mask.
            1 => model.forward(&input, req)?,
            _ => model.forward_padded(&input, &lengths, req)?,
        };
        which
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let output = output.sequence(j, self.ids[i].len(), &self.cfg)?;
                // Rare and then worth a second run: which activation went wrong first.
                let non_finite = match output.all_finite()? {
                    false => {
                        let ids =
                            Tensor::new(self.ids[i].as_slice(), model.device())?.unsqueeze(0)?;
                        model.first_non_finite(&ids)?
                    }
                    true => None,
                };
                Ok(Computed {
                    index: i,
                    text: &self.texts[i],
                    ids: &self.ids[i],
                    output,
                    non_finite,
                })
            })
            .collect()
    }

    /// Runs the texts in padded batches of at most `batch_size` (texts of similar length
    /// together), turns each text's share into a report with `build` and writes the reports
    /// in input order as they are done: memory follows the batch size, not the number of
    /// texts. A text that cannot be run gets its error in its place.
    pub(crate) fn run<'s, R: serde::Serialize + Headed + Tabular, W: WantLogits>(
        &'s self,
        session: &Session,
        out: &mut dyn Write,
        model: &Gpt2,
        req: &Request<W>,
        mut build: impl FnMut(Computed<'s, W>) -> Result<R>,
        table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
    ) -> Result<()> {
        if self.texts.len() > self.batch_size {
            eprintln!(
                "running {} texts in batches of up to {}; each report is written as its batch is done",
                self.texts.len(),
                self.batch_size
            );
        }
        let mut printer = session.printer(&self.texts, &self.ids, self.pad, &table)?;
        let mut problem: Option<(usize, anyhow::Error)> = None;
        let all: Vec<usize> = (0..self.texts.len()).collect();
        for window in all.chunks(self.batch_size * WINDOW_BATCHES) {
            let mut order: Vec<usize> = (window.iter().copied())
                .filter(|&i| self.why_not(i).is_none())
                .collect();
            order.sort_by_key(|&i| self.ids[i].len());
            let mut reports: Vec<Option<R>> = window.iter().map(|_| None).collect();
            let limits = (self.batch_size, token_budget(req.logits.which()));
            for chunk in chunks(&order, &self.ids, limits) {
                for (&i, computed) in chunk.iter().zip(self.forward_some(model, req, chunk)?) {
                    if let Some(e) = computed.non_finite_error(self) {
                        // The first text in input order with a problem.
                        if problem.as_ref().is_none_or(|(at, _)| i < *at) {
                            problem = Some((i, e));
                        }
                    }
                    let mut report = build(computed)?;
                    report.header_mut().truncated = self.truncated[i];
                    reports[i - window[0]] = Some(report);
                }
            }
            for (&i, report) in window.iter().zip(reports) {
                match (report, self.why_not(i)) {
                    (Some(report), _) => printer.print(out, &report)?,
                    (None, Some(why)) => printer.fail(out, &self.failure(i, why))?,
                    (None, None) => {}
                }
            }
        }
        printer.finish(out)?;
        // Every report is written (NaN stays out of the rankings, and JSON says "NaN"); the
        // exit code and stderr say that something is wrong and where it began.
        self.not_run()?;
        match problem {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// How messages name text `i`: "line 4 of --file f" with --lines, else "text 2 of 3".
    pub(crate) fn name(&self, i: usize) -> String {
        text_name(i, self.texts.len(), self.lines.as_ref())
    }

    /// Why text `i` cannot be run, if it cannot.
    pub(crate) fn why_not(&self, i: usize) -> Option<&str> {
        let at = self.failed.binary_search_by_key(&i, |(j, _)| *j).ok()?;
        Some(&self.failed[at].1)
    }

    /// Text `i` as its failure is written in its report's place; says so on stderr.
    pub(crate) fn failure(&self, i: usize, why: &str) -> NotRun {
        eprintln!("not run: {why}");
        NotRun {
            error: why.to_string(),
            text: self.texts[i].clone(),
            line: self.lines.as_ref().map(|l| l.numbers[i]),
        }
    }

    /// A command's own check of each text's ids (`check` gets the text's name and ids):
    /// with --lines a text that fails it is not run and the others are; otherwise its
    /// error is the run's.
    pub(crate) fn reject(&mut self, check: impl Fn(&str, &[u32]) -> Result<()>) -> Result<()> {
        for i in 0..self.texts.len() {
            if self.why_not(i).is_some() {
                continue;
            }
            if let Err(e) = check(&self.name(i), &self.ids[i]) {
                if !self.lenient {
                    return Err(e);
                }
                self.fail(i, format!("{e:#}"));
            }
        }
        Ok(())
    }

    /// Keeps only the texts of `shard` (by their line's index in the file, from 0): one
    /// shard of a `--lines` corpus pass. Without --lines every text is kept.
    pub(crate) fn retain_shard(&mut self, shard: crate::cli::Shard) {
        let Some(lines) = &mut self.lines else {
            return;
        };
        let keep: Vec<bool> = lines.numbers.iter().map(|&n| shard.has(n - 1)).collect();
        fn kept<T>(v: &mut Vec<T>, keep: &[bool]) {
            let all = std::mem::take(v);
            v.extend(
                all.into_iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(x, _)| x),
            );
        }
        kept(&mut lines.numbers, &keep);
        kept(&mut self.texts, &keep);
        kept(&mut self.tokens, &keep);
        kept(&mut self.ids, &keep);
        kept(&mut self.truncated, &keep);
        let mut new_index = Vec::with_capacity(keep.len());
        let mut next = 0;
        for &k in &keep {
            new_index.push(next);
            next += usize::from(k);
        }
        let failed = std::mem::take(&mut self.failed);
        self.failed = (failed.into_iter())
            .filter(|(i, _)| keep[*i])
            .map(|(i, why)| (new_index[i], why))
            .collect();
    }

    /// Marks text `i` as not run, for `why`.
    fn fail(&mut self, i: usize, why: String) {
        self.ids[i].clear();
        self.tokens[i].clear();
        let at = self.failed.partition_point(|(j, _)| *j < i);
        self.failed.insert(at, (i, why));
    }

    /// The run's error when some texts were not run (each already named on stderr).
    pub(crate) fn not_run(&self) -> Result<()> {
        let Some((first, _)) = self.failed.first() else {
            return Ok(());
        };
        let (n, k) = (self.texts.len(), self.failed.len());
        let which = match k {
            1 => self.name(*first),
            _ => format!("{}, …", self.name(*first)),
        };
        bail!("{k} of {n} texts were not run ({which}); every other text's output is written")
    }

    /// Runs the texts in the padded batches [`Self::run`] uses and hands each batch's texts
    /// to `each`, in no particular order: for passes that fold a corpus into statistics.
    /// `progress` hears of the texts done (a terminal's bar, a server's client, who may
    /// stop the pass by leaving). Texts that cannot be run are named on stderr and left
    /// out; [`Self::not_run`] is then the caller's error.
    pub(crate) fn fold<W: WantLogits>(
        &self,
        model: &Gpt2,
        req: &Request<W>,
        progress: &mut dyn Progress,
        mut each: impl FnMut(Vec<Computed<'_, W>>) -> Result<()>,
    ) -> Result<()> {
        for (_, why) in &self.failed {
            eprintln!("not run: {why}");
        }
        let mut order: Vec<usize> = (0..self.texts.len())
            .filter(|&i| self.why_not(i).is_none())
            .collect();
        order.sort_by_key(|&i| self.ids[i].len());
        progress.start(order.len() as u64, "texts");
        let limits = (self.batch_size, token_budget(req.logits.which()));
        for chunk in chunks(&order, &self.ids, limits) {
            each(self.forward_some(model, req, chunk)?)?;
            progress.advance(chunk.len() as u64)?;
        }
        Ok(())
    }

    /// Writes reports made otherwise, one per text in input order, each saying what
    /// `--truncate` cut of its text.
    pub(crate) fn emit<R: serde::Serialize + Headed + Tabular>(
        &self,
        session: &Session,
        out: &mut dyn Write,
        mut reports: Vec<R>,
        table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
    ) -> Result<()> {
        for (report, cut) in reports.iter_mut().zip(&self.truncated) {
            report.header_mut().truncated = *cut;
        }
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
pub(crate) fn pad_id(tokenizer: &Tokenizer, vocab_size: Option<usize>) -> u32 {
    tokenizer
        .endoftext()
        .filter(|&id| vocab_size.is_none_or(|v| (id as usize) < v))
        .unwrap_or(0)
}

/// Right padding with `pad`, as Hugging Face's `tokenizer(texts, padding=True)`.
pub(crate) fn padded(ids: &[Vec<u32>], pad: u32) -> Padding {
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
pub(crate) fn token_limit(input: &TextArgs, cfg: &Config) -> Result<Limit> {
    match input.max_length.map(|n| n as usize) {
        Some(n) if n > cfg.n_positions => Err(usage(format!(
            "--max-length {n} is out of range: the model sees at most {} tokens (n_positions)",
            cfg.n_positions
        ))),
        Some(n) => Ok(Limit {
            tokens: n,
            holder: "--max-length allows",
        }),
        None => Ok(Limit {
            tokens: cfg.n_positions,
            holder: "the model sees",
        }),
    }
}

/// The most tokens a text may have, and what sets it, for the message that names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) tokens: usize,
    /// "the model sees", "--max-length allows", "a report page holds".
    pub(crate) holder: &'static str,
}

impl Limit {
    /// The lower of this limit and `tokens`, which `holder` sets.
    pub(crate) fn at_most(self, tokens: usize, holder: &'static str) -> Limit {
        match tokens < self.tokens {
            true => Limit { tokens, holder },
            false => self,
        }
    }
}

/// A text's tokens, after the BOS when there is one; when `--truncate` cut the text, what
/// was kept and what was cut (the tokens' byte offsets are then into the kept text).
pub(crate) struct Encoded {
    pub(crate) tokens: Vec<Token>,
    pub(crate) cut: Option<(String, Truncated)>,
}

/// Each text's tokens, after `bos` when given (`--prepend-bos`: it counts toward the limit
/// and is never cut), cut to `limit` as `truncate` says (reported on stderr), or why it is
/// refused (`name` says which text it is).
pub(crate) fn encode_each(
    tokenizer: &Tokenizer,
    texts: &[String],
    limit: Option<Limit>,
    truncate: Option<Truncate>,
    bos: Option<u32>,
    name: &dyn Fn(usize) -> String,
) -> Result<Vec<Result<Encoded>>> {
    let limit = below_bos(limit, bos);
    let bos = bos_token(tokenizer, bos)?;
    (texts.iter().enumerate())
        .map(|(i, text)| {
            let (kept, total) = tokenize_within(tokenizer, text, limit, truncate)?;
            let cut = cut(text, kept, total, (limit, truncate), &name(i));
            Ok(cut.map(|e| with_bos(e, bos.as_ref())))
        })
        .collect()
}

/// Texts given as token ids (`--ids`): each sequence as the text its tokens spell, and its
/// tokens cut to `limit` as `truncate` says (or refused), after the BOS when given.
pub(crate) fn encode_ids(
    tokenizer: &Tokenizer,
    seqs: &[Vec<u32>],
    limit: Option<Limit>,
    truncate: Option<Truncate>,
    bos: Option<u32>,
    name: &dyn Fn(usize) -> String,
) -> Result<(Vec<String>, Vec<Result<Encoded>>)> {
    let limit = below_bos(limit, bos);
    let bos = bos_token(tokenizer, bos)?;
    let mut texts = Vec::with_capacity(seqs.len());
    let mut encoded = Vec::with_capacity(seqs.len());
    for (i, ids) in seqs.iter().enumerate() {
        let (text, tokens) = tokenizer.from_ids(ids)?;
        let total = tokens.len();
        let cut = cut(&text, tokens, total, (limit, truncate), &name(i));
        encoded.push(cut.map(|e| with_bos(e, bos.as_ref())));
        texts.push(text);
    }
    Ok((texts, encoded))
}

/// The limit on a text's own tokens: one fewer with a BOS (`--prepend-bos`: it counts toward
/// the limit and is never cut).
fn below_bos(limit: Option<Limit>, bos: Option<u32>) -> Option<Limit> {
    match bos {
        Some(_) => limit.map(|l| Limit {
            tokens: l.tokens.saturating_sub(1),
            ..l
        }),
        None => limit,
    }
}

/// The BOS as a token of no text: an empty byte span at the text's start.
fn bos_token(tokenizer: &Tokenizer, bos: Option<u32>) -> Result<Option<Token>> {
    bos.map(|id| {
        let symbol = tokenizer.decode(&[id])?;
        Ok(Token {
            id,
            symbol: symbol.clone(),
            text: symbol,
            start: 0,
            end: 0,
        })
    })
    .transpose()
}

fn with_bos(mut encoded: Encoded, bos: Option<&Token>) -> Encoded {
    if let Some(bos) = bos {
        encoded.tokens.insert(0, bos.clone());
    }
    encoded
}

/// `text`'s tokens, keeping only those that can stay under `limit` (the last ones with
/// `--truncate left`, else the first `limit` and one more to tell that there are more), and
/// how many it has in all. A long text is tokenized a piece at a time, so memory follows
/// the limit, not the text.
fn tokenize_within(
    tokenizer: &Tokenizer,
    text: &str,
    limit: Option<Limit>,
    truncate: Option<Truncate>,
) -> Result<(Vec<Token>, usize)> {
    let limit = limit.map(|l| l.tokens);
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
            (Some(l), _) => {
                let room = (l + 1).saturating_sub(kept.len());
                kept.extend(piece.into_iter().take(room));
            }
        }
        Ok(())
    })?;
    Ok((kept, total))
}

/// A text of `total` tokens, of which `kept` are held, within `limit`: whole, cut as
/// `truncate` says (reported on stderr), or refused naming `which`.
fn cut(
    text: &str,
    mut kept: Vec<Token>,
    total: usize,
    (limit, truncate): (Option<Limit>, Option<Truncate>),
    which: &str,
) -> Result<Encoded> {
    let holder = limit.map_or("", |l| l.holder);
    let Some(limit) = limit.map(|l| l.tokens).filter(|&l| total > l) else {
        return Ok(Encoded {
            tokens: kept,
            cut: None,
        });
    };
    let n = total - limit;
    let cut = crate::render::counted(n, "token");
    let side = match truncate {
        None => anyhow::bail!(
            "{which} is {total} tokens long; {holder} at most {limit}. Add --truncate left \
             to keep the last {limit} tokens (for next-token prediction), --truncate right \
             to keep the first {limit}, or --max-length N for a lower limit"
        ),
        Some(Truncate::Left) => {
            kept.drain(..kept.len().saturating_sub(limit));
            eprintln!("{which}: cut the first {cut} (--truncate left); {limit} remain");
            "left"
        }
        Some(Truncate::Right) => {
            kept.truncate(limit);
            eprintln!("{which}: cut the last {cut} (--truncate right); {limit} remain");
            "right"
        }
    };
    let kept_text = rebase(text, &mut kept);
    let truncated = Truncated {
        side,
        cut_tokens: n,
    };
    Ok(Encoded {
        tokens: kept,
        cut: Some((kept_text, truncated)),
    })
}

/// The text `tokens` cover, with their byte offsets moved to be into it. A cut inside a
/// multi-byte character leaves its kept bytes as U+FFFD.
fn rebase(text: &str, tokens: &mut [Token]) -> String {
    let (Some(a), Some(b)) = (
        tokens.first().map(|t| t.start),
        tokens.last().map(|t| t.end),
    ) else {
        return String::new();
    };
    for t in tokens.iter_mut() {
        t.start -= a;
        t.end -= a;
    }
    String::from_utf8_lossy(&text.as_bytes()[a..b]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_size_the_token_budget_and_raggedness() {
        let chunked = |lens: &[usize], size: usize| -> Vec<Vec<usize>> {
            let ids: Vec<Vec<u32>> = lens.iter().map(|&n| vec![0; n]).collect();
            let order: Vec<usize> = (0..lens.len()).collect();
            chunks(&order, &ids, (size, TOKEN_BUDGET))
                .iter()
                .map(|c| c.to_vec())
                .collect()
        };
        let lens = [3, 5, 5, 8, 20, 1500, 2100, 5000];
        // Three at most; 1500 after 20 is ragged; 2 × 2100 would pass the budget; 5000 alone.
        assert_eq!(
            chunked(&lens, 3),
            [vec![0, 1, 2], vec![3, 4], vec![5], vec![6], vec![7]]
        );
        assert_eq!(
            chunked(&lens, 16),
            [vec![0, 1, 2, 3, 4], vec![5], vec![6], vec![7]]
        );
        // Long texts of similar length share a batch up to the budget.
        assert_eq!(
            chunked(&[900, 1000, 1000, 1000, 1000], 16),
            [vec![0, 1, 2, 3], vec![4]]
        );
        assert!(chunked(&[], 4).is_empty());
        // Every position's logits: a quarter of the tokens a batch.
        let ids: Vec<Vec<u32>> = [200, 200, 200, 200, 200, 200].map(|n| vec![0; n]).to_vec();
        let order: Vec<usize> = (0..6).collect();
        let all = (16, token_budget(Logits::All));
        assert_eq!(chunks(&order, &ids, all), [&[0, 1, 2, 3, 4][..], &[5][..]]);
    }
}
