//! The attention family's tables: each head's pattern as numbers, q/k/v and scores, and the
//! logit lens at one position.

use std::io::{self, Write};

use crate::render::table::{columns, quoted, vectors, Align};
use crate::render::{depth_label, window_note};
use crate::reports::HeadMap;
use crate::reports::{AttentionReport, LensReport};

/// One T×T map per head, rows = queries, columns = keys; `cell(query, key, value)`.
fn head_maps<C>(
    out: &mut dyn Write,
    tokens: &[String],
    start: usize,
    what: &str,
    maps: &[HeadMap<'_, Vec<Vec<C>>>],
    cell: impl Fn(usize, usize, &C) -> String,
) -> io::Result<()> {
    use Align::*;
    let t = tokens.len();
    let mut header: Vec<String> = vec!["query \\ key".to_string()];
    header.extend((start..start + t).map(|j| j.to_string()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut align = vec![Left];
    align.extend(std::iter::repeat_n(Right, t));
    for map in maps {
        writeln!(out, "layer {} head {}  {what}", map.layer, map.head)?;
        let rows: Vec<Vec<String>> = map
            .matrix
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut cells = vec![format!("{} {}", start + i, quoted(&tokens[i]))];
                cells.extend(row.iter().enumerate().map(|(j, c)| cell(i, j, c)));
                cells
            })
            .collect();
        columns(out, &header, &align, &rows)?;
        writeln!(out)?;
    }
    Ok(())
}

pub fn attention(out: &mut dyn Write, r: &AttentionReport) -> io::Result<()> {
    let start = r.window.map_or(0, |w| w[0]);
    if let Some(note) = window_note(r) {
        writeln!(out, "{note}\n")?;
    }
    head_maps(
        out,
        &r.tokens,
        start,
        "probabilities (rows: queries, columns: keys; - : future position, weight exactly 0)",
        &r.weights.maps(r.layer, r.head),
        |i, j, w| if j > i { "-".into() } else { format!("{w:.3}") },
    )?;
    scores_and_qkv(out, r)
}

/// The scores (with `--scores`) and the q, k and v vectors (with `--qkv`) of a report, as
/// tables: after the pattern, the neuron view or the stages.
pub fn scores_and_qkv(out: &mut dyn Write, r: &AttentionReport) -> io::Result<()> {
    if let Some(scores) = &r.scores {
        head_maps(
            out,
            &r.tokens,
            r.window.map_or(0, |w| w[0]),
            "scores QKᵀ/√d_head before softmax (blank: masked)",
            &scores.maps(r.layer, r.head),
            |_, _, s| s.map(|s| format!("{s:.3}")).unwrap_or_default(),
        )?;
    }
    qkv(out, r)
}

/// The q, k and v vectors of an attention report (with `--qkv`).
pub fn qkv(out: &mut dyn Write, r: &AttentionReport) -> io::Result<()> {
    for (name, per_head) in [("q", &r.q), ("k", &r.k), ("v", &r.v)] {
        if let Some(per_head) = per_head {
            for map in per_head.maps(r.layer, r.head) {
                writeln!(
                    out,
                    "layer {} head {}  {name} vectors (first components; --json for all)",
                    map.layer, map.head
                )?;
                vectors(out, &r.tokens, map.matrix, None)?;
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

pub fn lens_fit(out: &mut dyn Write, r: &crate::reports::LensFitReport) -> io::Result<()> {
    writeln!(
        out,
        "Jacobian lens fitted on {} prompts of {} ({} tokens): J from the output of blocks {} to block {}'s",
        r.n_prompts,
        r.corpus,
        r.tokens,
        join_numbers(&r.source_layers),
        r.target_layer
    )?;
    let wrote = match &r.partial_of {
        Some(of) => format!("the partial of shard {of} (merge writes the lens)"),
        None => "J in float32".to_string(),
    };
    writeln!(
        out,
        "max_seq_len {}, skip_first_positions {}, BOS {}; wrote {} ({wrote})",
        r.max_seq_len,
        r.skip_first_positions,
        if r.prepend_bos {
            "prepended"
        } else {
            "not prepended"
        },
        r.output
    )?;
    for s in &r.skipped {
        writeln!(
            out,
            "skipped line {}: {} tokens, too short (a prompt needs more than {})",
            s.line,
            s.tokens,
            r.skip_first_positions + 1
        )?;
    }
    Ok(())
}

fn join_numbers(v: &[usize]) -> String {
    v.iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn lens(out: &mut dyn Write, r: &LensReport) -> io::Result<()> {
    use Align::*;
    let (position, token) = (r.position, quoted(&r.tokens[r.position]));
    writeln!(
        out,
        "{} lens at position {position} {token}: {}",
        r.lens.name(),
        crate::render::lens_reading(r.lens)
    )?;
    writeln!(
        out,
        "final prediction: {} (id {}); KL: from the final distribution, in nats",
        quoted(&r.final_token),
        r.final_id
    )?;
    writeln!(out)?;
    let k = r.depths.first().map_or(0, |l| l.predictions.len());
    let answer = r
        .answer
        .as_ref()
        .map(|a| format!("rank {}", quoted(&a.token)));
    let mut header = vec![
        "depth".to_string(),
        format!("p({})", quoted(&r.final_token)),
        "rank".into(),
        "KL".into(),
        "entropy".into(),
    ];
    header.extend(answer.clone());
    header.extend((1..=k).map(|i| format!("top {i}")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut align = vec![Left, Right, Right, Right, Right];
    align.extend(answer.iter().map(|_| Right));
    align.extend(std::iter::repeat_n(Left, k));
    let rows: Vec<Vec<String>> = (r.depths.iter())
        .map(|row| {
            let mut cells = vec![
                depth_label(row.depth),
                format!("{:.4}", row.final_token_prob),
                row.stats.final_token_rank.to_string(),
                format!("{:.3}", row.stats.kl_to_final),
                format!("{:.3}", row.stats.entropy),
            ];
            cells.extend(row.stats.answer_rank.map(|a| a.to_string()));
            cells.extend(
                (row.predictions.iter()).map(|p| format!("{} {:.3}", quoted(&p.token), p.prob)),
            );
            cells
        })
        .collect();
    columns(out, &header, &align, &rows)?;
    if r.compared.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    side_by_side(out, r)
}

/// `--lens a,b`: each lens's top token and KL at every depth any of them reads.
fn side_by_side(out: &mut dyn Write, r: &LensReport) -> io::Result<()> {
    use Align::*;
    let readings: Vec<(crate::reports::LensKind, &[crate::reports::LensRow])> =
        std::iter::once((r.lens, &r.depths[..]))
            .chain(r.compared.iter().map(|c| (c.lens, &c.depths[..])))
            .collect();
    writeln!(
        out,
        "side by side: each lens's top token, its probability and the KL from the final \
         distribution (nats)"
    )?;
    let mut depths: Vec<usize> = (readings.iter())
        .flat_map(|(_, rows)| rows.iter().map(|row| row.depth))
        .collect();
    depths.sort_unstable();
    depths.dedup();
    let header: Vec<String> = std::iter::once("depth".to_string())
        .chain(readings.iter().map(|(kind, _)| kind.name().to_string()))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let align: Vec<Align> = std::iter::once(Left)
        .chain(readings.iter().map(|_| Left))
        .collect();
    let rows: Vec<Vec<String>> = (depths.iter())
        .map(|&d| {
            let cells =
                readings
                    .iter()
                    .map(|(_, rows)| match rows.iter().find(|row| row.depth == d) {
                        Some(row) => match row.predictions.first() {
                            Some(p) => format!(
                                "{} {:.3}  KL {:.3}",
                                quoted(&p.token),
                                p.prob,
                                row.stats.kl_to_final
                            ),
                            None => format!("KL {:.3}", row.stats.kl_to_final),
                        },
                        None => "—".to_string(),
                    });
            std::iter::once(depth_label(d)).chain(cells).collect()
        })
        .collect();
    columns(out, &header, &align, &rows)
}
