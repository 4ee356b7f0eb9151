//! `circuit`'s renderers: the table of top edges, the Graphviz graph (`--dot`) and the
//! graph drawn as SVG (`--svg`), layers top to bottom.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::render::attention::heatmap::{bg, fg, RESET};
use crate::render::causal::grids::{brief, fixed3, formula, heading};
use crate::render::color::{diverging, hex, ink};
use crate::render::svg::{document, CHAR_PX};
use crate::render::table::{columns, quoted, Align};
use crate::render::{escape, label, sentence, Palette};
use crate::reports::CircuitReport;

/// What the metric is called in a column or a sentence: `logit diff` for the logit
/// difference, else `metric`.
fn metric_name(r: &CircuitReport) -> &'static str {
    match r.metric.is_logit_diff() {
        true => "logit diff",
        false => "metric",
    }
}

fn method(r: &CircuitReport) -> String {
    match r.ig_steps {
        1 => "EAP: the gradient at the corrupt run".into(),
        n => format!("EAP-IG: the gradient averaged over {n} points from corrupt to clean"),
    }
}

/// A share of clean − corrupt, or `undefined` (0/0) when the two runs agree.
fn share(v: Option<f32>) -> String {
    v.map_or("undefined".into(), |v| format!("{v:+.3}"))
}

pub fn table(out: &mut dyn Write, r: &CircuitReport, palette: Option<Palette>) -> io::Result<()> {
    let texts = (r.clean.as_str(), r.corrupt.as_str());
    let metric = (r.clean_metric, r.corrupt_metric);
    let what = "edge attribution patching from";
    let formula = formula(&r.metric, &|t| quoted(t), "-");
    heading(out, what, texts, &formula, metric)?;
    writeln!(
        out,
        "{} edges, each scored (writer clean - writer corrupt) · ∂metric/∂(reader's input); {}",
        r.edges.len(),
        method(r)
    )?;
    if !r.shares_defined {
        writeln!(
            out,
            "clean and corrupt give the same {} ({:.4}): every share is 0/0, undefined, and \
             so is what a circuit recovers",
            metric_name(r),
            r.clean_metric
        )?;
    }
    writeln!(out)?;
    top_edges(out, r)?;
    writeln!(out)?;
    writeln!(out, "top writers (node score: the sum of its edges)")?;
    let rows: Vec<Vec<String>> = (r.nodes.iter().take(r.top.min(10)))
        .map(|n| vec![n.name.clone(), format!("{:+.4}", n.score)])
        .collect();
    columns(
        out,
        &["writer", "score"],
        &[Align::Left, Align::Right],
        &rows,
    )?;
    faithfulness(out, r, palette)
}

/// The top edges' table, with the exact changes when `--exact` asked for them.
fn top_edges(out: &mut dyn Write, r: &CircuitReport) -> io::Result<()> {
    writeln!(
        out,
        "top {} edges by |score| (share: of clean - corrupt)",
        r.top.min(r.edges.len())
    )?;
    let exact = r.edges.first().is_some_and(|e| e.exact.is_some());
    let rows: Vec<Vec<String>> = (r.edges.iter().take(r.top).enumerate())
        .map(|(i, e)| {
            let mut row = vec![
                (i + 1).to_string(),
                e.writer.clone(),
                e.reader.clone(),
                format!("{:+.4}", e.score),
                share(e.share),
            ];
            if exact {
                row.push(e.exact.map_or("".into(), |x| format!("{x:+.4}")));
            }
            row
        })
        .collect();
    let mut head = vec!["rank", "writer", "reader", "score", "share"];
    let mut align = vec![
        Align::Right,
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
    ];
    if exact {
        head.push("exact");
        align.push(Align::Right);
    }
    columns(out, &head, &align, &rows)?;
    if exact {
        writeln!(
            out,
            "exact: the metric's change with that edge alone patched (the estimate's target)"
        )?;
    }
    Ok(())
}

/// The recovered share of each `--faithfulness` circuit, with a bar.
fn faithfulness(
    out: &mut dyn Write,
    r: &CircuitReport,
    palette: Option<Palette>,
) -> io::Result<()> {
    if r.faithfulness.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "faithfulness: the top edges kept, every other edge given its writer's corrupt value"
    )?;
    let rows: Vec<Vec<String>> = (r.faithfulness.iter())
        .map(|f| {
            let recovered = f.recovered.unwrap_or(0.0);
            let n = (recovered.clamp(0.0, 1.5) * 20.0).round() as usize;
            let bar = "█".repeat(n);
            let bar = match palette {
                Some(p) => {
                    let c = diverging(recovered);
                    format!("{}{}{bar}{RESET}", bg(p, [255, 255, 255]), fg(p, c))
                }
                None => bar,
            };
            vec![
                f.edges.to_string(),
                format!("{:.4}", f.metric),
                f.recovered.map_or("undefined".into(), fixed3),
                bar,
            ]
        })
        .collect();
    let align = [Align::Right, Align::Right, Align::Right, Align::Left];
    columns(
        out,
        &["edges", metric_name(r), "recovered", ""],
        &align,
        &rows,
    )
}

/// The node a reader belongs to (`L3H1.q` → `L3H1`) and which input it is.
fn reader_node(reader: &str) -> (&str, Option<&str>) {
    match reader.rsplit_once('.') {
        Some((node, qkv)) => (node, Some(qkv)),
        None => (reader, None),
    }
}

/// A node's row, top to bottom: the embedding, then each layer's heads and its MLP, the
/// logits last.
fn row_of(node: &str, last: usize) -> usize {
    let num = |s: &str| s.parse::<usize>().unwrap_or(0);
    if node == "embed" {
        0
    } else if let Some(l) = node.strip_prefix("mlp") {
        2 * num(l) + 2
    } else if let Some(rest) = node.strip_prefix('L') {
        2 * num(rest.split('H').next().unwrap_or("0")) + 1
    } else {
        last
    }
}

/// The top edges as (writer node, reader node, input, score), and the nodes by row.
type Graph<'a> = (
    Vec<(&'a str, &'a str, Option<&'a str>, f32)>,
    Vec<Vec<&'a str>>,
);

fn graph(r: &CircuitReport) -> Graph<'_> {
    let edges: Vec<_> = (r.edges.iter().take(r.top))
        .map(|e| {
            let (node, qkv) = reader_node(&e.reader);
            (e.writer.as_str(), node, qkv, e.score)
        })
        .collect();
    let mut names: Vec<&str> = edges.iter().flat_map(|e| [e.0, e.1]).collect();
    let last = names.iter().map(|n| row_of(n, 0)).max().unwrap_or(0) + 1;
    names.sort_by_key(|n| (row_of(n, last), n.len(), *n));
    names.dedup();
    let mut rows: Vec<Vec<&str>> = Vec::new();
    let mut prev = None;
    for n in names {
        let row = row_of(n, last);
        if prev != Some(row) {
            rows.push(Vec::new());
            prev = Some(row);
        }
        rows.last_mut().expect("a row was pushed").push(n);
    }
    (edges, rows)
}

/// The largest |score| of `edges` (the colour and width scale; never 0).
fn largest(edges: &[Edge]) -> f32 {
    (edges.iter().map(|e| e.3.abs()))
        .fold(0.0, f32::max)
        .max(f32::MIN_POSITIVE)
}

pub fn dot(out: &mut dyn Write, r: &CircuitReport) -> io::Result<()> {
    let (edges, rows) = graph(r);
    let m = largest(&edges);
    writeln!(
        out,
        "// gpt2-inspect circuit: the top {} edges by |score|",
        edges.len()
    )?;
    writeln!(
        out,
        "// clean {:?}, corrupt {:?}; metric {}",
        r.clean,
        r.corrupt,
        formula(&r.metric, &|t| format!("{t:?}"), "-")
    )?;
    writeln!(out, "digraph circuit {{")?;
    writeln!(out, "  rankdir=TB; newrank=true;")?;
    writeln!(
        out,
        "  label=\"{LEGEND}\"; labelloc=b; fontname=\"Helvetica\"; fontsize=10;"
    )?;
    writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f4f4f4\", fontname=\"Helvetica\"];"
    )?;
    writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];")?;
    dot_rows(out, r, &rows, m)?;
    for (w, node, qkv, score) in &edges {
        writeln!(
            out,
            "  \"{w}\" -> \"{node}\" [label=\"{}{score:+.3}\", color=\"{}\", penwidth={:.2}];",
            qkv.map_or(String::new(), |q| format!("{q} ")),
            hex(diverging(score / m)),
            1.0 + 4.0 * score.abs() / m
        )?;
    }
    writeln!(out, "}}")
}

/// What the colours and widths of the graphs mean.
const LEGEND: &str = "edge colour and width: the edge's score, red raises the metric and blue \
                      lowers it; box colour: the writer's node score (the sum of its edges)";

/// Each row of the graph as one rank, coloured as `--svg` colours it, and the ranks held in
/// residual-stream order by a chain of invisible nodes (`rank=same` alone groups a row but
/// lets Graphviz put the groups in any order).
fn dot_rows(out: &mut dyn Write, r: &CircuitReport, rows: &[Vec<&str>], m: f32) -> io::Result<()> {
    for name in rows.iter().flatten() {
        if let Some(s) = r.nodes.iter().find(|n| n.name == *name).map(|n| n.score) {
            let fill = diverging(s / m / 2.0);
            writeln!(
                out,
                "  \"{name}\" [fillcolor=\"{}\", fontcolor=\"{}\", tooltip=\"node score {s:+.4}\"];",
                hex(fill),
                hex(ink(fill))
            )?;
        }
    }
    let anchors: Vec<String> = (0..rows.len()).map(|i| format!("\"row {i}\"")).collect();
    writeln!(
        out,
        "  subgraph order {{ node [style=invis, shape=point, width=0, label=\"\"]; \
         edge [style=invis, weight=100]; {}; }}",
        anchors.join(" -> ")
    )?;
    for (row, anchor) in rows.iter().zip(&anchors) {
        let names: Vec<String> = row.iter().map(|n| format!("\"{n}\";")).collect();
        writeln!(out, "  {{ rank=same; {anchor}; {} }}", names.join(" "))?;
    }
    Ok(())
}

const NODE_W: f64 = 76.0;
const NODE_H: f64 = 26.0;
const ROW_H: f64 = 84.0;

/// Where each node of a graph's rows is drawn: rows top to bottom, each centred.
struct Layout<'a> {
    rows: &'a [Vec<&'a str>],
    width: f64,
    top: f64,
}

impl Layout<'_> {
    fn at(&self, name: &str) -> (f64, f64) {
        for (i, row) in self.rows.iter().enumerate() {
            if let Some(j) = row.iter().position(|n| *n == name) {
                let offset = j as f64 - (row.len() as f64 - 1.0) / 2.0;
                return (
                    self.width / 2.0 + offset * (NODE_W + 20.0),
                    self.top + i as f64 * ROW_H,
                );
            }
        }
        (0.0, 0.0)
    }
}

type Edge<'a> = (&'a str, &'a str, Option<&'a str>, f32);

/// The edges as curves from writer to reader, weakest first so the strongest are on top;
/// `m` is the largest |score|.
fn draw_edges(body: &mut String, edges: &[Edge], at: &Layout, m: f32) {
    for (w, node, qkv, score) in edges.iter().rev() {
        let ((x1, y1), (x2, y2)) = (at.at(w), at.at(node));
        // Each input at its own place on the box's top edge: q left, k middle, v right.
        let x2 = x2
            + match *qkv {
                Some("q") => -NODE_W / 3.0,
                Some("v") => NODE_W / 3.0,
                _ => 0.0,
            };
        let (y1, y2) = (y1 + NODE_H / 2.0, y2 - NODE_H / 2.0);
        let bend = (y2 - y1) / 2.0;
        // An edge that skips rows swings out to the right, around the nodes between.
        let skipped = ((y2 - y1) / ROW_H).round() - 1.0;
        let out = if skipped >= 1.0 {
            (NODE_W * 0.8 * skipped).min(3.0 * NODE_W)
        } else {
            0.0
        };
        let _ = writeln!(
            body,
            r#"<path d="M{x1:.1},{y1:.1} C{:.1},{:.1} {:.1},{:.1} {x2:.1},{y2:.1}" fill="none" stroke="{}" stroke-width="{:.2}" stroke-opacity="0.85"><title>{}</title></path>"#,
            x1 + out,
            y1 + bend,
            x2 + out,
            y2 - bend,
            hex(diverging(score / m)),
            1.0 + 5.0 * score.abs() / m,
            escape(&format!(
                "{w} → {node}{}: {score:+.4}",
                qkv.map_or(String::new(), |q| format!(".{q}"))
            ))
        );
        if let Some(q) = qkv {
            let _ = writeln!(
                body,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#444" text-anchor="middle">{q}</text>"##,
                x2 + 8.0,
                y2 - 4.0
            );
        }
    }
}

/// Each node as a box coloured by its node score (on the edges' scale, halved).
fn draw_nodes(body: &mut String, r: &CircuitReport, at: &Layout, m: f32) {
    for name in at.rows.iter().flatten() {
        let (x, y) = at.at(name);
        let score = r.nodes.iter().find(|n| n.name == *name).map(|n| n.score);
        let fill = score.map_or([244, 244, 244], |s| diverging(s / m / 2.0));
        let _ = writeln!(
            body,
            r##"<rect x="{:.1}" y="{:.1}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{}" stroke="#333"><title>{}</title></rect><text x="{x:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="{}">{}</text>"##,
            x - NODE_W / 2.0,
            y - NODE_H / 2.0,
            hex(fill),
            escape(&match score {
                Some(s) => format!("{name}: node score {s:+.4}"),
                None => name.to_string(),
            }),
            y + 4.0,
            hex(ink(fill)),
            escape(name)
        );
    }
}

pub fn svg(out: &mut dyn Write, r: &CircuitReport) -> io::Result<()> {
    let (edges, rows) = graph(r);
    let m = largest(&edges);
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let layout = Layout {
        rows: &rows,
        width: (widest * (NODE_W + 20.0) + 40.0).max(560.0),
        top: 70.0,
    };
    let mut body = String::new();
    draw_edges(&mut body, &edges, &layout, m);
    draw_nodes(&mut body, r, &layout, m);
    let mut height = layout.top + rows.len() as f64 * ROW_H - 30.0;
    height = legend(&mut body, (40.0, height), m);
    if !r.faithfulness.is_empty() {
        height = curve(&mut body, r, (40.0, height), layout.width - 80.0);
    }
    let title = format!(
        "circuit · top {} edges · {}",
        edges.len(),
        brief(&r.metric, &|t| label(t), "−")
    );
    let subtitle = format!(
        "clean “{}” · corrupt “{}” · {}",
        sentence(&r.clean),
        sentence(&r.corrupt),
        match r.ig_steps {
            1 => "EAP".into(),
            n => format!("EAP-IG, {n} steps"),
        }
    );
    let width = (layout.width)
        .max(12.0 + subtitle.chars().count() as f64 * CHAR_PX + 20.0)
        .ceil();
    let titles = Some((title.as_str(), subtitle.as_str()));
    document(out, width, height.ceil(), "", titles, &body)
}

/// The curve's points `(x, y, edges, recovered)` with their edge counts under the axis at
/// `bottom`; a label that would touch the previous one is left to the tooltip.
fn curve_points(body: &mut String, points: &[(f64, f64, usize, f32)], bottom: f64) {
    let mut last_label = f64::NEG_INFINITY;
    for &(x, y, k, v) in points {
        let _ = writeln!(
            body,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="#2166ac"><title>{k} edges: {v:.3}</title></circle>"##,
        );
        if x - last_label >= 24.0 {
            let _ = writeln!(
                body,
                r#"<text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{k}</text>"#,
                bottom + 14.0
            );
            last_label = x;
        }
    }
}

/// What colour and width mean, under the graph at (`x`, `y`); `m` is the largest |score|.
/// Returns the new bottom.
fn legend(body: &mut String, (x, y): (f64, f64), m: f32) -> f64 {
    let sample = |body: &mut String, (x, y): (f64, f64), v: f32, words: &str| {
        let _ = writeln!(
            body,
            r##"<line x1="{x}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="{:.2}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#333">{}</text>"##,
            x + 28.0,
            hex(diverging(v)),
            1.0 + 5.0 * v.abs(),
            x + 34.0,
            y + 4.0,
            escape(words)
        );
    };
    sample(
        body,
        (x, y),
        1.0,
        &format!("edge raises the metric ({m:+.3})"),
    );
    sample(
        body,
        (x + 240.0, y),
        -1.0,
        &format!("edge lowers it ({:+.3})", -m),
    );
    sample(
        body,
        (x, y + 20.0),
        0.25,
        "width and depth of colour: |score|",
    );
    let fill = diverging(0.5);
    let _ = writeln!(
        body,
        r##"<rect x="{:.1}" y="{:.1}" width="28" height="14" rx="4" fill="{}" stroke="#333"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#333">box: the writer's node score</text>"##,
        x + 240.0,
        y + 13.0,
        hex(fill),
        x + 274.0,
        y + 24.0
    );
    y + 44.0
}

/// Where the curve's points go: edges kept along x (on a log scale of k + 1 when they span
/// a decade or more), the recovered share along y from below 0 and 1 to above both.
struct CurveAxes {
    x: f64,
    w: f64,
    bottom: f64,
    h: f64,
    log: bool,
    k: (f64, f64),
    v: (f64, f64),
}

impl CurveAxes {
    fn of(points: &[(usize, f32)], (x, bottom): (f64, f64), (w, h): (f64, f64)) -> CurveAxes {
        let ks = points.iter().map(|p| p.0 as f64);
        let (k0, k1) = (
            ks.clone().fold(f64::INFINITY, f64::min),
            ks.fold(0.0, f64::max),
        );
        let log = k1 >= 10.0 * k0.max(1.0);
        let vs = points.iter().map(|p| p.1 as f64);
        let v = (vs.clone().fold(0.0, f64::min), vs.fold(1.0, f64::max));
        let k = match log {
            true => ((k0 + 1.0).log10(), (k1 + 1.0).log10()),
            false => (0.0, k1.max(1.0)),
        };
        CurveAxes {
            x,
            w,
            bottom,
            h,
            log,
            k,
            v,
        }
    }

    fn px(&self, k: usize) -> f64 {
        let k = match self.log {
            true => (k as f64 + 1.0).log10(),
            false => k as f64,
        };
        self.x + (k - self.k.0) / (self.k.1 - self.k.0).max(1e-9) * self.w
    }

    fn py(&self, v: f64) -> f64 {
        self.bottom - (v - self.v.0) / (self.v.1 - self.v.0).max(1e-9) * self.h
    }

    /// The y ticks: 0 and 1 always, the lowest and highest value when they lie outside.
    fn ticks(&self) -> Vec<f64> {
        let room = 0.08 * (self.v.1 - self.v.0);
        let mut t = vec![0.0, 1.0];
        t.extend([self.v.0].into_iter().filter(|&lo| lo < -room));
        t.extend([self.v.1].into_iter().filter(|&hi| hi > 1.0 + room));
        t
    }
}

/// The y axis's ticks (1 dashed across: the clean run) and both axes' titles.
fn curve_axes(body: &mut String, a: &CurveAxes) {
    for t in a.ticks() {
        let y = a.py(t);
        let dash = if t == 1.0 {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let (x0, x1) = (a.x, a.x + a.w);
        let _ = writeln!(
            body,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#bbb"{dash}/><text x="{:.1}" y="{:.1}" font-size="10" fill="#444" text-anchor="end">{}</text>"##,
            a.x - 5.0,
            y + 3.0,
            fixed_tick(t)
        );
    }
    let _ = writeln!(
        body,
        r##"<line x1="{x}" y1="{b:.1}" x2="{:.1}" y2="{b:.1}" stroke="#333"/><line x1="{x}" y1="{:.1}" x2="{x}" y2="{b:.1}" stroke="#333"/>
<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">edges kept{}</text>
<text transform="translate({:.1},{:.1}) rotate(-90)" font-size="11" text-anchor="middle">recovered share</text>"##,
        a.x + a.w,
        a.bottom - a.h,
        a.x + a.w / 2.0,
        a.bottom + 30.0,
        if a.log { " (log scale)" } else { "" },
        a.x - 30.0,
        a.bottom - a.h / 2.0,
        x = a.x,
        b = a.bottom,
    );
}

/// A tick's label: whole numbers bare, others to two places.
fn fixed_tick(v: f64) -> String {
    match v.fract() == 0.0 {
        true => format!("{v:.0}"),
        false => format!("{v:.2}"),
    }
}

/// The faithfulness curve under the graph at (`x`, `y`), `w` wide: recovered share
/// against edges kept. Returns the figure's new bottom.
fn curve(body: &mut String, r: &CircuitReport, (x, y): (f64, f64), w: f64) -> f64 {
    let _ = writeln!(
        body,
        r##"<text x="{x}" y="{:.1}" font-size="13" font-weight="bold">faithfulness: share of clean − corrupt recovered by the top edges</text>"##,
        y + 12.0,
    );
    let mut points: Vec<(usize, f32)> = (r.faithfulness.iter())
        .filter_map(|f| f.recovered.map(|v| (f.edges, v)))
        .collect();
    if points.is_empty() {
        let _ = writeln!(
            body,
            r##"<text x="{x}" y="{:.1}" font-size="12" fill="#444">clean and corrupt give the same logit difference: every share is 0/0, undefined</text>"##,
            y + 34.0
        );
        return y + 50.0;
    }
    points.sort_by_key(|p| p.0);
    let a = CurveAxes::of(&points, (x + 20.0, y + 30.0 + 130.0), (w - 20.0, 130.0));
    curve_axes(body, &a);
    let path: Vec<String> = (points.iter())
        .map(|&(k, v)| format!("{:.1},{:.1}", a.px(k), a.py(v as f64)))
        .collect();
    let _ = writeln!(
        body,
        r##"<polyline points="{}" fill="none" stroke="#2166ac" stroke-width="2"/>"##,
        path.join(" ")
    );
    let at: Vec<(f64, f64, usize, f32)> = (points.iter())
        .map(|&(k, v)| (a.px(k), a.py(v as f64), k, v))
        .collect();
    curve_points(body, &at, a.bottom);
    a.bottom + 44.0
}
