//! `info`: configuration, parameter count and the tensors of the checkpoint, read from the
//! checkpoint's headers without loading the weights.

use std::io::Write;

use anyhow::Result;

use crate::cli::InfoArgs;
use crate::load::checkpoint::{Checkpoint, KeyLayout};
use crate::render::tokens::table;
use crate::reports::{InfoReport, TensorRow};
use crate::session::{emit, Session};

pub fn run(session: &Session, args: &InfoArgs, out: &mut dyn Write) -> Result<()> {
    emit(session, out, &build(session, args)?, table::info)
}

/// The report `info` prints.
pub fn build(session: &Session, _: &InfoArgs) -> Result<InfoReport> {
    let (cfg, raw_config) = (session.config()?, session.raw_config()?);
    let ckpt = session.checkpoint()?;
    let path = ckpt.path();
    let tensors: Vec<TensorRow> = ckpt
        .tensors()
        .iter()
        .map(|t| TensorRow {
            name: t.name.clone(),
            shape: t.shape.clone(),
            // As every other command spells dtypes (candle's names: f32, bf16, u8).
            dtype: t.dtype.to_lowercase(),
            buffer: Checkpoint::is_buffer(&t.name),
        })
        .collect();
    // A tied head's lm_head.weight stored next to wte is the same matrix, not more
    // parameters; an untied one is (config.json's tie_word_embeddings: false).
    let parameters = tensors
        .iter()
        .filter(|t| !t.buffer && (!cfg.tie_word_embeddings || !t.name.ends_with("lm_head.weight")))
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    Ok(InfoReport {
        header: session.header(None)?,
        config: raw_config,
        parameters,
        layout: match ckpt.layout() {
            KeyLayout::Prefixed => "transformer.* keys (save_pretrained)".into(),
            KeyLayout::Bare => "bare keys (original GPT-2 repositories)".into(),
        },
        checkpoint: path.display().to_string(),
        format: ckpt.format().describe().into(),
        checkpoint_bytes: ckpt.files().map(|(_, len)| len).sum(),
        files: ckpt.files().map(|(p, _)| p.display().to_string()).collect(),
        tensors,
    })
}
