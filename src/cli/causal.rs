//! The causal family's flags: `patch`, `ablate`, `attribute`, `heads`, `circuit`, and the
//! metric they measure.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{token_ids, GridFigureArgs, TextArgs, TokenIds, TopKArgs, Truncate};

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
    /// The clean run's answer (mind the leading space): one token, or several,
    /// teacher-forced (the texts run with all but its last token appended, and the metric
    /// is summed over its tokens)
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
    /// What the edges are scored by, at the last position (patch's metrics)
    #[arg(long, value_enum, default_value_t = CausalMetric::Logit)]
    pub metric: CausalMetric,
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
