//! Where the text comes from: the argument, `-` or a pipe on standard input, `--file`, or
//! the sample sentence when a person at a terminal gave none.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::TextArgs;
use crate::error::usage;

pub const SAMPLE: &str = "The cat sat on the mat";

/// The most bytes read from standard input or a file: far more than any prompt (the model
/// sees at most 1024 tokens, a few KB of text), little enough that tokenizing it cannot
/// exhaust memory. `/dev/zero` is refused, not read forever.
pub const MAX_INPUT: u64 = 16 << 20;

/// The texts of a run and, with --lines, where each came from.
pub struct Input {
    pub texts: Vec<String>,
    /// With --lines: the input's name and each text's line number (from 1; empty lines
    /// are skipped, so the numbers can jump).
    pub lines: Option<Lines>,
}

/// Which line of which input each text of `--lines` is.
pub struct Lines {
    /// `--file PATH` or `standard input`.
    pub what: String,
    pub numbers: Vec<usize>,
}

/// How messages name text `i` of `n`: "line 4 of --file f" with --lines, else
/// [`which_text`].
pub fn text_name(i: usize, n: usize, lines: Option<&Lines>) -> String {
    match lines {
        Some(l) => format!("line {} of {}", l.numbers[i], l.what),
        None => which_text(i, n),
    }
}

/// The texts to run: the TEXT arguments, standard input, or a file (one text, or one per
/// line with --lines, each with its line). Empty texts are refused.
pub fn read(args: &TextArgs) -> Result<Input> {
    // A whole input to take as one text, or to split with --lines: `--file PATH`,
    // `--file -` (standard input), or standard input with --lines.
    let whole = match (args.texts.as_slice(), &args.file) {
        (_, Some(path)) if path.as_os_str() == "-" => {
            Some((read_stdin()?, "standard input".into()))
        }
        (_, Some(path)) => Some((read_file(path)?, format!("--file {}", path.display()))),
        ([] | [_], None) if args.lines && args.texts.iter().all(|t| t == "-") => {
            Some((read_stdin()?, "standard input".to_string()))
        }
        (_, None) if args.lines => {
            return Err(usage(
                "--lines splits --file or standard input into texts, not TEXT arguments: \
                 give --file PATH, or pipe the lines in",
            ))
        }
        _ => None,
    };
    let texts = match (whole, args.texts.as_slice()) {
        (Some((text, what)), _) if args.lines => return split_lines(&text, what),
        (Some((text, _)), _) => vec![text],
        (None, []) if std::io::stdin().is_terminal() => {
            eprintln!("no TEXT given: using the sample sentence {SAMPLE:?}");
            vec![SAMPLE.to_string()]
        }
        (None, []) => vec![read_stdin()?],
        (None, texts) => {
            if texts.iter().filter(|t| *t == "-").count() > 1 {
                bail!("`-` (standard input) can be given once");
            }
            texts
                .iter()
                .map(|t| {
                    if t == "-" {
                        read_stdin()
                    } else {
                        Ok(t.clone())
                    }
                })
                .collect::<Result<_>>()?
        }
    };
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        let which = which_text(i, texts.len());
        bail!("{which} is empty: give TEXT, `-` with text on standard input, or --file PATH");
    }
    Ok(Input { texts, lines: None })
}

/// `--lines`: one text per non-empty line of `text` (`\r\n` or `\n`), with its line number.
fn split_lines(text: &str, what: String) -> Result<Input> {
    let (numbers, texts): (Vec<usize>, Vec<String>) = (text.split('\n').enumerate())
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l).to_string()))
        .filter(|(_, l)| !l.is_empty())
        .unzip();
    if texts.is_empty() {
        bail!("{what} has no non-empty lines");
    }
    Ok(Input {
        texts,
        lines: Some(Lines { what, numbers }),
    })
}

/// How messages name text `i` of `n`: "the text" when it is the only one.
pub fn which_text(i: usize, n: usize) -> String {
    match n {
        1 => "the text".to_string(),
        _ => format!("text {} of {n}", i + 1),
    }
}

/// Standard input, which must hold text.
pub fn read_stdin() -> Result<String> {
    let bytes = read_bounded(std::io::stdin().lock(), "standard input")?;
    if bytes.is_empty() {
        bail!("standard input is empty: pipe some text in, or give TEXT");
    }
    text_from_bytes(bytes, "standard input")
}

/// Standard input when something is piped in; `None` when it is empty.
pub fn read_piped() -> Result<Option<String>> {
    let bytes = read_bounded(std::io::stdin().lock(), "standard input")?;
    match bytes.is_empty() {
        true => Ok(None),
        false => Ok(Some(text_from_bytes(bytes, "standard input")?)),
    }
}

/// A `--file`'s text.
pub fn read_file(path: &Path) -> Result<String> {
    if path.is_dir() {
        bail!("--file {}: is a directory", path.display());
    }
    let what = format!("--file {}", path.display());
    let file = std::fs::File::open(path).with_context(|| format!("{what}: cannot read"))?;
    let bytes = read_bounded(file, &what)?;
    text_from_bytes(bytes, &what)
}

/// Everything `r` holds, up to [`MAX_INPUT`] bytes; more is an error.
fn read_bounded(r: impl Read, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{what}: cannot read"))?;
    if bytes.len() as u64 > MAX_INPUT {
        bail!(
            "{what} holds more than {} MiB, the most gpt2-inspect reads (the model sees at most \
             1024 tokens, a few KB of text); give the part you need",
            MAX_INPUT >> 20
        );
    }
    Ok(bytes)
}

/// Text read from `what` (a file, standard input): UTF-8, else an error with the offset of
/// the first bad byte; one trailing newline dropped.
pub fn text_from_bytes(bytes: Vec<u8>, what: &str) -> Result<String> {
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        anyhow::anyhow!("{what} is not valid UTF-8: bad byte at offset {at}")
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}
