//! The HTML report in a real browser: Debian's headless Chromium driven by Playwright
//! (tests/browser/check.mjs) clicks and hovers through a page and opens one made from a
//! script-injection prompt. Screenshots land in target/tmp/browser/.
//!
//! Needs /usr/bin/chromium (or $CHROMIUM), node, and `npm ci --prefix tests/browser`. When
//! one is missing the test says what and passes, unless GPT2_INSPECT_REQUIRE_BROWSER=1
//! (set by .ci/run), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

const CAT: &str = "The cat sat on the mat";
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

#[test]
fn report_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    if let Some(what) = missing(root, &chromium) {
        assert!(
            std::env::var("GPT2_INSPECT_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "browser test required but {what}"
        );
        eprintln!("SKIPPED report_works_in_headless_chromium: {what}");
        return;
    }

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let page = |name: &str, text: &str| -> PathBuf {
        let path = out.join(name);
        assert_cmd::Command::cargo_bin("gpt2-inspect")
            .unwrap()
            .current_dir(root)
            .args(["--model", "tests/fixtures/tiny-gpt2", "report", text, "-o"])
            .arg(&path)
            .assert()
            .success();
        path
    };
    let (cat, hostile) = (page("cat.html", CAT), page("injection.html", INJECTION));

    let run = Command::new("node")
        .arg(root.join("tests/browser/check.mjs"))
        .args([&cat, &hostile])
        .arg(INJECTION)
        .arg(&out)
        .env("CHROMIUM", &chromium)
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
    assert!(out.join("report.png").exists(), "no screenshot");
}
