//! Bad input never crashes: each case gets one clear line on stderr, the right exit code
//! (2 for misuse, 1 otherwise, never 101) and no half-written file. Odd but valid text works.

use std::io::Read;
use std::path::Path;
use std::process::{Command as Std, Stdio};

use crate::common::{cmd, fails, json, model_dir, Scratch};
use serde_json::Value;

fn on(model: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.arg("--model").arg(model);
    c
}

#[test]
fn empty_texts_are_errors_whitespace_is_text() {
    fails(cmd().args(["next", ""]), 1, &["the text is empty"]);
    fails(
        cmd().args(["next"]).write_stdin(""),
        1,
        &["standard input is empty"],
    );
    fails(
        cmd().args(["next", "-"]).write_stdin(""),
        1,
        &["standard input is empty"],
    );
    fails(cmd().args(["next", "a", ""]), 1, &["text 2 of 2 is empty"]);
    // Whitespace is real text: GPT-2 has tokens for it.
    let v = json(&["next", "   \n\t "]);
    assert!(!v["input_ids"].as_array().unwrap().is_empty());
}

#[test]
fn numbers_out_of_range_or_not_numbers_are_misuse() {
    for (args, needles) in [
        (vec!["next", "hi", "--top-k", "0"], vec!["--top-k"]),
        (
            vec!["next", "hi", "--top-k", "50258"],
            vec!["--top-k 50258 is out of range", "1 to 50257"],
        ),
        (vec!["next", "hi", "--top-k", "-3"], vec!["--top-k"]),
        (
            vec!["next", "hi", "--top-k", "many"],
            vec!["--top-k", "many"],
        ),
        (
            vec!["attention", "hi", "--layer", "3"],
            vec!["--layer 3 is out of range", "layers 0 to 2"],
        ),
        (
            vec!["attention", "hi", "--head", "9"],
            vec!["--head 9 is out of range", "heads 0 to 3"],
        ),
        (vec!["attention", "hi", "--layer", "-1"], vec!["--layer"]),
        (
            vec!["hidden", "hi", "--depth", "4"],
            vec!["--depth 4 is out of range", "depths 0 to 3"],
        ),
        (
            vec!["lens", "hi there", "--position", "2"],
            vec!["--position 2 is out of range"],
        ),
        (vec!["lens", "hi", "--position", "x"], vec!["--position"]),
        (
            vec!["next", "hi", "--max-length", "0"],
            vec!["--max-length"],
        ),
        (
            vec!["next", "hi", "--truncate", "middle"],
            vec!["--truncate"],
        ),
        (vec!["next", "hi", "--nope"], vec!["--nope"]),
        (vec!["next", "hi", "--file", "x"], vec!["--file"]),
        (vec!["tokenize", "--lines", "hi"], vec!["--file"]),
        (vec!["next", "hi", "--dtype", "f64"], vec!["--dtype", "f64"]),
        (vec!["next", "hi", "--device", "tpu"], vec!["--device"]),
        (vec!["frobnicate"], vec!["frobnicate"]),
        // Each names the flag the user gave, and the bound the model sets.
        (
            vec![
                "attention",
                "hi there",
                "--layer",
                "0",
                "--head",
                "0",
                "--query",
                "9",
            ],
            vec!["--query 9 is out of range", "positions 0 to 1"],
        ),
        (
            vec![
                "patch",
                "--clean",
                "a b",
                "--corrupt",
                "c d",
                "--answer",
                " e",
                "--wrong",
                " f",
                "--path",
                "0.9",
            ],
            vec![
                "--path 0.9: head 9 is out of range",
                "heads per layer 0 to 3",
            ],
        ),
        (
            vec!["embed", "hi", "--nearest", "50258"],
            vec!["--nearest 50258 is out of range", "1 to 50256"],
        ),
        (
            vec!["hooks", "--seq-len", "2000"],
            vec!["--seq-len 2000 is out of range", "1 to 1024 positions"],
        ),
        (
            vec!["dump", "hi", "--hook", "[", "-o", "/dev/null"],
            vec!["--hook [: '[' is not in a hook pattern"],
        ),
    ] {
        fails(cmd().args(&args), 2, &needles);
    }
    if !cfg!(feature = "cuda") {
        fails(
            cmd().args(["next", "hi", "--device", "cuda"]),
            2,
            &["--device cuda", "--features cuda"],
        );
    }
}

#[test]
fn text_longer_than_the_context_needs_truncate() {
    let long = "x ".repeat(1100);
    fails(
        cmd().args(["next", &long]),
        1,
        &[
            "tokens long; the model sees at most 1024",
            "--truncate left",
        ],
    );
    // 10,000 characters of one symbol, cut as asked.
    let v = json(&["next", &"é".repeat(10_000), "--truncate", "left"]);
    assert!(v["input_ids"].as_array().unwrap().len() <= 1024);
}

#[test]
fn broken_model_directories_are_named() {
    let s = Scratch::new("models");
    fails(
        on(&s.0.join("missing")).args(["next", "hi"]),
        1,
        &["--model", "missing", "no such directory"],
    );
    let dir = s.model("no-weights", &["config.json", "tokenizer.json"]);
    fails(
        on(&dir).args(["next", "hi"]),
        1,
        &["no-weights", "model.safetensors"],
    );

    let dir = s.model("pt-only", &["config.json", "tokenizer.json"]);
    std::fs::write(dir.join("pytorch_model.bin"), b"not really").unwrap();
    fails(
        on(&dir).args(["next", "hi"]),
        1,
        &[
            "pytorch_model.bin",
            "not a valid torch checkpoint",
            "not a zip",
        ],
    );

    let dir = s.model("truncated", &["config.json", "tokenizer.json"]);
    let bytes = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    fails(
        on(&dir).args(["next", "hi"]),
        1,
        &["model.safetensors", "truncated or corrupt"],
    );
    fails(on(&dir).args(["info"]), 1, &["truncated or corrupt"]);

    let dir = s.model("garbage", &["config.json", "tokenizer.json"]);
    let mut garbage = 16u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"{not json at all");
    std::fs::write(dir.join("model.safetensors"), garbage).unwrap();
    fails(
        on(&dir).args(["next", "hi"]),
        1,
        &["model.safetensors", "not a valid safetensors"],
    );
    // A header length far beyond the file.
    std::fs::write(dir.join("model.safetensors"), u64::MAX.to_le_bytes()).unwrap();
    fails(
        on(&dir).args(["next", "hi"]),
        1,
        &["not a valid safetensors"],
    );

    let config: Value =
        serde_json::from_slice(&std::fs::read(model_dir().join("config.json")).unwrap()).unwrap();
    let with_config = |name: &str, edit: &dyn Fn(&mut Value)| {
        let dir = s.model(name, &["model.safetensors", "tokenizer.json"]);
        let mut c = config.clone();
        edit(&mut c);
        std::fs::write(dir.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        dir
    };
    let dir = with_config("llama", &|c| c["model_type"] = "llama".into());
    fails(
        on(&dir).args(["next", "hi"]),
        1,
        &["--model", "model_type", "llama", "gpt2"],
    );
    let dir = with_config("wide", &|c| c["n_embd"] = 64.into());
    fails(
        on(&dir).args(["next", "hi"]),
        1,
        &["wte.weight", "[50257, 32]", "[50257, 64]", "n_embd 64"],
    );
    let dir = s.model("bad-json", &["model.safetensors", "tokenizer.json"]);
    std::fs::write(dir.join("config.json"), b"{\"n_embd\": ").unwrap();
    fails(on(&dir).args(["next", "hi"]), 1, &["config.json"]);

    let dir = s.model("no-tokenizer", &["config.json", "model.safetensors"]);
    fails(
        on(&dir).args(["tokenize", "hi"]),
        1,
        &["no-tokenizer", "tokenizer.json"],
    );
    let dir = s.model("bad-tokenizer", &["config.json", "model.safetensors"]);
    std::fs::write(dir.join("tokenizer.json"), b"{\"broken\":").unwrap();
    fails(on(&dir).args(["next", "hi"]), 1, &["tokenizer.json"]);
}

#[test]
fn hub_models_fail_fast_without_network() {
    let cache = Scratch::new("hub-cache");
    let cache_dir = cache.0.to_str().unwrap().to_string();
    // A hub that refuses connections (no network here either way) and HF_HUB_OFFLINE.
    for (key, value) in [
        ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ("HF_HUB_OFFLINE", "1"),
    ] {
        let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
        c.env("HF_HUB_CACHE", &cache.0)
            .env(key, value)
            .timeout(std::time::Duration::from_secs(60))
            .args(["--model", "gpt2-medium", "next", "hi"]);
        fails(
            &mut c,
            1,
            &["openai-community/gpt2-medium", &cache_dir, "--model"],
        );
    }
}

#[test]
fn text_files_that_cannot_be_read() {
    let s = Scratch::new("files");
    fails(
        cmd().args(["next", "--file"]).arg(s.0.join("nope.txt")),
        1,
        &["--file", "nope.txt", "cannot read"],
    );
    fails(
        cmd().args(["next", "--file"]).arg(&s.0),
        1,
        &["is a directory"],
    );
    let bad = s.0.join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9 au lait").unwrap();
    fails(
        cmd().args(["next", "--file"]).arg(&bad),
        1,
        &["latin1.txt", "not valid UTF-8", "offset 3"],
    );
    fails(
        cmd().args(["next", "-"]).write_stdin(&b"ok\xff"[..]),
        1,
        &["standard input", "offset 2"],
    );
}

#[test]
fn output_files_are_replaced_atomically_or_left_alone() {
    let s = Scratch::new("out");
    fails(
        cmd()
            .args(["dump", "hi", "-o"])
            .arg(s.0.join("no/such/dir/x.safetensors")),
        1,
        &["-o", "does not exist"],
    );
    // A path through a regular file cannot be written, even by root.
    let file = s.0.join("plain");
    std::fs::write(&file, b"").unwrap();
    fails(
        cmd()
            .args(["dump", "hi", "-o"])
            .arg(file.join("x.safetensors")),
        1,
        &["-o"],
    );

    let out = s.0.join("acts.safetensors");
    std::fs::write(&out, b"previous contents").unwrap();
    // A failing run leaves the old file as it was, and no temporary file behind.
    fails(cmd().args(["dump", "", "-o"]).arg(&out), 1, &["empty"]);
    fails(
        cmd().args(["dump", "hi", "--hook", "nope", "-o"]).arg(&out),
        2,
        &["--hook nope"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    let ok = cmd().args(["dump", "hi", "-o"]).arg(&out).output().unwrap();
    assert!(ok.status.success());
    let bytes = std::fs::read(&out).unwrap();
    assert!(safetensors::SafeTensors::deserialize(&bytes).is_ok());
    let names: Vec<String> = std::fs::read_dir(&s.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let bin = assert_cmd::cargo::cargo_bin("gpt2-inspect");
    // All layers and heads of 200 tokens: megabytes of table, far beyond a pipe's buffer.
    let text = "word ".repeat(200);
    let mut child = Std::new(bin)
        .arg("--model")
        .arg(model_dir())
        .args(["attention", &text])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then closed
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.code() == Some(0) || status.code().is_none(),
        "{status:?}: {err}"
    );
    assert!(err.is_empty(), "{err}");
}

/// Odd but valid text works in every subcommand, and `--json` is valid JSON that gives the
/// text back exactly (control characters, quotes, backslashes, lone surrogate-free oddities).
#[test]
fn every_subcommand_gives_valid_json_for_odd_text() {
    let s = Scratch::new("json");
    let dump = s.0.join("d.safetensors");
    let dump = dump.to_str().unwrap();
    let (page, figure) = (s.0.join("r.html"), s.0.join("f.svg"));
    let (page, figure) = (page.to_str().unwrap(), figure.to_str().unwrap());
    for text in [
        "nul\0byte, \u{7} bell, \u{1b}[31m escape, \"quotes\" and \\backslash\\",
        "\u{301}\u{308} lone combining marks",
        "👩‍👩‍👧‍👦 🏳️‍🌈 👋🏽 🇯🇵",
        "first<|endoftext|>second",
        "\u{feff}BOM \u{200b} zero width \u{202e} bidi \u{2028} line separator",
        "</script><script>alert(1)</script>",
        "\r\n\r\n",
    ] {
        // A NUL cannot travel in argv: such text comes on standard input.
        let run = |args: &[&str]| -> Value {
            if !text.contains('\0') {
                return json(args);
            }
            let args: Vec<&str> = args
                .iter()
                .map(|&a| if a == text { "-" } else { a })
                .collect();
            let out = cmd()
                .args(&args)
                .arg("--json")
                .write_stdin(text)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
        };
        let two_tokens = run(&["tokenize", text])["input_ids"]
            .as_array()
            .unwrap()
            .len()
            >= 2;
        let runs: Vec<Vec<&str>> = vec![
            vec!["tokenize", text],
            vec!["next", text],
            vec!["attention", text, "--scores", "--qkv"],
            vec!["attention", text, "--format", "bertviz"],
            vec!["trace", text],
            vec!["embed", text, "--nearest", "2"],
            vec!["hidden", text],
            vec!["lens", text],
            vec!["dump", text, "-o", dump],
            vec![
                "generate",
                text,
                "-n",
                "3",
                "--attention-layer",
                "0",
                "--attention-head",
                "0",
            ],
            vec!["score", text],
            vec!["report", text, "-o", page],
            vec!["attention", text, "--layer", "0", "--svg", figure],
        ];
        for args in runs {
            if args[0] == "score" && !two_tokens {
                continue;
            }
            let v = run(&args);
            if args.contains(&"--svg") {
                let svg = std::fs::read_to_string(figure).unwrap();
                roxmltree::Document::parse(&svg).expect("a well-formed SVG");
            }
            if args.contains(&"bertviz") {
                assert!(v["tokens"].is_array());
            } else {
                assert_eq!(v["text"], text, "{args:?}");
            }
        }
    }
    for args in [vec!["info"], vec!["hooks"], vec!["hooks", "--seq-len", "3"]] {
        assert_eq!(json(&args)["schema"], 1);
    }
}

/// A flag either does what it says or is refused naming it: none is silently ignored.
#[test]
fn flags_that_would_do_nothing_are_refused() {
    // ablate --svg draws the sweep's grid only (clap's `requires` is skipped here).
    let s = Scratch::new("silent-flags");
    let svg = s.0.join("x.svg");
    let svg = svg.to_str().unwrap();
    fails(
        cmd().args(["ablate", "The cat sat", "--mlp", "1", "--svg", svg]),
        2,
        &["--svg", "--sweep"],
    );
    assert!(!Path::new(svg).exists());
    fails(
        cmd().args(["heads", "The cat", "--seq-len", "10"]),
        2,
        &["--seq-len"],
    );
    fails(
        cmd().args(["heads", "The cat", "--seed", "3"]),
        2,
        &["--seed"],
    );
    fails(
        cmd().args(["lens", "The cat", "--all-positions", "-k", "3"]),
        2,
        &["--top-k"],
    );
    // --color does colour the lens heatmap: no warning that it does nothing.
    let out = cmd()
        .args(["--color", "always", "lens", "The cat", "--all-positions"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("does nothing"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\x1b[48;"));
    // attention's --head is a head of --layer; ablate's L.H spelling gets the one that works.
    fails(
        cmd().args(["attention", "The cat", "--head", "1.2"]),
        2,
        &["--layer 1 --head 2"],
    );
    // ablate --sweep --mode mean mean-ablates (checked against ablate itself in circuits).
    let v = json(&["ablate", "The cat sat", "--sweep", "--mode", "mean"]);
    assert_eq!(v["mode"], "mean");
}

/// `generate --truncate left` keeps room for -n tokens; without it, a prompt that fills the
/// model's positions stops early and says why.
#[test]
fn generation_at_the_limit_keeps_room_or_says_why_it_stops() {
    let long = "Hello ".repeat(1500);
    let out = cmd()
        .args(["generate", &long, "--truncate", "left", "-n", "5", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["input_ids"].as_array().unwrap().len(), 1024 - 5);
    assert_eq!(v["generated_ids"].as_array().unwrap().len(), 5);
    let text = "Hello ".repeat(1020);
    let out = cmd()
        .args(["generate", text.trim_end(), "-n", "8", "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let prompt = v["input_ids"].as_array().unwrap().len();
    let made = v["generated_ids"].as_array().unwrap().len();
    assert_eq!(prompt + made, 1024);
    assert!(
        err.contains(&format!("stopped after {made} of 8 tokens")),
        "{err}"
    );
    assert!(err.contains("--truncate left keeps room"), "{err}");
}

/// A text longer than the model sees is one kind of failure: exit 1 from every command that
/// takes text, with a message that says how long it is.
#[test]
fn a_text_too_long_is_exit_1_everywhere() {
    let s = Scratch::new("too-long-everywhere");
    let long = "Hello ".repeat(1100);
    let long = long.trim_end();
    let out = s.0.join("out");
    let out = out.to_str().unwrap();
    let sae = crate::common::fixtures().join("saes/topk");
    let sae = sae.to_str().unwrap();
    let pair = [
        "--clean",
        long,
        "--corrupt",
        long,
        "--answer",
        " a",
        "--wrong",
        " b",
    ];
    let commands: Vec<Vec<&str>> = vec![
        vec!["next", long],
        vec!["trace", long],
        vec!["embed", long],
        vec!["hidden", long],
        vec!["attention", long, "--layer", "0", "--head", "0"],
        vec!["lens", long],
        vec!["score", long],
        vec!["generate", long],
        vec!["report", long, "-o", out],
        vec!["dump", long, "-o", out],
        vec!["ablate", long, "--mlp", "0"],
        vec!["attribute", long, "--answer", " a"],
        vec!["saliency", long],
        vec!["heads", &long[..6 * 600 - 1]],
        [&["patch"][..], &pair].concat(),
        [&["circuit"][..], &pair].concat(),
        vec!["features", long, "--sae", sae],
        vec!["feature", "1", "--sae", sae, long],
    ];
    for args in commands {
        fails(cmd().args(&args), 1, &["tokens long"]);
    }
    assert!(!Path::new(out).exists());
}
