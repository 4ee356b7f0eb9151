//! `lens --all-positions` in a terminal: a depth × position heatmap whose cells name the
//! top token read from the residual stream there, coloured by its probability (Blues);
//! without colour, the token and the probability as text.

use std::io::{self, Write};

use crate::render::attention::heatmap::{bg, fg, fit, RESET};
use crate::render::color::{ink, Ramp};
use crate::render::table::quoted;
use crate::render::{depth_label, display_width, label, Palette};
use crate::reports::{Guess, LensGridReport};

/// Characters of a cell's token at most.
const CELL_CHARS: usize = 8;

pub fn grid(
    out: &mut dyn Write,
    r: &LensGridReport,
    palette: Option<Palette>,
    width: Option<usize>,
    ramp: Ramp,
) -> io::Result<()> {
    writeln!(
        out,
        "{} lens at every position: the top next token read after each block (rows: depth, columns: position){}",
        r.lens.name(),
        if palette.is_some() {
            format!("; colour: its probability from 0 to 1 on {}", ramp.cmap.name())
        } else {
            String::new()
        }
    )?;
    // The last depth reads the model's output (ln_f applied once, as `lens`).
    let row_labels: Vec<String> = r.depths.iter().map(|&d| depth_label(d)).collect();
    let label_w = row_labels
        .iter()
        .map(|l| display_width(l))
        .max()
        .unwrap_or(5);
    let label_w = label_w.max(5);
    // Text cells are "token 0.123" without colour.
    let cw = if palette.is_some() {
        CELL_CHARS
    } else {
        CELL_CHARS + 6
    };
    let room = width.map_or(usize::MAX, |w| {
        (w.saturating_sub(label_w + 1) / (cw + 1)).max(1)
    });
    let shown = r.tokens.len().min(room);
    if shown < r.tokens.len() {
        writeln!(
            out,
            "positions 0..{} of {} shown (the terminal's width); --json or --svg for all",
            shown,
            r.tokens.len()
        )?;
    }
    write!(out, "{:<label_w$}", "depth")?;
    for (j, t) in r.tokens.iter().take(shown).enumerate() {
        let head = format!("{j} {}", quoted(t));
        write!(out, " {}", fit(&head, cw))?;
    }
    writeln!(out)?;
    for (d, row) in r.top.iter().enumerate() {
        write!(out, "{}", fit(&row_labels[d], label_w))?;
        for g in row.iter().take(shown) {
            lens_cell(out, g, palette, &ramp)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// One cell of the grid: the top token on its probability's colour, or with the
/// probability written after it without colour.
fn lens_cell(
    out: &mut dyn Write,
    g: &Guess,
    palette: Option<Palette>,
    ramp: &Ramp,
) -> io::Result<()> {
    let cell = fit(&label(&g.token), CELL_CHARS);
    match palette {
        Some(p) => {
            let c = ramp.colour(g.prob, 1.0);
            write!(out, " {}{}{cell}{RESET}", bg(p, c), fg(p, ink(c)))
        }
        None => write!(out, " {cell} {:.3}", g.prob),
    }
}
