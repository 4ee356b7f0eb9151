//! `hooks`: every activation name with its shape, for this model's config.

use std::io::Write;

use anyhow::Result;

use crate::cli::HooksArgs;
use crate::model::hooks::Dim;
use crate::model::{Config, Hook};
use crate::render::tokens::table;
use crate::reports::{HookRow, HooksReport};
use crate::session::{emit, Session};

/// The hook's name and shape for a batch of `b` texts of `t` tokens (`None` when unknown).
pub fn hook_row(hook: Hook, cfg: &Config, b: usize, t: Option<usize>) -> HookRow {
    let shape = hook
        .dims(cfg)
        .into_iter()
        .map(|d| match (d, t) {
            // hook_pos_embed is shared across a batch.
            (Dim::Batch, _) if hook == Hook::PosEmbed => Some(1),
            (Dim::Batch, _) => Some(b),
            (Dim::Seq, t) => t,
            (Dim::Fixed(n), _) => Some(n),
        })
        .collect();
    HookRow {
        name: hook.to_string(),
        shape,
    }
}

pub fn run(session: &Session, args: &HooksArgs, out: &mut dyn Write) -> Result<()> {
    emit(session, out, &build(session, args)?, table::hooks)
}

/// The report `hooks` prints.
pub fn build(session: &Session, args: &HooksArgs) -> Result<HooksReport> {
    let cfg = session.config()?;
    let t = args.seq_len.map(|t| t as usize);
    if let Some(t) = t.filter(|&t| t > cfg.n_positions) {
        return Err(crate::error::usage(format!(
            "--seq-len {t} is out of range: {} sees 1 to {} positions",
            session.model_name, cfg.n_positions
        )));
    }
    Ok(HooksReport {
        header: session.header(None)?,
        seq_len: t,
        hooks: Hook::all(cfg)
            .into_iter()
            .map(|h| hook_row(h, cfg, 1, t))
            .collect(),
    })
}
