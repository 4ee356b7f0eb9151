//! How reports reach standard output: one [`Format`] chosen once per run, one printer per
//! format behind [`Printer`], every command handing its reports to it (as hyperfine's
//! exporters). Adding a format is a variant here, its printer and its arm in
//! [`Format::printer`].

use std::io::{self, Write};

use anyhow::Result;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use crate::render::format::delimited::{merged, Cell, Separator, Tabular};
use crate::render::format::json;
use crate::render::table;
use crate::reports::{Header, NotRun};

/// What `--json`, `--jsonl`, `--csv` or `--tsv` chose, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables and pictures for a person.
    Table,
    /// One JSON object; several texts in one batch envelope.
    Json,
    /// One JSON object per text, each on its own line (no envelope).
    Jsonl,
    /// Each report as one tidy table, comma-separated (see [`crate::render::format::delimited`]).
    Csv,
    /// The same, tab-separated.
    Tsv,
}

impl Format {
    pub fn from_flags(json: bool, jsonl: bool, csv: bool, tsv: bool) -> Self {
        match (json, jsonl, csv, tsv) {
            (_, true, _, _) => Format::Jsonl,
            (true, false, _, _) => Format::Json,
            (false, false, true, _) => Format::Csv,
            (false, false, false, true) => Format::Tsv,
            (false, false, false, false) => Format::Table,
        }
    }

    /// Whether reports are JSON (either way).
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::Jsonl)
    }

    /// Whether reports are tables and pictures for a person.
    pub fn is_table(self) -> bool {
        self == Format::Table
    }

    /// The printer of this format for a run over `run.texts` (one report per text; a run
    /// of one text or none prints its report alone), drawing tables with `table`.
    pub fn printer<'a, R: Serialize + Tabular>(
        self,
        run: Run<'a>,
        table: &'a dyn Fn(&mut dyn Write, &R) -> io::Result<()>,
    ) -> Box<dyn Printer<R> + 'a> {
        match self {
            Format::Table => Box::new(Tables {
                run,
                table,
                written: 0,
            }),
            Format::Json => Box::new(Envelope { run, opened: false }),
            Format::Jsonl => Box::new(Lines),
            Format::Csv | Format::Tsv => Box::new(Delimited {
                sep: match self {
                    Format::Csv => Separator::Comma,
                    _ => Separator::Tab,
                },
                text_column: !run.texts.is_empty(),
                header: false,
                index: 0,
            }),
        }
    }
}

/// The texts a run reports on, in input order, and what the JSON envelope closes with.
pub struct Run<'a> {
    pub texts: &'a [String],
    /// Each text's ids, for the envelope's padded batch.
    pub ids: &'a [Vec<u32>],
    pub pad: u32,
    /// The envelope's header (its `text` is not written: each report has its own); needed
    /// only by `--json` over several texts ([`Run::needs_header`]).
    pub header: Option<Header>,
}

impl Run<'_> {
    fn several(&self) -> bool {
        self.texts.len() > 1
    }

    /// Whether `format` writes the envelope for `n` texts, so that [`Run::header`] is needed.
    pub fn needs_header(format: Format, n: usize) -> bool {
        format == Format::Json && n > 1
    }
}

/// Writes a run's reports in input order, then ends the output.
pub trait Printer<R> {
    /// The report of the next text.
    fn print(&mut self, out: &mut dyn Write, report: &R) -> Result<()>;
    /// In place of the next text's report: why it was not run.
    fn fail(&mut self, out: &mut dyn Write, not_run: &NotRun) -> Result<()>;
    /// After the last report.
    fn finish(&mut self, out: &mut dyn Write) -> Result<()>;
    /// Before the next text is computed: whether this format shows it as it is computed
    /// (tables: its heading is written now, and the command writes the rest itself, as
    /// `generate` streams tokens); then nothing is printed for it here.
    fn live(&mut self, out: &mut dyn Write) -> Result<bool>;
}

/// Tables: one after another, under a heading when there are several.
struct Tables<'a, R> {
    run: Run<'a>,
    table: &'a dyn Fn(&mut dyn Write, &R) -> io::Result<()>,
    written: usize,
}

impl<R> Tables<'_, R> {
    /// The next text's heading when there are several.
    fn heading(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let i = self.written;
        self.written += 1;
        if self.run.several() {
            if i > 0 {
                writeln!(out)?;
            }
            table::batch_heading(out, i, self.run.texts.len(), &self.run.texts[i])?;
        }
        Ok(())
    }
}

impl<R> Printer<R> for Tables<'_, R> {
    fn print(&mut self, out: &mut dyn Write, report: &R) -> Result<()> {
        self.heading(out)?;
        (self.table)(out, report)?;
        Ok(())
    }

    fn fail(&mut self, out: &mut dyn Write, not_run: &NotRun) -> Result<()> {
        self.heading(out)?;
        writeln!(out, "not run: {}", not_run.error)?;
        Ok(())
    }

    fn finish(&mut self, _: &mut dyn Write) -> Result<()> {
        Ok(())
    }

    fn live(&mut self, out: &mut dyn Write) -> Result<bool> {
        self.heading(out)?;
        Ok(true)
    }
}

/// `--csv` and `--tsv`: one header line, then every report's rows, each led by its text's
/// index when the command takes texts. A text that was not run has no rows (stderr says
/// why).
struct Delimited {
    sep: Separator,
    text_column: bool,
    header: bool,
    index: usize,
}

impl<R: Tabular> Printer<R> for Delimited {
    fn print(&mut self, out: &mut dyn Write, report: &R) -> Result<()> {
        let table = merged(report.tables());
        let lead = |cells: Vec<Cell>, first: Cell| match self.text_column {
            true => [vec![first], cells].concat(),
            false => cells,
        };
        if !self.header {
            let text = self.text_column.then_some("text");
            let names: Vec<&str> = text
                .into_iter()
                .chain(table.columns.iter().copied())
                .collect();
            self.sep.header(out, &names)?;
            self.header = true;
        }
        for row in table.rows {
            self.sep
                .line(out, &lead(row, Cell::Int(self.index as i64)))?;
        }
        self.index += 1;
        Ok(())
    }

    fn fail(&mut self, _: &mut dyn Write, _: &NotRun) -> Result<()> {
        self.index += 1;
        Ok(())
    }

    fn finish(&mut self, _: &mut dyn Write) -> Result<()> {
        Ok(())
    }

    fn live(&mut self, _: &mut dyn Write) -> Result<bool> {
        Ok(false)
    }
}

/// `--jsonl`: an object a line.
struct Lines;

impl<R: Serialize> Printer<R> for Lines {
    fn print(&mut self, out: &mut dyn Write, report: &R) -> Result<()> {
        Ok(json::write(out, report)?)
    }

    fn fail(&mut self, out: &mut dyn Write, not_run: &NotRun) -> Result<()> {
        Ok(json::write(out, not_run)?)
    }

    fn finish(&mut self, _: &mut dyn Write) -> Result<()> {
        Ok(())
    }

    fn live(&mut self, _: &mut dyn Write) -> Result<bool> {
        Ok(false)
    }
}

/// `--json`: one report alone; several in the batch envelope `{"schema", "version",
/// "model", "revision", "batch": [...], "input_ids", "attention_mask", "shape"}`, each
/// report written as it arrives (memory holds one report, never the batch's), the padding
/// last. Head and tail come from the same serializer as the reports.
struct Envelope<'a> {
    run: Run<'a>,
    opened: bool,
}

impl Envelope<'_> {
    /// One entry of the batch (a report, or why a text was not run); alone when the run
    /// has one text.
    fn entry(&mut self, out: &mut dyn Write, value: &impl Serialize) -> Result<()> {
        if !self.run.several() {
            return Ok(json::write(out, value)?);
        }
        match self.opened {
            false => self.open(out)?,
            true => write!(out, ",")?,
        }
        json::value(out, value)?;
        Ok(())
    }

    /// Writes the envelope's head, up to the batch's opening bracket.
    fn open(&mut self, out: &mut dyn Write) -> Result<()> {
        let head = envelope_head(self.run.header.as_ref())?;
        write!(out, "{head},\"batch\":[")?;
        self.opened = true;
        Ok(())
    }
}

impl<R: Serialize> Printer<R> for Envelope<'_> {
    fn print(&mut self, out: &mut dyn Write, report: &R) -> Result<()> {
        self.entry(out, report)
    }

    fn fail(&mut self, out: &mut dyn Write, not_run: &NotRun) -> Result<()> {
        self.entry(out, not_run)
    }

    fn finish(&mut self, out: &mut dyn Write) -> Result<()> {
        if !self.run.several() {
            return Ok(());
        }
        if !self.opened {
            self.open(out)?;
        }
        let padded = Padded {
            ids: self.run.ids,
            pad: self.run.pad,
        };
        let mut tail = Vec::new();
        json::value(&mut tail, &padded)?;
        // `{"input_ids":…}` continues the envelope: its opening brace is the batch's `],`.
        write!(out, "],")?;
        out.write_all(&tail[1..])?;
        writeln!(out)?;
        Ok(())
    }

    fn live(&mut self, _: &mut dyn Write) -> Result<bool> {
        Ok(false)
    }
}

/// The batch envelope of entries already written as JSON (a merge's stored reports, in
/// order), byte for byte what [`Envelope`] writes for the same reports: one entry alone, else
/// the head, the entries, and the padded `ids`.
pub(crate) fn write_envelope(
    out: &mut dyn Write,
    header: &Header,
    entries: &[&[u8]],
    (ids, pad): (&[Vec<u32>], u32),
) -> Result<()> {
    if let [one] = entries {
        out.write_all(one)?;
        writeln!(out)?;
        return Ok(());
    }
    write!(out, "{},\"batch\":[", envelope_head(Some(header))?)?;
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            write!(out, ",")?;
        }
        out.write_all(entry)?;
    }
    let mut tail = Vec::new();
    json::value(&mut tail, &Padded { ids, pad })?;
    write!(out, "],")?;
    out.write_all(&tail[1..])?;
    writeln!(out)?;
    Ok(())
}

/// The header as the envelope opens it: `{"schema":…,"revision":…` without the closing
/// brace and without `text`.
fn envelope_head(header: Option<&Header>) -> Result<String> {
    /// [`Header`]'s fields but `text`, in its order.
    #[derive(Serialize)]
    struct Head<'a> {
        schema: u32,
        version: &'a str,
        model: &'a str,
        revision: &'a Option<String>,
    }
    let h = header.ok_or_else(|| anyhow::anyhow!("the batch envelope was given no header"))?;
    let head = Head {
        schema: h.schema,
        version: h.version,
        model: &h.model,
        revision: &h.revision,
    };
    let s = serde_json::to_string(&head)?;
    Ok(s[..s.len() - 1].to_string())
}

/// The batch right-padded with `pad`, as Hugging Face's `tokenizer(texts, padding=True)`:
/// `input_ids`, `attention_mask` (1 = real token) and `shape`, made a row at a time as they
/// are written.
struct Padded<'a> {
    ids: &'a [Vec<u32>],
    pad: u32,
}

impl Serialize for Padded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.ids.iter().map(Vec::len).max().unwrap_or(0);
        let rows = |f: fn(&[u32], u32) -> Vec<u32>, with: u32| Rows {
            ids: self.ids,
            t,
            row: f,
            with,
        };
        let mut st = s.serialize_struct("Padded", 3)?;
        st.serialize_field("input_ids", &rows(|r, _| r.to_vec(), self.pad))?;
        st.serialize_field("attention_mask", &rows(|r, _| vec![1; r.len()], 0))?;
        st.serialize_field("shape", &[self.ids.len(), t])?;
        st.end()
    }
}

/// Rows `row(ids[i])` filled to `t` with `with`.
struct Rows<'a> {
    ids: &'a [Vec<u32>],
    t: usize,
    row: fn(&[u32], u32) -> Vec<u32>,
    with: u32,
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.ids.iter().map(|r| {
            let mut row = (self.row)(r, self.with);
            row.resize(self.t, self.with);
            row
        }))
    }
}
