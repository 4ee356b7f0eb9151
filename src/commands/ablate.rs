//! `ablate`: remove heads (their `hook_z`) or MLPs (`hook_mlp_out`), by zero or by their
//! mean over the text, and compare the next-token prediction before and after; `--sweep`
//! removes every head in turn.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};

use super::texts::{Computed, Texts};
use super::{
    check_finite, check_index, check_top_k, emit, layer_head, one_token, predictions, write_svg,
    Session,
};
use crate::cli::{AblateArgs, AblateMode};
use crate::dist;
use crate::dist::kl;
use crate::error::usage;
use crate::model::circuits::{ablate, ablate_each_head, Ablation, Component};
use crate::model::{CaptureSpec, Config, Gpt2, LastLogits, Request};
use crate::render::circuits as printer;
use crate::reports::{AblateReport, NamedToken, SweepReport};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &AblateArgs, out: &mut dyn Write) -> Result<()> {
    let (cfg, _) = session.config()?;
    let top_k = check_top_k(&args.top_k, &cfg, &session.model_name)?;
    let components = what_to_remove(args, &cfg, &session.model_name)?;
    let (prepared, model) = session.prepare_and_load(&args.input, &cfg, cfg.n_layer)?;
    if prepared.texts.len() > 1 {
        return Err(usage("ablate runs one text; give one TEXT"));
    }
    let Texts { tokenizer, .. } = &prepared;
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    let Computed { text, ids, .. } = prepared.forward(&model, &req)?.remove(0);
    let input = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let mode = match args.mode {
        AblateMode::Zero => Ablation::Zero,
        AblateMode::Mean => Ablation::Mean,
    };
    let (before, after) = ablate(&model, &input, &components, mode)?;
    let before_v: Vec<f32> = before.to_dtype(DType::F32)?.to_vec1()?;
    let answer = answer(tokenizer, args, &before_v)?;
    let logprob_before = dist::log_prob(&before_v, answer.id as usize);
    let problem = check_finite(&model, &input, before_v.iter().map(|&v| v as f64))?;
    if args.sweep {
        let cfg = &cfg;
        let sweep = Sweep {
            session,
            args,
            cfg,
            text,
            ids,
        };
        sweep.run(out, &model, &input, (answer, logprob_before), mode)?;
        return problem.map_or(Ok(()), Err);
    }
    let after_v: Vec<f32> = after.to_dtype(DType::F32)?.to_vec1()?;
    let report = AblateReport {
        header: session.header(Some(text))?,
        input_ids: ids.to_vec(),
        logprob_before,
        logprob_after: dist::log_prob(&after_v, answer.id as usize),
        answer,
        ablated: components.iter().map(name).collect(),
        mode: mode_name(mode).into(),
        kl: kl(&before_v, &after_v),
        before: predictions(tokenizer, &before, top_k)?,
        after: predictions(tokenizer, &after, top_k)?,
    };
    emit(session, out, &report, printer::ablate)?;
    problem.map_or(Ok(()), Err)
}

/// `--answer`, or the top prediction before the ablation.
fn answer(tokenizer: &Tokenizer, args: &AblateArgs, before: &[f32]) -> Result<NamedToken> {
    if let Some(a) = &args.answer {
        return one_token(tokenizer, "answer", a);
    }
    let id = dist::top_k(before, 1)[0] as u32;
    let token = tokenizer.token_text(id)?;
    Ok(NamedToken { id, token })
}

/// The components to remove, checked against the model and the flags.
fn what_to_remove(args: &AblateArgs, cfg: &Config, model: &str) -> Result<Vec<Component>> {
    let components = components(args, cfg, model)?;
    if components.is_empty() && !args.sweep {
        return Err(usage(
            "name what to remove: --head L.H or --mlp L (repeatable), or --sweep for every head",
        ));
    }
    // clap leaves `requires = "sweep"` unchecked once an argument --sweep conflicts with is
    // given.
    if args.svg.is_some() && !args.sweep {
        return Err(usage(
            "--svg draws --sweep's layer × head grid; add --sweep (and drop --head and --mlp)",
        ));
    }
    Ok(components)
}

/// How the report names an ablation.
fn mode_name(mode: Ablation) -> &'static str {
    match mode {
        Ablation::Zero => "zero",
        Ablation::Mean => "mean",
    }
}

/// How the report names a component: `L1H2`, `L3.mlp`.
fn name(c: &Component) -> String {
    match c {
        Component::Head(l, h) => format!("L{l}H{h}"),
        Component::Mlp(l) => format!("L{l}.mlp"),
    }
}

/// `--sweep`: every head ablated in turn, the answer's log-probability change each.
struct Sweep<'a> {
    session: &'a Session,
    args: &'a AblateArgs,
    cfg: &'a Config,
    text: &'a str,
    ids: &'a [u32],
}

impl Sweep<'_> {
    fn run(
        &self,
        out: &mut dyn Write,
        model: &Gpt2,
        input: &Tensor,
        (answer, logprob_before): (NamedToken, f64),
        mode: Ablation,
    ) -> Result<()> {
        let rows: Vec<Vec<f32>> = ablate_each_head(model, input, mode)?
            .to_dtype(DType::F32)?
            .to_vec2()?;
        let change = |r: &Vec<f32>| dist::log_prob(r, answer.id as usize) - logprob_before;
        let values = (rows.chunks(self.cfg.n_head))
            .map(|layer| layer.iter().map(change).collect())
            .collect();
        let session = self.session;
        let report = SweepReport {
            header: session.header(Some(self.text))?,
            input_ids: self.ids.to_vec(),
            answer,
            mode: mode_name(mode).into(),
            logprob_before,
            values,
        };
        write_svg(session, self.args.svg.as_deref(), |w| {
            printer::sweep_svg(w, &report, super::grid_style(&self.args.figure))
        })?;
        emit(session, out, &report, |out, r| {
            printer::sweep(out, r, session.palette)
        })
    }
}

/// `--head L.H` and `--mlp L`, checked against the model.
fn components(args: &AblateArgs, cfg: &Config, model: &str) -> Result<Vec<Component>> {
    let mut out = Vec::new();
    for spec in &args.heads {
        let (l, h) = layer_head("head", spec, cfg, model)?;
        out.push(Component::Head(l, h));
    }
    for &l in &args.mlps {
        check_index("mlp", l, cfg.n_layer, "layers", model)?;
        out.push(Component::Mlp(l));
    }
    Ok(out)
}
