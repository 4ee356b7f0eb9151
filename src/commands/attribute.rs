//! `attribute`: direct logit attribution. The residual stream at a position is a sum of
//! components (embeddings, each head's output, each attention bias, each MLP); with ln_f's
//! scale frozen from the real run, each one's share of the answer's logit is exact and the
//! shares add up to it.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::attribution::attribute;
use crate::cli::AttributeArgs;
use crate::error::usage;
use crate::model::{CaptureSpec, NoLogits, Request};
use crate::render::causal::grids as printer;
use crate::reports::{AttributeReport, ComponentValue};
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{check_finite, check_index, emit, one_token, write_svg, Built, Session};

pub fn run(session: &Session, args: &AttributeArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?;
    write_svg(session, args.svg.as_deref(), |w| {
        printer::attribute_svg(w, &built.report, crate::session::grid_style(&args.figure))
    })?;
    emit(session, out, &built.report, |out, r| {
        printer::attribute(out, r, session.output.palette)
    })?;
    built.finish()
}

/// The report `attribute` prints.
pub fn build(session: &Session, args: &AttributeArgs) -> Result<Built<AttributeReport>> {
    let cfg = session.config()?;
    let (prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::STRICT)?;
    if prepared.texts.len() > 1 {
        return Err(usage("attribute explains one text; give one TEXT"));
    }
    let Texts { tokenizer, .. } = &prepared;
    let answer = one_token(tokenizer, "answer", &args.answer)?;
    let wrong = match &args.wrong {
        Some(w) => Some(one_token(tokenizer, "wrong", w)?),
        None => None,
    };
    let req = Request {
        capture: CaptureSpec::default(),
        logits: NoLogits,
    };
    let Computed { text, ids, .. } = prepared.forward(&model, &req)?.remove(0);
    let position = args.position.unwrap_or(ids.len() - 1);
    check_index(
        "position",
        position,
        ids.len(),
        "token positions",
        "the text",
    )?;
    let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let a = attribute(
        &model,
        &input,
        position,
        answer.id,
        wrong.as_ref().map(|w| w.id),
    )?;
    let total = a.components.iter().map(|c| c.3).sum::<f64>() + a.constant;
    let problem = check_finite(&model, &input, [total, a.logit as f64])?;
    let report = AttributeReport {
        header: session.header(Some(text))?,
        input_ids: ids.to_vec(),
        position,
        answer,
        wrong,
        components: a
            .components
            .into_iter()
            .map(|(name, layer, head, value)| ComponentValue {
                name,
                layer,
                head,
                value,
            })
            .collect(),
        constant: a.constant,
        total,
        logit: a.logit,
    };
    Ok(Built { report, problem })
}
