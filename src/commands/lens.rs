//! `lens`: the logit lens. At each depth, ln_f and the tied unembedding turn the residual
//! stream at one position into next-token predictions. ln_f is applied exactly once: the
//! last row reads HF's final hidden state, which already went through it, and equals `next`.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor};

use crate::analysis::lens::{self, Lens};
use crate::cli::LensArgs;
use crate::dist;
use crate::model::{Activations, CaptureSpec, Gpt2, NoLogits, Request};
use crate::render::attention::table;
use crate::reports::{Guess, LensGridReport, LensReport};
use crate::session::parts::lens_report;
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{check_index, check_top_k, decoded, write_svg, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &LensArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    let top_k = check_top_k(args.top_k.top_k, cfg, &session.model_name)?;
    let (mut prepared, model) =
        session.prepare_and_load(&args.input, cfg, cfg.n_layer, Take::EACH)?;
    if let Some(p) = args.position {
        prepared
            .reject(|which, ids| check_index("position", p, ids.len(), "token positions", which))?;
    }
    let Texts { tokenizer, .. } = &prepared;
    let req = Request {
        capture: CaptureSpec::new(lens::hooks(cfg)),
        logits: NoLogits,
    };
    if args.all_positions {
        return all_positions(session, args, out, (&prepared, &model), &req);
    }
    let build = |row| build(session, args, (&model, tokenizer), row, top_k);
    prepared.run(session, out, &model, &req, build, table::lens)
}

/// `--all-positions`: the top prediction at every depth and position, as a grid.
fn all_positions(
    session: &Session,
    args: &LensArgs,
    out: &mut dyn Write,
    (prepared, model): (&Texts, &Gpt2),
    req: &Request<NoLogits>,
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
        let report = grid(session, model, tokenizer, (text, ids), &output.activations)?;
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
    top_k: usize,
) -> Result<LensReport> {
    let Computed {
        text, ids, output, ..
    } = row;
    let position = args.position.unwrap_or(ids.len() - 1);
    let acts = &output.activations;
    lens_report(
        session,
        model,
        tokenizer,
        (text, ids),
        acts,
        position,
        top_k,
    )
}

/// Rows (depth, position) unembedded at once by the grid: their logits, `(rows, V)` in
/// f32, stay near 100 MB on gpt2's vocabulary however long the text.
const GRID_ROWS: usize = 512;

/// The top prediction at every depth and position: each depth's stream through ln_f, and
/// the streams of every depth at a few positions unembedded as one product (one pass over
/// the unembedding for all depths).
fn grid(
    session: &Session,
    model: &Gpt2,
    tokenizer: &Tokenizer,
    (text, ids): (&str, &[u32]),
    acts: &Activations,
) -> Result<LensGridReport> {
    let depths = model.config().n_layer + 1;
    let per = (GRID_ROWS / depths).max(1);
    let mut top: Vec<Vec<Guess>> = (0..depths).map(|_| Vec::with_capacity(ids.len())).collect();
    for start in (0..ids.len()).step_by(per) {
        let at = start..(start + per).min(ids.len());
        let streams = (0..depths)
            .map(|d| lens::stream(model, acts, Lens::Logit, d, at.clone()))
            .collect::<Result<Vec<_>>>()?;
        let logits = model
            .unembed(&Tensor::cat(&streams, 1)?)? // (1, depths · P, V)
            .squeeze(0)?
            .to_dtype(DType::F32)?;
        let v = logits.dim(1)?;
        for (r, l) in logits
            .flatten_all()?
            .to_vec1::<f32>()?
            .chunks(v)
            .enumerate()
        {
            let (id, logprob) = dist::top_guess(l);
            top[r / at.len()].push(Guess {
                id: id as u32,
                token: tokenizer.token_text(id as u32)?,
                prob: logprob.exp() as f32,
            });
        }
    }
    Ok(LensGridReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        top,
    })
}
