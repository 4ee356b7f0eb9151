//! The attention family's reports as tidy tables.

use super::{one, predictions};
use crate::render::format::delimited::{Cell, Table, Tabular};
use crate::reports::{
    AttentionReport, Bertviz, BertvizReport, LensGridReport, LensReport, Prediction,
};

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

impl Tabular for BertvizReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["layer", "head", "query", "key", "weight"]);
        for (l, heads) in self.all.iter().enumerate() {
            for (h, m) in heads.iter().enumerate() {
                for (q, row) in m.iter().enumerate() {
                    for (k, &w) in row.iter().enumerate() {
                        t.push(vec![l.into(), h.into(), q.into(), k.into(), w.into()]);
                    }
                }
            }
        }
        one("weights", t)
    }
}

impl Tabular for Bertviz {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        match self {
            Bertviz::One(r) => r.tables(),
            Bertviz::Many(rs) => {
                let mut all = Table::new(&["text", "layer", "head", "query", "key", "weight"]);
                for (i, r) in rs.iter().enumerate() {
                    for (_, t) in r.tables() {
                        for row in t.rows {
                            all.push([vec![i.into()], row].concat());
                        }
                    }
                }
                one("weights", all)
            }
        }
    }
}

impl Tabular for LensReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let rows: Vec<(Vec<Cell>, &[Prediction])> = (self.depths.iter())
            .map(|r| {
                let st = &r.stats;
                let stats = [
                    st.kl_to_final.into(),
                    st.entropy.into(),
                    st.final_token_rank.into(),
                ];
                let lead = [r.depth.into(), r.final_token_prob.into()];
                ([lead.to_vec(), stats.to_vec()].concat(), &r.predictions[..])
            })
            .collect();
        let lead = [
            "depth",
            "final_token_prob",
            "kl_to_final",
            "entropy",
            "final_token_rank",
        ];
        one("depths", predictions(&lead, &rows))
    }
}

impl Tabular for crate::reports::LensFitReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&["line", "tokens"]);
        for s in &self.skipped {
            t.push(vec![s.line.into(), s.tokens.into()]);
        }
        one("skipped", t)
    }
}

impl Tabular for LensGridReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&[
            "depth",
            "position",
            "input",
            "id",
            "token",
            "prob",
            "kl_to_final",
            "entropy",
            "final_token_rank",
        ]);
        for (d, row) in self.top.iter().enumerate() {
            for (p, g) in row.iter().enumerate() {
                let lead = [
                    self.depths[d].into(),
                    p.into(),
                    self.tokens[p].as_str().into(),
                ];
                let guess = [g.id.into(), g.token.as_str().into(), g.prob.into()];
                let stats = [
                    self.stats.kl_to_final[d][p].into(),
                    self.stats.entropy[d][p].into(),
                    self.stats.final_token_rank[d][p].into(),
                ];
                t.push([lead.to_vec(), guess.to_vec(), stats.to_vec()].concat());
            }
        }
        one("top", t)
    }
}
