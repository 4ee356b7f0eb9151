//! The tokens family's flags: what the model reads and predicts (`tokenize`, `next`,
//! `trace`, `embed`, `hidden`, `hooks`, `dump`, `info`, `score`, `generate`).

use std::path::PathBuf;

use clap::Args;

use super::{at_least_one, depth, Depth, SaeOption, SteerArgs, TextArgs, TopKArgs};

/// `info` takes no options of its own.
#[derive(Debug, Args)]
pub struct InfoArgs {}

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

    #[command(flatten)]
    pub shards: super::ShardArgs,
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
