//! The tokens family's reports: what the model reads and predicts (`tokenize`, `next`,
//! `trace`, `embed`, `hidden`, `hooks`, `dump`, `info`, `score`, `generate`).

use serde::Serialize;

use super::{Header, Matrix, Prediction};

/// A batch as the model gets it: right-padded ids and the attention mask (1 = real token,
/// 0 = padding), as Hugging Face's `tokenizer(texts, padding=True)` returns them.
#[derive(Debug, Clone, Serialize)]
pub struct Padding {
    pub input_ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<u32>>,
    /// `[B, T]`.
    pub shape: [usize; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub id: u32,
    /// BPE symbol (`Ġhow`).
    pub token: String,
    /// Decoded text (`" how"`).
    pub text: String,
    /// Byte offsets into the UTF-8 input.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenizeReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub shape: [usize; 2],
    pub tokens: Vec<TokenRow>,
}

/// A tensor the data went through on its way to the output.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeStep {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    /// What it is, in a few words.
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub stages: Vec<ShapeStep>,
    pub predictions: Vec<Prediction>,
    /// With steering flags: what was changed, and the predictions after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steered: Option<Steered>,
}

/// A run with an SAE's features steered, clamped or ablated at its hook.
#[derive(Debug, Clone, Serialize)]
pub struct Steered {
    #[serde(flatten)]
    pub with: SteeredWith,
    pub hook: String,
    /// What was done, one line each: `+3 · W_dec[5]`, `feature 7 clamped to 2`, …
    pub changes: Vec<String>,
    pub predictions: Vec<Prediction>,
}

/// What steered: `"sae": DIR` or `"jlens": FILE` in JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SteeredWith {
    Sae(String),
    Jlens(String),
}

/// Every stage of the data flow, text to next token.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub tokens: Vec<String>,
    pub stages: Vec<ShapeStep>,
    pub predictions: Vec<Prediction>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub id: u32,
    pub token: String,
    pub cosine: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbedToken {
    pub position: usize,
    pub id: u32,
    pub token: String,
    pub token_norm: f32,
    pub position_norm: f32,
    pub embedding_norm: f32,
    /// wte rows closest to this token's by cosine similarity, itself excluded (`--nearest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest: Option<Vec<Neighbour>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbedReport {
    #[serde(flatten)]
    pub header: Header,
    pub wte_shape: Vec<usize>,
    pub wpe_shape: Vec<usize>,
    pub tokens: Vec<EmbedToken>,
    /// `wte[id]`, `[T][d]`.
    pub token_embeddings: Matrix,
    /// `wpe[position]`, `[T][d]`.
    pub position_embeddings: Matrix,
    /// Their sum, the input of block 0, `[T][d]`.
    pub embeddings: Matrix,
}

#[derive(Debug, Clone, Serialize)]
pub struct HiddenReport {
    #[serde(flatten)]
    pub header: Header,
    pub tokens: Vec<String>,
    /// Blocks passed (as `lens` numbers its rows), or `"ln_f"` for the final hidden state;
    /// `None`: every depth.
    pub depth: Option<DepthShown>,
    pub n_layer: usize,
    /// `[1, T, d]` for one depth, `[n_layer + 1, 1, T, d]` for all.
    pub shape: Vec<usize>,
    /// Euclidean norm per token: `[T]` rows, one per depth shown (0 to n_layer, before
    /// ln_f).
    pub norms: Matrix,
    /// Without --depth: the norms after ln_f (HF's last hidden state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ln_f_norms: Option<Vec<f32>>,
    /// `[T][d]` (with `--depth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Matrix>,
}

/// A depth as `hidden` reports it: blocks passed, or `"ln_f"`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum DepthShown {
    Blocks(usize),
    LnF(&'static str),
}

#[derive(Debug, Clone, Serialize)]
pub struct HookRow {
    pub name: String,
    /// Sizes; `null` for the sequence length when none was given (the table shows `T`).
    pub shape: Vec<Option<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HooksReport {
    #[serde(flatten)]
    pub header: Header,
    pub seq_len: Option<usize>,
    pub hooks: Vec<HookRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpReport {
    #[serde(flatten)]
    pub header: Header,
    pub output: String,
    pub bytes: u64,
    pub input_ids: Vec<u32>,
    pub hooks: Vec<HookRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    /// A stored buffer (the causal mask of the original checkpoints), not a weight.
    pub buffer: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct InfoReport {
    #[serde(flatten)]
    pub header: Header,
    /// config.json as stored.
    pub config: serde_json::Value,
    /// Number of weights (buffers excluded; the LM head is tied to wte).
    pub parameters: usize,
    /// `transformer.`-prefixed keys (save_pretrained) or bare keys (original repositories).
    pub layout: String,
    /// The file chosen (transformers' order): the checkpoint, or the index of its shards.
    pub checkpoint: String,
    /// `safetensors`, `sharded safetensors`, `torch zip (torch.save)`, …
    pub format: String,
    /// The bytes of every file read (all shards for an index).
    pub checkpoint_bytes: u64,
    /// The files read: the checkpoint, or each shard.
    pub files: Vec<String>,
    pub tensors: Vec<TensorRow>,
}

/// The model's top guess where it was scored.
#[derive(Debug, Clone, Serialize)]
pub struct Guess {
    pub id: u32,
    pub token: String,
    pub prob: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoredToken {
    /// Position in the text (1 for the first scored token).
    pub position: usize,
    pub id: u32,
    pub token: String,
    /// log p(token | the tokens before it), natural log.
    pub logprob: f32,
    /// 1 = the model's top choice.
    pub rank: usize,
    pub top: Guess,
    /// With -k K: the K most likely tokens here, most first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Vec<Prediction>>,
    /// With -k: the entropy of the model's distribution here, in bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entropy_bits: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    /// Every token after the first.
    pub tokens: Vec<ScoredToken>,
    /// Sum of `logprob`.
    pub total_logprob: f64,
    /// Mean of -log2 p.
    pub mean_surprisal_bits: f64,
    /// exp(mean of -logprob).
    pub perplexity: f64,
    /// With steering flags: what was changed (the scores are the steered model's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steered: Option<Vec<String>>,
    /// With steering flags: the hook the SAE's reconstruction is changed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steered_at: Option<String>,
}

/// One generated token.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedToken {
    pub id: u32,
    /// Decoded token.
    pub token: String,
    /// Its probability under the model (softmax of the raw logits, before temperature,
    /// top-k or top-p).
    pub prob: f32,
    pub logprob: f32,
    /// The model's most likely tokens at this step.
    pub top: Vec<Prediction>,
    /// With --attention-layer/--attention-head: the weights over positions 0..=p of the
    /// query at position p, the one whose output chose this token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<Vec<f32>>,
    /// The 3 positions `attention` weighs most, most first (for the table).
    #[serde(skip)]
    pub attention_top: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub sampling: SamplingReport,
    /// `[layer, head]` recorded in each step's `attention`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention_head: Option<[usize; 2]>,
    pub generated_ids: Vec<u32>,
    pub generated_text: String,
    /// `max_new_tokens`, `eos` or `n_positions`.
    pub stop_reason: String,
    pub steps: Vec<GeneratedToken>,
    /// With steering flags: what was changed at every position of every step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steered: Option<Vec<String>>,
}

/// How `generate` chose tokens: `greedy`, or `sample` with the filters that were set
/// (`null` where a filter is off; `seed` is `null` when greedy).
#[derive(Debug, Clone, Serialize)]
pub struct SamplingReport {
    pub method: &'static str,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
}

impl std::fmt::Display for SamplingReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method)?;
        if let Some(k) = self.top_k {
            write!(f, " top_k={k}")?;
        }
        if let Some(p) = self.top_p {
            write!(f, " top_p={p}")?;
        }
        if let Some(t) = self.temperature {
            write!(f, " temperature={t}")?;
        }
        if let Some(s) = self.seed {
            write!(f, " seed={s}")?;
        }
        Ok(())
    }
}

/// A step of `generate` as it is streamed: the token and the text it completes.
#[derive(Debug, Clone, Copy)]
pub struct StreamedToken<'a> {
    pub index: usize,
    pub token: &'a GeneratedToken,
    /// Newly decodable text (empty while a multi-byte character is still incomplete).
    pub text: &'a str,
}
