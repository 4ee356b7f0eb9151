//! The features family's reports as tidy tables.

use super::one;
use crate::render::format::delimited::{Table, Tabular};
use crate::reports::{FeatureReport, FeaturesReport, GraphReport};

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

impl Tabular for GraphReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&crate::render::features::graph::NODE_COLUMNS);
        for n in &self.top_nodes {
            t.push(vec![
                n.node_id.as_str().into(),
                n.kind.into(),
                n.layer.into(),
                n.position.into(),
                n.token.as_str().into(),
                n.feature.into(),
                n.activation.into(),
                n.influence.into(),
            ]);
        }
        one("nodes", t)
    }
}

impl Tabular for crate::reports::TranscodeReport {
    fn tables(&self) -> Vec<(&'static str, Table)> {
        let mut t = Table::new(&[
            "layer",
            "position",
            "token",
            "active",
            "error_norm",
            "output_norm",
            "feature",
            "activation",
        ]);
        for layer in &self.layers {
            for (p, at) in layer.positions.iter().enumerate() {
                let lead = [
                    layer.layer.into(),
                    p.into(),
                    self.tokens[p].as_str().into(),
                    at.active.into(),
                    at.error_norm.into(),
                    at.output_norm.into(),
                ];
                for f in &at.features {
                    t.push([lead.to_vec(), vec![f.id.into(), f.activation.into()]].concat());
                }
            }
        }
        one("features", t)
    }
}
