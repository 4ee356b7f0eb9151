//! `report -o FILE.html`: one self-contained page (no network, no external files). Tables
//! are written here, escaped; the head view and model view are drawn by the page's own
//! script from a JSON block of the attention maps (lower triangles, rounded to
//! [`DECIMALS`]). User text reaches the script only inside that JSON, with `<`, `>` and `&`
//! escaped, and the script puts it in the page through `textContent`, never as markup.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::color::{blues, hex, BLUES};
use super::{depth_label, escape, label};
use crate::report::PageReport;

/// Decimals kept of each attention probability in the page.
pub const DECIMALS: usize = 4;

const CSS: &str = include_str!("assets/report.css");
const SCRIPT: &str = include_str!("assets/report.js");

pub fn report(out: &mut dyn Write, r: &PageReport) -> io::Result<()> {
    let text = r.header.text.as_deref().unwrap_or_default();
    let title = {
        let short: String = text.chars().take(60).collect();
        escape(&label(&short))
    };
    write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>gpt2-inspect: {title}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>gpt2-inspect report</h1>
<p>model <code>{model}</code> · {t} tokens · {l} layers × {h} heads</p>
<pre class="text">{text}</pre>
<p class="note">Attention probabilities are rounded to {DECIMALS} decimals in this page (sums of a row may be off by a few 1e-4); token probabilities are shown to 4 significant decimals. Spaces show as ␣, newlines as ↵.</p>
</header>
"#,
        model = escape(&r.header.model),
        t = r.tokens.len(),
        l = r.n_layer,
        h = r.n_head,
        text = escape(text),
    )?;
    out.write_all(tokens(r).as_bytes())?;
    write!(
        out,
        r#"<section id="head-section">
<h2>Head view</h2>
<p>Lines join each query token (left) to the keys it attends to (right), darker for more attention. Hover a token to see only its lines, or a cell of the matrix to read its value; click a map in the model view below to show that head.</p>
<div class="controls"><label>layer <select id="layer"></select></label> <label>head <select id="head"></select></label> <span id="hover-info"></span></div>
<div class="views"><svg id="head-view" role="img" aria-label="head view"></svg><div><canvas id="matrix" width="360" height="360" aria-label="attention matrix"></canvas><div class="caption">rows: queries · columns: keys · hatched: masked (future)</div><div id="scale"></div><div class="scale-ends"><span>0</span><span>1</span></div></div></div>
</section>
<section id="model-section">
<h2>Model view</h2>
<p>Every layer (rows) × head (columns). Click a map to enlarge it in the head view.</p>
<div id="model-view"></div>
</section>
"#
    )?;
    out.write_all(lens(r).as_bytes())?;
    out.write_all(next(r).as_bytes())?;
    write!(
        out,
        "<footer>Made by gpt2-inspect {}. Works offline: everything is in this file.</footer>\n\
         <script type=\"application/json\" id=\"page-data\">",
        env!("CARGO_PKG_VERSION")
    )?;
    out.write_all(script_safe(&data(r)).as_bytes())?;
    write!(
        out,
        "</script>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
}

/// The token chips: label, id, byte span.
fn tokens(r: &PageReport) -> String {
    let mut s = String::from("<section id=\"tokens\">\n<h2>Tokens</h2>\n<ol class=\"tokens\">\n");
    for (i, t) in r.tokens.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<li title="position {i} · BPE symbol {sym} · bytes {a}..{b}"><span class="tok">{text}</span><span class="id">{id}</span></li>"#,
            sym = escape(&label(&t.token)),
            a = t.start,
            b = t.end,
            text = escape(&label(&t.text)),
            id = t.id
        );
    }
    s.push_str("</ol>\n</section>\n");
    s
}

/// Probability as text and as a bar of the Blues scale.
fn prob_cell(p: f32) -> String {
    format!(
        r#"<td class="prob"><span class="bar" style="width:{w:.1}%;background:{c}"></span>{p:.4}</td>"#,
        w = (p * 100.0).clamp(0.0, 100.0),
        c = hex(blues(p))
    )
}

fn lens(r: &PageReport) -> String {
    let l = &r.lens;
    let k = l.depths.first().map_or(0, |row| row.predictions.len());
    let mut s = format!(
        "<section id=\"lens\">\n<h2>Logit lens</h2>\n<p>What the residual stream at the last token (position {}) predicts after each block, read through ln_f and the unembedding. The last row is the model's output. The column “{}” is the probability each depth gives the model's final top token.</p>\n<table>\n<thead><tr><th>depth</th><th>{}</th>",
        l.position,
        escape(&label(&l.final_token)),
        escape(&label(&l.final_token)),
    );
    for rank in 1..=k {
        let _ = write!(s, "<th>top {rank}</th>");
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for row in &l.depths {
        let _ = write!(
            s,
            "<tr><td>{}</td>{}",
            depth_label(row.depth, false),
            prob_cell(row.final_token_prob)
        );
        for p in &row.predictions {
            let _ = write!(
                s,
                r#"<td><span class="tok">{}</span> {:.4}</td>"#,
                escape(&label(&p.token)),
                p.prob
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
    s
}

fn next(r: &PageReport) -> String {
    let mut s = String::from(
        "<section id=\"next\">\n<h2>Next token</h2>\n<table>\n<thead><tr><th>rank</th><th>token</th><th>id</th><th>probability</th><th>logit</th></tr></thead>\n<tbody>\n",
    );
    if let Some(last) = r.lens.depths.last() {
        for p in &last.predictions {
            let _ = writeln!(
                s,
                r#"<tr><td>{}</td><td><span class="tok">{}</span></td><td>{}</td>{}<td>{:.4}</td></tr>"#,
                p.rank,
                escape(&label(&p.token)),
                p.id,
                prob_cell(p.prob),
                p.logit
            );
        }
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
    s
}

/// `0.1200` → `0.12`, `0.0000` → `0`: the shortest text of a rounded probability. JSON
/// has no NaN or infinity: those become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`,
/// which the page shows as not a number.
fn number(v: f32) -> String {
    if !v.is_finite() {
        return format!("\"{}\"", non_finite(v));
    }
    let s = format!("{v:.DECIMALS$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "" | "-0" => "0".into(),
        s => s.into(),
    }
}

fn non_finite(v: f32) -> &'static str {
    match v {
        v if v.is_nan() => "NaN",
        v if v > 0.0 => "Infinity",
        _ => "-Infinity",
    }
}

/// The script's data: labels, ids, the Blues stops and each head's lower triangle.
fn data(r: &PageReport) -> String {
    let labels: Vec<String> = r.tokens.iter().map(|t| label(&t.text)).collect();
    let ids: Vec<u32> = r.tokens.iter().map(|t| t.id).collect();
    let mut s = format!(
        r#"{{"labels":{},"ids":{},"layers":{},"heads":{},"blues":{},"attn":["#,
        serde_json::to_string(&labels).unwrap_or_default(),
        serde_json::to_string(&ids).unwrap_or_default(),
        r.n_layer,
        r.n_head,
        serde_json::to_string(&BLUES).unwrap_or_default(),
    );
    for (l, heads) in r.attention.iter().enumerate() {
        s.push_str(if l > 0 { ",[" } else { "[" });
        for (h, rows) in heads.iter().enumerate() {
            s.push_str(if h > 0 { ",[" } else { "[" });
            for (i, row) in rows.iter().enumerate() {
                s.push_str(if i > 0 { ",[" } else { "[" });
                let cells: Vec<String> = row[..=i].iter().map(|&w| number(w)).collect();
                s.push_str(&cells.join(","));
                s.push(']');
            }
            s.push(']');
        }
        s.push(']');
    }
    s.push_str("]}");
    s
}

/// JSON that cannot end its `<script>` element or open a comment: `<`, `>` and `&` only
/// occur inside JSON strings, where `\u003c` and friends mean the same characters.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(0.12), "0.12");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.123456), "0.1235");
        assert_eq!(number(0.00001), "0");
        assert_eq!(number(f32::NAN), "\"NaN\"");
        assert_eq!(number(f32::NEG_INFINITY), "\"-Infinity\"");
    }

    #[test]
    fn script_data_cannot_close_the_script() {
        let s = script_safe(r#"{"a":"</script><!--&"}"#);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "</script><!--&");
    }
}
