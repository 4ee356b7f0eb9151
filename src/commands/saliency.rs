//! `saliency`: input attribution. Each token at or before a position gets a score for the
//! prediction there (gradient, input × gradient, integrated gradients, attention rollout);
//! with `--generate` or `--continuation`, each later token is explained by every token
//! before it, a matrix.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::analysis::grad::check_differentiable;
use crate::analysis::metric::{top_answer, Kind, Measure, Quantity};
use crate::analysis::progress::{Progress, Silent};
use crate::analysis::saliency::{saliency, Method, Saliency};
use crate::cli::{BaselineArg, MethodArg, MetricArg, SaliencyArgs};
use crate::error::usage;
use crate::model::generate::{generate, Settings};
use crate::model::tap::Identity;
use crate::model::{Config, Gpt2};
use crate::render::gradients::saliency as printer;
use crate::reports::{NamedToken, SaliencyMatrixReport, SaliencyMethod, SaliencyReport};
use crate::session::flags;
use crate::session::progress::Bar;
use crate::session::texts::Texts;
use crate::session::Take;
use crate::session::{
    check_finite, check_index, decoded, emit, one_token, write_svg, Built, Session,
};
use crate::tokenizer::Tokenizer;

/// The flags as checked values, before any work.
struct Plan {
    quantity: Quantity,
    method: MethodArg,
    /// The explained rows of a matrix: generate this many, or take these ids.
    rows: Option<Rows>,
}

enum Rows {
    Generate(usize),
    Continuation(String),
}

impl Plan {
    fn check(args: &SaliencyArgs) -> Result<Self> {
        let quantity = flags::quantity(args.metric);
        let ig = args.method == MethodArg::IntegratedGradients;
        if !ig && (args.steps != 50 || args.baseline != BaselineArg::Zero) {
            return Err(usage(
                "--steps and --baseline are integrated gradients' options: add --method integrated-gradients",
            ));
        }
        let asked =
            args.answer.is_some() || args.wrong.is_some() || args.metric != MetricArg::Logit;
        if args.method == MethodArg::Rollout && asked {
            return Err(usage(
                "--answer, --wrong and --metric choose what a gradient explains; --method rollout \
                 follows the attention alone and explains no answer: drop them, or choose a \
                 gradient --method",
            ));
        }
        let rows = match (&args.generate, &args.continuation) {
            (Some(n), _) => Some(Rows::Generate(*n as usize)),
            (None, Some(text)) if text.is_empty() => {
                return Err(usage("--continuation is empty: give the tokens to explain"))
            }
            (None, Some(text)) => Some(Rows::Continuation(text.clone())),
            (None, None) => None,
        };
        Ok(Plan {
            quantity,
            method: args.method,
            rows,
        })
    }

    fn describe(&self, args: &SaliencyArgs, method: &Method) -> SaliencyMethod {
        let ig = matches!(method, Method::IntegratedGradients { .. });
        SaliencyMethod {
            method: method.name(),
            signed: method.signed(),
            explains_answer: method.explains_answer(),
            quantity: self.quantity.as_str(),
            steps: ig.then_some(args.steps),
            baseline: ig.then_some(flags::baseline_name(args.baseline)),
        }
    }
}

/// What `saliency` reports: one position's scores, or a row of them for each explained
/// token (`--generate`, `--continuation`).
pub enum SaliencyOutput {
    Position(SaliencyReport),
    Matrix(SaliencyMatrixReport),
}

pub fn run(session: &Session, args: &SaliencyArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?;
    let svg = args.svg.as_deref();
    match &built.report {
        SaliencyOutput::Position(report) => {
            write_svg(session, svg, |w| printer::strip_svg(w, report))?;
            emit(session, out, report, |out, r| {
                printer::scores(out, r, session.output.palette)
            })?;
        }
        SaliencyOutput::Matrix(report) => {
            write_svg(session, svg, |w| printer::matrix_svg(w, report))?;
            emit(session, out, report, |out, r| {
                printer::matrix(out, r, session.output.palette)
            })?;
        }
    }
    built.finish()
}

/// The report `saliency` prints and draws.
pub fn build(session: &Session, args: &SaliencyArgs) -> Result<Built<SaliencyOutput>> {
    let plan = Plan::check(args)?;
    let cfg = session.config()?;
    let (prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::STRICT)?;
    if prepared.texts.len() > 1 {
        return Err(usage("saliency explains one text; give one TEXT"));
    }
    if plan.method != MethodArg::Rollout {
        check_differentiable(&model).map_err(|e| usage(e.to_string()))?;
    }
    let method = flags::saliency_method(args, &prepared.tokenizer)?;
    match &plan.rows {
        None => single(session, args, &plan, method, &prepared, &model),
        Some(rows) => matrix(session, args, &plan, method, rows, &prepared, &model),
    }
}

/// The scores of the tokens at or before `--position` for the prediction there.
fn single(
    session: &Session,
    args: &SaliencyArgs,
    plan: &Plan,
    method: Method,
    prepared: &Texts,
    model: &Gpt2,
) -> Result<Built<SaliencyOutput>> {
    let (tokenizer, ids, text) = (&prepared.tokenizer, &prepared.ids[0], &prepared.texts[0]);
    let position = args.position.unwrap_or(ids.len() - 1);
    check_index(
        "position",
        position,
        ids.len(),
        "token positions",
        "the text",
    )?;
    let token = |flag: &str, t: &Option<String>| -> Result<Option<NamedToken>> {
        t.as_ref()
            .map(|t| one_token(tokenizer, flag, t))
            .transpose()
    };
    let (answer, wrong) = (token("answer", &args.answer)?, token("wrong", &args.wrong)?);
    let prefix = &ids[..=position];
    // No --answer: the model's own top prediction there, decided before any gradient.
    let answer = match answer {
        Some(a) => a,
        None => crate::session::named(tokenizer, top_answer(model, prefix)?)?,
    };
    let metric = Measure::new(
        Kind::Of(plan.quantity),
        vec![answer.id],
        wrong.as_ref().map(|w| w.id),
    )?;
    let bar = &mut Bar::new(session, "saliency");
    let s = saliency(model, prefix, &metric.bound()?, method, bar)?;
    warn_incomplete(&s, None);
    let problem = finite(model, prefix, &s)?;
    let report = SaliencyReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, prefix)?,
        input_ids: prefix.to_vec(),
        method: plan.describe(args, &method),
        position,
        answer,
        wrong,
        metric: s.value,
        scores: s.scores,
        delta: s.completeness.map(|c| c.delta),
        baseline_metric: s.completeness.map(|c| c.baseline_metric),
    };
    Ok(Built {
        report: SaliencyOutput::Position(report),
        problem,
    })
}

/// Integrated gradients' scores should add up to the metric's change: say so when they
/// miss it by more than 5%.
fn warn_incomplete(s: &Saliency, row: Option<usize>) {
    let Some(c) = s.completeness else { return };
    let change = s.value - c.baseline_metric;
    if c.delta.abs() > 0.05 * change.abs() {
        eprintln!(
            "warning: {}the integrated gradients add up to {:.4} but the metric changed by \
             {change:.4} from the baseline (delta {:+.4}, more than 5%); more --steps bring \
             them closer",
            row.map_or(String::new(), |i| format!("row {i}: ")),
            change + c.delta,
            c.delta
        );
    }
}

/// The error for non-finite scores or metric, naming where the model first went wrong.
fn finite(model: &Gpt2, ids: &[u32], s: &Saliency) -> Result<Option<anyhow::Error>> {
    let row = Tensor::new(ids, model.device())?.unsqueeze(0)?;
    let values = s.scores.iter().chain([&s.value]).map(|&v| v as f64);
    check_finite(model, &row, values)
}

/// The text's ids followed by the explained tokens: generated greedily, or given.
fn continued(rows: &Rows, prompt: &[u32], tokenizer: &Tokenizer, model: &Gpt2) -> Result<Vec<u32>> {
    let cfg: &Config = model.config();
    let fits = |flag: &str, n: usize| -> Result<()> {
        match prompt.len() + n > cfg.n_positions {
            true => Err(usage(format!(
                "{flag}: the text's {} tokens and {n} more exceed the model's {} positions",
                prompt.len(),
                cfg.n_positions
            ))),
            false => Ok(()),
        }
    };
    if let Rows::Generate(n) = rows {
        fits("--generate", *n)?;
    }
    let later: Vec<u32> = match rows {
        Rows::Continuation(text) => tokenizer.encode(text)?.iter().map(|t| t.id).collect(),
        Rows::Generate(n) => {
            let settings = Settings {
                max_new_tokens: *n,
                eos: None,
                alternatives: 0,
                watch: None,
                cache: true,
            };
            let mut greedy = LogitsProcessor::from_sampling(0, Sampling::ArgMax);
            generate(model, prompt, &settings, &mut greedy, &mut Identity, |_| {
                Ok(())
            })?
            .ids()
        }
    };
    fits("--continuation", later.len())?;
    Ok([prompt, &later].concat())
}

/// Every explained token's row: its scores of the tokens before it.
fn matrix(
    session: &Session,
    args: &SaliencyArgs,
    plan: &Plan,
    method: Method,
    rows: &Rows,
    prepared: &Texts,
    model: &Gpt2,
) -> Result<Built<SaliencyOutput>> {
    let (tokenizer, prompt, text) = (&prepared.tokenizer, &prepared.ids[0], &prepared.texts[0]);
    let all = continued(rows, prompt, tokenizer, model)?;
    let (n0, t) = (prompt.len(), all.len());
    let (mut answers, mut metrics, mut matrix, mut deltas) = (vec![], vec![], vec![], vec![]);
    let mut problem = None;
    let mut bar = Bar::new(session, "saliency");
    bar.start((t - n0) as u64, "generated tokens explained");
    for p in n0..t {
        let metric = Measure::new(Kind::Of(plan.quantity), vec![all[p]], None)?;
        let s = saliency(model, &all[..p], &metric.bound()?, method, &mut Silent)?;
        bar.advance(1)?;
        warn_incomplete(&s, Some(p - n0));
        problem = problem.or(finite(model, &all[..p], &s)?);
        answers.push(crate::session::named(tokenizer, all[p])?);
        metrics.push(s.value);
        deltas.extend(s.completeness.map(|c| c.delta));
        let mut row: Vec<Option<f32>> = s.scores.into_iter().map(Some).collect();
        row.resize(t, None);
        matrix.push(row);
    }
    let report = SaliencyMatrixReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, &all)?,
        input_ids: all,
        prompt_tokens: n0,
        method: plan.describe(args, &method),
        answers,
        metrics,
        matrix,
        deltas: (!deltas.is_empty()).then_some(deltas),
    };
    Ok(Built {
        report: SaliencyOutput::Matrix(report),
        problem,
    })
}
