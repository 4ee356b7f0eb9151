//! What each command found, as plain data. Serialized as is for `--json` (schema 1);
//! the table renderer reads the same values. No formatting and no model code here.

use serde::Serialize;

pub const SCHEMA: u32 = 1;

/// Fields every JSON object starts with.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub schema: u32,
    /// The `--model` value as given.
    pub model: String,
    /// The input text; `null` for commands without one.
    pub text: Option<String>,
}

impl Header {
    pub fn new(model: &str, text: Option<&str>) -> Self {
        Header {
            schema: SCHEMA,
            model: model.to_string(),
            text: text.map(str::to_string),
        }
    }
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
pub struct Stage {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    /// What it is, in a few words.
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub rank: usize,
    pub id: u32,
    /// Decoded token.
    pub token: String,
    pub prob: f32,
    pub logprob: f32,
    pub logit: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub stages: Vec<Stage>,
    pub predictions: Vec<Prediction>,
}

/// Attention probabilities, nested as deep as the request was wide.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AttentionWeights {
    /// One head: `[T][T]`.
    Head(Vec<Vec<f32>>),
    /// One layer: `[H][T][T]`.
    Layer(Vec<Vec<Vec<f32>>>),
    /// Every layer: `[L][H][T][T]` (H = 1 when one head was asked for).
    All(Vec<Vec<Vec<Vec<f32>>>>),
}

#[derive(Debug, Clone, Serialize)]
pub struct AttentionReport {
    #[serde(flatten)]
    pub header: Header,
    /// Decoded tokens, the labels of rows (queries) and columns (keys).
    pub tokens: Vec<String>,
    pub layer: Option<usize>,
    pub head: Option<usize>,
    pub shape: Vec<usize>,
    pub weights: AttentionWeights,
}

/// One `[T][T]` map with the layer and head it belongs to.
pub struct HeadMap<'a> {
    pub layer: usize,
    pub head: usize,
    pub weights: &'a [Vec<f32>],
}

impl AttentionReport {
    /// Every map in the report, in layer-then-head order.
    pub fn maps(&self) -> Vec<HeadMap<'_>> {
        let layer0 = self.layer.unwrap_or(0);
        let head0 = self.head.unwrap_or(0);
        match &self.weights {
            AttentionWeights::Head(w) => vec![HeadMap {
                layer: layer0,
                head: head0,
                weights: w,
            }],
            AttentionWeights::Layer(hs) => hs
                .iter()
                .enumerate()
                .map(|(h, w)| HeadMap {
                    layer: layer0,
                    head: h,
                    weights: w,
                })
                .collect(),
            AttentionWeights::All(ls) => ls
                .iter()
                .enumerate()
                .flat_map(|(l, hs)| {
                    hs.iter().enumerate().map(move |(h, w)| HeadMap {
                        layer: l,
                        head: self.head.unwrap_or(h),
                        weights: w,
                    })
                })
                .collect(),
        }
    }
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
    pub checkpoint: String,
    pub checkpoint_bytes: u64,
    pub tensors: Vec<TensorRow>,
}
