//! `patch`: activation patching. Each run is the corrupt text with one activation (a layer
//! and position, a head, a part of a head) taken from the clean run, or with `--path` one
//! edge from a sender head patched; the metric is the logit difference of the two answers
//! at the last position.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::edges::path_patch;
use crate::analysis::grad::check_differentiable;
use crate::analysis::metric::Measure;
use crate::analysis::patching::{attribution_patch, patch, restored, share_span, Patching, Site};
use crate::cli::{PatchArgs, PatchMethod, PathTo};
use crate::dist::pearson;
use crate::error::usage;
use crate::model::Config;
use crate::model::Gpt2;
use crate::render::causal::grids as printer;
use crate::reports::{Grid, MetricSpec, PatchReport, PatchSitesReport};
use crate::session::flags;
use crate::session::metric::pair_measure;
use crate::session::progress::Bar;
use crate::session::{
    check_finite, decoded, emit, emit_parts, layer_head, pair, pair_texts, write_svg, Built,
    Session,
};
use crate::tokenizer::Tokenizer;

/// The `--site` values as sites, each once, in the order given.
fn sites(args: &PatchArgs) -> Result<Vec<Site>> {
    let mut sites = Vec::new();
    for site in &args.site {
        let site = flags::site(*site);
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
    metric: &Measure,
    sites: &[Site],
    (args, progress): (&PatchArgs, &mut Bar),
) -> Result<Grids> {
    let by_position = args.by_position;
    let exact = match args.method {
        PatchMethod::Attribution => sites.iter().map(|_| None).collect(),
        _ => (sites.iter())
            .map(|&site| {
                patch(model, clean, corrupt, metric, site, by_position, progress).map(Some)
            })
            .collect::<Result<_>>()?,
    };
    let estimates = match args.method {
        PatchMethod::Exact => sites.iter().map(|_| None).collect(),
        _ => attribution_patch(model, clean, corrupt, metric, sites, by_position)?
            .into_iter()
            .map(Some)
            .collect(),
    };
    Ok((exact, estimates))
}

/// What every report of one run shares: the texts, tokens and metric.
struct Shared {
    report: PatchReport,
    measure: Measure,
}

/// `--metric` of `--answer` (minus `--wrong`).
fn shared(
    session: &Session,
    tokenizer: &Tokenizer,
    args: &PatchArgs,
    (clean, measure, metric): (&[u32], Measure, MetricSpec),
) -> Result<Shared> {
    let (clean_text, corrupt_text) = pair_texts(tokenizer, &args.pair)?;
    let report = PatchReport {
        header: session.header(Some(&clean_text))?,
        clean: clean_text,
        corrupt: corrupt_text,
        tokens: decoded(tokenizer, clean)?,
        answer: metric.one_answer(),
        wrong: metric.wrong.clone(),
        metric,
        site: String::new(),
        method: flags::patch_method(args.method),
        path: None,
        clean_metric: f32::NAN,
        corrupt_metric: f32::NAN,
        clean_logit_diff: None,
        corrupt_logit_diff: None,
        shares_defined: false,
        correlation: None,
        axes: vec![],
        shape: vec![],
        values: None,
        estimates: None,
        restored: None,
        restored_estimates: None,
    };
    Ok(Shared { report, measure })
}

pub fn run(session: &Session, args: &PatchArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?;
    if let [report] = built.report.as_slice() {
        write_svg(session, args.svg.as_deref(), |w| {
            printer::patch_svg(w, report, crate::session::grid_style(&args.figure))
        })?;
    }
    let Built { report, problem } = built;
    print(session, out, report)?;
    problem.map_or(Ok(()), Err)
}

/// The reports `patch` prints: one per site, or the path patch's one.
pub fn build(session: &Session, args: &PatchArgs) -> Result<Built<Vec<PatchReport>>> {
    let cfg = session.config()?;
    let tokenizer = session.tokenizer()?;
    let (measure, spec) = pair_measure(&tokenizer, &args.pair, args.metric)?;
    let (clean, corrupt) = pair(session, &tokenizer, &args.pair, (cfg, measure.forced()))?;
    let shared = shared(session, &tokenizer, args, (&clean, measure, spec))?;
    let sender = args
        .path
        .as_deref()
        .map(|p| sender(p, cfg, args.to, session))
        .transpose()?;
    let sites = sites(args)?;
    let model = session.model(cfg, cfg.n_layer)?;
    if args.method != PatchMethod::Exact {
        check_differentiable(&model).map_err(|e| usage(format!("--method: {e}")))?;
    }
    let row =
        |ids: &[u32]| -> Result<Tensor> { Ok(Tensor::new(ids, model.device())?.unsqueeze(0)?) };
    let ids = (&row(&clean)?, &row(&corrupt)?);
    let mut progress = Bar::new(session, "patch");
    let reports = match sender {
        Some(sender) => {
            let (to, _) = flags::path_to(args.to);
            let (m, bar) = (&shared.measure, &mut progress);
            let p = path_patch(&model, ids.0, ids.1, m, sender, to, bar)?;
            vec![path_report(&shared.report, sender, args.to, p)]
        }
        None => {
            let with = (args, &mut progress);
            let (exact, estimates) = grids(&model, ids, &shared.measure, &sites, with)?;
            (sites.iter().zip(exact).zip(estimates))
                .map(|((&site, exact), estimate)| {
                    site_report(&shared.report, site, args.by_position, exact, estimate)
                })
                .collect()
        }
    };
    let cells = reports.iter().flat_map(|r| {
        let grids = r.values.iter().chain(&r.estimates);
        [r.clean_metric, r.corrupt_metric]
            .into_iter()
            .chain(grids.flat_map(|g| g.values.iter().copied().filter(|v| !v.is_nan())))
    });
    let problem = check_finite(&model, ids.0, cells.map(|v| v as f64))?;
    Ok(Built {
        report: reports,
        problem,
    })
}

/// `--path L.H` as (layer, head), checked against the model and `--to`.
fn sender(spec: &str, cfg: &Config, to: PathTo, session: &Session) -> Result<(usize, usize)> {
    let (l, h) = layer_head("path", spec, cfg, &session.model_name)?;
    if to != PathTo::Logits && l + 1 >= cfg.n_layer {
        return Err(usage(format!(
            "--path {spec} is in the last layer: no head after it reads it; try --to logits"
        )));
    }
    Ok((l, h))
}

/// The report of a path patch: the receivers' grid (or the one direct effect).
fn path_report(
    shared: &PatchReport,
    sender: (usize, usize),
    to: PathTo,
    p: Patching,
) -> PatchReport {
    let (clean, corrupt) = (p.clean, p.corrupt);
    let (_, to) = flags::path_to(to);
    with_shares(
        PatchReport {
            site: "path".into(),
            method: "exact",
            path: Some(crate::reports::PathSpec {
                sender: format!("L{}H{}", sender.0, sender.1),
                to,
            }),
            axes: match to {
                "logits" => vec![],
                _ => vec!["layer", "head"],
            },
            shape: p.shape.clone(),
            values: Some(grid(p)),
            ..shared.clone()
        }
        .with_metric(clean, corrupt),
    )
}

fn grid(p: Patching) -> Grid {
    Grid {
        shape: p.shape,
        values: p.values,
    }
}

/// One site's report: `shared` (what every site's report holds) with its grids.
fn site_report(
    shared: &PatchReport,
    site: Site,
    by_position: bool,
    exact: Option<Patching>,
    estimate: Option<Patching>,
) -> PatchReport {
    let first = exact
        .as_ref()
        .or(estimate.as_ref())
        .expect("one method runs");
    let (clean, corrupt) = (first.clean, first.corrupt);
    let correlation = match (&exact, &estimate) {
        (Some(e), Some(a)) => {
            let (x, y): (Vec<f32>, Vec<f32>) = (e.values.iter().zip(&a.values))
                .zip(&e.is_run)
                .filter(|(_, &run)| run)
                .map(|((&x, &y), _)| (x, y))
                .unzip();
            pearson(&x, &y)
        }
        _ => None,
    };
    let mut axes = vec!["layer"];
    axes.extend(site.axes(by_position));
    with_shares(
        PatchReport {
            site: site.as_str().to_string(),
            correlation,
            axes,
            shape: first.shape.clone(),
            values: exact.map(grid),
            estimates: estimate.map(grid),
            ..shared.clone()
        }
        .with_metric(clean, corrupt),
    )
}

/// `r` with each grid's share of the clean run restored.
fn with_shares(r: PatchReport) -> PatchReport {
    let of = |g: &Option<Grid>| {
        g.as_ref().map(|g| Grid {
            shape: g.shape.clone(),
            values: restored(&g.values, r.clean_metric, r.corrupt_metric),
        })
    };
    PatchReport {
        restored: of(&r.values),
        restored_estimates: of(&r.estimates),
        shares_defined: share_span(r.clean_metric, r.corrupt_metric).is_some(),
        ..r
    }
}

/// One site: its report as every command prints one. Several: one report whose `sites`
/// holds theirs (`--jsonl`: one a line).
fn print(session: &Session, out: &mut dyn Write, mut reports: Vec<PatchReport>) -> Result<()> {
    if reports.len() == 1 {
        let table =
            |out: &mut dyn Write, r: &PatchReport| printer::patch(out, r, session.output.palette);
        return emit(session, out, &reports.remove(0), table);
    }
    let whole = |sites: Vec<PatchReport>| PatchSitesReport {
        header: sites[0].header.clone(),
        sites,
    };
    emit_parts(session, out, reports, whole, |out, r| {
        printer::patch_sites(out, r, session.output.palette)
    })
}
