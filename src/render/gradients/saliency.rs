//! `saliency`: each token's score as a table with bars, the text coloured by score in a
//! colour terminal, and SVG figures (a strip of tokens, or the matrix of a generation).

use std::io::{self, Write};

use crate::render::attention::heatmap::{bg, fg, RESET};
use crate::render::color::{blues, diverging, ink};
use crate::render::svg::{grids, GridPanel};
use crate::render::table::{columns, quoted, Align};
use crate::render::{label, max_abs, sentence, terminal_text, Palette};
use crate::reports::{SaliencyMatrixReport, SaliencyMethod, SaliencyReport};

/// Whether the method's scores have a sign, as the report says.
fn signed(m: &SaliencyMethod) -> bool {
    m.signed
}

/// The colour of a score among scores whose largest |value| is `m`: diverging for signed
/// methods, blues otherwise; white for no score.
pub fn colour(m: &SaliencyMethod, scale: f32) -> impl Fn(f32) -> [u8; 3] + '_ {
    let scale = if scale > 0.0 { scale } else { 1.0 };
    move |v: f32| match (v.is_nan(), signed(m)) {
        (true, _) => [255; 3],
        (false, true) => diverging(v / scale),
        (false, false) => blues(v / scale),
    }
}

/// The values at the ends of [`colour`]'s map: ±scale for signed scores, else 0 to scale.
fn range(m: &SaliencyMethod, scale: f32) -> [f32; 2] {
    let scale = if scale > 0.0 { scale } else { 1.0 };
    match signed(m) {
        true => [-scale, scale],
        false => [0.0, scale],
    }
}

/// What is explained: `logit[" Paris"]`, or its difference with the wrong token.
/// What the scores explain, `logit[" and"]` (`logit[␣and]` with `quote` [`label`], as
/// every figure's title spells a token).
fn explained(
    m: &SaliencyMethod,
    (answer, wrong): (&str, Option<&str>),
    quote: &dyn Fn(&str) -> String,
) -> String {
    let of = |t: &str| format!("{}[{}]", m.quantity, quote(t));
    match wrong {
        Some(w) => format!("{} − {}", of(answer), of(w)),
        None => of(answer),
    }
}

/// A bar of `v` on a scale whose largest |value| is `m`: `WIDTH` cells, or for signed
/// values `WIDTH` on each side of a centre line.
fn bar(v: f32, m: f32, signed: bool) -> String {
    const WIDTH: usize = 12;
    let n = if m > 0.0 {
        ((v.abs() / m) * WIDTH as f32).round() as usize
    } else {
        0
    }
    .min(WIDTH);
    match (signed, v < 0.0) {
        (false, _) => "█".repeat(n),
        (true, true) => format!("{}{}│", " ".repeat(WIDTH - n), "█".repeat(n)),
        (true, false) => format!("{}│{}", " ".repeat(WIDTH), "█".repeat(n)),
    }
}

fn method_line(m: &SaliencyMethod) -> String {
    match (m.steps, m.baseline) {
        (Some(steps), Some(baseline)) => {
            format!("{} ({steps} steps, {baseline} baseline)", m.method)
        }
        _ => m.method.to_string(),
    }
}

pub fn scores(out: &mut dyn Write, r: &SaliencyReport, palette: Option<Palette>) -> io::Result<()> {
    if r.method.explains_answer {
        let wrong = r.wrong.as_ref().map(|w| w.token.as_str());
        let what = explained(&r.method, (&r.answer.token, wrong), &|t| quoted(t));
        writeln!(
            out,
            "saliency of {what} = {:.4} at position {}, by {}",
            r.metric,
            r.position,
            method_line(&r.method)
        )?;
    } else {
        writeln!(
            out,
            "attention rollout into position {}: how much of each token reaches it through \
             the attention, averaged over heads (no answer explained; the top prediction \
             there is {})",
            r.position,
            quoted(&r.answer.token)
        )?;
    }
    if let (Some(delta), Some(base)) = (r.delta, r.baseline_metric) {
        writeln!(
            out,
            "the scores add up to {:.4}; the metric changed by {:.4} from the baseline (delta {delta:+.4})",
            r.metric - base + delta,
            r.metric - base
        )?;
    }
    writeln!(out)?;
    let m = max_abs(&r.scores);
    let rows: Vec<Vec<String>> = (r.tokens.iter().zip(&r.scores).enumerate())
        .map(|(i, (t, &v))| {
            vec![
                i.to_string(),
                quoted(t),
                format!("{v:.4}"),
                bar(v, m, signed(&r.method)),
            ]
        })
        .collect();
    let align = [Align::Right, Align::Left, Align::Right, Align::Left];
    columns(out, &["pos", "token", "score", ""], &align, &rows)?;
    if let Some(p) = palette {
        writeln!(out)?;
        let paint = colour(&r.method, m);
        writeln!(out, "{}", coloured(p, &r.tokens, &r.scores, &paint))?;
    }
    Ok(())
}

/// The tokens as running text, each on its score's colour.
fn coloured(
    p: Palette,
    tokens: &[String],
    scores: &[f32],
    paint: &dyn Fn(f32) -> [u8; 3],
) -> String {
    tokens
        .iter()
        .zip(scores)
        .map(|(t, &v)| {
            let c = paint(v);
            format!(
                "{}{}{}{RESET}",
                bg(p, c),
                fg(p, ink(c)),
                terminal_text(t, false)
            )
        })
        .collect()
}

pub fn matrix(
    out: &mut dyn Write,
    r: &SaliencyMatrixReport,
    palette: Option<Palette>,
) -> io::Result<()> {
    let tokens = crate::render::counted(r.answers.len(), "token");
    match r.method.explains_answer {
        true => writeln!(
            out,
            "saliency of each of {tokens} after the text, by {}: the {} of each token at the position before it",
            method_line(&r.method),
            r.method.quantity
        )?,
        false => writeln!(
            out,
            "attention rollout into the position before each of {tokens} after the text: how much of each earlier token reaches it through the attention"
        )?,
    }
    writeln!(out)?;
    let all: Vec<f32> = r.matrix.iter().flatten().flatten().copied().collect();
    let m = max_abs(&all);
    let paint = colour(&r.method, m);
    let mut rows = Vec::new();
    for (i, (a, row)) in r.answers.iter().zip(&r.matrix).enumerate() {
        let known: Vec<(usize, f32)> = row
            .iter()
            .enumerate()
            .filter_map(|(j, v)| v.map(|v| (j, v)))
            .collect();
        let mut order = known.clone();
        order.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        let top: Vec<String> = (order.iter().take(3))
            .map(|&(j, v)| format!("{} {v:+.3}", quoted(&r.tokens[j])))
            .collect();
        let mut cells = vec![
            (r.prompt_tokens + i).to_string(),
            quoted(&a.token),
            format!("{:.4}", r.metrics[i]),
            top.join(", "),
        ];
        if let Some(p) = palette {
            let (tokens, scores): (Vec<String>, Vec<f32>) =
                known.iter().map(|&(j, v)| (r.tokens[j].clone(), v)).unzip();
            cells.push(coloured(p, &tokens, &scores, &paint));
        }
        rows.push(cells);
    }
    let mut head = vec!["pos", "token", r.method.quantity, "largest shares"];
    let mut align = vec![Align::Right, Align::Left, Align::Right, Align::Left];
    if palette.is_some() {
        head.push("context");
        align.push(Align::Left);
    }
    columns(out, &head, &align, &rows)
}

fn token_labels(tokens: &[String]) -> Vec<String> {
    (tokens.iter().enumerate())
        .map(|(i, t)| format!("{i} {}", label(t)))
        .collect()
}

/// `--svg` of one prediction: the tokens as a strip of cells coloured by score.
pub fn strip_svg(out: &mut dyn Write, r: &SaliencyReport) -> io::Result<()> {
    let values = vec![r.scores.clone()];
    let paint = colour(&r.method, max_abs(&r.scores));
    let panel = GridPanel {
        title: method_line(&r.method),
        row_labels: vec!["score".into()],
        col_labels: token_labels(&r.tokens),
        values: &values,
        colour: &paint,
        range: range(&r.method, max_abs(&r.scores)),
    };
    let wrong = r.wrong.as_ref().map(|w| w.token.as_str());
    let title = match r.method.explains_answer {
        true => {
            let what = explained(&r.method, (&r.answer.token, wrong), &|t| label(t));
            format!("saliency · {what} at position {}", r.position)
        }
        false => format!("attention rollout · into position {}", r.position),
    };
    grids(
        out,
        &title,
        &format!(
            "“{}”",
            sentence(r.header.text.as_deref().unwrap_or_default())
        ),
        &[panel],
    )
}

/// `--svg` of a generation: rows the explained tokens, columns every token.
pub fn matrix_svg(out: &mut dyn Write, r: &SaliencyMatrixReport) -> io::Result<()> {
    let values: Vec<Vec<f32>> = (r.matrix.iter())
        .map(|row| row.iter().map(|v| v.unwrap_or(f32::NAN)).collect())
        .collect();
    let all: Vec<f32> = r.matrix.iter().flatten().flatten().copied().collect();
    let paint = colour(&r.method, max_abs(&all));
    let range = range(&r.method, max_abs(&all));
    let panel = GridPanel {
        title: method_line(&r.method),
        row_labels: (r.answers.iter().enumerate())
            .map(|(i, a)| format!("{} {}", r.prompt_tokens + i, label(&a.token)))
            .collect(),
        col_labels: token_labels(&r.tokens),
        values: &values,
        colour: &paint,
        range,
    };
    grids(
        out,
        &match r.method.explains_answer {
            true => format!(
                "saliency · {} of each token after the text",
                r.method.quantity
            ),
            false => {
                "attention rollout · into the position before each token after the text".to_string()
            }
        },
        &format!(
            "“{}”",
            sentence(r.header.text.as_deref().unwrap_or_default())
        ),
        &[panel],
    )
}
