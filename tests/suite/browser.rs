//! The HTML report in a real browser: Debian's headless Chromium driven by Playwright
//! (tests/browser/check.mjs) clicks and hovers through a page (its neuron view's numbers
//! checked against Hugging Face's q, k, scores and pattern), opens one made from a
//! script-injection prompt, and times the opening of a 256-token page of a GPT-2-shaped model
//! (12 layers × 12 heads, d_head 64, random weights), without q and k (the default at that
//! length: it must open in under 2 s) and with them (`--neuron always`: timed, not bounded). Screenshots land in
//! target/tmp/browser/.
//!
//! Needs /usr/bin/chromium (or $CHROMIUM), node, and `npm ci --prefix tests/browser`. When
//! one is missing the test says what and passes, unless GPT2_INSPECT_REQUIRE_BROWSER=1
//! (set by .ci/run), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{flat, Reference};

const CAT: &str = "The cat sat on the mat";
/// The corrupt prompt of the explorer's patch: as many tokens as CAT.
const DOG: &str = "The dog sat on the mat";
const INJECTION: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

/// What is missing to run the browser, if anything.
fn missing(root: &Path, chromium: &Path) -> Option<String> {
    if !chromium.exists() {
        return Some(format!(
            "{} not found (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found".into());
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        return Some("playwright-core not installed (npm ci --prefix tests/browser)".into());
    }
    None
}

/// Chromium's path, or `None` (the test is skipped, saying why) when something it needs is
/// missing and GPT2_INSPECT_REQUIRE_BROWSER is not 1 (with it, the test fails).
fn chromium_or_skip(root: &Path, test: &str) -> Option<PathBuf> {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    let Some(what) = missing(root, &chromium) else {
        return Some(chromium);
    };
    assert!(
        std::env::var("GPT2_INSPECT_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "browser test required but {what}"
    );
    eprintln!("SKIPPED {test}: {what}");
    None
}

/// Runs tests/browser/`script` on `config` (written to `out`/config.json) and asserts that
/// every check passed.
fn run_checks(root: &Path, script: &str, config: &serde_json::Value, out: &Path, chromium: &Path) {
    let config_path = out.join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let run = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .arg(&config_path)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{log}");
    assert!(run.status.success(), "browser checks failed:\n{log}");
    assert!(!log.contains("FAIL"), "{log}");
}

#[test]
fn report_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(chromium) = chromium_or_skip(root, "report_works_in_headless_chromium") else {
        return;
    };

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    // `report ARGS -o NAME` on a model; the page's path.
    let page = |model: &Path, name: &str, args: &[&str]| -> PathBuf {
        let path = out.join(name);
        assert_cmd::Command::cargo_bin("gpt2-inspect")
            .unwrap()
            .arg("--model")
            .arg(model)
            .arg("report")
            .args(args)
            .arg("-o")
            .arg(&path)
            .assert()
            .success();
        path
    };
    let tiny = root.join("tests/fixtures/tiny-gpt2");
    let (cat, hostile) = (
        page(&tiny, "cat.html", &[CAT]),
        page(&tiny, "injection.html", &[INJECTION]),
    );

    // A full-size page: GPT-2's 12 × 12 heads at the page's 256 tokens.
    let big_model = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpt2-shaped");
    if !big_model.join("config.json").exists() {
        crate::common::checkpoint::write_random_gpt2(&big_model, 256, 64).unwrap();
    }
    let long = "one two three four ".repeat(80);
    let big = |name, neuron| {
        page(
            &big_model,
            name,
            &["--truncate", "left", &long, "--neuron", neuron],
        )
    };
    let (big, big_neuron) = (big("big.html", "auto"), big("big-neuron.html", "always"));

    let config = serde_json::json!({
        "cat": cat,
        "hostile": hostile,
        "hostileText": INJECTION,
        "big": big,
        "bigNeuron": big_neuron,
        "outDir": out,
        "neuron": neuron_expectation(),
    });
    run_checks(root, "check.mjs", &config, &out, &chromium);
    assert!(out.join("report.png").exists(), "no screenshot");
}

/// What the cat page's neuron view must show for one head, query and key, from HF's own
/// activations (torch hooks): q and k elements, their product, the score and the weight.
fn neuron_expectation() -> serde_json::Value {
    let reference = Reference::load();
    assert_eq!(reference.prompts[2], CAT);
    let t = reference.ids(2).len();
    let (layer, head, query, key, element) = (1, 2, 4, 1, 5);
    let get = |name: &str| reference.get(&format!("p2.blocks.{layer}.attn.{name}"));
    let vector = |name: &str, i: usize| {
        flat(&get(name).get(0).unwrap().get(i).unwrap().get(head).unwrap()) // (hs,)
    };
    let (q, k) = (vector("hook_q", query), vector("hook_k", key));
    let score = flat(&get("hook_attn_scores").get(0).unwrap().get(head).unwrap())[query * t + key];
    let weight = flat(
        &reference
            .get("p2.attentions")
            .get(layer)
            .unwrap()
            .get(head)
            .unwrap(),
    )[query * t + key];
    let dot: f32 = q.iter().zip(&k).map(|(a, b)| a * b).sum();
    serde_json::json!({
        "layer": layer, "head": head, "query": query, "key": key, "element": element,
        "q": q[element], "k": k[element], "qk": q[element] * k[element],
        "dot": dot, "score": score, "weight": weight,
    })
}

/// `feature --html`: the dashboard page in headless Chromium (tests/browser/dashboard.mjs)
/// shows what the same run's JSON says: a bar per non-empty histogram bin as tall as its
/// count, both logit tables, every context's tokens and activations with the peak outlined
/// and darkest; no script, no request, no dialog from a corpus with markup in it. Its
/// screenshot is target/tmp/browser/dashboard.png.
#[test]
fn feature_dashboard_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(chromium) = chromium_or_skip(root, "feature_dashboard_works_in_headless_chromium")
    else {
        return;
    };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-dashboard");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let corpus = out.join("corpus.txt");
    let lines = [
        CAT,
        INJECTION,
        "When Mary and John went to the store, John gave a drink to",
        "A dog ran\tfast",
    ];
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let (page, json) = (out.join("dashboard.html"), out.join("report.json"));
    let sae = root.join("tests/fixtures/saes/standard");
    let run = assert_cmd::Command::cargo_bin("gpt2-inspect")
        .unwrap()
        .arg("--model")
        .arg(root.join("tests/fixtures/tiny-gpt2"))
        .args(["feature", "40,5", "--sae"])
        .arg(&sae)
        .arg("--file")
        .arg(&corpus)
        .args([
            "--lines",
            "--contexts",
            "4",
            "--window",
            "3",
            "-k",
            "6",
            "--json",
            "--html",
        ])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::write(&json, &run.stdout).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "markup from the corpus"
    );
    let config = serde_json::json!({ "page": page, "json": json, "outDir": out });
    run_checks(root, "dashboard.mjs", &config, &out, &chromium);
    assert!(out.join("dashboard.png").exists(), "no screenshot");
}

#[test]
fn the_explorer_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(chromium) = chromium_or_skip(root, "the_explorer_works_in_headless_chromium") else {
        return;
    };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-explorer");
    let sae = root.join("tests/fixtures/saes/standard");
    let transcoders = root.join("tests/fixtures/graphs/relu");
    let jlens = format!(
        "jlens:{}",
        root.join("tests/fixtures/lenses/jlens/tl-default.pt")
            .display()
    );
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut server = Command::new(assert_cmd::cargo::cargo_bin("gpt2-inspect"))
        .arg("--model")
        .arg(root.join("tests/fixtures/tiny-gpt2"))
        .args(["serve", "--port", "0", "--sae"])
        .arg(&sae)
        .arg("--lens")
        .arg(&jlens)
        .arg("--transcoders")
        .arg(&transcoders)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = server.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let url = line.trim().strip_prefix("serving ").unwrap().to_string();
    // The fixture has 3 layers of 4 heads.
    let config = serde_json::json!({
        "url": url, "prompt": CAT, "corrupt": DOG, "answer": " mat", "sae": sae, "lens": jlens,
        "transcoders": transcoders,
        "layers": 3, "heads": 4, "out": out,
    });
    let checked =
        std::panic::catch_unwind(|| run_checks(root, "explorer.mjs", &config, &out, &chromium));
    let _ = server.kill();
    let _ = server.wait();
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
}
