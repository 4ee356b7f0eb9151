//! `next`: the top-k next tokens after the text, and the shapes the data went through.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use super::{emit, encode_for_model, predictions, Session};
use crate::cli::NextArgs;
use crate::error::usage;
use crate::input::read_text;
use crate::model::{BlockHook, CaptureSpec, Hook, Logits, Request};
use crate::render::table;
use crate::report::{NextReport, Stage};

pub fn run(session: &Session, args: &NextArgs, out: &mut dyn Write) -> Result<()> {
    let text = read_text(&args.input)?;
    let (cfg, _) = session.config()?;
    let top_k = args.top_k as usize;
    if top_k > cfg.vocab_size {
        return Err(usage(format!(
            "--top-k {top_k} is out of range: {} has {} tokens, so 1..={}",
            session.model_name, cfg.vocab_size, cfg.vocab_size
        )));
    }
    let tokenizer = session.tokenizer()?;
    let ids = encode_for_model(&tokenizer, &cfg, &text)?;
    let model = session.model(&cfg, cfg.n_layer)?;

    let input = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?; // (1, T)
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
