//! The gradients family's reports as tidy tables.

use super::one;
use crate::render::format::delimited::{Table, Tabular};
use crate::reports::{SaliencyMatrixReport, SaliencyReport};

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
