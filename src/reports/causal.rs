//! The causal family's reports: `patch`, `circuit`, `ablate`, `attribute`, `heads`, and the
//! metric they measure.

use serde::Serialize;

use super::{Header, NamedToken, Prediction};

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
    /// Whether a share of clean − corrupt is defined: false when the two metrics are
    /// equal up to float noise, and every share (`restored`) is 0/0.
    pub shares_defined: bool,
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
    /// Each cell's share of the clean run restored, `(v − corrupt) / (clean − corrupt)`: 1
    /// restores the clean metric, 0 leaves the corrupt one; `null` where a cell is not a
    /// run, and everywhere when the two runs' metrics are equal (the share is undefined).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Grid>,
    /// The same of `estimates`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_estimates: Option<Grid>,
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
pub(super) struct Nested<'a>(&'a [usize], &'a [f32]);

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
    /// What each edge's effect is measured on (`--metric`, `--answer`, `--wrong`).
    pub metric: MetricSpec,
    /// The answer, when it is one token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<NamedToken>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrong: Option<NamedToken>,
    /// `eap`, or `eap-ig` with `ig_steps` > 1.
    pub method: &'static str,
    pub ig_steps: usize,
    pub clean_metric: f32,
    pub corrupt_metric: f32,
    /// `clean_metric` and `corrupt_metric` under their older names, when the metric is the
    /// logit difference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_logit_diff: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt_logit_diff: Option<f32>,
    /// Whether a share of clean − corrupt is defined: false when the two metrics are equal
    /// up to float noise, and every `share` and `recovered` is 0/0 (`null`).
    pub shares_defined: bool,
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
    /// `score` as a share of clean − corrupt: the part of the metric's change the edge
    /// carries (`null` when undefined).
    pub share: Option<f32>,
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
    pub metric: f32,
    /// `metric` under its older name, when the metric is the logit difference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_diff: Option<f32>,
    /// (logit_diff − corrupt) / (clean − corrupt), `null` when undefined.
    pub recovered: Option<f32>,
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
mod tests {
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
