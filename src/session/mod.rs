//! The session: the model the user named, how to compute with it, and how stdout is shown.

pub mod checks;
pub mod flags;
pub mod metric;
pub mod output;
pub mod pairs;
pub mod parts;
pub mod progress;
pub mod shards;
pub mod steer;
pub mod texts;
pub mod tokens;

pub use checks::check_index;
pub use checks::check_top_k;
pub use checks::layer_head;
pub use checks::one_token;
pub use flags::cmap;
pub use flags::grid_style;
pub use output::check_finite;
pub use output::emit;
pub use output::emit_parts;
pub use output::non_finite_error;
pub use output::write_file;
pub use output::write_svg;
pub use output::Built;
pub use pairs::pair;
pub use pairs::pair_texts;
pub use tokens::decoded;
pub use tokens::matrix;
pub use tokens::named;
pub use tokens::predictions;
pub use tokens::ranked;

use std::io::{self, IsTerminal};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use candle_core::{DType, Device};

use crate::analysis::lens::Lens;
use crate::analysis::sae::Sae;
use crate::analysis::transcoder::TranscoderSet;
use crate::cli::{ColorChoice, DeviceArg, GlobalArgs, TextArgs};
use crate::error::usage;
use crate::input::{read, text_name, which_text, Input, Lines};
use crate::load::checkpoint::{Checkpoint, Weights};
use crate::load::hub::Hub;
use crate::load::source::ModelSource;
use crate::load::source::{HubFolder, SaeSource};
use crate::model::Hook;
use crate::model::{Config, Gpt2};
use crate::render::format::delimited::Tabular;
use crate::render::format::printer::{Format, Printer, Run};
use crate::render::Palette;
use crate::reports::Header;
use crate::session::texts::{encode_each, encode_ids, pad_id, token_limit, Encoded, Limit, Texts};
use crate::signals::TempFiles;
use crate::tokenizer::Tokenizer;

/// How reports are shown: the format, and for tables the terminal's colours and width. The
/// command line takes it from its flags and standard output; a server answers JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// `--json`, `--jsonl`, `--csv`, `--tsv` or tables: how every report is printed.
    pub format: Format,
    /// Colours of heatmaps; `None`: plain text.
    pub palette: Option<Palette>,
    /// Width of the terminal (or COLUMNS); `None`: not a terminal.
    pub width: Option<usize>,
    /// Whether the output is a terminal: text shown there gets its control characters
    /// escaped.
    pub terminal: bool,
}

impl Output {
    /// As the flags ask, for standard output.
    pub fn of_stdout(g: &GlobalArgs) -> Output {
        let terminal = io::stdout().is_terminal();
        Output {
            format: Format::from_flags(g.json, g.jsonl, g.csv, g.tsv),
            palette: palette(g.color, terminal, |k| std::env::var(k).ok()),
            width: terminal_width(),
            terminal,
        }
    }

    /// One JSON object (several texts: the batch envelope), as `--json` prints it.
    pub fn json() -> Output {
        Output {
            format: Format::Json,
            palette: None,
            width: None,
            terminal: false,
        }
    }
}

/// The model the user named, and how to compute with it. Files are fetched lazily, so
/// `tokenize` never touches the weights. What is read once (config.json, the tokenizer, a
/// kept model) is shared by its clones: a server keeps one session and answers each request
/// with a clone of its own [`Output`].
#[derive(Clone)]
pub struct Session {
    pub model_name: String,
    pub source: ModelSource,
    pub device: Device,
    pub dtype: DType,
    /// How reports are shown: per call (the command line's from its flags and stdout).
    pub output: Output,
    /// Output files being written, removed on SIGINT/SIGTERM.
    pub temps: TempFiles,
    /// `--prepend-bos`: `<|endoftext|>` before every text, as TransformerLens does.
    pub prepend_bos: bool,
    /// Who hears of long work: a terminal's bars, a server's client, or nobody.
    pub listener: progress::Listener,
    /// The commit the model resolved to, looked up in the cache at the first report's
    /// header and reused by every later one (a batch has thousands).
    commit: Arc<OnceLock<Option<String>>>,
    /// config.json, read at the first [`Session::config`] and kept.
    config: Arc<OnceLock<(Config, serde_json::Value)>>,
    /// The tokenizer, built at the first [`Session::tokenizer`] and kept.
    tokenizer: Arc<OnceLock<Arc<Tokenizer>>>,
    /// The whole model, once [`Session::keep_model`] has loaded it: every later call uses
    /// it instead of loading the blocks it needs.
    kept: Arc<OnceLock<Arc<Gpt2>>>,
    /// SAEs loaded once by [`Session::keep_saes`] (a server's `--sae`), by the spec that
    /// named them: the only ones such a session's calls may name.
    kept_saes: Arc<OnceLock<Vec<(String, Sae)>>>,
    /// A server's transcoder sets (`serve --transcoders`), by the spec that named them.
    kept_transcoders: Arc<OnceLock<Vec<(String, TranscoderSet)>>>,
    /// A server's lenses (`serve --lens`): once set, the only ones besides the logit lens
    /// that [`Session::lens`] gives.
    kept_lenses: Arc<OnceLock<Vec<(crate::cli::LensArg, Lens)>>>,
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
        let dtype = flags::dtype(g.dtype);
        Ok(Session {
            model_name: g.model.clone(),
            source: ModelSource::resolve(&g.model, g.revision.as_deref(), Hub::from_env())
                .map_err(|e| anyhow::anyhow!("--model {e:#}"))?,
            device,
            dtype,
            output: Output::of_stdout(g),
            temps,
            prepend_bos: g.prepend_bos,
            listener: match io::stderr().is_terminal() {
                true => progress::Listener::Terminal,
                false => progress::Listener::Nobody,
            },
            commit: Default::default(),
            config: Default::default(),
            tokenizer: Default::default(),
            kept: Default::default(),
            kept_saes: Default::default(),
            kept_transcoders: Default::default(),
            kept_lenses: Default::default(),
        })
    }

    /// The printer of the chosen format for reports on `texts` (none or one: a report
    /// alone), drawing tables with `table`.
    pub fn printer<'a, R: serde::Serialize + Tabular>(
        &self,
        texts: &'a [String],
        ids: &'a [Vec<u32>],
        pad: u32,
        table: &'a dyn Fn(&mut dyn std::io::Write, &R) -> std::io::Result<()>,
    ) -> Result<Box<dyn Printer<R> + 'a>> {
        let header = match Run::needs_header(self.output.format, texts.len()) {
            true => Some(self.header(None)?),
            false => None,
        };
        let run = Run {
            texts,
            ids,
            pad,
            header,
        };
        Ok(self.output.format.printer(run, table))
    }

    /// What every JSON object starts with: schema, version, model and its resolved commit.
    pub fn header(&self, text: Option<&str>) -> Result<Header> {
        let commit = match self.commit.get() {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .source
                    .commit()
                    .with_context(|| format!("--model {}", self.model_name))?;
                self.commit.get_or_init(|| c).clone()
            }
        };
        Ok(Header::new(&self.model_name, commit, text))
    }

    /// The model's tokenizer, built once.
    pub fn tokenizer(&self) -> Result<Arc<Tokenizer>> {
        if let Some(t) = self.tokenizer.get() {
            return Ok(t.clone());
        }
        let built = Tokenizer::load(&self.source)
            .with_context(|| format!("--model {}", self.model_name))?;
        Ok(self.tokenizer.get_or_init(|| Arc::new(built)).clone())
    }

    /// The id to put before every text with `--prepend-bos`: `<|endoftext|>`.
    pub fn bos(&self, tokenizer: &Tokenizer) -> Result<Option<u32>> {
        if !self.prepend_bos {
            return Ok(None);
        }
        match tokenizer.endoftext() {
            Some(id) => Ok(Some(id)),
            None => Err(usage(
                "--prepend-bos: this vocabulary has no <|endoftext|> to put first",
            )),
        }
    }

    /// `text`'s ids as the model sees them (after the BOS with `--prepend-bos`), uncut.
    pub fn ids(&self, tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
        let bos = self.bos(tokenizer)?;
        let ids = tokenizer.encode(text)?.into_iter().map(|t| t.id);
        Ok(bos.into_iter().chain(ids).collect())
    }

    /// Token ids given by `flag` (`--clean-ids`, `--ids`), after the BOS with
    /// `--prepend-bos`; each must be in the vocabulary.
    pub fn given_ids(&self, tokenizer: &Tokenizer, ids: &[u32], flag: &str) -> Result<Vec<u32>> {
        in_tokenizer(tokenizer, ids, flag)?;
        let bos = self.bos(tokenizer)?;
        Ok(bos.into_iter().chain(ids.iter().copied()).collect())
    }

    /// A file of the model, named after the flag that chose it when it cannot be had.
    fn file(&self, name: &str) -> Result<std::path::PathBuf> {
        self.source
            .file(name)
            .with_context(|| format!("--model {}", self.model_name))
    }

    /// The model's config.json, read once.
    pub fn config(&self) -> Result<&Config> {
        Ok(&self.config_json()?.0)
    }

    /// config.json as it is written (`info` shows it).
    pub fn raw_config(&self) -> Result<serde_json::Value> {
        Ok(self.config_json()?.1.clone())
    }

    fn config_json(&self) -> Result<&(Config, serde_json::Value)> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let read = Config::from_file(&self.file("config.json")?)
            .with_context(|| format!("--model {}", self.model_name))?;
        Ok(self.config.get_or_init(|| read))
    }

    /// The checkpoint: the first of model.safetensors, its index, pytorch_model.bin and
    /// its index that the model holds (transformers' order); shards on the hub are fetched
    /// as the index names them.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let named = |e: anyhow::Error| e.context(format!("--model {}", self.model_name));
        let (_, path) = self.source.checkpoint_file().map_err(named)?;
        let shard = |name: &str| self.source.shard(&path, name);
        Checkpoint::open_with(&path, Weights::Mapped, &shard).map_err(named)
    }

    /// The sparse autoencoder `--sae spec` names: a directory, or a hub repository's folder
    /// (at `revision`), fetched through the hub cache.
    /// It comes with the model's hook it reads (checked against `cfg`) and whether it reads
    /// a centred stream (`centered`: `--sae-centered`, else what its cfg.json says).
    pub fn sae(
        &self,
        spec: &str,
        revision: Option<&str>,
        centered: bool,
        cfg: &Config,
    ) -> Result<(Sae, Hook, bool)> {
        let named = |e: anyhow::Error| e.context(format!("--sae {spec}"));
        if let Some(kept) = self.kept_saes.get() {
            let Some((_, sae)) = kept.iter().find(|(s, _)| s == spec) else {
                let served: Vec<&str> = kept.iter().map(|(s, _)| s.as_str()).collect();
                return Err(usage(match served.is_empty() {
                    true => format!(
                        "--sae {spec}: this server serves no SAE; start it with serve --sae DIR"
                    ),
                    false => format!("--sae {spec}: this server serves {}", served.join(", ")),
                }));
            };
            let hook = sae.hook(cfg).map_err(named)?;
            let centered = centered || sae.cfg.centered == Some(true);
            return Ok((sae.clone(), hook, centered));
        }
        let source = SaeSource::resolve(spec, revision, Hub::from_env()).map_err(named)?;
        let cfg_path = source.file("cfg.json").map_err(named)?;
        let weights = source.file("sae_weights.safetensors").map_err(named)?;
        let mut sae =
            Sae::load_from(&cfg_path, &weights, std::path::Path::new(spec)).map_err(named)?;
        if let Some(p) = source
            .optional_file("sparsity.safetensors")
            .map_err(named)?
        {
            sae.read_sparsity(&p).map_err(named)?;
        }
        let hook = sae.hook(cfg).map_err(named)?;
        let centered = centered || sae.cfg.centered == Some(true);
        Ok((sae, hook, centered))
    }

    /// The transcoder set `--transcoders` names: a local folder, or a hub repository (or its
    /// folder) fetched into the verified cache; its scan named as circuit-tracer names a
    /// hub set's (`ORG/NAME`, `ORG/NAME//FOLDER`, `@REVISION` when one is given).
    pub fn transcoders(
        &self,
        spec: &str,
        revision: Option<&str>,
        cfg: &Config,
    ) -> Result<TranscoderSet> {
        let named = |e: anyhow::Error| e.context(format!("--transcoders {spec}"));
        if let Some(kept) = self.kept_transcoders.get() {
            return match kept.iter().find(|(s, _)| s == spec) {
                Some((_, set)) => Ok(set.clone()),
                None => Err(usage(match kept.is_empty() {
                    true => format!(
                        "--transcoders {spec}: this server serves no transcoders; start it \
                         with serve --transcoders DIR"
                    ),
                    false => format!(
                        "--transcoders {spec}: this server serves {}",
                        (kept.iter().map(|(s, _)| s.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })),
            };
        }
        let path = std::path::Path::new(spec);
        if path.is_dir() {
            return TranscoderSet::load(path, cfg).map_err(named);
        }
        let at = HubFolder::parse(spec).map_err(|e| usage(format!("--transcoders {e}")))?;
        let hub = Hub::from_env();
        let rev = revision.unwrap_or("main");
        let config = match hub.file(&at.repo_id, rev, &at.path("config.yaml")) {
            Ok(config) => config,
            // No circuit-tracer config: sparsify's or SAELens's folders, by name.
            Err(e) => match layers_from_hub(&hub, &at, rev, cfg.n_layer).map_err(named)? {
                Some(dir) => return TranscoderSet::load(&dir, cfg).map_err(named),
                None => return Err(named(e)),
            },
        };
        let info = match &at.folder {
            Some(f) => format!("{}//{f}", at.repo_id),
            None => at.repo_id.clone(),
        };
        let scan = match revision {
            Some(r) => format!("{info}@{r}"),
            None => info,
        };
        let file = |name: &str| hub.file(&at.repo_id, rev, &at.path(name));
        TranscoderSet::load_from(&config, &scan, &file, path, cfg).map_err(named)
    }

    /// The lens `--lens` names, a tuned lens read from its directory and checked against
    /// the model (`cfg`).
    pub fn lens(&self, arg: &crate::cli::LensArg, cfg: &Config) -> Result<Lens> {
        if let (Some(kept), false) = (self.kept_lenses.get(), *arg == crate::cli::LensArg::Logit) {
            return match kept.iter().find(|(a, _)| a == arg) {
                Some((_, lens)) => Ok(lens.clone()),
                None => Err(usage(format!(
                    "--lens {}: this server serves {}",
                    arg.spec(),
                    (std::iter::once("logit".to_string()))
                        .chain(kept.iter().map(|(a, _)| a.spec()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            };
        }
        match arg {
            crate::cli::LensArg::Logit => Ok(Lens::Logit),
            crate::cli::LensArg::Tuned(spec) => {
                let read = || -> Result<Lens> {
                    let source = SaeSource::resolve(spec, None, Hub::from_env())?;
                    let config = source.file("config.json")?;
                    let params = source.file("params.pt")?;
                    let t = crate::load::tuned_lens::read(&config, &params, cfg)?;
                    Ok(Lens::Tuned(Arc::new(t)))
                };
                read().map_err(|e| e.context(format!("--lens tuned:{spec}")))
            }
            crate::cli::LensArg::Jacobian(spec) => {
                let read = || -> Result<Lens> {
                    let path = crate::load::source::file(spec, Hub::from_env())?;
                    let j = crate::load::jacobian_lens::read(&path, cfg)?;
                    Ok(Lens::Jacobian(Arc::new(j)))
                };
                read().map_err(|e| e.context(format!("--lens jlens:{spec}")))
            }
        }
    }

    /// Feature ids named by flags, each checked to be one of `sae`'s (a usage error).
    pub fn check_features(
        &self,
        spec: &str,
        sae: &Sae,
        ids: impl IntoIterator<Item = usize>,
    ) -> Result<()> {
        match ids.into_iter().find(|&f| f >= sae.cfg.d_sae) {
            Some(f) => Err(usage(format!(
                "feature {f} is out of range: the SAE in {spec} has {} features (0 to {})",
                sae.cfg.d_sae,
                sae.cfg.d_sae - 1
            ))),
            None => Ok(()),
        }
    }

    /// The embeddings and at least the first `n_blocks` blocks (see [`Gpt2::load`]): the
    /// kept model, else loaded for this call.
    pub fn model(&self, cfg: &Config, n_blocks: usize) -> Result<Arc<Gpt2>> {
        if let Some(m) = self.kept.get() {
            return Ok(m.clone());
        }
        let ckpt = self.checkpoint()?;
        Ok(Arc::new(Gpt2::load(
            &ckpt,
            cfg,
            n_blocks,
            &self.device,
            self.dtype,
        )?))
    }

    /// A session sharing this one's model, tokenizer and config, printing as `output` says.
    pub fn with_output(&self, output: Output) -> Session {
        Session {
            output,
            ..self.clone()
        }
    }

    /// Loads the SAEs `specs` name once (each checked against the model) and keeps them:
    /// every later call may name only these, and finds them loaded (a server's `--sae`).
    pub fn keep_saes(&self, specs: &[String]) -> Result<()> {
        let cfg = self.config()?;
        let mut kept = Vec::new();
        for spec in specs {
            let (sae, _, _) = self.sae(spec, None, false, cfg)?;
            kept.push((spec.clone(), sae));
        }
        let _ = self.kept_saes.set(kept);
        Ok(())
    }

    /// Loads the transcoder sets `specs` names once, checked against the model; from then on
    /// they are the only sets this session (a server's) reads.
    pub fn keep_transcoders(&self, specs: &[String]) -> Result<()> {
        let cfg = self.config()?;
        let kept = (specs.iter())
            .map(|s| Ok((s.clone(), self.transcoders(s, None, cfg)?)))
            .collect::<Result<Vec<_>>>()?;
        let _ = self.kept_transcoders.set(kept);
        Ok(())
    }

    /// Loads `lenses` once, checked against the model; from then on they (and the logit
    /// lens) are the only lenses this session (a server's) reads.
    pub fn keep_lenses(&self, lenses: &[crate::cli::LensArg]) -> Result<()> {
        let cfg = self.config()?;
        let kept = (lenses.iter())
            .map(|a| Ok((a.clone(), self.lens(a, cfg)?)))
            .collect::<Result<Vec<_>>>()?;
        let _ = self.kept_lenses.set(kept);
        Ok(())
    }

    /// Loads the whole model once and keeps it for every later call (a server's).
    pub fn keep_model(&self) -> Result<()> {
        let cfg = self.config()?;
        let model = self.model(cfg, cfg.n_layer)?;
        self.kept.get_or_init(|| model);
        Ok(())
    }
}

/// Every id given by `flag` is one the tokenizer has: out of range is misuse.
fn in_tokenizer(tokenizer: &Tokenizer, ids: &[u32], flag: &str) -> Result<()> {
    let v = tokenizer.vocab_size();
    match ids.iter().find(|&&id| id as usize >= v) {
        Some(bad) => Err(usage(format!(
            "{flag}: token id {bad} is out of range: the tokenizer has ids 0 to {}",
            v - 1
        ))),
        None => Ok(()),
    }
}

/// Every id is a row of the model's embedding: a tokenizer that disagrees with the config
/// is an error, an id given by `--ids` (`given`) is misuse.
fn in_vocabulary(ids: &[Vec<u32>], cfg: &Config, given: bool) -> Result<()> {
    let v = cfg.vocab_size;
    let Some(&bad) = ids.iter().flatten().find(|&&id| id as usize >= v) else {
        return Ok(());
    };
    Err(match given {
        false => anyhow::anyhow!(
            "token id {bad} is outside the model's vocabulary of {v} (tokenizer and config disagree)"
        ),
        true => usage(format!(
            "--ids: token id {bad} is out of range: the model has ids 0 to {}",
            v - 1
        )),
    })
}

/// The texts of a run, where they came from (`--lines`) and each one's tokens or why it is
/// refused.
type Encodings = (Vec<String>, Option<Lines>, Vec<Result<Encoded>>);

/// What a command does with a text that cannot be run (too long, too short for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Each {
    /// The first such text is the run's error, before anything runs.
    Strict,
    /// With --lines (and without --fail-fast) such a text is not run and the others are:
    /// for commands that write each text's failure in its place ([`Texts::run`]).
    Lines,
}

/// How a command takes its texts: within which limit, and what a text that cannot be run
/// does to the run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Take {
    /// `None`: the model's (`--max-length`, else n_positions).
    pub limit: Option<Limit>,
    pub each: Each,
}

impl Take {
    /// Within the model's limit; the first text that cannot run is the error.
    pub const STRICT: Take = Take {
        limit: None,
        each: Each::Strict,
    };
    /// Within the model's limit; with `--lines`, every text that can run does.
    pub const EACH: Take = Take {
        limit: None,
        each: Each::Lines,
    };
}

impl Session {
    /// The texts of `input`, encoded and checked against `cfg` as `take` says.
    pub(crate) fn prepare(&self, input: &TextArgs, cfg: &Config, take: Take) -> Result<Texts> {
        let Take { limit, each } = take;
        let limit = match limit {
            Some(limit) => limit,
            None => token_limit(input, cfg)?,
        };
        let tokenizer = self.tokenizer()?;
        let (mut texts, lines, encoded) = self.encode(&tokenizer, input, Some(limit))?;
        let lenient = each == Each::Lines && lines.is_some() && !input.fail_fast;
        let mut failed = Vec::new();
        let mut tokens = Vec::with_capacity(texts.len());
        let mut truncated = vec![None; texts.len()];
        for (i, t) in encoded.into_iter().enumerate() {
            match t {
                Ok(Encoded { tokens: t, cut }) => {
                    if let Some((kept, cut)) = cut {
                        texts[i] = kept;
                        truncated[i] = Some(cut);
                    }
                    tokens.push(t);
                }
                Err(e) if !lenient => return Err(e),
                Err(e) => {
                    failed.push((i, format!("{e:#}")));
                    tokens.push(Vec::new());
                }
            }
        }
        let ids: Vec<Vec<u32>> = tokens
            .iter()
            .map(|tokens| tokens.iter().map(|t| t.id).collect())
            .collect();
        in_vocabulary(&ids, cfg, !input.ids.is_empty())?;
        Ok(Texts {
            texts,
            cfg: cfg.clone(),
            pad: pad_id(&tokenizer, Some(cfg.vocab_size)),
            batch_size: input.batch_size as usize,
            tokenizer,
            tokens,
            ids,
            lines,
            failed,
            lenient,
            truncated,
        })
    }

    /// The texts of `input` (read, or spelled by `--ids`), where they came from and each
    /// one's tokens within `limit` (none: every token) or why it is refused.
    pub(crate) fn encode(
        &self,
        tokenizer: &Tokenizer,
        input: &TextArgs,
        limit: Option<Limit>,
    ) -> Result<Encodings> {
        let bos = self.bos(tokenizer)?;
        if !input.ids.is_empty() {
            let seqs: Vec<Vec<u32>> = input.ids.iter().map(|t| t.0.clone()).collect();
            for ids in &seqs {
                in_tokenizer(tokenizer, ids, "--ids")?;
            }
            let name = |i| which_text(i, seqs.len());
            let (texts, encoded) = encode_ids(tokenizer, &seqs, limit, input.truncate, bos, &name)?;
            return Ok((texts, None, encoded));
        }
        let Input { texts, lines } = read(input)?;
        let name = |i| text_name(i, texts.len(), lines.as_ref());
        let encoded = encode_each(tokenizer, &texts, limit, input.truncate, bos, &name)?;
        Ok((texts, lines, encoded))
    }

    /// [`prepare`](Self::prepare) and [`model`](Self::model) at once: building GPT-2's
    /// tokenizer (about 0.1 s, its 50k merges parsed from JSON) overlaps loading the
    /// weights. `cfg` is the [`config`](Self::config) the caller checked its arguments
    /// against; a problem with the text is reported before one with the weights.
    pub(crate) fn prepare_and_load(
        &self,
        input: &TextArgs,
        cfg: &Config,
        n_blocks: usize,
        take: Take,
    ) -> Result<(Texts, Arc<Gpt2>)> {
        std::thread::scope(|s| {
            let text = s.spawn(|| self.prepare(input, cfg, take));
            let model = self.model(cfg, n_blocks);
            let prepared = text
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            Ok((prepared, model?))
        })
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

/// Layer `i`'s folder name, and the config and weights in it.
type LayerFolders = (fn(usize) -> String, [&'static str; 2]);

/// The folder names and files of the transcoder sets kept a folder a layer that a hub
/// folder is probed for when it has no circuit-tracer config: sparsify's `h.{i}.mlp/`, and
/// SAELens's named by the hook they read, `blocks.{i}.ln2.hook_normalized/` (as
/// `save_model` is given them).
const LAYER_FOLDERS: [LayerFolders; 2] = [
    (|i| format!("h.{i}.mlp"), ["cfg.json", "sae.safetensors"]),
    (
        |i| format!("blocks.{i}.ln2.hook_normalized"),
        ["cfg.json", "sae_weights.safetensors"],
    ),
];

/// A set kept a folder a layer ([`LAYER_FOLDERS`]) fetched from the hub folder `at` into
/// the cache: the folder holding the layers' folders, or `None` when the hub has neither
/// kind's first config there.
fn layers_from_hub(
    hub: &Hub,
    at: &HubFolder,
    rev: &str,
    n_layer: usize,
) -> Result<Option<std::path::PathBuf>> {
    for (folder, files) in LAYER_FOLDERS {
        let probe = format!("{}/{}", folder(0), files[0]);
        let Some(first) = hub.optional(&at.repo_id, rev, &at.path(&probe))? else {
            continue;
        };
        for i in 0..n_layer {
            for f in files {
                hub.file(&at.repo_id, rev, &at.path(&format!("{}/{f}", folder(i))))?;
            }
        }
        let dir = first.parent().and_then(|p| p.parent());
        return dir
            .map(|d| Some(d.to_path_buf()))
            .ok_or_else(|| anyhow::anyhow!("{} lies in no folder", first.display()));
    }
    Ok(None)
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
