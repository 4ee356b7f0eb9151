//! `feature IDS --sae DIR [TEXT… | --file F --lines]`: what SAE features write (their
//! decoder directions through the unembedding) and, over a corpus, where they fire.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::progress::Progress;
use crate::analysis::sae::{self, FeatureStats, Sae};
use crate::cli::{FeatureArgs, TextArgs};
use crate::dist;
use crate::input::{text_name, Lines};
use crate::model::{CaptureSpec, NoLogits, Request};
use crate::render::features::dashboard;
use crate::render::features::table;
use crate::reports::{FeatureContext, FeatureCorpus, FeatureReport, FeatureRow, TokenValue};
use crate::session::check_top_k;
use crate::session::progress::Bar;
use crate::session::texts::Texts;
use crate::session::Take;
use crate::session::{decoded, Built, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &FeatureArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?;
    crate::session::write_file(session, "--html", args.html.as_deref(), |w| {
        dashboard::page(w, &built.report)
    })?;
    crate::session::emit(session, out, &built.report, table::feature)?;
    built.finish()
}

/// The report `feature` prints; texts of a `--lines` corpus that could not run are its
/// problem.
pub fn build(session: &Session, args: &FeatureArgs) -> Result<Built<FeatureReport>> {
    let cfg = session.config()?;
    let a = &args.sae;
    let (sae, hook, centered) =
        session.sae(&a.sae, a.sae_revision.as_deref(), a.sae_centered, cfg)?;
    session.check_features(&a.sae, &sae, args.ids.0.iter().copied())?;
    check_top_k(args.top_k, cfg, &session.model_name)?;
    let input = corpus(&args.input)?;
    // With --lines, texts that cannot be run are left out of the pass and end the run as
    // its error once the rest is written.
    let (model, tokenizer, stats, texts, not_run) = match &input {
        Some(input) => {
            let (prepared, model) =
                session.prepare_and_load(input, cfg, cfg.n_layer, Take::EACH)?;
            let keep = (args.contexts as usize, args.window as usize);
            let bar = &mut Bar::new(session, "feature");
            let read = (&sae, hook, centered);
            let stats = pass(&prepared, (&model, bar), read, &args.ids.0, keep)?;
            let not_run = prepared.not_run();
            let Texts {
                tokenizer,
                ids,
                lines,
                ..
            } = prepared;
            (model, tokenizer, Some(stats), (ids, lines), not_run)
        }
        None => (
            session.model(cfg, cfg.n_layer)?,
            session.tokenizer()?,
            None,
            (Vec::new(), None),
            Ok(()),
        ),
    };
    let mut rows = Vec::with_capacity(args.ids.0.len());
    for (i, &f) in args.ids.0.iter().enumerate() {
        let logits = sae::direct_logits(&model, &sae, f)?;
        let k = (args.top_k as usize).min(logits.len());
        let negated: Vec<f32> = logits.iter().map(|v| -v).collect();
        rows.push(FeatureRow {
            id: f,
            top_logits: token_values(&tokenizer, &logits, &dist::top_k(&logits, k))?,
            bottom_logits: token_values(&tokenizer, &logits, &dist::top_k(&negated, k))?,
            log10_training_density: sae.log_sparsity.as_ref().map(|s| s[f]),
            corpus: match &stats {
                Some(s) => Some(corpus_row(&tokenizer, &s[i], (&texts.0, texts.1.as_ref()))?),
                None => None,
            },
        });
    }
    let report = FeatureReport {
        header: session.header(None)?,
        sae: a.sae.clone(),
        hook: hook.to_string(),
        features: rows,
    };
    Ok(Built {
        report,
        problem: not_run.err(),
    })
}

/// One pass over the texts in padded batches, every feature's statistics gathered from
/// the same run. The model stops at the SAE's hook; each batch's tokens are encoded as one
/// `(N, d_in)` matrix.
fn pass(
    prepared: &Texts,
    (model, progress): (&crate::model::Gpt2, &mut dyn Progress),
    (sae, hook, centered): (&Sae, crate::model::Hook, bool),
    ids: &[usize],
    (keep, window): (usize, usize),
) -> Result<Vec<FeatureStats>> {
    let mut stats: Vec<FeatureStats> = ids
        .iter()
        .map(|_| FeatureStats::new(keep, window))
        .collect();
    let req = Request {
        capture: CaptureSpec::new([hook]),
        logits: NoLogits,
    };
    prepared.fold(model, &req, progress, |batch| {
        let rows = (batch.iter())
            .map(|c| Ok(c.output.activations.get(hook)?.squeeze(0)?))
            .collect::<Result<Vec<_>>>()?;
        let acts = sae::encode_at(sae, &Tensor::cat(&rows, 0)?, centered)?; // (N, d_sae)
        for (s, &f) in stats.iter_mut().zip(ids) {
            let column = acts.narrow(1, f, 1)?.flatten_all()?.to_vec1::<f32>()?;
            let mut at = 0;
            for c in &batch {
                s.add(c.index, &column[at..at + c.ids.len()]);
                at += c.ids.len();
            }
        }
        Ok(())
    })?;
    Ok(stats)
}

fn token_values(tokenizer: &Tokenizer, logits: &[f32], ids: &[usize]) -> Result<Vec<TokenValue>> {
    (ids.iter())
        .map(|&id| {
            Ok(TokenValue {
                id: id as u32,
                token: tokenizer.token_text(id as u32)?,
                value: logits[id],
            })
        })
        .collect()
}

/// A feature's corpus statistics and top contexts, each context named as messages name
/// its text ("line 4 of --file f" with --lines).
fn corpus_row(
    tokenizer: &Tokenizer,
    s: &FeatureStats,
    (texts, lines): (&[Vec<u32>], Option<&Lines>),
) -> Result<FeatureCorpus> {
    let contexts = (s.peaks.iter())
        .map(|p| {
            let ids = &texts[p.text][p.start..p.start + p.acts.len()];
            Ok(FeatureContext {
                text: p.text,
                source: text_name(p.text, texts.len(), lines),
                peak: p.value,
                peak_position: p.position,
                start: p.start,
                tokens: decoded(tokenizer, ids)?,
                activations: p.acts.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FeatureCorpus {
        // A text not run (--lines) has no ids.
        texts: texts.iter().filter(|t| !t.is_empty()).count(),
        tokens: s.tokens,
        density: s.density(),
        bin_width: s.top / s.bins.len() as f32,
        histogram: s.bins.clone(),
        contexts,
    })
}

/// The texts a feature's statistics are gathered over, if any: TEXT, `--file`, or standard
/// input when something is piped in (with `--lines`, its lines), as `features` reads them.
/// Nothing: the feature's logit tables alone.
fn corpus(input: &TextArgs) -> Result<Option<TextArgs>> {
    if !input.texts.is_empty() || input.file.is_some() {
        return Ok(Some(input.clone()));
    }
    if std::io::stdin().is_terminal() {
        return Ok(None);
    }
    if input.lines {
        return Ok(Some(input.clone()));
    }
    Ok(crate::input::read_piped()?.map(|text| TextArgs {
        texts: vec![text],
        ..input.clone()
    }))
}
