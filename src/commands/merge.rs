//! `merge PARTIAL…`: a corpus pass run in shards (`--shard K/N --partial FILE`) put back
//! together: the partials are read and checked (one kind of pass, the same settings and N,
//! no shard twice, every shard unless `--partial` writes a merge of some), and the pass's
//! own merge writes and prints what one run over the whole corpus would.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::cli::MergeArgs;
use crate::error::usage;
use crate::load::partial::{self, Partial, PassKind};
use crate::session::Session;

pub fn run(session: &Session, args: &MergeArgs, out: &mut dyn Write) -> Result<()> {
    let partials = (args.partials.iter())
        .map(|p| Partial::read(p))
        .collect::<Result<Vec<_>>>()?;
    let paths: Vec<&Path> = args.partials.iter().map(|p| p.as_path()).collect();
    let kind = partials[0].info.kind;
    check_outputs(kind, args)?;
    partial::check_merge(&paths, &partials, args.partial.is_none())?;
    match kind {
        PassKind::LensFit => super::lens_fit::merge(session, args, partials, out),
        PassKind::Score => super::score_shards::merge(session, args, partials, out),
        PassKind::Feature => super::feature_shards::merge(session, args, partials, out),
    }
}

/// The files a merge writes are the ones the pass's single run writes.
fn check_outputs(kind: PassKind, args: &MergeArgs) -> Result<()> {
    let refused = match kind {
        PassKind::LensFit => args
            .html
            .as_ref()
            .map(|_| "a lens (-o), not a page (--html)"),
        PassKind::Score => (args.output.as_ref().or(args.html.as_ref()))
            .map(|_| "no file (-o, --html): it prints --jsonl or --json"),
        PassKind::Feature => args.output.as_ref().map(|_| "a page (--html), not -o"),
    };
    match refused {
        Some(what) => Err(usage(format!("merge of {kind} partials writes {what}"))),
        None => Ok(()),
    }
}
