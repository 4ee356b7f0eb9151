//! Several texts as one right-padded batch, against Hugging Face's padded batch and against
//! each text run alone; long inputs and truncation.

use crate::common::{cmd, flat, floats, ids_of, json, max_abs_diff, model_dir, Reference, TOL};
use candle_core::{DType, Device, Tensor};
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::{BlockHook, CaptureSpec, Config, Gpt2, Hook, Logits, Request};
use serde_json::Value;

/// A batch result may differ from the text run alone by float rounding only.
const SAME: f32 = 1e-5;

fn rows_u32(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|x| x as u32).collect())
        .collect()
}

fn batch_args<'a>(reference: &'a Reference, args: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = args.to_vec();
    v.extend(reference.batch.iter().map(String::as_str));
    v
}

#[test]
fn tokenize_pads_like_hf_tokenizer() {
    let reference = Reference::load();
    let v = json(&batch_args(&reference, &["tokenize"]));
    assert_eq!(v["schema"], 1);
    assert_eq!(v["model"], model_dir().to_str().unwrap());
    let want_ids = rows_u32(reference.get("batch.input_ids"));
    let want_mask = rows_u32(reference.get("batch.attention_mask"));
    let got = |k: &str| -> Vec<Vec<u32>> { v[k].as_array().unwrap().iter().map(ids_of).collect() };
    assert_eq!(got("input_ids"), want_ids);
    assert_eq!(got("attention_mask"), want_mask);
    assert_eq!(
        v["shape"],
        serde_json::json!([want_ids.len(), want_ids[0].len()])
    );
    let batch = v["batch"].as_array().unwrap();
    assert_eq!(batch.len(), reference.batch.len());
    for (entry, text) in batch.iter().zip(&reference.batch) {
        // Each entry is the single-text object.
        assert_eq!(*entry, json(&["tokenize", text]));
    }

    let out = cmd()
        .args(batch_args(&reference, &["tokenize"]))
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("== text 2 of 3: \"Hello, how are you?\""),
        "{table}"
    );
    assert!(table.contains("input_ids  shape (3, 9)"), "{table}");
    assert!(table.contains("1  1  1  1  1  1  0  0  0"), "{table}");
}

/// The padded forward pass against HF's, logits at each last real token and every
/// attention map (padding rows included: HF masks padding keys too).
#[test]
fn padded_forward_matches_hf_batch() {
    let reference = Reference::load();
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&model_dir().join("model.safetensors")).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    let ids = reference
        .get("batch.input_ids")
        .to_dtype(DType::U32)
        .unwrap();
    let lengths: Vec<usize> = rows_u32(reference.get("batch.attention_mask"))
        .iter()
        .map(|m| m.iter().sum::<u32>() as usize)
        .collect();
    let patterns: Vec<Hook> = (0..cfg.n_layer)
        .map(|l| Hook::Block(l, BlockHook::Pattern))
        .collect();
    let req = Request {
        capture: CaptureSpec::new(patterns.iter().copied()),
        logits: Logits::Last,
    };
    let out = model.forward_padded(&ids, &lengths, &req).unwrap();
    let logits = out.logits.as_ref().unwrap().squeeze(1).unwrap(); // (B, V)
    let d = max_abs_diff(
        &flat(&logits),
        &flat(reference.get("batch.logits_last_real")),
    );
    assert!(d <= TOL, "logits at the last real tokens: {d}");
    let ours: Vec<Tensor> = patterns
        .iter()
        .map(|&h| out.activations.get(h).unwrap().clone())
        .collect();
    let ours = Tensor::stack(&ours, 1).unwrap(); // (B, L, nh, T, T)
    let d = max_abs_diff(&flat(&ours), &flat(reference.get("batch.attentions")));
    assert!(d <= TOL, "attentions: {d}");
}

fn assert_same(what: &str, got: &Value, alone: &Value) {
    let d = max_abs_diff(&floats(got), &floats(alone));
    assert!(d <= SAME, "{what}: batch vs alone differ by {d}");
}

#[test]
fn each_text_of_a_batch_is_as_if_run_alone() {
    let reference = Reference::load();
    let next = json(&batch_args(&reference, &["next", "-k", "10"]));
    let attention = json(&batch_args(&reference, &["attention", "--scores"]));
    // score needs two tokens per text; "Hello" has one.
    let scored: Vec<&str> = reference.batch[1..].iter().map(String::as_str).collect();
    let score = json(&[&["score"], scored.as_slice()].concat());
    let lens = json(&batch_args(&reference, &["lens", "-k", "3"]));
    for (i, text) in reference.batch.iter().enumerate() {
        let alone = json(&["next", text, "-k", "10"]);
        let got = &next["batch"][i];
        assert_eq!(got["input_ids"], alone["input_ids"]);
        let ids = |v: &Value| -> Vec<u64> {
            v["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_u64().unwrap())
                .collect()
        };
        assert_eq!(ids(got), ids(&alone), "{text}: top-10 ids");
        for key in ["prob", "logprob", "logit"] {
            let col = |v: &Value| -> Value {
                v["predictions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[key].clone())
                    .collect()
            };
            assert_same(&format!("{text}: {key}"), &col(got), &col(&alone));
        }

        // Attention cropped to the text's own tokens: T_i × T_i, no padding.
        let alone_att = json(&["attention", text, "--scores"]);
        let got_att = &attention["batch"][i];
        assert_eq!(got_att["shape"], alone_att["shape"], "{text}");
        assert_same(
            &format!("{text}: weights"),
            &got_att["weights"],
            &alone_att["weights"],
        );
        assert_same(
            &format!("{text}: scores"),
            &got_att["scores"],
            &alone_att["scores"],
        );

        let alone_lens = json(&["lens", text, "-k", "3"]);
        assert_eq!(lens["batch"][i]["final_id"], alone_lens["final_id"]);
        assert_eq!(lens["batch"][i]["position"], alone_lens["position"]);

        if i > 0 {
            let alone_score = json(&["score", text]);
            let lp = |v: &Value| -> Value {
                v["tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["logprob"].clone())
                    .collect()
            };
            assert_same(
                &format!("{text}: score"),
                &lp(&score["batch"][i - 1]),
                &lp(&alone_score),
            );
        }
    }
}

#[test]
fn file_lines_is_a_batch() {
    let dir = std::env::temp_dir().join(format!("gpt2-inspect-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("texts.txt");
    std::fs::write(&path, "Hello\n\nHello, how are you?\r\n").unwrap();
    let v = json(&["tokenize", "--file", path.to_str().unwrap(), "--lines"]);
    assert_eq!(v["shape"], serde_json::json!([2, 6]));
    assert_eq!(v["batch"][1]["text"], "Hello, how are you?");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Equal but for float rounding: the same structure and text, numbers within [`SAME`].
fn same_json(what: &str, a: &Value, b: &Value) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let d = (x.as_f64().unwrap() - y.as_f64().unwrap()).abs();
            assert!(d <= SAME as f64, "{what}: {x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{what}");
            x.iter().zip(y).for_each(|(x, y)| same_json(what, x, y));
        }
        (Value::Object(x), Value::Object(y)) => {
            assert!(x.keys().eq(y.keys()), "{what}");
            x.iter()
                .for_each(|(k, v)| same_json(&format!("{what}.{k}"), v, &y[k]));
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

/// A file of lines runs in bounded batches, texts of similar length together, and the
/// output is the same as one batch: input order, each text as if alone, the whole input's
/// padding in the envelope.
#[test]
fn lines_run_in_bounded_batches_in_input_order() {
    let reference = Reference::load();
    let scratch = crate::common::Scratch::new("batch-size");
    let lines = [
        "The quick brown fox jumps over the lazy dog",
        "Hello",
        "Hello, how are you?",
        "A",
        "The capital of France is",
        "Once upon a time there was a little girl who lived in a village near the forest",
        "Yes",
    ];
    let path = scratch.0.join("texts.txt");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let file = path.to_str().unwrap();
    let run = |cmd: &str, size: &str| json(&[cmd, "--file", file, "--lines", "--batch-size", size]);
    for cmd in ["next", "lens", "tokenize"] {
        let one = run(cmd, "16");
        for size in ["1", "2", "3"] {
            let small = run(cmd, size);
            let (a, b) = (
                one["batch"].as_array().unwrap(),
                small["batch"].as_array().unwrap(),
            );
            assert_eq!(a.len(), lines.len(), "{cmd}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_eq!(x["text"], lines[i], "{cmd} --batch-size {size}: order");
                assert_eq!(x["input_ids"], y["input_ids"]);
                same_json(&format!("{cmd} text {i} --batch-size {size}"), x, y);
            }
            for k in ["input_ids", "attention_mask", "shape", "schema", "model"] {
                assert_eq!(one[k], small[k], "{cmd} --batch-size {size}: {k}");
            }
        }
    }
    // And each as if alone, against HF's padded batch shape for the reference texts.
    let batch = json(&batch_args(&reference, &["next", "--batch-size", "1"]));
    let want_ids = rows_u32(reference.get("batch.input_ids"));
    let got: Vec<Vec<u32>> = batch["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids_of)
        .collect();
    assert_eq!(got, want_ids);
}

#[test]
fn long_inputs_error_unless_truncated() {
    // 600 repetitions stay under 1024 tokens and run as they are.
    let short = "Hello ".repeat(600);
    let v = json(&["tokenize", &short]);
    let n_short = v["input_ids"].as_array().unwrap().len();
    assert!(n_short > 600 && n_short <= 1024, "{n_short}");
    json(&["next", &short]);

    let long = "Hello ".repeat(1500);
    let full = ids_of(&json(&["tokenize", &long])["input_ids"]);
    let n = full.len();
    assert!(n > 1024);
    let out = cmd().args(["next", &long]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{n} tokens long; the model sees at most 1024"))
            && err.contains("--truncate left")
            && err.contains("--max-length"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    let out = cmd()
        .args(["tokenize", &long, "--truncate", "left", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cut the first {} tokens", n - 1024)),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids_of(&v["input_ids"]), full[full.len() - 1024..]);

    let right = json(&["tokenize", &long, "--truncate", "right"]);
    assert_eq!(ids_of(&right["input_ids"]), full[..1024]);

    let v = json(&["next", &long, "--truncate", "left"]);
    assert_eq!(v["input_ids"].as_array().unwrap().len(), 1024);

    // --max-length lowers the limit: an error without --truncate, the last N tokens with it.
    let text = "The quick brown fox jumps";
    let all = ids_of(&json(&["tokenize", text])["input_ids"]);
    let out = cmd()
        .args(["next", text, "--max-length", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&["next", text, "--truncate", "left", "--max-length", "2"]);
    assert_eq!(ids_of(&v["input_ids"]), all[all.len() - 2..]);
    let out = cmd()
        .args(["next", text, "--max-length", "2000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--max-length 2000"), "{err}");
}

#[test]
fn the_batch_envelope_keeps_its_key_order() {
    // Scripts may read the envelope as a stream: its keys come in one documented order,
    // the header's first and the padding last.
    let out = cmd()
        .args(["next", "The cat sat", "A dog", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    let mut at = 0;
    for key in [
        "schema",
        "version",
        "model",
        "revision",
        "batch",
        "input_ids",
        "attention_mask",
        "shape",
    ] {
        let found = text[at..]
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} after byte {at} in {text}"));
        at += found;
        // Only the envelope's own keys are looked for at this depth: skip the batch.
        if key == "batch" {
            at += text[at..].rfind("],\"input_ids\"").unwrap();
        }
    }
    assert!(text.starts_with(r#"{"schema":1,"version":"#), "{text}");
    assert!(text.trim_end().ends_with("\"shape\":[2,3]}"), "{text}");
}

/// Stdout's JSON lines.
fn json_lines(stdout: &[u8]) -> Vec<Value> {
    (String::from_utf8_lossy(stdout).lines())
        .map(|l| serde_json::from_str(l).expect("a JSON object a line"))
        .collect()
}

#[test]
fn a_line_that_cannot_run_is_reported_in_its_place_and_the_rest_run() {
    let s = crate::common::Scratch::new("bad-lines");
    let path = s.0.join("lines.txt");
    let long = "Hello ".repeat(1100);
    // Line 2 is empty (skipped, yet counted), line 4 has one token, line 5 is too long.
    let lines = [
        "The cat sat",
        "",
        "A dog",
        "x",
        long.trim_end(),
        "The end is near",
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let file = path.to_str().unwrap();
    let run = |args: &[&str]| cmd().args(args).output().unwrap();

    // score: line 4 is too short to score, line 5 too long; the others are as if run alone.
    let out = run(&["score", "--file", file, "--lines", "--jsonl"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let got = json_lines(&out.stdout);
    assert_eq!(got.len(), 5, "one object per non-empty line");
    for (v, line) in got.iter().zip([1, 3, 4, 5, 6]) {
        let text = lines[line - 1];
        match line {
            4 | 5 => {
                assert_eq!(v["line"], line, "{v}");
                assert_eq!(v["text"], text);
                let e = v["error"].as_str().unwrap();
                assert!(e.contains(&format!("line {line} of --file {file}")), "{e}");
                assert!(err.contains(&format!("not run: {e}")), "{err}");
            }
            _ => {
                let alone = json(&["score", text]);
                assert_eq!(v["input_ids"], alone["input_ids"], "line {line}");
                same_json(&format!("line {line}"), &v["tokens"], &alone["tokens"]);
            }
        }
    }
    assert!(err.contains("2 of 5 texts were not run"), "{err}");

    // --json: the errors stand in the envelope's batch, in input order.
    let out = run(&["score", "--file", file, "--lines", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch = v["batch"].as_array().unwrap();
    let errors: Vec<bool> = batch.iter().map(|b| b.get("error").is_some()).collect();
    assert_eq!(errors, [false, false, true, true, false]);
    // Tables: the failed text's heading, then why.
    let out = run(&["score", "--file", file, "--lines"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("== text 3 of 5: \"x\"\nnot run: score needs at least two tokens"),
        "{table}"
    );

    // next scores one token fine: only the long line fails.
    let out = run(&["next", "--file", file, "--lines", "--jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let got = json_lines(&out.stdout);
    assert_eq!(got.iter().filter(|v| v.get("error").is_some()).count(), 1);
    same_json(
        "line 6",
        &got[4]["predictions"],
        &json(&["next", lines[5]])["predictions"],
    );
    // --fail-fast: nothing runs; a line over the limit is found first (as the text is
    // read), then the command's own checks.
    let fail_fast = |extra: &[&str], names: &str| {
        let mut args = vec!["score", "--file", file, "--lines", "--fail-fast"];
        args.extend_from_slice(extra);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert!(err.contains(names), "{err}");
    };
    fail_fast(&[], &format!("line 5 of --file {file} is 1100 tokens"));
    fail_fast(
        &["--truncate", "left"],
        &format!("line 4 of --file {file} has 1"),
    );
    // With --truncate left every line but the one-token one runs.
    let out = run(&[
        "score",
        "--file",
        file,
        "--lines",
        "--jsonl",
        "--truncate",
        "left",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let got = json_lines(&out.stdout);
    assert_eq!(got.iter().filter(|v| v.get("error").is_some()).count(), 1);
    // generate and a feature's corpus pass go on past the long line too.
    let out = run(&["generate", "--file", file, "--lines", "-n", "2", "--jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let got = json_lines(&out.stdout);
    assert_eq!(got.len(), 5);
    assert_eq!(got[3]["line"], 5);
    let sae = crate::common::fixtures().join("saes/topk");
    let out = run(&[
        "feature",
        "1",
        "--sae",
        sae.to_str().unwrap(),
        "--file",
        file,
        "--lines",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["features"][0]["corpus"]["texts"], 4, "{v}");
}

/// `--truncate`: a report's `text` is what was analysed, and `truncated` says what was cut
/// (absent when nothing was); token offsets are into that text.
#[test]
fn truncated_texts_say_what_was_kept_and_cut() {
    let long = format!("{}The end", "Hello ".repeat(1500));
    let full = ids_of(&json(&["tokenize", &long])["input_ids"]);
    let n = full.len();
    let left = json(&["next", &long, "--truncate", "left"]);
    let kept = left["text"].as_str().unwrap();
    assert!(long.ends_with(kept) && kept.len() < long.len());
    assert_eq!(left["truncated"]["side"], "left");
    assert_eq!(left["truncated"]["cut_tokens"], n - 1024);
    // The kept text is exactly the kept tokens.
    assert_eq!(
        ids_of(&json(&["tokenize", kept])["input_ids"]),
        full[n - 1024..]
    );
    let right = json(&["tokenize", &long, "--truncate", "right"]);
    let kept = right["text"].as_str().unwrap();
    assert!(long.starts_with(kept));
    assert_eq!(right["truncated"]["side"], "right");
    assert_eq!(right["truncated"]["cut_tokens"], n - 1024);
    let last = &right["tokens"][1023];
    assert_eq!(last["end"].as_u64().unwrap() as usize, kept.len());
    let left = json(&["tokenize", &long, "--truncate", "left"]);
    let kept = left["text"].as_str().unwrap();
    assert_eq!(left["tokens"][0]["start"], 0);
    assert_eq!(
        left["tokens"][1023]["end"].as_u64().unwrap() as usize,
        kept.len()
    );
    // Nothing cut, nothing said; the same for a batch, per text.
    assert!(json(&["next", "The cat"]).get("truncated").is_none());
    let v = json(&["score", "The cat sat", &long, "--truncate", "left"]);
    assert!(v["batch"][0].get("truncated").is_none());
    assert_eq!(v["batch"][1]["truncated"]["side"], "left");
    // A report page shows the text it covers and says what was cut.
    let out = cmd()
        .args(["report", &long, "--truncate", "left", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    let open = r#"<pre class="text">"#;
    let at = page.find(open).unwrap() + open.len();
    let shown = &page[at..at + page[at..].find("</pre>").unwrap()];
    assert!(
        long.ends_with(shown) && shown.len() < 256 * 7,
        "{}",
        shown.len()
    );
    assert!(page.contains(&format!(
        "--truncate left cut {} tokens from the start",
        n - 256
    )));
}

/// `--ids` (and `--clean-ids`, `--corrupt-ids`): token ids in, the same reports as the text
/// they spell; `heads` takes its sequence every way the other commands take text.
#[test]
fn token_ids_are_input_wherever_text_is() {
    let reference = Reference::load();
    let text = reference.prompts[1].as_str();
    let ids: Vec<String> = reference.ids(1).iter().map(u32::to_string).collect();
    let ids = ids.join(",");
    for cmd_name in ["tokenize", "next", "score", "lens", "trace"] {
        let a = json(&[cmd_name, text]);
        let b = json(&[cmd_name, "--ids", &ids]);
        assert_eq!(a, b, "{cmd_name}");
    }
    // Several --ids are several texts.
    let v = json(&["next", "--ids", &ids, "--ids", "464,3797"]);
    assert_eq!(v["batch"][1]["text"], "The cat");
    // A pair by ids is the pair by text.
    let tok_ids = |t: &str| {
        let v = json(&["tokenize", t]);
        let ids: Vec<String> = ids_of(&v["input_ids"]).iter().map(u32::to_string).collect();
        ids.join(",")
    };
    let (clean, corrupt) = ("The cat sat on the", "The dog sat on the");
    let pair = ["--answer", " mat", "--wrong", " floor"];
    let by_text = json(
        &[
            &["patch", "--clean", clean, "--corrupt", corrupt][..],
            &pair,
        ]
        .concat(),
    );
    let (ci, ki) = (tok_ids(clean), tok_ids(corrupt));
    let by_ids = json(
        &[
            &["patch", "--clean-ids", &ci, "--corrupt-ids", &ki][..],
            &pair,
        ]
        .concat(),
    );
    assert_eq!(by_text, by_ids);
    // heads: TEXT, --ids, --file and a pipe give the same report.
    let s = crate::common::Scratch::new("heads-input");
    let file = s.0.join("seq.txt");
    std::fs::write(&file, "The cat sat on the mat\n").unwrap();
    let seq = "The cat sat on the mat";
    let want = json(&["heads", seq]);
    assert_eq!(json(&["heads", "--ids", &tok_ids(seq)]), want);
    assert_eq!(json(&["heads", "--file", file.to_str().unwrap()]), want);
    let piped = cmd()
        .args(["heads", "--json"])
        .write_stdin(format!("{seq}\n"))
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&piped.stdout).unwrap(),
        want
    );
    // Nothing piped: random ids, as --seq-len 50 --seed 0.
    let random = cmd().args(["heads", "--json"]).output().unwrap();
    let random: Value = serde_json::from_slice(&random.stdout).unwrap();
    assert_eq!(random, json(&["heads", "--seq-len", "50", "--seed", "0"]));
    // An id outside the vocabulary is misuse, named by its flag.
    crate::common::fails(
        cmd().args(["next", "--ids", "464,99999"]),
        2,
        &["--ids", "99999"],
    );
    crate::common::fails(
        cmd().args(["heads", "--ids", "464,99999"]),
        2,
        &["--ids", "99999"],
    );
}
