//! Generation next to the model, as nanoGPT and candle keep it: greedy or sampled, one
//! token at a time, with the key/value cache passed in and out of each step.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_transformers::generation::LogitsProcessor;

use super::gpt2::{Gpt2, Inputs, KvCache, LastLogits, Request};
use super::hooks::{BlockHook, CaptureSpec, Hook};
use crate::dist;

/// How a generation runs, apart from how it picks tokens (the [`LogitsProcessor`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_new_tokens: usize,
    /// Stop after generating this token.
    pub eos: Option<u32>,
    /// How many of the most likely tokens each step lists.
    pub alternatives: usize,
    /// `[layer, head]` whose attention to record for each generated token.
    pub watch: Option<[usize; 2]>,
    /// Use the key/value cache (else run the whole sequence every step).
    pub cache: bool,
}

/// One generated token.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: u32,
    /// log softmax of the raw logits (before temperature, top-k or top-p) at `id`.
    pub logprob: f64,
    /// The most likely ids with their logits and log-probabilities, most likely first.
    pub top: Vec<(u32, f32, f64)>,
    /// The watched head's weights over positions 0..=p of the query at position p, the one
    /// whose output chose this token.
    pub attention: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    MaxNewTokens,
    Eos,
    NPositions,
}

impl Stop {
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::MaxNewTokens => "max_new_tokens",
            Stop::Eos => "eos",
            Stop::NPositions => "n_positions",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub steps: Vec<Step>,
    pub stop: Stop,
}

impl Generation {
    pub fn ids(&self) -> Vec<u32> {
        self.steps.iter().map(|s| s.id).collect()
    }
}

/// One step's forward pass: with the cache, only what the cache has not seen (the prompt
/// first, then the token chosen last); without, the whole sequence.
fn step_output(
    model: &Gpt2,
    seq: &[u32],
    cache: Option<&mut KvCache>,
    req: &Request<LastLogits>,
    edit: &mut dyn super::Tap,
) -> Result<super::Output<LastLogits>> {
    let start = cache.as_ref().map_or(0, |c| c.len());
    let fresh = row(&seq[start..], model.device())?;
    let inputs = Inputs {
        cache,
        ..Inputs::new(&fresh)
    };
    model.collect_with(inputs, req, edit)
}

/// Generates after `prompt`, handing each step to `on_step` as soon as it is chosen; `edit`
/// may change activations on the way (steering; [`super::tap::Identity`] for none).
pub fn generate(
    model: &Gpt2,
    prompt: &[u32],
    settings: &Settings,
    processor: &mut LogitsProcessor,
    edit: &mut dyn super::Tap,
    mut on_step: impl FnMut(&Step) -> Result<()>,
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
        logits: LastLogits,
    };
    let mut cache = KvCache::new();
    let mut seq = prompt.to_vec();
    let mut steps: Vec<Step> = Vec::new();
    let stop = loop {
        if steps.len() == settings.max_new_tokens {
            break Stop::MaxNewTokens;
        }
        if seq.len() >= n_positions {
            break Stop::NPositions;
        }
        let output = step_output(
            model,
            &seq,
            settings.cache.then_some(&mut cache),
            &req,
            edit,
        )?;
        let logits: Vec<f32> = output
            .logits
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()?; // (V,)
        if let Some(bad) = logits.iter().find(|v| !v.is_finite()) {
            return Err(not_finite(model, &seq, steps.len(), *bad));
        }
        let id = sample(processor, &logits)?;
        let attention = match settings.watch {
            Some([l, _]) => {
                let pattern = output.activations.get(Hook::Block(l, BlockHook::Pattern))?;
                Some(last_query_row(pattern)?)
            }
            None => None,
        };
        let step = Step::new(id, &logits, settings.alternatives, attention);
        on_step(&step)?;
        seq.push(id);
        steps.push(step);
        if settings.eos == Some(id) {
            break Stop::Eos;
        }
    };
    Ok(Generation { steps, stop })
}

impl Step {
    /// Token `id` chosen from `logits` `(V,)`, with the `alternatives` most likely.
    fn new(id: u32, logits: &[f32], alternatives: usize, attention: Option<Vec<f32>>) -> Step {
        let log_z = dist::log_normalizer(logits);
        Step {
            id,
            logprob: logits[id as usize] as f64 - log_z,
            top: dist::top_k(logits, alternatives)
                .into_iter()
                .map(|i| (i as u32, logits[i], logits[i] as f64 - log_z))
                .collect(),
            attention,
        }
    }
}

/// Generation stopped because the logits of a step were not numbers: the message names
/// where they first stopped being numbers; a caller that edited the run (steering) can
/// say so instead of blaming the weights.
#[derive(Debug)]
pub struct NonFiniteLogits {
    /// The generated token whose logits were not numbers (1-based).
    pub token: usize,
    pub message: String,
}

impl std::fmt::Display for NonFiniteLogits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NonFiniteLogits {}

/// The error when the logits for generated token `done + 1` of `seq` hold `bad`, naming
/// where the values first stopped being numbers.
fn not_finite(model: &Gpt2, seq: &[u32], done: usize, bad: f32) -> anyhow::Error {
    let at = row(seq, model.device())
        .and_then(|ids| model.first_non_finite(&ids))
        .ok()
        .flatten()
        .map_or(String::new(), |hook| {
            format!("; non-finite values first appear in {hook}")
        });
    NonFiniteLogits {
        token: done + 1,
        message: format!(
            "the model's logits for generated token {} include {bad}{at}: there are no \
             numbers to choose from (are the checkpoint's weights finite?)",
            done + 1
        ),
    }
    .into()
}

/// `(1, T)` u32 input for the model.
fn row(ids: &[u32], device: &Device) -> Result<Tensor> {
    Ok(Tensor::new(ids, device)?.unsqueeze(0)?)
}

/// Picks the next id from `logits` `(V,)`. The logits are shifted so the largest is 0
/// first: softmax is unchanged (and so is the argmax: the largest becomes exactly 0, every
/// other stays below it), and dividing by a tiny temperature can no longer overflow to
/// infinities that would make every probability NaN. The logits are finite (checked by
/// the caller, which says where they stopped being so).
fn sample(processor: &mut LogitsProcessor, logits: &[f32]) -> Result<u32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let shifted: Vec<f32> = logits.iter().map(|&l| l - max).collect();
    let n = shifted.len();
    Ok(processor.sample(&Tensor::from_vec(shifted, n, &Device::Cpu)?)?)
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
