//! docs/ARCHITECTURE.md stays true: every file it names exists, and every type, function,
//! module or hook name it puts in backticks is declared in `src/`.

use std::collections::BTreeSet;
use std::path::Path;

/// The inline `code` spans of `text`, fenced blocks left out.
fn spans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(code), Some(_)) = (parts.next(), parts.next()) {
            out.push(code.to_string());
        }
    }
    out
}

/// Every `.rs` file below `dir`, read.
fn sources(dir: &Path, into: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Whether `name` is declared in `src`: an item (`fn`, `struct`, `enum`, `trait`, `type`,
/// `const`, `mod`, `macro_rules!`), an enum variant or field at the start of a line, or a
/// hook suffix in a string literal.
fn declared(name: &str, src: &[String]) -> bool {
    let items = [
        "fn",
        "struct",
        "enum",
        "trait",
        "type",
        "const",
        "mod",
        "macro_rules!",
    ];
    src.iter().any(|file| {
        file.lines().any(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            let line = line.strip_prefix("pub(super) ").unwrap_or(line);
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let item = items.iter().any(|kw| {
                line.strip_prefix(kw)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .is_some_and(|rest| starts_with_word(rest, name))
            });
            item || starts_with_word(line, name) || line.contains(&format!("\"{name}\""))
        }) || file.contains(&format!(".{name}\""))
    })
}

/// Whether `s` starts with the identifier `name`, not a longer one.
fn starts_with_word(s: &str, name: &str) -> bool {
    s.strip_prefix(name)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// A file, not a flag (`-k/--top-k`) or a pattern (`src/commands/<name>.rs`).
fn is_path(span: &str) -> bool {
    span.contains('/') && !span.contains([' ', '<']) && !span.starts_with(['#', '-'])
}

/// Names from outside the crate that the page may use: Rust's, serde's and JSON's.
const OUTSIDE: &[&str] = &["Serialize", "u16", "u32", "f32", "f64", "null"];

fn is_rust_name(span: &str) -> bool {
    let span = span.strip_suffix("()").unwrap_or(span);
    !span.is_empty()
        && span.split("::").all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[test]
fn architecture_names_only_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let mut src = Vec::new();
    sources(&root.join("src"), &mut src);
    let mut missing = BTreeSet::new();
    let mut checked = 0;
    for span in spans(&doc) {
        if is_path(&span) {
            checked += 1;
            let file = span.trim_end_matches("'s");
            if !root.join(file).exists() && !root.join("src").join(file).exists() {
                missing.insert(span.clone());
            }
        } else if is_rust_name(&span) && !OUTSIDE.contains(&span.as_str()) {
            checked += 1;
            let name = span.strip_suffix("()").unwrap_or(&span);
            for seg in name.split("::") {
                if !declared(seg, &src) {
                    missing.insert(format!("{seg} (in `{span}`)"));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} names were checked");
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names what src/ does not have: {missing:?}"
    );
}
