//! `features` in a terminal: a tokens × features heatmap of the features that fire most in
//! the text, each cell its activation, coloured (Blues, 0 to the largest activation shown)
//! when the terminal has colour.

use std::io::{self, Write};

use crate::render::attention::heatmap::{bg, fg, fit, RESET};
use crate::render::color::{blues, ink};
use crate::render::table::quoted;
use crate::render::{display_width, Palette};
use crate::reports::FeaturesReport;

/// Characters of a cell.
const CELL: usize = 7;
/// Characters of a row's token at most.
const TOKEN: usize = 14;

pub fn heatmap(
    out: &mut dyn Write,
    r: &FeaturesReport,
    palette: Option<Palette>,
    width: Option<usize>,
) -> io::Result<()> {
    let m = &r.most_active;
    if m.ids.is_empty() {
        return Ok(());
    }
    let labels: Vec<String> = (r.tokens.iter().enumerate())
        .map(|(t, token)| format!("{t:>3} {}", fit(&quoted(token), TOKEN)))
        .collect();
    let label_w = labels.iter().map(|l| display_width(l)).max().unwrap_or(0);
    let room = width.map_or(usize::MAX, |w| (w.saturating_sub(label_w) / CELL).max(1));
    let shown = m.ids.len().min(room);
    let max = (m.activations.iter().flatten()).fold(0f32, |a, &b| a.max(b));
    writeln!(out)?;
    let scale = match palette {
        Some(_) => format!("; colour: 0 to {max:.3} on Blues"),
        None => String::new(),
    };
    writeln!(
        out,
        "the {shown} features that fire most (columns, highest peak first) at each token{scale}"
    )?;
    if shown < m.ids.len() {
        writeln!(
            out,
            "{} more in --json (the terminal's width)",
            m.ids.len() - shown
        )?;
    }
    write!(out, "{:label_w$}", "")?;
    for id in &m.ids[..shown] {
        write!(out, "{:>CELL$}", format!("#{id}"))?;
    }
    writeln!(out)?;
    for (label, row) in labels.iter().zip(&m.activations) {
        write!(out, "{label}{}", " ".repeat(label_w - display_width(label)))?;
        for &a in &row[..shown] {
            let text = match a {
                0.0 => "·".to_string(),
                a if a.abs() >= 1000.0 => format!("{a:.0}"),
                a if a.abs() >= 100.0 => format!("{a:.1}"),
                a => format!("{a:.2}"),
            };
            let cell = format!("{text:>CELL$}");
            match palette {
                Some(p) => {
                    let c = blues(if max > 0.0 { a / max } else { 0.0 });
                    write!(out, "{}{}{cell}{RESET}", bg(p, c), fg(p, ink(c)))?
                }
                None => write!(out, "{cell}")?,
            }
        }
        writeln!(out)?;
    }
    Ok(())
}
