//! Every report's table view for `--csv` and `--tsv` (see [`super::delimited`]): what its
//! table shows, a row per item, the numbers as computed.

use super::delimited::{shape, Cell, Table, Tabular};
use crate::reports::{
    AblateReport, AttentionReport, AttributeReport, CircuitReport, DepthShown, DumpReport,
    EmbedReport, FeatureReport, FeaturesReport, GenerateReport, Grid, HeadsReport, HiddenReport,
    HookRow, HooksReport, InfoReport, LensGridReport, LensReport, NextReport, PatchReport,
    PatchSitesReport, Prediction, SaliencyMatrixReport, SaliencyReport, ScoreReport, SweepReport,
    TokenizeReport, TraceReport, WrittenReport,
};

/// One part, named after the report's field.
fn one(name: &'static str, table: Table) -> Vec<(&'static str, Table)> {
    vec![(name, table)]
}

/// Ranked predictions, each row led by `lead`'s cells (`lead_columns` names them).
fn predictions(lead_columns: &[&'static str], rows: &[(Vec<Cell>, &[Prediction])]) -> Table {
    let columns = [
        lead_columns,
        &["rank", "id", "token", "prob", "logprob", "logit"],
    ]
    .concat();
    let mut t = Table::new(&columns);
    for (lead, ps) in rows {
        for p in *ps {
            let cells: [Cell; 6] = [
                p.rank.into(),
                p.id.into(),
                p.token.as_str().into(),
                p.prob.into(),
                p.logprob.into(),
                p.logit.into(),
            ];
            t.push([lead.clone(), cells.to_vec()].concat());
        }
    }
    t
}

/// A `[rows][cols]` matrix as `(row, col, value)` rows under the three names.
fn long<T: Copy + Into<Cell>>(names: [&'static str; 3], m: &[Vec<T>]) -> Table {
    let mut t = Table::new(&names);
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t.push(vec![i.into(), j.into(), v.into()]);
        }
    }
    t
}

fn hooks(rows: &[HookRow]) -> Table {
    let mut t = Table::new(&["hook", "shape"]);
    for h in rows {
        let dims: Vec<String> = (h.shape.iter())
            .map(|d| d.map_or("T".into(), |d| d.to_string()))
            .collect();
        t.push(vec![h.name.as_str().into(), dims.join("x").into()]);
    }
    t
}

impl Tabular for TokenizeReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["position", "id", "token", "decoded", "start", "end"]);
        for (i, r) in self.tokens.iter().enumerate() {
            let row = [
                i.into(),
                r.id.into(),
                r.token.as_str().into(),
                r.text.as_str().into(),
            ];
            t.push([row.to_vec(), vec![r.start.into(), r.end.into()]].concat());
        }
        one("tokens", t)
    }
}

impl Tabular for NextReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut parts = one(
            "predictions",
            predictions(&[], &[(vec![], &self.predictions)]),
        );
        if let Some(s) = &self.steered {
            parts.push(("steered", predictions(&[], &[(vec![], &s.predictions)])));
        }
        parts
    }
}

impl Tabular for TraceReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut stages = Table::new(&["stage", "name", "shape", "dtype", "note"]);
        for (i, s) in self.stages.iter().enumerate() {
            let row = [i.into(), s.name.as_str().into(), shape(&s.shape)];
            stages.push(
                [
                    row.to_vec(),
                    vec![s.dtype.as_str().into(), s.note.as_str().into()],
                ]
                .concat(),
            );
        }
        let p = predictions(&[], &[(vec![], &self.predictions)]);
        vec![("stages", stages), ("predictions", p)]
    }
}

impl Tabular for AttentionReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let offset = self.window.map_or(0, |[a, _]| a);
        let columns: &[&'static str] = match self.scores {
            Some(_) => &["layer", "head", "query", "key", "weight", "score"],
            None => &["layer", "head", "query", "key", "weight"],
        };
        let mut t = Table::new(columns);
        let scores = self.scores.as_ref().map(|s| s.maps(self.layer, self.head));
        for (i, m) in self.weights.maps(self.layer, self.head).iter().enumerate() {
            for (q, row) in m.matrix.iter().enumerate() {
                for (k, &w) in row.iter().enumerate() {
                    let mut cells = vec![m.layer.into(), m.head.into(), (q + offset).into()];
                    cells.extend([(k + offset).into(), w.into()]);
                    if let Some(s) = &scores {
                        cells.push(s[i].matrix[q][k].into());
                    }
                    t.push(cells);
                }
            }
        }
        one("weights", t)
    }
}

impl Tabular for EmbedReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let columns = [
            "position",
            "id",
            "token",
            "token_norm",
            "position_norm",
            "embedding_norm",
        ];
        let mut t = Table::new(&columns);
        let mut near = Table::new(&["position", "rank", "id", "token", "cosine"]);
        for e in &self.tokens {
            let row = [e.position.into(), e.id.into(), e.token.as_str().into()];
            let norms = [
                e.token_norm.into(),
                e.position_norm.into(),
                e.embedding_norm.into(),
            ];
            t.push([row, norms].concat());
            for (r, n) in e.nearest.iter().flatten().enumerate() {
                let row = [e.position.into(), (r + 1).into(), n.id.into()];
                near.push([row.to_vec(), vec![n.token.as_str().into(), n.cosine.into()]].concat());
            }
        }
        match near.rows.is_empty() {
            true => one("tokens", t),
            false => vec![("tokens", t), ("nearest", near)],
        }
    }
}

impl Tabular for HiddenReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut norms = Table::new(&["depth", "position", "token", "norm"]);
        let depth = |d: usize| -> Cell {
            match self.depth {
                Some(DepthShown::Blocks(b)) => b.into(),
                Some(DepthShown::LnF(s)) => s.into(),
                None => d.into(),
            }
        };
        let rows = (self.norms.iter().enumerate()).map(|(d, r)| (depth(d), r));
        for (d, row) in rows.chain(self.ln_f_norms.iter().map(|r| ("ln_f".into(), r))) {
            for (t, &v) in row.iter().enumerate() {
                norms.push(vec![
                    d.clone(),
                    t.into(),
                    self.tokens[t].as_str().into(),
                    v.into(),
                ]);
            }
        }
        match &self.values {
            Some(v) => vec![
                ("norms", norms),
                ("values", long(["position", "dim", "value"], v)),
            ],
            None => one("norms", norms),
        }
    }
}

impl Tabular for LensReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let rows: Vec<(Vec<Cell>, &[Prediction])> = (self.depths.iter())
            .map(|r| {
                (
                    vec![r.depth.into(), r.final_token_prob.into()],
                    &r.predictions[..],
                )
            })
            .collect();
        one("depths", predictions(&["depth", "final_token_prob"], &rows))
    }
}

impl Tabular for LensGridReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["depth", "position", "input", "id", "token", "prob"]);
        for (d, row) in self.top.iter().enumerate() {
            for (p, g) in row.iter().enumerate() {
                let lead = [d.into(), p.into(), self.tokens[p].as_str().into()];
                t.push(
                    [
                        lead.to_vec(),
                        vec![g.id.into(), g.token.as_str().into(), g.prob.into()],
                    ]
                    .concat(),
                );
            }
        }
        one("top", t)
    }
}

impl Tabular for HooksReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        one("hooks", hooks(&self.hooks))
    }
}

impl Tabular for DumpReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        one("hooks", hooks(&self.hooks))
    }
}

impl Tabular for WrittenReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["path", "bytes", "contents"]);
        t.push(vec![
            self.path.as_str().into(),
            self.bytes.into(),
            self.contents.as_str().into(),
        ]);
        one("written", t)
    }
}

impl Tabular for InfoReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut config = Table::new(&["key", "value"]);
        for (k, v) in self.config.as_object().into_iter().flatten() {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            config.push(vec![k.as_str().into(), v.into()]);
        }
        let mut tensors = Table::new(&["name", "shape", "dtype", "buffer"]);
        for r in &self.tensors {
            let row = [
                r.name.as_str().into(),
                shape(&r.shape),
                r.dtype.as_str().into(),
            ];
            tensors.push([row.to_vec(), vec![r.buffer.into()]].concat());
        }
        vec![("config", config), ("tensors", tensors)]
    }
}

impl Tabular for ScoreReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut columns = vec!["position", "id", "token", "logprob", "rank"];
        columns.extend(["top_id", "top_token", "top_prob"]);
        let entropy = self.tokens.iter().any(|t| t.entropy_bits.is_some());
        if entropy {
            columns.push("entropy_bits");
        }
        let mut t = Table::new(&columns);
        let mut alternatives = Vec::new();
        for s in &self.tokens {
            let mut row = vec![s.position.into(), s.id.into(), s.token.as_str().into()];
            row.extend([s.logprob.into(), s.rank.into(), s.top.id.into()]);
            row.extend([s.top.token.as_str().into(), s.top.prob.into()]);
            if entropy {
                row.push(s.entropy_bits.into());
            }
            t.push(row);
            if let Some(a) = &s.alternatives {
                alternatives.push((vec![s.position.into()], &a[..]));
            }
        }
        match alternatives.is_empty() {
            true => one("tokens", t),
            false => vec![
                ("tokens", t),
                ("alternatives", predictions(&["position"], &alternatives)),
            ],
        }
    }
}

impl Tabular for GenerateReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["step", "id", "token", "prob", "logprob"]);
        let mut top = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let row = [i.into(), s.id.into(), s.token.as_str().into()];
            t.push([row.to_vec(), vec![s.prob.into(), s.logprob.into()]].concat());
            if !s.top.is_empty() {
                top.push((vec![i.into()], &s.top[..]));
            }
        }
        match top.is_empty() {
            true => one("steps", t),
            false => vec![("steps", t), ("top", predictions(&["step"], &top))],
        }
    }
}

/// Every cell of a patching grid: its site, its index along each axis, its value and
/// estimate.
fn patch_cells(r: &PatchReport, t: &mut Table) {
    let grid: Option<&Grid> = r.values.as_ref().or(r.estimates.as_ref());
    let Some(grid) = grid else { return };
    let site = match &r.path {
        Some(p) => format!("path {} to {}", p.sender, p.to),
        None => r.site.clone(),
    };
    for i in 0..grid.values.len() {
        let mut at = vec![Cell::Empty; 5]; // layer, pos, head, dest, src
        let mut rest = i;
        for (axis, &n) in r.axes.iter().zip(&grid.shape).rev() {
            let slot = ["layer", "pos", "head", "dest", "src"]
                .iter()
                .position(|a| a == axis);
            if let Some(slot) = slot {
                at[slot] = (rest % n).into();
            }
            rest /= n;
        }
        let value = |g: &Option<Grid>| -> Cell { g.as_ref().map(|g| g.values[i]).into() };
        let mut row = vec![site.as_str().into()];
        row.extend(at);
        row.extend([value(&r.values), value(&r.estimates)]);
        t.push(row);
    }
}

const PATCH_COLUMNS: [&str; 8] = [
    "site", "layer", "pos", "head", "dest", "src", "value", "estimate",
];

impl Tabular for PatchReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&PATCH_COLUMNS);
        patch_cells(self, &mut t);
        one("cells", t)
    }
}

impl Tabular for PatchSitesReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&PATCH_COLUMNS);
        for r in &self.sites {
            patch_cells(r, &mut t);
        }
        one("cells", t)
    }
}

impl Tabular for CircuitReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut edges = Table::new(&["rank", "writer", "reader", "score", "exact"]);
        for (i, e) in self.edges.iter().enumerate() {
            let row = [
                (i + 1).into(),
                e.writer.as_str().into(),
                e.reader.as_str().into(),
            ];
            edges.push([row.to_vec(), vec![e.score.into(), e.exact.into()]].concat());
        }
        let mut nodes = Table::new(&["name", "score"]);
        for n in &self.nodes {
            nodes.push(vec![n.name.as_str().into(), n.score.into()]);
        }
        let mut parts = vec![("edges", edges), ("nodes", nodes)];
        if !self.faithfulness.is_empty() {
            let mut f = Table::new(&["kept", "logit_diff", "recovered"]);
            for x in &self.faithfulness {
                f.push(vec![
                    x.edges.into(),
                    x.logit_diff.into(),
                    x.recovered.into(),
                ]);
            }
            parts.push(("faithfulness", f));
        }
        parts
    }
}

impl Tabular for AblateReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut metrics = Table::new(&["quantity", "before", "after"]);
        if self.metric.name != "logprob" || self.metric.wrong.is_some() {
            let name = format!("metric {}", self.metric.name);
            metrics.push(vec![
                name.into(),
                self.metric_before.into(),
                self.metric_after.into(),
            ]);
        }
        metrics.push(vec![
            "logprob".into(),
            self.logprob_before.into(),
            self.logprob_after.into(),
        ]);
        metrics.push(vec!["kl".into(), 0.0f64.into(), self.kl.into()]);
        let rows = [
            (vec!["before".into()], &self.before[..]),
            (vec!["after".into()], &self.after[..]),
        ];
        vec![
            ("metrics", metrics),
            ("predictions", predictions(&["run"], &rows)),
        ]
    }
}

impl Tabular for SweepReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        one("values", long(["layer", "head", "change"], &self.values))
    }
}

impl Tabular for AttributeReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["component", "layer", "head", "value"]);
        for c in &self.components {
            t.push(vec![
                c.name.as_str().into(),
                c.layer.into(),
                c.head.into(),
                c.value.into(),
            ]);
        }
        t.push(vec![
            "constant".into(),
            Cell::Empty,
            Cell::Empty,
            self.constant.into(),
        ]);
        one("components", t)
    }
}

impl Tabular for SaliencyReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["position", "id", "token", "score"]);
        for (i, (&s, tok)) in self.scores.iter().zip(&self.tokens).enumerate() {
            t.push(vec![
                i.into(),
                self.input_ids[i].into(),
                tok.as_str().into(),
                s.into(),
            ]);
        }
        one("scores", t)
    }
}

impl Tabular for SaliencyMatrixReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let columns = [
            "row",
            "answer_id",
            "answer",
            "metric",
            "position",
            "token",
            "score",
        ];
        let mut t = Table::new(&columns);
        for (i, row) in self.matrix.iter().enumerate() {
            let a = &self.answers[i];
            for (p, &s) in row.iter().enumerate() {
                let lead = [
                    i.into(),
                    a.id.into(),
                    a.token.as_str().into(),
                    self.metrics[i].into(),
                ];
                let cells = [p.into(), self.tokens[p].as_str().into(), s.into()];
                t.push([lead.to_vec(), cells.to_vec()].concat());
            }
        }
        one("matrix", t)
    }
}

impl Tabular for HeadsReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let columns = [
            "layer",
            "head",
            "previous_token",
            "first_token",
            "induction",
        ];
        let mut t = Table::new(&[&columns[..], &["duplicate_token"]].concat());
        let s = &self.scores;
        for (l, row) in s.previous_token.iter().enumerate() {
            for (h, &p) in row.iter().enumerate() {
                let lead = [l.into(), h.into(), p.into(), s.first_token[l][h].into()];
                let rest = [s.induction[l][h].into(), s.duplicate_token[l][h].into()];
                t.push([lead.to_vec(), rest.to_vec()].concat());
            }
        }
        one("scores", t)
    }
}

impl Tabular for FeaturesReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["position", "token", "l0", "feature", "activation"]);
        for (p, fs) in self.features.iter().enumerate() {
            for f in fs {
                let lead = [p.into(), self.tokens[p].as_str().into(), self.l0[p].into()];
                t.push([lead.to_vec(), vec![f.id.into(), f.activation.into()]].concat());
            }
        }
        one("features", t)
    }
}

impl Tabular for FeatureReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut logits = Table::new(&["feature", "side", "rank", "id", "token", "value"]);
        let mut contexts = Table::new(&[
            "feature",
            "context",
            "text",
            "peak",
            "position",
            "token",
            "activation",
        ]);
        for f in &self.features {
            for (side, list) in [("top", &f.top_logits), ("bottom", &f.bottom_logits)] {
                for (r, v) in list.iter().enumerate() {
                    let lead = [f.id.into(), side.into(), (r + 1).into()];
                    logits.push(
                        [
                            lead.to_vec(),
                            vec![v.id.into(), v.token.as_str().into(), v.value.into()],
                        ]
                        .concat(),
                    );
                }
            }
            for (c, ctx) in f.corpus.iter().flat_map(|c| c.contexts.iter()).enumerate() {
                for (i, (tok, &a)) in ctx.tokens.iter().zip(&ctx.activations).enumerate() {
                    let lead = [f.id.into(), c.into(), ctx.text.into(), ctx.peak.into()];
                    let cells = [(ctx.start + i).into(), tok.as_str().into(), a.into()];
                    contexts.push([lead.to_vec(), cells.to_vec()].concat());
                }
            }
        }
        match contexts.rows.is_empty() {
            true => one("logits", logits),
            false => vec![("logits", logits), ("contexts", contexts)],
        }
    }
}
