//! The figures' primitives, shared by every family: SVG documents with escaped text, grids of
//! heatmap panels (`GridPanel`, `grids`) with their colour bars, tick labels and axis titles,
//! and `Style` (`--title`, `--cmap`). Masked (future) cells are hatched.

use crate::render::color::{hex, needs_light_text, Ramp};
use crate::render::{display_width, escape, label, largest};
use crate::reports::{HeadMap, Matrix};
use std::fmt::Write as _;
use std::io::{self, Write};

pub(super) const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// Rough advance of a 12 px sans-serif character, for laying out labels.
pub(super) const CHAR_PX: f64 = 7.0;

/// Characters of a token label at most.
pub(super) const LABEL_CHARS: usize = 16;

/// Characters of the quoted text under the title at most (with the `…` of a cut).
pub(super) const SUBTITLE_CHARS: usize = 91;

/// Tokens up to which every cell carries a tooltip; beyond, the file would grow by
/// megabytes for hovers nobody makes.
pub(super) const TOOLTIP_TOKENS: usize = 64;

/// The hatching of masked (future) cells, `fill="url(#masked)"`.
pub(super) const MASKED: &str = r##"<pattern id="masked" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="6" height="6" fill="#f2f2f2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#b0b0b0" stroke-width="2"/>
</pattern>"##;

/// `s` in at most `max` characters, the last one `…` when it was cut.
pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars().take(max - 1).chain(['…']).collect()
    } else {
        s.to_string()
    }
}

/// A token as a label of at most [`LABEL_CHARS`] characters (not yet escaped).
pub(super) fn token_label(token: &str) -> String {
    shorten(&label(token), LABEL_CHARS)
}

/// The SVG name of the text colour that reads on `c`.
pub(super) fn ink_name(c: [u8; 3]) -> &'static str {
    if needs_light_text(c) {
        "white"
    } else {
        "black"
    }
}

/// One panel: a map's cells, placed at (x, y) with square cells of `cell` px.
pub(super) struct Panel<'a> {
    pub(super) map: HeadMap<'a, Matrix>,
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) cell: f64,
    /// Position of the first row and column in the text (`--window`).
    pub(super) start: usize,
}

/// Side of a cell of a one-head figure of `t` tokens, in px.
pub(super) fn single_cell(t: usize) -> f64 {
    (480.0 / t as f64).clamp(6.0, 44.0).floor()
}

/// Side of a cell of a grid of `per_row` maps of `t` tokens: 160 px a map, at most
/// [`GRID_WIDTH`] px a row.
pub(super) fn grid_cell(t: usize, per_row: usize) -> f64 {
    let fit = (GRID_WIDTH / per_row as f64 - GRID_GAP) / t as f64;
    (160.0 / t as f64).min(fit).clamp(1.0, 16.0).floor()
}

/// Widest row of maps of a grid, in px.
pub(super) const GRID_WIDTH: f64 = 2400.0;

/// Space between the maps of a grid.
pub(super) const GRID_GAP: f64 = 20.0;

/// The smallest cell that has room for its value (`--annot`).
pub(super) const ANNOT_CELL: f64 = 18.0;

/// Advance of a 16 px bold title character, for the figure's width.
pub(super) const TITLE_CHAR_PX: f64 = 9.5;

/// Advance of an 11 px colour-bar tick character.
pub(super) const TICK_CHAR_PX: f64 = 6.5;

/// Where an attention figure's maps go: one map, or a grid of `per_row` a row.
pub(super) struct Grid {
    pub(super) per_row: usize,
    pub(super) rows: usize,
    pub(super) cell: f64,
    /// One map's side.
    pub(super) size: f64,
    pub(super) gap: f64,
    /// Label every `step`-th token.
    pub(super) step: usize,
    pub(super) label_space: f64,
    pub(super) left: f64,
    pub(super) top: f64,
    /// A panel title's height above each map of a grid.
    pub(super) title_h: f64,
    pub(super) grid_w: f64,
    pub(super) grid_h: f64,
}

impl Grid {
    pub(super) fn new(t: usize, maps: usize, per_row: usize, label_px: f64, note: bool) -> Grid {
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

/// "Query" down the left, "Key" under the grid, and the window's note under the subtitle.
pub(super) fn axis_titles(body: &mut String, g: &Grid, note: Option<&str>) {
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
pub(super) fn gradient(ramp: &Ramp) -> String {
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
pub(super) fn cells(body: &mut String, p: &Panel, labels: &[String], ramp: &Ramp, annot: bool) {
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
pub(super) fn annotations(body: &mut String, p: &Panel, ramp: &Ramp) {
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
pub(super) fn label_size(cell: f64, step: usize) -> f64 {
    (cell * step as f64 * 0.8).clamp(7.0, 12.0)
}

/// Query labels left of a panel: each token, or every `step`-th where cells are small.
pub(super) fn row_labels(body: &mut String, p: &Panel, labels: &[String], step: usize) {
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
pub(super) fn column_labels(body: &mut String, p: &Panel, labels: &[String], step: usize) {
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
pub(super) fn colour_bar(body: &mut String, x: f64, y: f64, h: f64, masked_key: bool, ramp: &Ramp) {
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
            // The next panel starts after this one's colour bar and after its title (bold
            // 13 px: about 8 px a character), so titles never run into each other.
            let title_end = left + display_width(&p.title) as f64 * 8.0 + 16.0;
            x = (right + 10.0 + bar_w + 24.0).max(title_end);
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
pub(super) fn tick(v: f32) -> String {
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
pub(super) fn panel_bar(body: &mut String, p: &GridPanel, x: f64, top: f64) -> (f64, f64) {
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
pub(super) const GRID_PANEL_CELL: f64 = 28.0;

/// One panel of [`grids`] at (`left`, `top`): column labels turned above it, row labels
/// left of it, and its cells.
pub(super) fn grid_panel(body: &mut String, p: &GridPanel, left: f64, top: f64) {
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
