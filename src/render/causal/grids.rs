//! Tables of the causal commands: patching grids, ablations, attributions, head scores.

use std::io::{self, Write};

use crate::render::attention::heatmap::{bg, fg, RESET};
use crate::render::color::{blues, diverging, ink};
use crate::render::svg::{grids, grids_wrapped, GridPanel, Style};
use crate::render::table::{columns, predictions, quoted, Align};
use crate::render::{display_width, label, sentence, Palette};
use crate::reports::{
    AblateReport, AttributeReport, Grid, HeadsReport, MetricSpec, PatchReport, PatchSitesReport,
    SweepReport,
};

/// How a grid's cells are coloured: the colour of each cell, and the palette of the
/// terminal (`None`: plain numbers).
pub struct Paint<'a> {
    pub palette: Option<Palette>,
    pub colour: &'a dyn Fn(f32) -> [u8; 3],
}

/// A `[L][X]` grid of numbers with a header row, one line per layer; with a palette each
/// cell's background is `colour(value)`, its text the number.
fn layer_grid(
    out: &mut dyn Write,
    corner: &str,
    header: &[String],
    values: &[Vec<f32>],
    text: impl Fn(f32) -> String,
    paint: &Paint,
) -> io::Result<()> {
    let rows: Vec<String> = (0..values.len()).map(|l| l.to_string()).collect();
    labelled_grid(out, (corner, &rows), header, values, text, paint)
}

/// The display width of each column of `table` under `head`.
fn column_widths(head: &[&str], table: &[Vec<String>]) -> Vec<usize> {
    (0..head.len())
        .map(|i| {
            (table.iter().map(|r| display_width(&r[i])))
                .chain([display_width(head[i])])
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// [`layer_grid`] with rows named `rows.1` under the corner `rows.0`.
fn labelled_grid(
    out: &mut dyn Write,
    (corner, rows): (&str, &[String]),
    header: &[String],
    values: &[Vec<f32>],
    text: impl Fn(f32) -> String,
    paint: &Paint,
) -> io::Result<()> {
    let mut head: Vec<&str> = vec![corner];
    head.extend(header.iter().map(String::as_str));
    let table: Vec<Vec<String>> = values
        .iter()
        .zip(rows)
        .map(|(r, name)| {
            std::iter::once(name.clone())
                .chain(r.iter().map(|&v| text(v)))
                .collect()
        })
        .collect();
    // Layer numbers to the right, token labels to the left.
    let left = rows.iter().any(|r| r.parse::<usize>().is_err());
    let Some(p) = paint.palette else {
        let mut align = vec![Align::Right; head.len()];
        if left {
            align[0] = Align::Left;
        }
        return columns(out, &head, &align, &table);
    };
    let width = column_widths(&head, &table);
    let pad = |s: &str, w: usize| format!("{}{s}", " ".repeat(w.saturating_sub(display_width(s))));
    let first = |s: &str| match left {
        true => format!(
            "{s}{}",
            " ".repeat(width[0].saturating_sub(display_width(s)))
        ),
        false => pad(s, width[0]),
    };
    let mut line: Vec<String> = head.iter().zip(&width).map(|(h, &w)| pad(h, w)).collect();
    line[0] = first(head[0]);
    writeln!(out, "{}", line.join(" "))?;
    for (row, cells) in table.iter().zip(values) {
        let mut line = first(&row[0]);
        for (i, &v) in cells.iter().enumerate() {
            let c = (paint.colour)(v);
            line.push(' ');
            line.push_str(&format!(
                "{}{}{}{RESET}",
                bg(p, c),
                fg(p, ink(c)),
                pad(&row[i + 1], width[i + 1])
            ));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The layer × (heads, attention bias, MLP) grid of an attribution, with its column names.
fn attribution_grid(r: &AttributeReport) -> (Vec<String>, Vec<Vec<f32>>) {
    let count = |of: fn(&crate::reports::ComponentValue) -> Option<usize>| {
        r.components
            .iter()
            .filter_map(of)
            .max()
            .map_or(0, |n| n + 1)
    };
    let (layers, heads) = (count(|c| c.layer), count(|c| c.head));
    let mut header: Vec<String> = (0..heads).map(|h| format!("H{h}")).collect();
    header.extend(["bias".to_string(), "mlp".to_string()]);
    let values = (0..layers)
        .map(|l| {
            r.components
                .iter()
                .filter(|c| c.layer == Some(l))
                .map(|c| c.value as f32)
                .collect()
        })
        .collect();
    (header, values)
}

/// The terms of an attribution outside the layers (`embed`, `pos_embed`): their names and
/// one row of values.
fn embedding_terms(r: &AttributeReport) -> (Vec<String>, Vec<Vec<f32>>) {
    let terms: Vec<_> = r.components.iter().filter(|c| c.layer.is_none()).collect();
    let names = terms.iter().map(|c| c.name.clone()).collect();
    (names, vec![terms.iter().map(|c| c.value as f32).collect()])
}

/// A layer grid of signed values with `decimals` decimals, coloured on the diverging map
/// scaled to the largest |value|.
fn signed_grid(
    out: &mut dyn Write,
    header: &[String],
    values: &[Vec<f32>],
    palette: Option<Palette>,
    decimals: usize,
) -> io::Result<()> {
    let m = max_abs(values);
    let paint = Paint {
        palette,
        colour: &|v| diverging(v / m),
    };
    layer_grid(
        out,
        "layer",
        header,
        values,
        |v| format!("{v:+.decimals$}"),
        &paint,
    )
}

/// The largest |v|, for scaling signed values to -1..=1 (1 when all are 0).
fn max_abs(values: &[Vec<f32>]) -> f32 {
    let m = crate::render::max_abs(values.iter().flatten());
    if m > 0.0 {
        m
    } else {
        1.0
    }
}

/// The grids a patch report holds: exact values and attribution estimates, each with its
/// name, in that order.
/// The report's grids, each named, as its metric and as the share of the clean run
/// restored.
fn patch_grids(r: &PatchReport) -> Vec<(&'static str, &Grid, &Grid)> {
    let exact = (r.values.as_ref().zip(r.restored.as_ref())).map(|(v, s)| ("exact", v, s));
    let estimates = (r.estimates.as_ref().zip(r.restored_estimates.as_ref()))
        .map(|(v, s)| ("attribution estimate", v, s));
    exact.into_iter().chain(estimates).collect()
}

/// One 2-D slice of a patching grid, along its last two axes.
struct Slice {
    /// The indices of the axes before them (`layer 3 · head 1`); empty for a 2-D grid.
    title: String,
    /// The row axis's name and its labels.
    corner: &'static str,
    rows: Vec<String>,
    cols: Vec<String>,
    values: Vec<Vec<f32>>,
}

/// The labels of axis `axis` of `n` entries: layers and heads by number, positions with
/// their tokens (through `token`).
fn axis_labels(
    axis: &str,
    n: usize,
    r: &PatchReport,
    token: &dyn Fn(&str) -> String,
) -> Vec<String> {
    (0..n)
        .map(|i| match axis {
            "layer" => i.to_string(),
            "head" => format!("H{i}"),
            _ => format!(
                "{i} {}",
                r.tokens.get(i).map_or(String::new(), |t| token(t))
            ),
        })
        .collect()
}

/// `grid` (already normalized) cut into slices along its last two axes.
fn slices(r: &PatchReport, grid: &Grid, token: &dyn Fn(&str) -> String) -> Vec<Slice> {
    let n = r.axes.len();
    if n < 2 {
        return vec![];
    }
    let (row_axis, col_axis) = (r.axes[n - 2], r.axes[n - 1]);
    grid.slices()
        .into_iter()
        .map(|(idx, values)| Slice {
            title: (idx.iter().zip(&r.axes))
                .map(|(i, a)| format!("{a} {i}"))
                .collect::<Vec<_>>()
                .join(" · "),
            corner: row_axis,
            rows: axis_labels(row_axis, grid.shape[n - 2], r, token),
            cols: axis_labels(col_axis, grid.shape[n - 1], r, token),
            values,
        })
        .collect()
}

/// What the report patched, for its first line.
fn patched_what(r: &PatchReport) -> String {
    match &r.path {
        Some(p) if p.to == "logits" => format!(
            "path patching: {}'s write reaching the logits alone (its direct effect), from",
            p.sender
        ),
        Some(p) => format!(
            "path patching: {}'s write reaching only each later head's {} input, from",
            p.sender, p.to
        ),
        None if r.axes.len() > 2 => format!(
            "patching {} one ({}) at a time, from",
            r.site,
            r.axes[1..].join(", ")
        ),
        None => format!("patching {} from", r.site),
    }
}

/// Several sites' reports, one after another.
pub fn patch_sites(
    out: &mut dyn Write,
    r: &PatchSitesReport,
    palette: Option<Palette>,
) -> io::Result<()> {
    for (i, site) in r.sites.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        patch(out, site, palette)?;
    }
    Ok(())
}

pub fn patch(out: &mut dyn Write, r: &PatchReport, palette: Option<Palette>) -> io::Result<()> {
    let texts = (r.clean.as_str(), r.corrupt.as_str());
    let metric = (r.clean_metric, r.corrupt_metric);
    let formula = formula(&r.metric, &|t| quoted(t), "-");
    heading(out, &patched_what(r), texts, &formula, metric)?;
    writeln!(
        out,
        "each cell: (patched - corrupt) / (clean - corrupt): 1 restores the clean answer, 0 changes nothing"
    )?;
    if let Some(note) = undefined_note(r) {
        return writeln!(out, "{note}");
    }
    let paint = Paint {
        palette,
        colour: &|v| diverging(v),
    };
    let grids = patch_grids(r);
    for (name, grid, restored) in &grids {
        writeln!(out)?;
        if grids.len() > 1 || *name != "exact" {
            writeln!(
                out,
                "{name}{}",
                match *name {
                    "exact" => ": one patched run per cell",
                    _ => ": first order, from one clean and one corrupt run and a backward pass",
                }
            )?;
        }
        patch_grid(out, r, (grid, restored), &paint)?;
    }
    if let Some(c) = r.correlation {
        writeln!(out)?;
        writeln!(
            out,
            "Pearson correlation of exact and estimated cells: {c:.4}"
        )?;
    }
    Ok(())
}

/// When clean and corrupt give the same metric, every restored share is 0/0: not a value,
/// and not to be read as a masked cell. What to say instead of the grid.
fn undefined_note(r: &PatchReport) -> Option<String> {
    (!r.shares_defined).then(|| {
        format!(
            "clean and corrupt give the same {} ({:.4}): every cell's share is 0/0, \
             undefined, so no grid is drawn; --json has each patched run's raw value",
            match r.metric.is_logit_diff() {
                true => "logit difference",
                false => "metric",
            },
            r.clean_metric
        )
    })
}

/// One grid of a patch report as the share restored: the direct effect's one value, or
/// each 2-D slice under its title.
fn patch_grid(
    out: &mut dyn Write,
    r: &PatchReport,
    (grid, normal): (&Grid, &Grid),
    paint: &Paint,
) -> io::Result<()> {
    let text = |v: f32| match v.is_nan() {
        true => "-".into(),
        false => fixed3(v),
    };
    if r.axes.is_empty() {
        let v = normal.values.first().copied().unwrap_or(f32::NAN);
        let raw = grid.values.first().copied().unwrap_or(f32::NAN);
        writeln!(out, "patched {raw:.4}: {}", text(v))?;
    }
    for (i, s) in slices(r, normal, &|t| quoted(t)).iter().enumerate() {
        if !s.title.is_empty() {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "{}", s.title)?;
        }
        labelled_grid(out, (s.corner, &s.rows), &s.cols, &s.values, text, paint)?;
    }
    Ok(())
}

/// The first lines of patching and circuits: what was done from the clean text into the
/// corrupt one, what the metric measures and its value on the two runs.
pub(super) fn heading(
    out: &mut dyn Write,
    what: &str,
    (clean, corrupt): (&str, &str),
    formula: &str,
    (clean_value, corrupt_value): (f32, f32),
) -> io::Result<()> {
    writeln!(out, "{what} {} into {}", quoted(clean), quoted(corrupt))?;
    writeln!(
        out,
        "metric: {formula}; clean {clean_value:.4}, corrupt {corrupt_value:.4}"
    )
}

/// What a metric measures, in words: `logit[" and"] - logit[" with"] at the last position`,
/// with `quote` for tokens and `minus` for the sign.
pub(super) fn formula(m: &MetricSpec, quote: &dyn Fn(&str) -> String, minus: &str) -> String {
    described(m, (quote, minus), true)
}

/// [`formula`] without "at the last position" where the metric reads that one position (a
/// heading or a title that says "change in …").
pub(super) fn brief(m: &MetricSpec, quote: &dyn Fn(&str) -> String, minus: &str) -> String {
    described(m, (quote, minus), false)
}

/// The metric in words; where it reads one position, "at the last position" when `say_one`.
fn described(
    m: &MetricSpec,
    (quote, minus): (&dyn Fn(&str) -> String, &str),
    say_one: bool,
) -> String {
    let of = |token: &str| match m.name {
        "logit" => format!("logit[{}]", quote(token)),
        "logprob" => format!("log p({})", quote(token)),
        _ => format!("p({})", quote(token)),
    };
    let what = match (m.name, m.answer.as_slice(), &m.wrong) {
        ("kl", _, _) => format!("KL({} ‖ {})", m.reference, run_name(m.reference)),
        (_, [one], Some(w)) => format!("{} {minus} {}", of(&one.token), of(&w.token)),
        (_, [one], None) => of(&one.token),
        (_, many, _) => {
            let tokens: Vec<String> = many.iter().map(|t| quote(&t.token)).collect();
            let each = match m.name {
                "logit" => "logit[·]",
                "logprob" => "log p(·)",
                _ => "p(·)",
            };
            format!("Σ {each} over {}", tokens.join(" "))
        }
    };
    match (m.positions(), say_one) {
        (1, true) => format!("{what} at the last position"),
        (1, false) => what,
        (n, _) => format!("{what} at the last {n} positions (the answer teacher-forced)"),
    }
}

/// The run a reference is compared with.
fn run_name(reference: &str) -> &'static str {
    match reference {
        "clean" => "patched",
        _ => "ablated",
    }
}

/// Three decimals, without a sign on a value that rounds to zero.
pub(super) fn fixed3(v: f32) -> String {
    match format!("{v:.3}") {
        z if z == "-0.000" => "0.000".into(),
        s => s,
    }
}

pub fn ablate(out: &mut dyn Write, r: &AblateReport) -> io::Result<()> {
    writeln!(out, "ablated ({}): {}", r.mode, r.ablated.join(", "))?;
    let answer = MetricSpec {
        name: "logprob",
        wrong: None,
        ..r.metric.clone()
    };
    let logprob = brief(&answer, &|t| quoted(t), "-");
    writeln!(
        out,
        "{} {:.4} → {:.4} (change {:+.4}); KL(before ‖ after) = {:.4} nats",
        logprob,
        r.logprob_before,
        r.logprob_after,
        r.logprob_after - r.logprob_before,
        r.kl
    )?;
    if r.metric.name != "logprob" || r.metric.wrong.is_some() {
        writeln!(
            out,
            "metric: {}: {:.4} → {:.4} (change {:+.4})",
            formula(&r.metric, &|t| quoted(t), "-"),
            r.metric_before,
            r.metric_after,
            r.metric_after - r.metric_before
        )?;
    }
    writeln!(out)?;
    writeln!(out, "before")?;
    predictions(out, &r.before)?;
    writeln!(out)?;
    writeln!(out, "after")?;
    predictions(out, &r.after)
}

pub fn sweep(out: &mut dyn Write, r: &SweepReport, palette: Option<Palette>) -> io::Result<()> {
    writeln!(
        out,
        "every head {}-ablated alone: change in {} (before: {:.4})",
        r.mode,
        brief(&r.metric, &|t| quoted(t), "-"),
        r.metric_before
    )?;
    writeln!(out)?;
    let heads = r.values.first().map_or(0, Vec::len);
    let header: Vec<String> = (0..heads).map(|h| format!("H{h}")).collect();
    let values: Vec<Vec<f32>> = r
        .values
        .iter()
        .map(|row| row.iter().map(|&v| v as f32).collect())
        .collect();
    signed_grid(out, &header, &values, palette, 4)
}

pub fn attribute(
    out: &mut dyn Write,
    r: &AttributeReport,
    palette: Option<Palette>,
) -> io::Result<()> {
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
    let (header, values) = attribution_grid(r);
    signed_grid(out, &header, &values, palette, 3)?;
    for c in r.components.iter().filter(|c| c.layer.is_none()) {
        writeln!(out, "{} {:+.4}", c.name, c.value)?;
    }
    Ok(())
}

pub fn heads(out: &mut dyn Write, r: &HeadsReport, palette: Option<Palette>) -> io::Result<()> {
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
        let paint = Paint {
            palette,
            colour: &|v| blues(v),
        };
        layer_grid(out, "layer", &header, grid, |v| format!("{v:.3}"), &paint)?;
    }
    Ok(())
}

fn layer_labels(n: usize) -> Vec<String> {
    (0..n).map(|l| format!("L{l}")).collect()
}

/// A patching panel's title: what was patched, which grid (exact or estimate, when both are
/// drawn) and which slice. Side by side, a panel is as narrow as its grid: short titles.
fn panel_title(what: &str, grid: &str, grids: usize, slice: &str) -> String {
    let base = match (grid, grids) {
        ("exact", 1) if slice.is_empty() => format!("{what} patched from clean into corrupt"),
        ("exact", 1) => what.to_string(),
        ("exact", _) => format!("{what}: exact"),
        (_, 1) if slice.is_empty() => format!("{what} by attribution patching"),
        _ => format!("{what}: estimate"),
    };
    match slice.is_empty() {
        true => base,
        false => format!("{base} · {slice}"),
    }
}

pub fn patch_svg(out: &mut dyn Write, r: &PatchReport, style: Style) -> io::Result<()> {
    let grids_of: Vec<(&str, &Grid)> = (patch_grids(r).into_iter())
        .map(|(name, _, restored)| (name, restored))
        .collect();
    // ±1 (the clean run restored, or its opposite) unless a share overshoots: then the
    // scale reaches the largest |share|, so no cell is clipped to the bar's end.
    let m = (grids_of.iter())
        .flat_map(|(_, g)| g.values.iter().filter(|v| v.is_finite()))
        .fold(1.0f32, |m, v| m.max(v.abs()));
    let paint = style.paint([-m, m], move |v| diverging(v / m));
    let what = match &r.path {
        Some(p) => format!("{} → {}", p.sender, p.to),
        None => r.site.clone(),
    };
    let mut panels: Vec<GridPanel> = Vec::new();
    let mut slices_of = Vec::new();
    for (name, grid) in &grids_of {
        slices_of.push((*name, slices(r, grid, &|t| label(t))));
    }
    let per_row = match slices_of.first().map_or(1, |(_, s)| s.len()) {
        0 | 1 => usize::MAX,
        n => n.min(6),
    };
    for (name, slices) in &slices_of {
        for s in slices {
            panels.push(GridPanel {
                title: panel_title(&what, name, grids_of.len(), &s.title),
                row_labels: match s.corner {
                    "layer" => layer_labels(s.rows.len()),
                    _ => s.rows.clone(),
                },
                col_labels: s.cols.clone(),
                values: &s.values,
                colour: &paint,
                range: [-m, m],
            });
        }
    }
    grids_wrapped(
        out,
        &style.title(format!(
            "activation patching · {}, restored share",
            brief(&r.metric, &|t| label(t), "−")
        )),
        &format!(
            "clean “{}” · corrupt “{}”{}",
            sentence(&r.clean),
            sentence(&r.corrupt),
            match undefined_note(r) {
                Some(_) => " · the two agree, so every share is 0/0: undefined, not masked",
                None => "",
            }
        ),
        &panels,
        per_row,
    )
}

pub fn sweep_svg(out: &mut dyn Write, r: &SweepReport, style: Style) -> io::Result<()> {
    let values: Vec<Vec<f32>> = r
        .values
        .iter()
        .map(|row| row.iter().map(|&v| v as f32).collect())
        .collect();
    let m = max_abs(&values);
    let heads = values.first().map_or(0, Vec::len);
    let paint = style.paint([-m, m], |v| diverging(v / m));
    let panel = GridPanel {
        title: format!("each head {}-ablated", r.mode),
        row_labels: layer_labels(values.len()),
        col_labels: (0..heads).map(|h| format!("H{h}")).collect(),
        values: &values,
        colour: &paint,
        range: [-m, m],
    };
    grids(
        out,
        &style.title(format!(
            "ablation sweep · change in {}",
            brief(&r.metric, &|t| label(t), "−")
        )),
        &format!(
            "“{}”",
            sentence(r.header.text.as_deref().unwrap_or_default())
        ),
        &[panel],
    )
}

pub fn attribute_svg(out: &mut dyn Write, r: &AttributeReport, style: Style) -> io::Result<()> {
    let (cols, values) = attribution_grid(r);
    let (terms, embeddings) = embedding_terms(r);
    let m = max_abs(&values).max(max_abs(&embeddings));
    let paint = style.paint([-m, m], |v| diverging(v / m));
    let panel = GridPanel {
        title: "direct logit attribution".into(),
        row_labels: layer_labels(values.len()),
        col_labels: cols,
        values: &values,
        colour: &paint,
        range: [-m, m],
    };
    let embed = GridPanel {
        title: "embeddings".into(),
        row_labels: vec![String::new()],
        col_labels: terms,
        values: &embeddings,
        colour: &paint,
        range: [-m, m],
    };
    let what = match &r.wrong {
        Some(w) => format!(
            "logit[{}] − logit[{}]",
            label(&r.answer.token),
            label(&w.token)
        ),
        None => format!("logit[{}]", label(&r.answer.token)),
    };
    grids(
        out,
        &style.title(format!(
            "{what} at position {} = {:.4}",
            r.position, r.logit
        )),
        &format!(
            "“{}”",
            sentence(r.header.text.as_deref().unwrap_or_default())
        ),
        &[panel, embed],
    )
}

pub fn heads_svg(out: &mut dyn Write, r: &HeadsReport, style: Style) -> io::Result<()> {
    let paint = style.paint([0.0, 1.0], blues);
    let s = &r.scores;
    let kinds = [
        ("previous token", &s.previous_token),
        ("first token", &s.first_token),
        ("induction", &s.induction),
        ("duplicate token", &s.duplicate_token),
    ];
    let panels: Vec<GridPanel> = kinds
        .iter()
        .map(|(name, grid)| GridPanel {
            title: name.to_string(),
            row_labels: layer_labels(grid.len()),
            col_labels: (0..grid.first().map_or(0, Vec::len))
                .map(|h| format!("H{h}"))
                .collect(),
            values: grid,
            colour: &paint,
            range: [0.0, 1.0],
        })
        .collect();
    grids(
        out,
        &style.title("head scores".into()),
        &format!("a sequence of {} tokens, repeated twice", r.n),
        &panels,
    )
}
