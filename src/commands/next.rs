//! `next`: the top-k next tokens after the text, and the shapes the data went through.

use std::io::Write;

use anyhow::Result;
use candle_core::DType;

use crate::cli::NextArgs;
use crate::model::{BlockHook, CaptureSpec, Config, Hook, LastLogits, Request};
use crate::render::tokens::table;
use crate::reports::{NextReport, ShapeStep, Steered};
use crate::session::steer::Steering;
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{check_top_k, predictions, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &NextArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    let top_k = check_top_k(args.top_k.top_k, cfg, &session.model_name)?;
    let steering = Steering::from_args(session, &args.steer, cfg)?;
    let (prepared, model) = session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::EACH)?;
    let Texts { cfg, tokenizer, .. } = &prepared;
    let req = Request {
        // The shapes are the model's to say: nothing is recorded just to be measured.
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    prepared.run(
        session,
        out,
        &model,
        &req,
        |row| {
            let ids = row.ids.to_vec();
            let mut report = build(session, cfg, tokenizer, row, top_k)?;
            if let Some(s) = &steering {
                report.steered = Some(Steered {
                    with: s.with(),
                    hook: s.hook.to_string(),
                    changes: s.describe(),
                    predictions: predictions(tokenizer, &s.last_logits(&model, &ids)?, top_k)?,
                });
            }
            Ok(report)
        },
        table::next,
    )
}

fn build(
    session: &Session,
    cfg: &Config,
    tokenizer: &Tokenizer,
    row: Computed<LastLogits>,
    top_k: usize,
) -> Result<NextReport> {
    let Computed {
        text, ids, output, ..
    } = row;
    let logits = output.logits; // (1, 1, V)
    let t = ids.len();
    // Every activation has the dtype the model computes in, as the logits do.
    let dtype = logits.dtype();
    let embeddings = Hook::Block(0, BlockHook::ResidPre).shape(cfg, 1, t); // (1, T, C)
    let hidden = Hook::LnFinalOut.shape(cfg, 1, t); // (1, T, C)

    let v = cfg.vocab_size;
    let stage = |name: &str, shape: Vec<usize>, dtype: DType, note: String| ShapeStep {
        name: name.to_string(),
        shape,
        dtype: dtype.as_str().to_string(),
        note,
    };
    let stages = vec![
        stage("input_ids", vec![1, t], DType::U32, "token ids".into()),
        stage(
            "embeddings",
            embeddings,
            dtype,
            "wte[id] + wpe[position], the input of block 0".into(),
        ),
        stage(
            "hidden states",
            hidden,
            dtype,
            format!("after {} blocks and ln_f", cfg.n_layer),
        ),
        stage(
            "logits",
            vec![1, t, v],
            logits.dtype(),
            format!(
                "hidden · {}ᵀ; only the last position is computed ({} values)",
                match cfg.tie_word_embeddings {
                    true => "wte",
                    false => "lm_head.weight",
                },
                logits.elem_count()
            ),
        ),
    ];
    Ok(NextReport {
        header: session.header(Some(text))?,
        input_ids: ids.to_vec(),
        stages,
        predictions: predictions(tokenizer, &logits.flatten_all()?, top_k)?,
        steered: None,
    })
}
