//! `lens`: the logit lens. At each depth, ln_f and the tied unembedding turn the residual
//! stream at one position into next-token predictions. ln_f is applied exactly once: the
//! last row reads HF's final hidden state, which already went through it, and equals `next`.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::analysis::lens;
use crate::cli::{LensAction, LensArgs};
use crate::dist;
use crate::model::{Activations, CaptureSpec, Gpt2, NoLogits, Request};
use crate::render::attention::table;
use crate::reports::{Guess, LensGridReport, LensReading, LensReport, LensStats};
use crate::session::checks::one_token;
use crate::session::parts::{depth_statistics, lens_report, DepthStatistics, Reading};
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{check_index, check_top_k, decoded, write_svg, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &LensArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(LensAction::Fit(fit)) = &args.action {
        return super::lens_fit::run(session, fit, out);
    }
    let cfg = session.config()?;
    let top_k = check_top_k(args.top_k.top_k, cfg, &session.model_name)?;
    let (mut prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::EACH)?;
    if let Some(p) = args.position {
        prepared
            .reject(|which, ids| check_index("position", p, ids.len(), "token positions", which))?;
    }
    let Texts { tokenizer, .. } = &prepared;
    if args.lens.len() > 1 && args.all_positions {
        return Err(crate::error::usage(
            "--all-positions reads one lens; --lens a,b compares lenses at one position",
        ));
    }
    let lenses = (args.lens.iter())
        .map(|l| session.lens(l, cfg))
        .collect::<Result<Vec<_>>>()?;
    let answer = (args.answer.as_deref())
        .map(|a| one_token(tokenizer, "answer", a))
        .transpose()?;
    let readings: Vec<Reading> = (lenses.into_iter())
        .map(|lens| Reading {
            lens,
            answer: answer.clone(),
        })
        .collect();
    let req = Request {
        capture: CaptureSpec::new(lens::hooks(cfg)),
        logits: NoLogits,
    };
    if args.all_positions {
        return all_positions(
            session,
            args,
            out,
            (&prepared, &model),
            (&req, &readings[0]),
        );
    }
    let build = |row| build(session, args, (&model, tokenizer), row, (top_k, &readings));
    prepared.run(session, out, &model, &req, build, table::lens)
}

/// `--all-positions`: the top prediction at every depth and position, as a grid.
fn all_positions(
    session: &Session,
    args: &LensArgs,
    out: &mut dyn Write,
    (prepared, model): (&Texts, &Gpt2),
    (req, reading): (&Request<NoLogits>, &Reading),
) -> Result<()> {
    let colours = crate::render::color::ColourScale {
        cmap: crate::session::cmap(args.cmap),
        ..Default::default()
    }
    .probabilities(1.0);
    if args.svg.is_some() && prepared.texts.len() > 1 {
        return Err(crate::error::usage(
            "--svg draws the lens of one text; give one TEXT (or run once per text)",
        ));
    }
    let tokenizer = &prepared.tokenizer;
    let build = |Computed {
                     text, ids, output, ..
                 }| {
        let report = grid(
            session,
            (model, tokenizer),
            (text, ids),
            &output.activations,
            reading,
        )?;
        write_svg(session, args.svg.as_deref(), |w| {
            crate::render::attention::figure::lens_grid(w, &report, args.title.as_deref(), colours)
        })?;
        Ok(report)
    };
    prepared.run(session, out, model, req, build, |out, r| {
        crate::render::attention::lens::grid(
            out,
            r,
            session.output.palette,
            session.output.width,
            colours,
        )
    })
}

/// The report `lens` prints for one text: every depth's top-k at `--position`.
pub fn build(
    session: &Session,
    args: &LensArgs,
    (model, tokenizer): (&Gpt2, &Tokenizer),
    row: Computed<NoLogits>,
    (top_k, readings): (usize, &[Reading]),
) -> Result<LensReport> {
    let Computed {
        text, ids, output, ..
    } = row;
    let position = args.position.unwrap_or(ids.len() - 1);
    let acts = &output.activations;
    let report = |reading| {
        lens_report(
            session,
            (model, tokenizer),
            (text, ids),
            acts,
            (position, top_k),
            reading,
        )
    };
    let mut first = report(&readings[0])?;
    for reading in &readings[1..] {
        let other = report(reading)?;
        first.compared.push(LensReading {
            lens: other.lens,
            depths: other.depths,
        });
    }
    Ok(first)
}

/// Rows (depth, position) unembedded at once by the grid: their logits, `(rows, V)` in
/// f32, stay near 100 MB on gpt2's vocabulary however long the text.
const GRID_ROWS: usize = 512;

/// The top prediction and the statistics at every depth and position: each depth's stream
/// through the lens, and the streams of every depth at a few positions unembedded as one
/// product (one pass over the unembedding for all depths).
fn grid(
    session: &Session,
    (model, tokenizer): (&Gpt2, &Tokenizer),
    (text, ids): (&str, &[u32]),
    acts: &Activations,
    reading: &Reading,
) -> Result<LensGridReport> {
    let depth_list = reading.lens.depths(model.config().n_layer);
    let depths = depth_list.len();
    let per = (GRID_ROWS / depths).max(1);
    let mut cells: Vec<Vec<DepthStatistics>> = (0..depths).map(|_| Vec::new()).collect();
    for start in (0..ids.len()).step_by(per) {
        let at = start..(start + per).min(ids.len());
        let streams = (depth_list.iter())
            .map(|&d| lens::stream(model, acts, &reading.lens, d, at.clone()))
            .collect::<Result<Vec<_>>>()?;
        let logits = model
            .unembed(&Tensor::cat(&streams, 1)?)? // (1, depths · P, V)
            .squeeze(0)?
            .to_dtype(DType::F32)?;
        let v = logits.dim(1)?;
        let values = logits.flatten_all()?.to_vec1::<f32>()?;
        let rows: Vec<&[f32]> = values.chunks(v).collect();
        // The last depth's rows: the model's own distribution at each position. Rows are
        // read on every thread (the product did; a row's passes are the rest of the work).
        let finals: Vec<dist::Final> = (0..at.len())
            .into_par_iter()
            .map(|p| dist::Final::of(rows[(depths - 1) * at.len() + p]))
            .collect();
        let stats: Vec<DepthStatistics> = (rows.par_iter().enumerate())
            .map(|(r, row)| depth_statistics(row, &finals[r % at.len()], reading.answer.as_ref()))
            .collect();
        for (r, s) in stats.into_iter().enumerate() {
            cells[r / at.len()].push(s);
        }
    }
    let each = |f: &dyn Fn(&DepthStatistics) -> f32| -> Vec<Vec<f32>> {
        cells.iter().map(|d| d.iter().map(f).collect()).collect()
    };
    let ranks = |f: &dyn Fn(&DepthStatistics) -> usize| -> Vec<Vec<usize>> {
        cells.iter().map(|d| d.iter().map(f).collect()).collect()
    };
    Ok(LensGridReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        top: (cells.iter())
            .map(|d| d.iter().map(|s| guess(tokenizer, s)).collect())
            .collect::<Result<_>>()?,
        depths: reading.lens.depths(model.config().n_layer),
        lens: reading.lens.kind(),
        stats: LensStats {
            kl_to_final: each(&|s| s.kl),
            entropy: each(&|s| s.entropy),
            final_token_rank: ranks(&|s| s.final_rank),
            answer_rank: (reading.answer.as_ref()).map(|_| ranks(&|s| s.answer_rank.unwrap_or(0))),
        },
        answer: reading.answer.clone(),
    })
}

fn guess(tokenizer: &Tokenizer, s: &DepthStatistics) -> Result<Guess> {
    Ok(Guess {
        id: s.top as u32,
        token: tokenizer.token_text(s.top as u32)?,
        prob: s.top_prob,
    })
}
