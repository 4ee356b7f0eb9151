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
use crate::load::partial::{Partial, PartialInfo, PassKind};
use crate::render::format::printer::{write_envelope, Format};
use crate::reports::Header;
use crate::session::Session;

/// What a score's lines depend on besides their texts: partials must agree on all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Agreement {
    version: String,
    model: String,
    revision: Option<String>,
    prepend_bos: bool,
    dtype: String,
    top_k: Option<u32>,
    truncate: String,
    max_length: String,
    /// `--file` as messages name it, and its contents' SHA-256.
    file: String,
    corpus_sha256: String,
}

/// A shard's counts: its texts, the lines that could not be run (with why), and the id
/// that pads a batch (for `--json`'s envelope).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counts {
    texts: usize,
    not_run: Vec<(usize, String)>,
    pad: u32,
}

fn agreement(session: &Session, args: &ScoreArgs) -> Result<Agreement> {
    let Some(file) = args.input.file.as_deref().filter(|_| args.input.lines) else {
        return Err(usage(
            "--partial splits a corpus of lines: give --file F --lines",
        ));
    };
    if args.steer.sae.sae.is_some() || args.steer.jlens.is_some() {
        return Err(usage("--partial: a steered score does not run in shards"));
    }
    Ok(Agreement {
        version: env!("CARGO_PKG_VERSION").into(),
        model: session.model_name.clone(),
        revision: session.header(None)?.revision,
        prepend_bos: session.prepend_bos,
        dtype: format!("{:?}", session.dtype),
        top_k: args.top_k,
        truncate: format!("{:?}", args.input.truncate),
        max_length: format!("{:?}", args.input.max_length),
        file: format!("--file {}", file.display()),
        corpus_sha256: crate::load::partial::sha256_hex(file)?,
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
    if kept(path, &agree, shard) {
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
        texts: done.lines.len(),
        not_run: done.not_run,
        pad: done.pad,
    };
    let at = (serde_json::to_value(&agree)?, shard.n, [shard.k].into());
    write_partial(session, path, at, &counts, &entries)
}

/// Whether the partial at `path` holds `shard` scored with `agree`'s settings.
fn kept(path: &Path, agree: &Agreement, shard: Shard) -> bool {
    let Ok(agree) = serde_json::to_value(agree) else {
        return false;
    };
    crate::load::partial::holding(path, PassKind::Score, (shard.k, shard.n), &agree).is_some()
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
        counts.texts += c.texts;
        counts.not_run.extend(c.not_run);
        counts.pad = c.pad;
        entries.extend(payload_lines(p.payload.as_deref().unwrap_or_default())?);
    }
    entries.sort_by_key(|(line, _)| *line);
    counts.not_run.sort_by_key(|(line, _)| *line);
    if let Some(path) = &args.partial {
        let shards: BTreeSet<usize> = (partials.iter())
            .flat_map(|p| p.info.shards.iter().copied())
            .collect();
        let at = (first.agree.clone(), first.n, shards);
        return write_partial(session, path, at, &counts, &entries);
    }
    print(session, out, &agree, (&entries, &counts))?;
    not_run(&agree, &counts)
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
            let header = Header::new(&agree.model, agree.revision.clone(), None);
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
    (agree, n, shards): (serde_json::Value, usize, BTreeSet<usize>),
    counts: &Counts,
    entries: &[(usize, Vec<u8>)],
) -> Result<()> {
    let mut payload = Vec::new();
    for (line, entry) in entries {
        payload.extend_from_slice(format!("{line}\t").as_bytes());
        payload.extend_from_slice(entry);
        payload.push(b'\n');
    }
    let info = PartialInfo {
        kind: PassKind::Score,
        agree,
        n,
        shards,
        counts: serde_json::to_value(counts)?,
    };
    let bytes = Partial {
        info,
        sums: Vec::new(),
        payload: Some(payload),
    }
    .to_bytes()?;
    crate::session::write_file(session, "--partial", Some(path), |w| w.write_all(&bytes))
}

/// The error one run over every line ends with when some could not be run (each named on
/// stderr), as `Texts::not_run` says it.
fn not_run(agree: &Agreement, counts: &Counts) -> Result<()> {
    let Some((line, _)) = counts.not_run.first() else {
        return Ok(());
    };
    for (_, why) in &counts.not_run {
        eprintln!("not run: {why}");
    }
    let (n, k) = (counts.texts, counts.not_run.len());
    let name = format!("line {line} of {}", agree.file);
    let which = match k {
        1 => name,
        _ => format!("{name}, …"),
    };
    anyhow::bail!("{k} of {n} texts were not run ({which}); every other text's output is written")
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
