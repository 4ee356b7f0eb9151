//! `generate`: continue the text token by token, greedy or sampled, streaming each token
//! as it is chosen. A key/value cache makes each step run the model on one position.

use std::io::Write;

use anyhow::Result;
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::cli::GenerateArgs;
use crate::dist;
use crate::error::usage;
use crate::model::generate::{self, generate, NonFiniteLogits, Settings};
use crate::model::tap::{Identity, Tap};
use crate::model::{Config, Gpt2};
use crate::render::tokens::table::GenerateStream;
use crate::reports::{GenerateReport, GeneratedToken, Prediction, SamplingReport, StreamedToken};
use crate::session::progress::Bar;
use crate::session::steer::Steering;
use crate::session::texts::{token_limit, Limit, Texts};
use crate::session::{check_index, decoded, Session};
use crate::session::{Each, Take};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &GenerateArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    let sampling = sampling(args)?;
    let watch = watched_head(session, args, cfg)?;
    let steering = Steering::from_args(session, &args.steer, cfg)?;
    let limit = prompt_limit(args, cfg)?;
    let (prepared, model) = session.prepare_and_load(
        &args.input,
        cfg,
        cfg.n_layer,
        Take {
            limit: Some(limit),
            each: Each::Lines,
        },
    )?;
    let Texts {
        texts,
        tokenizer,
        ids,
        pad,
        ..
    } = &prepared;
    let settings = settings(args, cfg, tokenizer, watch);
    announce(session, (steering.as_ref(), &settings, texts.len()))?;
    // Tables stream as tokens come; other formats print each report when it is done.
    let mut printer = session.printer(texts, ids, *pad, &|_, _| Ok(()))?;
    let one = One {
        model: &model,
        tokenizer,
        settings: &settings,
        sampling: &sampling,
        steering: steering.as_ref(),
    };
    // Several texts are generated one after another, each as if alone (same seed).
    for (i, (text, ids)) in texts.iter().zip(ids).enumerate() {
        if let Some(why) = prepared.why_not(i) {
            printer.fail(out, &prepared.failure(i, why))?;
            continue;
        }
        let mut stream = match printer.live(out)? {
            true => Some(GenerateStream::new(
                args.show_probs,
                watch,
                session.output.terminal,
            )),
            false => None,
        };
        if let Some(s) = stream.as_mut() {
            s.start(out, text, &decoded(tokenizer, ids)?)?;
        }
        let mut report = one.build(session, args, text, ids, stream.as_mut(), out)?;
        report.header.truncated = prepared.truncated[i];
        if let Some(s) = stream.as_mut() {
            s.finish(out, &report)?;
        } else {
            printer.print(out, &report)?;
            out.flush()?;
        }
    }
    printer.finish(out)?;
    prepared.not_run()
}

/// The most tokens a prompt may have: with `--truncate left`, room is left for `-n` tokens
/// (a prompt cut to fill the model's positions would leave none to generate).
fn prompt_limit(args: &GenerateArgs, cfg: &Config) -> Result<Limit> {
    let limit = token_limit(&args.input, cfg)?;
    Ok(match args.input.truncate {
        Some(crate::cli::Truncate::Left) => {
            let room = cfg.n_positions.saturating_sub(args.max_new_tokens as usize);
            limit.at_most(room.max(1), "with room for -n tokens, the prompt may have")
        }
        _ => limit,
    })
}

fn settings(
    args: &GenerateArgs,
    cfg: &Config,
    tokenizer: &Tokenizer,
    watch: Option<[usize; 2]>,
) -> Settings {
    Settings {
        max_new_tokens: args.max_new_tokens as usize,
        // config.json's eos_token_id, else the vocabulary's `<|endoftext|>`.
        eos: cfg
            .eos_token_id
            .or(tokenizer.endoftext())
            .filter(|_| !args.ignore_eos),
        alternatives: args.top_k as usize,
        watch,
        cache: !args.no_cache,
    }
}

/// `--attention-layer L --attention-head H`, checked against the model.
fn watched_head(
    session: &Session,
    args: &GenerateArgs,
    cfg: &Config,
) -> Result<Option<[usize; 2]>> {
    let (Some(l), Some(h)) = (args.attention_layer, args.attention_head) else {
        return Ok(None);
    };
    let model = &session.model_name;
    check_index("attention-layer", l, cfg.n_layer, "layers", model)?;
    check_index("attention-head", h, cfg.n_head, "heads", model)?;
    Ok(Some([l, h]))
}

/// What generating one text needs.
struct One<'a> {
    model: &'a Gpt2,
    tokenizer: &'a Tokenizer,
    settings: &'a Settings,
    sampling: &'a Sampling,
    steering: Option<&'a Steering>,
}

impl One<'_> {
    /// Generates after `ids` (the tokens of `text`), handing each token to `stream` as it
    /// is chosen; returns the report.
    fn build(
        &self,
        session: &Session,
        args: &GenerateArgs,
        text: &str,
        ids: &[u32],
        mut stream: Option<&mut GenerateStream>,
        out: &mut dyn Write,
    ) -> Result<GenerateReport> {
        let tokenizer = self.tokenizer;
        let mut processor = LogitsProcessor::from_sampling(args.seed, self.sampling.clone());
        let mut tokens: Vec<GeneratedToken> = Vec::new();
        let mut shown = 0; // bytes of the generated text already handed out
                           // A server's client hears each token as it comes (and stops the run by leaving).
        let mut heard = Bar::new(session, "generate");
        let generation = with_edit(self.steering, |edit| {
            generate(
                self.model,
                ids,
                self.settings,
                &mut processor,
                edit,
                |step| {
                    let token = generated_token(tokenizer, step)?;
                    if let Some(s) = stream.as_mut() {
                        show(tokenizer, (&tokens, &token), &mut shown, s, out)?;
                    }
                    heard.partial("token", &token)?;
                    tokens.push(token);
                    Ok(())
                },
            )
        })
        .map_err(|e| blame_steering(e, self.steering))?;
        let generated_ids = generation.ids();
        if generation.stop == generate::Stop::NPositions {
            self.say_why_stopped(args, ids.len(), generated_ids.len());
        }
        Ok(GenerateReport {
            header: session.header(Some(text))?,
            input_ids: ids.to_vec(),
            sampling: describe(self.sampling, args.seed),
            attention_head: self.settings.watch,
            generated_text: tokenizer.decode(&generated_ids)?,
            generated_ids,
            stop_reason: generation.stop.as_str().to_string(),
            steps: tokens,
            steered: self.steering.map(Steering::describe),
        })
    }
}

impl One<'_> {
    /// Generation stopped before -n tokens because the positions ran out: says so, and how
    /// to leave room.
    fn say_why_stopped(&self, args: &GenerateArgs, prompt: usize, generated: usize) {
        eprintln!(
            "stopped after {generated} of {} tokens: the model sees at most {} positions and the \
             prompt has {prompt}{}",
            self.settings.max_new_tokens,
            self.model.config().n_positions,
            match args.input.truncate {
                Some(crate::cli::Truncate::Left) => "",
                _ => "; --truncate left keeps room for -n tokens",
            }
        );
    }
}

/// A generation that ran out of numbers under steering names the steering, the likelier
/// cause than the checkpoint's weights.
fn blame_steering(e: anyhow::Error, steering: Option<&Steering>) -> anyhow::Error {
    match (e.downcast_ref::<NonFiniteLogits>(), steering) {
        (Some(stop), Some(s)) => anyhow::anyhow!(
            "steering ({}) at {} made the values non-finite (NaN or infinity) by generated \
             token {}; the steered logits are not numbers: choose smaller values",
            s.describe().join(", "),
            s.hook,
            stop.token
        ),
        _ => e,
    }
}

/// The steering's tap (none: [`Identity`]) handed to `f`.
fn with_edit<R>(steering: Option<&Steering>, f: impl FnOnce(&mut dyn Tap) -> R) -> R {
    match steering {
        Some(s) => f(&mut s.tap()),
        None => f(&mut Identity),
    }
}

/// What the run will do before it does it, on standard error (standard output is the text
/// as it is): the steering (tables; JSON says it in the report), or that JSON comes at the
/// end of a long run.
fn announce(
    session: &Session,
    (steering, settings, texts): (Option<&Steering>, &Settings, usize),
) -> Result<()> {
    let json = !session.output.format.is_table();
    if let Some(s) = steering.filter(|_| !json) {
        eprintln!("steered: {} at {}", s.describe().join(", "), s.hook);
    }
    if json && texts == 1 && settings.max_new_tokens >= 64 {
        eprintln!(
            "generating up to {} tokens; the output is written when done",
            settings.max_new_tokens
        );
    }
    Ok(())
}

/// A step as the report shows it: tokens decoded, probabilities as f32.
fn generated_token(tokenizer: &Tokenizer, step: &generate::Step) -> Result<GeneratedToken> {
    let top = step
        .top
        .iter()
        .enumerate()
        .map(|(rank, &(id, logit, logprob))| {
            Ok(Prediction {
                rank: rank + 1,
                id,
                token: tokenizer.token_text(id)?,
                prob: logprob.exp() as f32,
                logprob: logprob as f32,
                logit,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GeneratedToken {
        id: step.id,
        token: tokenizer.token_text(step.id)?,
        prob: step.logprob.exp() as f32,
        logprob: step.logprob as f32,
        top,
        attention_top: step
            .attention
            .as_deref()
            .map(|w| dist::top_k(w, 3))
            .unwrap_or_default(),
        attention: step.attention.clone(),
    })
}

/// The smallest temperature whose 1/T is a finite f32 (1 / f32::MAX, rounded up).
const MIN_TEMPERATURE: f64 = 3e-39;

fn sampling(args: &GenerateArgs) -> Result<Sampling> {
    if let Some(t) = args.temperature {
        match (t.is_finite(), t >= 0.0) {
            (false, _) => return Err(usage(format!("--temperature {t}: must be finite"))),
            (true, false) => {
                return Err(usage(format!(
                    "--temperature {t}: must be 0 (greedy) or more"
                )))
            }
            _ => {}
        }
    }
    if let Some(p) = args.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(usage(format!("--top-p {p}: must be in (0, 1]")));
        }
    }
    let sample = args.temperature.is_some_and(|t| t > 0.0)
        || (args.temperature.is_none() && (args.sample_top_k.is_some() || args.top_p.is_some()));
    if !sample {
        return Ok(Sampling::ArgMax);
    }
    // The sampler scales the f32 logits by 1/T: below MIN_TEMPERATURE that is infinite and
    // the distribution not a number. Sampling's limit as T → 0 is the greedy choice.
    if let Some(t) = args.temperature.filter(|&t| t < MIN_TEMPERATURE) {
        eprintln!(
            "note: --temperature {t:e} is below {MIN_TEMPERATURE:e}, where 1/T overflows f32; \
             choosing greedily (sampling's limit as the temperature goes to 0)"
        );
        return Ok(Sampling::ArgMax);
    }
    let temperature = args.temperature.unwrap_or(1.0);
    Ok(match (args.sample_top_k.map(|k| k as usize), args.top_p) {
        (None, None) => Sampling::All { temperature },
        (Some(k), None) => Sampling::TopK { k, temperature },
        (None, Some(p)) => Sampling::TopP { p, temperature },
        (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
    })
}

fn describe(s: &Sampling, seed: u64) -> SamplingReport {
    let (temperature, top_k, top_p) = match *s {
        Sampling::ArgMax => {
            return SamplingReport {
                method: "greedy",
                temperature: None,
                top_k: None,
                top_p: None,
                seed: None,
            }
        }
        Sampling::All { temperature } | Sampling::GumbelSoftmax { temperature } => {
            (temperature, None, None)
        }
        Sampling::TopK { k, temperature } => (temperature, Some(k), None),
        Sampling::TopP { p, temperature } => (temperature, None, Some(p)),
        Sampling::TopKThenTopP { k, p, temperature } => (temperature, Some(k), Some(p)),
    };
    SamplingReport {
        method: "sample",
        temperature: Some(temperature),
        top_k,
        top_p,
        seed: Some(seed),
    }
}

/// Hands `token`, the next after `tokens`, to `stream` with the text it adds; `shown` counts
/// the bytes of the generated text handed out so far.
fn show(
    tokenizer: &Tokenizer,
    (tokens, token): (&[GeneratedToken], &GeneratedToken),
    shown: &mut usize,
    stream: &mut GenerateStream,
    out: &mut dyn Write,
) -> Result<()> {
    let mut so_far: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    so_far.push(token.id);
    let text = tokenizer.decode(&so_far)?;
    // A token may end inside a multi-byte character; hold its bytes back until it is whole.
    let piece = match text.ends_with('\u{FFFD}') || !text.is_char_boundary(*shown) {
        true => "",
        false => &text[*shown..],
    };
    stream.step(
        out,
        StreamedToken {
            index: tokens.len(),
            token,
            text: piece,
        },
    )?;
    *shown += piece.len();
    Ok(())
}
