//! `--json`: the report as one compact JSON object and a newline.

use std::io::{self, Write};

use serde::Serialize;

pub fn write<R: Serialize>(out: &mut dyn Write, report: &R) -> io::Result<()> {
    serde_json::to_writer(&mut *out, report)?;
    writeln!(out)
}
