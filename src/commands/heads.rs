//! `heads`: score every head on a sequence repeated twice, as TransformerLens's head
//! detectors do: previous-token, first-token, induction and duplicate-token attention.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use candle_core::Tensor;

use crate::analysis::heads::head_scores;
use crate::cli::{HeadsArgs, Truncate};
use crate::input;
use crate::render::causal::grids as printer;
use crate::reports::{HeadScoresReport, HeadsReport};
use crate::session::{check_finite, emit, write_svg, Built, Session};

/// `--truncate`: a sequence over `half` the positions keeps its last (`left`) or first
/// (`right`) `half` tokens, said on stderr; without it, it is left for the length check.
fn truncate(s: &mut Vec<u32>, side: Option<Truncate>, half: usize) {
    let (Some(side), Some(cut)) = (side, s.len().checked_sub(half).filter(|&c| c > 0)) else {
        return;
    };
    let (which, name) = match side {
        Truncate::Left => {
            s.drain(..cut);
            ("first", "left")
        }
        Truncate::Right => {
            s.truncate(half);
            ("last", "right")
        }
    };
    let cut = crate::render::counted(cut, "token");
    eprintln!("the sequence: cut the {which} {cut} (--truncate {name}); {half} remain");
}

/// The sequence s and its text: TEXT (`-`: standard input), --file, --ids, a pipe on
/// standard input, else `--seq-len` random ids (no text).
fn sequence(
    session: &Session,
    args: &HeadsArgs,
    cfg: &crate::model::Config,
) -> Result<(Option<String>, Vec<u32>)> {
    let random = args.seq_len.is_some() || args.seed.is_some();
    let text = match (&args.text, &args.file) {
        (Some(t), _) if t == "-" => Some(input::read_stdin()?),
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) if path.as_os_str() == "-" => Some(input::read_stdin()?),
        (None, Some(path)) => Some(input::read_file(path)?),
        // A pipe is read; nothing piped (or a terminal) means random ids.
        (None, None) if args.ids.is_none() && !random && !std::io::stdin().is_terminal() => {
            input::read_piped()?
        }
        (None, None) => None,
    };
    let tokenizer = || session.tokenizer();
    match (text, &args.ids) {
        (Some(text), _) => Ok((Some(text.clone()), session.ids(&*tokenizer()?, &text)?)),
        (None, Some(ids)) => {
            let tokenizer = tokenizer()?;
            let ids = session.given_ids(&tokenizer, &ids.0, "--ids")?;
            Ok((Some(tokenizer.from_ids(&ids)?.0), ids))
        }
        (None, None) => {
            let (n, seed) = (args.seq_len.unwrap_or(50), args.seed.unwrap_or(0));
            Ok((None, random_ids(n as usize, seed, cfg.vocab_size)))
        }
    }
}

pub fn run(session: &Session, args: &HeadsArgs, out: &mut dyn Write) -> Result<()> {
    let built = build(session, args)?;
    write_svg(session, args.svg.as_deref(), |w| {
        printer::heads_svg(w, &built.report, crate::session::grid_style(&args.figure))
    })?;
    emit(session, out, &built.report, |out, r| {
        printer::heads(out, r, session.output.palette)
    })?;
    built.finish()
}

/// The report `heads` prints.
pub fn build(session: &Session, args: &HeadsArgs) -> Result<Built<HeadsReport>> {
    let cfg = session.config()?;
    let (text, mut s) = sequence(session, args, cfg)?;
    truncate(&mut s, args.truncate, cfg.n_positions / 2);
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
    let model = session.model(cfg, cfg.n_layer)?;
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
        header: session.header(text.as_deref())?,
        input_ids: x,
        n: s.len(),
        scores: HeadScoresReport {
            previous_token: scores.previous_token,
            first_token: scores.first_token,
            induction: scores.induction,
            duplicate_token: scores.duplicate_token,
        },
    };
    Ok(Built { report, problem })
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
