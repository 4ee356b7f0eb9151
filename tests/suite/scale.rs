//! Corpus passes in shards: `--shard K/N --partial FILE` and `merge` give exactly what one
//! run over the whole corpus prints and writes (any split, any order, a tree of merges);
//! partials that disagree, are missing, repeated or truncated are refused in one line; a
//! finished shard is kept when the job runs again. And the Ray driver
//! (scripts/ray_corpus.py) on a local Ray cluster, when Ray is installed (.ci/run installs
//! it and sets GPT2_INSPECT_REQUIRE_RAY=1, so there it cannot skip).

use std::path::{Path, PathBuf};

use crate::common::{fails, fixtures, model_dir};

fn corpus() -> String {
    fixtures().join("lenses/corpus.txt").display().to_string()
}

/// The binary on the fixture, run in `dir`.
fn bin(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.current_dir(dir).arg("--model").arg(model_dir());
    c
}

fn stdout_of(c: &mut assert_cmd::Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const FIT: [&str; 5] = ["lens", "fit", "--lines", "--max-seq-len", "20"];

/// One run over the whole corpus in `dir`: its JSON and the lens it wrote.
fn single(dir: &Path) -> (String, Vec<u8>) {
    let mut c = bin(dir);
    c.args(["--prepend-bos", "--json"])
        .args(FIT)
        .args(["--skip-first", "3"]);
    c.args(["--file", &corpus(), "-o", "lens.pt"]);
    let json = stdout_of(&mut c);
    (json, std::fs::read(dir.join("lens.pt")).unwrap())
}

/// Shard k of n's partial, written in `dir` as part-k.st (`--skip-first 3` unless `extra`
/// says otherwise).
fn shard(dir: &Path, k: usize, n: usize, extra: &[&str]) -> PathBuf {
    let part = dir.join(format!("part-{k}.st"));
    let mut c = bin(dir);
    let skip: &[&str] = if extra.is_empty() {
        &["--skip-first", "3"]
    } else {
        extra
    };
    c.arg("--prepend-bos").args(FIT).args(skip);
    c.args([
        "--file",
        &corpus(),
        "--shard",
        &format!("{k}/{n}"),
        "--partial",
    ]);
    c.arg(&part);
    stdout_of(&mut c);
    part
}

fn merge(dir: &Path, parts: &[PathBuf], out: &[&str]) -> String {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.current_dir(dir)
        .args(["--json", "merge"])
        .args(parts)
        .args(out);
    stdout_of(&mut c)
}

/// The lens's matrices, as f32 values, from its file.
fn matrices(path: &Path) -> Vec<f32> {
    let cfg = gpt2_inspect::model::Config::from_file(&model_dir().join("config.json"))
        .unwrap()
        .0;
    let lens = gpt2_inspect::load::jacobian_lens::read(path, &cfg).unwrap();
    (lens.j.iter())
        .flat_map(|m| m.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

fn assert_same_lens(what: &str, got: &Path, want: &[f32]) {
    let got = matrices(got);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // Sums in f64 in another order: equal but for the last bit of an f32 on a rare
        // rounding boundary.
        assert!(
            (g - w).abs() <= f32::EPSILON * w.abs().max(1e-3),
            "{what}: J entry {i}: {g} vs one run's {w}"
        );
    }
}

#[test]
fn lens_fit_in_1_3_and_7_shards_merges_to_one_run() {
    let one = tempfile::tempdir().unwrap();
    let (want_json, _) = single(one.path());
    let want = matrices(&one.path().join("lens.pt"));
    for n in [1, 3, 7] {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<PathBuf> = (0..n).map(|k| shard(dir.path(), k, n, &[])).collect();
        let got = merge(dir.path(), &parts, &["-o", "lens.pt"]);
        assert_eq!(got, want_json, "{n} shards: the merged report is one run's");
        assert_same_lens(&format!("{n} shards"), &dir.path().join("lens.pt"), &want);
        // In another order, and as a tree of merges.
        let mut reversed = parts.clone();
        reversed.reverse();
        assert_eq!(merge(dir.path(), &reversed, &["-o", "lens.pt"]), want_json);
        assert_same_lens("reversed", &dir.path().join("lens.pt"), &want);
        if n >= 3 {
            let left = dir.path().join("left.st");
            let l = left.display().to_string();
            merge(dir.path(), &parts[..2], &["--partial", &l]);
            let tree = [vec![left], parts[2..].to_vec()].concat();
            assert_eq!(merge(dir.path(), &tree, &["-o", "lens.pt"]), want_json);
            assert_same_lens("a tree of merges", &dir.path().join("lens.pt"), &want);
        }
    }
}

#[test]
fn partials_that_cannot_merge_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let parts: Vec<PathBuf> = (0..3).map(|k| shard(d, k, 3, &[])).collect();
    let merge_cmd = |parts: &[&PathBuf]| {
        let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
        c.current_dir(d)
            .arg("merge")
            .args(parts)
            .args(["-o", "lens.pt"]);
        c
    };
    fails(
        &mut merge_cmd(&[&parts[0], &parts[2]]),
        1,
        &["shard 1/3 is missing"],
    );
    fails(
        &mut merge_cmd(&[&parts[0], &parts[1], &parts[1]]),
        1,
        &["shard 1/3 is in both"],
    );
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    let skip16 = shard(&other, 1, 3, &["--skip-first", "16"]);
    fails(
        &mut merge_cmd(&[&parts[0], &skip16, &parts[2]]),
        1,
        &["other settings", "skip_first_positions 3 against 16"],
    );
    let of4 = shard(&other, 3, 4, &[]);
    fails(
        &mut merge_cmd(&[&parts[0], &of4]),
        1,
        &["shards of 4", "of 3"],
    );
    // Cut mid-write: never read as a partial.
    let bytes = std::fs::read(&parts[2]).unwrap();
    let cut = d.join("cut.st");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &mut merge_cmd(&[&parts[0], &parts[1], &cut]),
        1,
        &["is not a partial"],
    );
    assert!(!d.join("lens.pt").exists(), "nothing is written");
}

#[test]
fn a_finished_shard_is_kept_when_the_job_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let part = shard(dir.path(), 1, 3, &[]);
    let before = std::fs::read(&part).unwrap();
    let mut c = bin(dir.path());
    c.arg("--prepend-bos").args(FIT).args(["--skip-first", "3"]);
    c.args(["--file", &corpus(), "--shard", "1/3", "--partial"])
        .arg(&part);
    let out = c.output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already fitted with these settings; kept"),
        "{err}"
    );
    assert_eq!(std::fs::read(&part).unwrap(), before);
    // Other settings: fitted again, and the partial replaced.
    let mut c = bin(dir.path());
    c.arg("--prepend-bos").args(FIT).args(["--skip-first", "2"]);
    c.args(["--file", &corpus(), "--shard", "1/3", "--partial"])
        .arg(&part);
    let out = c.output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("kept"));
    assert_ne!(std::fs::read(&part).unwrap(), before);
}

/// Python with Ray, when there is one.
fn ray_python() -> Option<String> {
    let python = std::env::var("GPT2_INSPECT_RAY_PYTHON").unwrap_or("python3".into());
    let works = std::process::Command::new(&python)
        .args(["-c", "import ray"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(python);
    }
    assert!(
        std::env::var_os("GPT2_INSPECT_REQUIRE_RAY").is_none(),
        "Ray is required here but {python} cannot import it"
    );
    eprintln!("skipped: {python} has no ray (pip install ray)");
    None
}

/// scripts/ray_corpus.py on a local Ray cluster, 4 shards of the fixture corpus: what it
/// prints and writes is one run's; run again, every shard is kept.
#[test]
fn the_ray_driver_runs_the_shards_and_merges_them() {
    let Some(python) = ray_python() else { return };
    let one = tempfile::tempdir().unwrap();
    let (want_json, _) = single(one.path());
    let want = matrices(&one.path().join("lens.pt"));
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = assert_cmd::cargo::cargo_bin("gpt2-inspect");
    let run = || {
        let model = model_dir().display().to_string();
        let corpus = corpus();
        let mut args = vec!["--model", &model, "--prepend-bos", "--json"];
        args.extend(FIT);
        args.extend(["--skip-first", "3", "--file", &corpus, "-o", "lens.pt"]);
        std::process::Command::new(&python)
            .current_dir(dir.path())
            .arg(root.join("scripts/ray_corpus.py"))
            .arg("--binary")
            .arg(&binary)
            .args(["--shards", "4", "--"])
            .args(&args)
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want_json, "{err}");
    assert_same_lens("Ray, 4 shards", &dir.path().join("lens.pt"), &want);
    let part = dir.path().join("ray-partials/part-3-of-4.safetensors");
    let before = std::fs::read(&part).unwrap();
    // Run again: every shard is handed its partial back and kept; the same output.
    let again = run();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&again.stdout), want_json);
    assert_eq!(std::fs::read(&part).unwrap(), before);
    let said = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        said.matches("kept from an earlier run").count(),
        4,
        "{said}"
    );

    // score --jsonl the same way: one run's lines, and its exit code for the line not run.
    let corpus = score_corpus(dir.path());
    let score = ["score", "--lines", "--batch-size", "1", "--file"];
    let mut one = bin(dir.path());
    one.arg("--jsonl").args(score).arg(&corpus);
    let (want, code, _) = outcome(&mut one);
    let model = model_dir().display().to_string();
    let out = std::process::Command::new(&python)
        .current_dir(dir.path())
        .arg(root.join("scripts/ray_corpus.py"))
        .arg("--binary")
        .arg(&binary)
        .args([
            "--shards",
            "4",
            "--workdir",
            "score-parts",
            "--",
            "--model",
            &model,
            "--jsonl",
        ])
        .args(score)
        .arg(&corpus)
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert_eq!(out.status.code(), code);

    // feature --json and its page, the same way.
    let corpus = feature_corpus(dir.path());
    let mut one = bin(dir.path());
    one.arg("--json")
        .args(feature_args(&corpus, "1,5,7"))
        .args(["--html", "one.html"]);
    let (want, code, _) = outcome(&mut one);
    let out = std::process::Command::new(&python)
        .current_dir(dir.path())
        .arg(root.join("scripts/ray_corpus.py"))
        .arg("--binary")
        .arg(&binary)
        .args(["--shards", "4", "--workdir", "feature-parts", "--"])
        .args(["--model", &model, "--json"])
        .args(feature_args(&corpus, "1,5,7"))
        .args(["--html", "ray.html"])
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert_eq!(out.status.code(), code);
    let page = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert_eq!(page("ray.html"), page("one.html"));
}

/// A corpus with a line `score` cannot run (one token) and an empty line.
fn score_corpus(dir: &Path) -> PathBuf {
    let path = dir.join("corpus.txt");
    let lines = [
        "The cat sat on the mat",
        "",
        "Hi",
        "A dog ran across the road to the park",
        "When Mary and John went to the store, John gave a drink to",
        "The old man and the sea",
        "She opened the letter slowly",
        "In the spring the river rose",
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// What a command printed and its exit code and last stderr line.
fn outcome(c: &mut assert_cmd::Command) -> (String, Option<i32>, String) {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default().to_string();
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code(),
        last,
    )
}

/// `score --jsonl` (and `--json`) in 1, 3 and 7 shards merged (in any order, and as a tree)
/// prints what one run prints, byte for byte (one text a batch in both: batching changes the last digits of
/// an f32, in one run as in shards), and ends with the same error for the line not run.
#[test]
fn score_in_shards_merges_to_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = score_corpus(d);
    let score = ["score", "--lines", "--batch-size", "1", "--file"];
    let mut one = bin(d);
    one.arg("--jsonl").args(score).arg(&corpus);
    let want = outcome(&mut one);
    assert_eq!(want.1, Some(1), "the one-token line is not run");
    assert_eq!(want.0.lines().count(), 7);
    for n in [1, 3, 7] {
        let parts: Vec<PathBuf> = (0..n)
            .map(|k| {
                let part = d.join(format!("score-{k}-of-{n}.st"));
                let mut c = bin(d);
                c.args(score)
                    .arg(&corpus)
                    .arg("--shard")
                    .arg(format!("{k}/{n}"));
                c.arg("--partial").arg(&part);
                assert!(c.output().unwrap().status.success());
                part
            })
            .collect();
        let mut rev = parts.clone();
        rev.reverse();
        for order in [&parts, &rev] {
            let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
            m.current_dir(d).args(["--jsonl", "merge"]).args(order);
            assert_eq!(outcome(&mut m), want, "{n} shards");
        }
        if n >= 3 {
            let left = d.join(format!("left-{n}.st"));
            let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
            m.current_dir(d)
                .arg("merge")
                .args(&parts[..2])
                .arg("--partial")
                .arg(&left);
            assert!(m.output().unwrap().status.success());
            let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
            m.current_dir(d)
                .args(["--jsonl", "merge"])
                .arg(&left)
                .args(&parts[2..]);
            assert_eq!(outcome(&mut m), want, "{n} shards as a tree");
        }
    }
    // --json: the batch envelope one run prints, padding included.
    let mut one = bin(d);
    one.arg("--json").args(score).arg(&corpus);
    let want = outcome(&mut one);
    let parts: Vec<PathBuf> = (0..3)
        .map(|k| d.join(format!("score-{k}-of-3.st")))
        .collect();
    let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    m.current_dir(d)
        .args(["--json", "merge"])
        .args(parts.iter().rev());
    assert_eq!(outcome(&mut m), want, "--json");
    let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    m.current_dir(d).arg("merge").arg(d.join("score-0-of-1.st"));
    fails(&mut m, 2, &["`score --jsonl` or `--json`"]);
}

/// The fixture corpus with a few short lines, an empty one, and a line too long to run
/// (the model sees 1,024 tokens), which one run leaves out and ends with an error for.
fn feature_corpus(dir: &Path) -> PathBuf {
    let path = dir.join("feature-corpus.txt");
    let mut lines: Vec<String> = std::fs::read_to_string(corpus())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.insert(3, ["word"; 1100].join(" "));
    lines.extend(["", "The cat sat on the mat", "Hi"].map(String::from));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// `feature` over a corpus of lines with these features and settings (one text a batch:
/// batching changes an activation's last digits, in one run as in shards).
fn feature_args(corpus: &Path, ids: &str) -> Vec<String> {
    let sae = fixtures().join("saes/jumprelu");
    let mut args: Vec<String> = ["feature", ids, "--sae"].map(String::from).to_vec();
    args.push(sae.display().to_string());
    args.extend(["--file".to_string(), corpus.display().to_string()]);
    let rest = ["--lines", "--batch-size", "1", "--contexts", "3"];
    args.extend(
        rest.map(String::from)
            .into_iter()
            .chain(["--window", "2"].map(String::from)),
    );
    args
}

/// Shard k of n of `feature_args` in `dir`, as feature-k-of-n.st.
fn feature_shard(dir: &Path, corpus: &Path, ids: &str, (k, n): (usize, usize)) -> PathBuf {
    let part = dir.join(format!("feature-{k}-of-{n}-{}.st", ids.replace(',', "_")));
    let mut c = bin(dir);
    c.args(feature_args(corpus, ids));
    as_shard(c, (k, n), &part);
    part
}

/// Runs `c` as shard k of n, writing its partial at `part`: what it said on stderr.
fn as_shard(mut c: assert_cmd::Command, (k, n): (usize, usize), part: &Path) -> String {
    c.arg("--shard")
        .arg(format!("{k}/{n}"))
        .arg("--partial")
        .arg(part);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

fn merged(
    dir: &Path,
    format: &[&str],
    parts: &[PathBuf],
    extra: &[&str],
) -> (String, Option<i32>, String) {
    let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    m.current_dir(dir)
        .args(format)
        .arg("merge")
        .args(parts)
        .args(extra);
    outcome(&mut m)
}

/// `feature` in 1, 3 and 7 shards merged (in any order, and as a tree) prints one run's
/// JSON byte for byte (counts, density, histogram, top contexts with their line numbers)
/// and ends with its error for the line not run; its table, CSV and dashboard page too.
#[test]
fn feature_in_shards_merges_to_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = feature_corpus(d);
    let ids = "1,5,7";
    let mut one = bin(d);
    one.arg("--json").args(feature_args(&corpus, ids));
    let want = outcome(&mut one);
    assert_eq!(want.1, Some(1), "the long line is not run: {}", want.2);
    assert!(want.2.contains("line 4 of --file"), "{}", want.2);
    let json: serde_json::Value = serde_json::from_str(&want.0).unwrap();
    let corpus_of = &json["features"][0]["corpus"];
    assert_eq!(
        corpus_of["texts"], 10,
        "every line but the long and the empty ones"
    );
    assert_eq!(corpus_of["contexts"].as_array().unwrap().len(), 3);
    for n in [1, 3, 7] {
        let parts: Vec<PathBuf> = (0..n)
            .map(|k| feature_shard(d, &corpus, ids, (k, n)))
            .collect();
        let mut rev = parts.clone();
        rev.reverse();
        for order in [&parts, &rev] {
            assert_eq!(merged(d, &["--json"], order, &[]), want, "{n} shards");
        }
        if n >= 3 {
            let left = d.join(format!("feature-left-{n}.st"));
            let l = left.display().to_string();
            let (_, code, _) = merged(d, &[], &parts[1..3], &["--partial", &l]);
            assert_eq!(code, Some(0));
            let tree = [vec![left], parts[..1].to_vec(), parts[3..].to_vec()].concat();
            assert_eq!(
                merged(d, &["--json"], &tree, &[]),
                want,
                "{n} shards as a tree"
            );
        }
    }
    // The table, CSV and the dashboard page, from 3 shards.
    let parts: Vec<PathBuf> = (0..3)
        .map(|k| d.join(format!("feature-{k}-of-3-1_5_7.st")))
        .collect();
    for format in [&[][..], &["--csv"][..]] {
        let mut one = bin(d);
        one.args(format)
            .args(feature_args(&corpus, ids))
            .args(["--html", "one.html"]);
        let want = outcome(&mut one);
        assert_eq!(
            merged(d, format, &parts, &["--html", "merged.html"]),
            want,
            "{format:?}"
        );
        let page = |name: &str| std::fs::read(d.join(name)).unwrap();
        assert_eq!(page("merged.html"), page("one.html"), "the dashboard page");
    }
}

/// Feature partials of other features are refused in one line; -o is not what `feature`
/// writes; a finished shard is kept when the job runs again.
#[test]
fn feature_partials_are_checked_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = feature_corpus(d);
    let parts: Vec<PathBuf> = (0..2)
        .map(|k| feature_shard(d, &corpus, "1,5", (k, 2)))
        .collect();
    let other = feature_shard(d, &corpus, "1,7", (1, 2));
    let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    m.current_dir(d).arg("merge").arg(&parts[0]).arg(&other);
    fails(&mut m, 1, &["other settings", "ids [1,5] against [1,7]"]);
    let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    m.current_dir(d)
        .arg("merge")
        .args(&parts)
        .args(["-o", "x.pt"]);
    fails(
        &mut m,
        2,
        &["merge of feature partials writes a page (--html), not -o"],
    );
    // Written by another version of the tool: refused (its numbers are another version's).
    let mut old = gpt2_inspect::load::partial::Partial::read(&parts[1]).unwrap();
    old.info.agree["version"] = "0.0.0".into();
    let old_path = d.join("old-version.st");
    std::fs::write(&old_path, old.to_bytes().unwrap()).unwrap();
    let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    m.current_dir(d).arg("merge").arg(&old_path);
    let said = "written by gpt2-inspect 0.0.0; merge them with that version";
    fails(&mut m, 1, &[said]);
    let mut c = bin(d);
    c.args(feature_args(&corpus, "1,5")).args([
        "--html",
        "x.html",
        "--shard",
        "0/2",
        "--partial",
        "y.st",
    ]);
    fails(&mut c, 2, &["give --html to the merge"]);
    let before = std::fs::read(&parts[1]).unwrap();
    let mut c = bin(d);
    c.args(feature_args(&corpus, "1,5"))
        .args(["--shard", "1/2", "--partial"])
        .arg(&parts[1]);
    let out = c.output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already gathered with these settings; kept"),
        "{err}"
    );
    assert_eq!(std::fs::read(&parts[1]).unwrap(), before);
}

/// Score partials with another `-k` are refused in one line, and a finished score shard is
/// kept when the job runs again.
#[test]
fn score_partials_are_checked_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = score_corpus(d);
    let shard = |k: usize, extra: &[&str]| {
        let part = d.join(format!("s-{k}{}.st", extra.join("")));
        let mut c = bin(d);
        c.args(["score", "--lines", "--file"])
            .arg(&corpus)
            .args(extra);
        let err = as_shard(c, (k, 2), &part);
        (part, err)
    };
    let (p0, _) = shard(0, &[]);
    let (p1, _) = shard(1, &["-k", "3"]);
    let mut m = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    m.current_dir(d)
        .args(["--jsonl", "merge"])
        .arg(&p0)
        .arg(&p1);
    fails(&mut m, 1, &["other settings", "top_k null against 3"]);
    let before = std::fs::read(&p0).unwrap();
    let (again, err) = shard(0, &[]);
    assert_eq!(again, p0);
    assert!(
        err.contains("already scored with these settings; kept"),
        "{err}"
    );
    assert_eq!(std::fs::read(&p0).unwrap(), before);
}
