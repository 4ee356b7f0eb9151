//! The features family's flags: `features`, `feature`, the SAE options and steering.

use std::path::PathBuf;

use clap::Args;

use super::{at_least_one, probability, TextArgs};

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
    /// A Jacobian lens whose token vectors --steer-token adds: a .pt file as
    /// TransformerLens saves it, or a hub file ORG/NAME/PATH
    #[arg(
        help_heading = "Steering",
        long,
        value_name = "FILE",
        requires = "steer_token",
        conflicts_with = "sae"
    )]
    pub jlens: Option<String>,
    /// Add α times TOKEN's J-lens vector at --at's block output, at every position: row TOKEN
    /// of W_U J_L (TransformerLens's lens_vectors), unnormalised (repeatable; TOKEN one token,
    /// e.g. " Paris=4")
    #[arg(help_heading = "Steering", long, value_name = "TOKEN=α",
          requires_all = ["jlens", "at"], value_parser = token_value)]
    pub steer_token: Vec<(String, f64)>,
    /// The block L whose output --steer-token changes (TransformerLens's blocks.L.hook_out;
    /// the lens must have J_L)
    #[arg(
        help_heading = "Steering",
        long,
        value_name = "L",
        requires = "steer_token"
    )]
    pub at: Option<usize>,
}

/// `TOKEN=α`: a token's text (up to the last `=`) and a finite number.
pub(super) fn token_value(s: &str) -> Result<(String, f64), String> {
    let (t, x) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("`{s}` is not TOKEN=α (a token, =, a number)"))?;
    if t.is_empty() {
        return Err(format!("`{s}`: the token before = is empty"));
    }
    match x.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok((t.to_string(), x)),
        Ok(_) => Err(format!("`{x}` must be finite")),
        Err(_) => Err(format!("`{x}` is not a number")),
    }
}

/// A count that must be 1 or more: says so, rather than clap's `1..=4294967295`.
/// Feature ids as `feature` takes them: `12,99,3001`.
#[derive(Debug, Clone)]
pub struct FeatureIds(pub Vec<usize>);

pub(super) fn feature_ids(s: &str) -> Result<FeatureIds, String> {
    let ids = (s.split(','))
        .map(|f| {
            f.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{f}` is not a feature id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FeatureIds(ids))
}

/// `F=x`: a feature id and a finite number.
pub(super) fn feature_value(s: &str) -> Result<(usize, f64), String> {
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
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_one)]
    pub per_token: u32,
    /// Not features' flag: -k counts candidate tokens in every command (features per token
    /// is --per-token)
    #[arg(short = 'k', long = "top-k", value_name = "K", hide = true)]
    pub top_k: Option<u32>,
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
    #[command(flatten)]
    pub shards: super::ShardArgs,
}

/// `graph`: an attribution graph over transcoders, as circuit-tracer computes it.
#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub input: TextArgs,
    #[command(flatten)]
    pub set: TranscoderArgs,
    /// Write the pruned graph as circuit-tracer's create_graph_files writes it, the JSON
    /// Neuronpedia and circuit-tracer's viewer open (atomically)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the unpruned graph under circuit-tracer's Graph field names as safetensors
    /// (adjacency_matrix, active_features, activation_values, selected_features, …)
    #[arg(long, value_name = "FILE")]
    pub raw: Option<PathBuf>,
    /// Also draw the pruned graph as an SVG figure: rows the embeddings, each layer and the
    /// logits, columns the positions, its strongest edges (written atomically)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The graph file's slug (its name in the viewer); the output file's stem by default
    #[arg(long, value_name = "NAME", requires = "output")]
    pub slug: Option<String>,
    /// Features whose edges in are computed at most (circuit-tracer's max_feature_nodes),
    /// chosen by their influence on the logits as circuit-tracer chooses them
    #[arg(long, value_name = "N", default_value_t = 7500, value_parser = at_least_one)]
    pub max_feature_nodes: u32,
    /// Pruning keeps the nodes with this cumulative share of the influence on the logits
    #[arg(long, value_name = "X", default_value_t = 0.8, value_parser = share)]
    pub node_threshold: f64,
    /// Pruning keeps the edges with this cumulative share of the influence
    #[arg(long, value_name = "X", default_value_t = 0.98, value_parser = share)]
    pub edge_threshold: f64,
    /// Logit nodes at most: the likeliest tokens until --logit-probability is reached
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_least_one)]
    pub max_logits: u32,
    /// The logit nodes' cumulative probability to reach
    #[arg(long, value_name = "P", default_value_t = 0.95, value_parser = probability)]
    pub logit_probability: f32,
    /// Rows per backward pass (circuit-tracer's batch_size; its command line's default)
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = at_least_one)]
    pub backward_batch: u32,
    /// Backward passes between two rankings of the features left (update_interval)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = at_least_one)]
    pub update_interval: u32,
    /// Leave out GPT-2's position-embedding nodes (gpt2-inspect's own; circuit-tracer has
    /// none): the graph file is then circuit-tracer's exactly
    #[arg(long)]
    pub no_position_nodes: bool,
    /// Kept features and errors listed, the most influential first
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Set a transcoder feature to v at one position with attention frozen, and show the
    /// next tokens before and after (circuit-tracer's feature_intervention). NODE is a
    /// feature node's id, LAYER_FEATURE_POSITION as the graph names it (repeatable)
    #[arg(long, value_name = "NODE=v", value_parser = node_value)]
    pub clamp: Vec<(usize, usize, usize, f32)>,
    /// Set a transcoder feature to 0 at one position (NODE: LAYER_FEATURE_POSITION;
    /// repeatable), as --clamp NODE=0
    #[arg(long, value_name = "NODE", value_parser = node)]
    pub ablate: Vec<(usize, usize, usize)>,
}

/// A feature node's id, `LAYER_FEATURE_POSITION`.
fn node(s: &str) -> Result<(usize, usize, usize), String> {
    let parts: Vec<&str> = s.trim().split('_').collect();
    let nums: Vec<usize> = parts.iter().filter_map(|p| p.parse().ok()).collect();
    match nums[..] {
        [l, f, p] if parts.len() == 3 => Ok((l, f, p)),
        _ => Err(format!(
            "`{s}` is not a feature node's id: LAYER_FEATURE_POSITION, as in 1_7_14"
        )),
    }
}

/// `NODE=v`: a feature node's id and a finite number.
fn node_value(s: &str) -> Result<(usize, usize, usize, f32), String> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NODE=v (LAYER_FEATURE_POSITION=value)"))?;
    let (l, f, p) = node(n)?;
    match v.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok((l, f, p, v)),
        _ => Err(format!("`{v}` is not a finite number")),
    }
}

/// A share from 0 to 1, kept as written (the graph file records it).
fn share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be a share of the influence, from 0 to 1".into()),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// `transcode`: a transcoder set in place of the MLPs on a text.
#[derive(Debug, Args)]
pub struct TranscodeArgs {
    #[command(flatten)]
    pub input: TextArgs,
    #[command(flatten)]
    pub set: TranscoderArgs,
    /// Features listed per layer and token, the most active first
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least_one)]
    pub per_token: u32,
}

/// A transcoder set, as `graph` and `transcode` take it.
#[derive(Debug, Args)]
pub struct TranscoderArgs {
    /// The transcoders: a folder in circuit-tracer's format (config.yaml of a per-layer set
    /// or a cross-layer transcoder), SAELens's (a cfg.json + sae_weights.safetensors folder
    /// a layer) or sparsify's (h.{i}.mlp/), or a hub repository holding one (ORG/NAME, or
    /// its folder ORG/NAME/FOLDER)
    #[arg(long, value_name = "DIR|ORG/NAME[/FOLDER]")]
    pub transcoders: String,
    /// Revision (branch, tag or commit) of hub transcoders
    #[arg(long, value_name = "REVISION")]
    pub transcoders_revision: Option<String>,
}
