//! `lens fit --file CORPUS --lines -o LENS.pt`: a Jacobian lens fitted with TransformerLens's
//! estimator ([`crate::analysis::lens_fit`]), written as TransformerLens saves it. The corpus
//! is read a line at a time (memory does not grow with it); a line too short to fit on is
//! skipped, as TransformerLens skips it, and listed in the report.

use std::io::{BufRead, BufReader, Write};

use anyhow::{Context, Result};

use crate::analysis::lens_fit::{FitSettings, JacobianSums};
use crate::analysis::progress::Progress;
use crate::cli::LensFitArgs;
use crate::error::usage;
use crate::reports::{LensFitReport, SkippedLine};
use crate::session::progress::Bar;
use crate::session::Session;

pub fn run(session: &Session, args: &LensFitArgs, out: &mut dyn Write) -> Result<()> {
    let report = build(session, args)?;
    crate::session::emit(
        session,
        out,
        &report,
        crate::render::attention::table::lens_fit,
    )
}

/// Fits the lens, writes it, and reports what was done.
pub fn build(session: &Session, args: &LensFitArgs) -> Result<LensFitReport> {
    let cfg = session.config()?;
    let settings = settings(args, cfg.n_layer)?;
    let model = session.model(cfg, cfg.n_layer)?;
    crate::analysis::grad::check_differentiable(&model)?;
    let tokenizer = session.tokenizer()?;
    let lines = count_lines(args)?;
    let mut sums = JacobianSums::new(&settings.source_layers, cfg.n_embd);
    let (mut skipped, mut tokens) = (Vec::new(), 0);
    let mut bar = Bar::new(session, "lens fit");
    bar.start(
        lines as u64 * cfg.n_embd as u64,
        "output dimensions of the prompts",
    );
    for_each_line(args, |line, text| {
        let mut ids = session.ids(&tokenizer, text)?;
        ids.truncate(settings.max_seq_len);
        if !settings.fits(ids.len()) {
            skipped.push(SkippedLine {
                line,
                tokens: ids.len(),
            });
            return bar.advance(cfg.n_embd as u64);
        }
        let rows = crate::analysis::grad::rows_per_pass(&model, ids.len(), cfg.n_embd, 1);
        let mut done = |n: u64| bar.advance(n);
        let per_pass = rows.min(cfg.n_embd);
        let mut left = cfg.n_embd;
        sums.add_prompt(&model, &ids, (&settings, rows), &mut || {
            let n = per_pass.min(left);
            left -= n;
            done(n as u64)
        })?;
        tokens += ids.len();
        Ok(())
    })?;
    drop(bar);
    if sums.n_prompts == 0 {
        return Err(usage(format!(
            "lens fit: every line of --file {} is too short to fit on (a prompt needs more \
             than --skip-first + 1 = {} tokens)",
            args.file.display(),
            settings.skip_first + 1
        )));
    }
    let lens = sums.mean()?;
    let metadata = metadata(session, args, &settings, (sums.n_prompts, cfg.n_layer));
    let bytes = crate::load::jacobian_lens::to_bytes(&lens, &metadata)?;
    crate::session::write_file(session, "-o", Some(&args.output), |w| w.write_all(&bytes))?;
    Ok(LensFitReport {
        header: session.header(None)?,
        corpus: args.file.display().to_string(),
        output: args.output.display().to_string(),
        n_prompts: sums.n_prompts,
        skipped,
        source_layers: settings.source_layers,
        target_layer: cfg.n_layer - 1,
        d_model: cfg.n_embd,
        max_seq_len: settings.max_seq_len,
        skip_first_positions: settings.skip_first,
        prepend_bos: session.prepend_bos,
        tokens,
    })
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
fn metadata(
    session: &Session,
    args: &LensFitArgs,
    settings: &FitSettings,
    (n_prompts, n_layer): (usize, usize),
) -> serde_json::Value {
    let corpus = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    serde_json::json!({
        "estimator": "jacobian_lens",
        "corpus": corpus,
        "n_prompts": n_prompts,
        "target_layer": n_layer - 1,
        "max_seq_len": settings.max_seq_len,
        "skip_first_positions": settings.skip_first,
        "fit_dtype": "float32",
        "prepend_bos": session.prepend_bos,
        "fitted_by": format!("gpt2-inspect {}", env!("CARGO_PKG_VERSION")),
        "fitted_model": session.model_name,
    })
}

/// Non-empty lines of the corpus (a first, cheap pass: the progress bar's total).
fn count_lines(args: &LensFitArgs) -> Result<usize> {
    let mut n = 0;
    for_each_raw_line(args, |_, text| {
        n += usize::from(!text.trim().is_empty());
        Ok(())
    })?;
    Ok(n)
}

/// Runs `each` on every non-empty line with its number (from 1), reading one at a time.
fn for_each_line(
    args: &LensFitArgs,
    mut each: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    for_each_raw_line(args, |n, text| match text.trim().is_empty() {
        true => Ok(()),
        false => each(n, text),
    })
}

fn for_each_raw_line(
    args: &LensFitArgs,
    mut each: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let what = || format!("--file {}", args.file.display());
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("{}: cannot open", what()))?;
    let reader = BufReader::new(file);
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}: cannot read line {}", what(), i + 1))?;
        each(i + 1, line.strip_suffix('\r').unwrap_or(&line))?;
    }
    Ok(())
}
