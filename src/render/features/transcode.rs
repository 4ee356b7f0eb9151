//! `transcode`'s table: the losses, each layer's fit, then per token each layer's most
//! active features and its error's share of the MLP output's norm.

use std::io::{self, Write};

use crate::render::table::{columns, quoted, Align};
use crate::reports::TranscodeReport;

pub fn table(out: &mut dyn Write, r: &TranscodeReport) -> io::Result<()> {
    let kind = ["cross-layer, ", ""][usize::from(!r.cross_layer)];
    writeln!(
        out,
        "transcoders  {} ({}, {kind}{} features per layer)",
        r.transcoders, r.scan, r.d_transcoder
    )?;
    let l = &r.loss;
    let recovered = l.recovered.map_or("-".into(), |v| format!("{v:.3}"));
    writeln!(
        out,
        "loss         clean {:.4}  MLPs replaced {:.4}  MLPs zeroed {:.4}  recovered {recovered}",
        l.clean, l.replaced, l.zeroed
    )?;
    writeln!(out)?;
    let fits: Vec<Vec<String>> = (r.layers.iter())
        .map(|layer| {
            vec![
                layer.layer.to_string(),
                format!("{:.1}", layer.mean_active),
                format!("{:.4}", layer.fvu),
            ]
        })
        .collect();
    let right = [Align::Right; 3];
    columns(
        out,
        &["layer", "active/token", "unexplained variance"],
        &right,
        &fits,
    )?;
    writeln!(out)?;
    let heads: Vec<String> = (["position", "token"].map(String::from).into_iter())
        .chain(r.layers.iter().map(|l| format!("layer {}", l.layer)))
        .collect();
    let rows: Vec<Vec<String>> = (r.tokens.iter().enumerate())
        .map(|(p, tok)| {
            let cells = r.layers.iter().map(|layer| {
                let at = &layer.positions[p];
                let feats: Vec<String> = (at.features.iter())
                    .map(|f| format!("{}:{:.2}", f.id, f.activation))
                    .collect();
                let share = at.error_norm / at.output_norm.max(f32::MIN_POSITIVE);
                format!("{} (error {share:.2})", feats.join(" "))
            });
            [p.to_string(), quoted(tok)]
                .into_iter()
                .chain(cells)
                .collect()
        })
        .collect();
    let mut align = vec![Align::Right, Align::Left];
    align.extend(r.layers.iter().map(|_| Align::Left));
    let heads: Vec<&str> = heads.iter().map(String::as_str).collect();
    columns(out, &heads, &align, &rows)
}
