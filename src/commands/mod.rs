//! One module per subcommand: arguments → request → report → renderer.

mod attention;
mod dump;
mod embed;
mod generate;
mod hidden;
mod hooks;
mod info;
mod lens;
mod next;
mod score;
mod tokenize;
mod trace;

use std::io::{self, Write};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::cli::{Cli, Command, DTypeArg, DeviceArg, GlobalArgs, TextArgs, TopKArgs};
use crate::error::usage;
use crate::input::read_text;
use crate::model::load::{Checkpoint, ModelSource};
use crate::model::{Config, Gpt2};
use crate::render;
use crate::report::{Header, Prediction};
use crate::tokenizer::Tokenizer;

pub fn run(cli: Cli) -> Result<()> {
    let session = Session::new(&cli.global)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match &cli.command {
        Command::Tokenize(a) => tokenize::run(&session, a, &mut out)?,
        Command::Next(a) => next::run(&session, a, &mut out)?,
        Command::Attention(a) => attention::run(&session, a, &mut out)?,
        Command::Info => info::run(&session, &mut out)?,
        Command::Trace(a) => trace::run(&session, a, &mut out)?,
        Command::Embed(a) => embed::run(&session, a, &mut out)?,
        Command::Hidden(a) => hidden::run(&session, a, &mut out)?,
        Command::Lens(a) => lens::run(&session, a, &mut out)?,
        Command::Hooks(a) => hooks::run(&session, a, &mut out)?,
        Command::Dump(a) => dump::run(&session, a, &mut out)?,
        Command::Score(a) => score::run(&session, a, &mut out)?,
        Command::Generate(a) => generate::run(&session, a, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// The model the user named, and how to compute with it. Files are fetched lazily, so
/// `tokenize` never touches the weights.
pub struct Session {
    pub model_name: String,
    pub source: ModelSource,
    pub device: Device,
    pub dtype: DType,
    pub json: bool,
}

impl Session {
    pub fn new(g: &GlobalArgs) -> Result<Self> {
        let device = match g.device {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda if cfg!(feature = "cuda") => {
                Device::new_cuda(0).context("cannot open CUDA device 0")?
            }
            DeviceArg::Metal if cfg!(feature = "metal") => {
                Device::new_metal(0).context("cannot open Metal device 0")?
            }
            DeviceArg::Cuda | DeviceArg::Metal => {
                let name = format!("{:?}", g.device).to_lowercase();
                return Err(usage(format!(
                    "--device {name}: this build has no {name} support; rebuild with `cargo build --release --features {name}`, or use --device cpu"
                )));
            }
        };
        let dtype = match g.dtype {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::BF16,
        };
        Ok(Session {
            model_name: g.model.clone(),
            source: ModelSource::resolve(&g.model, g.revision.as_deref())?,
            device,
            dtype,
            json: g.json,
        })
    }

    pub fn header(&self, text: Option<&str>) -> Header {
        Header::new(&self.model_name, text)
    }

    pub fn tokenizer(&self) -> Result<Tokenizer> {
        Tokenizer::load(&self.source).with_context(|| format!("model {}", self.model_name))
    }

    pub fn config(&self) -> Result<(Config, serde_json::Value)> {
        let path = self.source.file("config.json")?;
        Config::from_file(&path)
    }

    pub fn checkpoint(&self) -> Result<Checkpoint> {
        if self.source.has_local("pytorch_model.bin") && !self.source.has_local("model.safetensors")
        {
            bail!(
                "--model {}: has only pytorch_model.bin; gpt2-inspect reads model.safetensors. Convert it with \
                 `python -c \"from transformers import GPT2LMHeadModel as M; M.from_pretrained('{0}').save_pretrained('{0}')\"`",
                self.model_name
            );
        }
        let path = self.source.file("model.safetensors")?;
        Checkpoint::open(&path)
    }

    /// Loads the config, the tokenizer and the first `n_blocks` blocks of the model.
    pub fn model(&self, cfg: &Config, n_blocks: usize) -> Result<Gpt2> {
        let ckpt = self.checkpoint()?;
        Gpt2::load(&ckpt, cfg, n_blocks, &self.device, self.dtype)
    }
}

/// Writes a report as JSON or as its table.
fn emit<R: serde::Serialize>(
    session: &Session,
    out: &mut dyn Write,
    report: &R,
    table: impl FnOnce(&mut dyn Write, &R) -> io::Result<()>,
) -> Result<()> {
    if session.json {
        render::json::write(out, report)?;
    } else {
        table(out, report)?;
    }
    Ok(())
}

/// `--flag N` must index one of `count` things.
fn check_index(flag: &str, value: usize, count: usize, what: &str, model: &str) -> Result<()> {
    if value >= count {
        return Err(usage(format!(
            "--{flag} {value} is out of range: {model} has {what} 0..={}",
            count - 1
        )));
    }
    Ok(())
}

/// `(1, T)` u32 input for the model.
fn input_ids(ids: &[u32], device: &Device) -> Result<Tensor> {
    Ok(Tensor::new(ids, device)?.unsqueeze(0)?)
}

/// Each id decoded on its own: the labels of rows and columns.
fn decoded(tokenizer: &Tokenizer, ids: &[u32]) -> Result<Vec<String>> {
    ids.iter().map(|&id| tokenizer.decode(&[id])).collect()
}

/// A `(T, d)` tensor as rows of f32.
fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// A text ready for the model: the text, the config, the tokenizer and the token ids.
struct Prepared {
    text: String,
    cfg: Config,
    tokenizer: Tokenizer,
    ids: Vec<u32>,
}

impl Session {
    fn prepare(&self, input: &TextArgs) -> Result<Prepared> {
        let text = read_text(input)?;
        let (cfg, _) = self.config()?;
        let tokenizer = self.tokenizer()?;
        let ids = encode_for_model(&tokenizer, &cfg, &text)?;
        Ok(Prepared {
            text,
            cfg,
            tokenizer,
            ids,
        })
    }
}

/// `--top-k` may not exceed the vocabulary.
fn check_top_k(top_k: &TopKArgs, cfg: &Config, model: &str) -> Result<usize> {
    let k = top_k.top_k as usize;
    if k > cfg.vocab_size {
        return Err(usage(format!(
            "--top-k {k} is out of range: {model} has {} tokens, so 1..={}",
            cfg.vocab_size, cfg.vocab_size
        )));
    }
    Ok(k)
}

/// Token ids for the model, refusing texts longer than its context.
fn encode_for_model(tokenizer: &Tokenizer, cfg: &Config, text: &str) -> Result<Vec<u32>> {
    let ids: Vec<u32> = tokenizer.encode(text)?.iter().map(|t| t.id).collect();
    if ids.len() > cfg.n_positions {
        bail!(
            "the text is {} tokens long; the model sees at most {} (n_positions)",
            ids.len(),
            cfg.n_positions
        );
    }
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
        bail!(
            "token id {bad} is outside the model's vocabulary of {} (tokenizer and config disagree)",
            cfg.vocab_size
        );
    }
    Ok(ids)
}

/// log Σ exp(logits), in f64 from the f32 logits: `logit - log_z` is the log-probability.
fn log_normalizer(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

/// Euclidean norm of each row of a `(T, d)` tensor.
fn row_norms(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?
        .sqr()?
        .sum(candle_core::D::Minus1)?
        .sqrt()?
        .to_vec1()?)
}

/// The `k` highest logits of `logits` `(V,)`, with softmax probabilities and log-probabilities
/// computed in f64 from the f32 logits.
fn predictions(tokenizer: &Tokenizer, logits: &Tensor, k: usize) -> Result<Vec<Prediction>> {
    let logits: Vec<f32> = logits.to_dtype(DType::F32)?.to_vec1()?;
    let log_z = log_normalizer(&logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(rank, id)| {
            let logprob = logits[id] as f64 - log_z;
            Ok(Prediction {
                rank: rank + 1,
                id: id as u32,
                token: tokenizer.decode(&[id as u32])?,
                prob: logprob.exp() as f32,
                logprob: logprob as f32,
                logit: logits[id],
            })
        })
        .collect()
}
