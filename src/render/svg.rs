//! `attention --svg`: a standalone SVG figure in the manner of
//! `sns.heatmap(attn, annot=True, cmap="Blues")`: Query rows, Key columns, token labels,
//! a colour bar, a title with model, layer and head; several heads as a grid of panels.
//! Masked (future) cells are hatched. Every piece of text is escaped.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::color::{hex, needs_light_text, ColourScale, Ramp};
use super::{
    display_width, escape, label, largest, largest_visible, model_name, sentence, window_note,
};
use crate::reports::{AttentionReport, HeadMap, HeadStages, LensGridReport, Matrix};

const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
/// Rough advance of a 12 px sans-serif character, for laying out labels.
pub(super) const CHAR_PX: f64 = 7.0;
/// Characters of a token label at most.
const LABEL_CHARS: usize = 16;
/// Characters of the quoted text under the title at most (with the `…` of a cut).
const SUBTITLE_CHARS: usize = 91;
/// Tokens up to which every cell carries a tooltip; beyond, the file would grow by
/// megabytes for hovers nobody makes.
const TOOLTIP_TOKENS: usize = 64;
/// The hatching of masked (future) cells, `fill="url(#masked)"`.
const MASKED: &str = r##"<pattern id="masked" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="6" height="6" fill="#f2f2f2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#b0b0b0" stroke-width="2"/>
</pattern>"##;

/// `s` in at most `max` characters, the last one `…` when it was cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars().take(max - 1).chain(['…']).collect()
    } else {
        s.to_string()
    }
}

/// A token as a label of at most [`LABEL_CHARS`] characters (not yet escaped).
fn token_label(token: &str) -> String {
    shorten(&label(token), LABEL_CHARS)
}

/// The SVG name of the text colour that reads on `c`.
fn ink_name(c: [u8; 3]) -> &'static str {
    if needs_light_text(c) {
        "white"
    } else {
        "black"
    }
}

/// One panel: a map's cells, placed at (x, y) with square cells of `cell` px.
struct Panel<'a> {
    map: HeadMap<'a, Matrix>,
    x: f64,
    y: f64,
    cell: f64,
    /// Position of the first row and column in the text (`--window`).
    start: usize,
}

/// Side of a cell of a one-head figure of `t` tokens, in px.
fn single_cell(t: usize) -> f64 {
    (480.0 / t as f64).clamp(6.0, 44.0).floor()
}

/// Side of a cell of a grid of `per_row` maps of `t` tokens: 160 px a map, at most
/// [`GRID_WIDTH`] px a row.
fn grid_cell(t: usize, per_row: usize) -> f64 {
    let fit = (GRID_WIDTH / per_row as f64 - GRID_GAP) / t as f64;
    (160.0 / t as f64).min(fit).clamp(1.0, 16.0).floor()
}

/// Widest row of maps of a grid, in px.
const GRID_WIDTH: f64 = 2400.0;
/// Space between the maps of a grid.
const GRID_GAP: f64 = 20.0;

/// The smallest cell that has room for its value (`--annot`).
const ANNOT_CELL: f64 = 18.0;

/// Whether `--annot` values fit the figure of `r`: one head, cells of at least
/// [`ANNOT_CELL`] px (26 tokens at most). Where they do not, each value is still the cell's
/// tooltip, and the command says so.
pub fn annot_fits(r: &AttentionReport) -> bool {
    r.weights.maps(r.layer, r.head).len() == 1 && single_cell(r.tokens.len()) >= ANNOT_CELL
}

/// What a figure looks like beyond its data: `--title`, the colours, `--annot`.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Replaces the title (default: model, layer, head).
    pub title: Option<String>,
    pub colours: ColourScale,
    /// Each value written in its cell (one head only).
    pub annot: bool,
}

/// Advance of a 16 px bold title character, for the figure's width.
const TITLE_CHAR_PX: f64 = 9.5;
/// Advance of an 11 px colour-bar tick character.
const TICK_CHAR_PX: f64 = 6.5;

pub fn attention(out: &mut dyn Write, r: &AttentionReport, fig: &Figure) -> io::Result<()> {
    let maps = r.weights.maps(r.layer, r.head);
    let shown: Vec<String> = r.tokens.iter().map(|s| token_label(s)).collect();
    // Measured as shown, before escaping (`&amp;` is one character on screen).
    let label_px = shown.iter().map(|l| display_width(l)).max().unwrap_or(1) as f64 * CHAR_PX;
    let labels: Vec<String> = shown.iter().map(|l| escape(l)).collect();
    let text = r.header.text.as_deref().unwrap_or_default();
    // Spaces stay spaces in a sentence; newlines and controls still show.
    let subtitle = format!("“{}”", shorten(&sentence(text), SUBTITLE_CHARS));
    let note = window_note(r);
    let single = maps.len() == 1;
    // A grid has one layer a row.
    let per_row = if single {
        1
    } else {
        r.weights.heads_per_layer()
    };
    let (t, n) = (r.tokens.len(), maps.len());
    let g = Grid::new(t, n, per_row, label_px, note.is_some());
    let ramp = fig.colours.probabilities(largest_visible(&maps));
    let ticks = ramp.ticks();
    let tick_px = ticks.iter().map(|(_, l)| l.len()).max().unwrap_or(1) as f64 * TICK_CHAR_PX;
    let bar_x = g.left + g.grid_w + 20.0;
    let height = g.top + g.title_h + g.grid_h + g.label_space + 30.0;
    let title = fig
        .title
        .clone()
        .unwrap_or_else(|| attention_title(r, &maps));
    // The colour bar's ticks, and under it the key to the hatching ("masked").
    let width = (bar_x + 21.0 + tick_px.max(6.0 * TICK_CHAR_PX) + 8.0)
        .max(g.left + display_width(&title) as f64 * TITLE_CHAR_PX + 8.0)
        .max(g.left + display_width(&subtitle) as f64 * CHAR_PX + 8.0)
        .max(g.left + note.as_ref().map_or(0, |n| display_width(n)) as f64 * 6.5 + 8.0)
        .ceil();
    let mut body = String::new();
    let left = g.left;
    let _ = writeln!(
        body,
        r#"<text x="{left}" y="22" font-size="16" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    let _ = writeln!(
        body,
        r##"<text x="{left}" y="42" font-size="12" fill="#444">{}</text>"##,
        escape(&subtitle)
    );
    let start = r.window.map_or(0, |w| w[0]);
    attention_panels(
        &mut body,
        &g,
        maps,
        start,
        &labels,
        &ramp,
        fig.annot && single,
    );
    axis_titles(&mut body, &g, note.as_deref());
    let bar_h = (g.cell * t as f64).clamp(120.0, 400.0);
    colour_bar(&mut body, bar_x, g.top + g.title_h, bar_h, true, &ramp);
    let defs = format!("{MASKED}\n{}", gradient(&ramp));
    document(out, width, height, &defs, None, &body)
}

/// Where an attention figure's maps go: one map, or a grid of `per_row` a row.
struct Grid {
    per_row: usize,
    rows: usize,
    cell: f64,
    /// One map's side.
    size: f64,
    gap: f64,
    /// Label every `step`-th token.
    step: usize,
    label_space: f64,
    left: f64,
    top: f64,
    /// A panel title's height above each map of a grid.
    title_h: f64,
    grid_w: f64,
    grid_h: f64,
}

impl Grid {
    fn new(t: usize, maps: usize, per_row: usize, label_px: f64, note: bool) -> Grid {
        let single = maps == 1;
        let cell = if single {
            single_cell(t)
        } else {
            grid_cell(t, per_row)
        };
        let size = cell * t as f64;
        // Token labels on the outer axes, every `step`-th one where cells are small.
        let step = (8.0 / cell).ceil().max(1.0) as usize;
        // Labels are measured at 12 px and drawn smaller beside small cells.
        let label_space = label_px * label_size(cell, step) / 12.0 + 10.0;
        let gap = if single { 0.0 } else { GRID_GAP };
        let rows = maps.div_ceil(per_row);
        let title_h = if single { 0.0 } else { 16.0 };
        Grid {
            per_row,
            rows,
            cell,
            size,
            gap,
            step,
            label_space,
            left: 30.0 + label_space,
            top: if note { 68.0 } else { 60.0 },
            title_h,
            grid_w: per_row as f64 * size + (per_row - 1) as f64 * gap,
            grid_h: rows as f64 * (size + title_h) + (rows - 1) as f64 * gap,
        }
    }
}

/// The default title: the model, and which layer and head.
fn attention_title(r: &AttentionReport, maps: &[HeadMap<Matrix>]) -> String {
    let model = model_name(&r.header.model);
    match (r.layer, maps.len() == 1) {
        (_, true) => format!(
            "{model} · layer {} · head {} · attention",
            maps[0].layer, maps[0].head
        ),
        (Some(l), false) => format!("{model} · layer {l} · every head · attention"),
        (None, false) => format!("{model} · every layer · attention"),
    }
}

/// Each map with its cells, its panel title in a grid, and token labels on the outer axes.
fn attention_panels(
    body: &mut String,
    g: &Grid,
    maps: Vec<HeadMap<Matrix>>,
    start: usize,
    labels: &[String],
    ramp: &Ramp,
    annot: bool,
) {
    let single = maps.len() == 1;
    let last_row_start = (g.rows - 1) * g.per_row;
    for (k, map) in maps.into_iter().enumerate() {
        let (row, col) = (k / g.per_row, k % g.per_row);
        let p = Panel {
            map,
            x: g.left + col as f64 * (g.size + g.gap),
            y: g.top + g.title_h + row as f64 * (g.size + g.gap + g.title_h),
            cell: g.cell,
            start,
        };
        if !single {
            let _ = writeln!(
                body,
                r#"<text class="panel-title" x="{}" y="{}" font-size="11">L{} H{}</text>"#,
                p.x,
                p.y - 4.0,
                p.map.layer,
                p.map.head
            );
        }
        cells(body, &p, labels, ramp, annot);
        if k % g.per_row == 0 {
            row_labels(body, &p, labels, g.step);
        }
        if k >= last_row_start {
            column_labels(body, &p, labels, g.step);
        }
    }
}

/// "Query" down the left, "Key" under the grid, and the window's note under the subtitle.
fn axis_titles(body: &mut String, g: &Grid, note: Option<&str>) {
    let mid_y = g.top + g.title_h + g.grid_h / 2.0;
    let _ = writeln!(
        body,
        r#"<text x="14" y="{mid_y}" font-size="13" text-anchor="middle" transform="rotate(-90 14 {mid_y})">Query</text>"#
    );
    let _ = writeln!(
        body,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">Key</text>"#,
        g.left + g.grid_w / 2.0,
        g.top + g.title_h + g.grid_h + g.label_space + 18.0
    );
    if let Some(note) = note {
        let _ = writeln!(
            body,
            r##"<text x="{}" y="56" font-size="11" fill="#444">{}</text>"##,
            g.left,
            escape(note)
        );
    }
}

/// A whole figure: the XML prolog, an `<svg>` of `width` × `height` with `defs` (when any),
/// a white background, the title and subtitle (when given), then `body`.
pub(super) fn document(
    out: &mut dyn Write,
    width: f64,
    height: f64,
    defs: &str,
    titles: Option<(&str, &str)>,
    body: &str,
) -> io::Result<()> {
    writeln!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}">"##
    )?;
    if !defs.is_empty() {
        writeln!(out, "<defs>\n{defs}\n</defs>")?;
    }
    writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#)?;
    if let Some((title, subtitle)) = titles {
        writeln!(
            out,
            r##"<text x="12" y="22" font-size="16" font-weight="bold">{}</text>
<text x="12" y="42" font-size="12" fill="#555">{}</text>"##,
            escape(title),
            escape(subtitle)
        )?;
    }
    out.write_all(body.as_bytes())?;
    writeln!(out, "</svg>")
}

/// A ramp as the `#scale` gradient the colour bars fill with (its low end at the bottom).
fn gradient(ramp: &Ramp) -> String {
    const STOPS: usize = 16;
    let stops: String = (0..=STOPS)
        .map(|i| {
            let x = i as f32 / STOPS as f32;
            format!(
                "<stop offset=\"{x}\" stop-color=\"{}\"/>\n",
                hex(ramp.at(x))
            )
        })
        .collect();
    format!(
        r#"<linearGradient id="scale" x1="0" y1="1" x2="0" y2="0">
{stops}</linearGradient>"#
    )
}

/// The cells of one panel: a rect per visible cell (with a tooltip on small maps), the masked
/// upper triangle as one hatched path, values written when asked.
fn cells(body: &mut String, p: &Panel, labels: &[String], ramp: &Ramp, annot: bool) {
    let c = p.cell;
    let t = p.map.matrix.len();
    let tooltips = t <= TOOLTIP_TOKENS;
    let _ = writeln!(body, r#"<g class="map" shape-rendering="crispEdges">"#);
    for (i, row) in p.map.matrix.iter().enumerate() {
        let top = largest(&row[..=i]);
        for (j, &w) in row.iter().enumerate().take(i + 1) {
            let (x, y) = (p.x + j as f64 * c, p.y + i as f64 * c);
            let fill = hex(ramp.colour(w, top));
            if tooltips {
                let _ = writeln!(
                    body,
                    r#"<rect x="{x}" y="{y}" width="{c}" height="{c}" fill="{fill}"><title>query {} {} → key {} {}: {w:.4}</title></rect>"#,
                    p.start + i,
                    labels[i],
                    p.start + j,
                    labels[j]
                );
            } else {
                let _ = writeln!(
                    body,
                    r#"<rect x="{x}" y="{y}" width="{c}" height="{c}" fill="{fill}"/>"#
                );
            }
        }
    }
    // Computed i is masked from key i + 1 to the end: one rectangle per row, one path in all.
    let mut d = String::new();
    for i in 0..t.saturating_sub(1) {
        let _ = write!(
            d,
            "M{} {}h{}v{c}h-{}z",
            p.x + (i + 1) as f64 * c,
            p.y + i as f64 * c,
            (t - i - 1) as f64 * c,
            (t - i - 1) as f64 * c
        );
    }
    if !d.is_empty() {
        let _ = writeln!(
            body,
            r#"<path class="masked" d="{d}" fill="url(#masked)"><title>masked: a query never sees later keys</title></path>"#
        );
    }
    let _ = writeln!(body, "</g>");
    if annot && c >= ANNOT_CELL {
        annotations(body, p, ramp);
    }
}

/// Each visible cell's value written in it, in the ink its colour needs.
fn annotations(body: &mut String, p: &Panel, ramp: &Ramp) {
    let c = p.cell;
    let size = (c * 0.3).clamp(6.0, 12.0);
    let _ = writeln!(
        body,
        r#"<g class="annot" font-size="{size}" text-anchor="middle">"#
    );
    for (i, row) in p.map.matrix.iter().enumerate() {
        let top = largest(&row[..=i]);
        for (j, &w) in row.iter().enumerate().take(i + 1) {
            let ink = ink_name(ramp.colour(w, top));
            let _ = writeln!(
                body,
                r#"<text x="{}" y="{}" fill="{ink}" dominant-baseline="central">{w:.2}</text>"#,
                p.x + (j as f64 + 0.5) * c,
                p.y + (i as f64 + 0.5) * c
            );
        }
    }
    let _ = writeln!(body, "</g>");
}

/// Font size of token labels beside cells of `cell` px shown every `step` cells.
fn label_size(cell: f64, step: usize) -> f64 {
    (cell * step as f64 * 0.8).clamp(7.0, 12.0)
}

/// Query labels left of a panel: each token, or every `step`-th where cells are small.
fn row_labels(body: &mut String, p: &Panel, labels: &[String], step: usize) {
    let _ = writeln!(
        body,
        r#"<g class="query-labels" font-size="{}" text-anchor="end">"#,
        label_size(p.cell, step)
    );
    for (i, l) in labels.iter().enumerate().step_by(step) {
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}" dominant-baseline="central">{l}</text>"#,
            p.x - 5.0,
            p.y + (i as f64 + 0.5) * p.cell
        );
    }
    let _ = writeln!(body, "</g>");
}

/// Key labels under a panel, turned to read upwards.
fn column_labels(body: &mut String, p: &Panel, labels: &[String], step: usize) {
    let y = p.y + p.map.matrix.len() as f64 * p.cell + 5.0;
    let _ = writeln!(
        body,
        r#"<g class="key-labels" font-size="{}" text-anchor="end">"#,
        label_size(p.cell, step)
    );
    for (j, l) in labels.iter().enumerate().step_by(step) {
        let x = p.x + (j as f64 + 0.5) * p.cell;
        let _ = writeln!(
            body,
            r#"<text x="{x}" y="{y}" dominant-baseline="central" transform="rotate(-90 {x} {y})">{l}</text>"#
        );
    }
    let _ = writeln!(body, "</g>");
}

/// Vertical colour bar of a ramp with its ticks, and the key to the hatching.
fn colour_bar(body: &mut String, x: f64, y: f64, h: f64, masked_key: bool, ramp: &Ramp) {
    let _ = writeln!(
        body,
        r##"<g class="colour-bar"><rect x="{x}" y="{y}" width="14" height="{h}" fill="url(#scale)" stroke="#888" stroke-width="0.5"/>"##
    );
    for (v, tick) in ramp.ticks() {
        let ty = y + h * (1.0 - f64::from(v));
        let _ = writeln!(
            body,
            r##"<line x1="{}" y1="{ty}" x2="{}" y2="{ty}" stroke="#444"/><text x="{}" y="{ty}" font-size="11" dominant-baseline="central">{}</text>"##,
            x + 14.0,
            x + 18.0,
            x + 21.0,
            escape(&tick)
        );
    }
    if masked_key {
        let _ = writeln!(
            body,
            r##"<rect x="{x}" y="{}" width="14" height="14" fill="url(#masked)" stroke="#888" stroke-width="0.5"/><text x="{}" y="{}" font-size="11" dominant-baseline="central">masked</text>"##,
            y + h + 12.0,
            x + 20.0,
            y + h + 19.0
        );
    }
    let _ = writeln!(body, "</g>");
}

/// What a user chose for a grid figure (`--title`, `--cmap`): defaults where `None`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Style<'a> {
    pub title: Option<&'a str>,
    pub cmap: Option<super::color::Cmap>,
}

impl Style<'_> {
    /// The colour of a value on `range` (low, high): the chosen map across it, else
    /// `default`.
    pub fn paint<'f>(
        &self,
        range: [f32; 2],
        default: impl Fn(f32) -> [u8; 3] + 'f,
    ) -> Box<dyn Fn(f32) -> [u8; 3] + 'f> {
        match self.cmap {
            Some(c) => Box::new(move |v| c.at(super::color::unit(v, range[0], range[1]))),
            None => Box::new(default),
        }
    }

    /// The figure's title: the user's, else `default`.
    pub fn title(&self, default: String) -> String {
        self.title.map_or(default, str::to_string)
    }
}

/// One panel of a [`grids`] figure: a `[rows][cols]` grid of values with labels.
pub struct GridPanel<'a> {
    pub title: String,
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
    /// What each cell's tooltip (and `annot` text) shows.
    pub values: &'a [Vec<f32>],
    /// The colour of a value.
    pub colour: &'a dyn Fn(f32) -> [u8; 3],
    /// The values at the two ends of the colour map, low first: the panel's colour bar
    /// runs between them, with their numbers, so that a printed figure can be read.
    pub range: [f32; 2],
}

/// A figure of grids side by side (layers × positions or heads), each cell with its value as
/// a tooltip (`<title>`), for the causal commands' `--svg`.
pub fn grids(
    out: &mut dyn Write,
    title: &str,
    subtitle: &str,
    panels: &[GridPanel],
) -> io::Result<()> {
    grids_wrapped(out, title, subtitle, panels, usize::MAX)
}

/// [`grids`] with at most `per_row` panels side by side, the rest in rows below.
pub fn grids_wrapped(
    out: &mut dyn Write,
    title: &str,
    subtitle: &str,
    panels: &[GridPanel],
    per_row: usize,
) -> io::Result<()> {
    let widest = |labels: &[String]| {
        labels.iter().map(|l| display_width(l)).max().unwrap_or(1) as f64 * CHAR_PX + 8.0
    };
    let mut body = String::new();
    let (mut width, mut bottom): (f64, f64) = (0.0, 42.0);
    for row in panels.chunks(per_row.max(1)) {
        let top = bottom
            + 14.0
            + (row.iter())
                .map(|p| widest(&p.col_labels))
                .fold(0.0, f64::max)
            + 18.0;
        let mut x = 12.0;
        for p in row {
            let left = x + widest(&p.row_labels);
            let (rows, cols) = (p.values.len(), p.values.first().map_or(0, Vec::len));
            let _ = writeln!(
                body,
                r#"<text x="{left}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
                top - widest(&p.col_labels) - 8.0,
                escape(&p.title)
            );
            grid_panel(&mut body, p, left, top);
            let right = left + cols as f64 * GRID_PANEL_CELL;
            let (bar_w, bar_h) = panel_bar(&mut body, p, right + 10.0, top);
            x = right + 10.0 + bar_w + 24.0;
            let h = (rows as f64 * GRID_PANEL_CELL).max(bar_h);
            bottom = bottom.max(top + h + 16.0);
        }
        width = width.max(x);
    }
    let width = width
        .max(12.0 + display_width(title) as f64 * 10.0 + 20.0)
        .max(12.0 + display_width(subtitle) as f64 * CHAR_PX + 20.0)
        .ceil();
    document(out, width, bottom, "", Some((title, subtitle)), &body)
}

/// A number as a colour bar's tick names it: at most 3 decimals, no trailing zeros.
fn tick(v: f32) -> String {
    let s = match v.abs() >= 100.0 {
        true => format!("{v:.0}"),
        false => format!("{v:.3}"),
    };
    let s = match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => s,
    };
    match s.as_str() {
        "-0" => "0".into(),
        _ => s,
    }
}

/// A [`grids`] panel's colour bar at (`x`, `top`): its colour map from `range`'s high end
/// (top) to its low end, ticked at both ends and the middle; its width and height.
fn panel_bar(body: &mut String, p: &GridPanel, x: f64, top: f64) -> (f64, f64) {
    const STEPS: usize = 32;
    const W: f64 = 12.0;
    let rows = p.values.len() as f64;
    let h = (rows * GRID_PANEL_CELL).max(96.0);
    let [lo, hi] = p.range;
    let _ = writeln!(
        body,
        r#"<g class="colour-bar" data-low="{lo}" data-high="{hi}">"#
    );
    for k in 0..STEPS {
        let v = hi - (k as f32 + 0.5) / STEPS as f32 * (hi - lo);
        let _ = writeln!(
            body,
            r#"<rect x="{x}" y="{}" width="{W}" height="{}" fill="{}"/>"#,
            top + k as f64 * h / STEPS as f64,
            h / STEPS as f64 + 0.5,
            hex((p.colour)(v))
        );
    }
    let ticks = [hi, (lo + hi) / 2.0, lo].map(tick);
    for (k, t) in ticks.iter().enumerate() {
        let ty = top + h * k as f64 / 2.0;
        let _ = writeln!(
            body,
            r##"<line x1="{}" y1="{ty}" x2="{}" y2="{ty}" stroke="#444"/><text class="tick" x="{}" y="{ty}" font-size="11" dominant-baseline="central">{}</text>"##,
            x + W,
            x + W + 4.0,
            x + W + 6.0,
            escape(t)
        );
    }
    let _ = writeln!(body, "</g>");
    let label_w = ticks.iter().map(|t| display_width(t)).max().unwrap_or(1) as f64 * CHAR_PX;
    (W + 6.0 + label_w, h)
}

/// A cell of a [`grids`] panel.
const GRID_PANEL_CELL: f64 = 28.0;

/// One panel of [`grids`] at (`left`, `top`): column labels turned above it, row labels
/// left of it, and its cells.
fn grid_panel(body: &mut String, p: &GridPanel, left: f64, top: f64) {
    const CELL: f64 = GRID_PANEL_CELL;
    for (j, l) in p.col_labels.iter().enumerate() {
        let cx = left + j as f64 * CELL + CELL / 2.0 + 4.0;
        let _ = writeln!(
            body,
            r#"<text x="{cx}" y="{}" font-size="11" transform="rotate(-90 {cx} {})">{}</text>"#,
            top - 4.0,
            top - 4.0,
            escape(&shorten(l, LABEL_CHARS))
        );
    }
    for (i, row) in p.values.iter().enumerate() {
        let y = top + i as f64 * CELL;
        let row_label = p.row_labels.get(i).map_or("", String::as_str);
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + CELL / 2.0 + 4.0,
            escape(row_label)
        );
        for (j, &v) in row.iter().enumerate() {
            let col_label = p.col_labels.get(j).map_or("", String::as_str);
            if v.is_nan() {
                // Not a value: a masked pattern entry, a receiver that cannot read.
                let _ = writeln!(
                    body,
                    r#"<rect x="{}" y="{y}" width="{CELL}" height="{CELL}" fill="{}"><title>{}: none</title></rect>"#,
                    left + j as f64 * CELL,
                    hex([238, 238, 238]),
                    escape(&format!("{row_label} {col_label}"))
                );
                continue;
            }
            let _ = writeln!(
                body,
                r#"<rect x="{}" y="{y}" width="{CELL}" height="{CELL}" fill="{}"><title>{}: {v:.4}</title></rect>"#,
                left + j as f64 * CELL,
                hex((p.colour)(v)),
                escape(&format!("{row_label} {col_label}"))
            );
        }
    }
}

/// `attention --stages --svg`: one head from input to output as four panels side by side,
/// titled "x (ln_1 output)", "QKᵀ/√d", "softmax" and "output z", each with its own colour
/// bar; token labels on the outer axes (rows left of the first panel, keys under the two
/// T × T panels); masked cells hatched. Every cell's value is its tooltip.
pub fn stages(
    out: &mut dyn Write,
    r: &AttentionReport,
    s: &HeadStages,
    title: Option<&str>,
) -> io::Result<()> {
    let panels = super::stages::panels(s);
    let t = r.tokens.len();
    let shown: Vec<String> = r.tokens.iter().map(|s| token_label(s)).collect();
    let label_px = shown.iter().map(|l| display_width(l)).max().unwrap_or(1) as f64 * CHAR_PX;
    let ch = (240.0 / t as f64).clamp(3.0, 28.0).floor(); // row height, and T × T cell size
    let show_labels = ch >= 8.0;
    let row = StageRow {
        shown: &shown,
        ch,
        label_px: show_labels.then_some(label_px),
        top: 76.0,
        height: t as f64 * ch,
    };
    let left = 12.0 + if show_labels { label_px + 10.0 } else { 0.0 };
    let mut body = String::new();
    let mut x = left;
    for (n, p) in panels.iter().enumerate() {
        x += row.panel(&mut body, n, p, x) + 28.0;
    }
    let text = r.header.text.as_deref().unwrap_or_default();
    let title = title.map_or_else(
        || {
            format!(
                "{} · layer {} head {} · input to output",
                model_name(&r.header.model),
                r.layer.unwrap_or(0),
                r.head.unwrap_or(0)
            )
        },
        str::to_string,
    );
    let subtitle = format!("“{}”", shorten(&sentence(text), SUBTITLE_CHARS));
    let width = (x - 16.0)
        .max(12.0 + display_width(&subtitle) as f64 * CHAR_PX + 12.0)
        .ceil();
    let labels_h = row.label_px.map_or(0.0, |l| l + 4.0);
    let height = (row.top + row.height + 8.0 + labels_h + 40.0).ceil();
    document(out, width, height, MASKED, Some((&title, &subtitle)), &body)
}

/// The row of a head's four stage panels: what each panel is drawn with.
struct StageRow<'a> {
    /// Token labels as shown.
    shown: &'a [String],
    /// Row height, and the T × T cell size.
    ch: f64,
    /// The labels' width, when cells are large enough to label.
    label_px: Option<f64>,
    top: f64,
    /// All rows' height.
    height: f64,
}

impl StageRow<'_> {
    /// Panel `n` at `x`: its title, cells, token labels and colour bar. Returns its width.
    fn panel(&self, body: &mut String, n: usize, p: &super::stages::StagePanel, x: f64) -> f64 {
        let (ch, top, shown) = (self.ch, self.top, self.shown);
        let cols = p.cells.first().map_or(0, Vec::len);
        // T × T panels are square; x and z fit a fixed width.
        let (cw, pw) = match n {
            1 | 2 => (ch, ch * cols as f64),
            _ => {
                let w = if n == 0 { 240.0 } else { 160.0 };
                (w / cols as f64, w)
            }
        };
        let _ = writeln!(
            body,
            r#"<g class="panel"><text class="panel-title" x="{x}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
            top - 8.0,
            escape(p.title)
        );
        for (i, row) in p.cells.iter().enumerate() {
            let y = top + i as f64 * ch;
            for (j, v) in row.iter().enumerate() {
                let cx = x + j as f64 * cw;
                let what = format!("{} · {j}", shown[i]);
                let _ = match v {
                    Some(v) => writeln!(
                        body,
                        r#"<rect x="{cx:.2}" y="{y}" width="{cw:.2}" height="{ch}" fill="{}"><title>{}: {v:.4}</title></rect>"#,
                        hex(p.ramp.colour(*v, 1.0)),
                        escape(&what)
                    ),
                    None => writeln!(
                        body,
                        r#"<rect x="{cx:.2}" y="{y}" width="{cw:.2}" height="{ch}" fill="url(#masked)"><title>{}: masked</title></rect>"#,
                        escape(&what)
                    ),
                };
            }
        }
        let below = self.labels(body, n, x) + top + self.height + 8.0;
        let bw = pw.max(96.0);
        stage_bar(body, p, x, below, bw);
        bw.max(pw)
    }

    /// Token labels beside the first panel's rows and under the T × T panels' columns;
    /// returns the height they take under the panels.
    fn labels(&self, body: &mut String, n: usize, x: f64) -> f64 {
        let Some(label_px) = self.label_px else {
            return 0.0;
        };
        let (ch, top) = (self.ch, self.top);
        if n == 0 {
            for (i, l) in self.shown.iter().enumerate() {
                let _ = writeln!(
                    body,
                    r#"<text x="{}" y="{}" font-size="11" text-anchor="end" dominant-baseline="central">{}</text>"#,
                    x - 6.0,
                    top + (i as f64 + 0.5) * ch,
                    escape(l)
                );
            }
        }
        if n == 1 || n == 2 {
            let below = top + self.height + 8.0;
            for (j, l) in self.shown.iter().enumerate() {
                let lx = x + (j as f64 + 0.5) * ch;
                let _ = writeln!(
                    body,
                    r#"<text x="{lx}" y="{below}" font-size="11" text-anchor="end" dominant-baseline="central" transform="rotate(-90 {lx} {below})">{}</text>"#,
                    escape(l)
                );
            }
        }
        label_px + 4.0
    }
}

/// A stage panel's colour bar at (`x`, `y`), `width` wide: 24 steps from the low end to the
/// high end, the ends named; it closes the panel's group.
fn stage_bar(body: &mut String, p: &super::stages::StagePanel, x: f64, y: f64, width: f64) {
    let (lo, hi) = (p.ramp.lo, p.ramp.hi);
    for k in 0..24 {
        let v = lo + (hi - lo) * (k as f32 + 0.5) / 24.0;
        let _ = writeln!(
            body,
            r#"<rect class="colour-bar" x="{:.2}" y="{y}" width="{:.2}" height="10" fill="{}"/>"#,
            x + width * k as f64 / 24.0,
            width / 24.0 + 0.3,
            hex(p.ramp.colour(v, 1.0))
        );
    }
    let ty = y + 22.0;
    let _ = writeln!(
        body,
        r##"<text x="{x}" y="{ty}" font-size="10">{lo:.2}</text><text x="{}" y="{ty}" font-size="10" text-anchor="end">{hi:.2}</text></g>"##,
        x + width
    );
}

/// `lens --all-positions --svg`: depth rows × position columns, each cell the top token read
/// there on a Blues background by its probability (the value in the tooltip), positions
/// labelled on the top axis, depths on the left, and a colour bar 0..1.
/// Cell size of the lens grid.
const LENS_CW: f64 = 64.0;
const LENS_CH: f64 = 22.0;

/// One depth's row of the lens grid at (`left`, `y`): its label, then a cell per position,
/// the top token written on its probability's colour.
fn lens_row(
    body: &mut String,
    (left, y): (f64, f64),
    label: &str,
    row: &[crate::reports::Guess],
    cols: &[String],
    probabilities: &Ramp,
) {
    const CW: f64 = LENS_CW;
    const CH: f64 = LENS_CH;
    let _ = writeln!(
        body,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="end" dominant-baseline="central">{}</text>"#,
        left - 6.0,
        y + CH / 2.0,
        escape(label)
    );
    for (j, g) in row.iter().enumerate() {
        let x = left + j as f64 * CW;
        let c = probabilities.colour(g.prob, 1.0);
        let ink = ink_name(c);
        let _ = writeln!(
            body,
            r#"<g class="cell"><rect x="{x}" y="{y}" width="{CW}" height="{CH}" fill="{}"><title>{} at {}: {} {:.4}</title></rect><text x="{}" y="{}" font-size="10" text-anchor="middle" dominant-baseline="central" fill="{ink}">{}</text></g>"#,
            hex(c),
            escape(label),
            escape(&cols[j]),
            escape(&token_label(&g.token)),
            g.prob,
            x + CW / 2.0,
            y + CH / 2.0,
            escape(&shorten(&token_label(&g.token), 9))
        );
    }
}

pub fn lens_grid(
    out: &mut dyn Write,
    r: &LensGridReport,
    title: Option<&str>,
    probabilities: Ramp,
) -> io::Result<()> {
    const CW: f64 = LENS_CW;
    const CH: f64 = LENS_CH;
    let rows: Vec<String> = (0..r.top.len()).map(super::depth_label).collect();
    let cols: Vec<String> = r
        .tokens
        .iter()
        .enumerate()
        .map(|(j, t)| format!("{j} {}", token_label(t)))
        .collect();
    let left =
        12.0 + rows.iter().map(|l| display_width(l)).max().unwrap_or(1) as f64 * CHAR_PX + 10.0;
    // Position labels turned 60°: their height is sin 60° of their length.
    let top = 56.0
        + cols
            .iter()
            .map(|l| display_width(l).min(LABEL_CHARS))
            .max()
            .unwrap_or(1) as f64
            * CHAR_PX
            * 0.87
        + 8.0;
    let mut body = String::new();
    for (j, l) in cols.iter().enumerate() {
        let x = left + (j as f64 + 0.5) * CW;
        let y = top - 6.0;
        let _ = writeln!(
            body,
            r#"<text x="{x}" y="{y}" font-size="11" transform="rotate(-60 {x} {y})">{}</text>"#,
            escape(&shorten(l, LABEL_CHARS))
        );
    }
    for (d, row) in r.top.iter().enumerate() {
        let y = top + d as f64 * CH;
        lens_row(&mut body, (left, y), &rows[d], row, &cols, &probabilities);
    }
    let bar_x = left + r.tokens.len() as f64 * CW + 16.0;
    let bar_h = (r.top.len() as f64 * CH).max(120.0);
    colour_bar(&mut body, bar_x, top, bar_h, false, &probabilities);
    let text = r.header.text.as_deref().unwrap_or_default();
    let title = title.unwrap_or("logit lens · the top next token at every depth and position");
    let subtitle = format!("“{}”", shorten(&sentence(text), SUBTITLE_CHARS));
    let width = (bar_x + 60.0)
        .max(12.0 + display_width(title) as f64 * 10.0 + 20.0)
        .max(12.0 + display_width(&subtitle) as f64 * CHAR_PX + 20.0)
        .ceil();
    let height = (top + bar_h + 16.0).ceil();
    document(
        out,
        width,
        height,
        &gradient(&probabilities),
        Some((title, &subtitle)),
        &body,
    )
}
