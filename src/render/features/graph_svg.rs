//! `graph --svg`: the pruned attribution graph as a figure. Rows bottom to top: the
//! embeddings (tokens and positions), each layer, the logits; columns: positions. A node's
//! area grows with its influence on the logits; an edge is red when it adds, blue when it
//! takes away, more opaque the stronger it is.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::render::color::{diverging, hex};
use crate::render::escape;
use crate::render::svg::{document, shorten, token_label};
use crate::reports::{GraphDrawing, NodeKind};

const COLUMN: f64 = 84.0;
const ROW: f64 = 64.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 64.0;

pub fn svg(out: &mut dyn Write, d: &GraphDrawing) -> io::Result<()> {
    let rows = d.n_layers + 2;
    let width = LEFT + COLUMN * d.tokens.len() as f64 + 16.0;
    let height = TOP + ROW * rows as f64 + 56.0;
    let at = places(d);
    let mut body = String::new();
    axes(&mut body, d, rows);
    edges(&mut body, d, &at);
    nodes(&mut body, d, &at);
    let subtitle = format!(
        "\"{}\": the {} strongest of {} kept edges; red adds, blue takes away; area: influence",
        shorten(&d.text, 60),
        d.edges.len(),
        d.kept_edges
    );
    document(
        out,
        width,
        height,
        "",
        Some(("attribution graph", &subtitle)),
        &body,
    )
}

/// The edges, coloured by sign, more opaque the stronger.
fn edges(body: &mut String, d: &GraphDrawing, at: &[(f64, f64)]) {
    let strongest = (d.edges.iter())
        .fold(0f32, |m, e| m.max(e.weight.abs()))
        .max(f32::MIN_POSITIVE);
    for e in &d.edges {
        let ((x1, y1), (x2, y2)) = (at[e.source], at[e.target]);
        let v = e.weight / strongest;
        let _ = writeln!(
            body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}" stroke-opacity="{:.2}" stroke-width="1"><title>{:+.4}</title></line>"#,
            hex(diverging(v.signum() * (0.35 + 0.65 * v.abs()))),
            0.15 + 0.85 * v.abs(),
            e.weight
        );
    }
}

/// The nodes: features round, the others square, their area by influence.
fn nodes(body: &mut String, d: &GraphDrawing, at: &[(f64, f64)]) {
    let most = (d.nodes.iter())
        .fold(0f32, |m, n| m.max(n.influence))
        .max(f32::MIN_POSITIVE);
    for (n, &(x, y)) in d.nodes.iter().zip(at) {
        let r = 2.5 + 7.5 * (n.influence.max(0.0) / most).sqrt() as f64;
        let title = escape(&n.label);
        let fill = match n.kind {
            NodeKind::Feature => "#e8a33d",
            NodeKind::Error => "#9a9a9a",
            NodeKind::Token => "#4f6d8f",
            NodeKind::Position => "#a9c1dc",
            NodeKind::Logit => "#5b9b5b",
        };
        let _ = match n.kind {
            NodeKind::Feature => writeln!(
                body,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="{fill}" stroke="#7a4f0c"><title>{title}</title></circle>"##
            ),
            NodeKind::Error | NodeKind::Token | NodeKind::Position | NodeKind::Logit => writeln!(
                body,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="#333"><title>{title}</title></rect>"##,
                x - r,
                y - r,
                2.0 * r,
                2.0 * r
            ),
        };
    }
}

/// Each node's centre: its row and position's cell, the cell's nodes side by side.
fn places(d: &GraphDrawing) -> Vec<(f64, f64)> {
    let rows = d.n_layers + 2;
    let mut count = std::collections::HashMap::new();
    for n in &d.nodes {
        *count.entry((n.row, n.position)).or_insert(0usize) += 1;
    }
    let mut seen = std::collections::HashMap::new();
    d.nodes
        .iter()
        .map(|n| {
            let i = seen.entry((n.row, n.position)).or_insert(0usize);
            let k = count[&(n.row, n.position)];
            let x = LEFT + COLUMN * (n.position as f64 + (*i as f64 + 1.0) / (k as f64 + 1.0));
            *i += 1;
            let y = TOP + ROW * ((rows - 1 - n.row) as f64 + 0.5);
            (x, y)
        })
        .collect()
}

/// The rows' names on the left, the tokens under the columns.
fn axes(body: &mut String, d: &GraphDrawing, rows: usize) {
    for row in 0..rows {
        let name = match row {
            0 => "emb".to_string(),
            r if r == rows - 1 => "logits".to_string(),
            r => format!("L{}", r - 1),
        };
        let y = TOP + ROW * ((rows - 1 - row) as f64 + 0.5);
        let _ = writeln!(
            body,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="#555">{name}</text>"##,
            LEFT - 8.0,
            y + 4.0
        );
    }
    let base = TOP + ROW * rows as f64 + 16.0;
    for (p, t) in d.tokens.iter().enumerate() {
        let x = LEFT + COLUMN * (p as f64 + 0.5);
        let _ = writeln!(
            body,
            r##"<text x="{x:.1}" y="{base:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            escape(&token_label(t))
        );
    }
}
