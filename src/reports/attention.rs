//! The attention family's reports: `attention` (patterns, stages, the neuron view, BertViz's
//! data), `lens`, and the `report` page.

use serde::Serialize;

use super::{Guess, Header, NamedToken, Prediction, SaliencyMethod, TokenRow};

/// A `[T][T]` (or `[T][d_head]`) matrix of one head.
pub type Matrix = Vec<Vec<f32>>;

/// Scores with masked positions as `None` (`null` in JSON).
pub type MaskedMatrix = Vec<Vec<Option<f32>>>;

/// Per-head matrices, nested as deep as the request was wide.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PerHead<M> {
    /// One head: `M`.
    Head(M),
    /// One layer: `[H]M`.
    Layer(Vec<M>),
    /// Every layer: `[L][H]M` (H = 1 when one head was asked for).
    All(Vec<Vec<M>>),
}

/// One head's matrix with the layer and head it belongs to.
pub struct HeadMap<'a, M> {
    pub layer: usize,
    pub head: usize,
    pub matrix: &'a M,
}

impl<M> PerHead<M> {
    /// Nests `[layer][head]` matrices the way the request (`layer`, `head` given or not) reads.
    pub fn nest(mut per_layer: Vec<Vec<M>>, layer: Option<usize>, head: Option<usize>) -> Self {
        match (layer, head) {
            (Some(_), Some(_)) => PerHead::Head(per_layer.remove(0).remove(0)),
            (Some(_), None) => PerHead::Layer(per_layer.remove(0)),
            (None, _) => PerHead::All(per_layer),
        }
    }

    /// Heads in each layer of the request: 1 for one head.
    pub fn heads_per_layer(&self) -> usize {
        match self {
            PerHead::Head(_) => 1,
            PerHead::Layer(hs) => hs.len(),
            PerHead::All(ls) => ls.first().map_or(1, Vec::len),
        }
    }

    /// Every matrix, in layer-then-head order, labelled with the `layer` and `head` asked for.
    pub fn maps(&self, layer: Option<usize>, head: Option<usize>) -> Vec<HeadMap<'_, M>> {
        let (l0, h0) = (layer.unwrap_or(0), head.unwrap_or(0));
        match self {
            PerHead::Head(m) => vec![HeadMap {
                layer: l0,
                head: h0,
                matrix: m,
            }],
            PerHead::Layer(hs) => hs
                .iter()
                .enumerate()
                .map(|(h, m)| HeadMap {
                    layer: l0,
                    head: head.unwrap_or(h),
                    matrix: m,
                })
                .collect(),
            PerHead::All(ls) => ls
                .iter()
                .enumerate()
                .flat_map(|(l, hs)| {
                    hs.iter().enumerate().map(move |(h, m)| HeadMap {
                        layer: l,
                        head: head.unwrap_or(h),
                        matrix: m,
                    })
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AttentionReport {
    #[serde(flatten)]
    pub header: Header,
    /// Decoded tokens, the labels of rows (queries) and columns (keys).
    pub tokens: Vec<String>,
    pub layer: Option<usize>,
    pub head: Option<usize>,
    /// `[start, end)` of the positions shown (`--window`); `tokens` and every matrix hold
    /// just those rows and columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<[usize; 2]>,
    /// Shape of `weights`: `[T, T]`, `[H, T, T]` or `[L, H, T, T]`.
    pub shape: Vec<usize>,
    pub weights: PerHead<Matrix>,
    /// Scaled pre-softmax scores, masked future positions `null` (with `--scores`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<PerHead<MaskedMatrix>>,
    /// `[T][d_head]` per head (with `--qkv`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<PerHead<Matrix>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<PerHead<Matrix>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v: Option<PerHead<Matrix>>,
    /// The neuron view of one query (with `--query`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neuron: Option<NeuronView>,
    /// The head's stages, input to output (with `--stages`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<HeadStages>,
}

/// One head from input to output, in data-flow order: what `--stages` draws.
#[derive(Debug, Clone, Serialize)]
pub struct HeadStages {
    /// `[T][d_model]`: ln_1's output, the input of every head of the layer.
    pub x: Matrix,
    /// `[T][d_head]`: the queries, x·W_Q + b_Q (TransformerLens's `hook_q`).
    pub q: Matrix,
    /// `[T][d_head]`: the keys, x·W_K + b_K.
    pub k: Matrix,
    /// `[T][d_head]`: the values, x·W_V + b_V.
    pub v: Matrix,
    /// `[T][T]`: QKᵀ/√d_head, masked keys `null`.
    pub scores: MaskedMatrix,
    /// `[T][T]`: the softmax of the scores.
    pub weights: Matrix,
    /// `[T][d_head]`: the weighted sum of the values.
    pub z: Matrix,
    /// `[T][d_model]`: z·W_O, what the head adds to the residual stream (TransformerLens's
    /// `hook_result`: before the sum over heads and b_O).
    pub result: Matrix,
}

/// How one query attends, element by element (BertViz's neuron view), for the head of an
/// [`AttentionReport`]. Keys after the query are masked: `dot` and `scores` `null` there,
/// `weights` exactly 0.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronView {
    /// The query position.
    pub query: usize,
    /// `[d_head]`.
    pub q: Vec<f32>,
    /// `[T][d_head]`: every key.
    pub k: Matrix,
    /// `[T][d_head]`: q × k element by element.
    pub qk: Matrix,
    /// `[T]`: q · k.
    pub dot: Vec<Option<f32>>,
    /// `[T]`: q · k / √d_head, HF's pre-softmax score.
    pub scores: Vec<Option<f32>>,
    /// `[T]`: the softmax of the scores, the query's row of the attention pattern.
    pub weights: Vec<f32>,
}

/// What BertViz's `head_view` loaders take (`tokens`, `all`), after the header every JSON
/// object carries.
#[derive(Debug, Clone, Serialize)]
pub struct BertvizReport {
    #[serde(flatten)]
    pub header: Header,
    pub tokens: Vec<String>,
    /// `[L][H][T][T]`.
    pub all: Vec<Vec<Matrix>>,
}

/// `attention --format bertviz`: one text's object, or several texts' in an array (BertViz
/// reads one object per text; `--jsonl` writes them one a line).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Bertviz {
    One(BertvizReport),
    Many(Vec<BertvizReport>),
}

#[derive(Debug, Clone, Serialize)]
pub struct LensRow {
    /// Blocks the residual stream has been through (0: the embeddings).
    pub depth: usize,
    pub predictions: Vec<Prediction>,
    /// Probability this layer gives the model's final top token.
    pub final_token_prob: f32,
    pub stats: LensStats<f32, usize>,
}

/// What tuned-lens's prediction trajectories say of a depth, at one position (`LensStats<f32,
/// usize>`) or at every position (`[depth][position]` grids).
#[derive(Debug, Clone, Serialize)]
pub struct LensStats<F, R> {
    /// KL(final ‖ this depth), in nats: how far this depth's distribution is from the
    /// model's (tuned-lens's `forward_kl`; 0 at the last depth).
    pub kl_to_final: F,
    /// Entropy of this depth's distribution, in nats.
    pub entropy: F,
    /// The rank of the model's final top token here (1: this depth's top token).
    pub final_token_rank: R,
    /// `--answer`'s rank here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_rank: Option<R>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LensReport {
    #[serde(flatten)]
    pub header: Header,
    pub tokens: Vec<String>,
    pub position: usize,
    /// The model's own top token at `position` (the last row's first prediction).
    pub final_id: u32,
    pub final_token: String,
    /// The lens each depth is read through.
    pub lens: LensKind,
    /// `--answer`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<NamedToken>,
    pub depths: Vec<LensRow>,
    /// `--lens a,b,…`: the other lenses' readings at the same position, side by side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compared: Vec<LensReading>,
}

/// One lens's depths at a position, beside another's.
#[derive(Debug, Clone, Serialize)]
pub struct LensReading {
    pub lens: LensKind,
    pub depths: Vec<LensRow>,
}

/// `lens fit`: what was fitted, on what, and where it was written.
#[derive(Debug, Clone, Serialize)]
pub struct LensFitReport {
    #[serde(flatten)]
    pub header: Header,
    /// `--file`, as given.
    pub corpus: String,
    pub output: String,
    /// Prompts averaged into the lens.
    pub n_prompts: usize,
    /// Lines too short to fit on (at most `skip_first + 1` tokens after the cut): their
    /// line numbers and token counts.
    pub skipped: Vec<SkippedLine>,
    pub source_layers: Vec<usize>,
    pub target_layer: usize,
    pub d_model: usize,
    pub max_seq_len: usize,
    pub skip_first_positions: usize,
    pub prepend_bos: bool,
    /// Tokens the fitted prompts held, in all (after the cut).
    pub tokens: usize,
    /// With `--partial`: the shards the partial written holds (`1 of 3`), for `merge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SkippedLine {
    pub line: usize,
    pub tokens: usize,
}

/// Which lens read the depths (`logit`, `tuned`, `jacobian` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LensKind {
    Logit,
    Tuned,
    Jacobian,
}

impl LensKind {
    pub fn name(self) -> &'static str {
        match self {
            LensKind::Logit => "logit",
            LensKind::Tuned => "tuned",
            LensKind::Jacobian => "jacobian",
        }
    }
}

/// `lens --all-positions`: the top prediction at every depth and position.
#[derive(Debug, Clone, Serialize)]
pub struct LensGridReport {
    #[serde(flatten)]
    pub header: Header,
    pub tokens: Vec<String>,
    /// `[depth][position]`: the most likely next token read from the residual stream there
    /// (depth 0: the embeddings; the last depth is the model's output).
    pub top: Vec<Vec<Guess>>,
    /// The depth of each row of `top` (and of the statistics): every depth, or those the
    /// lens reads.
    pub depths: Vec<usize>,
    /// The lens each depth is read through.
    pub lens: LensKind,
    /// `[depth][position]` grids of the statistics.
    pub stats: LensStats<Vec<Vec<f32>>, Vec<Vec<usize>>>,
    /// `--answer`, when given (its ranks are in `stats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<NamedToken>,
}

/// `report`: everything the HTML page shows, for one text.
#[derive(Debug, Clone, Serialize)]
pub struct PageReport {
    #[serde(flatten)]
    pub header: Header,
    pub tokens: Vec<TokenRow>,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_head: usize,
    /// `[L][H][T][T]` attention probabilities.
    pub attention: Vec<Vec<Matrix>>,
    /// Every head's queries and keys, for the neuron view (when the page holds them).
    pub neuron: Option<NeuronData>,
    /// What q and k take as f32, whether held or not.
    pub neuron_bytes: usize,
    /// The logit lens at the last position; its last row is the model's own prediction.
    pub lens: LensReport,
    /// Each token's share in the predicted token, when the model can be differentiated.
    pub saliency: Option<PageSaliency>,
}

/// The page's saliency strip: every token's score for the top next token.
#[derive(Debug, Clone, Serialize)]
pub struct PageSaliency {
    pub method: SaliencyMethod,
    pub answer: NamedToken,
    /// One per token.
    pub scores: Vec<f32>,
}

/// `[L][H][T][d_head]` queries and keys of every head.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronData {
    pub q: Vec<Vec<Matrix>>,
    pub k: Vec<Vec<Matrix>>,
}
