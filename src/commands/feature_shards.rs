//! `feature IDS --sae S --file F --lines --shard K/N --partial FILE` and the merge of its
//! partials: a shard keeps each feature's logit tables, its statistics over the shard's
//! lines (counts, histogram, top peaks, texts named by their index in the whole corpus) and
//! how each peak's context is shown; the merge takes the statistics together
//! (`FeatureStats::merge`, exact) and prints, and with --html draws, what one run over the
//! whole file prints and draws; lines that could not be run end it with the same error.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::analysis::sae::FeatureStats;
use crate::cli::{FeatureArgs, MergeArgs, Shard};
use crate::error::usage;
use crate::load::partial::{Partial, PassKind};
use crate::render::features::{dashboard, table};
use crate::reports::{FeatureReport, FeatureRow, Header};
use crate::session::shards::{self, kept, CorpusSettings, LineCounts};
use crate::session::Session;

/// What a feature's corpus statistics depend on besides the lines: partials must agree on
/// all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Agreement {
    #[serde(flatten)]
    corpus: CorpusSettings,
    /// The SAE as given (`--sae`), its revision, whether it reads a centred stream.
    sae: String,
    sae_revision: Option<String>,
    sae_centered: bool,
    ids: Vec<usize>,
    top_k: u32,
    contexts: u32,
    window: u32,
}

/// A partial's payload (JSON): the hook, how many texts were run, and per feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    hook: String,
    texts_run: usize,
    features: Vec<StoredFeature>,
}

/// One feature of a shard: its row without the corpus part (the logit tables, the same in
/// every shard), its statistics, and each peak's context as shown, in the peaks' order.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFeature {
    row: FeatureRow,
    stats: FeatureStats,
    shown: Vec<(String, Vec<String>)>,
}

fn agreement(session: &Session, args: &FeatureArgs) -> Result<Agreement> {
    let corpus = session.corpus_settings(&args.input)?;
    if args.html.is_some() {
        return Err(usage(
            "--partial writes a shard's state; give --html to the merge",
        ));
    }
    Ok(Agreement {
        corpus,
        sae: args.sae.sae.clone(),
        sae_revision: args.sae.sae_revision.clone(),
        sae_centered: args.sae.sae_centered,
        ids: args.ids.0.clone(),
        top_k: args.top_k,
        contexts: args.contexts,
        window: args.window,
    })
}

/// Runs the shard and writes its partial; a partial at `path` that holds this shard with
/// the same settings is kept.
pub fn partial(session: &Session, args: &FeatureArgs, path: &Path) -> Result<()> {
    let shard = args.shards.shard.unwrap_or(Shard::ALL);
    let agree = agreement(session, args)?;
    if kept(path, PassKind::Feature, shard, &agree) {
        eprintln!(
            "{}: shard {shard} already gathered with these settings; kept",
            path.display()
        );
        return Ok(());
    }
    let g = super::feature::gather(session, args, shard)?;
    let r = g.built.report;
    let features = (r.features.into_iter().zip(g.stats))
        .map(|(mut row, stats)| {
            let shown = (row.corpus.take().into_iter())
                .flat_map(|c| c.contexts)
                .map(|c| (c.source, c.tokens))
                .collect();
            StoredFeature { row, stats, shown }
        })
        .collect();
    let stored = Stored {
        hook: r.hook,
        texts_run: g.texts_run,
        features,
    };
    let counts = LineCounts {
        texts: g.texts,
        not_run: g.not_run,
    };
    let at = (serde_json::to_value(&agree)?, shard.n, [shard.k].into());
    write_partial(session, path, at, &counts, &stored)
}

/// `merge` of feature partials: the report one run prints (with --html, its page; with
/// `--partial`, the merged partial), then, when some lines could not be run, its error.
pub fn merge(
    session: &Session,
    args: &MergeArgs,
    mut partials: Vec<Partial>,
    out: &mut dyn Write,
) -> Result<()> {
    let first = partials[0].info.clone();
    let agree: Agreement = serde_json::from_value(first.agree.clone())
        .context("the partials' settings are not a feature's")?;
    // In shard order, so the merged partial's bytes do not depend on the files' order.
    partials.sort_by_key(|p| p.info.shards.first().copied());
    let mut counts = LineCounts::default();
    let mut stored = Vec::with_capacity(partials.len());
    for p in &partials {
        counts.add(serde_json::from_value(p.info.counts.clone())?);
        let payload = p.payload.as_deref().unwrap_or_default();
        stored.push(serde_json::from_slice::<Stored>(payload).context("a feature partial")?);
    }
    let merged = merged(stored)?;
    if let Some(path) = &args.partial {
        let shards = crate::load::partial::shards_held(&partials);
        return write_partial(
            session,
            path,
            (first.agree, first.n, shards),
            &counts,
            &merged,
        );
    }
    let report = report(&agree, merged)?;
    crate::session::write_file(session, "--html", args.html.as_deref(), |w| {
        dashboard::page(w, &report)
    })?;
    crate::session::emit(session, out, &report, table::feature)?;
    counts.error(&agree.corpus.file)
}

/// The shards' features taken together: the statistics merged, every peak's context kept.
fn merged(stored: Vec<Stored>) -> Result<Stored> {
    let mut parts = stored.into_iter();
    let mut whole = parts.next().context("no partials")?;
    for part in parts {
        anyhow::ensure!(
            part.hook == whole.hook && part.features.len() == whole.features.len(),
            "the partials hold other features"
        );
        whole.texts_run += part.texts_run;
        for (w, p) in whole.features.iter_mut().zip(part.features) {
            let mut shown: HashMap<usize, (String, Vec<String>)> = HashMap::new();
            for f in [&*w, &p] {
                shown.extend(f.stats.peaks.iter().map(|k| k.text).zip(f.shown.clone()));
            }
            w.stats.merge(p.stats);
            w.shown = (w.stats.peaks.iter())
                .map(|k| shown.remove(&k.text).context("a peak's context"))
                .collect::<Result<Vec<_>>>()?;
        }
    }
    Ok(whole)
}

/// The report one run prints, from the merged features.
fn report(agree: &Agreement, merged: Stored) -> Result<FeatureReport> {
    let c = &agree.corpus;
    let features = (merged.features.into_iter())
        .map(|f| {
            let shown: HashMap<usize, &(String, Vec<String>)> =
                f.stats.peaks.iter().map(|k| k.text).zip(&f.shown).collect();
            let corpus = super::feature::corpus_row(&f.stats, merged.texts_run, |p| {
                Ok(shown[&p.text].clone())
            })?;
            Ok(FeatureRow {
                corpus: Some(corpus),
                ..f.row
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FeatureReport {
        header: Header::new(&c.model, c.revision.clone(), None),
        sae: agree.sae.clone(),
        hook: merged.hook,
        features,
    })
}

/// A feature partial of `stored` at `path`, with what its shards agreed on (`agree`, N,
/// the shards it holds) and `counts`.
fn write_partial(
    session: &Session,
    path: &Path,
    at: (serde_json::Value, usize, BTreeSet<usize>),
    counts: &LineCounts,
    stored: &Stored,
) -> Result<()> {
    let payload = serde_json::to_vec(stored)?;
    shards::write_partial(session, path, PassKind::Feature, at, (counts, payload))
}
