//! The binary as a user runs it, on the fixture model; numbers checked against HF's outputs.

use crate::common::{cmd, flat, floats, json, max_abs_diff, model_dir, Reference, TOL};
use assert_cmd::Command;
use candle_core::Tensor;
use serde_json::Value;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_header(v: &Value, text: Option<&str>) {
    assert_eq!(v["schema"], 1);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["model"], model_dir().to_str().unwrap());
    // A local directory has no commit.
    assert!(v["revision"].is_null(), "{v}");
    match text {
        Some(t) => assert_eq!(v["text"], t),
        None => assert!(v["text"].is_null()),
    }
}

#[test]
fn tokenize_table_and_json() {
    let text = "Hello, how are you?";
    let out = cmd().args(["tokenize", text]).output().unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("Ġhow") && table.contains("\" how\""),
        "{table}"
    );
    assert!(
        table.contains("[15496, 11, 703, 389, 345, 30]  shape (1, 6)"),
        "{table}"
    );

    let v = json(&["tokenize", text]);
    assert_header(&v, Some(text));
    assert_eq!(
        v["input_ids"],
        serde_json::json!([15496, 11, 703, 389, 345, 30])
    );
    assert_eq!(v["attention_mask"], serde_json::json!([1, 1, 1, 1, 1, 1]));
    assert_eq!(v["shape"], serde_json::json!([1, 6]));
    assert_eq!(
        v["tokens"][2],
        serde_json::json!({"id": 703, "token": "Ġhow", "text": " how", "start": 6, "end": 10})
    );
}

#[test]
fn next_matches_softmax_of_hf_logits() {
    let reference = Reference::load();
    for (i, prompt) in reference.prompts.iter().enumerate() {
        let v = json(&["next", prompt, "--top-k", "5"]);
        assert_header(&v, Some(prompt));
        let hf = flat(reference.get(&format!("p{i}.logits_last")));
        let max = hf.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let log_z = max + hf.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln();
        let mut order: Vec<usize> = (0..hf.len()).collect();
        order.sort_by(|&a, &b| hf[b].total_cmp(&hf[a]));
        let preds = v["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), 5);
        for (rank, p) in preds.iter().enumerate() {
            let id = order[rank];
            assert_eq!(p["rank"], rank + 1);
            assert_eq!(p["id"], id, "prompt {i} rank {}", rank + 1);
            let hf_logprob = hf[id] as f64 - log_z;
            assert!((p["logit"].as_f64().unwrap() - hf[id] as f64).abs() < TOL as f64);
            assert!((p["logprob"].as_f64().unwrap() - hf_logprob).abs() < TOL as f64);
            assert!((p["prob"].as_f64().unwrap() - hf_logprob.exp()).abs() < TOL as f64);
            assert!(p["token"].is_string());
        }
        assert_eq!(
            v["input_ids"].as_array().unwrap().len(),
            reference.ids(i).len()
        );
    }
}

#[test]
fn next_prints_the_shape_of_every_stage() {
    let out = cmd()
        .args(["next", "The quick brown fox", "--top-k", "3"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    for want in [
        "(1, 4)",
        "(1, 4, 32)",
        "(1, 4, 50257)",
        "rank",
        "prob",
        "logprob",
        "logit",
    ] {
        assert!(s.contains(want), "missing {want} in\n{s}");
    }
    let v = json(&["next", "The quick brown fox"]);
    let shapes: Vec<Value> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shape"].clone())
        .collect();
    assert_eq!(
        shapes,
        [
            serde_json::json!([1, 4]),
            serde_json::json!([1, 4, 32]),
            serde_json::json!([1, 4, 32]),
            serde_json::json!([1, 4, 50257])
        ]
    );
    assert_eq!(
        v["predictions"].as_array().unwrap().len(),
        5,
        "default top-k is 5"
    );
}

#[test]
fn attention_one_head_one_layer_all_layers_match_hf() {
    let reference = Reference::load();
    let prompt = &reference.prompts[2];
    let hf = reference.get("p2.attentions"); // (L, H, T, T)
    let (l, h, t, _) = hf.dims4().unwrap();

    let check = |args: &[&str], want: &Tensor, shape: &[usize], layer: Value, head: Value| {
        let mut full = vec!["attention", prompt.as_str()];
        full.extend_from_slice(args);
        let v = json(&full);
        assert_header(&v, Some(prompt));
        assert_eq!(v["shape"], serde_json::json!(shape), "{args:?}");
        assert_eq!(v["layer"], layer);
        assert_eq!(v["head"], head);
        assert_eq!(v["tokens"].as_array().unwrap().len(), t);
        let d = max_abs_diff(&floats(&v["weights"]), &flat(want));
        assert!(d <= TOL, "{args:?}: max diff {d}");
    };
    let at = |layer: usize| hf.get(layer).unwrap();
    check(
        &["--layer", "1", "--head", "2"],
        &at(1).get(2).unwrap(),
        &[t, t],
        1.into(),
        2.into(),
    );
    check(&["--layer", "2"], &at(2), &[h, t, t], 2.into(), Value::Null);
    check(&[], hf, &[l, h, t, t], Value::Null, Value::Null);
    let head3 = hf.narrow(1, 3, 1).unwrap();
    check(
        &["--head", "3"],
        &head3,
        &[l, 1, t, t],
        Value::Null,
        3.into(),
    );
}

#[test]
fn attention_table_labels_tokens_and_masks_the_future() {
    let out = cmd()
        .args(["attention", "The cat sat", "--layer", "0", "--head", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("layer 0 head 1"), "{s}");
    assert!(s.contains("\" cat\"") && s.contains("\" sat\""), "{s}");
    let first_row = s.lines().find(|l| l.starts_with("0 \"The\"")).unwrap();
    assert!(
        first_row.contains("1.000") && first_row.matches('-').count() == 2,
        "{first_row}"
    );
}

#[test]
fn info_reads_the_header() {
    let reference = Reference::load();
    let v = json(&["info"]);
    assert_header(&v, None);
    assert_eq!(v["config"]["vocab_size"], 50257);
    assert_eq!(v["config"]["n_embd"], 32);
    assert_eq!(v["config"]["n_layer"], 3);
    assert_eq!(v["parameters"], reference.num_parameters);
    let tensors = v["tensors"].as_array().unwrap();
    let wte = tensors
        .iter()
        .find(|t| t["name"] == "transformer.wte.weight")
        .unwrap();
    assert_eq!(wte["shape"], serde_json::json!([50257, 32]));
    assert_eq!(wte["dtype"], "f32");
    let wpe = tensors
        .iter()
        .find(|t| t["name"] == "transformer.wpe.weight")
        .unwrap();
    assert_eq!(wpe["shape"], serde_json::json!([1024, 32]));
    assert_eq!(tensors.len(), 2 + 3 * 12 + 2);
}

#[test]
fn text_from_stdin_dash_and_file() {
    let want = json(&["tokenize", "The cat sat on the mat"]);
    let piped = cmd()
        .args(["tokenize", "--json"])
        .write_stdin("The cat sat on the mat\n")
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr_of(&piped));
    let piped: Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(piped["input_ids"], want["input_ids"]);

    let dash = cmd()
        .args(["tokenize", "-", "--json"])
        .write_stdin("The cat sat on the mat")
        .output()
        .unwrap();
    let dash: Value = serde_json::from_slice(&dash.stdout).unwrap();
    assert_eq!(dash["input_ids"], want["input_ids"]);

    let path = std::env::temp_dir().join(format!("gpt2-inspect-cli-{}.txt", std::process::id()));
    std::fs::write(&path, "The cat sat on the mat\n").unwrap();
    let file = cmd()
        .args(["tokenize", "--json", "--file"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let file: Value = serde_json::from_slice(&file.stdout).unwrap();
    assert_eq!(file["input_ids"], want["input_ids"]);
}

#[test]
fn empty_stdin_is_an_error() {
    let out = cmd().args(["next"]).write_stdin("").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("standard input is empty"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let after = json(&["tokenize", "Hi there"]);
    let out = Command::cargo_bin("gpt2-inspect")
        .unwrap()
        .arg("--json")
        .arg("--model")
        .arg(model_dir())
        .args(["tokenize", "Hi there"])
        .output()
        .unwrap();
    let before: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(before, after);
}

#[test]
fn out_of_range_and_invalid_values_are_misuse() {
    for (args, needle) in [
        (
            vec!["attention", "hi", "--layer", "3"],
            "--layer 3 is out of range",
        ),
        (
            vec!["attention", "hi", "--layer", "0", "--head", "4"],
            "--head 4 is out of range",
        ),
        (vec!["next", "hi", "--top-k", "0"], "--top-k"),
        (
            vec!["next", "hi", "--top-k", "50258"],
            "--top-k 50258 is out of range",
        ),
        (vec!["attention", "hi", "--layer", "-1"], "--layer"),
        (vec!["attention", "hi", "--layer", "x"], "--layer"),
        (vec!["next", "hi", "--dtype", "f64"], "--dtype"),
    ] {
        let out = cmd().args(&args).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let out = cmd()
        .args(["attention", "hi", "--layer", "3"])
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("layers 0 to 2"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn uncached_hub_model_offline_fails_fast_and_says_what_to_do() {
    let cache =
        std::env::temp_dir().join(format!("gpt2-inspect-empty-cache-{}", std::process::id()));
    let started = std::time::Instant::now();
    let out = Command::cargo_bin("gpt2-inspect")
        .unwrap()
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", &cache)
        .args(["next", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("openai-community/gpt2"), "{err}");
    assert!(err.contains(cache.to_str().unwrap()), "{err}");
    assert!(err.contains("--model"), "{err}");
    // A first try offline: the bundled fixture.
    assert!(err.contains("--model tests/fixtures/tiny-gpt2"), "{err}");
    assert!(started.elapsed().as_secs() < 10);
}

/// The allocator's options are part of the binary (not of build flags that `cargo install`
/// would not read): jemalloc reports them when asked to print its statistics.
#[test]
fn the_binary_carries_its_allocator_options() {
    let out = cmd()
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .args(["info"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = stderr_of(&out);
    for want in [
        r#"opt.thp: "always""#,
        "opt.dirty_decay_ms: 20000",
        "opt.muzzy_decay_ms: -1",
    ] {
        assert!(stats.contains(want), "{want} not in jemalloc's statistics");
    }
}

#[test]
fn version_names_commit_and_features() {
    let out = Command::cargo_bin("gpt2-inspect")
        .unwrap()
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with(concat!(
            "gpt2-inspect ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        )),
        "{v}"
    );
    let features = if cfg!(feature = "avx512") {
        "features: avx512"
    } else {
        "features: none"
    };
    assert!(v.contains(features), "{v}");
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr_of(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        // Subcommands and their flags are offered.
        for word in ["gpt2-inspect", "attention", "top-k", "sample-top-k"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = cmd().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.contains(".TH gpt2-inspect 1") && page.contains("HF_HUB_OFFLINE"),
        "{page}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = cmd()
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let next = std::fs::read_to_string(dir.path().join("gpt2-inspect-next.1")).unwrap();
    // A subcommand's page has its own options and the global ones.
    assert!(next.contains("top\\-k") && next.contains("model"), "{next}");
    assert!(dir.path().join("gpt2-inspect.1").is_file());
    let out = cmd()
        .args(["man", "--dir", "/nonexistent/man1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("--dir /nonexistent/man1: no such directory"));
    // A file where a directory should be is not "no such directory".
    let out = cmd().args(["man", "--dir", "/dev/null"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("--dir /dev/null: not a directory"));
}

#[test]
fn help_groups_options_and_teaches() {
    let help = |args: &[&str]| {
        let out = cmd().args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["--help"]);
    for var in [
        "Environment:",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "HF_TOKEN",
        "HF_ENDPOINT",
        "NO_COLOR",
        "COLORTERM",
        "COLUMNS",
        "Examples:",
    ] {
        assert!(top.contains(var), "top-level help lacks {var}");
    }
    let next = help(&["next", "--help"]);
    let own = next.find("--top-k").unwrap();
    let input = next.find("Input options:").unwrap();
    let global = next.find("Global options:").unwrap();
    let examples = next.find("Examples:").unwrap();
    assert!(own < input && input < global && global < examples, "{next}");
    assert!(next[global..].contains("--model") && !next[..global].contains("--model"));
    // Where a learner looks first: the top-level help names the neuron view and the stages,
    // attention's examples use them, and a shared flag's help speaks of the command it is
    // shown in (patch's --answer does not describe circuit).
    assert!(top.contains("--query") && top.contains("--stages"), "{top}");
    let attention = help(&["attention", "--help"]);
    let examples = &attention[attention.find("Examples:").unwrap()..];
    assert!(
        examples.contains("--stages") && examples.contains("--query"),
        "{examples}"
    );
    for command in ["patch", "circuit"] {
        let text = help(&[command, "--help"]);
        assert!(!text.contains("circuit: one token"), "{command}: {text}");
        assert!(text.contains("--metric"), "{command} takes --metric");
    }
}

#[test]
fn jsonl_is_one_object_per_text_with_version() {
    let out = cmd()
        .args(["next", "--jsonl", "The cat", "A dog sat"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (v, t) in lines.iter().zip(["The cat", "A dog sat"]) {
        assert_header(v, Some(t));
        // The same object as the text run alone.
        let alone = json(&["next", t]);
        assert_eq!(v["predictions"][0]["id"], alone["predictions"][0]["id"]);
    }
    // The batch envelope carries the version and revision too.
    let v = json(&["next", "The cat", "A dog sat"]);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["revision"].is_null() && v["batch"].is_array());
}

#[test]
fn standard_input_as_file_and_lines() {
    let run = |args: &[&str], stdin: &str| {
        let out = cmd().args(args).write_stdin(stdin).output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout.clone()).unwrap(),
            stderr_of(&out),
        )
    };
    let (code, out, _) = run(&["tokenize", "--jsonl", "--lines"], "one\n\ntwo three\n");
    assert_eq!(code, Some(0));
    let texts: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(texts, ["one", "two three"]);
    let (code, out, _) = run(&["tokenize", "--json", "--file", "-"], "one\ntwo\n");
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["text"],
        "one\ntwo"
    );
    let (code, _, err) = run(&["tokenize", "--lines", "some text"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("--lines"), "{err}");
}

#[test]
fn global_options_a_command_does_not_use_are_said_to_be_ignored() {
    let out = cmd()
        .args(["tokenize", "hi", "--dtype", "f16", "--color", "always"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("warning: --dtype does nothing for `tokenize`; ignored"),
        "{err}"
    );
    assert!(
        err.contains("warning: --color does nothing for `tokenize`; ignored"),
        "{err}"
    );
    // Defaults are not warned about, and options a command uses are not either.
    let out = cmd().args(["tokenize", "hi"]).output().unwrap();
    assert_eq!(stderr_of(&out), "");
    let out = cmd()
        .args([
            "attention",
            "hi",
            "--layer",
            "0",
            "--color",
            "never",
            "--dtype",
            "f32",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stderr_of(&out), "");
}

/// Long work shows its size and progress on a terminal's stderr (here a pseudo-terminal
/// from util-linux's `script`), and nothing on a pipe: `patch --site pattern-dest-src` on
/// the fixture announces its 3 × 4 × 21 patched runs, `circuit` each of its stages.
#[test]
fn long_runs_show_progress_on_a_terminal() {
    let Ok(bin) = std::env::var("CARGO_BIN_EXE_gpt2-inspect") else {
        panic!("cargo sets CARGO_BIN_EXE_gpt2-inspect for integration tests");
    };
    let model = crate::common::model_dir();
    let pair = "--clean 'The cat sat on the mat' --corrupt 'The dog sat on the mat' \
                --answer ' the' --wrong ' a'";
    let cases = [
        (
            "patch",
            "--site pattern-dest-src",
            vec!["patch: 252 patched runs ["],
        ),
        (
            "circuit",
            "--ig-steps 4 --exact 3 --faithfulness 1,2",
            vec![
                "circuit: 4 gradient runs (forward and backward) [",
                "circuit: 2 circuits run for --faithfulness [",
                "circuit: 3 edge patches [",
            ],
        ),
    ];
    for (command, extra, needles) in cases {
        let line = format!(
            "{bin} --model {} {command} {pair} {extra} --json > /dev/null",
            model.display()
        );
        let shown = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .output()
            .expect("util-linux's script (Debian's bsdutils) makes the pseudo-terminal");
        assert!(shown.status.success(), "{line}");
        let shown = String::from_utf8_lossy(&shown.stdout);
        for n in needles {
            assert!(shown.contains(n), "{command}: no {n:?} in {shown:?}");
        }
        let piped = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        assert!(
            piped.status.success() && piped.stderr.is_empty(),
            "{command} on a pipe"
        );
    }
}

/// `--revision` with a local model directory is ignored, and says so as other ignored
/// global options do.
#[test]
fn a_revision_of_a_local_directory_is_said_to_be_ignored() {
    let out = crate::common::cmd()
        .args(["--revision", "abc", "next", "The cat", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("warning: --revision abc picks a hub version; --model ")
            && err.contains("is a local directory, so it is ignored"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
