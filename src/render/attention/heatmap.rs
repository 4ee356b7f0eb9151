//! Attention as coloured heatmaps in a terminal: one cell per (query, key), token labels on
//! both axes, a legend of the scale; future positions hatched, not painted as zeros.
//! `grid` draws many heads as small maps side by side, two query rows per text line
//! (upper half block `▀`: foreground the upper row, background the lower).

use std::io::{self, Write};

use unicode_width::UnicodeWidthChar;

use crate::render::attention::table;
use crate::render::color::{ansi256, ink, ColourScale, Ramp, Scale};
use crate::render::{label, largest, largest_visible, window_note, Palette};
use crate::reports::{AttentionReport, HeadMap};

/// How to draw, decided from the terminal and the flags.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub palette: Palette,
    /// Columns available; `None`: no limit (not a terminal and no COLUMNS).
    pub width: Option<usize>,
    /// Values printed in the cells.
    pub annot: bool,
    /// Small maps side by side instead of one full map per head.
    pub grid: bool,
    /// How probabilities become colours (scores run from their smallest to largest).
    pub colours: ColourScale,
}

pub(crate) const RESET: &str = "\x1b[0m";
/// Hatching of masked (future) cells: a grey that is not on the Blues scale.
const HATCH: [u8; 3] = [0x9e, 0x9e, 0x9e];
/// Rows of the vertical key labels at most.
const LABEL_HEIGHT: usize = 8;
/// Characters of a row label's token at most.
const LABEL_WIDTH: usize = 12;

pub(crate) fn bg(p: Palette, c: [u8; 3]) -> String {
    match p {
        Palette::Truecolor => format!("\x1b[48;2;{};{};{}m", c[0], c[1], c[2]),
        Palette::Ansi256 => format!("\x1b[48;5;{}m", ansi256(c)),
    }
}

pub(crate) fn fg(p: Palette, c: [u8; 3]) -> String {
    match p {
        Palette::Truecolor => format!("\x1b[38;2;{};{};{}m", c[0], c[1], c[2]),
        Palette::Ansi256 => format!("\x1b[38;5;{}m", ansi256(c)),
    }
}

/// One map to draw: cells `None` where the query cannot see the key.
struct Map {
    layer: usize,
    head: usize,
    /// Pre-softmax scores (scale min..max) rather than probabilities (scale 0..1).
    scores: bool,
    cells: Vec<Vec<Option<f32>>>,
    ramp: Ramp,
}

impl Map {
    fn title(&self) -> String {
        let what = match self.scores {
            true => "scores QKᵀ/√d_head before softmax (scale from min to max)",
            false => "attention probabilities (rows: queries, columns: keys)",
        };
        format!("layer {} head {}  {what}", self.layer, self.head)
    }

    /// `L0 H3` (or `L0 H3 scores`).
    fn short_title(&self) -> String {
        let kind = if self.scores { " scores" } else { "" };
        format!("L{} H{}{kind}", self.layer, self.head)
    }

    fn value(&self, v: f32) -> String {
        match self.scores {
            true => format!("{v:.1}"),
            false => format!("{v:.2}"),
        }
    }
}

pub fn attention(out: &mut dyn Write, r: &AttentionReport, style: &Style) -> io::Result<()> {
    let start = r.window.map_or(0, |w| w[0]);
    if let Some(note) = window_note(r) {
        writeln!(out, "{note}\n")?;
    }
    let shown = r.weights.maps(r.layer, r.head);
    let ramp = style.colours.probabilities(largest_visible(&shown));
    let mut maps: Vec<Map> = shown
        .into_iter()
        .map(|m| Map {
            layer: m.layer,
            head: m.head,
            scores: false,
            cells: causal(m.matrix),
            ramp,
        })
        .collect();
    if let Some(scores) = &r.scores {
        maps.extend(
            scores
                .maps(r.layer, r.head)
                .into_iter()
                .map(|m| scores_map(m, &style.colours)),
        );
    }
    if style.grid {
        thumbnails(
            out,
            &r.tokens,
            start,
            &maps,
            r.weights.heads_per_layer(),
            style,
        )?;
    } else {
        for m in &maps {
            full(out, &r.tokens, start, m, style)?;
            writeln!(out)?;
        }
    }
    table::qkv(out, r)
}

/// Probabilities with the causal mask made explicit: key after query is `None`.
pub(crate) fn causal(m: &[Vec<f32>]) -> Vec<Vec<Option<f32>>> {
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(j, &w)| (j <= i).then_some(w))
                .collect()
        })
        .collect()
}

fn scores_map(m: HeadMap<'_, Vec<Vec<Option<f32>>>>, colours: &ColourScale) -> Map {
    let finite = m.matrix.iter().flatten().flatten().copied();
    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
        (lo.min(s), hi.max(s))
    });
    Map {
        layer: m.layer,
        head: m.head,
        scores: true,
        cells: m.matrix.clone(),
        ramp: colours.signed(lo, hi),
    }
}

/// Display width of a string in terminal columns.
fn width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `s` cut to `max` columns with `…`, then padded to `max` on the right.
pub(crate) fn fit(s: &str, max: usize) -> String {
    let mut outs = String::new();
    let mut w = 0;
    let total = width(s);
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if total > max && w + cw + 1 > max {
            outs.push('…');
            w += 1;
            break;
        }
        outs.push(c);
        w += cw;
    }
    outs + &" ".repeat(max.saturating_sub(w))
}

/// A token's label as one character per vertical cell: zero-width marks get a dotted
/// circle to sit on, and long labels end in `…`.
fn glyphs(token: &str) -> Vec<String> {
    let mut g: Vec<String> = label(token)
        .chars()
        .map(|c| match c.width() {
            Some(0) | None => format!("◌{c}"),
            _ => c.to_string(),
        })
        .collect();
    if g.len() > LABEL_HEIGHT {
        g.truncate(LABEL_HEIGHT - 1);
        g.push("…".into());
    }
    g
}

/// How many of `t` columns of width `cw` fit beside a `left`-wide label column.
fn columns_that_fit(t: usize, left: usize, cw: usize, style: &Style) -> usize {
    match style.width {
        Some(w) => (w.saturating_sub(left) / cw).clamp(1, t.max(1)).min(t),
        None => t,
    }
}

/// One map at full size with labels, legend and (when cut) a note.
fn full(
    out: &mut dyn Write,
    tokens: &[String],
    start: usize,
    m: &Map,
    style: &Style,
) -> io::Result<()> {
    let p = style.palette;
    let t = m.cells.len();
    let last = start + t.saturating_sub(1);
    let pos_w = last.to_string().len();
    let row_labels: Vec<String> = tokens
        .iter()
        .enumerate()
        .map(|(i, tok)| format!("{:>pos_w$} {} ", start + i, fit(&label(tok), LABEL_WIDTH)))
        .collect();
    let left = row_labels.first().map_or(0, |l| width(l));
    let texts: Vec<Vec<Option<String>>> = m
        .cells
        .iter()
        .map(|row| row.iter().map(|c| c.map(|v| m.value(v))).collect())
        .collect();
    let widest = texts.iter().flatten().flatten().map(|s| s.len()).max();
    let cw = if style.annot {
        1 + widest.unwrap_or(1)
    } else {
        2
    };
    let shown = columns_that_fit(t, left, cw, style);

    writeln!(out, "{}", m.title())?;
    column_labels(out, &tokens[..shown], left, cw)?;
    for (i, row) in m.cells.iter().enumerate() {
        let mut line = row_labels[i].clone();
        let top = row_max(row);
        for (j, cell) in row.iter().take(shown).enumerate() {
            match cell {
                Some(v) => {
                    let c = m.ramp.colour(*v, top);
                    let text = match &texts[i][j] {
                        Some(s) if style.annot => {
                            format!("{}{s:>cw$}", fg(p, ink(c)))
                        }
                        _ => " ".repeat(cw),
                    };
                    line.push_str(&format!("{}{text}{RESET}", bg(p, c)));
                }
                None => line.push_str(&format!("{}{}{RESET}", fg(p, HATCH), "╱".repeat(cw))),
            }
        }
        writeln!(out, "{line}")?;
    }
    legend(out, m, p)?;
    if shown < t {
        cut_note(out, start + shown, start + t - 1, style)?;
    }
    Ok(())
}

/// The keys' labels written downwards, one character a line, each centred over its cell
/// of `cw` columns and ending on the line above the map, `left` columns in.
fn column_labels(out: &mut dyn Write, tokens: &[String], left: usize, cw: usize) -> io::Result<()> {
    let columns: Vec<Vec<String>> = tokens.iter().map(|t| glyphs(t)).collect();
    let height = columns.iter().map(Vec::len).max().unwrap_or(0);
    // Centred over its cell (cells wider than 2 hold a value).
    let pad = (cw - 1) / 2;
    for r in 0..height {
        let mut line = " ".repeat(left);
        for g in &columns {
            // Bottom-aligned: every label ends on the row above the map.
            let cell = r
                .checked_sub(height - g.len())
                .map_or(" ", |k| g[k].as_str());
            line.push_str(&" ".repeat(pad));
            line.push_str(cell);
            line.push_str(&" ".repeat(cw.saturating_sub(pad + width(cell))));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The largest finite value of a row (0 when none): the top of `--scale row`.
fn row_max(row: &[Option<f32>]) -> f32 {
    largest(row.iter().flatten())
}

/// `lo ▕gradient▏ hi   ╱ masked`.
fn legend(out: &mut dyn Write, m: &Map, p: Palette) -> io::Result<()> {
    const STEPS: usize = 20;
    let ramp: String = (0..STEPS)
        .map(|k| {
            let c = m.ramp.at(k as f32 / (STEPS - 1) as f32);
            format!("{} {RESET}", bg(p, c))
        })
        .collect();
    let (lo, hi, how) = match m.ramp.scale {
        Scale::Row => (
            "0".into(),
            "row max".into(),
            " (each row from 0 to its largest)",
        ),
        Scale::Log => (
            format!("{}", m.ramp.lo),
            format!("{}", m.ramp.hi),
            " (log scale)",
        ),
        Scale::Absolute | Scale::Global => (m.value(m.ramp.lo), m.value(m.ramp.hi), ""),
    };
    writeln!(
        out,
        "scale {lo} {ramp} {hi}{how}   {}╱{RESET} masked: a query never sees later keys",
        fg(p, HATCH)
    )
}

/// Small maps side by side: one column per key, two query rows per line.
fn thumbnails(
    out: &mut dyn Write,
    tokens: &[String],
    start: usize,
    maps: &[Map],
    heads_per_row: usize,
    style: &Style,
) -> io::Result<()> {
    let p = style.palette;
    let t = tokens.len();
    let shown = columns_that_fit(t, 0, 1, style);
    const GAP: usize = 2;
    let tile = shown.max(8);
    // One layer a row, wrapped where the terminal is narrower than the layer.
    let layer = heads_per_row.max(1);
    let per_row = match style.width {
        Some(w) => ((w + GAP) / (tile + GAP)).clamp(1, layer),
        None => layer,
    };
    let lines = t.div_ceil(2);
    for chunk in maps.chunks(layer).flat_map(|l| l.chunks(per_row)) {
        let titles: Vec<String> = chunk.iter().map(|m| fit(&m.short_title(), tile)).collect();
        writeln!(out, "{}", titles.join(&" ".repeat(GAP)).trim_end())?;
        for line in 0..lines {
            let mut s = String::new();
            for (k, m) in chunk.iter().enumerate() {
                if k > 0 {
                    s.push_str(&" ".repeat(GAP));
                }
                half_blocks(&mut s, m, line, shown, p);
                s.push_str(&" ".repeat(tile - shown));
            }
            writeln!(out, "{}", s.trim_end())?;
        }
        writeln!(out)?;
    }
    let keys: Vec<String> = tokens
        .iter()
        .enumerate()
        .map(|(i, tok)| format!("{} {}", start + i, label(tok)))
        .collect();
    writeln!(out, "tokens (rows and columns): {}", keys.join("  "))?;
    if let Some(m) = maps.first() {
        legend(out, m, p)?;
    }
    writeln!(
        out,
        "each map: one column per key, two query rows per line; masked cells left empty"
    )?;
    if shown < t {
        cut_note(out, start + shown, start + t - 1, style)?;
    }
    Ok(())
}

/// Query rows `2·line` and `2·line + 1` of `m` as one line of half blocks (▀ the upper
/// row's colour over the lower's), its first `shown` keys.
fn half_blocks(s: &mut String, m: &Map, line: usize, shown: usize, p: Palette) {
    let upper = &m.cells[2 * line];
    let lower = m.cells.get(2 * line + 1);
    let (top_a, top_b) = (row_max(upper), lower.map_or(0.0, |r| row_max(r)));
    for j in 0..shown {
        let colour = |c: Option<f32>, top| c.map(|v| m.ramp.colour(v, top));
        let a = colour(upper[j], top_a);
        let b = lower.and_then(|r| colour(r[j], top_b));
        s.push_str(&match (a, b) {
            (Some(a), Some(b)) => format!("{}{}▀{RESET}", fg(p, a), bg(p, b)),
            (Some(a), None) => format!("{}▀{RESET}", fg(p, a)),
            (None, Some(b)) => format!("{}▄{RESET}", fg(p, b)),
            (None, None) => " ".into(),
        });
    }
}

/// Says which keys did not fit the terminal, and how to see them.
fn cut_note(out: &mut dyn Write, first: usize, last: usize, style: &Style) -> io::Result<()> {
    writeln!(
        out,
        "keys {first} to {last} not shown: the terminal is {} columns wide; --window START:END picks a span",
        style.width.unwrap_or(0)
    )
}
