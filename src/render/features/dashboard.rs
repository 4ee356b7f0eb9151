//! `feature --html FILE`: one self-contained page per run (no script, no network, no
//! external files), a section per feature as Neuronpedia's dashboards lay them out: how
//! often it fires, a histogram of its non-zero activations, the tokens its decoder
//! direction promotes and suppresses, and the contexts where it peaked, each token coloured
//! by its activation (Blues, 0 to the feature's highest peak) with the peak outlined. User
//! text is escaped; every number shown is also in a `data-` attribute for scripts and tests.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::render::color::{blues, hex, ink};
use crate::render::{corpus_density, escape, label, training_density};
use crate::reports::{FeatureContext, FeatureCorpus, FeatureReport, FeatureRow, TokenValue};

const CSS: &str = include_str!("../assets/dashboard.css");
/// The histogram's drawing area, in pixels.
const HIST_W: f32 = 360.0;
const HIST_H: f32 = 140.0;

pub fn page(out: &mut dyn Write, r: &FeatureReport) -> io::Result<()> {
    let ids: Vec<String> = r.features.iter().map(|f| f.id.to_string()).collect();
    let nav: String = (r.features.iter())
        .map(|f| format!(r##"<a href="#feature-{0}">{0}</a>"##, f.id))
        .collect();
    let title = escape(&ids.join(", "));
    write!(
        out,
        r#"{head}<body data-ready="true">
<header>
<h1>SAE feature dashboard</h1>
<p>SAE <code>{sae}</code> at <code>{hook}</code> · model <code>{model}</code></p>
<nav>features {nav}</nav>
</header>
"#,
        head = crate::render::attention::page::head(
            &format!("feature {title}"),
            "default-src 'none'; style-src 'unsafe-inline'",
            CSS
        ),
        sae = escape(&r.sae),
        hook = escape(&r.hook),
        model = escape(&r.header.model),
    )?;
    for f in &r.features {
        out.write_all(section(f).as_bytes())?;
    }
    write!(
        out,
        "<footer>gpt2-inspect {} · activations shown to 3 decimals</footer>\n</body>\n</html>\n",
        r.header.version
    )
}

fn section(f: &FeatureRow) -> String {
    let mut s = format!(
        "<section class=\"feature\" id=\"feature-{0}\" data-feature=\"{0}\">\n<h2>Feature {0}</h2>\n",
        f.id
    );
    let mut said = Vec::new();
    if let Some(c) = &f.corpus {
        said.push(corpus_density(c));
    }
    if let Some(d) = f.log10_training_density {
        said.push(training_density(d));
    }
    if f.corpus.is_none() {
        said.push("no texts given: only what its decoder direction writes".into());
    }
    let _ = writeln!(s, "<p class=\"density\">{}</p>", said.join(" · "));
    s.push_str("<div class=\"panels\">\n");
    if let Some(c) = &f.corpus {
        s += &histogram(c);
    }
    s += &logits("promotes", "Tokens it promotes", &f.top_logits);
    s += &logits("suppresses", "Tokens it suppresses", &f.bottom_logits);
    s.push_str("</div>\n");
    if let Some(c) = &f.corpus {
        s += &contexts(c);
    }
    s.push_str("</section>\n");
    s
}

/// The non-zero activations' counts as bars, the axis labelled at 0, the middle and the end.
fn histogram(c: &FeatureCorpus) -> String {
    let most = c.histogram.iter().copied().max().unwrap_or(0).max(1) as f32;
    let w = HIST_W / c.histogram.len().max(1) as f32;
    let mut s = format!(
        "<div><h3>Activations (non-zero)</h3>\n<svg class=\"histogram\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"histogram of activations\">\n",
        HIST_W + 60.0,
        HIST_H + 36.0
    );
    for (i, &n) in c.histogram.iter().enumerate().filter(|(_, &n)| n > 0) {
        let h = (n as f32 / most * HIST_H).max(1.0);
        let lo = i as f32 * c.bin_width;
        let _ = writeln!(
            s,
            "<rect class=\"bin\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" data-lo=\"{lo}\" data-count=\"{n}\"><title>{lo:.3} to {:.3}: {n}</title></rect>",
            30.0 + i as f32 * w,
            HIST_H - h,
            (w - 1.0).max(1.0),
            lo + c.bin_width
        );
    }
    let top = c.bin_width * c.histogram.len() as f32;
    for (x, v) in [(0.0, 0.0), (0.5, top / 2.0), (1.0, top)] {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            30.0 + x * HIST_W,
            HIST_H + 14.0,
            short(v)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"26\" y=\"10\" text-anchor=\"end\">{most}</text><text x=\"26\" y=\"{}\" text-anchor=\"end\">0</text>",
        HIST_H
    );
    // The axes' titles: what is counted, and of what.
    let _ = writeln!(
        s,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">activation</text>\n<text class=\"axis-title\" transform=\"translate(10 {:.1}) rotate(-90)\" text-anchor=\"middle\">tokens</text>\n</svg></div>",
        30.0 + HIST_W / 2.0,
        HIST_H + 32.0,
        HIST_H / 2.0
    );
    s
}

fn short(v: f32) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

/// A logit table, each value with a bar as long as its share of the table's largest.
fn logits(class: &str, title: &str, rows: &[TokenValue]) -> String {
    let most = rows.iter().map(|t| t.value.abs()).fold(0f32, f32::max);
    let mut s = format!(
        "<div><h3>{title}</h3>\n<table class=\"logits {class}\"><tr><th>token</th><th>logit</th></tr>\n"
    );
    for t in rows {
        let share = if most > 0.0 {
            t.value.abs() / most
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "<tr data-id=\"{}\" data-value=\"{}\"><td class=\"token\">{}</td><td class=\"value\"><span class=\"bar\" style=\"width:{:.0}%\"></span>{:+.4}</td></tr>",
            t.id,
            t.value,
            escape(&label(&t.token)),
            100.0 * share,
            t.value
        );
    }
    s.push_str("</table></div>\n");
    s
}

/// The contexts where the feature peaked, highest first.
fn contexts(c: &FeatureCorpus) -> String {
    let top = c.contexts.iter().map(|x| x.peak).fold(0f32, f32::max);
    let mut s = String::from("<h3>Top activating contexts</h3>\n<ol class=\"contexts\">\n");
    for ctx in &c.contexts {
        let _ = writeln!(
            s,
            "<li data-text=\"{}\" data-peak=\"{}\" data-peak-position=\"{}\" data-start=\"{}\"><span class=\"peak-value\">{:.3}</span><span class=\"where\">{}</span><span class=\"ctx\">{}</span></li>",
            ctx.text,
            ctx.peak,
            ctx.peak_position,
            ctx.start,
            ctx.peak,
            escape(&ctx.source),
            tokens(ctx, top)
        );
    }
    s.push_str("</ol>\n");
    s
}

fn tokens(ctx: &FeatureContext, top: f32) -> String {
    let mut s = String::new();
    for (i, (t, &a)) in ctx.tokens.iter().zip(&ctx.activations).enumerate() {
        let peak = ctx.start + i == ctx.peak_position;
        let bg = blues(if top > 0.0 { a.max(0.0) / top } else { 0.0 });
        let shown = t.replace('\n', "↵");
        let _ = write!(
            s,
            "<span class=\"tok{}\" style=\"background:{};color:{}\" data-act=\"{a}\" title=\"{a:.3}\">{}</span>",
            if peak { " peak" } else { "" },
            hex(bg),
            hex(ink(bg)),
            escape(&shown)
        );
    }
    s
}
