//! `attention`: the T×T attention probabilities of one head, one layer, or all layers.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};

use super::{check_index, emit, encode_for_model, Session};
use crate::cli::AttentionArgs;
use crate::input::read_text;
use crate::model::{BlockHook, CaptureSpec, Hook, Logits, Request};
use crate::render::table;
use crate::report::{AttentionReport, AttentionWeights};

pub fn run(session: &Session, args: &AttentionArgs, out: &mut dyn Write) -> Result<()> {
    let text = read_text(&args.input)?;
    let (cfg, _) = session.config()?;
    if let Some(l) = args.layer {
        check_index("layer", l, cfg.n_layer, "layers", &session.model_name)?;
    }
    if let Some(h) = args.head {
        check_index("head", h, cfg.n_head, "heads", &session.model_name)?;
    }
    let tokenizer = session.tokenizer()?;
    let ids = encode_for_model(&tokenizer, &cfg, &text)?;
    let layers: Vec<usize> = match args.layer {
        Some(l) => vec![l],
        None => (0..cfg.n_layer).collect(),
    };
    let model = session.model(&cfg, layers.last().map_or(0, |l| l + 1))?;

    let input = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?; // (1, T)
    let req = Request {
        capture: CaptureSpec::new(layers.iter().map(|&l| Hook::Block(l, BlockHook::Pattern)))
            .with_heads(args.head.map(|h| vec![h])),
        logits: Logits::None,
    };
    let output = model.forward(&input, &req)?;
    let mut per_layer = Vec::with_capacity(layers.len());
    for &l in &layers {
        let pattern = output.activations.get(Hook::Block(l, BlockHook::Pattern))?; // (1, nh', T, T)
        per_layer.push(pattern.squeeze(0)?.to_dtype(DType::F32)?.to_vec3::<f32>()?);
        // [nh'][T][T]
    }

    let t = ids.len();
    let (weights, shape) = match (args.layer, args.head) {
        (Some(_), Some(_)) => (
            AttentionWeights::Head(per_layer.remove(0).remove(0)),
            vec![t, t],
        ),
        (Some(_), None) => (
            AttentionWeights::Layer(per_layer.remove(0)),
            vec![cfg.n_head, t, t],
        ),
        // One head in every layer keeps the [L][H][T][T] nesting, with H = 1.
        (None, Some(_)) => (AttentionWeights::All(per_layer), vec![cfg.n_layer, 1, t, t]),
        (None, None) => (
            AttentionWeights::All(per_layer),
            vec![cfg.n_layer, cfg.n_head, t, t],
        ),
    };
    let tokens = ids
        .iter()
        .map(|&id| tokenizer.decode(&[id]))
        .collect::<Result<Vec<_>>>()?;
    let report = AttentionReport {
        header: session.header(Some(&text)),
        tokens,
        layer: args.layer,
        head: args.head,
        shape,
        weights,
    };
    emit(session, out, &report, table::attention)
}
