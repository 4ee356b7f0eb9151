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
mod report;
mod score;
mod tokenize;
mod trace;

use std::io::{self, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::cli::{
    Cli, ColorChoice, Command, DTypeArg, DeviceArg, GlobalArgs, TextArgs, TopKArgs, Truncate,
};
use crate::dist;
use crate::error::usage;
use crate::input::read_texts;
use crate::input::which_text;
use crate::model::checkpoint::Checkpoint;
use crate::model::hub::Hub;
use crate::model::source::ModelSource;
use crate::model::{Config, Gpt2, Output, Request};
use crate::render::{self, Palette};
use crate::report::{BatchReport, Header, Padding, Prediction, SCHEMA};
use crate::signals::TempFiles;
use crate::tokenizer::{Token, Tokenizer};

pub fn run(cli: Cli, temps: TempFiles) -> Result<()> {
    let session = Session::new(&cli.global, temps)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(Stdout(stdout.lock()));
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
        Command::Report(a) => report::run(&session, a, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// Standard output whose write errors say that they are about standard output (a full
/// disk behind a redirection); the error kind is kept, so a closed pipe is still quiet.
struct Stdout<W>(W);

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(on_stdout)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(on_stdout)
    }
}

fn on_stdout(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write to standard output: {e}"))
}

/// The model the user named, and how to compute with it. Files are fetched lazily, so
/// `tokenize` never touches the weights.
pub struct Session {
    pub model_name: String,
    pub source: ModelSource,
    pub device: Device,
    pub dtype: DType,
    pub json: bool,
    /// Colours of heatmaps on stdout; `None`: plain text.
    pub palette: Option<Palette>,
    /// Width of the terminal on stdout (or COLUMNS); `None`: not a terminal.
    pub width: Option<usize>,
    /// Whether stdout is a terminal: text shown there gets its control characters escaped.
    pub terminal: bool,
    /// Output files being written, removed on SIGINT/SIGTERM.
    pub temps: TempFiles,
}

impl Session {
    pub fn new(g: &GlobalArgs, temps: TempFiles) -> Result<Self> {
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
            source: ModelSource::resolve(&g.model, g.revision.as_deref(), Hub::from_env())
                .map_err(|e| anyhow::anyhow!("--model {e:#}"))?,
            device,
            dtype,
            json: g.json,
            palette: palette(g.color, io::stdout().is_terminal(), |k| {
                std::env::var(k).ok()
            }),
            width: terminal_width(),
            terminal: io::stdout().is_terminal(),
            temps,
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

    /// Loads the embeddings and the first `n_blocks` blocks (see [`Gpt2::load`]).
    pub fn model(&self, cfg: &Config, n_blocks: usize) -> Result<Gpt2> {
        let ckpt = self.checkpoint()?;
        Gpt2::load(&ckpt, cfg, n_blocks, &self.device, self.dtype)
    }
}

/// What `--color` means here: `auto` colours a terminal unless NO_COLOR is set (non-empty)
/// or TERM is `dumb`; `always` colours even a pipe. Truecolor when COLORTERM says so.
fn palette(
    choice: ColorChoice,
    is_terminal: bool,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Palette> {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    let colour = match choice {
        ColorChoice::Never => false,
        ColorChoice::Always => true,
        ColorChoice::Auto => {
            is_terminal && !set("NO_COLOR") && env("TERM").as_deref() != Some("dumb")
        }
    };
    let truecolor = matches!(env("COLORTERM").as_deref(), Some("truecolor" | "24bit"));
    colour.then_some(if truecolor {
        Palette::Truecolor
    } else {
        Palette::Ansi256
    })
}

/// Columns of the terminal on stdout, else COLUMNS, else unknown.
fn terminal_width() -> Option<usize> {
    terminal_size::terminal_size_of(io::stdout())
        .map(|(w, _)| w.0 as usize)
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
        .filter(|&w| w > 0)
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

/// Each id decoded on its own: the labels of rows and columns.
fn decoded(tokenizer: &Tokenizer, ids: &[u32]) -> Result<Vec<String>> {
    ids.iter().map(|&id| tokenizer.decode(&[id])).collect()
}

/// A `(T, d)` tensor as rows of f32.
fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// Texts ready for the model: the texts, the config, the tokenizer and each text's tokens
/// and their ids, cut to the limit as the user asked.
struct Prepared {
    texts: Vec<String>,
    cfg: Config,
    tokenizer: Tokenizer,
    tokens: Vec<Vec<Token>>,
    ids: Vec<Vec<u32>>,
    /// The id padding a batch.
    pad: u32,
}

/// One text of a batch, with what the model computed for it alone.
struct Row<'a> {
    text: &'a str,
    ids: &'a [u32],
    output: Output,
}

impl Session {
    fn prepare(&self, input: &TextArgs, cfg: &Config) -> Result<Prepared> {
        let texts = read_texts(input)?;
        let tokenizer = self.tokenizer()?;
        let limit = Some(token_limit(input, cfg)?);
        let tokens = encode_all(&tokenizer, &texts, limit, input.truncate)?;
        let ids: Vec<Vec<u32>> = tokens
            .iter()
            .map(|tokens| tokens.iter().map(|t| t.id).collect())
            .collect();
        if let Some(&bad) = ids
            .iter()
            .flatten()
            .find(|&&id| id as usize >= cfg.vocab_size)
        {
            bail!(
                "token id {bad} is outside the model's vocabulary of {} (tokenizer and config disagree)",
                cfg.vocab_size
            );
        }
        Ok(Prepared {
            texts,
            cfg: cfg.clone(),
            pad: pad_id(&tokenizer, Some(cfg.vocab_size)),
            tokenizer,
            tokens,
            ids,
        })
    }

    /// [`prepare`](Self::prepare) and [`model`](Self::model) at once: building GPT-2's
    /// tokenizer (about 0.1 s, its 50k merges parsed from JSON) overlaps loading the
    /// weights. `cfg` is the [`config`](Self::config) the caller checked its arguments
    /// against; a problem with the text is reported before one with the weights.
    fn prepare_and_load(
        &self,
        input: &TextArgs,
        cfg: &Config,
        n_blocks: usize,
    ) -> Result<(Prepared, Gpt2)> {
        std::thread::scope(|s| {
            let text = s.spawn(|| self.prepare(input, cfg));
            let model = self.model(cfg, n_blocks);
            let prepared = text
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            Ok((prepared, model?))
        })
    }

    /// Writes one report as is, several in the batch envelope (JSON) or one after another
    /// under a heading (tables).
    fn emit_batch<R: serde::Serialize>(
        &self,
        out: &mut dyn Write,
        texts: &[String],
        ids: &[Vec<u32>],
        pad: u32,
        reports: Vec<R>,
        table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
    ) -> Result<()> {
        if let [report] = reports.as_slice() {
            return emit(self, out, report, table);
        }
        if self.json {
            let report = BatchReport {
                schema: SCHEMA,
                model: self.model_name.clone(),
                batch: reports,
                padding: padded(ids, pad),
            };
            render::json::write(out, &report)?;
            return Ok(());
        }
        for (i, (text, report)) in texts.iter().zip(&reports).enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            render::table::batch_heading(out, i, texts.len(), text)?;
            table(out, report)?;
        }
        Ok(())
    }
}

impl Prepared {
    /// Runs every text, as one right-padded batch when there are several, and cuts out each
    /// text's share: the same numbers (within float rounding) as running it alone.
    fn forward(&self, model: &Gpt2, req: &Request) -> Result<Vec<Row<'_>>> {
        let input = self.input(model.device())?; // (B, T)
        let output = match self.lengths() {
            Some(lengths) => model.forward_padded(&input, &lengths, req)?,
            None => model.forward(&input, req)?,
        };
        self.texts
            .iter()
            .zip(&self.ids)
            .enumerate()
            .map(|(i, (text, ids))| {
                Ok(Row {
                    text,
                    ids,
                    output: output.row(i, ids.len(), &self.cfg)?,
                })
            })
            .collect()
    }

    /// The padded batch as the model's input, `(B, T)` u32.
    fn input(&self, device: &Device) -> Result<Tensor> {
        let batch = padded(&self.ids, self.pad);
        let [b, t] = batch.shape;
        Ok(Tensor::from_vec(batch.input_ids.concat(), (b, t), device)?)
    }

    /// Real tokens per text when there are several (the rest of each row is padding).
    fn lengths(&self) -> Option<Vec<usize>> {
        (self.ids.len() > 1).then(|| self.ids.iter().map(Vec::len).collect())
    }

    /// Writes one report per text (see [`Session::emit_batch`]).
    fn emit<R: serde::Serialize>(
        &self,
        session: &Session,
        out: &mut dyn Write,
        reports: Vec<R>,
        table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
    ) -> Result<()> {
        session.emit_batch(out, &self.texts, &self.ids, self.pad, reports, table)
    }
}

/// The pad token of a batch: `<|endoftext|>` (as `tokenizer.pad_token = eos_token`), or 0
/// where the vocabulary (or the model's) has no such id. Padding is masked, so its id
/// changes no number; it only has to be a valid row of wte.
fn pad_id(tokenizer: &Tokenizer, vocab_size: Option<usize>) -> u32 {
    tokenizer
        .endoftext()
        .filter(|&id| vocab_size.is_none_or(|v| (id as usize) < v))
        .unwrap_or(0)
}

/// Right padding with `pad`, as Hugging Face's `tokenizer(texts, padding=True)`.
fn padded(ids: &[Vec<u32>], pad: u32) -> Padding {
    let t = ids.iter().map(Vec::len).max().unwrap_or(0);
    let fill = |mut row: Vec<u32>, with: u32| {
        row.resize(t, with);
        row
    };
    Padding {
        input_ids: ids.iter().map(|r| fill(r.clone(), pad)).collect(),
        attention_mask: ids.iter().map(|r| fill(vec![1; r.len()], 0)).collect(),
        shape: [ids.len(), t],
    }
}

/// The most tokens a text may have: n_positions, or --max-length below it.
fn token_limit(input: &TextArgs, cfg: &Config) -> Result<usize> {
    match input.max_length.map(|n| n as usize) {
        Some(n) if n > cfg.n_positions => Err(usage(format!(
            "--max-length {n} is out of range: the model sees at most {} tokens (n_positions)",
            cfg.n_positions
        ))),
        Some(n) => Ok(n),
        None => Ok(cfg.n_positions),
    }
}

/// Each text's tokens; a text over `limit` is cut as `truncate` says (reported on stderr),
/// or refused. A long text is tokenized a piece at a time, keeping only the tokens that
/// stay, so memory follows the limit, not the text.
fn encode_all(
    tokenizer: &Tokenizer,
    texts: &[String],
    limit: Option<usize>,
    truncate: Option<Truncate>,
) -> Result<Vec<Vec<Token>>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut kept: Vec<Token> = Vec::new();
            let mut total = 0;
            tokenizer.encode_pieces(text, |piece| {
                total += piece.len();
                match (limit, truncate) {
                    (None, _) => kept.extend(piece),
                    (Some(l), Some(Truncate::Left)) => {
                        kept.extend(piece);
                        let over = kept.len().saturating_sub(l);
                        kept.drain(..over);
                    }
                    // The first `limit` tokens, and one more to tell that there are more.
                    (Some(l), _) => {
                        let room = (l + 1).saturating_sub(kept.len());
                        kept.extend(piece.into_iter().take(room));
                    }
                }
                Ok(())
            })?;
            let Some(limit) = limit.filter(|&l| total > l) else {
                return Ok(kept);
            };
            let which = which_text(i, texts.len());
            let cut = total - limit;
            match truncate {
                None => bail!(
                    "{which} is {total} tokens long; the model sees at most {limit}. Add --truncate left \
                     to keep the last {limit} tokens (for next-token prediction), --truncate right \
                     to keep the first {limit}, or --max-length N for a lower limit"
                ),
                Some(Truncate::Left) => {
                    eprintln!("{which}: cut the first {cut} tokens (--truncate left); {limit} remain");
                }
                Some(Truncate::Right) => {
                    kept.truncate(limit);
                    eprintln!("{which}: cut the last {cut} tokens (--truncate right); {limit} remain");
                }
            }
            Ok(kept)
        })
        .collect()
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

/// The `k` highest logits of `logits` `(V,)`, with softmax probabilities and log-probabilities
/// computed in f64 from the f32 logits.
fn predictions(tokenizer: &Tokenizer, logits: &Tensor, k: usize) -> Result<Vec<Prediction>> {
    let logits: Vec<f32> = logits.to_dtype(DType::F32)?.to_vec1()?;
    let log_z = dist::log_normalizer(&logits);
    dist::top_k(&logits, k)
        .into_iter()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn color_follows_flag_terminal_and_no_color() {
        use ColorChoice::*;
        let none = env(&[]);
        assert_eq!(palette(Auto, true, &none), Some(Palette::Ansi256));
        assert_eq!(palette(Auto, false, &none), None);
        assert_eq!(palette(Never, true, &none), None);
        assert_eq!(palette(Always, false, &none), Some(Palette::Ansi256));
        assert_eq!(palette(Auto, true, env(&[("NO_COLOR", "1")])), None);
        assert_eq!(
            palette(Auto, true, env(&[("NO_COLOR", "")])),
            Some(Palette::Ansi256)
        );
        assert_eq!(palette(Auto, true, env(&[("TERM", "dumb")])), None);
        assert_eq!(
            palette(
                Always,
                false,
                env(&[("NO_COLOR", "1"), ("COLORTERM", "truecolor")])
            ),
            Some(Palette::Truecolor)
        );
    }
}
