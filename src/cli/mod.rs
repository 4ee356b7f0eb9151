//! Command-line interface. Doc comments here are the `--help` text.

mod attention;
mod causal;
mod features;
mod gradients;
mod shards;
mod texts;
mod tokens;
pub use attention::*;
pub use causal::*;
pub use features::*;
pub use gradients::*;
pub use shards::*;
pub use texts::*;
pub use tokens::*;

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
        // A revision names a version on the hub; a local directory has only the one.
        let said = warnings.iter().any(|w| w.starts_with("--revision"));
        if let Some(r) = cli.global.revision.as_ref().filter(|_| !said) {
            if std::path::Path::new(&cli.global.model).is_dir() {
                warnings.push(format!(
                    "--revision {r} picks a hub version; --model {} is a local directory, so it \
                     is ignored",
                    cli.global.model
                ));
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
            // Each request answers JSON with its own --prepend-bos.
            Command::Serve(_) => &[Color, PrependBos],
            // The partials say the model and settings.
            Command::Merge(_) => &[Model, Revision, Dtype, Device, PrependBos, Color],
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
            Command::Feature(_) | Command::Graph(_) | Command::Transcode(_) => &[Color],
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
    /// Attention: the probabilities of a head, a layer or every layer; one query's neuron
    /// view (--query); a head from input to output, x, q, k, v, scores, softmax, z and z·W_O
    /// (--stages)
    #[command(
        after_help = "Examples:\n  gpt2-inspect attention \"When Mary and John went to the store\" --layer 5 --head 1\n  gpt2-inspect attention \"The cat sat on the mat\" --layer 1 --head 3 --stages --svg head.svg\n  gpt2-inspect attention \"The cat sat on the mat\" --layer 1 --head 3 --query 4\n  gpt2-inspect attention \"The cat sat on the mat\" --layer 0 --all-heads --svg layer0.svg\n  gpt2-inspect attention \"The cat sat\" --layer 2 --head 3 --scores --annot\n  gpt2-inspect attention \"The cat sat\" --format bertviz > attn.json\n  gpt2-inspect attention \"The cat sat on the mat\" --layer 0 --head 1 --cmap viridis --scale log --title \"Layer 0, head 1\" --svg head.svg\n  gpt2-inspect attention \"The cat sat on the mat\" --all-heads --scale row"
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
    /// The logit lens (or a tuned or Jacobian lens): what the residual stream predicts after
    /// each layer; `lens fit` fits a Jacobian lens on a corpus
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  gpt2-inspect lens \"The Eiffel Tower is in the city of\"\n  gpt2-inspect lens \"The Eiffel Tower is in the city of\" --position 3 -k 3\n  gpt2-inspect lens \"The Eiffel Tower is in the city of\" --lens jlens:lens.pt\n  gpt2-inspect --prepend-bos lens fit --file corpus.txt --lines -o lens.pt\n\nA text that is the word fit alone: gpt2-inspect lens -- fit"
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
        after_help = "Examples:\n  gpt2-inspect features \"The cat sat on the mat\" --sae DIR\n  gpt2-inspect features \"The cat sat on the mat\" --sae DIR --per-token 10 --json\n\nDIR holds SAELens's cfg.json and sae_weights.safetensors (what SAE.save_model writes)."
    )]
    Features(FeaturesArgs),
    /// One or more SAE features: the tokens each one's decoder direction promotes and
    /// suppresses (W_dec[f] · W_Uᵀ), and with texts (a corpus: --file F --lines) where it
    /// fires most, how often, and how strongly
    #[command(
        after_help = "Examples:\n  gpt2-inspect feature 12 --sae DIR\n  gpt2-inspect feature 12,99,3001 --sae DIR --file corpus.txt --lines\n  gpt2-inspect feature 12 --sae DIR --file corpus.txt --lines --html f12.html\n\nWithout TEXT or --file only the logit tables are shown."
    )]
    Feature(FeatureArgs),
    /// Attribution graph: which transcoder features carry the next-token prediction, and
    /// through which paths, with every number as circuit-tracer computes it (attention and
    /// layer norms frozen, each MLP replaced by its transcoder plus an error); writes the
    /// graph file Neuronpedia and circuit-tracer's viewer open
    #[command(
        mut_arg("texts", |a| a.help(ONE_TEXT)),
        after_help = "Examples:\n  gpt2-inspect graph \"The capital of France is\" --transcoders DIR -o graph.json\n  gpt2-inspect graph \"The capital of France is\" --transcoders DIR --max-feature-nodes 2000 --raw graph.safetensors --json\n\nDIR holds circuit-tracer's transcoders (config.yaml with model_kind transcoder_set or\ncross_layer_transcoder, feature_input_hook: ln2.hook_normalized, feature_output_hook:\nhook_mlp_out, and the layers' files), SAELens's (a folder per layer) or sparsify's\n(h.{i}.mlp/). <|endoftext|> is put before the text, as circuit-tracer does."
    )]
    Graph(GraphArgs),
    /// Transcoders in place of the MLPs: per layer and token the active features, each MLP
    /// output's reconstruction error, and the next-token loss with every MLP replaced by its
    /// transcoder (the replacement model's fidelity)
    #[command(
        mut_arg("texts", |a| a.help(ONE_TEXT)),
        after_help = "Examples:\n  gpt2-inspect transcode \"The capital of France is\" --transcoders DIR\n  gpt2-inspect transcode \"The capital of France is\" --transcoders DIR --per-token 5 --json\n\nDIR is a transcoder set as graph reads it (circuit-tracer's, SAELens's or sparsify's)."
    )]
    Transcode(TranscodeArgs),
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
    /// Merge the partial files of a corpus pass run in shards (--shard K/N --partial FILE)
    /// into what one run over the whole corpus prints and writes
    #[command(
        after_help = "Examples:\n  for k in 0 1 2; do gpt2-inspect --prepend-bos lens fit --file corpus.txt --lines --shard $k/3 --partial part-$k.st; done\n  gpt2-inspect merge part-*.st -o lens.pt\n\n  for k in 0 1 2; do gpt2-inspect score --file corpus.txt --lines --shard $k/3 --partial score-$k.st; done\n  gpt2-inspect --jsonl merge score-*.st > scores.jsonl\n\n  for k in 0 1 2; do gpt2-inspect feature 1,2 --sae SAE --file corpus.txt --lines --shard $k/3 --partial f-$k.st; done\n  gpt2-inspect merge f-*.st --html dashboard.html\n\nscripts/ray_corpus.py runs the shards on a Ray cluster and merges them (docs/scale.md)."
    )]
    Merge(MergeArgs),
    /// Serve the explorer: every view and analysis on one local page, and the API it uses
    /// (POST /api/COMMAND answers what `COMMAND … --json` prints)
    #[command(
        after_help = "Examples:\n  gpt2-inspect serve\n  gpt2-inspect serve --open\n  gpt2-inspect --model tests/fixtures/tiny-gpt2 serve --port 0 --sae tests/fixtures/saes/standard"
    )]
    Serve(ServeArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per subcommand into a directory
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: loopback unless you say otherwise (another address requires
    /// the access token printed in the URL)
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub host: std::net::IpAddr,
    /// Port to listen on; 0 takes a free one (the URL printed says which)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests computed at once; more wait in a queue of 16, then get 503
    #[arg(long, default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Open the page in the default browser once the server listens ($BROWSER if set, as
    /// Python's webbrowser reads it; else xdg-open, open or start)
    #[arg(long)]
    pub open: bool,
    /// A sparse autoencoder to serve (repeat for several): loaded once, checked against the
    /// model, and the only SAEs requests may name (features, feature, steering)
    #[arg(long, value_name = "DIR|ORG/NAME/FOLDER")]
    pub sae: Vec<String>,
    /// A lens to serve besides the logit lens (repeat for several): tuned:DIR or jlens:FILE
    /// as `lens --lens` takes them; loaded once, checked against the model, and the only
    /// lenses requests may name (lens, and a Jacobian lens's vectors for steering)
    #[arg(long, value_name = "LENS", value_parser = attention::lens_arg)]
    pub lens: Vec<LensArg>,
    /// A transcoder set to serve (repeat for several), as `graph --transcoders` takes it:
    /// loaded once, checked against the model, and the only sets requests may name (graph)
    #[arg(long, value_name = "DIR|ORG/NAME[/FOLDER]")]
    pub transcoders: Vec<String>,
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
