//! `lens fit --file CORPUS --lines -o LENS.pt`: a Jacobian lens fitted with TransformerLens's
//! estimator ([`crate::analysis::lens_fit`]), written as TransformerLens saves it. The corpus
//! is read a line at a time (memory does not grow with it); a line too short to fit on is
//! skipped, as TransformerLens skips it, and listed in the report. With `--shard K/N
//! --partial FILE` it fits one shard of the lines and writes its sums for `merge`, which
//! writes the lens one run over every line would have written ([`merge`]).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::analysis::lens_fit::{FitSettings, JacobianSums};
use crate::analysis::progress::Progress;
use crate::cli::{LensFitArgs, MergeArgs, Shard};
use crate::error::usage;
use crate::load::partial::{self, Partial, PartialInfo, PassKind};
use crate::model::Gpt2;
use crate::reports::{Header, LensFitReport, SkippedLine};
use crate::session::progress::Bar;
use crate::session::Session;

pub fn run(session: &Session, args: &LensFitArgs, out: &mut dyn Write) -> Result<()> {
    let report = build(session, args)?;
    emit(session, out, &report)
}

fn emit(session: &Session, out: &mut dyn Write, report: &LensFitReport) -> Result<()> {
    let table = crate::render::attention::table::lens_fit;
    crate::session::emit(session, out, report, table)
}

/// What one prompt's passes may hold, in bytes: more rows a pass than other backward passes
/// take (gpt2, 128 tokens: 6), which the products need to be efficient (at 2 rows gemm
/// spends a quarter of its time packing the weights); the rows do not change the numbers.
const FIT_BUDGET: usize = 1280 << 20;

/// What a fit's result depends on besides the lines' texts: partials must agree on all of
/// it to merge, and the lens's metadata records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Agreement {
    version: String,
    model: String,
    revision: Option<String>,
    d_model: usize,
    n_layer: usize,
    source_layers: Vec<usize>,
    max_seq_len: usize,
    skip_first_positions: usize,
    prepend_bos: bool,
    /// `--file` as given, and its contents' SHA-256.
    corpus: String,
    corpus_sha256: String,
}

/// A fit's counts, summed or joined by a merge.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counts {
    n_prompts: usize,
    tokens: usize,
    skipped: Vec<SkippedLine>,
}

/// Fits the lens (or the shard's partial), writes it, and reports what was done.
pub fn build(session: &Session, args: &LensFitArgs) -> Result<LensFitReport> {
    let cfg = session.config()?;
    let settings = settings(args, cfg.n_layer)?;
    let shard = args.shards.shard.unwrap_or(Shard::ALL);
    let (lines, sha256) = scan_corpus(args, shard)?;
    let agreement = Agreement {
        version: env!("CARGO_PKG_VERSION").into(),
        model: session.model_name.clone(),
        revision: session.header(None)?.revision,
        d_model: cfg.n_embd,
        n_layer: cfg.n_layer,
        source_layers: settings.source_layers.clone(),
        max_seq_len: settings.max_seq_len,
        skip_first_positions: settings.skip_first,
        prepend_bos: session.prepend_bos,
        corpus: args.file.display().to_string(),
        corpus_sha256: sha256,
    };
    if let Some(path) = &args.shards.partial {
        if let Some(done) = finished(path, &agreement, shard) {
            eprintln!(
                "{}: shard {shard} already fitted with these settings; kept",
                path.display()
            );
            return Ok(report(
                &agreement,
                &done,
                path,
                shards_of(&[shard.k].into(), shard.n),
            ));
        }
    }
    let model = session.model(cfg, cfg.n_layer)?;
    crate::analysis::grad::check_differentiable(&model)?;
    let (sums, counts) = fit_corpus(session, args, (&model, &settings), (shard, lines))?;
    if let Some(path) = &args.shards.partial {
        let info = info(&agreement, shard.n, [shard.k].into(), &counts)?;
        let partial = Partial {
            info,
            sums: to_sums(&sums),
            payload: None,
        };
        crate::session::shards::write(session, path, &partial)?;
        let of = shards_of(&[shard.k].into(), shard.n);
        return Ok(report(&agreement, &counts, path, of));
    }
    let output = args
        .output
        .as_deref()
        .expect("clap requires -o without --partial");
    write_lens(session, (&agreement, &counts), &sums, output)?;
    Ok(report(&agreement, &counts, output, None))
}

/// The partial at `path` when it holds exactly `shard` fitted with `agreement`'s settings.
fn finished(path: &Path, agreement: &Agreement, shard: Shard) -> Option<Counts> {
    let agree = serde_json::to_value(agreement).ok()?;
    let p = partial::holding(path, PassKind::LensFit, (shard.k, shard.n), &agree)?;
    serde_json::from_value(p.info.counts).ok()
}

fn info(a: &Agreement, n: usize, shards: BTreeSet<usize>, c: &Counts) -> Result<PartialInfo> {
    Ok(PartialInfo {
        kind: PassKind::LensFit,
        agree: serde_json::to_value(a)?,
        n,
        shards,
        counts: serde_json::to_value(c)?,
    })
}

fn to_sums(sums: &JacobianSums) -> Vec<partial::Sum> {
    let d = sums.d_model;
    (sums.layers.iter().zip(&sums.sums))
        .map(|(l, s)| (format!("sum.{l:04}"), vec![d, d], s.clone()))
        .collect()
}

/// The lens of `sums` written to `output`, its metadata from the agreement.
fn write_lens(
    session: &Session,
    (a, counts): (&Agreement, &Counts),
    sums: &JacobianSums,
    output: &Path,
) -> Result<()> {
    let lens = sums.mean()?;
    let bytes = crate::load::jacobian_lens::to_bytes(&lens, &metadata(a, counts.n_prompts))?;
    crate::session::write_file(session, "-o", Some(output), |w| w.write_all(&bytes))
}

/// The report one run prints, from what it agreed on and counted (`partial_of`: the shards
/// of a partial written, `None` for a lens).
fn report(a: &Agreement, c: &Counts, output: &Path, partial_of: Option<String>) -> LensFitReport {
    let mut skipped = c.skipped.clone();
    skipped.sort_by_key(|s| s.line);
    LensFitReport {
        header: Header::new(&a.model, a.revision.clone(), None),
        corpus: a.corpus.clone(),
        output: output.display().to_string(),
        n_prompts: c.n_prompts,
        skipped,
        source_layers: a.source_layers.clone(),
        target_layer: a.n_layer - 1,
        d_model: a.d_model,
        max_seq_len: a.max_seq_len,
        skip_first_positions: a.skip_first_positions,
        prepend_bos: a.prepend_bos,
        tokens: c.tokens,
        partial_of,
    }
}

/// `shards` of `n` as a report says them: `1 of 3`, `0, 2 of 3`.
fn shards_of(shards: &BTreeSet<usize>, n: usize) -> Option<String> {
    let ks: Vec<String> = shards.iter().map(|k| k.to_string()).collect();
    Some(format!("{} of {n}", ks.join(", ")))
}

/// `merge` of `lens fit` partials: the lens (`-o`) or the merged partial (`--partial`),
/// and the report one run over their lines prints.
pub fn merge(
    session: &Session,
    args: &MergeArgs,
    partials: Vec<Partial>,
    out: &mut dyn Write,
) -> Result<()> {
    let first = &partials[0].info;
    let agreement: Agreement = serde_json::from_value(first.agree.clone())
        .context("the partials' settings are not a lens fit's")?;
    let mut counts = Counts::default();
    for p in &partials {
        let c: Counts = serde_json::from_value(p.info.counts.clone())?;
        counts.n_prompts += c.n_prompts;
        counts.tokens += c.tokens;
        counts.skipped.extend(c.skipped);
    }
    counts.skipped.sort_by_key(|s| s.line);
    let summed = partial::summed(&partials)?;
    if let Some(path) = &args.partial {
        let shards = crate::load::partial::shards_held(&partials);
        let of = shards_of(&shards, first.n);
        let info = info(&agreement, first.n, shards, &counts)?;
        let partial = Partial {
            info,
            sums: summed,
            payload: None,
        };
        crate::session::shards::write(session, path, &partial)?;
        return emit(session, out, &report(&agreement, &counts, path, of));
    }
    let Some(output) = &args.output else {
        return Err(usage(
            "merge of lens fit partials: give -o LENS.pt (or --partial FILE)",
        ));
    };
    let mut sums = JacobianSums::new(&agreement.source_layers, agreement.d_model);
    sums.n_prompts = counts.n_prompts;
    for (s, (_, _, v)) in sums.sums.iter_mut().zip(summed) {
        *s = v;
    }
    write_lens(session, (&agreement, &counts), &sums, output)?;
    emit(session, out, &report(&agreement, &counts, output, None))
}

/// One prompt per line of the shard, a line at a time, each pass reported to the session's
/// listener.
fn fit_corpus(
    session: &Session,
    args: &LensFitArgs,
    (model, settings): (&Gpt2, &FitSettings),
    (shard, lines): (Shard, usize),
) -> Result<(JacobianSums, Counts)> {
    let c = model.config().n_embd;
    let tokenizer = session.tokenizer()?;
    let mut sums = JacobianSums::new(&settings.source_layers, c);
    let mut counts = Counts::default();
    let mut bar = Bar::new(session, "lens fit");
    bar.start(lines as u64 * c as u64, "output dimensions of the prompts");
    for_each_line(args, shard, |line, text| {
        let mut ids = session.ids(&tokenizer, text)?;
        ids.truncate(settings.max_seq_len);
        if !settings.fits(ids.len()) {
            let tokens = ids.len();
            counts.skipped.push(SkippedLine { line, tokens });
            return bar.advance(c as u64);
        }
        let rows = crate::analysis::grad::rows_within(model, (ids.len(), c, 1), FIT_BUDGET);
        let mut left = c;
        sums.add_prompt(model, &ids, (settings, rows), &mut || {
            let n = rows.min(left);
            left -= n;
            bar.advance(n as u64)
        })?;
        counts.tokens += ids.len();
        Ok(())
    })?;
    counts.n_prompts = sums.n_prompts;
    if counts.n_prompts == 0 && args.shards.partial.is_none() {
        return Err(usage(format!(
            "lens fit: every line of --file {} is too short to fit on (a prompt needs more \
             than --skip-first + 1 = {} tokens)",
            args.file.display(),
            settings.skip_first + 1
        )));
    }
    Ok((sums, counts))
}

/// The flags, checked: source blocks below the last (default all of them).
fn settings(args: &LensFitArgs, n_layer: usize) -> Result<FitSettings> {
    let mut layers = match args.layers.is_empty() {
        true => (0..n_layer.saturating_sub(1)).collect(),
        false => args.layers.clone(),
    };
    layers.sort_unstable();
    layers.dedup();
    if let Some(l) = layers.iter().find(|&&l| l + 1 >= n_layer) {
        return Err(usage(format!(
            "--layers {l}: a source block must be below the last ({}); this model's are 0 to {}",
            n_layer - 1,
            n_layer.saturating_sub(2)
        )));
    }
    if layers.is_empty() {
        return Err(usage(
            "lens fit: a one-block model has no block before its last",
        ));
    }
    Ok(FitSettings {
        source_layers: layers,
        max_seq_len: args.max_seq_len as usize,
        skip_first: args.skip_first as usize,
    })
}

/// What the artifact records of its fit: TransformerLens's provenance keys where they mean
/// the same (`estimator`, `corpus`, `n_prompts`, `target_layer`, `max_seq_len`,
/// `skip_first_positions`, `fit_dtype`), and ours.
fn metadata(a: &Agreement, n_prompts: usize) -> serde_json::Value {
    let corpus = Path::new(&a.corpus)
        .file_name()
        .map_or_else(|| a.corpus.clone(), |n| n.to_string_lossy().into_owned());
    serde_json::json!({
        "estimator": "jacobian_lens",
        "corpus": corpus,
        "n_prompts": n_prompts,
        "target_layer": a.n_layer - 1,
        "max_seq_len": a.max_seq_len,
        "skip_first_positions": a.skip_first_positions,
        "fit_dtype": "float32",
        "prepend_bos": a.prepend_bos,
        "fitted_by": format!("gpt2-inspect {}", a.version),
        "fitted_model": a.model,
    })
}

/// The shard's non-empty lines (the progress bar's total) and the whole file's SHA-256, in
/// one streaming pass.
fn scan_corpus(args: &LensFitArgs, shard: Shard) -> Result<(usize, String)> {
    let mut lines = 0;
    for_each_line(args, shard, |_, _| {
        lines += 1;
        Ok(())
    })?;
    Ok((lines, partial::sha256_hex(&args.file)?))
}

/// Runs `each` on every non-empty line of `shard` with its number (from 1), reading one at
/// a time. Line n is shard (n − 1) mod N's, empty or not.
fn for_each_line(
    args: &LensFitArgs,
    shard: Shard,
    mut each: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let what = || format!("--file {}", args.file.display());
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("{}: cannot open", what()))?;
    let reader = BufReader::new(file);
    for (i, line) in reader.lines().enumerate() {
        if !shard.has(i) {
            continue;
        }
        let line = line.with_context(|| format!("{}: cannot read line {}", what(), i + 1))?;
        let text = line.strip_suffix('\r').unwrap_or(&line);
        if !text.trim().is_empty() {
            each(i + 1, text)?;
        }
    }
    Ok(())
}
