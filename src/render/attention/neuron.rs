//! The neuron view in a terminal (BertViz's third view): for one query of one head, q and
//! each key's k as strips of coloured cells (one per element of d_head, blue negative, red
//! positive: RdBu_r, as the circuit commands), their product q × k, then q · k, the scaled score and the softmax weight.
//! Numbers instead of strips with `--annot`, or where there is no colour.

use std::io::{self, Write};

use crate::render::attention::heatmap::{bg, RESET};
use crate::render::color::diverging;
use crate::render::table::quoted;
use crate::render::{max_abs, Palette};
use crate::reports::{AttentionReport, NeuronView};

pub fn neuron(
    out: &mut dyn Write,
    r: &AttentionReport,
    n: &NeuronView,
    palette: Option<Palette>,
    annot: bool,
) -> io::Result<()> {
    let d = n.q.len();
    let token = |j: usize| format!("{j} {}", quoted(&r.tokens[j]));
    writeln!(
        out,
        "layer {} head {}  neuron view of query {} (d_head {d}): score = q · k / √{d}, weight = softmax over keys 0..={}",
        r.layer.unwrap_or(0),
        r.head.unwrap_or(0),
        token(n.query),
        n.query
    )?;
    // One scale for q and the keys, one for the products: strips compare within each.
    let kq_scale = max_abs(n.q.iter().chain(n.k.iter().flatten()));
    let visible = n.query + 1;
    let qk_scale = max_abs(n.qk[..visible].iter().flatten());
    if palette.is_some() || annot {
        writeln!(
            out,
            "strips: one cell per element; blue < 0 < red, k and q scaled to ±{kq_scale:.3}, q×k to ±{qk_scale:.3}"
        )?;
    }
    let strip = |out: &mut dyn Write, name: &str, v: &[f32], scale: f32| {
        strip(out, name, v, scale, palette, annot)
    };
    strip(out, "q", &n.q, kq_scale)?;
    writeln!(out)?;
    keys(out, n, &token, &|out, j| {
        strip(out, "k", &n.k[j], kq_scale)?;
        strip(out, "q×k", &n.qk[j], qk_scale)
    })
}

/// A row per key: q · k, the score and the weight (or why it is masked), each followed by
/// what `strips` draws of it.
fn keys(
    out: &mut dyn Write,
    n: &NeuronView,
    token: &dyn Fn(usize) -> String,
    strips: &dyn Fn(&mut dyn Write, usize) -> io::Result<()>,
) -> io::Result<()> {
    let width = (0..n.k.len())
        .map(|j| token(j).chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>9}  {:>7}",
        "key", "q · k", "score", "weight"
    )?;
    for j in 0..n.k.len() {
        match (n.dot[j], n.scores[j]) {
            (Some(dot), Some(score)) => writeln!(
                out,
                "{:<width$}  {dot:>9.4}  {score:>9.4}  {:>7.4}",
                token(j),
                n.weights[j]
            )?,
            _ => {
                writeln!(
                    out,
                    "{:<width$}  masked: after the query (weight 0)",
                    token(j)
                )?;
                continue;
            }
        }
        strips(out, j)?;
    }
    Ok(())
}

/// One vector as a strip of colour cells (blue < 0 < red, ±`scale`) with a palette, and as
/// numbers with `annot`.
fn strip(
    out: &mut dyn Write,
    name: &str,
    v: &[f32],
    scale: f32,
    palette: Option<Palette>,
    annot: bool,
) -> io::Result<()> {
    if let Some(p) = palette {
        write!(out, "    {name:<4} ")?;
        for &x in v {
            let c = diverging(if scale > 0.0 { x / scale } else { 0.0 });
            write!(out, "{} {RESET}", bg(p, c))?;
        }
        writeln!(out)?;
    }
    if annot {
        let nums: Vec<String> = v.iter().map(|x| format!("{x:+.3}")).collect();
        writeln!(out, "    {name:<4} {}", nums.join(" "))?;
    }
    Ok(())
}
