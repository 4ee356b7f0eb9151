//! What a shard of a corpus pass of lines (`score`, `feature`) must agree on with the
//! others besides its own settings, and whether a partial already holds the shard.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::{Shard, TextArgs};
use crate::error::usage;
use crate::load::partial::{self, PassKind};

use super::Session;

/// The model, how texts become tokens, and the corpus (`--file` as messages name it, and
/// its contents' SHA-256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusSettings {
    pub version: String,
    pub model: String,
    pub revision: Option<String>,
    pub prepend_bos: bool,
    pub dtype: String,
    pub truncate: String,
    pub max_length: String,
    pub file: String,
    pub corpus_sha256: String,
}

impl Session {
    /// The settings a shard of a pass over `input`'s lines shares with the others; a
    /// corpus that is not `--file F --lines` does not run in shards.
    pub fn corpus_settings(&self, input: &TextArgs) -> Result<CorpusSettings> {
        let Some(file) = input.file.as_deref().filter(|_| input.lines) else {
            return Err(usage(
                "--partial splits a corpus of lines: give --file F --lines",
            ));
        };
        Ok(CorpusSettings {
            version: env!("CARGO_PKG_VERSION").into(),
            model: self.model_name.clone(),
            revision: self.header(None)?.revision,
            prepend_bos: self.prepend_bos,
            dtype: format!("{:?}", self.dtype),
            truncate: format!("{:?}", input.truncate),
            max_length: format!("{:?}", input.max_length),
            file: format!("--file {}", file.display()),
            corpus_sha256: partial::sha256_hex(file)?,
        })
    }
}

/// Whether the partial at `path` holds `shard` of a `kind` pass run with the settings
/// `agree` (a shard done before, which a rerun keeps).
pub fn kept(path: &Path, kind: PassKind, shard: Shard, agree: &impl Serialize) -> bool {
    let Ok(agree) = serde_json::to_value(agree) else {
        return false;
    };
    partial::holding(path, kind, (shard.k, shard.n), &agree).is_some()
}

/// The texts of (a merge of) shards of a pass over lines, run or not, and the lines not
/// run with why, in line order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LineCounts {
    pub texts: usize,
    pub not_run: Vec<(usize, String)>,
}

impl LineCounts {
    /// Another shard's counts taken in.
    pub fn add(&mut self, other: LineCounts) {
        self.texts += other.texts;
        self.not_run.extend(other.not_run);
        self.not_run.sort_by_key(|(line, _)| *line);
    }

    /// The error one run over every line of `file` (`--file F`) ends with when some were
    /// not run.
    pub fn error(&self, file: &str) -> Result<()> {
        partial::not_run(file, self.texts, &self.not_run)
    }
}

/// Writes at `path` the partial of a `kind` pass over lines: what its shards agreed on
/// (`agree`, N, the shards it holds), its `counts` and its `payload`.
pub fn write_partial(
    session: &Session,
    path: &Path,
    kind: PassKind,
    (agree, n, shards): (serde_json::Value, usize, BTreeSet<usize>),
    (counts, payload): (&impl Serialize, Vec<u8>),
) -> Result<()> {
    let info = partial::PartialInfo {
        kind,
        agree,
        n,
        shards,
        counts: serde_json::to_value(counts)?,
    };
    let partial = partial::Partial {
        info,
        sums: Vec::new(),
        payload: Some(payload),
    };
    write(session, path, &partial)
}

/// Writes `partial` at `path` (`--partial`), atomically.
pub fn write(session: &Session, path: &Path, partial: &partial::Partial) -> Result<()> {
    let bytes = partial.to_bytes()?;
    super::write_file(session, "--partial", Some(path), |w| w.write_all(&bytes))
}
