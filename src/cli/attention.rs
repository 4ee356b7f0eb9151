//! The attention family's flags: `attention`, `lens` and the `report` page.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{head_of_layer, parse_window, CmapArg, FigureArgs, TextArgs, TopKArgs, Window};

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
          default_value_t = NeuronWhen::Auto)]
    pub neuron: NeuronWhen,

    #[command(flatten)]
    pub top_k: TopKArgs,
}

/// `report --neuron-view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NeuronWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct LensArgs {
    /// `lens fit`: fit a Jacobian lens instead of reading one
    #[command(subcommand)]
    pub action: Option<LensAction>,

    #[command(flatten)]
    pub input: TextArgs,

    #[command(flatten)]
    pub top_k: TopKArgs,

    /// Token position to read (0-based); omitted: the last
    #[arg(long, conflicts_with = "all_positions")]
    pub position: Option<usize>,

    /// How each depth is read: logit (ln_f and the unembedding, as if the stream were the
    /// last layer's); tuned:DIR, a tuned lens as tuned-lens saves it (config.json and
    /// params.pt: an affine translator per layer before ln_f); or jlens:FILE, a Jacobian lens
    /// as TransformerLens saves it (a matrix per block moving its output to the last block's,
    /// before ln_f). DIR and FILE may be on the hub: ORG/NAME/FOLDER, ORG/NAME/PATH
    /// Several, comma-separated (logit,jlens:FILE), are read side by side at one position
    #[arg(long, value_name = "LENS", default_value = "logit", value_parser = lens_arg,
          value_delimiter = ',')]
    pub lens: Vec<LensArg>,

    /// Also rank this token (one token) at every depth
    #[arg(long, value_name = "TOKEN")]
    pub answer: Option<String>,

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

    /// One head from input to output, stage by stage: its input x (ln_1's output, T ×
    /// d_model), the queries, keys and values (T × d_head each), the scores QKᵀ/√d_head (T ×
    /// T, masked cells hatched), the softmax weights (T × T), z, the weighted values (T ×
    /// d_head), and z·W_O, what the head adds to the residual stream (T × d_model); with
    /// --svg, one figure of eight panels in two rows (needs --layer and --head)
    #[arg(long, requires_all = ["layer", "head"],
          conflicts_with_all = ["all_heads", "window", "neuron"])]
    pub stages: bool,

    #[command(flatten)]
    pub figure: FigureArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttentionFormat {
    Table,
    Bertviz,
}

/// What `lens` does besides reading a text.
#[derive(Debug, Subcommand)]
pub enum LensAction {
    /// Fit a Jacobian lens on a corpus, one prompt per line, with TransformerLens's estimator
    /// (JacobianLens.fit), and write it as TransformerLens saves it (J in float32)
    #[command(
        after_help = "Example:\n  gpt2-inspect --prepend-bos lens fit --file corpus.txt --lines -o lens.pt\n\nWith --prepend-bos each prompt starts with <|endoftext|>, as TransformerLens's to_tokens does."
    )]
    Fit(LensFitArgs),
}

#[derive(Debug, Args)]
pub struct LensFitArgs {
    /// The corpus: one prompt per line (empty lines skipped)
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// One prompt per line (the only way `lens fit` reads its corpus; say it to be sure)
    #[arg(long, required = true)]
    pub lines: bool,
    /// The lens file to write (a torch.save'd dict JacobianLens.load reads); replaced
    /// atomically. With --partial, `merge -o` writes it
    #[arg(
        long,
        short = 'o',
        value_name = "FILE",
        required_unless_present = "partial",
        conflicts_with = "partial"
    )]
    pub output: Option<PathBuf>,
    /// Prompts are cut to this many tokens (after the BOS)
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = super::at_least_one)]
    pub max_seq_len: u32,
    /// Leading positions left out of the average (attention sinks); a prompt of at most
    /// K + 1 tokens is skipped
    #[arg(long, value_name = "K", default_value_t = 16)]
    pub skip_first: u32,
    /// Source blocks, comma-separated (`0,5,10`); omitted: every block but the last
    #[arg(long, value_name = "L,…", value_delimiter = ',')]
    pub layers: Vec<usize>,
    #[command(flatten)]
    pub shards: super::ShardArgs,
}

/// `--lens`: which lens reads each depth.
#[derive(Debug, Clone, PartialEq)]
pub enum LensArg {
    Logit,
    /// A tuned lens: a local directory, or a hub repository's folder ORG/NAME/FOLDER.
    Tuned(String),
    /// A Jacobian lens: a local `.pt` file, or a hub repository's file ORG/NAME/PATH.
    Jacobian(String),
}

impl LensArg {
    /// As `--lens` spells it.
    pub fn spec(&self) -> String {
        match self {
            LensArg::Logit => "logit".into(),
            LensArg::Tuned(d) => format!("tuned:{d}"),
            LensArg::Jacobian(f) => format!("jlens:{f}"),
        }
    }
}

pub(super) fn lens_arg(s: &str) -> Result<LensArg, String> {
    match s.split_once(':') {
        None if s == "logit" => Ok(LensArg::Logit),
        Some(("tuned", dir)) if !dir.is_empty() => Ok(LensArg::Tuned(dir.into())),
        Some(("jlens", file)) if !file.is_empty() => Ok(LensArg::Jacobian(file.into())),
        _ => Err(format!(
            "{s:?}: give logit, tuned:DIR (a tuned lens's directory) or jlens:FILE (a Jacobian \
             lens's .pt file); a hub lens as tuned:ORG/NAME/FOLDER or jlens:ORG/NAME/FILE"
        )),
    }
}
