//! `transcode`: a transcoder set in place of the MLPs on a text (`analysis::transcoder::
//! spliced`): per layer and token the active features and the MLP output's reconstruction
//! error, and the next-token loss clean, with every MLP replaced, and with every MLP zeroed.

use std::io::Write;

use anyhow::Result;

use crate::analysis::transcoder::spliced::{fit, Fit, LayerFit};
use crate::cli::TranscodeArgs;
use crate::error::usage;
use crate::render::features::transcode as printer;
use crate::reports::{
    FeatureValue, TranscodeLayer, TranscodeLoss, TranscodePosition, TranscodeReport,
};
use crate::session::texts::Texts;
use crate::session::{decoded, emit, Session, Take};

pub fn run(session: &Session, args: &TranscodeArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    let revision = args.set.transcoders_revision.as_deref();
    let tset = session.transcoders(&args.set.transcoders, revision, cfg)?;
    let (prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::STRICT)?;
    let Texts {
        texts,
        ids,
        tokenizer,
        ..
    } = &prepared;
    if texts.len() > 1 {
        return Err(usage("transcode looks at one text; give one TEXT"));
    }
    if ids[0].len() < 2 {
        return Err(usage(
            "transcode needs a text of two tokens or more: the loss is of each next token",
        ));
    }
    let f = fit(&model, &tset, &ids[0])?;
    let layers = (f.layers.iter().enumerate())
        .map(|(l, lf)| layer(l, lf, args.per_token as usize))
        .collect::<Result<_>>()?;
    let report = TranscodeReport {
        header: session.header(Some(&texts[0]))?,
        transcoders: args.set.transcoders.clone(),
        scan: tset.scan.clone(),
        d_transcoder: tset.d_tc,
        cross_layer: tset.cross_layer(),
        input_ids: ids[0].clone(),
        tokens: decoded(tokenizer, &ids[0])?,
        loss: loss(&f),
        layers,
    };
    emit(session, out, &report, printer::table)
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

fn loss(f: &Fit) -> TranscodeLoss {
    let (clean, replaced, zeroed) = (mean(&f.clean), mean(&f.replaced), mean(&f.zeroed));
    TranscodeLoss {
        clean,
        replaced,
        zeroed,
        recovered: (zeroed != clean).then(|| (zeroed - replaced) / (zeroed - clean)),
    }
}

/// Layer `l`'s fit as reported: each token's top `k` features and norms, the layer's FVU.
fn layer(l: usize, lf: &LayerFit, k: usize) -> Result<TranscodeLayer> {
    let acts = lf.acts.to_vec2::<f32>()?;
    let errors = crate::dist::row_norms(&lf.errors)?;
    let outputs = crate::dist::row_norms(&lf.outputs)?;
    let centred = lf.outputs.broadcast_sub(&lf.outputs.mean_keepdim(0)?)?;
    let variance: f64 = (crate::dist::row_norms(&centred)?.iter())
        .map(|&n| (n as f64).powi(2))
        .sum();
    let residual: f64 = errors.iter().map(|&n| (n as f64).powi(2)).sum();
    let positions: Vec<TranscodePosition> = (acts.iter().enumerate())
        .map(|(p, row)| {
            let active = row.iter().filter(|&&a| a != 0.0).count();
            let features = (crate::dist::top_k(row, k.min(active)).into_iter())
                .map(|id| FeatureValue {
                    id,
                    activation: row[id],
                })
                .collect();
            TranscodePosition {
                active,
                error_norm: errors[p],
                output_norm: outputs[p],
                features,
            }
        })
        .collect();
    let mean_active = mean(
        &positions
            .iter()
            .map(|p| p.active as f32)
            .collect::<Vec<_>>(),
    );
    Ok(TranscodeLayer {
        layer: l,
        mean_active,
        fvu: residual / variance,
        positions,
    })
}
