//! `feature IDS --sae DIR [TEXT… | --file F --lines]`: what SAE features write (their
//! decoder directions through the unembedding) and, over a corpus, where they fire.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::progress::Progress;
use crate::analysis::sae::{self, FeatureStats, Peak, Sae};
use crate::cli::{FeatureArgs, Shard, TextArgs};
use crate::dist;
use crate::input::text_name;
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
    if let Some(path) = &args.shards.partial {
        return super::feature_shards::partial(session, args, path);
    }
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
    Ok(gather(session, args, Shard::ALL)?.built)
}

/// What `feature` gathers over a shard of its corpus (all of it: [`Shard::ALL`]).
pub struct Gathered {
    pub built: Built<FeatureReport>,
    /// Each feature's statistics over the shard's texts, named by their index in the whole
    /// corpus (none without a corpus).
    pub stats: Vec<FeatureStats>,
    /// The shard's texts, run or not, those run, and with --lines the lines not run,
    /// with why.
    pub texts: usize,
    pub texts_run: usize,
    pub not_run: Vec<(usize, String)>,
}

/// The report over the texts of `shard`, with the statistics behind it.
pub fn gather(session: &Session, args: &FeatureArgs, shard: Shard) -> Result<Gathered> {
    let cfg = session.config()?;
    let a = &args.sae;
    let (sae, hook, centered) =
        session.sae(&a.sae, a.sae_revision.as_deref(), a.sae_centered, cfg)?;
    session.check_features(&a.sae, &sae, args.ids.0.iter().copied())?;
    check_top_k(args.top_k, cfg, &session.model_name)?;
    let (model, tokenizer, pass) = match corpus(&args.input)? {
        Some(input) => corpus_pass(session, args, &input, (&sae, hook, centered), shard)?,
        None => (
            session.model(cfg, cfg.n_layer)?,
            session.tokenizer()?,
            CorpusPass::default(),
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
            corpus: pass.corpora.get(i).cloned(),
        });
    }
    let report = FeatureReport {
        header: session.header(None)?,
        sae: a.sae.clone(),
        hook: hook.to_string(),
        features: rows,
    };
    Ok(Gathered {
        built: Built {
            report,
            problem: pass.problem,
        },
        stats: pass.stats,
        texts: pass.texts,
        texts_run: pass.texts_run,
        not_run: pass.not_run,
    })
}

/// A pass over the corpus: each feature's statistics and its corpus row, the texts, and
/// the texts not run (the run's problem, once the rest is written).
#[derive(Default)]
struct CorpusPass {
    stats: Vec<FeatureStats>,
    corpora: Vec<FeatureCorpus>,
    texts: usize,
    texts_run: usize,
    not_run: Vec<(usize, String)>,
    problem: Option<anyhow::Error>,
}

/// Runs the texts of `shard` (with --lines, texts that cannot be run are left out of the
/// pass) and gathers every feature's statistics.
fn corpus_pass(
    session: &Session,
    args: &FeatureArgs,
    input: &TextArgs,
    read: (&Sae, crate::model::Hook, bool),
    shard: Shard,
) -> Result<(Arc<crate::model::Gpt2>, Arc<Tokenizer>, CorpusPass)> {
    let cfg = session.config()?;
    let (mut prepared, model) = session.prepare_and_load(input, cfg, cfg.n_layer, Take::EACH)?;
    // Each text's index in the whole corpus, which names it in the statistics.
    let whole = prepared.lines.as_ref().map(|l| l.numbers.clone());
    prepared.retain_shard(shard);
    let index: Vec<usize> = match (&whole, &prepared.lines) {
        (Some(whole), Some(kept)) => (kept.numbers.iter())
            .map(|n| whole.binary_search(n).expect("a kept line is a line"))
            .collect(),
        _ => (0..prepared.ids.len()).collect(),
    };
    let keep = (args.contexts as usize, args.window as usize);
    let bar = &mut Bar::new(session, "feature");
    let stats = pass(&prepared, (&model, bar), read, (&args.ids.0, &index), keep)?;
    let lines = prepared.lines.as_ref();
    let show = |p: &Peak| {
        let i = index.binary_search(&p.text).expect("a peak's text was run");
        let ids = &prepared.ids[i][p.start..p.start + p.acts.len()];
        Ok((
            text_name(i, prepared.ids.len(), lines),
            decoded(&prepared.tokenizer, ids)?,
        ))
    };
    // A text not run (--lines) has no ids.
    let run = prepared.ids.iter().filter(|t| !t.is_empty()).count();
    let corpora = (stats.iter())
        .map(|s| corpus_row(s, run, show))
        .collect::<Result<Vec<_>>>()?;
    let not_run = (prepared.failed.iter())
        .map(|(i, why)| (lines.map_or(*i, |l| l.numbers[*i]), why.clone()))
        .collect();
    let pass = CorpusPass {
        stats,
        corpora,
        texts: prepared.texts.len(),
        texts_run: run,
        not_run,
        problem: prepared.not_run().err(),
    };
    Ok((model, prepared.tokenizer, pass))
}

/// One pass over the texts in padded batches, every feature's statistics gathered from
/// the same run, each text named by `index` (its index in the whole corpus). The model
/// stops at the SAE's hook; each batch's tokens are encoded as one `(N, d_in)` matrix.
fn pass(
    prepared: &Texts,
    (model, progress): (&crate::model::Gpt2, &mut dyn Progress),
    (sae, hook, centered): (&Sae, crate::model::Hook, bool),
    (ids, index): (&[usize], &[usize]),
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
                s.add(index[c.index], &column[at..at + c.ids.len()]);
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

/// A feature's corpus statistics and top contexts over `texts` texts run; `show` gives a
/// peak's text as messages name it ("line 4 of --file f" with --lines) and its tokens
/// from the context's start.
pub fn corpus_row(
    s: &FeatureStats,
    texts: usize,
    show: impl Fn(&Peak) -> Result<(String, Vec<String>)>,
) -> Result<FeatureCorpus> {
    let contexts = (s.peaks.iter())
        .map(|p| {
            let (source, tokens) = show(p)?;
            Ok(FeatureContext {
                text: p.text,
                source,
                peak: p.value,
                peak_position: p.position,
                start: p.start,
                tokens,
                activations: p.acts.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FeatureCorpus {
        texts,
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
