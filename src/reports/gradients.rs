//! The gradients family's reports: `saliency`, one position's or a matrix of them.

use serde::Serialize;

use super::{Header, NamedToken};

/// How `saliency` scored: the method and, for integrated gradients, its rule.
#[derive(Debug, Clone, Serialize)]
pub struct SaliencyMethod {
    /// `gradient`, `input-x-gradient`, `integrated-gradients` or `rollout`.
    pub method: &'static str,
    /// Whether the scores have a sign (drawn on a diverging scale).
    #[serde(skip)]
    pub signed: bool,
    /// Whether the scores explain the answer (every method but `rollout`, which follows the
    /// attention alone: its `answer` is only the top prediction there).
    pub explains_answer: bool,
    /// What of the answer is explained: `logit`, `logprob` or `prob`.
    pub quantity: &'static str,
    /// Integrated gradients: the Gauss–Legendre points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// Integrated gradients: `zero` or `eos`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<&'static str>,
}

/// `saliency`: each input token's share in the prediction at one position.
#[derive(Debug, Clone, Serialize)]
pub struct SaliencyReport {
    #[serde(flatten)]
    pub header: Header,
    pub tokens: Vec<String>,
    pub input_ids: Vec<u32>,
    #[serde(flatten)]
    pub method: SaliencyMethod,
    pub position: usize,
    pub answer: NamedToken,
    pub wrong: Option<NamedToken>,
    /// The metric's value at the input.
    pub metric: f32,
    /// One per token at or before `position`.
    pub scores: Vec<f32>,
    /// Integrated gradients: Σ scores − (metric − baseline_metric), Captum's convergence
    /// delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_metric: Option<f32>,
}

/// `saliency --generate` / `--continuation`: each later token explained by every token
/// before it.
#[derive(Debug, Clone, Serialize)]
pub struct SaliencyMatrixReport {
    #[serde(flatten)]
    pub header: Header,
    /// The text's tokens, then the generated (or given) ones.
    pub tokens: Vec<String>,
    pub input_ids: Vec<u32>,
    /// How many of `tokens` are the text's.
    pub prompt_tokens: usize,
    #[serde(flatten)]
    pub method: SaliencyMethod,
    /// Row i's token: `tokens[prompt_tokens + i]`.
    pub answers: Vec<NamedToken>,
    /// Row i's metric (of its token, at the position before it).
    pub metrics: Vec<f32>,
    /// `[N][T]`: row i's score of every token before its own; `null` from its own on.
    pub matrix: Vec<Vec<Option<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deltas: Option<Vec<f32>>,
}
