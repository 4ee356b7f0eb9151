//! What each command found, as plain data. Serialized as is for `--json` (schema 1);
//! the table renderer reads the same values. No formatting and no model code here.

use serde::Serialize;

pub const SCHEMA: u32 = 1;

/// Fields every JSON object starts with.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub schema: u32,
    /// This tool's version.
    pub version: &'static str,
    /// The `--model` value as given.
    pub model: String,
    /// The commit the hub model resolved to; `null` for a local directory.
    pub revision: Option<String>,
    /// The input text, as far as it was analysed (what `--truncate` kept); `null` for
    /// commands without one.
    pub text: Option<String>,
    /// What `--truncate` cut from the text, when it cut anything (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

impl Header {
    pub fn new(model: &str, revision: Option<String>, text: Option<&str>) -> Self {
        Header {
            schema: SCHEMA,
            version: env!("CARGO_PKG_VERSION"),
            model: model.to_string(),
            revision,
            text: text.map(str::to_string),
            truncated: None,
        }
    }
}

/// What `--truncate` cut from a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Truncated {
    /// `left` (the start was cut) or `right` (the end was).
    pub side: &'static str,
    pub cut_tokens: usize,
}

/// A report that starts with the [`Header`], so a batch can say what was cut of its text.
pub trait Headed {
    fn header_mut(&mut self) -> &mut Header;
}

/// [`Headed`] for reports whose `header` field is the header.
macro_rules! headed {
    ($($report:ty),* $(,)?) => {
        $(impl Headed for $report {
            fn header_mut(&mut self) -> &mut Header {
                &mut self.header
            }
        })*
    };
}

/// A text of a batch that was not run, written where its report would be.
#[derive(Debug, Clone, Serialize)]
pub struct NotRun {
    /// Why, naming the text as stderr does.
    pub error: String,
    pub text: String,
    /// With --lines: its line in the input, from 1.
    pub line: Option<usize>,
}

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
    pub stages: Vec<ShapeStep>,
    pub predictions: Vec<Prediction>,
    /// With steering flags: what was changed, and the predictions after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steered: Option<Steered>,
}

/// A run with an SAE's features steered, clamped or ablated at its hook.
#[derive(Debug, Clone, Serialize)]
pub struct Steered {
    pub sae: String,
    pub hook: String,
    /// What was done, one line each: `+3 · W_dec[5]`, `feature 7 clamped to 2`, …
    pub changes: Vec<String>,
    pub predictions: Vec<Prediction>,
}

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
    /// The head's four stages (with `--stages`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<HeadStages>,
}

/// One head from input to output: what `--stages` draws.
#[derive(Debug, Clone, Serialize)]
pub struct HeadStages {
    /// `[T][d_model]`: ln_1's output, the input of every head of the layer.
    pub x: Matrix,
    /// `[T][T]`: QKᵀ/√d_head, masked keys `null`.
    pub scores: MaskedMatrix,
    /// `[T][T]`: the softmax of the scores.
    pub weights: Matrix,
    /// `[T][d_head]`: the weighted sum of the values, the head's output.
    pub z: Matrix,
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
pub struct LensRow {
    /// Blocks the residual stream has been through (0: the embeddings).
    pub depth: usize,
    pub predictions: Vec<Prediction>,
    /// Probability this layer gives the model's final top token.
    pub final_token_prob: f32,
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
    pub depths: Vec<LensRow>,
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

/// A file a command wrote, for stdout.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenReport {
    #[serde(flatten)]
    pub header: Header,
    pub path: String,
    pub bytes: u64,
    /// What is in it, in a few words.
    pub contents: String,
}

/// A token named on the command line: its id and how it decodes.
#[derive(Debug, Clone, Serialize)]
pub struct NamedToken {
    pub id: u32,
    pub token: String,
}

/// What a causal command measured of each run: TransformerLens's metrics of the answer at
/// the last position (an answer of several tokens teacher-forced, summed over its tokens).
#[derive(Debug, Clone, Serialize)]
pub struct MetricSpec {
    /// `logit`, `logprob`, `prob` (of the answer, minus the wrong token's) or `kl`.
    pub name: &'static str,
    /// The answer's tokens (empty: KL at the last position alone).
    pub answer: Vec<NamedToken>,
    /// Subtracted from a one-token answer's value.
    pub wrong: Option<NamedToken>,
    /// The run KL compares with: `clean`, or `unablated`.
    #[serde(skip)]
    pub reference: &'static str,
}

impl MetricSpec {
    /// How many last positions of a run the metric reads.
    pub fn positions(&self) -> usize {
        self.answer.len().max(1)
    }

    /// Whether the metric is TransformerLens's logit difference.
    pub fn is_logit_diff(&self) -> bool {
        self.name == "logit" && self.answer.len() == 1 && self.wrong.is_some()
    }

    /// The answer, when it is one token (the older reports' `answer`).
    pub fn one_answer(&self) -> Option<NamedToken> {
        match self.answer.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }
}

/// `patch`: the metric of every patched run.
#[derive(Debug, Clone, Serialize)]
pub struct PatchReport {
    #[serde(flatten)]
    pub header: Header,
    pub clean: String,
    pub corrupt: String,
    /// The clean run's tokens (with a teacher-forced answer's, but its last).
    pub tokens: Vec<String>,
    pub metric: MetricSpec,
    /// The answer when it is one token, and the wrong token (kept from the reports before
    /// `metric`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<NamedToken>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrong: Option<NamedToken>,
    pub site: String,
    /// `exact`, `attribution` or `both`.
    pub method: &'static str,
    /// `--path`: the sender head and its receivers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathSpec>,
    pub clean_metric: f32,
    pub corrupt_metric: f32,
    /// `clean_metric` and `corrupt_metric` under their older names, when the metric is the
    /// logit difference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_logit_diff: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt_logit_diff: Option<f32>,
    /// The grid's axes: `layer`, then `pos`, `head`, `dest`, `src` as the site has them
    /// (TransformerLens's order).
    pub axes: Vec<&'static str>,
    /// The metric of each run, nested along `axes` (`[L][T]`, `[L][H]`, `[L][T][H]`,
    /// `[L][H][T]`, `[L][H][T][T]`), `null` where a cell is not a run (a masked pattern
    /// entry); `null` under `--method attribution`.
    pub values: Option<Grid>,
    /// The same cells estimated by attribution patching (first order), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimates: Option<Grid>,
    /// Pearson's r of `values` and `estimates` over every cell (`--method both`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f64>,
    pub shape: Vec<usize>,
}

impl PatchReport {
    /// The report with the clean and corrupt runs' metric (and its older names).
    pub fn with_metric(self, clean: f32, corrupt: f32) -> PatchReport {
        let diff = self.metric.is_logit_diff();
        PatchReport {
            clean_metric: clean,
            corrupt_metric: corrupt,
            clean_logit_diff: diff.then_some(clean),
            corrupt_logit_diff: diff.then_some(corrupt),
            ..self
        }
    }
}

/// Path patching's sender (`L{l}H{h}`) and receivers (`q`, `k`, `v` or `logits`).
#[derive(Debug, Clone, Serialize)]
pub struct PathSpec {
    pub sender: String,
    pub to: &'static str,
}

/// An n-dimensional grid of numbers, row-major, serialized as nested arrays with NaN as
/// `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Grid {
    /// The 2-D slices along the last two axes, each with the index of the axes before
    /// them (for a 2-D grid, one slice with an empty index).
    pub fn slices(&self) -> Vec<(Vec<usize>, Vec<Vec<f32>>)> {
        let n = self.shape.len();
        let (rows, cols) = match n {
            0 => (1, 1),
            1 => (1, self.shape[0]),
            _ => (self.shape[n - 2], self.shape[n - 1]),
        };
        let outer = &self.shape[..n.saturating_sub(2)];
        let mut out = Vec::new();
        for (k, chunk) in self.values.chunks((rows * cols).max(1)).enumerate() {
            let mut idx = vec![0; outer.len()];
            let mut rest = k;
            for (d, &m) in outer.iter().enumerate().rev() {
                idx[d] = rest % m;
                rest /= m;
            }
            out.push((
                idx,
                chunk.chunks(cols.max(1)).map(<[f32]>::to_vec).collect(),
            ));
        }
        out
    }
}

impl Serialize for Grid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Nested(&self.shape, &self.values).serialize(s)
    }
}

/// One level of a [`Grid`]: `values` laid out along `shape`.
struct Nested<'a>(&'a [usize], &'a [f32]);

impl Serialize for Nested<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let Some((&n, inner)) = self.0.split_first() else {
            let v = self.1.first().copied().unwrap_or(f32::NAN);
            return match v.is_nan() {
                true => s.serialize_none(),
                false => s.serialize_f32(v),
            };
        };
        let step: usize = inner.iter().product();
        let mut seq = s.serialize_seq(Some(n))?;
        for i in 0..n {
            seq.serialize_element(&Nested(inner, &self.1[i * step..(i + 1) * step]))?;
        }
        seq.end()
    }
}

/// `patch --json` with several sites: each site's report as one site would print it.
#[derive(Debug, Clone, Serialize)]
pub struct PatchSitesReport {
    #[serde(flatten)]
    pub header: Header,
    pub sites: Vec<PatchReport>,
}

/// `circuit`: every edge's attribution score, the writers' node scores, and the
/// faithfulness of the top edges.
#[derive(Debug, Clone, Serialize)]
pub struct CircuitReport {
    #[serde(flatten)]
    pub header: Header,
    pub clean: String,
    pub corrupt: String,
    pub tokens: Vec<String>,
    pub answer: NamedToken,
    pub wrong: NamedToken,
    /// `eap`, or `eap-ig` with `ig_steps` > 1.
    pub method: &'static str,
    pub ig_steps: usize,
    pub clean_logit_diff: f32,
    pub corrupt_logit_diff: f32,
    /// How many edges the table and the graphs show.
    pub top: usize,
    /// Every edge, by |score| descending.
    pub edges: Vec<EdgeScore>,
    /// Every writer: the sum of its edges' scores, by |score| descending.
    pub nodes: Vec<NodeScore>,
    /// One entry per `--faithfulness` value, in the order given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faithfulness: Vec<Faithfulness>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EdgeScore {
    /// `embed`, `L{l}H{h}` or `mlp{l}`.
    pub writer: String,
    /// `L{l}H{h}.q` (`.k`, `.v`), `mlp{l}` or `logits`.
    pub reader: String,
    /// Its estimated effect on the metric: (writer_clean − writer_corrupt) ·
    /// ∂metric/∂(reader's input).
    pub score: f32,
    /// With `--exact N`, for the top N edges: the metric's change when the edge alone is
    /// patched (the reader's input given the writer's clean value), exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeScore {
    pub name: String,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Faithfulness {
    /// The top edges kept.
    pub edges: usize,
    /// The metric with every other edge corrupted.
    pub logit_diff: f32,
    /// (logit_diff − corrupt) / (clean − corrupt).
    pub recovered: f32,
}

/// `ablate`: predictions before and after removing components.
#[derive(Debug, Clone, Serialize)]
pub struct AblateReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub metric: MetricSpec,
    /// The answer when it is one token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<NamedToken>,
    /// What was removed: `L1H2`, `L0.mlp`.
    pub ablated: Vec<String>,
    pub mode: String,
    pub metric_before: f64,
    pub metric_after: f64,
    /// The answer's log-probability (summed over its tokens, teacher-forced).
    pub logprob_before: f64,
    pub logprob_after: f64,
    /// KL(before ‖ after) of the next-token distributions after the text, in nats.
    pub kl: f64,
    pub before: Vec<Prediction>,
    pub after: Vec<Prediction>,
}

/// `ablate --sweep`: every head ablated alone.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub metric: MetricSpec,
    /// The answer when it is one token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<NamedToken>,
    pub mode: String,
    pub metric_before: f64,
    /// The answer's log-probability before (summed over its tokens, teacher-forced).
    pub logprob_before: f64,
    /// `[L][H]`: the metric with the head ablated minus `metric_before`.
    pub values: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentValue {
    pub name: String,
    pub layer: Option<usize>,
    pub head: Option<usize>,
    pub value: f64,
}

/// `attribute`: direct logit attribution at one position.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeReport {
    #[serde(flatten)]
    pub header: Header,
    pub input_ids: Vec<u32>,
    pub position: usize,
    pub answer: NamedToken,
    pub wrong: Option<NamedToken>,
    pub components: Vec<ComponentValue>,
    /// `b_lnf · W_U[:, answer]` (minus the same for wrong).
    pub constant: f64,
    /// Sum of the components and the constant.
    pub total: f64,
    /// The model's own logit (or logit difference).
    pub logit: f64,
}

/// How `saliency` scored: the method and, for integrated gradients, its rule.
#[derive(Debug, Clone, Serialize)]
pub struct SaliencyMethod {
    /// `gradient`, `input-x-gradient`, `integrated-gradients` or `rollout`.
    pub method: &'static str,
    /// Whether the scores have a sign (drawn on a diverging scale).
    #[serde(skip)]
    pub signed: bool,
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

/// `heads`: each head's score of each kind, `[L][H]`.
#[derive(Debug, Clone, Serialize)]
pub struct HeadsReport {
    #[serde(flatten)]
    pub header: Header,
    /// All of x = s + s.
    pub input_ids: Vec<u32>,
    pub n: usize,
    pub scores: HeadScoresReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeadScoresReport {
    pub previous_token: Vec<Vec<f32>>,
    pub first_token: Vec<Vec<f32>>,
    pub induction: Vec<Vec<f32>>,
    pub duplicate_token: Vec<Vec<f32>>,
}

#[cfg(test)]
mod grid_tests {
    use super::Grid;

    #[test]
    fn a_grid_nests_along_its_shape_with_nan_as_null() {
        let g = Grid {
            shape: vec![2, 1, 2],
            values: vec![1.0, f32::NAN, 3.0, 4.5],
        };
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            "[[[1.0,null]],[[3.0,4.5]]]"
        );
        let scalar = Grid {
            shape: vec![],
            values: vec![2.0],
        };
        assert_eq!(serde_json::to_string(&scalar).unwrap(), "2.0");
        let slices = g.slices();
        assert_eq!(slices.len(), 2);
        assert_eq!(slices[1].0, vec![1]);
        assert_eq!(slices[1].1, vec![vec![3.0, 4.5]]);
    }
}

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
#[derive(Debug, Clone, Serialize)]
pub struct TokenValue {
    pub id: u32,
    pub token: String,
    pub value: f32,
}

/// Where a feature peaked in one text: the tokens around the peak and its activation at
/// each.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureContext {
    /// The text's index in the corpus (0-based; with --lines, among non-empty lines).
    pub text: usize,
    pub peak: f32,
    pub peak_position: usize,
    /// The position of `tokens[0]` in the text.
    pub start: usize,
    pub tokens: Vec<String>,
    pub activations: Vec<f32>,
}

/// A feature's activations over a corpus.
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
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

headed!(
    NextReport,
    AttentionReport,
    TraceReport,
    EmbedReport,
    HiddenReport,
    LensReport,
    LensGridReport,
    ScoreReport,
    GenerateReport,
    PageReport,
    TokenizeReport,
    FeaturesReport,
    DumpReport,
);
