//! `--csv` and `--tsv`: every command's reports as one tidy table that a CSV reader takes,
//! holding the numbers its JSON holds.

use std::collections::HashMap;

use crate::common::{cmd, fails, json};

/// RFC 4180: fields split on commas, a quoted field may hold commas, quotes (doubled) and
/// line breaks.
fn parse_csv(s: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, s.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "unterminated: {s:?}"
    );
    rows
}

/// Runs `args` with `flag` (`--csv` or `--tsv`), asserting success: stdout.
fn run(args: &[&str], flag: &str) -> String {
    let out = cmd().args(args).arg(flag).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} {flag}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

/// A table by column name: each column's fields, in row order.
struct Parsed {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Parsed {
    fn of(args: &[&str]) -> Parsed {
        let mut rows = parse_csv(&run(args, "--csv"));
        assert!(rows.len() >= 2, "{args:?}: no rows");
        let header = rows.remove(0);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(
                r.len(),
                header.len(),
                "{args:?}: row {i} {r:?} under {header:?}"
            );
        }
        Parsed { header, rows }
    }

    fn column(&self, name: &str) -> Vec<&str> {
        let i = (self.header.iter().position(|h| h == name))
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header));
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }

    /// A numeric column as f32, an empty field as NaN.
    fn numbers(&self, name: &str) -> Vec<f32> {
        (self.column(name).iter())
            .map(|f| match *f {
                "" => f32::NAN,
                f => f.parse().unwrap_or_else(|_| panic!("{name}: {f:?}")),
            })
            .collect()
    }
}

const TEXT: &str = "The cat sat on the mat";
const PAIR: [&str; 8] = [
    "--clean",
    "The cat sat on the mat",
    "--corrupt",
    "The dog sat on the mat",
    "--answer",
    " and",
    "--wrong",
    " with",
];

/// Every command that prints a table, and whether it leads with the `text` column.
fn every_command() -> Vec<(Vec<&'static str>, bool)> {
    let one = |args: &[&'static str]| args.to_vec();
    let pair = |args: &[&'static str]| [args, &PAIR[..]].concat();
    vec![
        (one(&["tokenize", TEXT, "A dog, \"quoted\""]), true),
        (one(&["next", TEXT, "-k", "3"]), true),
        (one(&["trace", TEXT]), true),
        (one(&["embed", TEXT, "--nearest", "2"]), true),
        (one(&["hidden", TEXT]), true),
        (one(&["hidden", TEXT, "--depth", "1"]), true),
        (one(&["lens", TEXT]), true),
        (one(&["lens", TEXT, "--all-positions"]), true),
        (one(&["score", TEXT, "-k", "2"]), true),
        (one(&["generate", TEXT, "-n", "3"]), true),
        (one(&["attention", TEXT, "--layer", "1", "--scores"]), true),
        (one(&["heads", TEXT]), false),
        (one(&["attribute", TEXT, "--answer", " and"]), false),
        (one(&["saliency", TEXT]), false),
        (one(&["saliency", TEXT, "--generate", "2"]), false),
        (
            one(&["ablate", TEXT, "--head", "1.2", "--metric", "kl"]),
            false,
        ),
        (one(&["ablate", TEXT, "--sweep"]), false),
        (
            pair(&[
                "patch",
                "--site",
                "head,pattern-dest-src",
                "--method",
                "both",
            ]),
            false,
        ),
        (pair(&["patch", "--path", "0.1", "--to", "v"]), false),
        (pair(&["circuit", "--faithfulness", "3"]), false),
        (one(&["info"]), false),
        (one(&["hooks"]), false),
    ]
}

#[test]
fn every_command_prints_one_tidy_table_in_csv_and_tsv() {
    for (args, text_column) in every_command() {
        let csv = Parsed::of(&args);
        let mut names: Vec<&String> = csv.header.iter().collect();
        names.dedup();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), csv.header.len(), "{args:?}: {:?}", csv.header);
        assert_eq!(
            csv.header[0] == "text",
            text_column,
            "{args:?}: {:?}",
            csv.header
        );
        let tsv = run(&args, "--tsv");
        let lines: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines[0], csv.header, "{args:?}");
        assert_eq!(lines.len(), csv.rows.len() + 1, "{args:?}");
        for (l, r) in lines[1..].iter().zip(&csv.rows) {
            assert_eq!(l.len(), r.len(), "{args:?}: {l:?}");
        }
    }
}

#[test]
fn the_tables_hold_the_numbers_the_json_holds() {
    let v = json(&["next", TEXT, "-k", "3"]);
    let t = Parsed::of(&["next", TEXT, "-k", "3"]);
    let want: Vec<f32> = (v["predictions"].as_array().unwrap().iter())
        .map(|p| p["prob"].as_f64().unwrap() as f32)
        .collect();
    assert_eq!(t.numbers("prob"), want);
    let ids: Vec<String> = (v["predictions"].as_array().unwrap().iter())
        .map(|p| p["id"].to_string())
        .collect();
    assert_eq!(t.column("id"), ids);

    let patch: Vec<&str> = [&["patch", "--site", "head"][..], &PAIR[..]].concat();
    let want = crate::common::floats(&json(&patch)["values"]);
    assert_eq!(Parsed::of(&patch).numbers("value"), want);

    let v = json(&["heads", TEXT]);
    let t = Parsed::of(&["heads", TEXT]);
    assert_eq!(
        t.numbers("induction"),
        crate::common::floats(&v["scores"]["induction"])
    );

    let v = json(&["ablate", TEXT, "--sweep"]);
    let want = crate::common::floats(&v["values"]);
    assert_eq!(
        Parsed::of(&["ablate", TEXT, "--sweep"]).numbers("change"),
        want
    );

    // A masked pattern entry is an empty field, where JSON has null.
    let dest_src = [&["patch", "--site", "pattern-dest-src"][..], &PAIR[..]].concat();
    let t = Parsed::of(&dest_src);
    let empty = t.column("value").iter().filter(|v| v.is_empty()).count();
    let nulls = json(&dest_src)["values"]
        .to_string()
        .matches("null")
        .count();
    assert!(empty > 0 && empty == nulls, "{empty} empty, {nulls} null");
}

#[test]
fn several_texts_are_told_apart_and_a_failed_line_has_no_rows() {
    let t = Parsed::of(&["next", "The cat", "A dog ran", "-k", "2"]);
    assert_eq!(t.column("text"), ["0", "0", "1", "1"]);
    let t = Parsed::of(&["tokenize", "A dog, \"quoted\""]);
    assert!(
        t.column("decoded").contains(&" \""),
        "{:?}",
        t.column("decoded")
    );
    assert_eq!(t.column("decoded")[1], " dog");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines.txt");
    std::fs::write(&file, "The cat sat\nx\nA dog ran off\n").unwrap();
    let out = (cmd()
        .args(["score", "--lines", "--csv", "--file"])
        .arg(&file))
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows = parse_csv(&String::from_utf8(out.stdout).unwrap());
    let texts: HashMap<&str, usize> = rows[1..].iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r[0].as_str()).or_default() += 1;
        m
    });
    assert_eq!(texts.get("0"), Some(&2));
    assert_eq!(texts.get("1"), None, "line 2 could not run: {rows:?}");
    assert_eq!(texts.get("2"), Some(&3));
}

#[test]
fn csv_and_tsv_are_refused_where_they_cannot_mean_anything() {
    fails(cmd().args(["next", TEXT, "--csv", "--json"]), 2, &["--csv"]);
    fails(cmd().args(["next", TEXT, "--csv", "--tsv"]), 2, &["--csv"]);
    let bertviz = ["attention", TEXT, "--format", "bertviz", "--tsv"];
    fails(cmd().args(bertviz), 2, &["bertviz", "--tsv"]);
}
