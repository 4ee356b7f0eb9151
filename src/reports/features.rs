//! The features family's reports: `features` (an SAE's features at each token) and
//! `feature` (what features write and where they fire over a corpus).

use serde::{Deserialize, Serialize};

use super::Header;

/// One feature's activation at a token.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureValue {
    pub id: usize,
    pub activation: f32,
}

/// `features`: an SAE's features at each token and what its reconstruction costs.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesReport {
    #[serde(flatten)]
    pub header: Header,
    /// The SAE's directory.
    pub sae: String,
    pub hook: String,
    /// SAELens's `architecture`: standard, topk, jumprelu or gated.
    pub architecture: String,
    /// The `k` of a topk SAE.
    pub k: Option<usize>,
    pub d_sae: usize,
    /// Whether the SAE read the residual stream centred over d_model.
    pub centered: bool,
    pub input_ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Per token, the most active features first (active ones only, at most `-k`).
    pub features: Vec<Vec<FeatureValue>>,
    /// Per token, how many features are active (non-zero).
    pub l0: Vec<usize>,
    /// The features that fire most in the text (by their largest activation), with their
    /// activation at every token: the heatmap's columns.
    pub most_active: MostActive,
    /// Mean over tokens of ‖x − x̂‖² (SAELens's `mse`).
    pub mse: f64,
    /// Fraction of variance explained (SAELens's `explained_variance`).
    pub fve: f64,
    /// Mean next-token cross-entropy of the clean run; `null` for a one-token text.
    pub ce_clean: Option<f64>,
    /// The same with the reconstruction spliced in at the hook at every position.
    pub ce_spliced: Option<f64>,
    /// KL(clean ‖ spliced), averaged over positions.
    pub kl_spliced: f64,
}

/// Features and their activations at every token of a text.
#[derive(Debug, Clone, Serialize)]
pub struct MostActive {
    /// Highest peak first.
    pub ids: Vec<usize>,
    /// `[T][ids]`.
    pub activations: Vec<Vec<f32>>,
}

/// A token and a value (a logit a feature adds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenValue {
    pub id: u32,
    pub token: String,
    pub value: f32,
}

/// Where a feature peaked in one text: the tokens around the peak and its activation at
/// each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureContext {
    /// The text's index in the corpus (0-based; with --lines, among non-empty lines).
    pub text: usize,
    /// The text as messages name it: `line 4 of --file f` with --lines, `text 2 of 3`,
    /// or `the text`.
    pub source: String,
    pub peak: f32,
    pub peak_position: usize,
    /// The position of `tokens[0]` in the text.
    pub start: usize,
    pub tokens: Vec<String>,
    pub activations: Vec<f32>,
}

/// A feature's activations over a corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureCorpus {
    pub texts: usize,
    pub tokens: u64,
    /// The fraction of tokens where it fires (activation ≠ 0).
    pub density: f64,
    /// Counts of the non-zero activations in bins of `bin_width` from 0.
    pub bin_width: f32,
    pub histogram: Vec<u64>,
    pub contexts: Vec<FeatureContext>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureRow {
    pub id: usize,
    /// W_dec[f] · W_Uᵀ: the tokens it promotes most, highest first.
    pub top_logits: Vec<TokenValue>,
    /// … and suppresses most, lowest first.
    pub bottom_logits: Vec<TokenValue>,
    /// log10 of its firing frequency in training, from the SAE's sparsity.safetensors
    /// (`null` without that file).
    pub log10_training_density: Option<f32>,
    pub corpus: Option<FeatureCorpus>,
}

/// `feature`: one or more SAE features.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureReport {
    #[serde(flatten)]
    pub header: Header,
    pub sae: String,
    pub hook: String,
    pub features: Vec<FeatureRow>,
}

/// `graph`: an attribution graph over transcoders as circuit-tracer computes it, pruned.
#[derive(Debug, Clone, Serialize)]
pub struct GraphReport {
    #[serde(flatten)]
    pub header: Header,
    /// The transcoders' folder and circuit-tracer's `scan` name for them.
    pub transcoders: String,
    pub scan: String,
    pub d_transcoder: usize,
    pub skip_connection: bool,
    /// A cross-layer transcoder: each layer's features write to every later layer too.
    pub cross_layer: bool,
    /// The tokens attributed: `<|endoftext|>`, then the text's.
    pub input_ids: Vec<u32>,
    pub tokens: Vec<String>,
    pub active_features: usize,
    /// Features with rows in the graph (all active ones, or the budget's choice).
    pub selected_features: usize,
    pub logits: Vec<GraphLogit>,
    /// circuit-tracer's `compute_graph_scores` on the unpruned graph.
    pub replacement_score: f64,
    pub completeness_score: f64,
    pub node_threshold: f64,
    pub edge_threshold: f64,
    /// What pruning kept.
    pub kept: GraphKept,
    /// The kept features and errors with the most influence on the logits, most first.
    pub top_nodes: Vec<GraphNodeInfluence>,
    /// Each position embedding's influence on the logits in the unpruned graph, measured
    /// as circuit-tracer measures its nodes' (gpt2-inspect's own nodes); `null` without
    /// them.
    pub position_influence: Option<Vec<f32>>,
    /// The tokens' influence, for comparison.
    pub token_influence: Vec<f32>,
    /// With --clamp or --ablate: the next tokens before and after (attention frozen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervention: Option<GraphIntervention>,
    /// The pruned graph as `--svg` and the explorer draw it.
    pub graph: GraphDrawing,
}

/// Features set to values with attention frozen (circuit-tracer's `feature_intervention`).
#[derive(Debug, Clone, Serialize)]
pub struct GraphIntervention {
    pub changes: Vec<GraphChange>,
    pub before: Vec<super::Prediction>,
    pub after: Vec<super::Prediction>,
}

/// One feature set to a value at one position.
#[derive(Debug, Clone, Serialize)]
pub struct GraphChange {
    pub node_id: String,
    pub layer: usize,
    pub feature: usize,
    pub position: usize,
    pub value: f32,
}

/// A logit node: its token and probability.
#[derive(Debug, Clone, Serialize)]
pub struct GraphLogit {
    pub id: u32,
    pub token: String,
    pub probability: f32,
}

/// How many nodes of each kind, and edges, pruning kept.
#[derive(Debug, Clone, Serialize)]
pub struct GraphKept {
    pub features: usize,
    pub errors: usize,
    pub tokens: usize,
    pub positions: usize,
    pub logits: usize,
    pub edges: usize,
}

/// A kept node and its influence on the logits.
#[derive(Debug, Clone, Serialize)]
pub struct GraphNodeInfluence {
    /// circuit-tracer's node id.
    pub node_id: String,
    /// `feature` or `error`.
    pub kind: &'static str,
    pub layer: usize,
    pub position: usize,
    pub token: String,
    /// The transcoder feature, for a feature node.
    pub feature: Option<usize>,
    pub activation: Option<f32>,
    pub influence: f32,
}

/// The graph file circuit-tracer's `create_graph_files` writes and Neuronpedia opens.
#[derive(Debug, Clone, Serialize)]
pub struct GraphFile {
    pub metadata: GraphFileMetadata,
    #[serde(rename = "qParams")]
    pub q_params: GraphQParams,
    pub nodes: Vec<GraphFileNode>,
    pub links: Vec<GraphLink>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphFileMetadata {
    pub slug: String,
    pub scan: String,
    pub transcoder_list: Vec<String>,
    pub prompt_tokens: Vec<String>,
    pub prompt: String,
    pub node_threshold: f64,
    pub schema_version: u32,
    /// circuit-tracer's scores of the unpruned graph (gpt2-inspect adds them here).
    pub replacement_score: f64,
    pub completeness_score: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphQParams {
    pub pinned_ids: Vec<String>,
    pub supernodes: Vec<Vec<String>>,
    pub link_type: String,
    pub clicked_id: String,
    #[serde(rename = "sg_pos")]
    pub sg_pos: String,
}

/// A node as circuit-tracer's `Node` model writes it.
#[derive(Debug, Clone, Serialize)]
pub struct GraphFileNode {
    pub node_id: String,
    pub feature: i64,
    pub layer: String,
    pub ctx_idx: usize,
    pub feature_type: String,
    pub token_prob: f64,
    pub is_target_logit: bool,
    pub run_idx: u32,
    pub reverse_ctx_idx: u32,
    #[serde(rename = "jsNodeId")]
    pub js_node_id: String,
    pub clerp: String,
    pub influence: Option<f64>,
    pub activation: Option<f64>,
}

/// An edge; circuit-tracer writes its f32 numbers as the f64 they are, and so do we.
#[derive(Debug, Clone, Serialize)]
pub struct GraphLink {
    pub source: String,
    pub target: String,
    pub weight: f64,
}

/// What `graph --svg` draws: the pruned graph's nodes on a grid of rows (the embeddings,
/// each layer, the logits) and positions, and its strongest edges.
#[derive(Debug, Clone, Serialize)]
pub struct GraphDrawing {
    pub text: String,
    pub tokens: Vec<String>,
    pub n_layers: usize,
    pub nodes: Vec<DrawnNode>,
    /// The strongest kept edges, by |weight|.
    pub edges: Vec<DrawnEdge>,
    /// Kept edges in all.
    pub kept_edges: usize,
}

/// What a node of an attribution graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Feature,
    Error,
    Token,
    /// A position embedding (gpt2-inspect's own).
    Position,
    Logit,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrawnNode {
    /// circuit-tracer's node id (`P_{pos}` for a position node).
    pub node_id: String,
    pub kind: NodeKind,
    /// 0: the embeddings; 1 + l: layer l; n_layers + 1: the logits.
    pub row: usize,
    pub position: usize,
    /// What a hover says: the node id and what it is.
    pub label: String,
    /// Its influence on the logits (position nodes: measured as circuit-tracer's nodes').
    pub influence: f32,
    /// A feature node's transcoder feature and its activation here.
    pub feature: Option<usize>,
    pub activation: Option<f32>,
    /// A feature's activation at every position of the prompt (empty for other nodes).
    pub activations: Vec<f32>,
    /// The tokens a feature's decoder vectors promote most, through the unembedding alone
    /// (`Σ_k W_dec[f, k] · W_Uᵀ`), highest first (empty for other nodes).
    pub top_logits: Vec<TokenValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrawnEdge {
    /// Indices into `nodes`.
    pub source: usize,
    pub target: usize,
    pub weight: f32,
}

/// `transcode`: how a transcoder set stands in for the MLPs on a text.
#[derive(Debug, Clone, Serialize)]
pub struct TranscodeReport {
    #[serde(flatten)]
    pub header: Header,
    pub transcoders: String,
    pub scan: String,
    pub d_transcoder: usize,
    pub cross_layer: bool,
    pub input_ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Mean next-token loss over the text.
    pub loss: TranscodeLoss,
    pub layers: Vec<TranscodeLayer>,
}

/// Mean next-token cross-entropy: the clean run's, with every MLP's output replaced by its
/// transcoder's, and with every MLP's output zeroed; `recovered` = (zeroed − replaced) /
/// (zeroed − clean), the share of the MLPs' loss the transcoders recover (`null` when
/// zeroing the MLPs changes nothing).
#[derive(Debug, Clone, Serialize)]
pub struct TranscodeLoss {
    pub clean: f64,
    pub replaced: f64,
    pub zeroed: f64,
    pub recovered: Option<f64>,
}

/// One layer on the clean run.
#[derive(Debug, Clone, Serialize)]
pub struct TranscodeLayer {
    pub layer: usize,
    /// Mean active features per token.
    pub mean_active: f64,
    /// Fraction of the MLP output's variance (over the text's tokens) left unexplained:
    /// Σ ‖y − ŷ‖² / Σ ‖y − ȳ‖².
    pub fvu: f64,
    pub positions: Vec<TranscodePosition>,
}

/// One layer at one token.
#[derive(Debug, Clone, Serialize)]
pub struct TranscodePosition {
    pub active: usize,
    /// ‖y − ŷ‖ and ‖y‖ of the MLP's output y.
    pub error_norm: f32,
    pub output_norm: f32,
    /// The most active features, most first (at most `--per-token`).
    pub features: Vec<FeatureValue>,
}
