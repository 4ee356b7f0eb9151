//! Corpus passes split across machines: `--shard K/N`, `--partial FILE` and `merge`.

use std::path::PathBuf;

use clap::Args;

/// `--shard K/N`: the texts whose line index (from 0, every line of the file counted) is K
/// modulo N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    /// The whole corpus as one shard.
    pub const ALL: Shard = Shard { k: 0, n: 1 };

    /// Whether line `index` (from 0) is this shard's.
    pub fn has(self, index: usize) -> bool {
        index % self.n == self.k
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

pub(super) fn shard(s: &str) -> Result<Shard, String> {
    let bad = || format!("`{s}` is not K/N (shard K of N, K from 0 to N − 1)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n) = (k.trim().parse::<usize>(), n.trim().parse::<usize>());
    match (k, n) {
        (Ok(k), Ok(n)) if n >= 1 && k < n => Ok(Shard { k, n }),
        (Ok(k), Ok(n)) if n >= 1 => Err(format!("shard {k} of {n}: K must be below N")),
        _ => Err(bad()),
    }
}

/// The flags a corpus pass takes to run one shard of it.
#[derive(Debug, Args)]
#[command(next_help_heading = "Shards (a corpus pass across machines)")]
pub struct ShardArgs {
    /// Run only the lines whose index (from 0, every line of the file) is K modulo N
    #[arg(long, value_name = "K/N", value_parser = shard, requires = "partial")]
    pub shard: Option<Shard>,
    /// Write this shard's state (sums, counts, settings) to FILE, atomically, for `merge`;
    /// a FILE that already holds this shard with the same settings is kept and the run
    /// skipped (resume)
    #[arg(long, value_name = "FILE")]
    pub partial: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Partial files written by --partial (any order; partials of merges too)
    #[arg(value_name = "PARTIAL", required = true)]
    pub partials: Vec<PathBuf>,
    /// What the single run writes with -o (a lens for `lens fit`)
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "partial")]
    pub output: Option<PathBuf>,
    /// What the single run writes with --html (the dashboard page for `feature`)
    #[arg(long, value_name = "FILE", conflicts_with = "partial")]
    pub html: Option<PathBuf>,
    /// Write the merged state as a partial instead (a merge of some shards, for a tree of
    /// merges); the shards need not be all of them
    #[arg(long, value_name = "FILE")]
    pub partial: Option<PathBuf>,
}
