//! `report`: one self-contained HTML page with the tokens, every head's attention, the logit
//! lens and the next tokens of one text, from a single forward pass.

use std::io::Write;

use anyhow::Result;

use crate::analysis::grad::check_differentiable;
use crate::analysis::metric::{top_answer, Kind, Measure, Quantity};
use crate::analysis::progress::Silent;
use crate::analysis::saliency::{saliency, Method};
use crate::atomic;
use crate::cli::{NeuronWhen as When, ReportArgs};
use crate::error::usage;
use crate::model::{BlockHook, CaptureSpec, Config, Gpt2, Hook, NoLogits, Request};
use crate::render::attention::page as report_page;
use crate::render::table;
use crate::reports::{NeuronData, PageReport, PageSaliency, SaliencyMethod, WrittenReport};
use crate::session::parts::{lens_report, per_layer, tokenize_report, Reading};
use crate::session::texts::{token_limit, Texts};
use crate::session::{check_top_k, emit, Built, Session};
use crate::session::{Each, Take};
use crate::tokenizer::Tokenizer;

/// Tokens a page holds at most: gpt2's 144 heads at 256 tokens are 4.7 M probabilities, 13 MB
/// of HTML, which headless Chromium opens in about a second (tests/suite/browser.rs).
const MAX_TOKENS: usize = 256;

/// Bytes of q and k (f32, 16 MB once in base64) a page holds with `--neuron-view auto`: reading
/// HTML costs a browser about 35 ms a MB, so this keeps every page within about a second.
const NEURON_BYTES: usize = 12 << 20;

pub fn run(session: &Session, args: &ReportArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?; // checks --top-k
    let top_k = args.top_k.top_k as usize;
    let path = &args.output;
    atomic::write(path, "-o", &session.temps, |w| {
        report_page::page(w, &built.report)
    })?;
    if !atomic::is_stdout(path) {
        // Standard output is the page, else a summary after it.
        emit(
            session,
            out,
            &written(&built.report, path, top_k),
            table::written,
        )?;
    }
    built.finish()
}

/// The page `report` writes.
pub fn build(session: &Session, args: &ReportArgs) -> Result<Built<PageReport>> {
    let cfg = session.config()?;
    let top_k = check_top_k(args.top_k.top_k, cfg, &session.model_name)?;
    // The page's own limit, named once by the message that refuses a longer text (with
    // --truncate, the last MAX_TOKENS tokens are kept).
    let limit = token_limit(&args.input, cfg)?.at_most(MAX_TOKENS, "a report page holds");
    let (prepared, model) = session.prepare_and_load(
        &args.input,
        cfg,
        cfg.n_layer,
        Take {
            limit: Some(limit),
            each: Each::Strict,
        },
    )?;
    let Texts {
        texts,
        cfg,
        tokenizer,
        tokens,
        ids,
        ..
    } = &prepared;
    if texts.len() > 1 {
        return Err(usage(
            "report shows one text; give one TEXT (or run once per text)",
        ));
    }
    let t = ids[0].len();
    let (neuron, qk_bytes) = holds_neuron(args.neuron, cfg, t);
    let row = prepared.forward(&model, &request(cfg, neuron))?.remove(0);
    let acts = &row.output.activations;
    let layers: Vec<usize> = (0..cfg.n_layer).collect();
    let qk = |kind| per_layer(acts, &layers, kind, None);
    let text = (texts[0].as_str(), ids[0].as_slice());
    let mut header = session.header(Some(&texts[0]))?;
    header.truncated = prepared.truncated[0];
    let (at, logit) = ((t - 1, top_k), Reading::logit());
    let lens = lens_report(session, (&model, tokenizer), text, acts, at, &logit)?;
    let page = PageReport {
        header,
        tokens: tokenize_report(session, &texts[0], shown(tokenizer, &tokens[0])?)?.tokens,
        n_layer: cfg.n_layer,
        n_head: cfg.n_head,
        d_head: cfg.n_embd / cfg.n_head,
        attention: per_layer(acts, &layers, BlockHook::Pattern, None)?,
        neuron: match neuron {
            true => Some(NeuronData {
                q: qk(BlockHook::Q)?,
                k: qk(BlockHook::K)?,
            }),
            false => None,
        },
        neuron_bytes: qk_bytes,
        lens,
        saliency: strip(&model, tokenizer, &ids[0])?,
    };
    Ok(Built {
        report: page,
        problem: row.non_finite_error(&prepared),
    })
}

/// What `report` says it wrote: the file, its size and what the page holds.
fn written(page: &PageReport, path: &std::path::Path, top_k: usize) -> WrittenReport {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let view = if page.neuron.is_some() {
        "neuron view, "
    } else {
        ""
    };
    let strip = match page.saliency {
        Some(_) => ", saliency",
        None => "",
    };
    let (l, h, d) = (page.n_layer, page.n_head, report_page::DECIMALS);
    WrittenReport {
        header: page.header.clone(),
        path: path.display().to_string(),
        bytes,
        contents: format!(
            "{}, {l} layers × {h} heads, {view}logit lens, top {top_k} next tokens{strip}; probabilities rounded to {d} decimals",
            crate::render::counted(page.tokens.len(), "token"),
        ),
    }
}

/// Input × gradient of the top next token's logit (one backward pass), or nothing for a
/// model that is not differentiated here (another dtype or device; the page says so).
fn strip(model: &Gpt2, tokenizer: &Tokenizer, ids: &[u32]) -> Result<Option<PageSaliency>> {
    if check_differentiable(model).is_err() {
        return Ok(None);
    }
    let id = top_answer(model, ids)?;
    let metric = Measure::new(Kind::Of(Quantity::Logit), vec![id], None)?;
    let method = Method::InputXGradient;
    let s = saliency(model, ids, &metric.bound()?, method, &mut Silent)?;
    Ok(Some(PageSaliency {
        method: SaliencyMethod {
            method: method.name(),
            signed: method.signed(),
            explains_answer: method.explains_answer(),
            quantity: Quantity::Logit.as_str(),
            steps: None,
            baseline: None,
        },
        answer: crate::session::named(tokenizer, id)?,
        scores: s.scores,
    }))
}

/// Whether a page of `t` tokens holds q and k for the neuron view (`--neuron-view`), and how
/// many bytes they take: `[L][H][T][d_head]` each, 4 bytes an element.
fn holds_neuron(when: When, cfg: &Config, t: usize) -> (bool, usize) {
    let qk_bytes = 2 * cfg.n_layer * t * cfg.n_embd * 4;
    let holds = match when {
        When::Always => true,
        When::Never => false,
        When::Auto => qk_bytes <= NEURON_BYTES,
    };
    (holds, qk_bytes)
}

/// What the page draws: every layer's pattern and residual stream (the lens), ln_f's
/// output, and q and k for the neuron view when the page holds it.
fn request(cfg: &Config, neuron: bool) -> Request<NoLogits> {
    let hooks = (0..cfg.n_layer).flat_map(|l| {
        let at = move |h| Hook::Block(l, h);
        let qk = neuron.then_some([at(BlockHook::Q), at(BlockHook::K)]);
        [at(BlockHook::ResidPre), at(BlockHook::Pattern)]
            .into_iter()
            .chain(qk.into_iter().flatten())
    });
    Request {
        capture: CaptureSpec::new(hooks.chain([Hook::LnFinalOut])),
        logits: NoLogits,
    }
}

/// The page's tokens, each labelled as a person reads it (a piece of a multi-byte character
/// as its bytes, not U+FFFD).
fn shown(
    tokenizer: &Tokenizer,
    tokens: &[crate::tokenizer::Token],
) -> Result<Vec<crate::tokenizer::Token>> {
    (tokens.iter())
        .map(|t| {
            Ok(crate::tokenizer::Token {
                text: tokenizer.token_text(t.id)?,
                ..t.clone()
            })
        })
        .collect()
}
