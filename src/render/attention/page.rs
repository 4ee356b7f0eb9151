//! `report -o FILE.html`: one self-contained page (no network, no external files). Tables
//! are written here, escaped; the head view, model view and neuron view are drawn by the
//! page's own script from a JSON block holding the attention maps (lower triangles,
//! rounded to [`DECIMALS`] decimals, as 16-bit integers in base64) and each head's q and k
//! (32-bit floats in base64). User text reaches the script only inside that JSON, with
//! `<`, `>` and `&` escaped, and the script puts it in the page through `textContent`,
//! never as markup.

use std::fmt::Write as _;
use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::render::color::{blues, hex, ink, BLUES, RDBU};
use crate::render::gradients::saliency::colour as saliency_colour;
use crate::render::{depth_label, escape, label, max_abs};
use crate::reports::{Matrix, PageReport};

/// Decimals kept of each attention probability in the page.
pub const DECIMALS: usize = 4;

const CSS: &str = include_str!("../assets/report.css");
const SCRIPT: &str = include_str!("../assets/report.js");

// Over 60 lines because it is the page's HTML template, in document order: its lines are
// markup, the sections' contents come from the functions below.
pub fn page(out: &mut dyn Write, r: &PageReport) -> io::Result<()> {
    let text = r.header.text.as_deref().unwrap_or_default();
    let title = {
        let short: String = text.chars().take(60).collect();
        escape(&label(&short))
    };
    write!(
        out,
        r#"{head}<body>
<header>
<h1>gpt2-inspect report</h1>
<p>model <code>{model}</code> · {t} · {l} layers × {h} heads</p>
<pre class="text">{text}</pre>{cut}
<p class="note">Attention probabilities are rounded to {DECIMALS} decimals in this page (sums of a row may be off by a few 1e-4); q and k are kept as 32-bit floats, and the neuron view's q × k, q · k and q·k/√d are computed from them; token probabilities are shown to 4 decimals. Spaces show as ␣, newlines as ↵.</p>
</header>
"#,
        head = head(
            &title,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:",
            CSS
        ),
        model = escape(&r.header.model),
        t = crate::render::counted(r.tokens.len(), "token"),
        l = r.n_layer,
        h = r.n_head,
        text = escape(text),
        cut = match r.header.truncated {
            Some(c) => format!(
                "\n<p class=\"cut\">The page covers the text above: --truncate {} cut {} from the {} of the input.</p>",
                c.side,
                crate::render::counted(c.cut_tokens, "token"),
                if c.side == "left" { "start" } else { "end" },
            ),
            None => String::new(),
        },
    )?;
    out.write_all(tokens(r).as_bytes())?;
    write!(
        out,
        r#"<section id="head-section">
<h2>Head view</h2>
<p>Lines join each query token (left) to the keys it attends to (right), darker for more attention. Hover a token to see only its lines, or a cell of the matrix to read its value and light up its line; click a map in the model view below to show that head; overlay more heads of the layer, each in its colour, with the numbered buttons.</p>
<div class="controls"><label>layer <select id="layer"></select></label> <label>head <select id="head"></select></label> <span id="overlay" role="group" aria-label="heads overlaid in the head view">overlay </span> <span id="hover-info"></span></div>
<div class="views"><svg id="head-view" role="img" aria-label="head view"></svg><div><canvas id="matrix" width="360" height="360" aria-label="attention matrix"></canvas><div class="caption">rows: queries · columns: keys · hatched: masked (future)</div><div id="scale"></div><div class="scale-ends"><span>0</span><span>1</span></div></div></div>
</section>
<section id="neuron-section">
<h2>Neuron view</h2>
<p>How one query attends in the head chosen above, element by element: its query vector q, each key's vector k, their product q × k, the sum q · k, the score q · k / √d_head and the softmax weight, one row per key. Red is positive, blue negative (q and k share a scale; q × k has its own). Hover a cell to read it.</p>
{neuron}</section>
<section id="model-section">
<h2>Model view</h2>
<p>Every layer (rows) × head (columns). Click a map to enlarge it in the head view.</p>
<div id="model-view"></div>
</section>
"#,
        neuron = neuron_view(r),
    )?;
    out.write_all(lens(r).as_bytes())?;
    out.write_all(next(r).as_bytes())?;
    out.write_all(saliency(r).as_bytes())?;
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

/// The neuron view's controls and canvas, or why this page has none.
fn neuron_view(r: &PageReport) -> String {
    if r.neuron.is_some() {
        return r#"<div class="controls"><label>query <select id="neuron-query"></select></label> <span id="neuron-info"></span></div>
<div class="scroll"><canvas id="neuron-view" aria-label="neuron view"></canvas></div>
"#
        .into();
    }
    format!(
        r#"<p class="note" id="neuron-missing">This page leaves out q and k ({:.0} MB for {} tokens); <code>report --neuron-view always</code> puts them in, and <code>gpt2-inspect attention TEXT --layer L --head H --query Q</code> shows one query in the terminal.</p>
"#,
        r.neuron_bytes as f64 * 4.0 / 3.0 / 1e6,
        r.tokens.len()
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
            depth_label(row.depth),
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

/// The tokens coloured by their share in the predicted token, or why the page has none.
fn saliency(r: &PageReport) -> String {
    let mut s = String::from("<section id=\"saliency\">\n");
    let Some(sal) = &r.saliency else {
        s.push_str("<h2>Saliency</h2>\n<p class=\"note\" id=\"saliency-missing\">Gradients are taken in f32 on the CPU only: run <code>report</code> without <code>--dtype</code> and <code>--device</code> for this section.</p>\n</section>\n");
        return s;
    };
    let answer = escape(&label(&sal.answer.token));
    let _ = write!(
        s,
        "<h2>Which tokens made it predict <span class=\"tok\">{answer}</span></h2>\n<p>Each token coloured by input × gradient (Captum's <code>InputXGradient</code> summed over d_model): its token embedding times the gradient of the logit of <span class=\"tok\">{answer}</span>, the top next token, with respect to it. Red raised the logit, blue lowered it. Hover a token for its score; <code>gpt2-inspect saliency TEXT --method integrated-gradients</code> gives scores that add up to the logit's change from a baseline.</p>\n<ol class=\"tokens saliency\">\n",
    );
    let paint = saliency_colour(&sal.method, max_abs(&sal.scores));
    for (i, (t, v)) in r.tokens.iter().zip(&sal.scores).enumerate() {
        let c = paint(*v);
        let _ = writeln!(
            s,
            r#"<li title="position {i} · score {v:.4}" style="background:{bg};color:{fg}"><span class="tok">{text}</span></li>"#,
            bg = hex(c),
            fg = hex(ink(c)),
            text = escape(&label(&t.text)),
        );
    }
    s.push_str("</ol>\n</section>\n");
    s
}

/// A self-contained page's `<!DOCTYPE>` through `</head>`: `title` (escaped HTML) after
/// "gpt2-inspect: ", the Content-Security-Policy `csp` and the page's whole stylesheet.
pub(crate) fn head(title: &str, csp: &str, css: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>gpt2-inspect: {title}</title>
<style>{css}</style>
</head>
"#
    )
}

/// An attention probability as stored in the page: `round(p × 10⁴)`, so the page holds
/// exactly the value rounded to [`DECIMALS`] decimals; [`NOT_A_NUMBER`] where the model
/// computed none.
pub fn quantize(p: f32) -> u16 {
    if p.is_finite() {
        (f64::from(p).clamp(0.0, 1.0) * SCALE).round() as u16
    } else {
        NOT_A_NUMBER
    }
}

/// `10^DECIMALS`: stored value per unit of probability.
const SCALE: f64 = 10u32.pow(DECIMALS as u32) as f64;
/// The stored value of a probability that is NaN or infinite.
pub const NOT_A_NUMBER: u16 = u16::MAX;

/// The script's data: labels, ids, the colour stops, and in base64 each head's lower
/// triangle of probabilities (`u16` little-endian, [`quantize`]d; layer, head, query, key
/// ≤ query) and each head's q and k (`f32` little-endian, `[L][H][T][d_head]`), which the
/// neuron view multiplies element by element. About 2 bytes per probability and 8 per
/// q/k element instead of up to 8 characters of JSON each, decoded in the page.
fn data(r: &PageReport) -> String {
    let labels: Vec<String> = r.tokens.iter().map(|t| label(&t.text)).collect();
    let ids: Vec<u32> = r.tokens.iter().map(|t| t.id).collect();
    let mut attn = Vec::new();
    for rows in r.attention.iter().flatten() {
        for (i, row) in rows.iter().enumerate() {
            for &p in &row[..=i] {
                attn.extend_from_slice(&quantize(p).to_le_bytes());
            }
        }
    }
    let floats = |per_head: &[Vec<Matrix>]| {
        let mut b = Vec::new();
        for v in per_head.iter().flatten().flatten().flatten() {
            b.extend_from_slice(&v.to_le_bytes());
        }
        BASE64.encode(b)
    };
    serde_json::json!({
        "labels": labels,
        "ids": ids,
        "layers": r.n_layer,
        "heads": r.n_head,
        "dHead": r.d_head,
        "decimals": DECIMALS,
        "notANumber": NOT_A_NUMBER,
        "blues": BLUES,
        "rdbu": RDBU,
        "attn": BASE64.encode(attn),
        "q": r.neuron.as_ref().map(|n| floats(&n.q)),
        "k": r.neuron.as_ref().map(|n| floats(&n.k)),
    })
    .to_string()
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
    fn probabilities_keep_four_decimals() {
        assert_eq!(quantize(0.12), 1200);
        assert_eq!(quantize(0.0), 0);
        assert_eq!(quantize(1.0), 10_000);
        assert_eq!(quantize(0.123456), 1235);
        assert_eq!(quantize(0.00004), 0);
        assert_eq!(quantize(0.00006), 1);
        assert_eq!(quantize(f32::NAN), NOT_A_NUMBER);
        assert_eq!(quantize(f32::INFINITY), NOT_A_NUMBER);
    }

    #[test]
    fn script_data_cannot_close_the_script() {
        let s = script_safe(r#"{"a":"</script><!--&"}"#);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "</script><!--&");
    }
}
