//! `next`: the top-k next tokens after the text, and the shapes the data went through.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use super::{check_top_k, emit, input_ids, predictions, Prepared, Session};
use crate::cli::NextArgs;
use crate::model::{BlockHook, CaptureSpec, Hook, Logits, Request};
use crate::render::table;
use crate::report::{NextReport, Stage};

pub fn run(session: &Session, args: &NextArgs, out: &mut dyn Write) -> Result<()> {
    let Prepared {
        text,
        cfg,
        tokenizer,
        ids,
    } = session.prepare(&args.input)?;
    let top_k = check_top_k(&args.top_k, &cfg, &session.model_name)?;
    let model = session.model(&cfg, cfg.n_layer)?;

    let input = input_ids(&ids, model.device())?; // (1, T)
    let req = Request {
        capture: CaptureSpec::new([Hook::Block(0, BlockHook::ResidPre), Hook::LnFinal]),
        logits: Logits::Last,
    };
    let output = model.forward(&input, &req)?;
    let logits = output.logits.expect("Logits::Last yields logits"); // (1, 1, V)
    let embeddings = output
        .activations
        .get(Hook::Block(0, BlockHook::ResidPre))?; // (1, T, C)
    let hidden = output.activations.get(Hook::LnFinal)?; // (1, T, C)

    let t = ids.len();
    let v = cfg.vocab_size;
    let stage = |name: &str, shape: Vec<usize>, t: &Tensor, note: String| Stage {
        name: name.to_string(),
        shape,
        dtype: t.dtype().as_str().to_string(),
        note,
    };
    let stages = vec![
        stage(
            "input_ids",
            input.dims().to_vec(),
            &input,
            "token ids".into(),
        ),
        stage(
            "embeddings",
            embeddings.dims().to_vec(),
            embeddings,
            "wte[id] + wpe[position], the input of block 0".into(),
        ),
        stage(
            "hidden states",
            hidden.dims().to_vec(),
            hidden,
            format!("after {} blocks and ln_f", cfg.n_layer),
        ),
        stage(
            "logits",
            vec![1, t, v],
            &logits,
            format!(
                "hidden · wteᵀ; only the last position is computed ({} values)",
                logits.elem_count()
            ),
        ),
    ];
    let report = NextReport {
        header: session.header(Some(&text)),
        input_ids: ids,
        stages,
        predictions: predictions(&tokenizer, &logits.flatten_all()?, top_k)?,
    };
    emit(session, out, &report, table::next)
}
