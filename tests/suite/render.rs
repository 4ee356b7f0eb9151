//! What people look at: the terminal heatmap (snapshots of plain and coloured output), the
//! SVG figure and the HTML report (well-formed, escaped, self-contained, and the numbers they
//! carry checked against Hugging Face's attention probabilities).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{
    cmd, fails, flat, max_abs_diff, page_data, page_f32s, page_u16s, Reference, Scratch, TOL,
};
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

const CAT: &str = "The cat sat on the mat";
const INJECTION: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";
/// Variables that decide colour and width; every test sets the ones it wants.
const TERMINAL_ENV: [&str; 5] = ["NO_COLOR", "COLORTERM", "TERM", "COLUMNS", "CLICOLOR_FORCE"];

/// The binary in the repository root on the fixture, named by a relative path so that the
/// model name in titles is the same on every machine.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--model", "tests/fixtures/tiny-gpt2"])
        .args(args);
    for k in TERMINAL_ENV {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str], env: &[(&str, &str)]) -> String {
    String::from_utf8(run(args, env).stdout).unwrap()
}

/// `attention TEXT FLAGS...`, the flags split at spaces; stdout.
fn attention(text: &str, flags: &str, env: &[(&str, &str)]) -> String {
    let mut args = vec!["attention", text];
    args.extend(flags.split_whitespace());
    stdout(&args, env)
}

/// Escape characters shown as `␛` so that snapshots read as text.
fn visible(s: &str) -> String {
    s.replace('\x1b', "␛")
}

/// Text without its SGR colour sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// HF's attention probabilities of "The cat sat on the mat" (prompt 2) for one head, (T, T).
fn hf_attention(layer: usize, head: usize) -> Vec<Vec<f32>> {
    let reference = Reference::load();
    assert_eq!(reference.prompts[2], CAT);
    let a = reference.get("p2.attentions"); // (L, H, T, T)
    let head = a.get(layer).unwrap().get(head).unwrap();
    let t = head.dim(0).unwrap();
    flat(&head).chunks(t).map(<[f32]>::to_vec).collect()
}

const TRUECOLOR: [(&str, &str); 2] = [("COLORTERM", "truecolor"), ("COLUMNS", "100")];

#[test]
fn plain_output_without_colour() {
    let plain = attention(CAT, "--color never --layer 0 --head 1", &TRUECOLOR);
    assert!(!plain.contains('\x1b'));
    insta::assert_snapshot!("plain_layer0_head1", plain);
    // Not a terminal, NO_COLOR, TERM=dumb: the same plain table under `auto`.
    for env in [vec![], vec![("NO_COLOR", "1")], vec![("TERM", "dumb")]] {
        let auto = attention(CAT, "--layer 0 --head 1", &env);
        assert_eq!(auto, plain, "{env:?}");
    }
    // An explicit --color always wins over NO_COLOR.
    let forced = attention(
        CAT,
        "--color always --layer 0 --head 1",
        &[("NO_COLOR", "1")],
    );
    assert!(forced.contains("\x1b["));
}

#[test]
fn truecolor_heatmap_with_values() {
    let out = attention(CAT, "--color always --layer 0 --head 1 --annot", &TRUECOLOR);
    assert!(out.contains("\x1b[48;2;") && !out.contains("\x1b[48;5;"));
    insta::assert_snapshot!("truecolor_annot_layer0_head1", visible(&out));
}

#[test]
fn ansi256_heatmap_without_truecolor() {
    let out = attention(
        CAT,
        "--color always --layer 0 --head 1",
        &[("COLUMNS", "100")],
    );
    assert!(out.contains("\x1b[48;5;") && !out.contains("\x1b[48;2;"));
    insta::assert_snapshot!("ansi256_layer0_head1", visible(&out));
}

#[test]
fn all_heads_as_a_grid() {
    let out = attention(
        CAT,
        "--color always --layer 1 --all-heads",
        &[("COLORTERM", "truecolor"), ("COLUMNS", "80")],
    );
    let text = strip_ansi(&out);
    for h in 0..4 {
        assert!(text.contains(&format!("L1 H{h}")), "{text}");
    }
    insta::assert_snapshot!("grid_layer1", visible(&out));
}

#[test]
fn narrow_terminals_cut_keys_with_a_note() {
    let long = "In 1905, Albert Einstein published four papers that changed physics";
    let out = attention(
        long,
        "--color always --layer 0 --head 0",
        &[("COLORTERM", "truecolor"), ("COLUMNS", "30")],
    );
    let text = strip_ansi(&out);
    assert!(text.contains("keys 7 to 10 not shown"), "{text}");
    // The map (key labels and rows) fits; prose lines may wrap.
    let map = text.lines().skip(1).take_while(|l| !l.starts_with("scale"));
    assert!(
        map.clone().all(|l| l.width() <= 30),
        "a map line is wider than 30 columns:\n{text}"
    );
    assert_eq!(map.count(), 8 + 11, "key label lines and one row per token");
    insta::assert_snapshot!("narrow_30_columns", visible(&out));
}

#[test]
fn annotated_values_are_hf_probabilities() {
    let out = attention(CAT, "--color always --layer 0 --head 1 --annot", &TRUECOLOR);
    let hf = hf_attention(0, 1);
    // Masked cells are drawn as `╱╱`, touching the values.
    let text = strip_ansi(&out).replace('╱', " ");
    let mut rows = 0;
    for (i, line) in text
        .lines()
        .filter(|l| l.starts_with(char::is_numeric))
        .enumerate()
    {
        let values: Vec<f32> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .skip(1) // the position
            .collect();
        assert_eq!(values.len(), i + 1, "row {i}: {line}");
        for (j, v) in values.iter().enumerate() {
            assert!(
                (v - hf[i][j]).abs() <= 0.005 + TOL,
                "row {i} key {j}: shown {v}, HF {}",
                hf[i][j]
            );
        }
        rows += 1;
    }
    assert_eq!(rows, hf.len());
}

#[test]
fn window_picks_a_span() {
    let v: Value = serde_json::from_str(&attention(
        CAT,
        "--layer 0 --head 1 --window 2:5 --json",
        &[],
    ))
    .unwrap();
    assert_eq!(v["window"], serde_json::json!([2, 5]));
    assert_eq!(v["tokens"], serde_json::json!([" sat", " on", " the"]));
    let hf = hf_attention(0, 1);
    for i in 0..3 {
        for j in 0..3 {
            let got = v["weights"][i][j].as_f64().unwrap() as f32;
            assert!((got - hf[2 + i][2 + j]).abs() <= TOL, "({i}, {j})");
        }
    }
    let out = attention(
        CAT,
        "--color always --layer 0 --head 1 --window 2:5 --annot",
        &TRUECOLOR,
    );
    insta::assert_snapshot!("window_2_5", visible(&out));
    // Open ends: `3:` is positions 3..T, `:2` is 0..2.
    let tail = attention(CAT, "--layer 0 --window 3: --json", &[]);
    assert!(tail.contains(r#""window":[3,6]"#), "{tail}");
    let head = attention(CAT, "--layer 0 --window :2 --json", &[]);
    assert!(head.contains(r#""window":[0,2]"#), "{head}");
}

#[test]
fn misused_figure_flags_are_usage_errors() {
    let c = |args: &[&str]| {
        let mut c = crate::common::cmd();
        c.args(args);
        c
    };
    fails(
        &mut c(&["attention", CAT, "--window", "4:2"]),
        2,
        &["--window"],
    );
    fails(
        &mut c(&["attention", CAT, "--window", "0:99"]),
        2,
        &["--window", "6 tokens"],
    );
    fails(
        &mut c(&["attention", CAT, "--window", "x"]),
        2,
        &["--window"],
    );
    fails(
        &mut c(&["attention", CAT, "--head", "1", "--all-heads"]),
        2,
        &["--all-heads"],
    );
    fails(
        &mut c(&["attention", CAT, "cat", "--svg", "/tmp/never.svg"]),
        2,
        &["--svg"],
    );
    fails(
        &mut c(&[
            "attention",
            CAT,
            "--format",
            "bertviz",
            "--svg",
            "/tmp/never.svg",
        ]),
        2,
        &["--svg"],
    );
    fails(
        &mut c(&["attention", CAT, "--svg", "/no/such/dir/a.svg"]),
        1,
        &["--svg", "/no/such/dir"],
    );
    fails(
        &mut c(&["report", CAT, "cat", "-o", "/tmp/never.html"]),
        2,
        &["one TEXT"],
    );
    fails(
        &mut c(&["report", CAT, "-o", "/no/such/dir/r.html"]),
        1,
        &["-o", "/no/such/dir"],
    );
    // The page's limit is named once, with the fix that keeps within it.
    let long = "word ".repeat(1200);
    let err = fails(
        &mut c(&["report", &long, "-o", "/tmp/never.html"]),
        1,
        &[
            "tokens long; a report page holds at most 256",
            "--truncate left to keep the last 256",
        ],
    );
    assert!(!err.contains("1024"), "{err}");
}

/// Runs `attention ... --svg` into a scratch file; the file's text.
fn svg(scratch: &Scratch, name: &str, args: &[&str]) -> String {
    let path = scratch.0.join(name);
    let mut all = vec!["attention"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--svg", path.to_str().unwrap()]);
    let out = run(&all, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrote") && err.contains(name), "{err}");
    std::fs::read_to_string(&path).unwrap()
}

fn texts<'a>(doc: &'a roxmltree::Document) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect()
}

/// Nothing that could run: no script, no foreign content, no event handler, no link.
fn assert_inert(doc: &roxmltree::Document) {
    for n in doc.descendants().filter(|n| n.is_element()) {
        let tag = n.tag_name().name();
        assert!(
            !["script", "foreignObject", "a", "image", "use"].contains(&tag),
            "<{tag}>"
        );
        for a in n.attributes() {
            assert!(!a.name().starts_with("on"), "{tag} has {}", a.name());
            assert!(a.name() != "href", "{tag} links to {}", a.value());
        }
    }
}

#[test]
fn svg_figure_is_valid_labelled_and_holds_hf_values() {
    let scratch = Scratch::new("svg-one");
    let file = svg(
        &scratch,
        "one.svg",
        &[CAT, "--layer", "0", "--head", "1", "--annot"],
    );
    let doc = roxmltree::Document::parse(&file).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    assert!(root.attribute("viewBox").is_some() && root.attribute("width").is_some());
    assert_inert(&doc);
    let t = texts(&doc);
    assert!(
        t.contains(&"tiny-gpt2 · layer 0 · head 1 · attention"),
        "{t:?}"
    );
    for needed in ["Query", "Key", "“The cat sat on the mat”", "␣cat", "masked"] {
        assert!(t.contains(&needed), "no text {needed:?} in {t:?}");
    }
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("linearGradient") && n.attribute("id") == Some("scale")));

    // Every visible cell: a rect whose tooltip gives the probability to 4 decimals.
    let hf = hf_attention(0, 1);
    let mut cells = 0;
    for title in doc.descendants().filter(|n| n.has_tag_name("title")) {
        let tip = title.text().unwrap();
        let Some(rest) = tip.strip_prefix("query ") else {
            continue;
        };
        let (i, rest) = rest.split_once(' ').unwrap();
        let (_, rest) = rest.split_once("→ key ").unwrap();
        let (j, rest) = rest.split_once(' ').unwrap();
        let v: f32 = rest.rsplit_once(": ").unwrap().1.parse().unwrap();
        let (i, j): (usize, usize) = (i.parse().unwrap(), j.parse().unwrap());
        assert!(j <= i, "a masked cell has a value: {tip}");
        assert!(
            (v - hf[i][j]).abs() <= 0.00005 + TOL,
            "{tip}: HF {}",
            hf[i][j]
        );
        cells += 1;
    }
    assert_eq!(cells, 6 * 7 / 2);
    // --annot: the values printed in the cells, to 2 decimals.
    let annot: Vec<f32> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("annot"))
        .flat_map(|g| g.children().filter(|c| c.is_element()))
        .filter_map(|c| c.text())
        .map(|s| s.parse().unwrap())
        .collect();
    let lower: Vec<f32> = (0..6).flat_map(|i| hf[i][..=i].to_vec()).collect();
    assert_eq!(annot.len(), lower.len());
    for (a, h) in annot.iter().zip(&lower) {
        assert!((a - h).abs() <= 0.005 + TOL, "annot {a}, HF {h}");
    }
}

#[test]
fn svg_grid_has_a_panel_per_head() {
    let scratch = Scratch::new("svg-grid");
    let file = svg(&scratch, "grid.svg", &[CAT, "--layer", "1", "--all-heads"]);
    let doc = roxmltree::Document::parse(&file).expect("well-formed XML");
    let panels = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("map"))
        .count();
    assert_eq!(panels, 4);
    let t = texts(&doc);
    for h in 0..4 {
        assert!(t.contains(&format!("L1 H{h}").as_str()), "{t:?}");
    }
    let every = svg(&scratch, "every.svg", &[CAT]);
    let doc = roxmltree::Document::parse(&every).expect("well-formed XML");
    let panels = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("map"))
        .count();
    assert_eq!(panels, 3 * 4);
}

/// The fill of the cell whose tooltip starts `query I … → key J`.
fn cell_fill<'a>(doc: &'a roxmltree::Document, i: usize, j: usize) -> &'a str {
    doc.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .find(|n| {
            n.children().any(|c| {
                c.has_tag_name("title")
                    && c.text().is_some_and(|t| {
                        t.starts_with(&format!("query {i} ")) && t.contains(&format!("→ key {j} "))
                    })
            })
        })
        .and_then(|n| n.attribute("fill"))
        .unwrap_or_else(|| panic!("no cell {i},{j}"))
}

/// A grid lines up one layer a row, names layer and head over each map, and labels tokens on
/// its outer axes: queries left of the first column, keys under the last row.
#[test]
fn svg_grid_has_one_layer_a_row_and_outer_labels() {
    let scratch = Scratch::new("svg-grid-layout");
    let file = svg(&scratch, "every.svg", &[CAT, "--all-heads"]);
    let doc = roxmltree::Document::parse(&file).expect("well-formed XML");
    let titles: Vec<(String, f64)> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("panel-title"))
        .map(|n| {
            (
                n.text().unwrap().to_string(),
                n.attribute("y").unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(titles.len(), 12);
    for (k, (title, y)) in titles.iter().enumerate() {
        assert_eq!(title, &format!("L{} H{}", k / 4, k % 4));
        assert_eq!(*y, titles[k / 4 * 4].1, "layer {} on one row", k / 4);
    }
    assert!(titles[4].1 > titles[0].1 && titles[8].1 > titles[4].1);
    let groups = |class: &str| {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .map(|g| {
                g.children()
                    .filter(|c| c.is_element())
                    .filter_map(|c| c.text())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let (rows, keys) = (groups("query-labels"), groups("key-labels"));
    assert_eq!(
        (rows.len(), keys.len()),
        (3, 4),
        "one column of query labels a layer, one row of key labels a head"
    );
    for labels in rows.iter().chain(&keys) {
        assert_eq!(labels, &["The", "␣cat", "␣sat", "␣on", "␣the", "␣mat"]);
    }
}

/// --title, --cmap and --scale: the title replaces the default, viridis and Blues end where
/// matplotlib's do, and on --scale row every query's largest weight (from HF) takes the top
/// colour.
#[test]
fn svg_figure_controls() {
    let scratch = Scratch::new("svg-controls");
    let one = [CAT, "--layer", "0", "--head", "1"];
    let titled = svg(
        &scratch,
        "t.svg",
        &[&one[..], &["--title", "Fig. 2 & <more>"]].concat(),
    );
    let doc = roxmltree::Document::parse(&titled).unwrap();
    assert!(texts(&doc).contains(&"Fig. 2 & <more>"));

    let viridis = svg(
        &scratch,
        "v.svg",
        &[&one[..], &["--cmap", "viridis"]].concat(),
    );
    let doc = roxmltree::Document::parse(&viridis).unwrap();
    let stops: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("stop"))
        .filter_map(|n| n.attribute("stop-color"))
        .collect();
    assert_eq!(
        (stops.first(), stops.last()),
        (Some(&"#440154"), Some(&"#fde725"))
    );
    // The first query sees only itself: weight 1 (HF), the top of viridis.
    let hf = hf_attention(0, 1);
    assert!((hf[0][0] - 1.0).abs() < 1e-6);
    assert_eq!(cell_fill(&doc, 0, 0), "#fde725");

    let row = svg(&scratch, "r.svg", &[&one[..], &["--scale", "row"]].concat());
    let doc = roxmltree::Document::parse(&row).unwrap();
    for (i, weights) in hf.iter().enumerate() {
        let top = (0..=i)
            .max_by(|&a, &b| weights[a].total_cmp(&weights[b]))
            .unwrap();
        assert_eq!(
            cell_fill(&doc, i, top),
            "#08306b",
            "row {i}: its largest weight is key {top}"
        );
    }
    assert!(texts(&doc).contains(&"row max"));

    let log = svg(&scratch, "l.svg", &[&one[..], &["--scale", "log"]].concat());
    let doc = roxmltree::Document::parse(&log).unwrap();
    for tick in ["0.0001", "0.001", "0.01", "0.1", "1"] {
        assert!(texts(&doc).contains(&tick), "log tick {tick}");
    }
    let fixed = svg(
        &scratch,
        "f.svg",
        &[&one[..], &["--vmin", "0.2", "--vmax", "0.4"]].concat(),
    );
    let doc = roxmltree::Document::parse(&fixed).unwrap();
    assert!(texts(&doc).contains(&"0.20") && texts(&doc).contains(&"0.40"));
    // A weight at or above --vmax takes the top colour.
    assert_eq!(cell_fill(&doc, 0, 0), "#08306b");

    for (args, says) in [
        (
            &["--scale", "row", "--vmax", "0.5"][..],
            "--vmax does not apply to --scale row",
        ),
        (
            &["--vmin", "0.5", "--vmax", "0.2"][..],
            "--vmin 0.5 must be below --vmax 0.2",
        ),
        (
            &["--scale", "log", "--vmin", "0"][..],
            "--vmin 0 has no logarithm",
        ),
        (&["--vmax", "2"][..], "must be a probability"),
    ] {
        let mut c = crate::common::cmd();
        c.args(["attention", CAT]).args(args);
        fails(&mut c, 2, &[says]);
    }
}

/// In the terminal a grid also lines up one layer a row.
#[test]
fn terminal_grid_has_one_layer_a_row() {
    let out = attention(
        CAT,
        "--color always --all-heads",
        &[("COLORTERM", "truecolor"), ("COLUMNS", "200")],
    );
    let plain = strip_ansi(&out);
    let title_lines: Vec<&str> = plain.lines().filter(|l| l.starts_with("L")).collect();
    let want: Vec<String> = (0..3)
        .map(|l| {
            (0..4)
                .map(|h| format!("L{l} H{h}"))
                .collect::<Vec<_>>()
                .join("     ")
        })
        .collect();
    assert_eq!(title_lines, want, "{plain}");
}

#[test]
fn svg_shows_hostile_text_as_text() {
    let scratch = Scratch::new("svg-injection");
    let hostile = format!("{INJECTION}\u{1b}[31m\u{7} & \"quotes\" 'too'");
    let file = svg(
        &scratch,
        "evil.svg",
        &[&hostile, "--layer", "0", "--head", "0"],
    );
    assert!(!file.contains("<script") && !file.contains("<img"));
    let doc = roxmltree::Document::parse(&file).expect("well-formed XML");
    assert_inert(&doc);
    let t = texts(&doc);
    assert!(
        t.iter().any(|s| s.contains(INJECTION)),
        "the text should be shown as it is: {t:?}"
    );
}

/// Runs `report` into a scratch file; stdout and the page.
fn report(scratch: &Scratch, text: &str) -> (String, String) {
    let path: PathBuf = scratch.0.join("report.html");
    let out = stdout(&["report", text, "-o", path.to_str().unwrap()], &[]);
    (out, std::fs::read_to_string(&path).unwrap())
}

#[test]
fn report_page_is_self_contained_and_holds_hf_values() {
    let scratch = Scratch::new("report");
    let (out, html) = report(&scratch, CAT);
    assert!(
        out.contains("wrote") && out.contains("report.html"),
        "{out}"
    );
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing is fetched: a CSP that allows no source, no src/href, no CSS import or url().
    assert!(html.contains("default-src 'none'"));
    for outward in [" src=", " href=", "@import", "url(", "<link", "<iframe"] {
        assert!(!html.contains(outward), "the page contains {outward:?}");
    }
    assert!(html.contains("rounded to 4 decimals"));

    let data = page_data(&html);
    let reference = Reference::load();
    let ids: Vec<u32> = data["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, reference.ids(2));
    assert_eq!(data["labels"][1], "␣cat");
    assert_eq!(
        (data["layers"].as_u64(), data["heads"].as_u64()),
        (Some(3), Some(4))
    );
    // Lower triangles, layer by layer and head by head, as round(p × 10⁴).
    let attn = page_u16s(&data, "attn");
    let t = ids.len();
    let triangle = t * (t + 1) / 2;
    assert_eq!(attn.len(), 3 * 4 * triangle, "lower triangles only");
    let mut worst = 0.0f32;
    for l in 0..3 {
        for h in 0..4 {
            let hf = hf_attention(l, h);
            let base = (l * 4 + h) * triangle;
            for (i, row) in hf.iter().enumerate() {
                for (j, want) in row.iter().enumerate().take(i + 1) {
                    let page = f32::from(attn[base + i * (i + 1) / 2 + j]) / 1e4;
                    worst = worst.max((page - want).abs());
                }
            }
        }
    }
    // Rounding to 4 decimals moves a value by at most 5e-5.
    assert!(worst <= 0.00005 + 1e-6, "page vs HF: {worst}");
    // q and k, [L][H][T][d_head], as HF computed them (its blocks.L.attn.hook_q/k).
    assert_eq!(data["dHead"], 8);
    for (field, hook) in [("q", "hook_q"), ("k", "hook_k")] {
        let page = page_f32s(&data, field);
        let want: Vec<f32> = (0..3)
            .flat_map(|l| {
                let hf = reference.get(&format!("p2.blocks.{l}.attn.{hook}")); // (1, T, H, hs)
                flat(
                    &hf.squeeze(0)
                        .unwrap()
                        .transpose(0, 1)
                        .unwrap()
                        .contiguous()
                        .unwrap(),
                )
            })
            .collect();
        let d = max_abs_diff(&page, &want);
        assert!(d <= TOL, "page {field} vs HF: {d}");
    }
    // Every token chip shows its id.
    for id in reference.ids(2) {
        assert!(html.contains(&format!(r#"<span class="id">{id}</span>"#)));
    }
}

#[test]
fn report_shows_hostile_text_as_text() {
    let scratch = Scratch::new("report-injection");
    let (_, html) = report(&scratch, INJECTION);
    // Our two scripts (data and code) and no other element from the text.
    assert_eq!(html.matches("<script").count(), 2, "{html}");
    assert!(!html.contains("<img"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;")
    );
    let data = page_data(&html);
    let labels: String = data["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(labels.replace('␣', " "), INJECTION);
}

#[test]
fn report_replaces_its_file_only_when_done() {
    let scratch = Scratch::new("report-atomic");
    let path: &Path = &scratch.0.join("keep.html");
    std::fs::write(path, "old").unwrap();
    let mut c = crate::common::cmd();
    c.args(["report", CAT, "--top-k", "0", "-o", path.to_str().unwrap()]);
    fails(&mut c, 2, &["--top-k"]);
    assert_eq!(std::fs::read_to_string(path).unwrap(), "old");
}

/// Wide characters take two columns: the plain table aligns by display width.
#[test]
fn plain_tables_align_wide_characters() {
    let out = crate::common::cmd()
        .args(["--color", "never", "tokenize", "人 の 一 ok"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = table.lines().take_while(|l| !l.is_empty()).collect();
    assert!(rows.len() > 3, "{table}");
    // Where the last column (`bytes`) starts, in terminal columns.
    let starts: Vec<usize> = rows
        .iter()
        .map(|l| unicode_width::UnicodeWidthStr::width(&l[..l.rfind("  ").unwrap() + 2]))
        .collect();
    assert!(
        starts.iter().all(|&s| s == starts[0]),
        "{starts:?}\n{table}"
    );
}

/// `--stages --svg`: one figure, eight titled panels in data-flow order, each with a colour
/// bar; masked cells hatched; every cell's value in its tooltip (from the same numbers the
/// JSON has, which `inspect.rs` checks against HF).
#[test]
fn stages_svg_has_eight_panels() {
    let scratch = Scratch::new("svg-stages");
    let file = svg(
        &scratch,
        "stages.svg",
        &[CAT, "--layer", "1", "--head", "3", "--stages"],
    );
    let doc = roxmltree::Document::parse(&file).expect("well-formed XML");
    assert_inert(&doc);
    let titles: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("panel-title"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(titles, crate::common::STAGE_PANELS);
    let panels: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("panel"))
        .collect();
    assert_eq!(panels.len(), 8);
    let t = 6;
    for (p, cols) in panels.iter().zip([32, 8, 8, 8, t, t, 8, 32]) {
        let cells = p
            .children()
            .filter(|n| n.has_tag_name("rect") && n.attribute("class").is_none())
            .count();
        assert_eq!(cells, t * cols, "cells of a panel");
        let bar = p
            .children()
            .filter(|n| n.attribute("class") == Some("colour-bar"))
            .count();
        assert!(bar > 0, "each panel has its colour bar");
    }
    // The two T × T panels hatch the 15 masked cells each.
    let masked = file.matches("fill=\"url(#masked)\"").count();
    assert_eq!(masked, 2 * t * (t - 1) / 2);
    // Tooltips carry the values: the weights panel's first cell is exactly 1.
    let v = {
        let out = run(
            &[
                "attention",
                CAT,
                "--layer",
                "1",
                "--head",
                "3",
                "--stages",
                "--json",
            ],
            &[],
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let w00 = v["stages"]["weights"][0][0].as_f64().unwrap();
    assert!(
        file.contains(&format!("0 The · 0: {w00:.4}"))
            || file.contains(&format!("The · 0: {w00:.4}"))
    );
}

/// `--annot` where the figure has no room for values says so, rather than dropping them
/// silently; where it has, it says nothing.
#[test]
fn annot_too_dense_for_the_figure_is_said() {
    let scratch = Scratch::new("svg-annot");
    let path = scratch.0.join("a.svg");
    let p = path.to_str().unwrap();
    let long = "word ".repeat(30);
    for (args, said) in [
        (
            vec![
                "attention",
                CAT,
                "--layer",
                "0",
                "--head",
                "1",
                "--annot",
                "--svg",
                p,
            ],
            false,
        ),
        (
            vec![
                "attention",
                CAT,
                "--layer",
                "0",
                "--all-heads",
                "--annot",
                "--svg",
                p,
            ],
            true,
        ),
        (
            vec![
                "attention",
                &long,
                "--layer",
                "0",
                "--head",
                "1",
                "--annot",
                "--svg",
                p,
            ],
            true,
        ),
    ] {
        let out = run(&args, &[]);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.contains("--annot: the figure's cells are too small"),
            said,
            "{args:?}: {err}"
        );
        let file = std::fs::read_to_string(&path).unwrap();
        assert_eq!(file.contains("class=\"annot\""), !said, "{args:?}");
    }
}

/// `lens --all-positions --svg`: a cell per depth and position with the token as its label
/// and the probability in its tooltip, every position labelled.
#[test]
fn lens_grid_svg_labels_every_cell() {
    let scratch = Scratch::new("svg-lens");
    let path = scratch.0.join("lens.svg");
    let out = run(
        &[
            "lens",
            CAT,
            "--all-positions",
            "--svg",
            path.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&file).expect("well-formed XML");
    assert_inert(&doc);
    let cells: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("cell"))
        .collect();
    assert_eq!(cells.len(), 4 * 6, "depths × positions");
    // Row-major: depth 3, position 5 is the last cell; its label is the top token there.
    let last = cells.last().unwrap();
    let label = last
        .children()
        .find(|n| n.has_tag_name("text"))
        .unwrap()
        .text()
        .unwrap();
    let token = v["top"][3][5]["token"].as_str().unwrap().replace(' ', "␣");
    assert!(
        token.starts_with(label.trim_end_matches('…')),
        "{label} vs {token}"
    );
    let tip = last
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .unwrap()
        .text()
        .unwrap();
    let prob = v["top"][3][5]["prob"].as_f64().unwrap();
    assert!(tip.ends_with(&format!("{prob:.4}")), "{tip}");
    for j in 0..6 {
        assert!(
            texts(&doc).iter().any(|t| t.starts_with(&format!("{j} "))),
            "position {j}"
        );
    }

    // --title and --cmap: the figure's own title; viridis from end to end.
    let viridis = scratch.0.join("lens-viridis.svg");
    let out = run(
        &[
            "lens",
            CAT,
            "--all-positions",
            "--cmap",
            "viridis",
            "--title",
            "Lens",
            "--svg",
            viridis.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success());
    let file = std::fs::read_to_string(&viridis).unwrap();
    let doc = roxmltree::Document::parse(&file).expect("well-formed XML");
    assert!(texts(&doc).contains(&"Lens"));
    let stops: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("stop"))
        .filter_map(|n| n.attribute("stop-color"))
        .collect();
    assert_eq!(
        (stops.first(), stops.last()),
        (Some(&"#440154"), Some(&"#fde725"))
    );
}

/// The terminal heatmap takes the same colour options: the first query's weight of 1 (HF)
/// is viridis's top, and the legend names a row scale.
#[test]
fn terminal_heatmap_takes_the_figure_options() {
    assert!((hf_attention(0, 1)[0][0] - 1.0).abs() < 1e-6);
    let env = [("COLORTERM", "truecolor"), ("COLUMNS", "100")];
    let viridis = attention(
        CAT,
        "--color always --layer 0 --head 1 --cmap viridis",
        &env,
    );
    assert!(
        viridis.contains("\x1b[48;2;253;231;37m"),
        "{}",
        visible(&viridis)
    );
    let row = attention(CAT, "--color always --layer 0 --head 1 --scale row", &env);
    assert!(
        strip_ansi(&row).contains("scale 0")
            && strip_ansi(&row).contains("row max (each row from 0 to its largest)"),
        "{}",
        strip_ansi(&row)
    );
}

/// Writes `args ... --svg FILE --json`; the figure as text and the JSON report.
fn grid_figure(scratch: &Scratch, name: &str, args: &[&str]) -> (String, Value) {
    let path = scratch.0.join(name);
    let mut all = args.to_vec();
    all.extend_from_slice(&["--svg", path.to_str().unwrap(), "--json"]);
    let out = run(&all, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&out.stdout).unwrap();
    (std::fs::read_to_string(&path).unwrap(), report)
}

/// Each colour bar of a figure: (low, high, its tick labels top to bottom).
fn colour_bars(doc: &roxmltree::Document) -> Vec<(f64, f64, Vec<String>)> {
    (doc.descendants())
        .filter(|n| n.attribute("class") == Some("colour-bar") && n.has_attribute("data-low"))
        .map(|g| {
            let num = |a: &str| g.attribute(a).unwrap().parse::<f64>().unwrap();
            let ticks = (g.descendants())
                .filter(|n| n.attribute("class") == Some("tick"))
                .map(|n| n.text().unwrap().to_string())
                .collect();
            (num("data-low"), num("data-high"), ticks)
        })
        .collect()
}

/// Every cell tooltip's value.
fn cell_values(doc: &roxmltree::Document) -> Vec<f64> {
    (doc.descendants().filter(|n| n.has_tag_name("title")))
        .filter_map(|n| n.text()?.rsplit(": ").next()?.parse().ok())
        .collect()
}

/// The causal commands' figures (patch, ablate --sweep, attribute, heads) each have a
/// colour bar naming the values at its ends, which are the range the report's values span;
/// --title and --cmap are theirs to set; attribute's figure holds the embeddings too.
#[test]
fn grid_figures_have_colour_bars_titles_and_every_term() {
    let s = Scratch::new("grid-figures");
    let text = "The cat sat on the";
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
    // ablate --sweep: the bar spans ± the largest |change|, ticked at both ends and 0.
    let (svg, v) = grid_figure(&s, "sweep.svg", &["ablate", text, "--sweep"]);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let m = (v["values"].as_array().unwrap().iter())
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap().abs())
        })
        .fold(0.0, f64::max);
    let bars = colour_bars(&doc);
    assert_eq!(bars.len(), 1);
    let (lo, hi, ticks) = &bars[0];
    assert!(near(*hi, m) && near(*lo, -m), "{lo} {hi} vs {m}");
    assert_eq!(ticks.len(), 3);
    assert!(
        near(ticks[0].parse().unwrap(), m) && ticks[1] == "0",
        "{ticks:?}"
    );
    // attribute: the layers' grid and the embeddings, on one scale; every term's value is a
    // cell of the figure.
    let (svg, v) = grid_figure(
        &s,
        "dla.svg",
        &[
            "attribute",
            text,
            "--answer",
            " mat",
            "--title",
            "My DLA",
            "--cmap",
            "viridis",
        ],
    );
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(texts(&doc).contains(&"My DLA"));
    let cells = cell_values(&doc);
    let terms: Vec<f64> = (v["components"].as_array().unwrap().iter())
        .map(|c| c["value"].as_f64().unwrap())
        .collect();
    for t in &terms {
        assert!(
            cells.iter().any(|c| (c - t).abs() < 1e-4),
            "{t} is not in the figure"
        );
    }
    let m = terms.iter().map(|t| t.abs()).fold(0.0, f64::max);
    let bars = colour_bars(&doc);
    assert_eq!(bars.len(), 2);
    assert!(bars.iter().all(|(lo, hi, _)| near(*hi, m) && near(*lo, -m)));
    // viridis: the bar's top is viridis's yellow end.
    let top = (doc.descendants())
        .find(|n| n.attribute("class") == Some("colour-bar"))
        .and_then(|g| g.descendants().find(|n| n.has_tag_name("rect")))
        .and_then(|r| r.attribute("fill"))
        .unwrap();
    assert_eq!(&top[..2], "#f", "{top}");
    // heads: scores from 0 to 1; patch: the restored share from -1 to 1.
    let (svg, _) = grid_figure(&s, "heads.svg", &["heads", "--seq-len", "8"]);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let bars = colour_bars(&doc);
    assert_eq!(bars.len(), 4);
    assert!(bars
        .iter()
        .all(|(lo, hi, t)| *lo == 0.0 && *hi == 1.0 && t == &["1", "0.5", "0"]));
    // patch: the restored share on ±1, or on ± the largest |share| when one overshoots
    // (both pairs here do: 1.09 with --wrong, 6.9 without), so no cell is clipped to the
    // bar's end.
    let pair = [
        "patch",
        "--clean",
        text,
        "--corrupt",
        "The dog sat on the",
        "--answer",
        " mat",
        "--wrong",
        " floor",
    ];
    for (name, args) in [("patch.svg", &pair[..]), ("patch-over.svg", &pair[..7])] {
        let (svg, v) = grid_figure(&s, name, args);
        let m = crate::common::floats(&v["restored"])
            .iter()
            .filter(|x| x.is_finite())
            .fold(1.0f64, |m, &x| m.max(x.abs() as f64));
        assert!(m > 1.0, "{name}: a share overshoots");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let bars = colour_bars(&doc);
        assert!(!bars.is_empty());
        for (lo, hi, _) in &bars {
            assert!(
                (lo + m).abs() < 1e-3 && (hi - m).abs() < 1e-3,
                "{name}: ±{m}: {bars:?}"
            );
        }
    }
    // --title and --cmap need --svg.
    fails(cmd().args(["heads", "--title", "x"]), 2, &["--svg"]);
}

/// When clean and corrupt agree, every restored share is 0/0: said as such in the table and
/// the figure, never drawn as masked cells.
#[test]
fn an_undefined_share_is_not_a_masked_cell() {
    let s = Scratch::new("undefined-share");
    let pair = [
        "patch",
        "--clean",
        "The cat sat",
        "--corrupt",
        "The cat sat",
        "--answer",
        " on",
        "--wrong",
        " in",
    ];
    let table = stdout(&pair, &[]);
    assert!(
        table.contains("every cell's share is 0/0, undefined"),
        "{table}"
    );
    assert!(!table.contains("L0"), "{table}");
    let (svg, _) = grid_figure(&s, "same.svg", &pair);
    assert!(svg.contains("every share is 0/0: undefined, not masked"));
}

/// Panel titles of a wrapped grid figure never run into the next panel's (patch
/// --site pattern-dest-src, one panel per layer and head, titles longer than the 3 × 3
/// panels), and every figure spells a token one way: `logit[␣mat]`, no quotes inside.
#[test]
fn panel_titles_keep_apart_and_tokens_read_one_way() {
    let scratch = Scratch::new("svg-titles");
    let pair = [
        "patch",
        "--clean",
        "The cat sat",
        "--corrupt",
        "The dog sat",
        "--answer",
        " and",
        "--wrong",
        " with",
    ];
    let mut args = pair.to_vec();
    args.extend(["--site", "pattern-dest-src"]);
    let (file, _) = grid_figure(&scratch, "pds.svg", &args);
    let doc = roxmltree::Document::parse(&file).unwrap();
    // (x, y, width) of each 13 px bold title, about 8 px a character as the figure lays out.
    let titles: Vec<(f64, f64, f64)> = (doc.descendants())
        .filter(|n| {
            n.attribute("font-size") == Some("13") && n.attribute("font-weight") == Some("bold")
        })
        .map(|n| {
            let num = |a| n.attribute(a).unwrap().parse::<f64>().unwrap();
            let chars = n.text().unwrap().chars().count() as f64;
            (num("x"), num("y"), chars * 7.5)
        })
        .collect();
    assert!(titles.len() >= 12, "{} titles", titles.len());
    for a in &titles {
        for b in &titles {
            let same_row = (a.1 - b.1).abs() < 1.0;
            if same_row && b.0 > a.0 {
                assert!(
                    a.0 + a.2 <= b.0,
                    "title at {} runs into the one at {}",
                    a.0,
                    b.0
                );
            }
        }
    }
    let (patch, _) = grid_figure(&scratch, "patch.svg", &pair);
    let (saliency, _) = grid_figure(
        &scratch,
        "saliency.svg",
        &["saliency", CAT, "--answer", " and"],
    );
    for (name, doc) in [("patch", &patch), ("saliency", &saliency)] {
        assert!(doc.contains("logit[␣and]"), "{name}: {doc}");
        assert!(
            !doc.contains("logit[\"") && !doc.contains("logit[&quot;"),
            "{name}"
        );
    }
}
