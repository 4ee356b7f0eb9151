//! `--csv` and `--tsv`: every report as one tidy table, a row per item (a token, a cell of
//! a grid, an edge), for pandas, R or a spreadsheet. A report whose table view has several
//! parts (a trace's stages and predictions) merges them under a leading `table` column,
//! each row empty in the other parts' columns. A command that takes several texts leads
//! with a `text` column (its index, from 0), for one text as for many.
//!
//! CSV is RFC 4180 with every text field quoted (tokens begin with spaces); TSV escapes a
//! tab, a newline, a carriage return and a backslash inside a field as `\t`, `\n`, `\r`
//! and `\\`. A missing value (NaN, a masked cell, a part's absent column) is an empty
//! field; infinities are `inf` and `-inf`.

use std::io::{self, Write};

/// One field.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Empty,
}

macro_rules! int_cells {
    ($($t:ty),*) => {$(
        impl From<$t> for Cell {
            fn from(v: $t) -> Cell {
                Cell::Int(v as i64)
            }
        }
    )*};
}

int_cells!(usize, u32, u64, i64);

impl From<f32> for Cell {
    fn from(v: f32) -> Cell {
        Cell::F32(v)
    }
}

impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        Cell::F64(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Cell {
        Cell::Text(v.to_string())
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Cell {
        Cell::Text(v)
    }
}

impl From<bool> for Cell {
    fn from(v: bool) -> Cell {
        Cell::Text(v.to_string())
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Cell {
        v.map_or(Cell::Empty, Into::into)
    }
}

/// A shape as `1x6x64`.
pub fn shape(dims: &[usize]) -> Cell {
    let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
    Cell::Text(dims.join("x"))
}

/// Named columns and their rows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row, one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len(), "{:?}", self.columns);
        self.rows.push(row);
    }
}

/// A report's table view: its parts, each named (one part: the table itself).
pub trait Tabular {
    fn tables(&self) -> Vec<(&'static str, Table)>;
}

/// The parts as one table: one part as it is; several under a leading `table` column, with
/// the union of their columns in order of first appearance.
pub fn merged(parts: Vec<(&'static str, Table)>) -> Table {
    if parts.len() == 1 {
        return parts.into_iter().next().map(|(_, t)| t).unwrap_or_default();
    }
    let mut columns = vec!["table"];
    for (_, t) in &parts {
        for c in &t.columns {
            if !columns.contains(c) {
                columns.push(c);
            }
        }
    }
    let mut out = Table::new(&columns);
    for (name, t) in parts {
        for row in t.rows {
            let mut cells = vec![Cell::Empty; columns.len()];
            cells[0] = name.into();
            for (c, v) in t.columns.iter().zip(row) {
                let i = columns
                    .iter()
                    .position(|x| x == c)
                    .expect("a merged column");
                cells[i] = v;
            }
            out.push(cells);
        }
    }
    out
}

/// CSV or TSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    Comma,
    Tab,
}

impl Separator {
    fn char(self) -> char {
        match self {
            Separator::Comma => ',',
            Separator::Tab => '\t',
        }
    }

    fn field(self, cell: &Cell) -> String {
        match cell {
            Cell::Int(v) => v.to_string(),
            Cell::F32(v) => number(*v as f64, v.to_string()),
            Cell::F64(v) => number(*v, v.to_string()),
            Cell::Empty => String::new(),
            Cell::Text(s) => match self {
                Separator::Comma => format!("\"{}\"", s.replace('"', "\"\"")),
                Separator::Tab => s
                    .replace('\\', "\\\\")
                    .replace('\t', "\\t")
                    .replace('\n', "\\n")
                    .replace('\r', "\\r"),
            },
        }
    }

    /// The header line: column names are plain words, never quoted.
    pub fn header(self, out: &mut dyn Write, names: &[&str]) -> io::Result<()> {
        let mut sep = [0u8; 4];
        writeln!(out, "{}", names.join(self.char().encode_utf8(&mut sep)))
    }

    /// One line of `fields`.
    pub fn line(self, out: &mut dyn Write, fields: &[Cell]) -> io::Result<()> {
        let fields: Vec<String> = fields.iter().map(|c| self.field(c)).collect();
        let mut sep = [0u8; 4];
        let sep = self.char().encode_utf8(&mut sep);
        writeln!(out, "{}", fields.join(sep))
    }
}

/// A finite number as `shown` (the shortest text that reads back the same), NaN as empty.
fn number(v: f64, shown: String) -> String {
    match v {
        v if v.is_nan() => String::new(),
        f64::INFINITY => "inf".into(),
        f64::NEG_INFINITY => "-inf".into(),
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sep: Separator, cells: &[Cell]) -> String {
        let mut out = Vec::new();
        sep.line(&mut out, cells).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_quoted_or_escaped_and_numbers_read_back() {
        let cells = [
            Cell::from(" say \"hi\", then"),
            Cell::from(0.1f32),
            Cell::from(f32::NAN),
            Cell::from(f64::NEG_INFINITY),
            Cell::from(3usize),
            Cell::from("a\tb\nc\\"),
        ];
        assert_eq!(
            text(Separator::Comma, &cells),
            "\" say \"\"hi\"\", then\",0.1,,-inf,3,\"a\tb\nc\\\"\n"
        );
        assert_eq!(
            text(Separator::Tab, &cells),
            " say \"hi\", then\t0.1\t\t-inf\t3\ta\\tb\\nc\\\\\n"
        );
    }

    #[test]
    fn parts_merge_under_a_table_column() {
        let mut a = Table::new(&["x", "y"]);
        a.push(vec![1usize.into(), 2usize.into()]);
        let mut b = Table::new(&["y", "z"]);
        b.push(vec![3usize.into(), 4usize.into()]);
        let m = merged(vec![("a", a), ("b", b)]);
        assert_eq!(m.columns, ["table", "x", "y", "z"]);
        assert_eq!(
            m.rows[1],
            vec!["b".into(), Cell::Empty, 3usize.into(), 4usize.into()]
        );
    }
}
