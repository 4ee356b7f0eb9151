//! `score --file F --lines --shard K/N --partial FILE` and the merge of its partials: each
//! shard's reports are kept as `score --jsonl` writes them, one line each with its line
//! number, and the merge writes them in line order, which is what one run over the whole
//! file prints with `--jsonl`; lines that could not be run end it with the same error.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::{MergeArgs, ScoreArgs, Shard};
use crate::error::usage;
use crate::load::partial::{Partial, PassKind};
use crate::render::format::printer::{write_envelope, Format};
use crate::reports::Header;
use crate::session::shards::{self, kept, CorpusSettings, LineCounts};
use crate::session::Session;

/// What a score's lines depend on besides their texts: partials must agree on all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Agreement {
    #[serde(flatten)]
    corpus: CorpusSettings,
    top_k: Option<u32>,
}

/// A shard's counts: its texts and the lines not run, and the id that pads a batch (for
/// `--json`'s envelope).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counts {
    #[serde(flatten)]
    lines: LineCounts,
    pad: u32,
}

fn agreement(session: &Session, args: &ScoreArgs) -> Result<Agreement> {
    let corpus = session.corpus_settings(&args.input)?;
    if args.steer.sae.sae.is_some() || args.steer.jlens.is_some() {
        return Err(usage("--partial: a steered score does not run in shards"));
    }
    Ok(Agreement {
        corpus,
        top_k: args.top_k,
    })
}

/// What a shard's run gives: its texts' `--jsonl` lines in input order, each text's line
/// number, and the lines that could not be run with why.
pub struct ShardRun {
    pub jsonl: Vec<u8>,
    pub lines: Vec<usize>,
    pub not_run: Vec<(usize, String)>,
    pub pad: u32,
}

/// Runs the shard (`run`, with a session that prints `--jsonl`) and writes its partial; a
/// partial at `path` that holds this shard with the same settings is kept.
pub fn partial(
    session: &Session,
    args: &ScoreArgs,
    path: &Path,
    run: impl FnOnce(&Session, Shard) -> Result<ShardRun>,
) -> Result<()> {
    let shard = args.shards.shard.unwrap_or(Shard::ALL);
    let agree = agreement(session, args)?;
    if kept(path, PassKind::Score, shard, &agree) {
        eprintln!(
            "{}: shard {shard} already scored with these settings; kept",
            path.display()
        );
        return Ok(());
    }
    let jsonl = crate::session::Output {
        format: Format::Jsonl,
        ..crate::session::Output::json()
    };
    let done = run(&session.with_output(jsonl), shard)?;
    let entries: Vec<&[u8]> = (done.jsonl.split(|&b| b == b'\n'))
        .filter(|l| !l.is_empty())
        .collect();
    anyhow::ensure!(
        entries.len() == done.lines.len(),
        "score wrote {} lines for {} texts",
        entries.len(),
        done.lines.len()
    );
    let entries: Vec<(usize, Vec<u8>)> = (done.lines.iter().copied())
        .zip(entries.into_iter().map(<[u8]>::to_vec))
        .collect();
    let counts = Counts {
        lines: LineCounts {
            texts: done.lines.len(),
            not_run: done.not_run,
        },
        pad: done.pad,
    };
    let at = (serde_json::to_value(&agree)?, shard.n, [shard.k].into());
    write_partial(session, path, at, &counts, &entries)
}

/// `merge` of score partials: every text's `--jsonl` line in line order (with `--partial`,
/// the merged partial), then, when some lines could not be run, the error one run ends with.
pub fn merge(
    session: &Session,
    args: &MergeArgs,
    partials: Vec<Partial>,
    out: &mut dyn Write,
) -> Result<()> {
    let first = &partials[0].info;
    let agree: Agreement = serde_json::from_value(first.agree.clone())
        .context("the partials' settings are not a score's")?;
    let mut counts = Counts::default();
    let mut entries: Vec<(usize, Vec<u8>)> = Vec::new();
    for p in &partials {
        let c: Counts = serde_json::from_value(p.info.counts.clone())?;
        counts.lines.add(c.lines);
        counts.pad = c.pad;
        entries.extend(payload_lines(p.payload.as_deref().unwrap_or_default())?);
    }
    entries.sort_by_key(|(line, _)| *line);
    if let Some(path) = &args.partial {
        let shards = crate::load::partial::shards_held(&partials);
        let at = (first.agree.clone(), first.n, shards);
        return write_partial(session, path, at, &counts, &entries);
    }
    print(session, out, &agree, (&entries, &counts))?;
    counts.lines.error(&agree.corpus.file)
}

/// The entries as one run prints them: `--jsonl` lines, or `--json`'s envelope.
fn print(
    session: &Session,
    out: &mut dyn Write,
    agree: &Agreement,
    (entries, counts): (&[(usize, Vec<u8>)], &Counts),
) -> Result<()> {
    match session.output.format {
        Format::Jsonl => {
            for (_, entry) in entries {
                out.write_all(entry)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Json => {
            let header = Header::new(&agree.corpus.model, agree.corpus.revision.clone(), None);
            let raw: Vec<&[u8]> = entries.iter().map(|(_, e)| e.as_slice()).collect();
            let ids = raw.iter().map(|e| input_ids(e)).collect::<Vec<_>>();
            write_envelope(out, &header, &raw, (&ids, counts.pad))?;
        }
        Format::Table | Format::Csv | Format::Tsv => {
            return Err(usage(
                "merge of score partials prints what `score --jsonl` or `--json` prints: give \
                 one of them",
            ))
        }
    }
    Ok(out.flush()?)
}

/// A score partial of `entries` (line number, `--jsonl` line) at `path`, with what its
/// shards agreed on (`agree`, N, the shards it holds) and `counts`.
fn write_partial(
    session: &Session,
    path: &Path,
    at: (serde_json::Value, usize, BTreeSet<usize>),
    counts: &Counts,
    entries: &[(usize, Vec<u8>)],
) -> Result<()> {
    let mut payload = Vec::new();
    for (line, entry) in entries {
        payload.extend_from_slice(format!("{line}\t").as_bytes());
        payload.extend_from_slice(entry);
        payload.push(b'\n');
    }
    shards::write_partial(session, path, PassKind::Score, at, (counts, payload))
}

/// A stored report's `input_ids` (none for a text not run).
fn input_ids(entry: &[u8]) -> Vec<u32> {
    let v: serde_json::Value = serde_json::from_slice(entry).unwrap_or_default();
    (v["input_ids"].as_array().into_iter().flatten())
        .filter_map(|x| x.as_u64().map(|x| x as u32))
        .collect()
}

/// The `line\tjson` lines of a score partial's payload.
fn payload_lines(payload: &[u8]) -> Result<Vec<(usize, Vec<u8>)>> {
    (payload.split(|&b| b == b'\n').filter(|l| !l.is_empty()))
        .map(|l| {
            let tab = l.iter().position(|&b| b == b'\t');
            let (line, entry) = tab.map(|t| (&l[..t], &l[t + 1..])).unwrap_or((&[], l));
            let line = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| anyhow::anyhow!("a score partial's line has no line number"))?;
            Ok((line, entry.to_vec()))
        })
        .collect()
}
