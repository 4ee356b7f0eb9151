//! `patch`: activation patching. Each run is the corrupt text with one activation (a layer
//! and position, or a head) taken from the clean run; the metric is the logit difference
//! of the two answers at the last position.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use super::{check_finite, decoded, emit, one_token, write_svg, Session};
use crate::cli::{PatchArgs, PatchMethod, PatchSite};
use crate::dist::pearson;
use crate::error::usage;
use crate::model::circuits::{attribution_patch, patch, LogitDiff, Patching, Site};
use crate::model::grad::check_differentiable;
use crate::model::Config;
use crate::render::circuits as printer;
use crate::reports::PatchReport;
use crate::tokenizer::Tokenizer;

/// `--clean` and `--corrupt` as ids: the same number of tokens, within the model's limit.
fn pair(
    session: &Session,
    tokenizer: &Tokenizer,
    args: &PatchArgs,
    cfg: &Config,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let encode = |text: &str| session.ids(tokenizer, text);
    let (clean, corrupt) = (encode(&args.clean)?, encode(&args.corrupt)?);
    if clean.len() != corrupt.len() {
        return Err(usage(format!(
            "--clean is {} tokens ({}), --corrupt {} ({}); patching needs the same number",
            clean.len(),
            decoded(tokenizer, &clean)?.join("|"),
            corrupt.len(),
            decoded(tokenizer, &corrupt)?.join("|"),
        )));
    }
    if clean.is_empty() || clean.len() > cfg.n_positions {
        return Err(usage(format!(
            "--clean has {} tokens; patching needs 1 to {}",
            clean.len(),
            cfg.n_positions
        )));
    }
    Ok((clean, corrupt))
}

pub fn run(session: &Session, args: &PatchArgs, out: &mut dyn Write) -> Result<()> {
    let (cfg, _) = session.config()?;
    let tokenizer = session.tokenizer()?;
    let (clean, corrupt) = pair(session, &tokenizer, args, &cfg)?;
    let answer = one_token(&tokenizer, "answer", &args.answer)?;
    let wrong = one_token(&tokenizer, "wrong", &args.wrong)?;
    let site = match args.site {
        PatchSite::ResidPre => Site::ResidPre,
        PatchSite::AttnOut => Site::AttnOut,
        PatchSite::MlpOut => Site::MlpOut,
        PatchSite::Head => Site::Head,
    };
    let model = session.model(&cfg, cfg.n_layer)?;
    if args.method != PatchMethod::Exact {
        check_differentiable(&model).map_err(|e| usage(format!("--method: {e}")))?;
    }
    let row =
        |ids: &[u32]| -> Result<Tensor> { Ok(Tensor::new(ids, model.device())?.unsqueeze(0)?) };
    let metric = LogitDiff {
        answer: answer.id,
        wrong: wrong.id,
    };
    let (clean_ids, corrupt_ids) = (row(&clean)?, row(&corrupt)?);
    let run = |f: fn(&_, &_, &_, LogitDiff, Site) -> Result<Patching>| {
        f(&model, &clean_ids, &corrupt_ids, metric, site)
    };
    let exact = (args.method != PatchMethod::Attribution)
        .then(|| run(patch))
        .transpose()?;
    let estimate = (args.method != PatchMethod::Exact)
        .then(|| run(attribution_patch))
        .transpose()?;
    let first = exact
        .as_ref()
        .or(estimate.as_ref())
        .expect("one method runs");
    let shape = [first.values.len(), first.values[0].len()];
    let cells = exact
        .iter()
        .chain(&estimate)
        .flat_map(|p| p.values.iter().flatten());
    let problem = check_finite(
        &model,
        &clean_ids,
        [first.clean as f64, first.corrupt as f64]
            .into_iter()
            .chain(cells.map(|&v| v as f64)),
    )?;
    let correlation = match (&exact, &estimate) {
        (Some(e), Some(a)) => pearson(&e.values.concat(), &a.values.concat()),
        _ => None,
    };
    let report = PatchReport {
        header: session.header(Some(&args.clean))?,
        clean: args.clean.clone(),
        corrupt: args.corrupt.clone(),
        tokens: decoded(&tokenizer, &clean)?,
        answer,
        wrong,
        site: site.as_str().to_string(),
        method: match args.method {
            PatchMethod::Exact => "exact",
            PatchMethod::Attribution => "attribution",
            PatchMethod::Both => "both",
        },
        clean_logit_diff: first.clean,
        corrupt_logit_diff: first.corrupt,
        correlation,
        values: exact.map(|p| p.values),
        estimates: estimate.map(|p| p.values),
        shape,
    };
    write_svg(session, args.svg.as_deref(), |w| {
        printer::patch_svg(w, &report)
    })?;
    emit(session, out, &report, |out, r| {
        printer::patch(out, r, session.palette)
    })?;
    problem.map_or(Ok(()), Err)
}
