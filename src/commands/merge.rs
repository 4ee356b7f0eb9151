//! `merge PARTIAL…`: a corpus pass run in shards (`--shard K/N --partial FILE`) put back
//! together: the partials are read and checked (one kind of pass, the same settings and N,
//! no shard twice, every shard unless `--partial` writes a merge of some), and the pass's
//! own merge writes and prints what one run over the whole corpus would.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::cli::MergeArgs;
use crate::load::partial::{self, Partial, PassKind};
use crate::session::Session;

pub fn run(session: &Session, args: &MergeArgs, out: &mut dyn Write) -> Result<()> {
    let partials = (args.partials.iter())
        .map(|p| Partial::read(p))
        .collect::<Result<Vec<_>>>()?;
    let paths: Vec<&Path> = args.partials.iter().map(|p| p.as_path()).collect();
    partial::check_merge(&paths, &partials, args.partial.is_none())?;
    match partials[0].info.kind {
        PassKind::LensFit => super::lens_fit::merge(session, args, partials, out),
        PassKind::Score => super::score_shards::merge(session, args, partials, out),
    }
}
