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
    version = env!("GPT2_INSPECT_VERSION"),
    propagate_version = true,
    after_help = ENVIRONMENT,
    mut_subcommands = |c: clap::Command| c.mut_args(|a| a.allow_negative_numbers(true))
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level help's last section.
const ENVIRONMENT: &str = "\
Examples:
  gpt2-inspect next \"The quick brown fox\"
  gpt2-inspect attention \"When Mary and John went to the store\" --layer 5 --head 1
  gpt2-inspect --model tests/fixtures/tiny-gpt2 tokenize \"Hello world\"   (offline: the bundled tiny model)
  gpt2-inspect <COMMAND> --help          (each command's options and examples)

Environment:
  HF_HOME          Hugging Face's directory (default ~/.cache/huggingface); the hub cache is HF_HOME/hub
  HF_HUB_CACHE     The hub cache itself, shared with Python's huggingface_hub
  HF_HUB_OFFLINE   1: never use the network, only what is cached
  HF_TOKEN         Access token for gated or private repositories (else HF_HOME/token)
  HF_ENDPOINT      The hub's address (default https://huggingface.co)
  NO_COLOR         Set and not empty: no colour unless --color always
  COLORTERM        truecolor or 24bit: 24-bit colour in heatmaps, else 256 colours
  COLUMNS          Width to lay out for when standard output is not a terminal";

impl Cli {
    /// The parsed command line, and a warning for each global option given that the
    /// command has no use for (`--dtype` on `tokenize`): said, not silently dropped.
    pub fn parse_and_check() -> (Cli, Vec<String>) {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let mut warnings = Vec::new();
        if let Some((name, sub)) = matches.subcommand() {
            for g in cli.command.unused_globals() {
                if sub.value_source(g.id()) == Some(clap::parser::ValueSource::CommandLine) {
                    let flag = g.id().replace('_', "-");
                    warnings.push(format!("--{flag} does nothing for `{name}`; ignored"));
                }
            }
        }
        (cli, warnings)
    }
}

/// The global options, by name: what [`Command::unused_globals`] speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    Model,
    Revision,
    Dtype,
    Device,
    Json,
    Jsonl,
    Csv,
    Tsv,
    PrependBos,
    Color,
}

impl Global {
    pub const ALL: [Global; 10] = [
        Global::Model,
        Global::Revision,
        Global::Dtype,
        Global::Device,
        Global::Json,
        Global::Jsonl,
        Global::Csv,
        Global::Tsv,
        Global::PrependBos,
        Global::Color,
    ];

    /// Its clap id (the field of [`GlobalArgs`]); a unit test holds them to the parser.
    pub fn id(self) -> &'static str {
        match self {
            Global::Model => "model",
            Global::Revision => "revision",
            Global::Dtype => "dtype",
            Global::Device => "device",
            Global::Json => "json",
            Global::Jsonl => "jsonl",
            Global::Csv => "csv",
            Global::Tsv => "tsv",
            Global::PrependBos => "prepend_bos",
            Global::Color => "color",
        }
    }
}

impl Command {
    /// Global options this command does not use (a warning names them when given).
    pub fn unused_globals(&self) -> &'static [Global] {
        use Global::*;
        const NOT_RUN: &[Global] = &[Dtype, Device, Color];
        const NO_MODEL: &[Global] = &Global::ALL;
        match self {
            Command::Tokenize(_) => NOT_RUN,
            Command::Info(_) | Command::Hooks(_) => &[Dtype, Device, Color, PrependBos],
            Command::Completions(_) | Command::Man(_) => NO_MODEL,
            Command::Attention(_)
            | Command::Patch(_)
            | Command::Circuit(_)
            | Command::Ablate(_)
            | Command::Attribute(_)
            | Command::Saliency(_)
            | Command::Heads(_)
            | Command::Features(_) => &[],
            // --all-positions draws a coloured heatmap.
            Command::Lens(a) if a.all_positions => &[],
            Command::Feature(_) => &[Color],
            Command::Next(_)
            | Command::Trace(_)
            | Command::Embed(_)
            | Command::Hidden(_)
            | Command::Lens(_)
            | Command::Dump(_)
            | Command::Score(_)
            | Command::Generate(_)
            | Command::Report(_) => &[Color],
        }
    }
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Model: a Hugging Face id (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2, or any
    /// GPT-2 repository) fetched into the Hugging Face cache, or a local directory with
    /// config.json, a checkpoint (model.safetensors, pytorch_model.bin, or the index of
    /// their shards: the first of these, as transformers picks) and tokenizer.json (or
    /// vocab.json + merges.txt)
    #[arg(
        help_heading = "Global options",
        long,
        global = true,
        default_value = "gpt2",
        value_name = "ID|DIR"
    )]
    pub model: String,

    /// Revision (branch, tag or commit) of a hub model
    #[arg(help_heading = "Global options", long, global = true)]
    pub revision: Option<String>,

    /// Data type the weights are computed in (for commands that run the model)
    #[arg(help_heading = "Global options", long, global = true, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,

    /// Where to compute, for commands that run the model (cuda and metal need a build with
    /// the feature of that name)
    #[arg(help_heading = "Global options", long, global = true, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,

    /// Machine-readable JSON on stdout instead of tables
    #[arg(help_heading = "Global options", long, global = true)]
    pub json: bool,

    /// JSON Lines: one object per text, each written as soon as it is done (implies --json).
    /// The same object for one text or many: the shape scripts should rely on
    #[arg(help_heading = "Global options", long, global = true)]
    pub jsonl: bool,

    /// Tables as CSV: each report one tidy table (a row per token, cell or edge) with a
    /// header line, a `text` column first when the command takes texts
    #[arg(help_heading = "Global options", long, global = true, conflicts_with_all = ["json", "jsonl", "tsv"])]
    pub csv: bool,

    /// The same tables tab-separated
    #[arg(help_heading = "Global options", long, global = true, conflicts_with_all = ["json", "jsonl"])]
    pub tsv: bool,

    /// Put <|endoftext|> before every text, as TransformerLens does by default
    /// (`prepend_bos=True`). Off: Hugging Face's tokenization, the text alone
    #[arg(help_heading = "Global options", long, global = true)]
    pub prepend_bos: bool,

    /// Colour of heatmaps (attention and the circuit commands): `auto` in a terminal unless NO_COLOR is set, `always`, `never`
    /// (plain numbers). Truecolor when COLORTERM says so, else 256 colours
    #[arg(help_heading = "Global options", long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
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

/// TEXT's help for the commands that explain one text (report, ablate, attribute, saliency).
const ONE_TEXT: &str = "The text (one: this command explains a single text). `-` reads standard \
input. Omitted: standard input when it is not a terminal, else a sample sentence";

/// Where the text comes from, and what to do with texts longer than the model's context.
#[derive(Debug, Args)]
pub struct TextArgs {
    /// The text; several texts run as one right-padded batch, each reported as if run
    /// alone. `-` reads standard input. Omitted: standard input when it is not a terminal,
    /// else a sample sentence. One trailing newline of standard input or a file is dropped.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,

    /// The text as token ids, comma-separated (`464,3797,3332`), instead of TEXT; repeat it
    /// for several texts. The text shown is what the tokens spell
    #[arg(
        help_heading = "Input options",
        long = "ids",
        value_name = "IDS",
        value_parser = token_ids,
        conflicts_with_all = ["texts", "file", "lines"]
    )]
    pub ids: Vec<TokenIds>,

    /// Read the text from a file (`-`: standard input)
    #[arg(
        help_heading = "Input options",
        long,
        value_name = "PATH",
        conflicts_with = "texts"
    )]
    pub file: Option<PathBuf>,

    /// One text per line (of --file, or of standard input), run in batches; empty lines are
    /// skipped. A line that cannot be run (too long, too short for the command) is reported
    /// by its line number and the others still run; the exit code is then 1
    #[arg(help_heading = "Input options", long)]
    pub lines: bool,

    /// With --lines: stop before running anything when a line cannot be run
    #[arg(help_heading = "Input options", long, requires = "lines")]
    pub fail_fast: bool,

    /// A text longer than the limit (n_positions, or --max-length) keeps its last tokens
    /// (`left`: cut from the start; the choice for next-token prediction) or its first
    /// (`right`). Without it such a text is an error. What is cut is reported on stderr.
    #[arg(help_heading = "Input options", long, value_enum, value_name = "SIDE")]
    pub truncate: Option<Truncate>,

    /// Lower the limit on tokens per text below the model's n_positions
    #[arg(help_heading = "Input options", long, value_name = "N",
          value_parser = at_least_one)]
    pub max_length: Option<u32>,

    /// Run at most N texts as one padded batch (texts of similar length together); results
    /// are written in input order as each batch is done
    #[arg(help_heading = "Input options", long, value_name = "N", default_value_t = 16,
          value_parser = at_least_one)]
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
    #[arg(long, short = 'k', value_name = "N", default_value_t = 5,
          value_parser = at_least_one)]
    pub top_k: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split text into GPT-2 tokens: ids, BPE symbols, decoded text, byte offsets
    #[command(
        after_help = "Examples:\n  gpt2-inspect tokenize \"Hello world\"\n  gpt2-inspect tokenize --json \"naïve café\"\n  echo \"one line of text\" | gpt2-inspect tokenize"
    )]
    Tokenize(TokenizeArgs),
    /// The most likely next tokens after the text, with probabilities
    #[command(
        after_help = "Examples:\n  gpt2-inspect next \"The quick brown fox\"\n  gpt2-inspect next \"The capital of France is\" -k 10 --json\n  gpt2-inspect next --file prompts.txt --lines --jsonl"
    )]
    Next(NextArgs),
    /// Attention probabilities of a head, a layer or every layer
    #[command(
        after_help = "Examples:\n  gpt2-inspect attention \"When Mary and John went to the store\" --layer 5 --head 1\n  gpt2-inspect attention \"The cat sat on the mat\" --layer 0 --all-heads --svg layer0.svg\n  gpt2-inspect attention \"The cat sat\" --layer 2 --head 3 --scores --annot\n  gpt2-inspect attention \"The cat sat\" --format bertviz > attn.json\n  gpt2-inspect attention \"The cat sat on the mat\" --layer 0 --head 1 --cmap viridis --scale log --title \"Layer 0, head 1\" --svg head.svg\n  gpt2-inspect attention \"The cat sat on the mat\" --all-heads --scale row"
    )]
    Attention(AttentionArgs),
    /// The model's configuration, parameter count and every weight tensor
    #[command(
        after_help = "Examples:\n  gpt2-inspect info\n  gpt2-inspect info --model gpt2-medium --json"
    )]
    Info(InfoArgs),
    /// The whole data flow, text to next token: every stage's name, shape and dtype
    #[command(
        after_help = "Examples:\n  gpt2-inspect trace \"The quick brown fox\"\n  gpt2-inspect trace \"The quick brown fox\" --json"
    )]
    Trace(TraceArgs),
    /// Token and position embeddings of each token, and their sum (the input of block 0)
    #[command(
        after_help = "Examples:\n  gpt2-inspect embed \"king queen\"\n  gpt2-inspect embed \" Paris\" --nearest 10"
    )]
    Embed(EmbedArgs),
    /// The residual stream after D blocks (as lens counts depths), the final hidden state
    /// after ln_f, or per-token norms of all
    #[command(
        after_help = "Examples:\n  gpt2-inspect hidden \"The quick brown fox\"\n  gpt2-inspect hidden \"The quick brown fox\" --depth 12 --json\n  gpt2-inspect hidden \"The quick brown fox\" --depth ln_f --json"
    )]
    Hidden(HiddenArgs),
    /// The logit lens: what the residual stream predicts after each layer
    #[command(
        after_help = "Examples:\n  gpt2-inspect lens \"The Eiffel Tower is in the city of\"\n  gpt2-inspect lens \"The Eiffel Tower is in the city of\" --position 3 -k 3"
    )]
    Lens(LensArgs),
    /// Every activation name (TransformerLens scheme) with its shape
    #[command(
        after_help = "Examples:\n  gpt2-inspect hooks\n  gpt2-inspect hooks --seq-len 8 --json"
    )]
    Hooks(HooksArgs),
    /// Write activations to a safetensors file (for numpy or torch); with --sae, also an
    /// SAE's feature activations at its hook, as HOOK.hook_sae_acts_post (SAELens's name),
    /// (B, T, d_sae) in f32
    #[command(
        after_help = "Examples:\n  gpt2-inspect dump \"The quick brown fox\" -o fox.safetensors\n  gpt2-inspect dump \"The quick brown fox\" -o resid.safetensors --hook \"blocks.*.hook_resid_post\"\n  gpt2-inspect dump \"The quick brown fox\" -o acts.safetensors --hook blocks.8.hook_resid_pre --sae ./my-sae"
    )]
    Dump(DumpArgs),
    /// How surprised the model is by each token: log-probability, rank, perplexity
    #[command(
        after_help = "Examples:\n  gpt2-inspect score \"The quick brown fox jumps over the lazy dog\"\n  gpt2-inspect score --file essay.txt --truncate left --json"
    )]
    Score(ScoreArgs),
    /// Continue the text token by token (greedy, or sampled), using a key/value cache
    #[command(
        after_help = "Examples:\n  gpt2-inspect generate \"The quick brown fox\" -n 20\n  gpt2-inspect generate \"Once upon a time\" -n 50 --temperature 0.8 --sample-top-k 40 --seed 1\n  gpt2-inspect generate \"The quick brown fox\" -n 5 --show-probs -k 3"
    )]
    Generate(GenerateArgs),
    /// One self-contained HTML page to explore: tokens, every head's attention, logit lens,
    /// next tokens. Opens from disk and works offline
    #[command(
        mut_arg("texts", |a| a.help(ONE_TEXT)),
        after_help = "Examples:\n  gpt2-inspect report \"When Mary and John went to the store, John gave a drink to\" -o ioi.html\n  gpt2-inspect report --file chapter.txt --truncate left --neuron-view always -o chapter.html"
    )]
    Report(ReportArgs),
    /// Activation patching: which layer and position (or head) of the clean run restores
    /// its answer when put into the corrupt run
    #[command(
        after_help = "Examples:\n  gpt2-inspect patch --clean \"The Eiffel Tower is in the city of\" --corrupt \"The Colosseum is in the city of\" --answer \" Paris\" --wrong \" Rome\"\n  gpt2-inspect patch --clean \"...\" --corrupt \"...\" --answer \" Paris\" --wrong \" Rome\" --site head --svg heads.svg\n  gpt2-inspect patch --clean \"...\" --corrupt \"...\" --answer \" Paris\" --wrong \" Rome\" --method both"
    )]
    Patch(PatchArgs),
    /// Edge attribution patching: which writer-to-reader edges (head to head's query, key
    /// or value, to MLP, to the logits) carry the clean answer, and how faithful the top
    /// edges are as a circuit
    #[command(
        after_help = "Examples:\n  gpt2-inspect circuit --clean \"When Mary and John went to the store, John gave a drink to\" --corrupt \"When Mary and John went to the store, Mary gave a drink to\" --answer \" Mary\" --wrong \" John\"\n  gpt2-inspect circuit --clean \"...\" --corrupt \"...\" --answer \" Mary\" --wrong \" John\" --ig-steps 5 --faithfulness 10,50,200 --svg ioi.svg --dot ioi.dot"
    )]
    Circuit(CircuitArgs),
    /// Remove heads or MLPs (zero or mean) and see the next-token prediction change
    #[command(
        mut_arg("texts", |a| a.help(ONE_TEXT)),
        after_help = "Examples:\n  gpt2-inspect ablate \"When Mary and John went to the store, John gave a drink to\" --head 9.9 --head 9.6\n  gpt2-inspect ablate \"When Mary and John went to the store, John gave a drink to\" --answer \" Mary\" --sweep"
    )]
    Ablate(AblateArgs),
    /// Direct logit attribution: how much each head, MLP and embedding writes toward the
    /// answer at one position
    #[command(
        mut_arg("texts", |a| a.help(ONE_TEXT)),
        after_help = "Examples:\n  gpt2-inspect attribute \"When Mary and John went to the store, John gave a drink to\" --answer \" Mary\" --wrong \" John\""
    )]
    Attribute(AttributeArgs),
    /// Sparse autoencoder features: which features of an SAE (SAELens's format) fire at each
    /// token, how well they reconstruct the activation, and what the model loses when the
    /// reconstruction stands in for it
    #[command(
        after_help = "Examples:\n  gpt2-inspect features \"The cat sat on the mat\" --sae DIR\n  gpt2-inspect features \"The cat sat on the mat\" --sae DIR -k 10 --json\n\nDIR holds SAELens's cfg.json and sae_weights.safetensors (what SAE.save_model writes)."
    )]
    Features(FeaturesArgs),
    /// One or more SAE features: the tokens each one's decoder direction promotes and
    /// suppresses (W_dec[f] · W_Uᵀ), and with texts (a corpus: --file F --lines) where it
    /// fires most, how often, and how strongly
    #[command(
        after_help = "Examples:\n  gpt2-inspect feature 12 --sae DIR\n  gpt2-inspect feature 12,99,3001 --sae DIR --file corpus.txt --lines\n  gpt2-inspect feature 12 --sae DIR --file corpus.txt --lines --html f12.html\n\nWithout TEXT or --file only the logit tables are shown."
    )]
    Feature(FeatureArgs),
    /// Input attribution: how much each input token matters to the prediction (gradient,
    /// input × gradient, integrated gradients as Captum computes them, or attention rollout)
    #[command(
        mut_arg("texts", |a| a.help(ONE_TEXT)),
        after_help = "Examples:\n  gpt2-inspect saliency \"The capital of France is\"\n  gpt2-inspect saliency \"When Mary and John went to the store, John gave a drink to\" --answer \" Mary\" --wrong \" John\" --method integrated-gradients\n  gpt2-inspect saliency \"The quick brown fox\" --generate 5 --svg fox.svg"
    )]
    Saliency(SaliencyArgs),
    /// Score every head as previous-token, first-token, induction or duplicate-token head on a
    /// sequence repeated twice
    #[command(
        after_help = "Examples:\n  gpt2-inspect heads\n  gpt2-inspect heads --seq-len 100 --seed 7 --svg heads.svg"
    )]
    Heads(HeadsArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per subcommand into a directory
    Man(ManArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gpt2-inspect completions bash > ~/.local/share/bash-completion/completions/gpt2-inspect
  gpt2-inspect completions zsh > ~/.zfunc/_gpt2-inspect
  gpt2-inspect completions fish > ~/.config/fish/completions/gpt2-inspect.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gpt2-inspect man | man -l -
  gpt2-inspect man --dir ~/.local/share/man/man1")]
pub struct ManArgs {
    /// Write gpt2-inspect.1 and gpt2-inspect-<command>.1 into this directory instead
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `info` takes no options of its own.
#[derive(Debug, Args)]
pub struct InfoArgs {}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Output file (.html); replaced atomically if it exists; `-`: standard output
    #[arg(long, short = 'o', value_name = "FILE", default_value = "report.html")]
    pub output: PathBuf,

    /// Whether the page holds every head's q and k for its neuron view (BertViz's q·k view,
    /// not MLP neurons): `auto` when they take at most 16 MB (gpt2: texts up to 170
    /// tokens), `always` (a 256-token gpt2 page then grows from 13 to 38 MB and opens
    /// about twice as slowly), `never`. Was --neuron, which still works
    #[arg(long = "neuron-view", alias = "neuron", value_enum, value_name = "WHEN",
          default_value_t = NeuronData::Auto)]
    pub neuron: NeuronData,

    #[command(flatten)]
    pub top_k: TopKArgs,
}

/// `report --neuron-view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NeuronData {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub input: TextArgs,

    #[command(flatten)]
    pub steer: SteerArgs,

    /// Generate at most N tokens
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20,
          value_parser = at_least_one)]
    pub max_new_tokens: u32,

    /// Sample at this temperature; omitted or 0: greedy (the most likely token every step)
    /// unless --sample-top-k or --top-p asks for sampling (then 1)
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,

    /// Sample among the K most likely tokens only (the sampling filter; -k is how many
    /// alternatives to show, as in every command)
    #[arg(long, value_name = "K",
          value_parser = at_least_one)]
    pub sample_top_k: Option<u32>,

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
    #[arg(long, short = 'k', visible_alias = "alternatives", value_name = "N", default_value_t = 5,
          value_parser = at_least_one)]
    pub top_k: u32,

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

    /// Also show, at each position, the K tokens the model found most likely and the
    /// entropy of its distribution (bits)
    #[arg(long, short = 'k', value_name = "K", value_parser = at_least_one)]
    pub top_k: Option<u32>,

    #[command(flatten)]
    pub steer: SteerArgs,
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
          value_parser = at_least_one)]
    pub nearest: Option<u32>,
}

#[derive(Debug, Args)]
pub struct HiddenArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Which hidden state, by depth: the residual stream after D blocks (0: the
    /// embeddings; n_layer: after the last block, before ln_f), as `lens` numbers its rows;
    /// `ln_f`: the final hidden state after ln_f (HF's hidden_states[n_layer], where HF's
    /// hidden_states[D] for D < n_layer is depth D); omitted: per-token norms of all
    #[arg(long, short = 'd', value_name = "D|ln_f", value_parser = depth)]
    pub depth: Option<Depth>,
}

#[derive(Debug, Args)]
pub struct LensArgs {
    #[command(flatten)]
    pub input: TextArgs,

    #[command(flatten)]
    pub top_k: TopKArgs,

    /// Token position to read (0-based); omitted: the last
    #[arg(long, conflicts_with = "all_positions")]
    pub position: Option<usize>,

    /// Every position at once: a depth × position heatmap of the top token (its
    /// probability as colour, the token as label); with --svg, also as a figure
    #[arg(long, conflicts_with = "top_k")]
    pub all_positions: bool,

    /// With --all-positions: also write the heatmap as an SVG figure
    #[arg(long, value_name = "FILE", requires = "all_positions")]
    pub svg: Option<PathBuf>,

    /// Title of the --svg figure
    #[arg(long, value_name = "TEXT", requires = "svg")]
    pub title: Option<String>,

    /// With --all-positions: the colour map of the probabilities (blues, viridis, or rdbu
    /// from white to red)
    #[arg(long, value_enum, value_name = "MAP", default_value_t = CmapArg::Blues,
          requires = "all_positions")]
    pub cmap: CmapArg,
}

#[derive(Debug, Args)]
pub struct HooksArgs {
    /// Sequence length to put in the shapes; omitted: shapes say T
    #[arg(long, value_name = "T",
          value_parser = at_least_one)]
    pub seq_len: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Output file (.safetensors); replaced atomically if it exists; `-`: standard output
    /// (not a terminal)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,

    /// Activations to write, as glob patterns over the names `hooks` lists
    /// (`blocks.*.attn.hook_pattern`); repeatable; omitted: all
    #[arg(long = "hook", value_name = "PATTERN")]
    pub hooks: Vec<String>,

    // With --sae, the SAE's feature activations at its hook are written too, as
    // HOOK.hook_sae_acts_post (SAELens's name), (B, T, d_sae) in f32.
    #[command(flatten)]
    pub sae: SaeOption,
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

    #[command(flatten)]
    pub steer: SteerArgs,
}

/// A sparse autoencoder that a command may use (its own flags say what for).
#[derive(Debug, Args)]
pub struct SaeOption {
    /// A sparse autoencoder: a directory with SAELens's cfg.json and sae_weights.safetensors,
    /// or a hub repository's folder ORG/NAME/FOLDER
    #[arg(long, value_name = "DIR|ORG/NAME/FOLDER")]
    pub sae: Option<String>,
    /// Revision (branch, tag or commit) of a hub SAE
    #[arg(long, value_name = "REVISION", requires = "sae")]
    pub sae_revision: Option<String>,
    /// The SAE reads the residual stream centred over d_model (see `features --help`)
    #[arg(long, requires = "sae")]
    pub sae_centered: bool,
}

/// Steering with a sparse autoencoder's features, at the SAE's hook, at every position.
#[derive(Debug, Args)]
#[command(next_help_heading = "Steering")]
pub struct SteerArgs {
    // The SAE whose features --steer, --clamp and --ablate-feature name.
    #[command(flatten)]
    pub sae: SaeOption,
    /// Add α · W_dec[F] at the SAE's hook (repeatable)
    #[arg(help_heading = "Steering", long, value_name = "F=α", requires = "sae",
          value_parser = feature_value)]
    pub steer: Vec<(usize, f64)>,
    /// Set feature F to v: add (v − F's activation) · W_dec[F], the SAE's error kept
    /// (repeatable)
    #[arg(help_heading = "Steering", long, value_name = "F=v", requires = "sae",
          value_parser = feature_value)]
    pub clamp: Vec<(usize, f64)>,
    /// Clamp feature F to 0 (repeatable)
    #[arg(help_heading = "Steering", long, value_name = "F", requires = "sae")]
    pub ablate_feature: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct AttentionArgs {
    #[command(flatten)]
    pub input: TextArgs,

    /// Layer: block L, from 0 (TransformerLens's blocks.L); omitted: every layer
    #[arg(long, short = 'l', value_name = "L")]
    pub layer: Option<usize>,

    /// Head H of --layer L (0-based; ablate, patch --path and circuit write a head as
    /// L.H; given L.H here, the error says to write --layer L --head H); omitted: every
    /// head of the layer(s)
    #[arg(long, value_name = "H", value_parser = head_of_layer)]
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

    /// The neuron view (BertViz's third view) of query position Q: q and every key's k
    /// element by element, their product q×k, q·k, q·k/√d_head and the softmax weight
    /// (needs --layer and --head). Was --neuron, which still works: "neuron" here is
    /// BertViz's word, not an MLP neuron
    #[arg(long = "query", alias = "neuron", value_name = "Q", requires_all = ["layer", "head"],
          conflicts_with_all = ["all_heads", "window", "svg"])]
    pub neuron: Option<usize>,

    /// The four stages of one head side by side: its input x (ln_1's output, T × d_model),
    /// the scores QKᵀ/√d_head (T × T, masked cells hatched), the softmax weights (T × T)
    /// and its output z (T × d_head); with --svg, one figure of four panels (needs --layer
    /// and --head)
    #[arg(long, requires_all = ["layer", "head"],
          conflicts_with_all = ["all_heads", "window", "neuron"])]
    pub stages: bool,

    #[command(flatten)]
    pub figure: FigureArgs,
}

/// How a heatmap looks: its title and how values become colours.
#[derive(Debug, Args)]
#[command(next_help_heading = "Figure options")]
pub struct FigureArgs {
    /// Title of the --svg figure (default: the model's short name, the layer and the head)
    #[arg(long, value_name = "TEXT", requires = "svg")]
    pub title: Option<String>,

    /// Colour map: blues (matplotlib's Blues), viridis (perceptually uniform) or rdbu
    /// (diverging RdBu_r: white at 0, for signed values; probabilities run white to red)
    #[arg(long, value_enum, value_name = "MAP", default_value_t = CmapArg::Blues,
          conflicts_with_all = ["stages", "neuron"])]
    pub cmap: CmapArg,

    /// Where a probability falls on the map: absolute (--vmin..--vmax, 0..1 unless given),
    /// global (0 to the largest value shown, so a diffuse head is not pale), row (0 to the
    /// largest value of each query's row) or log (log10 from --vmin, 1e-4 unless given, to
    /// --vmax)
    #[arg(long, value_enum, value_name = "SCALE", default_value_t = ScaleArg::Absolute,
          conflicts_with_all = ["stages", "neuron"])]
    pub scale: ScaleArg,

    /// The probability at the low end of the map (smaller values get its colour)
    #[arg(long, value_name = "V", value_parser = probability,
          conflicts_with_all = ["stages", "neuron"])]
    pub vmin: Option<f32>,

    /// The probability at the high end of the map (larger values get its colour)
    #[arg(long, value_name = "V", value_parser = probability,
          conflicts_with_all = ["stages", "neuron"])]
    pub vmax: Option<f32>,
}

/// A grid figure's title and colour map (patch, ablate --sweep, attribute, heads).
#[derive(Debug, Args)]
#[command(next_help_heading = "Figure options")]
pub struct GridFigureArgs {
    /// Title of the --svg figure (default: what it shows)
    #[arg(long, value_name = "TEXT", requires = "svg")]
    pub title: Option<String>,

    /// Colour map of the --svg figure, across the range its colour bar names: blues,
    /// viridis or rdbu (default: rdbu, white at 0, for signed values; blues for head scores)
    #[arg(long, value_enum, value_name = "MAP", requires = "svg")]
    pub cmap: Option<CmapArg>,
}

/// `--cmap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CmapArg {
    Blues,
    Viridis,
    Rdbu,
}

/// `--scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScaleArg {
    Absolute,
    Global,
    Row,
    Log,
}

/// A probability for `--vmin`/`--vmax`: a number from 0 to 1.
fn probability(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be a probability, from 0 to 1".into()),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// A count that must be 1 or more: says so, rather than clap's `1..=4294967295`.
/// Feature ids as `feature` takes them: `12,99,3001`.
#[derive(Debug, Clone)]
pub struct FeatureIds(pub Vec<usize>);

fn feature_ids(s: &str) -> Result<FeatureIds, String> {
    let ids = (s.split(','))
        .map(|f| {
            f.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{f}` is not a feature id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FeatureIds(ids))
}

/// `attention --head H`: a head of the chosen layer. `L.H`, as other commands name a head,
/// is answered with the spelling that works here.
fn head_of_layer(s: &str) -> Result<usize, String> {
    if let Some((l, h)) = s.trim().split_once('.') {
        return Err(format!(
            "attention names a head by its layer and its index: write --layer {l} --head {h}"
        ));
    }
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a head index"))
}

/// `hidden --depth`: the residual stream after D blocks, or the final hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Blocks(usize),
    LnF,
}

fn depth(s: &str) -> Result<Depth, String> {
    match s.trim() {
        "ln_f" | "final" => Ok(Depth::LnF),
        d => (d.parse::<usize>())
            .map(Depth::Blocks)
            .map_err(|_| format!("`{s}` is not a depth: give a number of blocks or ln_f")),
    }
}

/// Token ids as `--ids` takes them: `464,3797,3332`.
#[derive(Debug, Clone)]
pub struct TokenIds(pub Vec<u32>);

fn token_ids(s: &str) -> Result<TokenIds, String> {
    let ids = (s.split(',').map(str::trim).filter(|t| !t.is_empty()))
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| format!("`{t}` is not a token id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match ids.is_empty() {
        true => Err("no token ids: give them comma-separated, as 464,3797".into()),
        false => Ok(TokenIds(ids)),
    }
}

/// `F=x`: a feature id and a finite number.
fn feature_value(s: &str) -> Result<(usize, f64), String> {
    let (f, x) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not F=value (a feature id, =, a number)"))?;
    let f = f
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("`{f}` is not a feature id"))?;
    match x.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok((f, x)),
        Ok(_) => Err(format!("`{x}` must be finite")),
        Err(_) => Err(format!("`{x}` is not a number")),
    }
}

fn at_least_one(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) if s.trim().starts_with('-') => Err("must be at least 1".into()),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
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
    /// The residual stream between each block's attention and its MLP, one position at a
    /// time
    #[value(name = "resid_mid")]
    ResidMid,
    /// Each block's attention output, one position at a time
    #[value(name = "attn_out")]
    AttnOut,
    /// Each block's MLP output, one position at a time
    #[value(name = "mlp_out")]
    MlpOut,
    /// Each head's z at every position (with --by-position: at one position)
    Head,
    /// Each head's queries (hook_q)
    Q,
    /// Each head's keys (hook_k)
    K,
    /// Each head's values (hook_v)
    V,
    /// Each head's attention pattern (with --by-position: one destination row)
    Pattern,
    /// One (destination, source) entry of each head's pattern at a time
    #[value(name = "pattern-dest-src")]
    PatternDestSrc,
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// Which activations to patch; several (`--site resid_pre,head` or the flag repeated)
    /// print one grid each, and their attribution estimates come from one backward pass
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [PatchSite::ResidPre])]
    pub site: Vec<PatchSite>,
    /// `exact`: one patched run per cell. `attribution`: every cell estimated to first
    /// order from one clean and one corrupt run plus a backward pass (attribution patching).
    /// `both`: the two side by side, with their correlation
    #[arg(long, value_enum, default_value_t = PatchMethod::Exact)]
    pub method: PatchMethod,
    /// Patch the head sites (head, q, k, v, pattern) one position at a time: grids
    /// [L][T][H] (pattern: [L][H][T], one destination row each)
    #[arg(long)]
    pub by_position: bool,
    /// Path patching: the clean-minus-corrupt write of this sender head (LAYER.HEAD)
    /// reaches only the receivers --to names; every other reader sees the corrupt run
    #[arg(long, value_name = "L.H", conflicts_with_all = ["site", "method", "by_position"])]
    pub path: Option<String>,
    /// With --path: the receivers, each later head's query, key or value input, or the
    /// logits (the sender's direct effect)
    #[arg(long, value_enum, requires = "path", default_value_t = PathTo::Q)]
    pub to: PathTo,
    /// What each run is measured by, at the last position
    #[arg(long, value_enum, default_value_t = CausalMetric::Logit)]
    pub metric: CausalMetric,
    /// Also draw the grid as an SVG figure (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub figure: GridFigureArgs,
}

/// The two texts of patching and circuits, and the two answers of their metric.
#[derive(Debug, Args)]
pub struct PairArgs {
    /// The text whose answer is right
    #[arg(long, value_name = "TEXT", required_unless_present = "clean_ids")]
    pub clean: Option<String>,
    /// The same number of tokens, changed so the answer changes
    #[arg(long, value_name = "TEXT", required_unless_present = "corrupt_ids")]
    pub corrupt: Option<String>,
    /// --clean as token ids, comma-separated (`464,3797,3332`)
    #[arg(long, value_name = "IDS", value_parser = token_ids, conflicts_with = "clean")]
    pub clean_ids: Option<TokenIds>,
    /// --corrupt as token ids
    #[arg(long, value_name = "IDS", value_parser = token_ids, conflicts_with = "corrupt")]
    pub corrupt_ids: Option<TokenIds>,
    /// The clean run's answer (mind the leading space). patch: one token, or several,
    /// teacher-forced (the texts run with all but its last token appended, and the metric
    /// is summed over its tokens); circuit: one token
    #[arg(long, value_name = "TEXT")]
    pub answer: Option<String>,
    /// The corrupt run's answer, one token: the metric is the answer's minus its (with
    /// --metric logit, the logit difference)
    #[arg(long, value_name = "TOKEN")]
    pub wrong: Option<String>,
}

#[derive(Debug, Args)]
pub struct CircuitArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// How many edges the table, --dot and --svg show, by |score|
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// EAP-IG: average the gradient over N points from the corrupt to the clean
    /// embeddings (1: plain EAP, the gradient at the corrupt run)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub ig_steps: usize,
    /// Also patch each of the top N edges alone, exactly (a batched run per edge), to show
    /// how good its estimate is
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub exact: usize,
    /// Keep the top K edges (several: `--faithfulness 10,50,200`), corrupt every other one,
    /// and report how much of the clean metric each circuit recovers
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub faithfulness: Vec<usize>,
    /// Write the top edges as a Graphviz graph (written atomically)
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,
    /// Draw the top edges as an SVG graph, layers top to bottom (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathTo {
    Q,
    K,
    V,
    Logits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatchMethod {
    Exact,
    Attribution,
    Both,
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
    /// The answer whose metric to follow: one token, or several, teacher-forced (the text
    /// runs with all but its last token appended; the metric sums over its tokens);
    /// default: the unablated top token
    #[arg(long, value_name = "TEXT")]
    pub answer: Option<String>,
    /// Subtract this token's value from a one-token answer's (--metric logit: the logit
    /// difference)
    #[arg(long, value_name = "TOKEN")]
    pub wrong: Option<String>,
    /// What the runs are measured by, at the last position
    #[arg(long, value_enum, default_value_t = CausalMetric::Logprob)]
    pub metric: CausalMetric,
    /// Ablate every head in turn instead: the change in the metric
    #[arg(long, conflicts_with_all = ["heads", "mlps"])]
    pub sweep: bool,
    /// With --sweep: also draw the layer × head grid as an SVG figure
    #[arg(long, value_name = "FILE", requires = "sweep")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub figure: GridFigureArgs,
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
    #[command(flatten)]
    pub figure: GridFigureArgs,
}

/// The sparse autoencoder a feature command reads.
#[derive(Debug, Args)]
pub struct SaeArgs {
    /// The sparse autoencoder: a directory with SAELens's cfg.json and
    /// sae_weights.safetensors, or a hub repository's folder (ORG/NAME/FOLDER, e.g.
    /// jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre)
    #[arg(long, value_name = "DIR|ORG/NAME/FOLDER")]
    pub sae: String,
    /// Revision (branch, tag or commit) of a hub SAE
    #[arg(long, value_name = "REVISION")]
    pub sae_revision: Option<String>,
    /// The SAE reads the residual stream centred over d_model, as one trained on a
    /// TransformerLens model loaded with center_writing_weights (gpt2-small-res-jb); without
    /// it, what the SAE's cfg.json says (model_from_pretrained_kwargs), else not centred
    #[arg(long)]
    pub sae_centered: bool,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub input: TextArgs,
    #[command(flatten)]
    pub sae: SaeArgs,
    /// Features listed per token, the most active first
    #[arg(short = 'k', long = "top-k", value_name = "K", default_value_t = 5,
          value_parser = at_least_one)]
    pub top_k: u32,
}

#[derive(Debug, Args)]
pub struct FeatureArgs {
    /// Feature ids, comma-separated (one pass over the corpus serves them all)
    #[arg(value_name = "IDS", value_parser = feature_ids)]
    pub ids: FeatureIds,
    #[command(flatten)]
    pub input: TextArgs,
    #[command(flatten)]
    pub sae: SaeArgs,
    /// Tokens listed in each logit table
    #[arg(short = 'k', long = "top-k", value_name = "K", default_value_t = 10,
          value_parser = at_least_one)]
    pub top_k: u32,
    /// Top-activating contexts kept per feature
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_least_one)]
    pub contexts: u32,
    /// Tokens shown either side of a context's peak
    #[arg(long, value_name = "W", default_value_t = 8)]
    pub window: u32,
    /// Also write a dashboard page for the features (self-contained HTML, offline): how
    /// often each fires, its histogram, logit tables and top contexts
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SaliencyArgs {
    #[command(flatten)]
    pub input: TextArgs,
    /// The token whose prediction to explain (one token); default: the top prediction at
    /// the position
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["generate", "continuation"])]
    pub answer: Option<String>,
    /// Explain answer − wrong of the metric instead (one token)
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["generate", "continuation"])]
    pub wrong: Option<String>,
    /// Position whose prediction to explain (default: the last); tokens after it cannot
    /// matter and get no score
    #[arg(long, value_name = "P", conflicts_with_all = ["generate", "continuation"])]
    pub position: Option<usize>,
    /// What of the answer token to explain
    #[arg(long, value_enum, default_value_t = MetricArg::Logit)]
    pub metric: MetricArg,
    #[arg(long, value_enum, default_value_t = SaliencyMethod::Gradient)]
    pub method: SaliencyMethod,
    /// Integrated gradients: points of the Gauss–Legendre rule (Captum's default, 50)
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub steps: u32,
    /// Integrated gradients: where the path starts, all zeros or <|endoftext|>'s embedding
    /// at every position
    #[arg(long, value_enum, default_value_t = BaselineArg::Zero)]
    pub baseline: BaselineArg,
    /// Continue greedily for N tokens and explain each generated token by every token
    /// before it: a matrix
    #[arg(long, value_name = "N", value_parser = at_least_one, conflicts_with = "continuation")]
    pub generate: Option<u32>,
    /// Explain each token of this continuation of the text (teacher forcing): a matrix
    #[arg(long, value_name = "TEXT")]
    pub continuation: Option<String>,
    /// Also draw the scores as an SVG figure (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// What `patch` and `ablate` measure of a run (TransformerLens's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CausalMetric {
    /// The answer's logit (minus --wrong's: the logit difference)
    Logit,
    /// The answer's log-probability (minus --wrong's)
    Logprob,
    /// The answer's probability (minus --wrong's)
    Prob,
    /// KL divergence from the clean (patch) or unablated (ablate) run's next-token
    /// distribution, in nats
    Kl,
}

/// What the gradient commands take of the answer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Its logit
    Logit,
    /// Its log-probability
    Logprob,
    /// Its probability
    Prob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaliencyMethod {
    /// The L2 norm of the metric's gradient with respect to the token's embedding
    Gradient,
    /// The embedding times that gradient, summed over the embedding (signed)
    InputXGradient,
    /// Integrated gradients from a baseline (signed; the scores add up to the metric's change)
    IntegratedGradients,
    /// Attention rollout: attention weights through the layers (no gradient)
    Rollout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineArg {
    Zero,
    Eos,
}

#[derive(Debug, Args)]
pub struct HeadsArgs {
    /// The sequence s to repeat (x = s + s). `-` reads standard input, as does a pipe when
    /// no TEXT, --file or --ids is given; without any, N random token ids
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,
    /// Read the sequence from a file (`-`: standard input)
    #[arg(long, value_name = "PATH", conflicts_with_all = ["text", "ids"])]
    pub file: Option<PathBuf>,
    /// The sequence as token ids, comma-separated (`464,3797,3332`)
    #[arg(long, value_name = "IDS", value_parser = token_ids, conflicts_with = "text")]
    pub ids: Option<TokenIds>,
    /// A sequence longer than half the model's positions keeps its last tokens (`left`) or
    /// its first (`right`); without it such a sequence is an error
    #[arg(long, value_enum, value_name = "SIDE")]
    pub truncate: Option<Truncate>,
    /// Length of the random sequence [default: 50]
    #[arg(long, value_name = "N", conflicts_with_all = ["text", "file", "ids"],
          value_parser = clap::value_parser!(u32).range(2..=512))]
    pub seq_len: Option<u32>,
    /// Seed of the random sequence [default: 0]
    #[arg(long, conflicts_with_all = ["text", "file", "ids"])]
    pub seed: Option<u64>,
    /// Also draw the grid as an SVG figure (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub figure: GridFigureArgs,
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_global_names_a_global_argument() {
        use super::{Cli, Global};
        use clap::CommandFactory;
        let cli = Cli::command();
        let ids: Vec<String> = (cli.get_arguments())
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().to_string())
            .collect();
        for g in Global::ALL {
            assert!(ids.contains(&g.id().to_string()), "{g:?}: {ids:?}");
        }
        assert_eq!(
            ids.len(),
            Global::ALL.len(),
            "a global without a Global: {ids:?}"
        );
    }
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Shell words of an example line: double quotes group, `\"` is a quote.
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut cur, mut quoted, mut chars) =
            (Vec::new(), String::new(), false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'"') => cur.push(chars.next().unwrap()),
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        out.extend((!cur.is_empty()).then_some(cur));
        out
    }

    /// Every `gpt2-inspect …` line of every Examples section is a command the parser takes.
    #[test]
    fn help_examples_parse() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut helps = vec![cmd.get_after_help().map(|h| h.to_string())];
        helps.extend(
            cmd.get_subcommands()
                .map(|s| s.get_after_help().map(|h| h.to_string())),
        );
        let mut seen = 0;
        for help in helps.into_iter().flatten() {
            for line in help.lines().map(str::trim) {
                // The command ends at a redirection, a pipe or a comment in parentheses.
                let line = line.split(['>', '|', '(']).next().unwrap().trim();
                let Some(rest) = line.strip_prefix("gpt2-inspect ") else {
                    continue;
                };
                if rest.starts_with('<') {
                    continue;
                }
                let argv = std::iter::once("gpt2-inspect".to_string()).chain(words(rest));
                if let Err(e) = Cli::try_parse_from(argv) {
                    panic!("example `{line}` does not parse: {e}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 38, "only {seen} examples found");
    }
}
