//! `lens`: the logit lens. At each depth, ln_f and the tied unembedding turn the residual
//! stream at one position into next-token predictions. ln_f is applied exactly once: the
//! last row reads HF's final hidden state, which already went through it, and equals `next`.

use std::io::Write;

use anyhow::Result;
use candle_core::DType;

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

/// The top prediction at every depth and position: ln_f (once) and the unembedding on the
/// whole residual stream of each depth, `(1, T, C)` → `(1, T, V)`, one depth at a time.
fn grid(
    session: &Session,
    model: &Gpt2,
    tokenizer: &Tokenizer,
    (text, ids): (&str, &[u32]),
    acts: &Activations,
) -> Result<LensGridReport> {
    let cfg = model.config();
    let mut top = Vec::with_capacity(cfg.n_layer + 1);
    for depth in 0..=cfg.n_layer {
        let logits: Vec<Vec<f32>> = lens::read(model, acts, Lens::Logit, depth, None)?
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .to_vec2()?; // (T, V)
        let row = logits
            .iter()
            .map(|l| {
                let id = dist::top_k(l, 1).first().copied().unwrap_or(0);
                Ok(Guess {
                    id: id as u32,
                    token: tokenizer.token_text(id as u32)?,
                    prob: dist::log_prob(l, id).exp() as f32,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        top.push(row);
    }
    Ok(LensGridReport {
        header: session.header(Some(text))?,
        tokens: decoded(tokenizer, ids)?,
        top,
    })
}
