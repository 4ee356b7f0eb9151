//! `generate`: continue the text token by token, greedy or sampled, streaming each token
//! as it is chosen. A key/value cache makes each step run the model on one position.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use super::{check_index, decoded, input_ids, log_normalizer, predictions, Prepared, Session};
use crate::cli::GenerateArgs;
use crate::error::usage;
use crate::model::{BlockHook, CaptureSpec, Gpt2, Hook, KvCache, Logits, Request};
use crate::render::table::{self, GenerateStream};
use crate::report::{GenerateReport, GeneratedToken, Step};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &GenerateArgs, out: &mut dyn Write) -> Result<()> {
    let (cfg, _) = session.config()?;
    let sampling = sampling(args)?;
    let watch = match (args.attention_layer, args.attention_head) {
        (Some(l), Some(h)) => {
            check_index(
                "attention-layer",
                l,
                cfg.n_layer,
                "layers",
                &session.model_name,
            )?;
            check_index(
                "attention-head",
                h,
                cfg.n_head,
                "heads",
                &session.model_name,
            )?;
            Some([l, h])
        }
        _ => None,
    };
    let (prepared, model) = session.prepare_and_load(&args.input, &cfg, cfg.n_layer)?;
    let Prepared {
        texts,
        tokenizer,
        ids,
        ..
    } = &prepared;
    let settings = Settings {
        max_new_tokens: args.max_new_tokens as usize,
        // config.json's eos_token_id, else the vocabulary's `<|endoftext|>`.
        eos: cfg
            .eos_token_id
            .or(tokenizer.endoftext())
            .filter(|_| !args.ignore_eos),
        alternatives: args.alternatives as usize,
        watch,
        cache: !args.no_cache,
    };

    // Several texts are generated one after another, each as if alone (same seed).
    let mut reports = Vec::new();
    for (i, (text, ids)) in texts.iter().zip(ids).enumerate() {
        // Tables stream as tokens come; JSON is one object at the end.
        let mut stream =
            (!session.json).then(|| GenerateStream::new(args.show_probs, watch, session.terminal));
        if let Some(s) = stream.as_mut() {
            if texts.len() > 1 {
                if i > 0 {
                    writeln!(out)?;
                }
                table::batch_heading(out, i, texts.len(), text)?;
            }
            s.start(out, text, &decoded(tokenizer, ids)?)?;
        }
        let mut processor = LogitsProcessor::from_sampling(args.seed, sampling.clone());
        let generation =
            generate(
                &model,
                tokenizer,
                ids,
                &settings,
                &mut processor,
                |step| match stream.as_mut() {
                    Some(s) => Ok(s.step(out, step)?),
                    None => Ok(()),
                },
            )?;
        let report = GenerateReport {
            header: session.header(Some(text)),
            input_ids: ids.clone(),
            sampling: describe(&sampling),
            attention_head: watch,
            generated_text: tokenizer.decode(&generation.ids)?,
            generated_ids: generation.ids,
            stop_reason: generation.stop_reason.to_string(),
            steps: generation.steps,
        };
        if let Some(s) = stream.as_mut() {
            s.finish(out, &report)?;
        }
        reports.push(report);
    }
    if session.json {
        prepared.emit(session, out, reports, |_, _| Ok(()))?;
    }
    Ok(())
}

/// How `generate` runs, apart from how it picks tokens.
pub struct Settings {
    pub max_new_tokens: usize,
    /// Stop after generating this token.
    pub eos: Option<u32>,
    /// Alternatives listed per step.
    pub alternatives: usize,
    /// `[layer, head]` whose attention to record for each generated token.
    pub watch: Option<[usize; 2]>,
    /// Use the key/value cache (else run the whole sequence every step).
    pub cache: bool,
}

pub struct Generation {
    pub ids: Vec<u32>,
    pub steps: Vec<GeneratedToken>,
    pub stop_reason: &'static str,
}

/// Generates after `prompt`, handing each step to `on_step` as soon as it is chosen.
pub fn generate(
    model: &Gpt2,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    settings: &Settings,
    processor: &mut LogitsProcessor,
    mut on_step: impl FnMut(Step) -> Result<()>,
) -> Result<Generation> {
    let n_positions = model.config().n_positions;
    let capture = match settings.watch {
        Some([l, h]) => {
            CaptureSpec::new([Hook::Block(l, BlockHook::Pattern)]).with_heads(Some(vec![h]))
        }
        None => CaptureSpec::default(),
    };
    let req = Request {
        capture,
        logits: Logits::Last,
    };
    let mut cache = KvCache::new();
    let mut seq = prompt.to_vec();
    let mut generated: Vec<u32> = Vec::new();
    let mut steps = Vec::new();
    let mut shown = 0; // bytes of the generated text already handed out
    let stop_reason = loop {
        if generated.len() == settings.max_new_tokens {
            break "max_new_tokens";
        }
        if seq.len() >= n_positions {
            break "n_positions";
        }
        let output = if settings.cache {
            // The first step runs the prompt; later ones only the token chosen last.
            let fresh = &seq[cache.len()..];
            model.forward_cached(&input_ids(fresh, model.device())?, &mut cache, &req)?
        } else {
            model.forward(&input_ids(&seq, model.device())?, &req)?
        };
        let logits = output
            .logits
            .expect("Logits::Last yields logits")
            .flatten_all()?; // (V,)
        let row: Vec<f32> = logits.to_dtype(DType::F32)?.to_vec1()?;
        let id = sample(processor, &row, generated.len())?;
        let logprob = row[id as usize] as f64 - log_normalizer(&row);
        let attention = match settings.watch {
            Some([l, _]) => Some(last_query_row(
                output.activations.get(Hook::Block(l, BlockHook::Pattern))?,
            )?),
            None => None,
        };
        let step = GeneratedToken {
            id,
            token: tokenizer.decode(&[id])?,
            prob: logprob.exp() as f32,
            logprob: logprob as f32,
            top: predictions(tokenizer, &logits, settings.alternatives)?,
            attention,
        };
        seq.push(id);
        generated.push(id);
        let text = tokenizer.decode(&generated)?;
        // A token may end inside a multi-byte character; hold its bytes back until it is whole.
        let piece = match text.ends_with('\u{FFFD}') || !text.is_char_boundary(shown) {
            true => "",
            false => &text[shown..],
        };
        on_step(Step {
            index: steps.len(),
            token: &step,
            text: piece,
        })?;
        shown += piece.len();
        steps.push(step);
        if settings.eos == Some(id) {
            break "eos";
        }
    };
    Ok(Generation {
        ids: generated,
        steps,
        stop_reason,
    })
}

/// Picks the next id from `logits` `(V,)`. The logits are shifted so the largest is 0
/// first: softmax is unchanged, and dividing by a tiny temperature can no longer overflow
/// to infinities (which would make every probability NaN). Logits that are not finite
/// numbers (a broken checkpoint) are an error, not a token.
fn sample(processor: &mut LogitsProcessor, logits: &[f32], step: usize) -> Result<u32> {
    if let Some(bad) = logits.iter().find(|v| !v.is_finite()) {
        anyhow::bail!(
            "the model's logits for generated token {} include {bad}: the checkpoint computes \
             no numbers to choose from (are its weights finite?)",
            step + 1
        );
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let shifted: Vec<f32> = logits.iter().map(|&l| l - max).collect();
    let n = shifted.len();
    Ok(processor.sample(&Tensor::from_vec(shifted, n, &candle_core::Device::Cpu)?)?)
}

/// The weights of the last query over all keys: `(1, 1, Tq, Tk)` → `Tk` values.
fn last_query_row(pattern: &Tensor) -> Result<Vec<f32>> {
    let tq = pattern.dim(2)?;
    Ok(pattern
        .narrow(2, tq - 1, 1)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1()?)
}

fn sampling(args: &GenerateArgs) -> Result<Sampling> {
    if let Some(t) = args.temperature {
        if !(t >= 0.0 && t.is_finite()) {
            return Err(usage(format!(
                "--temperature {t}: must be 0 (greedy) or more"
            )));
        }
    }
    if let Some(p) = args.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(usage(format!("--top-p {p}: must be in (0, 1]")));
        }
    }
    let sample = args.temperature.is_some_and(|t| t > 0.0)
        || (args.temperature.is_none() && (args.top_k.is_some() || args.top_p.is_some()));
    if !sample {
        return Ok(Sampling::ArgMax);
    }
    let temperature = args.temperature.unwrap_or(1.0);
    Ok(match (args.top_k.map(|k| k as usize), args.top_p) {
        (None, None) => Sampling::All { temperature },
        (Some(k), None) => Sampling::TopK { k, temperature },
        (None, Some(p)) => Sampling::TopP { p, temperature },
        (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
    })
}

fn describe(s: &Sampling) -> String {
    match s {
        Sampling::ArgMax => "greedy".into(),
        Sampling::All { temperature } => format!("sample temperature={temperature}"),
        Sampling::TopK { k, temperature } => format!("sample top_k={k} temperature={temperature}"),
        Sampling::TopP { p, temperature } => format!("sample top_p={p} temperature={temperature}"),
        Sampling::TopKThenTopP { k, p, temperature } => {
            format!("sample top_k={k} top_p={p} temperature={temperature}")
        }
        Sampling::GumbelSoftmax { temperature } => format!("gumbel temperature={temperature}"),
    }
}
