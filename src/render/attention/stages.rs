//! `attention --stages`: one head from input to output as heatmaps, the classic walk
//! through a head: x (ln_1's output), the queries, keys and values, the scores
//! QKᵀ/√d_head, the softmax weights, z (the weighted values) and z·W_O (what the head adds
//! to the residual stream). In a terminal one after another (a cell per value, columns
//! averaged in bins when they do not fit); as an SVG figure, labelled panels in two rows,
//! each with its own colour bar (`figure::stages`).

use std::io::{self, Write};

use crate::render::attention::heatmap::{bg, causal, RESET};
use crate::render::color::{Cmap, ColourScale, Ramp};
use crate::render::table::{columns, quoted, Align};
use crate::render::{display_width, max_abs, Palette};
use crate::reports::{AttentionReport, HeadStages};

/// One of the panels: its title, cells (`None`: masked) and how values become colour.
pub struct StagePanel {
    pub title: &'static str,
    pub cells: Vec<Vec<Option<f32>>>,
    /// Signed values on RdBu_r over ±their largest |value| (x, q, k, v, scores, z and its
    /// result); probabilities on Blues over 0..1.
    pub ramp: Ramp,
    /// How wide a figure draws it.
    pub width: PanelWidth,
}

/// A figure's panel width: T × T panels square, vectors per token a fixed width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PanelWidth {
    Square,
    Fixed(f64),
}

/// How many of [`panels`] a figure draws in its first row (x, q, k, v); the rest (the
/// scores, softmax, z and z·W_O) go in the second.
pub const FIRST_ROW: usize = 4;

/// The panels, in data-flow order, with the titles every picture of them uses.
pub fn panels(s: &HeadStages) -> [StagePanel; 8] {
    let some = |m: &Vec<Vec<f32>>| -> Vec<Vec<Option<f32>>> {
        m.iter()
            .map(|r| r.iter().map(|&v| Some(v)).collect())
            .collect()
    };
    let rdbu = ColourScale {
        cmap: Cmap::RdBu,
        ..Default::default()
    };
    let signed = |title, cells: Vec<Vec<Option<f32>>>, width| {
        let m = max_abs(cells.iter().flatten().flatten());
        StagePanel {
            title,
            cells,
            ramp: rdbu.signed(-m, m),
            width,
        }
    };
    let (wide, narrow) = (PanelWidth::Fixed(240.0), PanelWidth::Fixed(120.0));
    [
        signed("x (ln_1 output)", some(&s.x), wide),
        signed("q (queries)", some(&s.q), narrow),
        signed("k (keys)", some(&s.k), narrow),
        signed("v (values)", some(&s.v), narrow),
        signed("QKᵀ/√d", s.scores.clone(), PanelWidth::Square),
        StagePanel {
            title: "softmax",
            cells: causal(&s.weights),
            ramp: ColourScale::default().probabilities(1.0),
            width: PanelWidth::Square,
        },
        signed("z = softmax · v", some(&s.z), narrow),
        signed("z·W_O (to the residual stream)", some(&s.result), wide),
    ]
}

/// Columns of the terminal a panel may use after its row labels.
const MIN_COLUMNS: usize = 16;

pub fn stages(
    out: &mut dyn Write,
    r: &AttentionReport,
    s: &HeadStages,
    palette: Option<Palette>,
    width: Option<usize>,
) -> io::Result<()> {
    writeln!(
        out,
        "layer {} head {}  the head's stages, input to output",
        r.layer.unwrap_or(0),
        r.head.unwrap_or(0)
    )?;
    let labels: Vec<String> = r
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{i} {}", quoted(t)))
        .collect();
    let label_w = labels.iter().map(|l| display_width(l)).max().unwrap_or(1);
    for p in panels(s) {
        let cols = p.cells.first().map_or(0, Vec::len);
        let (lo, hi) = (p.ramp.lo, p.ramp.hi);
        writeln!(out)?;
        write!(out, "{}  ({} × {cols}", p.title, p.cells.len())?;
        match p.ramp.signed {
            true => write!(out, ", blue {lo:.3} … white 0 … red {hi:.3}")?,
            false => write!(out, ", white 0 … blue 1")?,
        }
        let Some(pal) = palette else {
            writeln!(out, ")")?;
            plain(out, &labels, &p)?;
            continue;
        };
        // Bins of columns averaged into one cell when the row would not fit.
        let room = width
            .map_or(usize::MAX, |w| w.saturating_sub(label_w + 2))
            .max(MIN_COLUMNS);
        let bin = cols.div_ceil(room).max(1);
        // Two columns a cell where they fit: square-looking cells.
        let cell = if 2 * cols <= room { "  " } else { " " };
        match bin {
            1 => writeln!(out, ")")?,
            b => writeln!(out, "; each cell the mean of {b} columns)")?,
        }
        for (label, row) in labels.iter().zip(&p.cells) {
            let pad = label_w - display_width(label);
            write!(out, "{label}{}  ", " ".repeat(pad))?;
            for chunk in row.chunks(bin) {
                let vals: Vec<f32> = chunk.iter().flatten().copied().collect();
                if vals.is_empty() {
                    write!(out, "{}", "╱".repeat(cell.len()))?;
                } else {
                    let mean = vals.iter().sum::<f32>() / vals.len() as f32;
                    write!(out, "{}{cell}{RESET}", bg(pal, p.ramp.colour(mean, 1.0)))?;
                }
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Without colour: the numbers, the first columns of wide panels only.
fn plain(out: &mut dyn Write, labels: &[String], p: &StagePanel) -> io::Result<()> {
    const SHOWN: usize = 8;
    let cols = p.cells.first().map_or(0, Vec::len);
    let n = cols.min(SHOWN);
    let mut head = vec![String::new()];
    head.extend((0..n).map(|j| j.to_string()));
    if cols > n {
        head.push(format!("… {} more (--json)", cols - n));
    }
    let head_ref: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut align = vec![Align::Left];
    align.extend(std::iter::repeat_n(Align::Right, head.len() - 1));
    let rows: Vec<Vec<String>> = labels
        .iter()
        .zip(&p.cells)
        .map(|(l, r)| {
            let mut cells = vec![l.clone()];
            cells.extend(
                r[..n]
                    .iter()
                    .map(|v| v.map_or("-".into(), |v| format!("{v:.3}"))),
            );
            if cols > n {
                cells.push(String::new());
            }
            cells
        })
        .collect();
    columns(out, &head_ref, &align, &rows)
}
