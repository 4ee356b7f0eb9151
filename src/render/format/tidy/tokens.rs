//! The tokens family's reports as tidy tables.

use super::{hooks, long, one, predictions};
use crate::render::format::delimited::{shape, Cell, Table, Tabular};
use crate::reports::{
    DepthShown, DumpReport, EmbedReport, GenerateReport, HiddenReport, HooksReport, InfoReport,
    NextReport, ScoreReport, TokenizeReport, TraceReport, WrittenReport,
};

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
        // A steered run says so on every row: the scores are the steered model's.
        let steered = (self.steered.as_ref()).map(|c| {
            format!(
                "{} at {}",
                c.join(", "),
                self.steered_at.as_deref().unwrap_or_default()
            )
        });
        if steered.is_some() {
            columns.push("steered");
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
            if let Some(how) = &steered {
                row.push(how.as_str().into());
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
