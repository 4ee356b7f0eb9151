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
use crate::model::Gpt2;
use crate::render::circuits as printer;
use crate::render::printer::Format;
use crate::reports::{PatchReport, PatchSitesReport};
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

/// The `--site` values as sites, each once, in the order given.
fn sites(args: &PatchArgs) -> Result<Vec<Site>> {
    let mut sites = Vec::new();
    for site in &args.site {
        let site = match site {
            PatchSite::ResidPre => Site::ResidPre,
            PatchSite::AttnOut => Site::AttnOut,
            PatchSite::MlpOut => Site::MlpOut,
            PatchSite::Head => Site::Head,
        };
        if !sites.contains(&site) {
            sites.push(site);
        }
    }
    if sites.len() > 1 && args.svg.is_some() {
        return Err(usage(
            "--svg draws one site's grid; give one --site (or run once per site)",
        ));
    }
    Ok(sites)
}

/// Every site's exact grid and estimates, as `--method` asks: the estimates of all sites
/// come from one clean run and one corrupt run with its backward pass.
type Grids = (Vec<Option<Patching>>, Vec<Option<Patching>>);

fn grids(
    model: &Gpt2,
    (clean, corrupt): (&Tensor, &Tensor),
    metric: LogitDiff,
    sites: &[Site],
    method: PatchMethod,
) -> Result<Grids> {
    let exact = match method {
        PatchMethod::Attribution => sites.iter().map(|_| None).collect(),
        _ => sites
            .iter()
            .map(|&site| patch(model, clean, corrupt, metric, site).map(Some))
            .collect::<Result<_>>()?,
    };
    let estimates = match method {
        PatchMethod::Exact => sites.iter().map(|_| None).collect(),
        _ => attribution_patch(model, clean, corrupt, metric, sites)?
            .into_iter()
            .map(Some)
            .collect(),
    };
    Ok((exact, estimates))
}

pub fn run(session: &Session, args: &PatchArgs, out: &mut dyn Write) -> Result<()> {
    let (cfg, _) = session.config()?;
    let tokenizer = session.tokenizer()?;
    let (clean, corrupt) = pair(session, &tokenizer, args, &cfg)?;
    let answer = one_token(&tokenizer, "answer", &args.answer)?;
    let wrong = one_token(&tokenizer, "wrong", &args.wrong)?;
    let sites = sites(args)?;
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
    let (exact, estimates) = grids(
        &model,
        (&clean_ids, &corrupt_ids),
        metric,
        &sites,
        args.method,
    )?;
    let cells = exact.iter().chain(&estimates).flatten().flat_map(|p| {
        [p.clean, p.corrupt]
            .into_iter()
            .chain(p.values.iter().flatten().copied())
    });
    let problem = check_finite(&model, &clean_ids, cells.map(|v| v as f64))?;
    let shared = PatchReport {
        header: session.header(Some(&args.clean))?,
        clean: args.clean.clone(),
        corrupt: args.corrupt.clone(),
        tokens: decoded(&tokenizer, &clean)?,
        answer,
        wrong,
        site: String::new(),
        method: method_name(args.method),
        clean_logit_diff: f32::NAN,
        corrupt_logit_diff: f32::NAN,
        correlation: None,
        shape: [0, 0],
        values: None,
        estimates: None,
    };
    let reports: Vec<PatchReport> = (sites.iter().zip(exact).zip(estimates))
        .map(|((&site, exact), estimate)| site_report(&shared, site, exact, estimate))
        .collect();
    if let [report] = reports.as_slice() {
        write_svg(session, args.svg.as_deref(), |w| {
            printer::patch_svg(w, report)
        })?;
    }
    print(session, out, reports)?;
    problem.map_or(Ok(()), Err)
}

/// One site's report: `shared` (what every site's report holds) with its grids.
fn site_report(
    shared: &PatchReport,
    site: Site,
    exact: Option<Patching>,
    estimate: Option<Patching>,
) -> PatchReport {
    let first = exact
        .as_ref()
        .or(estimate.as_ref())
        .expect("one method runs");
    let correlation = match (&exact, &estimate) {
        (Some(e), Some(a)) => pearson(&e.values.concat(), &a.values.concat()),
        _ => None,
    };
    PatchReport {
        site: site.as_str().to_string(),
        clean_logit_diff: first.clean,
        corrupt_logit_diff: first.corrupt,
        correlation,
        shape: [first.values.len(), first.values[0].len()],
        values: exact.map(|p| p.values),
        estimates: estimate.map(|p| p.values),
        ..shared.clone()
    }
}

fn method_name(method: PatchMethod) -> &'static str {
    match method {
        PatchMethod::Exact => "exact",
        PatchMethod::Attribution => "attribution",
        PatchMethod::Both => "both",
    }
}

/// One site: its report as every command prints one. Several: tables one after another,
/// JSON Lines one report a line, and `--json` one object whose `sites` holds the reports.
fn print(session: &Session, out: &mut dyn Write, reports: Vec<PatchReport>) -> Result<()> {
    let table = |out: &mut dyn Write, r: &PatchReport| printer::patch(out, r, session.palette);
    if reports.len() == 1 {
        return emit(session, out, &reports[0], table);
    }
    if session.format == Format::Json {
        let report = PatchSitesReport {
            header: reports[0].header.clone(),
            sites: reports,
        };
        return emit(session, out, &report, |_, _| Ok(()));
    }
    let mut printer = session.printer(&[], &[], 0, &table)?;
    for (i, report) in reports.iter().enumerate() {
        if i > 0 && session.format == Format::Table {
            writeln!(out)?;
        }
        printer.print(out, report)?;
    }
    printer.finish(out)
}
