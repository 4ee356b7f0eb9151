//! `ablate`: remove heads (their `hook_z`) or MLPs (`hook_mlp_out`), by zero or by their
//! mean over the text, and compare the next-token prediction before and after; `--sweep`
//! removes every head in turn.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::ablation::{ablate, ablate_each_head, Ablation, Component};
use crate::analysis::metric::Quantity;
use crate::analysis::metric::{Bound, Kind, Measure};
use crate::cli::AblateArgs;
use crate::dist;
use crate::dist::kl;
use crate::error::usage;
use crate::model::{CaptureSpec, Config, Gpt2, LastLogits, Request};
use crate::render::causal::grids as printer;
use crate::reports::{AblateReport, Header, MetricSpec, SweepReport};
use crate::session::metric::{answer_tokens, measure, wrong_token};
use crate::session::progress::Bar;
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{
    check_finite, check_index, check_top_k, emit, layer_head, predictions, write_svg, Built,
    Session,
};
use crate::tokenizer::Tokenizer;

/// What `ablate` reports: the components removed together, or `--sweep`'s every head.
pub enum AblateOutput {
    Single(AblateReport),
    Sweep(SweepReport),
}

pub fn run(session: &Session, args: &AblateArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?;
    match &built.report {
        AblateOutput::Single(report) => emit(session, out, report, printer::ablate)?,
        AblateOutput::Sweep(report) => print_sweep(session, args, out, report)?,
    }
    built.finish()
}

/// The report `ablate` prints.
pub fn build(session: &Session, args: &AblateArgs) -> Result<Built<AblateOutput>> {
    let cfg = session.config()?;
    let top_k = check_top_k(args.top_k.top_k, cfg, &session.model_name)?;
    let components = what_to_remove(args, cfg, &session.model_name)?;
    let (prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::STRICT)?;
    if prepared.texts.len() > 1 {
        return Err(usage("ablate runs one text; give one TEXT"));
    }
    let Texts { tokenizer, .. } = &prepared;
    let req = Request {
        capture: CaptureSpec::default(),
        logits: LastLogits,
    };
    let Computed {
        text, ids, output, ..
    } = prepared.forward(&model, &req)?.remove(0);
    let (measure, spec) = metric(tokenizer, args, &output.logits)?;
    let input = forced_input(&model, ids, measure.forced(), cfg)?;
    let mode = crate::session::flags::ablation(args.mode);
    let tail = measure.positions();
    let (before, after) = ablate(&model, &input, &components, mode, tail)?; // (1, n, V)
    let runs = Runs::of(&measure, &before)?;
    let logits: Vec<f32> = before.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    let problem = check_finite(&model, &input, logits.iter().map(|&v| v as f64))?;
    let header = session.header(Some(text))?;
    if args.sweep {
        let bar = &mut Bar::new(session, "ablate");
        let each = ablate_each_head(&model, &input, (mode, tail), bar)?; // (L·H, n, V)
        let report = sweep(
            &runs,
            (&before, &each),
            cfg.n_head,
            (header, ids, spec),
            mode,
        )?;
        return Ok(Built {
            report: AblateOutput::Sweep(report),
            problem,
        });
    }
    let names = components.iter().map(name).collect();
    let report = single(&runs, (&before, &after), (header, ids, spec), names, mode)?;
    let report = AblateReport {
        before: predictions(tokenizer, &next(&before)?, top_k)?,
        after: predictions(tokenizer, &next(&after)?, top_k)?,
        ..report
    };
    Ok(Built {
        report: AblateOutput::Single(report),
        problem,
    })
}

/// `--metric` of `--answer` (default: the top token of `logits` `(1, 1, V)`, the unablated
/// run's) minus `--wrong`.
fn metric(
    tokenizer: &Tokenizer,
    args: &AblateArgs,
    logits: &Tensor,
) -> Result<(Measure, MetricSpec)> {
    let answer = match &args.answer {
        Some(a) => answer_tokens(tokenizer, a)?,
        None => {
            let row: Vec<f32> = logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            vec![crate::session::named(
                tokenizer,
                dist::top_k(&row, 1)[0] as u32,
            )?]
        }
    };
    let wrong = wrong_token(tokenizer, args.wrong.as_deref())?;
    measure(args.metric, answer, wrong, "unablated")
}

/// `ids` followed by a teacher-forced answer's `forced` tokens, as a `(1, T)` tensor.
fn forced_input(model: &Gpt2, ids: &[u32], forced: &[u32], cfg: &Config) -> Result<Tensor> {
    let all = [ids, forced].concat();
    if all.len() > cfg.n_positions {
        anyhow::bail!(
            "the text and the answer's first {} tokens are {} tokens; the model sees at most {}",
            forced.len(),
            all.len(),
            cfg.n_positions
        );
    }
    Ok(Tensor::new(all, model.device())?.unsqueeze(0)?)
}

/// The metric, and the answer's log-probability, against the unablated run.
struct Runs {
    metric: Bound,
    logprob: Bound,
}

impl Runs {
    fn of(measure: &Measure, unablated: &Tensor) -> Result<Runs> {
        let logprob = Measure::new(Kind::Of(Quantity::LogProb), measure.answer.clone(), None)?;
        Ok(Runs {
            metric: measure.against(unablated)?,
            logprob: logprob.against(unablated)?,
        })
    }

    /// The metric and the log-probability of a one-row run `(1, n, V)`.
    fn values(&self, logits: &Tensor) -> Result<[f64; 2]> {
        Ok([
            self.metric.of(logits)?[0] as f64,
            self.logprob.of(logits)?[0] as f64,
        ])
    }
}

/// The logits `(V,)` after the text itself, of a run's last positions `(1, n, V)`.
fn next(x: &Tensor) -> Result<Tensor> {
    Ok(x.get(0)?.get(0)?)
}

/// The report of one ablation, its predictions still empty.
fn single(
    runs: &Runs,
    (before, after): (&Tensor, &Tensor),
    (header, ids, spec): (Header, &[u32], MetricSpec),
    ablated: Vec<String>,
    mode: Ablation,
) -> Result<AblateReport> {
    let [metric_before, logprob_before] = runs.values(before)?;
    let [metric_after, logprob_after] = runs.values(after)?;
    let f32s = |x: &Tensor| -> Result<Vec<f32>> { Ok(next(x)?.to_dtype(DType::F32)?.to_vec1()?) };
    Ok(AblateReport {
        header,
        input_ids: ids.to_vec(),
        answer: spec.one_answer(),
        metric: spec,
        ablated,
        mode: mode_name(mode).into(),
        metric_before,
        metric_after,
        logprob_before,
        logprob_after,
        kl: kl(&f32s(before)?, &f32s(after)?),
        before: vec![],
        after: vec![],
    })
}

/// `--sweep`'s report: each head's row of `each` `(L·H, n, V)` as its change in the metric
/// from the unablated run `before` `(1, n, V)`.
fn sweep(
    runs: &Runs,
    (before, each): (&Tensor, &Tensor),
    n_head: usize,
    (header, ids, spec): (Header, &[u32], MetricSpec),
    mode: Ablation,
) -> Result<SweepReport> {
    let [metric_before, logprob_before] = runs.values(before)?;
    let change: Vec<f64> = (runs.metric.of(each)?.iter())
        .map(|&v| v as f64 - metric_before)
        .collect();
    Ok(SweepReport {
        header,
        input_ids: ids.to_vec(),
        answer: spec.one_answer(),
        metric: spec,
        mode: mode_name(mode).into(),
        metric_before,
        logprob_before,
        values: change.chunks(n_head).map(<[f64]>::to_vec).collect(),
    })
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

/// `--sweep`'s figure and report.
fn print_sweep(
    session: &Session,
    args: &AblateArgs,
    out: &mut dyn Write,
    report: &SweepReport,
) -> Result<()> {
    write_svg(session, args.svg.as_deref(), |w| {
        printer::sweep_svg(w, report, crate::session::grid_style(&args.figure))
    })?;
    emit(session, out, report, |out, r| {
        printer::sweep(out, r, session.output.palette)
    })
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
