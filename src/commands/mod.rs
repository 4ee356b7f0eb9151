//! One module per subcommand: arguments → request → report → renderer. [`session`] holds
//! the model the user named, [`texts`] the texts; the helpers here are shared by commands.

mod session;
mod shell;
mod texts;

// One module per command (dispatched by `commands!` below).
mod ablate;
mod attention;
mod attribute;
mod circuit;
mod dump;
mod embed;
mod feature;
mod features;
mod generate;
mod heads;
mod hidden;
mod hooks;
mod info;
mod lens;
mod metric;
mod next;
mod patch;
mod report;
mod saliency;
mod score;
mod steer;
mod tokenize;
mod trace;

use std::io::{self, Write};

use anyhow::Result;
use candle_core::{DType, Tensor};

pub use session::Session;

use crate::cli::{Cli, Command, TopKArgs};
use crate::dist;
use crate::error::usage;
use crate::model::Config;
use crate::render::delimited::Tabular;
use crate::reports::{NamedToken, Prediction};
use crate::signals::TempFiles;
use crate::tokenizer::Tokenizer;

/// Every subcommand: its [`Command`] variant and its module, whose `run(session, args,
/// out)` does the work. Adding a command is a file in this directory, its `mod` line above
/// (outside the macro, where rustfmt sees it), a line here, a variant in cli.rs and a
/// renderer.
macro_rules! commands {
    ($($variant:ident => $module:ident),* $(,)?) => {
        fn dispatch(session: &Session, command: &Command, out: &mut dyn Write) -> Result<()> {
            match command {
                $(Command::$variant(args) => $module::run(session, args, out),)*
                Command::Completions(_) | Command::Man(_) => unreachable!("run() handles these"),
            }
        }
    };
}

commands! {
    Tokenize => tokenize,
    Next => next,
    Attention => attention,
    Info => info,
    Trace => trace,
    Embed => embed,
    Hidden => hidden,
    Lens => lens,
    Hooks => hooks,
    Dump => dump,
    Score => score,
    Generate => generate,
    Report => report,
    Patch => patch,
    Circuit => circuit,
    Ablate => ablate,
    Attribute => attribute,
    Features => features,
    Feature => feature,
    Saliency => saliency,
    Heads => heads,
}

pub fn run(cli: Cli, temps: TempFiles) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(Stdout(stdout.lock()));
    match &cli.command {
        Command::Completions(args) => shell::completions(args, &mut out)?,
        Command::Man(args) => shell::man(args, &temps, &mut out)?,
        command => dispatch(&Session::new(&cli.global, temps)?, command, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// Standard output whose write errors say that they are about standard output (a full
/// disk behind a redirection); the error kind is kept, so a closed pipe is still quiet.
struct Stdout<W>(W);

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(on_stdout)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(on_stdout)
    }
}

fn on_stdout(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write to standard output: {e}"))
}

/// Writes a report of its own (not one per text) through the session's printer.
fn emit<R: serde::Serialize + Tabular>(
    session: &Session,
    out: &mut dyn Write,
    report: &R,
    table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
) -> Result<()> {
    let mut printer = session.printer(&[], &[], 0, &table)?;
    printer.print(out, report)?;
    printer.finish(out)
}

/// `--svg FILE`, when given: the figure `draw` writes, atomically, and a line saying so.
fn write_svg(
    session: &Session,
    path: Option<&std::path::Path>,
    draw: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    write_file(session, "--svg", path, draw)
}

/// `flag FILE`, when given: what `draw` writes, atomically, and a line saying so.
fn write_file(
    session: &Session,
    flag: &str,
    path: Option<&std::path::Path>,
    draw: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    if let Some(path) = path {
        if crate::atomic::is_stdout(path) {
            return Err(crate::error::usage(format!(
                "{flag} -: standard output carries the command's own output; give a file name"
            )));
        }
        crate::atomic::write(path, flag, &session.temps, draw)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// What is said when values stopped being finite numbers: where first (`hook`), and for
/// which text when there are several. Returned after the reports are written: exit 1.
fn non_finite_error(hook: crate::model::Hook, which: Option<String>) -> anyhow::Error {
    anyhow::anyhow!(
        "non-finite values (NaN or infinity) first appear in {hook}{}; the numbers reported \
         from there on are not meaningful (are the checkpoint's weights finite? with --dtype \
         f16, try f32)",
        which.map_or(String::new(), |w| format!(" ({w})"))
    )
}

/// For commands that compute their own numbers from the model (the circuit commands):
/// when `values` are not all finite, the error naming where `ids` `(1, T)` first went
/// wrong in the model.
fn check_finite(
    model: &crate::model::Gpt2,
    ids: &Tensor,
    values: impl IntoIterator<Item = f64>,
) -> Result<Option<anyhow::Error>> {
    if values.into_iter().all(f64::is_finite) {
        return Ok(None);
    }
    let hook = model
        .first_non_finite(ids)?
        .unwrap_or(crate::model::Hook::Logits);
    Ok(Some(non_finite_error(hook, None)))
}

/// `--flag L.H` as (layer, head), checked against the model.
fn layer_head(flag: &str, spec: &str, cfg: &Config, model: &str) -> Result<(usize, usize)> {
    let parsed = spec
        .split_once('.')
        .and_then(|(l, h)| Some((l.parse::<usize>().ok()?, h.parse::<usize>().ok()?)));
    let Some((l, h)) = parsed else {
        return Err(usage(format!(
            "--{flag} {spec}: give LAYER.HEAD, such as 1.2"
        )));
    };
    check_index(flag, l, cfg.n_layer, "layers", model)?;
    check_index(flag, h, cfg.n_head, "heads per layer", model)?;
    Ok((l, h))
}

/// `--flag N` must index one of `count` things.
fn check_index(flag: &str, value: usize, count: usize, what: &str, model: &str) -> Result<()> {
    if value >= count {
        return Err(usage(format!(
            "--{flag} {value} is out of range: {model} has {what} 0 to {}",
            count - 1
        )));
    }
    Ok(())
}

/// Token `id` with how it decodes.
fn named(tokenizer: &Tokenizer, id: u32) -> Result<NamedToken> {
    Ok(NamedToken {
        id,
        token: tokenizer.token_text(id)?,
    })
}

/// `--flag TEXT` as the one token it must be.
fn one_token(tokenizer: &Tokenizer, flag: &str, text: &str) -> Result<NamedToken> {
    let ids: Vec<u32> = tokenizer.encode(text)?.iter().map(|t| t.id).collect();
    match ids.as_slice() {
        [id] => named(tokenizer, *id),
        _ => {
            let pieces = ids
                .iter()
                .map(|&id| tokenizer.token_text(id).map(|t| format!("{t:?}")))
                .collect::<Result<Vec<_>>>()?;
            Err(usage(format!(
                "--{flag} {text:?} is {} tokens ({}); give one token",
                ids.len(),
                pieces.join(", ")
            )))
        }
    }
}

/// Each id decoded on its own: the labels of rows and columns.
fn decoded(tokenizer: &Tokenizer, ids: &[u32]) -> Result<Vec<String>> {
    ids.iter().map(|&id| tokenizer.token_text(id)).collect()
}

/// A `(T, d)` tensor as rows of f32.
fn matrix(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// `--top-k` may not exceed the vocabulary.
fn check_top_k(top_k: &TopKArgs, cfg: &Config, model: &str) -> Result<usize> {
    let k = top_k.top_k as usize;
    if k > cfg.vocab_size {
        return Err(usage(format!(
            "--top-k {k} is out of range: {model} has {} tokens, so 1 to {}",
            cfg.vocab_size, cfg.vocab_size
        )));
    }
    Ok(k)
}

/// The `k` highest logits of `logits` `(V,)`, with softmax probabilities and log-probabilities
/// computed in f64 from the f32 logits.
fn predictions(tokenizer: &Tokenizer, logits: &Tensor, k: usize) -> Result<Vec<Prediction>> {
    let logits: Vec<f32> = logits.to_dtype(DType::F32)?.to_vec1()?;
    ranked(tokenizer, &logits, k)
}

/// The `k` most likely tokens of one position's logits `(V,)`, most first.
fn ranked(tokenizer: &Tokenizer, logits: &[f32], k: usize) -> Result<Vec<Prediction>> {
    let log_z = dist::log_normalizer(logits);
    dist::top_k(logits, k)
        .into_iter()
        .enumerate()
        .map(|(rank, id)| {
            let logprob = logits[id] as f64 - log_z;
            Ok(Prediction {
                rank: rank + 1,
                id: id as u32,
                token: tokenizer.token_text(id as u32)?,
                prob: logprob.exp() as f32,
                logprob: logprob as f32,
                logit: logits[id],
            })
        })
        .collect()
}

/// A grid figure's `--title` and `--cmap`.
pub(crate) fn grid_style(a: &crate::cli::GridFigureArgs) -> crate::render::svg::Style<'_> {
    crate::render::svg::Style {
        title: a.title.as_deref(),
        cmap: a.cmap.map(cmap),
    }
}

/// The colour map `--cmap` names.
pub(crate) fn cmap(c: crate::cli::CmapArg) -> crate::render::color::Cmap {
    use crate::cli::CmapArg;
    use crate::render::color::Cmap;
    match c {
        CmapArg::Blues => Cmap::Blues,
        CmapArg::Viridis => Cmap::Viridis,
        CmapArg::Rdbu => Cmap::RdBu,
    }
}
