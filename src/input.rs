//! Where the text comes from: the argument, `-` or a pipe on standard input, `--file`, or
//! the sample sentence when a person at a terminal gave none.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::TextArgs;

pub const SAMPLE: &str = "The cat sat on the mat";

pub fn read_text(args: &TextArgs) -> Result<String> {
    let text = match (&args.text, &args.file) {
        (_, Some(path)) => read_file(path)?,
        (Some(t), None) if t == "-" => read_stdin()?,
        (Some(t), None) => t.clone(),
        (None, None) if std::io::stdin().is_terminal() => {
            eprintln!("no TEXT given: using the sample sentence {SAMPLE:?}");
            SAMPLE.to_string()
        }
        (None, None) => read_stdin()?,
    };
    if text.is_empty() {
        bail!("the text is empty: give TEXT, `-` with text on standard input, or --file PATH");
    }
    Ok(text)
}

fn read_stdin() -> Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    if bytes.is_empty() {
        bail!("standard input is empty: pipe some text in, or give TEXT");
    }
    decode(bytes, "standard input")
}

fn read_file(path: &Path) -> Result<String> {
    if path.is_dir() {
        bail!("--file {}: is a directory", path.display());
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("--file {}: cannot read", path.display()))?;
    decode(bytes, &format!("--file {}", path.display()))
}

/// UTF-8 with the position of the first bad byte; one trailing newline dropped.
fn decode(bytes: Vec<u8>, what: &str) -> Result<String> {
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
