//! Command-line interface. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Open up GPT-2 and see what happens inside: tokens, embeddings, attention, next-token
/// probabilities. Numbers match Hugging Face transformers' GPT2LMHeadModel.
#[derive(Debug, Parser)]
// Negative numbers are values, so `--layer -1` is refused by the value's own range check,
// naming the flag, instead of being taken for an unknown flag.
#[command(
    name = "gpt2-inspect",
    version,
    propagate_version = true,
    mut_subcommands = |c: clap::Command| c.mut_args(|a| a.allow_negative_numbers(true))
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Model: a Hugging Face id (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2, or any
    /// GPT-2 repository) fetched into the Hugging Face cache, or a local directory with
    /// config.json, model.safetensors and tokenizer.json (or vocab.json + merges.txt)
    #[arg(long, global = true, default_value = "gpt2", value_name = "ID|DIR")]
    pub model: String,

    /// Revision (branch, tag or commit) of a hub model
    #[arg(long, global = true)]
    pub revision: Option<String>,

    /// Data type the weights are computed in
    #[arg(long, global = true, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,

    /// Where to compute (cuda and metal need a build with the feature of that name)
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,

    /// Machine-readable JSON on stdout instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    /// Put <|endoftext|> before every text, as TransformerLens does by default
    /// (`prepend_bos=True`). Off: Hugging Face's tokenization, the text alone
    #[arg(long, global = true)]
    pub prepend_bos: bool,

    /// Colour (heatmaps): `auto` in a terminal unless NO_COLOR is set, `always`, `never`
    /// (plain numbers). Truecolor when COLORTERM says so, else 256 colours
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    F32,
    F16,
    Bf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    Metal,
}

/// Where the text comes from, and what to do with texts longer than the model's context.
#[derive(Debug, Args)]
pub struct TextArgs {
    /// The text; several texts run as one right-padded batch, each reported as if run
    /// alone. `-` reads standard input. Omitted: standard input when it is not a terminal,
    /// else a sample sentence. One trailing newline of standard input or a file is dropped.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,

    /// Read the text from a file
    #[arg(long, value_name = "PATH", conflicts_with = "texts")]
    pub file: Option<PathBuf>,

    /// With --file: one text per line, run as a batch (empty lines are skipped)
    #[arg(long, requires = "file", conflicts_with = "texts")]
    pub lines: bool,

    /// A text longer than the limit (n_positions, or --max-length) keeps its last tokens
    /// (`left`: cut from the start; the choice for next-token prediction) or its first
    /// (`right`). Without it such a text is an error. What is cut is reported on stderr.
    #[arg(long, value_enum, value_name = "SIDE")]
    pub truncate: Option<Truncate>,

    /// Lower the limit on tokens per text below the model's n_positions
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_length: Option<u32>,

    /// Run at most N texts as one padded batch (texts of similar length together); results
    /// are written in input order as each batch is done
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Truncate {
    /// Keep the last tokens
    Left,
    /// Keep the first tokens
    Right,
}

#[derive(Debug, Args)]
pub struct TopKArgs {
    /// How many candidate tokens to show
    #[arg(long, short = 'k', default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split text into GPT-2 tokens: ids, BPE symbols, decoded text, byte offsets
    Tokenize(TokenizeArgs),
    /// The most likely next tokens after the text, with probabilities
    Next(NextArgs),
    /// Attention probabilities of a head, a layer or every layer
    Attention(AttentionArgs),
    /// The model's configuration, parameter count and every weight tensor
    Info(InfoArgs),
    /// The whole data flow, text to next token: every stage's name, shape and dtype
    Trace(TraceArgs),
    /// Token and position embeddings of each token, and their sum (the input of block 0)
    Embed(EmbedArgs),
    /// The hidden state HF returns as hidden_states[I], or per-token norms at every layer
    Hidden(HiddenArgs),
    /// The logit lens: what the residual stream predicts after each layer
    Lens(LensArgs),
    /// Every activation name (TransformerLens scheme) with its shape
    Hooks(HooksArgs),
    /// Write activations to a safetensors file (for numpy or torch)
    Dump(DumpArgs),
    /// How surprised the model is by each token: log-probability, rank, perplexity
    Score(ScoreArgs),
    /// Continue the text token by token (greedy, or sampled), using a key/value cache
    Generate(GenerateArgs),
    /// One self-contained HTML page to explore: tokens, every head's attention, logit lens,
    /// next tokens. Opens from disk and works offline
    Report(ReportArgs),
    /// Activation patching: which layer and position (or head) of the clean run restores
    /// its answer when put into the corrupt run
    Patch(PatchArgs),
    /// Remove heads or MLPs (zero or mean) and see the next-token prediction change
    Ablate(AblateArgs),
    /// Direct logit attribution: how much each head, MLP and embedding writes toward the
    /// answer at one position
    Attribute(AttributeArgs),
    /// Score every head as previous-token, first-token, induction or duplicate-token head on a
    /// sequence repeated twice
    Heads(HeadsArgs),
}

/// `info` takes no options of its own.
#[derive(Debug, Args)]
pub struct InfoArgs {}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Output file (.html); replaced atomically if it exists
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,

    #[command(flatten)]
    pub top_k: TopKArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Generate at most N tokens
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_new_tokens: u32,

    /// Sample at this temperature; omitted or 0: greedy (the most likely token every step)
    /// unless --top-k or --top-p asks for sampling (then 1)
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,

    /// Sample among the K most likely tokens only
    #[arg(long, value_name = "K",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: Option<u32>,

    /// Nucleus sampling: among the most likely tokens whose probabilities add up to P (0 < P ≤ 1)
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,

    /// Seed of the sampler: the same seed gives the same text
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,

    /// Keep generating after <|endoftext|>
    #[arg(long)]
    pub ignore_eos: bool,

    /// One line per token: its probability and the most likely alternatives
    #[arg(long)]
    pub show_probs: bool,

    /// How many alternatives --show-probs and --json list per step
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub alternatives: u32,

    /// Record, for each generated token, where this layer's head (--attention-head) attended
    #[arg(long, value_name = "L", requires = "attention_head")]
    pub attention_layer: Option<usize>,

    /// The head for --attention-layer
    #[arg(long, value_name = "H", requires = "attention_layer")]
    pub attention_head: Option<usize>,

    /// Run the whole sequence again for every token instead of using the key/value cache
    /// (slower; the same tokens, for comparison)
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub input: TextArgs,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub input: TextArgs,

    #[command(flatten)]
    pub top_k: TopKArgs,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Also list the N vocabulary tokens whose wte rows are closest (cosine) to each token's
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub nearest: Option<u32>,
}

#[derive(Debug, Args)]
pub struct HiddenArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Which hidden state: 0 is the embeddings, n_layer is after ln_f (as HF's
    /// hidden_states[I]); omitted: per-token norms at every layer
    #[arg(long, short = 'l')]
    pub layer: Option<usize>,
}

#[derive(Debug, Args)]
pub struct LensArgs {
    #[command(flatten)]
    pub input: TextArgs,

    #[command(flatten)]
    pub top_k: TopKArgs,

    /// Token position to read (0-based); omitted: the last
    #[arg(long)]
    pub position: Option<usize>,
}

#[derive(Debug, Args)]
pub struct HooksArgs {
    /// Sequence length to put in the shapes; omitted: shapes say T
    #[arg(long, value_name = "T",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub seq_len: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Output file (.safetensors); replaced atomically if it exists
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,

    /// Activations to write, as glob patterns over the names `hooks` lists
    /// (`blocks.*.attn.hook_pattern`); repeatable; omitted: all
    #[arg(long = "hook", value_name = "PATTERN")]
    pub hooks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    pub input: TextArgs,
}

#[derive(Debug, Args)]
pub struct NextArgs {
    #[command(flatten)]
    pub input: TextArgs,

    #[command(flatten)]
    pub top_k: TopKArgs,
}

#[derive(Debug, Args)]
pub struct AttentionArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Layer (0-based); omitted: every layer
    #[arg(long, short = 'l')]
    pub layer: Option<usize>,

    /// Head (0-based); omitted: every head of the layer(s)
    #[arg(long)]
    pub head: Option<usize>,

    /// Also show the scaled pre-softmax scores QKᵀ/√d_head (masked positions blank / null)
    #[arg(long)]
    pub scores: bool,

    /// Also show the head's query, key and value vectors
    #[arg(long)]
    pub qkv: bool,

    /// Output layout: `table` (a heatmap in a colour terminal), or `bertviz` for
    /// {"tokens", "all": [L][H][T][T]} JSON as BertViz's head_view loaders take it
    #[arg(long, value_enum, default_value_t = AttentionFormat::Table)]
    pub format: AttentionFormat,

    /// Every head of the layer (or of every layer) as a grid of small maps
    #[arg(long, conflicts_with = "head")]
    pub all_heads: bool,

    /// Write each probability in its heatmap cell (terminal and --svg)
    #[arg(long)]
    pub annot: bool,

    /// Show positions START..END only (0-based, END excluded, on both axes; either may be
    /// left out: `10:`, `:20`). Probabilities stay those of the whole text
    #[arg(long, value_name = "START:END", value_parser = parse_window)]
    pub window: Option<Window>,

    /// Also write the heatmap (a grid for several heads) as a standalone SVG figure
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `--window START:END`, either end open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Option<usize>,
    pub end: Option<usize>,
}

fn parse_window(s: &str) -> Result<Window, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not START:END (for example 0:16, 10: or :20)"))?;
    let num = |x: &str| -> Result<Option<usize>, String> {
        match x.trim() {
            "" => Ok(None),
            x => x
                .parse()
                .map(Some)
                .map_err(|_| format!("`{x}` is not a position (a number from 0)")),
        }
    };
    Ok(Window {
        start: num(a)?,
        end: num(b)?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttentionFormat {
    Table,
    Bertviz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatchSite {
    /// The residual stream entering each block, one position at a time
    #[value(name = "resid_pre")]
    ResidPre,
    /// Each block's attention output, one position at a time
    #[value(name = "attn_out")]
    AttnOut,
    /// Each block's MLP output, one position at a time
    #[value(name = "mlp_out")]
    MlpOut,
    /// Each head's z at every position
    Head,
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    /// The text whose answer is right
    #[arg(long, value_name = "TEXT")]
    pub clean: String,
    /// The same number of tokens, changed so the answer changes
    #[arg(long, value_name = "TEXT")]
    pub corrupt: String,
    /// The clean run's answer: a text of exactly one token (mind the leading space)
    #[arg(long, value_name = "TOKEN")]
    pub answer: String,
    /// The corrupt run's answer: one token
    #[arg(long, value_name = "TOKEN")]
    pub wrong: String,
    /// Which activations to patch
    #[arg(long, value_enum, default_value_t = PatchSite::ResidPre)]
    pub site: PatchSite,
    /// Also draw the grid as an SVG figure (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AblateMode {
    /// Set to 0
    Zero,
    /// Replace by its mean over the text's positions
    Mean,
}

#[derive(Debug, Args)]
pub struct AblateArgs {
    #[command(flatten)]
    pub input: TextArgs,
    /// A head to remove, as LAYER.HEAD (repeatable)
    #[arg(long = "head", value_name = "L.H")]
    pub heads: Vec<String>,
    /// An MLP to remove, by layer (repeatable)
    #[arg(long = "mlp", value_name = "L")]
    pub mlps: Vec<usize>,
    #[arg(long, value_enum, default_value_t = AblateMode::Zero)]
    pub mode: AblateMode,
    /// The token whose log-probability to follow (one token); default: the unablated top token
    #[arg(long, value_name = "TOKEN")]
    pub answer: Option<String>,
    /// Ablate every head in turn (zero) instead: the change in the answer's log-probability
    #[arg(long, conflicts_with_all = ["heads", "mlps"])]
    pub sweep: bool,
    /// With --sweep: also draw the layer × head grid as an SVG figure
    #[arg(long, value_name = "FILE", requires = "sweep")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub top_k: TopKArgs,
}

#[derive(Debug, Args)]
pub struct AttributeArgs {
    #[command(flatten)]
    pub input: TextArgs,
    /// The token whose logit to explain (one token)
    #[arg(long, value_name = "TOKEN")]
    pub answer: String,
    /// Explain logit[answer] − logit[wrong] instead (one token)
    #[arg(long, value_name = "TOKEN")]
    pub wrong: Option<String>,
    /// Position to explain (default: the last)
    #[arg(long, value_name = "P")]
    pub position: Option<usize>,
    /// Also draw the grid as an SVG figure (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HeadsArgs {
    /// The sequence s to repeat (x = s + s); without it, N random token ids
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,
    /// Length of the random sequence
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(2..=512))]
    pub seq_len: u32,
    /// Seed of the random sequence
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also draw the grid as an SVG figure (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}
