//! The attention family's figures: a head's pattern or a layer's heads as heatmaps, a head's
//! stages, and the logit lens grid.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::render::attention::stages::{PanelWidth, StagePanel, FIRST_ROW};
use crate::render::color::{hex, ColourScale, Ramp};
use crate::render::svg::{
    axis_titles, cells, colour_bar, column_labels, document, gradient, ink_name, row_labels,
    shorten, single_cell, token_label, Grid, Panel, ANNOT_CELL, CHAR_PX, LABEL_CHARS, MASKED,
    SUBTITLE_CHARS, TICK_CHAR_PX, TITLE_CHAR_PX,
};
use crate::render::{display_width, escape, largest_visible, model_name, sentence, window_note};
use crate::reports::{AttentionReport, HeadMap, HeadStages, LensGridReport, Matrix};

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

/// `attention --stages --svg`: one head from input to output as eight panels in two rows
/// (x, q, k, v; then QKᵀ/√d, softmax, z and z·W_O: [`panels`](crate::render::attention::stages::panels)'s titles),
/// each with its own colour bar; token labels on the outer axes (rows left of each row's
/// first panel, keys under the two T × T panels); masked cells hatched. Every cell's value
/// is its tooltip.
pub fn stages(
    out: &mut dyn Write,
    r: &AttentionReport,
    s: &HeadStages,
    title: Option<&str>,
) -> io::Result<()> {
    let panels = crate::render::attention::stages::panels(s);
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
    // Two rows: x, q, k and v; then the scores, softmax, z and z·W_O.
    let labels_h = row.label_px.map_or(0.0, |l| l + 4.0);
    let second = StageRow {
        top: row.top + row.height + 8.0 + labels_h + 60.0,
        ..row
    };
    let mut right = left;
    for (rows, at) in [
        (&panels[..FIRST_ROW], &row),
        (&panels[FIRST_ROW..], &second),
    ] {
        let mut x = left;
        for (n, p) in rows.iter().enumerate() {
            x += at.panel(&mut body, n == 0, p, x) + 28.0;
        }
        right = right.max(x);
    }
    let x = right;
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
    let height = (second.top + second.height + 8.0 + labels_h + 40.0).ceil();
    document(out, width, height, MASKED, Some((&title, &subtitle)), &body)
}

/// A row of a head's stage panels: what each panel is drawn with.
#[derive(Clone, Copy)]
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
    /// A panel at `x` (the row's `first`: with the token labels beside it): its title,
    /// cells, token labels and colour bar. Returns its width.
    fn panel(&self, body: &mut String, first: bool, p: &StagePanel, x: f64) -> f64 {
        let (ch, top, shown) = (self.ch, self.top, self.shown);
        let cols = p.cells.first().map_or(0, Vec::len);
        // T × T panels are square; vectors per token fit a fixed width.
        let (cw, pw) = match p.width {
            PanelWidth::Square => (ch, ch * cols as f64),
            PanelWidth::Fixed(w) => (w / cols.max(1) as f64, w),
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
        let below =
            self.labels(body, (first, p.width == PanelWidth::Square), x) + top + self.height + 8.0;
        let bw = pw.max(96.0);
        stage_bar(body, p, x, below, bw);
        bw.max(pw)
    }

    /// Token labels beside the row's first panel's rows and under the T × T panels'
    /// columns; returns the height they take under the panels.
    fn labels(&self, body: &mut String, (first, square): (bool, bool), x: f64) -> f64 {
        let Some(label_px) = self.label_px else {
            return 0.0;
        };
        let (ch, top) = (self.ch, self.top);
        if first {
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
        if square {
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
fn stage_bar(body: &mut String, p: &StagePanel, x: f64, y: f64, width: f64) {
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

/// The lens grid's statistics below it, at (`left`, `y`): KL(final ‖ depth) at every depth
/// and position, written in its cell and shaded from 0 to the largest KL shown; each cell's
/// tooltip adds the entropy and the final token's rank. Returns the panel's height and the
/// width its caption needs.
fn lens_stats_panel(
    body: &mut String,
    (left, y): (f64, f64),
    r: &LensGridReport,
    rows: &[String],
    probabilities: &Ramp,
) -> (f64, f64) {
    const CW: f64 = LENS_CW;
    const CH: f64 = LENS_CH;
    let st = &r.stats;
    let most = (st.kl_to_final.iter().flatten()).fold(0f32, |m, &v| m.max(v));
    let caption = format!(
        "KL from the final distribution, nats (0 to {most:.3}); hover: entropy, final token's rank"
    );
    let _ = writeln!(
        body,
        r#"<text x="{left}" y="{}" font-size="12">{}</text>"#,
        y - 8.0,
        escape(&caption)
    );
    for (d, label) in rows.iter().enumerate() {
        let cy = y + d as f64 * CH;
        let _ = writeln!(
            body,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end" dominant-baseline="central">{}</text>"#,
            left - 6.0,
            cy + CH / 2.0,
            escape(label)
        );
        for (j, &kl) in st.kl_to_final[d].iter().enumerate() {
            let x = left + j as f64 * CW;
            let c = probabilities
                .cmap
                .at(if most > 0.0 { kl / most } else { 0.0 });
            let _ = writeln!(
                body,
                r#"<g class="stat"><rect x="{x}" y="{cy}" width="{CW}" height="{CH}" fill="{}"><title>{label}, position {j}: KL {kl:.4}, entropy {:.4}, final token's rank {}</title></rect><text x="{}" y="{}" font-size="10" text-anchor="middle" dominant-baseline="central" fill="{}">{kl:.2}</text></g>"#,
                hex(c),
                st.entropy[d][j],
                st.final_token_rank[d][j],
                x + CW / 2.0,
                cy + CH / 2.0,
                ink_name(c)
            );
        }
    }
    let width = left + display_width(&caption) as f64 * CHAR_PX + 20.0;
    (rows.len() as f64 * CH, width)
}

/// The lens grid's row (depth) and column (position) labels, and where its cells start.
fn lens_grid_axes(r: &LensGridReport) -> (Vec<String>, Vec<String>, (f64, f64)) {
    let rows: Vec<String> = (r.depths.iter())
        .map(|&d| crate::render::depth_label(d))
        .collect();
    let cols: Vec<String> = (r.tokens.iter().enumerate())
        .map(|(j, t)| format!("{j} {}", token_label(t)))
        .collect();
    let left =
        12.0 + rows.iter().map(|l| display_width(l)).max().unwrap_or(1) as f64 * CHAR_PX + 10.0;
    // Position labels turned 60°: their height is sin 60° of their length.
    let longest = cols.iter().map(|l| display_width(l).min(LABEL_CHARS)).max();
    let top = 56.0 + longest.unwrap_or(1) as f64 * CHAR_PX * 0.87 + 8.0;
    (rows, cols, (left, top))
}

pub fn lens_grid(
    out: &mut dyn Write,
    r: &LensGridReport,
    title: Option<&str>,
    probabilities: Ramp,
) -> io::Result<()> {
    const CW: f64 = LENS_CW;
    const CH: f64 = LENS_CH;
    let (rows, cols, (left, top)) = lens_grid_axes(r);
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
    let (stats_h, stats_w) = lens_stats_panel(
        &mut body,
        (left, top + bar_h + 28.0),
        r,
        &rows,
        &probabilities,
    );
    let text = r.header.text.as_deref().unwrap_or_default();
    let default_title = format!(
        "{} lens · the top next token at every depth and position",
        r.lens.name()
    );
    let title = title.unwrap_or(&default_title);
    let subtitle = format!("“{}”", shorten(&sentence(text), SUBTITLE_CHARS));
    let width = (bar_x + 60.0)
        .max(stats_w)
        .max(12.0 + display_width(title) as f64 * 10.0 + 20.0)
        .max(12.0 + display_width(&subtitle) as f64 * CHAR_PX + 20.0)
        .ceil();
    let height = (top + bar_h + 28.0 + stats_h + 16.0).ceil();
    document(
        out,
        width,
        height,
        &gradient(&probabilities),
        Some((title, &subtitle)),
        &body,
    )
}
