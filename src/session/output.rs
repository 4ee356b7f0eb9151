//! Where a command's output goes besides its report: a report of its own through the
//! session's printer, files written atomically (`--svg`, `--html`), and the error said when
//! values stopped being finite.

use std::io::{self, Write};

use anyhow::Result;
use candle_core::Tensor;

use crate::render::format::delimited::Tabular;
use crate::render::format::printer::Format;
use crate::session::Session;

/// Writes a report of its own (not one per text) through the session's printer.
pub fn emit<R: serde::Serialize + Tabular>(
    session: &Session,
    out: &mut dyn Write,
    report: &R,
    table: impl Fn(&mut dyn Write, &R) -> io::Result<()>,
) -> Result<()> {
    let mut printer = session.printer(&[], &[], 0, &table)?;
    printer.print(out, report)?;
    printer.finish(out)
}

/// Several reports of one run (`patch`'s sites) and the one report `whole` makes of them,
/// which `--json`, the tables and CSV/TSV print (its table: the parts' one after another);
/// `--jsonl` writes the parts, one a line.
pub fn emit_parts<R, W>(
    session: &Session,
    out: &mut dyn Write,
    parts: Vec<R>,
    whole: impl FnOnce(Vec<R>) -> W,
    table: impl Fn(&mut dyn Write, &W) -> io::Result<()>,
) -> Result<()>
where
    R: serde::Serialize + Tabular,
    W: serde::Serialize + Tabular,
{
    match session.output.format {
        Format::Jsonl => {
            let none = |_: &mut dyn Write, _: &R| Ok(());
            let mut printer = session.printer(&[], &[], 0, &none)?;
            for part in &parts {
                printer.print(out, part)?;
            }
            printer.finish(out)
        }
        Format::Table | Format::Json | Format::Csv | Format::Tsv => {
            emit(session, out, &whole(parts), table)
        }
    }
}

/// `--svg FILE`, when given: the figure `draw` writes, atomically, and a line saying so.
pub fn write_svg(
    session: &Session,
    path: Option<&std::path::Path>,
    draw: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    write_file(session, "--svg", path, draw)
}

/// `flag FILE`, when given: what `draw` writes, atomically, and a line saying so.
pub fn write_file(
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

/// A command's report, and what went wrong that the report still shows: values that stopped
/// being finite numbers (see [`check_finite`]). The report is printed, then the problem is the
/// command's error (exit 1); a server answers both.
pub struct Built<R> {
    pub report: R,
    pub problem: Option<anyhow::Error>,
}

impl<R> Built<R> {
    /// After the report is printed: the command's result.
    pub fn finish(self) -> Result<()> {
        self.problem.map_or(Ok(()), Err)
    }
}

/// What is said when values stopped being finite numbers: where first (`hook`), and for
/// which text when there are several. Returned after the reports are written: exit 1.
pub fn non_finite_error(hook: crate::model::Hook, which: Option<String>) -> anyhow::Error {
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
pub fn check_finite(
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

/// Standard output whose write errors say that they are about standard output (a full
/// disk behind a redirection); the error kind is kept, so a closed pipe is still quiet.
pub struct Stdout<W>(pub W);

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
