//! Tables of the causal commands: patching grids, ablations, attributions, head scores.

use std::io::{self, Write};

use super::table::{columns, predictions, quoted, Align};
use crate::report::{AblateReport, AttributeReport, HeadsReport, PatchReport, SweepReport};

/// A `[L][X]` grid of numbers with a header row, one line per layer.
fn layer_grid(
    out: &mut dyn Write,
    corner: &str,
    header: &[String],
    rows: &[Vec<String>],
) -> io::Result<()> {
    let mut head: Vec<&str> = vec![corner];
    head.extend(header.iter().map(String::as_str));
    let table: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(l, r)| {
            std::iter::once(l.to_string())
                .chain(r.iter().cloned())
                .collect()
        })
        .collect();
    let align = vec![Align::Right; head.len()];
    columns(out, &head, &align, &table)
}

pub fn patch(out: &mut dyn Write, r: &PatchReport) -> io::Result<()> {
    writeln!(
        out,
        "patching {} from {} into {}",
        r.site,
        quoted(&r.clean),
        quoted(&r.corrupt)
    )?;
    writeln!(
        out,
        "metric: logit[{}] - logit[{}] at the last position; clean {:.4}, corrupt {:.4}",
        quoted(&r.answer.token),
        quoted(&r.wrong.token),
        r.clean_logit_diff,
        r.corrupt_logit_diff
    )?;
    let span = r.clean_logit_diff - r.corrupt_logit_diff;
    writeln!(
        out,
        "each cell: (patched - corrupt) / (clean - corrupt): 1 restores the clean answer, 0 changes nothing"
    )?;
    writeln!(out)?;
    let header: Vec<String> = match r.site.as_str() {
        "head" => (0..r.shape[1]).map(|h| format!("H{h}")).collect(),
        _ => r
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{i} {}", quoted(t)))
            .collect(),
    };
    let rows: Vec<Vec<String>> = r
        .values
        .iter()
        .map(|row| {
            row.iter()
                .map(|&v| match span != 0.0 {
                    true => fixed3((v - r.corrupt_logit_diff) / span),
                    false => "-".into(),
                })
                .collect()
        })
        .collect();
    layer_grid(out, "layer", &header, &rows)
}

/// Three decimals, without a sign on a value that rounds to zero.
fn fixed3(v: f32) -> String {
    match format!("{v:.3}") {
        z if z == "-0.000" => "0.000".into(),
        s => s,
    }
}

pub fn ablate(out: &mut dyn Write, r: &AblateReport) -> io::Result<()> {
    writeln!(out, "ablated ({}): {}", r.mode, r.ablated.join(", "))?;
    writeln!(
        out,
        "log p({}) {:.4} → {:.4} (change {:+.4}); KL(before ‖ after) = {:.4} nats",
        quoted(&r.answer.token),
        r.logprob_before,
        r.logprob_after,
        r.logprob_after - r.logprob_before,
        r.kl
    )?;
    writeln!(out)?;
    writeln!(out, "before")?;
    predictions(out, &r.before)?;
    writeln!(out)?;
    writeln!(out, "after")?;
    predictions(out, &r.after)
}

pub fn sweep(out: &mut dyn Write, r: &SweepReport) -> io::Result<()> {
    writeln!(
        out,
        "every head zero-ablated alone: change in log p({}) (before: {:.4})",
        quoted(&r.answer.token),
        r.logprob_before
    )?;
    writeln!(out)?;
    let heads = r.values.first().map_or(0, Vec::len);
    let header: Vec<String> = (0..heads).map(|h| format!("H{h}")).collect();
    let rows: Vec<Vec<String>> = r
        .values
        .iter()
        .map(|row| row.iter().map(|v| format!("{v:+.4}")).collect())
        .collect();
    layer_grid(out, "layer", &header, &rows)
}

pub fn attribute(out: &mut dyn Write, r: &AttributeReport) -> io::Result<()> {
    let what = match &r.wrong {
        Some(w) => format!(
            "logit[{}] - logit[{}]",
            quoted(&r.answer.token),
            quoted(&w.token)
        ),
        None => format!("logit[{}]", quoted(&r.answer.token)),
    };
    writeln!(
        out,
        "direct logit attribution of {what} at position {}",
        r.position
    )?;
    writeln!(
        out,
        "components {:.4} + constant (b_lnf) {:.4} = {:.4}; the model's own: {:.4}",
        r.total - r.constant,
        r.constant,
        r.total,
        r.logit
    )?;
    writeln!(out)?;
    let mut order: Vec<usize> = (0..r.components.len()).collect();
    order.sort_by(|&a, &b| {
        r.components[b]
            .value
            .abs()
            .total_cmp(&r.components[a].value.abs())
            .then(a.cmp(&b))
    });
    let rows: Vec<Vec<String>> = order
        .iter()
        .take(10)
        .map(|&i| {
            let c = &r.components[i];
            vec![c.name.clone(), format!("{:+.4}", c.value)]
        })
        .collect();
    writeln!(out, "largest contributions")?;
    columns(
        out,
        &["component", "value"],
        &[Align::Left, Align::Right],
        &rows,
    )?;
    writeln!(out)?;
    // Layer × (heads, attention bias, MLP).
    let layers = r
        .components
        .iter()
        .filter_map(|c| c.layer)
        .max()
        .map_or(0, |l| l + 1);
    let heads = r
        .components
        .iter()
        .filter_map(|c| c.head)
        .max()
        .map_or(0, |h| h + 1);
    let mut header: Vec<String> = (0..heads).map(|h| format!("H{h}")).collect();
    header.extend(["bias".to_string(), "mlp".to_string()]);
    let rows: Vec<Vec<String>> = (0..layers)
        .map(|l| {
            r.components
                .iter()
                .filter(|c| c.layer == Some(l))
                .map(|c| format!("{:+.3}", c.value))
                .collect()
        })
        .collect();
    layer_grid(out, "layer", &header, &rows)?;
    for c in r.components.iter().filter(|c| c.layer.is_none()) {
        writeln!(out, "{} {:+.4}", c.name, c.value)?;
    }
    Ok(())
}

pub fn heads(out: &mut dyn Write, r: &HeadsReport) -> io::Result<()> {
    writeln!(
        out,
        "head scores on a sequence of {} tokens repeated twice ({} in all)",
        r.n,
        r.input_ids.len()
    )?;
    let s = &r.scores;
    for (name, grid) in [
        ("previous_token", &s.previous_token),
        ("first_token", &s.first_token),
        ("induction", &s.induction),
        ("duplicate_token", &s.duplicate_token),
    ] {
        writeln!(out)?;
        let mut best: Vec<(usize, usize, f32)> = grid
            .iter()
            .enumerate()
            .flat_map(|(l, row)| row.iter().enumerate().map(move |(h, &v)| (l, h, v)))
            .collect();
        best.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        let top: Vec<String> = best
            .iter()
            .take(3)
            .map(|(l, h, v)| format!("L{l}H{h} {v:.3}"))
            .collect();
        writeln!(out, "{name}: top {}", top.join(", "))?;
        let heads = grid.first().map_or(0, Vec::len);
        let header: Vec<String> = (0..heads).map(|h| format!("H{h}")).collect();
        let rows: Vec<Vec<String>> = grid
            .iter()
            .map(|row| row.iter().map(|v| format!("{v:.3}")).collect())
            .collect();
        layer_grid(out, "layer", &header, &rows)?;
    }
    Ok(())
}
