//! Plain-text tables for people.

use std::io::{self, Write};

use crate::report::{AttentionReport, InfoReport, NextReport, TokenizeReport};

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell (counted in chars), two spaces apart.
fn grid(
    out: &mut dyn Write,
    header: &[&str],
    align: &[Align],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(width[i] - cell.chars().count());
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

/// A token's text as a quoted literal, so spaces and newlines are visible.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn shape(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    if inner.len() == 1 {
        format!("({},)", inner[0])
    } else {
        format!("({})", inner.join(", "))
    }
}

fn list(ids: &[u32]) -> String {
    let inner: Vec<String> = ids.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(", "))
}

pub fn tokenize(out: &mut dyn Write, r: &TokenizeReport) -> io::Result<()> {
    let rows: Vec<Vec<String>> = r
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            vec![
                i.to_string(),
                t.id.to_string(),
                t.token.clone(),
                quoted(&t.text),
                format!("{}..{}", t.start, t.end),
            ]
        })
        .collect();
    use Align::*;
    grid(
        out,
        &["index", "id", "token", "text", "bytes"],
        &[Right, Right, Left, Left, Left],
        &rows,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "input_ids       {}  shape {}",
        list(&r.input_ids),
        shape(&r.shape)
    )?;
    writeln!(
        out,
        "attention_mask  {}  shape {}",
        list(&r.attention_mask),
        shape(&r.shape)
    )
}

pub fn next(out: &mut dyn Write, r: &NextReport) -> io::Result<()> {
    use Align::*;
    let stages: Vec<Vec<String>> = r
        .stages
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                shape(&s.shape),
                s.dtype.clone(),
                s.note.clone(),
            ]
        })
        .collect();
    grid(
        out,
        &["stage", "shape", "dtype", "what it is"],
        &[Left, Left, Left, Left],
        &stages,
    )?;
    writeln!(out)?;
    let preds: Vec<Vec<String>> = r
        .predictions
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
    grid(
        out,
        &["rank", "id", "token", "prob", "logprob", "logit"],
        &[Right, Right, Left, Right, Right, Right],
        &preds,
    )
}

pub fn attention(out: &mut dyn Write, r: &AttentionReport) -> io::Result<()> {
    use Align::*;
    let t = r.tokens.len();
    let mut header: Vec<String> = vec!["query \\ key".to_string()];
    header.extend((0..t).map(|j| j.to_string()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut align = vec![Left];
    align.extend(std::iter::repeat_n(Right, t));
    for (n, map) in r.maps().iter().enumerate() {
        if n > 0 {
            writeln!(out)?;
        }
        writeln!(
            out,
            "layer {} head {}  (rows: queries, columns: keys, - : future position, weight 0)",
            map.layer, map.head
        )?;
        let rows: Vec<Vec<String>> = map
            .weights
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut cells = vec![format!("{i} {}", quoted(&r.tokens[i]))];
                cells.extend(row.iter().enumerate().map(|(j, w)| {
                    if j > i {
                        "-".to_string()
                    } else {
                        format!("{w:.3}")
                    }
                }));
                cells
            })
            .collect();
        grid(out, &header, &align, &rows)?;
    }
    Ok(())
}

pub fn info(out: &mut dyn Write, r: &InfoReport) -> io::Result<()> {
    use Align::*;
    writeln!(out, "model       {}", r.header.model)?;
    writeln!(
        out,
        "checkpoint  {} ({} bytes, {})",
        r.checkpoint, r.checkpoint_bytes, r.layout
    )?;
    writeln!(out, "parameters  {}", r.parameters)?;
    writeln!(out)?;
    writeln!(out, "config.json")?;
    if let Some(fields) = r.config.as_object() {
        let rows: Vec<Vec<String>> = fields
            .iter()
            .map(|(k, v)| vec![format!("  {k}"), v.to_string()])
            .collect();
        grid(out, &["  field", "value"], &[Left, Left], &rows)?;
    }
    writeln!(out)?;
    let rows: Vec<Vec<String>> = r
        .tensors
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                shape(&t.shape),
                t.dtype.clone(),
                if t.buffer {
                    "buffer, not used".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    grid(
        out,
        &["tensor", "shape", "dtype", ""],
        &[Left, Left, Left, Left],
        &rows,
    )
}
