//! The features family's tables: an SAE's features at each token, and what features write
//! and where they fire.

use std::io::{self, Write};

use crate::render::table::{columns, quoted, Align};
use crate::render::terminal_text;
use crate::reports::{FeatureCorpus, FeatureReport, FeaturesReport, TokenValue};

pub fn features(out: &mut dyn Write, r: &FeaturesReport) -> io::Result<()> {
    use Align::*;
    let centred = if r.centered {
        ", input centred over d_model"
    } else {
        ""
    };
    let k = (r.k)
        .map(|k| format!(" keeping its {k} most active per token,"))
        .unwrap_or_default();
    writeln!(
        out,
        "sae  {} ({},{k} {} features) at {}{centred}",
        r.sae, r.architecture, r.d_sae, r.hook
    )?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = (r.tokens.iter().enumerate())
        .map(|(t, token)| {
            let fired: Vec<String> = (r.features[t].iter())
                .map(|f| format!("{}:{:.3}", f.id, f.activation))
                .collect();
            vec![
                t.to_string(),
                quoted(token),
                r.l0[t].to_string(),
                fired.join("  "),
            ]
        })
        .collect();
    columns(
        out,
        &["position", "token", "l0", "top features (id:activation)"],
        &[Right, Left, Right, Left],
        &rows,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "reconstruction  mse {:.6}  variance explained {:.4}",
        r.mse, r.fve
    )?;
    match (r.ce_clean, r.ce_spliced) {
        (Some(clean), Some(spliced)) => writeln!(
            out,
            "next-token loss  {clean:.4} clean, {spliced:.4} with the reconstruction spliced in (KL {:.4})",
            r.kl_spliced
        ),
        _ => writeln!(
            out,
            "next-token loss  none to measure (one token); KL with the reconstruction spliced in {:.4}",
            r.kl_spliced
        ),
    }
}

pub fn feature(out: &mut dyn Write, r: &FeatureReport) -> io::Result<()> {
    use Align::*;
    writeln!(out, "sae  {} at {}", r.sae, r.hook)?;
    for f in &r.features {
        writeln!(out)?;
        writeln!(out, "== feature {}", f.id)?;
        if let Some(d) = f.log10_training_density {
            writeln!(out, "{}", crate::render::training_density(d))?;
        }
        let rows: Vec<Vec<String>> = (0..f.top_logits.len().max(f.bottom_logits.len()))
            .map(|i| {
                let cell = |v: Option<&TokenValue>| match v {
                    Some(t) => vec![quoted(&t.token), format!("{:+.4}", t.value)],
                    None => vec![String::new(), String::new()],
                };
                [cell(f.top_logits.get(i)), cell(f.bottom_logits.get(i))].concat()
            })
            .collect();
        columns(
            out,
            &["promotes", "logit", "suppresses", "logit"],
            &[Left, Right, Left, Right],
            &rows,
        )?;
        if let Some(c) = &f.corpus {
            feature_corpus(out, c)?;
        }
    }
    Ok(())
}

fn feature_corpus(out: &mut dyn Write, c: &FeatureCorpus) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{}", crate::render::corpus_density(c))?;
    let most = c.histogram.iter().copied().max().unwrap_or(0).max(1);
    for (i, &n) in c.histogram.iter().enumerate().filter(|(_, &n)| n > 0) {
        let lo = i as f32 * c.bin_width;
        let bar = "█".repeat(((n * 40).div_ceil(most)) as usize);
        writeln!(
            out,
            "  {:>9.3} – {:<9.3} {n:>7}  {bar}",
            lo,
            lo + c.bin_width
        )?;
    }
    for ctx in &c.contexts {
        let words: Vec<String> = (ctx.tokens.iter().zip(&ctx.activations).enumerate())
            .map(
                |(i, (t, a))| match (ctx.start + i == ctx.peak_position, *a > 0.0) {
                    (true, _) => format!("[[{}]]", terminal_text(t, false)),
                    (false, true) => format!("[{}]", terminal_text(t, false)),
                    (false, false) => terminal_text(t, false),
                },
            )
            .collect();
        writeln!(
            out,
            "  {:>8.3}  {}: {}",
            ctx.peak,
            ctx.source,
            words.concat()
        )?;
    }
    Ok(())
}
