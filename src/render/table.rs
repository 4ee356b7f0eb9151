//! The tables every family draws: aligned columns, a text's heading in a batch, quoted
//! tokens, ranked predictions and what a command wrote.

use crate::render::display_width;
use crate::reports::Prediction;
use crate::reports::WrittenReport;
use std::io::{self, Write};

#[derive(Clone, Copy)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell (counted in chars), two spaces apart.
pub(crate) fn columns(
    out: &mut dyn Write,
    header: &[&str],
    align: &[Align],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut width: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(display_width(cell));
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(width[i].saturating_sub(display_width(cell)));
            match align[i] {
                Align::Left => s.push_str(&format!("{cell}{pad}")),
                Align::Right => s.push_str(&format!("{pad}{cell}")),
            }
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(
        out,
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    )?;
    for row in rows {
        line(out, row)?;
    }
    Ok(())
}

/// The line above each text's tables when several texts run as a batch.
pub fn batch_heading(out: &mut dyn Write, i: usize, n: usize, text: &str) -> io::Result<()> {
    // A heading is one line: a long text shows its start.
    const SHOWN: usize = 100;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => writeln!(out, "== text {} of {n}: {}…", i + 1, quoted(&text[..end])),
        None => writeln!(out, "== text {} of {n}: {}", i + 1, quoted(text)),
    }
}

/// A token's text as a quoted literal, so spaces and newlines are visible.
pub(crate) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

pub(crate) fn predictions(out: &mut dyn Write, preds: &[Prediction]) -> io::Result<()> {
    use Align::*;
    let rows: Vec<Vec<String>> = preds
        .iter()
        .map(|p| {
            vec![
                p.rank.to_string(),
                p.id.to_string(),
                quoted(&p.token),
                format!("{:.4}", p.prob),
                format!("{:.4}", p.logprob),
                format!("{:.4}", p.logit),
            ]
        })
        .collect();
    columns(
        out,
        &["rank", "id", "token", "prob", "logprob", "logit"],
        &[Right, Right, Left, Right, Right, Right],
        &rows,
    )
}

pub fn written(out: &mut dyn Write, r: &WrittenReport) -> io::Result<()> {
    writeln!(out, "wrote {} ({} bytes): {}", r.path, r.bytes, r.contents)
}

/// Components of a vector shown in tables; `--json` has every one.
pub(super) const COMPONENTS_SHOWN: usize = 6;

/// One row per token: the vector's norm (when the report has it) and first components.
pub(super) fn vectors(
    out: &mut dyn Write,
    tokens: &[String],
    values: &[Vec<f32>],
    norms: Option<&[f32]>,
) -> io::Result<()> {
    use Align::*;
    let d = values.first().map_or(0, Vec::len);
    let shown = d.min(COMPONENTS_SHOWN);
    let mut header = vec!["token".to_string()];
    if norms.is_some() {
        header.push("norm".to_string());
    }
    header.extend((0..shown).map(|c| format!("[{c}]")));
    if d > shown {
        header.push("…".into());
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut align = vec![Left];
    align.extend(std::iter::repeat_n(Right, header.len() - 1));
    let rows: Vec<Vec<String>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut cells = vec![format!("{i} {}", quoted(&tokens[i]))];
            cells.extend(norms.map(|n| format!("{:.4}", n[i])));
            cells.extend(v.iter().take(shown).map(|x| format!("{x:.4}")));
            if d > shown {
                cells.push(format!("({d} in all)"));
            }
            cells
        })
        .collect();
    columns(out, &header, &align, &rows)
}
