//! Every ```console block of README.md and of the pages in docs/ is run: each `$ gpt2-inspect …` line runs against the
//! fixture (in a scratch directory where `tests/` is the repository's), and what it prints,
//! stdout then stderr as a terminal shows them, must be what the README shows.
//!
//! In the README's expected output, a line `...` stands for any number of lines and `[..]`
//! for any text within a line (trycmd's conventions): where output cannot be stable (a
//! path, a size on another machine), or where the README shows only part of it.
//! Examples that cannot run here (they download a model) are in ```text blocks.

use std::path::Path;
use std::process::Command;

struct Example {
    /// `README.md:12`, where the example is.
    at: String,
    command: String,
    expected: Vec<String>,
}

fn examples(readme: &str, file: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut in_console = false;
    for (i, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            out.push(Example {
                at: format!("{file}:{}", i + 1),
                command: command.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(ex) = out.last_mut() {
            ex.expected.push(line.to_string());
        } else {
            panic!(
                "{file}:{}: console block output before any `$ ` line",
                i + 1
            );
        }
    }
    out
}

/// Whether `got` matches the pattern line `want` (`[..]` matches any text).
fn line_matches(want: &str, got: &str) -> bool {
    let parts: Vec<&str> = want.split("[..]").collect();
    if parts.len() == 1 {
        return want == got;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !got.starts_with(first) || !got[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &got[first.len()..got.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the lines `got` match the pattern lines `want` (`...` matches any lines).
fn lines_match(want: &[String], got: &[&str]) -> bool {
    match want.first() {
        None => got.is_empty(),
        Some(w) if w == "..." => (0..=got.len()).any(|skip| lines_match(&want[1..], &got[skip..])),
        Some(w) => !got.is_empty() && line_matches(w, got[0]) && lines_match(&want[1..], &got[1..]),
    }
}

#[test]
fn every_console_example_in_the_readme_prints_what_it_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec!["README.md".to_string()];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            pages.push(format!("docs/{name}"));
        }
    }
    let examples: Vec<Example> = (pages.iter())
        .flat_map(|page| examples(&std::fs::read_to_string(root.join(page)).unwrap(), page))
        .collect();
    assert!(
        examples.len() >= 20,
        "only {} examples found",
        examples.len()
    );
    assert!(
        examples.iter().any(|e| e.at.starts_with("README.md"))
            && examples.iter().any(|e| e.at.starts_with("docs/")),
        "the README and the docs pages both have examples"
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_gpt2-inspect"));
    let scratch = std::env::temp_dir().join(format!("gpt2-inspect-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    std::os::unix::fs::symlink(root.join("tests"), scratch.join("tests")).unwrap();
    // `gpt2-inspect` on PATH is the binary under test.
    let bin_dir = scratch.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin, bin_dir.join("gpt2-inspect")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut failures = Vec::new();
    for ex in &examples {
        assert!(
            ex.command.starts_with("gpt2-inspect "),
            "{}: a console example runs gpt2-inspect; put others in a ```text block",
            ex.at
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{} 2>&1", ex.command))
            .current_dir(&scratch)
            .env("PATH", &path)
            .env_remove("NO_COLOR")
            .env_remove("COLORTERM")
            .env_remove("COLUMNS")
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut got: Vec<&str> = text.lines().map(str::trim_end).collect();
        let mut want: Vec<String> = ex
            .expected
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect();
        // A blank line may separate examples in one block.
        while got.last() == Some(&"") {
            got.pop();
        }
        while want.last().is_some_and(String::is_empty) {
            want.pop();
        }
        if !lines_match(&want, &got) {
            failures.push(format!(
                "{}: $ {}\n--- the page shows:\n{}\n--- it prints:\n{}\n",
                ex.at,
                ex.command,
                want.join("\n"),
                got.join("\n")
            ));
        }
    }
    std::fs::remove_dir_all(&scratch).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_patterns_match_what_they_should_and_only_that() {
    assert!(line_matches("wrote [..].svg", "wrote head.svg"));
    assert!(line_matches("a [..] c [..] e", "a b c d e"));
    assert!(!line_matches("a [..] c", "a b d"));
    assert!(!line_matches("exact", "exactly"));
    let want: Vec<String> = ["one", "...", "four"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(lines_match(&want, &["one", "two", "three", "four"]));
    assert!(lines_match(&want, &["one", "four"]));
    assert!(!lines_match(&want, &["one", "two"]));
    assert!(!lines_match(&want, &["one", "four", "five"]));
}
