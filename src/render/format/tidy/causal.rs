//! The causal family's reports as tidy tables.

use super::{long, one, predictions};
use crate::render::format::delimited::{Cell, Table, Tabular};
use crate::reports::{
    AblateReport, AttributeReport, CircuitReport, Grid, HeadsReport, PatchReport, PatchSitesReport,
    SweepReport,
};

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
        row.extend([value(&r.restored), value(&r.restored_estimates)]);
        t.push(row);
    }
}

const PATCH_COLUMNS: [&str; 10] = [
    "site",
    "layer",
    "pos",
    "head",
    "dest",
    "src",
    "value",
    "estimate",
    "restored",
    "restored_estimate",
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
        let mut edges = Table::new(&["rank", "writer", "reader", "score", "share", "exact"]);
        for (i, e) in self.edges.iter().enumerate() {
            let row = [
                (i + 1).into(),
                e.writer.as_str().into(),
                e.reader.as_str().into(),
            ];
            edges.push(
                [
                    row.to_vec(),
                    vec![e.score.into(), e.share.into(), e.exact.into()],
                ]
                .concat(),
            );
        }
        let mut nodes = Table::new(&["name", "score"]);
        for n in &self.nodes {
            nodes.push(vec![n.name.as_str().into(), n.score.into()]);
        }
        let mut parts = vec![("edges", edges), ("nodes", nodes)];
        if !self.faithfulness.is_empty() {
            let mut f = Table::new(&["kept", "metric", "recovered"]);
            for x in &self.faithfulness {
                f.push(vec![x.edges.into(), x.metric.into(), x.recovered.into()]);
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
