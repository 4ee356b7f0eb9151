//! `heads`: score every head on a sequence repeated twice, as TransformerLens's head
//! detectors do: previous-token, first-token, induction and duplicate-token attention.

use std::io::Write;

use anyhow::Result;
use candle_core::Tensor;

use super::{check_finite, emit, write_svg, Session};
use crate::cli::HeadsArgs;
use crate::model::circuits::head_scores;
use crate::render::circuits as printer;
use crate::reports::{HeadScoresReport, HeadsReport};

pub fn run(session: &Session, args: &HeadsArgs, out: &mut dyn Write) -> Result<()> {
    let (cfg, _) = session.config()?;
    let s: Vec<u32> = match &args.text {
        Some(text) => {
            let tokenizer = session.tokenizer()?;
            session.ids(&tokenizer, text)?
        }
        None => random_ids(args.seq_len as usize, args.seed, cfg.vocab_size),
    };
    // Exit 1, as a text too long is in every command.
    if s.len() < 2 || 2 * s.len() > cfg.n_positions {
        anyhow::bail!(
            "the sequence is {} tokens long; repeated twice it must fit the model's {} \
             positions (at most {}), and it needs at least 2",
            s.len(),
            cfg.n_positions,
            cfg.n_positions / 2
        );
    }
    let model = session.model(&cfg, cfg.n_layer)?;
    let x: Vec<u32> = [s.clone(), s.clone()].concat();
    let input = Tensor::new(x.as_slice(), model.device())?.unsqueeze(0)?;
    let scores = head_scores(&model, &input, s.len())?;
    let problem = check_finite(
        &model,
        &input,
        [
            &scores.previous_token,
            &scores.first_token,
            &scores.induction,
            &scores.duplicate_token,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .map(|&v| v as f64),
    )?;
    let report = HeadsReport {
        header: session.header(args.text.as_deref())?,
        input_ids: x,
        n: s.len(),
        scores: HeadScoresReport {
            previous_token: scores.previous_token,
            first_token: scores.first_token,
            induction: scores.induction,
            duplicate_token: scores.duplicate_token,
        },
    };
    write_svg(session, args.svg.as_deref(), |w| {
        printer::heads_svg(w, &report)
    })?;
    emit(session, out, &report, |out, r| {
        printer::heads(out, r, session.palette)
    })?;
    problem.map_or(Ok(()), Err)
}

/// `n` token ids from a seed (splitmix64): the same on every machine.
fn random_ids(n: usize, seed: u64, vocab: usize) -> Vec<u32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % vocab as u64) as u32
        })
        .collect()
}
