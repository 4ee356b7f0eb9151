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
