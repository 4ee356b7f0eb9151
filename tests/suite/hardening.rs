//! The real world, adversarially: output files that are not regular files, symlinks,
//! signals during a write, endless input, absurd configs and checkpoints, non-finite
//! weights, hostile text for the terminal. Each case fails cleanly or works, never harms.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command as Std, Stdio};
use std::time::{Duration, Instant};

use crate::common::{cmd, fails, model_dir, page_data, page_f32s, page_u16s, Scratch};

const TEXT: &str = "The cat sat on the mat";

/// The binary on the fixture, as a plain `std` command (for stdin and stdout redirection).
fn bin() -> Std {
    let mut c = Std::new(assert_cmd::cargo::cargo_bin("gpt2-inspect"));
    c.arg("--model").arg(model_dir());
    c
}

fn is_root() -> bool {
    Std::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// Files in `dir` left by an interrupted or failed write.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

fn dump_to(path: &Path) -> assert_cmd::Command {
    let mut c = cmd();
    c.args(["dump", TEXT, "--hook", "hook_embed", "-o"])
        .arg(path);
    c
}

/// A safetensors file with one hook_embed tensor of a 6-token text, as `dump` writes it.
fn is_dump(bytes: &[u8]) {
    let st = safetensors::SafeTensors::deserialize(bytes).expect("a safetensors file");
    assert_eq!(st.tensor("hook_embed").unwrap().shape(), [1, 6, 32]);
}

#[test]
fn devices_and_fifos_are_written_to_not_replaced() {
    let s = Scratch::new("special");
    // A FIFO: read by another process while the dump writes into it.
    let fifo = s.0.join("fifo");
    assert!(Std::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    dump_to(&fifo)
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    is_dump(&reader.join().unwrap());
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(temp_files(&s.0).is_empty());

    // /dev/stdout writes to standard output.
    let out = cmd()
        .args(["dump", TEXT, "--hook", "hook_embed", "-o", "/dev/stdout"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report follows the file on stdout; the file is its first part.
    let len = u64::from_le_bytes(out.stdout[..8].try_into().unwrap()) as usize;
    let n = 8 + len + 6 * 32 * 4;
    is_dump(&out.stdout[..n]);

    if !is_root() {
        eprintln!("skipped the device-node cases: they need root for mknod");
        return;
    }
    // Device nodes of our own (null, full), never the machine's.
    let null = s.0.join("null");
    let full = s.0.join("full");
    assert!(Std::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .unwrap()
        .success());
    assert!(Std::new("mknod")
        .arg(&full)
        .args(["c", "1", "7"])
        .status()
        .unwrap()
        .success());
    dump_to(&null).assert().success();
    assert!(std::fs::metadata(&null)
        .unwrap()
        .file_type()
        .is_char_device());
    let err = fails(
        &mut dump_to(&full),
        1,
        &["-o", "full", "No space left on device"],
    );
    assert!(err.contains(&*full.to_string_lossy()), "{err}");
    assert!(std::fs::metadata(&full)
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(temp_files(&s.0).is_empty());
}

#[test]
fn symlinks_are_written_through_and_modes_kept() {
    let s = Scratch::new("symlinks");
    let real = s.0.join("real.safetensors");
    std::fs::write(&real, b"old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = s.0.join("link.safetensors");
    std::os::unix::fs::symlink("real.safetensors", &link).unwrap();
    dump_to(&link).assert().success();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    is_dump(&std::fs::read(&real).unwrap());
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a replaced file keeps its mode");

    let dangling = s.0.join("dangling.safetensors");
    std::os::unix::fs::symlink("nowhere/x.safetensors", &dangling).unwrap();
    fails(
        &mut dump_to(&dangling),
        1,
        &["is a symlink to", "does not exist"],
    );
    assert!(temp_files(&s.0).is_empty());

    // A name of 248 characters works (the temporary name is short).
    let long = s.0.join(format!("{}.st", "n".repeat(245)));
    dump_to(&long).assert().success();
    is_dump(&std::fs::read(&long).unwrap());
    // --svg and report go through the same path.
    let svg = s.0.join("a.svg");
    std::os::unix::fs::symlink("b.svg", &svg).unwrap();
    std::fs::write(s.0.join("b.svg"), b"").unwrap();
    cmd()
        .args(["attention", TEXT, "--layer", "0", "--head", "0", "--svg"])
        .arg(&svg)
        .assert()
        .success();
    assert!(std::fs::read_to_string(s.0.join("b.svg"))
        .unwrap()
        .contains("<svg"));
}

#[test]
fn stdout_full_names_standard_output() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let out = bin()
        .args(["next", TEXT])
        .stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("standard output") && err.contains("No space left"),
        "{err}"
    );
}

/// Starts a dump of ~400 MB, waits for its temporary file, sends `signal`.
fn interrupt_dump(signal: &str, code: i32) {
    let s = Scratch::new(&format!("signal-{signal}"));
    let line = "the cat sat on the mat ".repeat(200);
    let lines = s.0.join("lines.txt");
    std::fs::write(&lines, format!("{line}\n").repeat(8)).unwrap();
    let target = s.0.join("big.safetensors");
    let mut child = bin()
        .args([
            "dump",
            "--lines",
            "--truncate",
            "left",
            "--hook",
            "blocks.*.attn.hook_pattern",
        ])
        .arg("--file")
        .arg(&lines)
        .arg("-o")
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while temp_files(&s.0).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no temporary file appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "dump ended before the signal"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    Std::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "dump did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(code));
    assert!(temp_files(&s.0).is_empty(), "{:?}", temp_files(&s.0));
    assert!(!target.exists());
}

#[test]
fn signals_remove_the_temporary_file() {
    interrupt_dump("INT", 130);
    interrupt_dump("TERM", 143);
}

#[test]
fn endless_input_is_refused() {
    let started = Instant::now();
    fails(
        cmd().args(["next", "--file", "/dev/zero"]),
        1,
        &["--file /dev/zero", "more than 16 MiB"],
    );
    let out = bin()
        .arg("next")
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("standard input") && err.contains("more than 16 MiB"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn long_texts_tokenize_as_a_whole() {
    // Over 4 pieces of 64 KiB, with every kind of character at the cuts' neighbourhood.
    let unit =
        "It's 2024: naïve café-owners' 12,345 \"quotes\"\n\n  spaces\tand tabs — 日本語 😀 ok. ";
    let text = unit.repeat(300_000 / unit.len());
    let s = Scratch::new("long-text");
    let file = s.0.join("long.txt");
    std::fs::write(&file, &text).unwrap();
    let v = crate::common::json(&["tokenize", "--file", file.to_str().unwrap()]);
    let ours = crate::common::ids_of(&v["input_ids"]);
    let hf = tokenizers::Tokenizer::from_file(model_dir().join("tokenizer.json"))
        .unwrap()
        .encode(text.as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(ours.len(), hf.len());
    assert!(ours == hf, "tokens differ from one whole-text encoding");

    // --truncate left keeps the whole text's last tokens.
    let v = crate::common::json(&[
        "next",
        "--file",
        file.to_str().unwrap(),
        "--truncate",
        "left",
    ]);
    assert_eq!(
        crate::common::ids_of(&v["input_ids"]),
        hf[hf.len() - 1024..]
    );
}

/// A model directory with the fixture's files and a config.json changed by `edit`.
fn with_config(s: &Scratch, name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let dir = s.model(
        name,
        &["config.json", "tokenizer.json", "model.safetensors"],
    );
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

fn on(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.arg("--model").arg(dir).env("RUST_BACKTRACE", "1");
    c
}

#[test]
fn absurd_configs_are_refused_before_allocating() {
    let s = Scratch::new("configs");
    let huge = with_config(&s, "huge-layers", |c| {
        c["n_layer"] = 1_000_000_000_000u64.into()
    });
    for args in [["hooks"].as_slice(), &["next", TEXT], &["info"]] {
        fails(
            on(&huge).args(args),
            1,
            &["n_layer is 1000000000000", "up to 1024"],
        );
    }
    let wide = with_config(&s, "wide", |c| {
        c["n_embd"] = (1u64 << 62).into();
        c["n_head"] = 1.into();
    });
    fails(on(&wide).args(["hooks"]), 1, &["n_embd"]);
}

/// A copy of the fixture checkpoint with tensors replaced: `edit(name, shape, data)`.
fn with_weights(
    s: &Scratch,
    name: &str,
    edit: impl Fn(&str, &mut Vec<usize>, &mut Vec<f32>),
) -> PathBuf {
    let dir = s.model(name, &["config.json", "tokenizer.json"]);
    let bytes = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, view) in st.tensors() {
        let mut shape = view.shape().to_vec();
        let mut data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        edit(&n, &mut shape, &mut data);
        tensors.push((n, shape, bytemuck::cast_slice(&data).to_vec()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap();
            (n.clone(), v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    dir
}

#[test]
fn shapes_that_overflow_are_refused() {
    let s = Scratch::new("overflow");
    let dir = s.model("overflow", &["config.json", "tokenizer.json"]);
    // wte claims [2^62, 24] elements in 0 bytes: 2^62 · 24 · 4 wraps to 0 in usize.
    let header = serde_json::json!({
        "wte.weight": {"dtype": "F32", "shape": [1u64 << 62, 24], "data_offsets": [0, 0]}
    })
    .to_string();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
    fails(
        on(&dir).args(["next", TEXT]),
        1,
        &["not a valid safetensors file", "wte.weight"],
    );
    fails(
        on(&dir).args(["info"]),
        1,
        &["not a valid safetensors file"],
    );
}

#[test]
fn a_small_vocabulary_pads_with_a_valid_id() {
    // 50256 tokens: no row for <|endoftext|>, the usual pad id.
    let s = Scratch::new("small-vocab");
    let dir = with_weights(&s, "small", |n, shape, data| {
        if n.ends_with("wte.weight") {
            shape[0] = 50256;
            data.truncate(50256 * shape[1]);
        }
    });
    let cfg = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    c["vocab_size"] = 50256.into();
    c["eos_token_id"] = serde_json::Value::Null;
    c["bos_token_id"] = serde_json::Value::Null;
    std::fs::write(&cfg, c.to_string()).unwrap();
    let out = on(&dir)
        .args(["--json", "next", "a cat", "the mat and"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["input_ids"][0][2], 0);
}

#[test]
fn non_finite_weights_never_break_files_or_sampling() {
    let s = Scratch::new("nan");
    let dir = with_weights(&s, "nan", |n, _, data| {
        if n.ends_with("h.2.mlp.c_proj.weight") {
            data[0] = f32::NAN;
        }
    });
    // The report page's data stays JSON.
    let page = s.0.join("nan.html");
    // Written, and then said: where the values stopped being numbers, exit 1.
    let mut c = on(&dir);
    c.args(["report", TEXT, "-o"]).arg(&page);
    fails(
        &mut c,
        1,
        &["non-finite values (NaN or infinity) first appear in blocks.2.hook_mlp_out"],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let data = page_data(&html);
    let t = data["labels"].as_array().unwrap().len();
    assert_eq!(page_u16s(&data, "attn").len(), 3 * 4 * t * (t + 1) / 2);
    assert!(page_f32s(&data, "q").iter().all(|v| v.is_finite()));
    // Sampling on NaN logits: a clear error, one line even under RUST_BACKTRACE.
    for args in [
        [].as_slice(),
        &["--sample-top-k", "5"],
        &["--top-p", "0.9"],
        &["--temperature", "0.7"],
    ] {
        let mut c = on(&dir);
        c.args(["generate", TEXT, "-n", "3"]).args(args);
        fails(
            &mut c,
            1,
            &["logits", "NaN", "first appear in blocks.2.hook_mlp_out"],
        );
    }
    // Every report is written, JSON says "NaN" where a value is not a number (null stays
    // "masked"), stderr says where it began, and the exit code is 1.
    for cmd_args in [
        ["next", TEXT].as_slice(),
        &["score", TEXT],
        &["lens", TEXT],
        &["next", TEXT, "A second text"],
    ] {
        let out = on(&dir).args(cmd_args).arg("--jsonl").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd_args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "non-finite values (NaN or infinity) first appear in blocks.2.hook_mlp_out"
            ),
            "{err}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), cmd_args.len() - 1, "{text}");
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
            assert!(line.contains("\"NaN\""), "{line}");
        }
    }
    // The circuit commands too: written, then the same error. (`heads` reads attention
    // patterns only, which the NaN after the last block's attention never reaches: its
    // numbers are sound and it exits 0.)
    for cmd_args in [
        ["ablate", TEXT, "--head", "0.1"].as_slice(),
        &["ablate", TEXT, "--sweep"],
        &["attribute", TEXT, "--answer", " on"],
        &[
            "patch",
            "--clean",
            TEXT,
            "--corrupt",
            "The dog sat on the mat",
            "--answer",
            " on",
            "--wrong",
            " in",
        ],
    ] {
        let out = on(&dir).args(cmd_args).arg("--json").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd_args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("first appear in blocks.2.hook_mlp_out"),
            "{cmd_args:?}: {err}"
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
    }
    // One NaN logit (a NaN row of wte) is never anyone's top token.
    let dir = with_weights(&s, "nan-row", |n, shape, data| {
        if n.ends_with("wte.weight") {
            data[100 * shape[1]] = f32::NAN;
        }
    });
    let out = on(&dir)
        .args(["next", TEXT, "--json", "-k", "50257"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("first appear in logits"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = v["predictions"].as_array().unwrap();
    assert!(p[0]["logit"].is_number() && p[0]["id"] != 100, "{}", p[0]);
    assert_eq!(p.last().unwrap()["id"], 100, "NaN ranks last");
}

#[test]
fn tiny_temperatures_sample_like_greedy() {
    let greedy = crate::common::json(&["generate", TEXT, "-n", "8"]);
    let cold = crate::common::json(&["generate", TEXT, "-n", "8", "--temperature", "1e-38"]);
    assert_eq!(greedy["generated_ids"], cold["generated_ids"]);
    // Below 1 / f32::MAX the sampler's 1/T overflows: greedy, and said.
    let out = crate::common::cmd()
        .args([
            "generate",
            TEXT,
            "-n",
            "8",
            "--temperature",
            "1e-40",
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("choosing greedily"), "{err}");
    let frozen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(greedy["generated_ids"], frozen["generated_ids"]);
    assert_eq!(frozen["sampling"]["method"], "greedy");
}

#[test]
fn controls_never_reach_the_terminal_raw() {
    // A tokenizer whose special token holds ESC: tokenize escapes it.
    let s = Scratch::new("esc-token");
    let dir = s.model("esc", &["config.json", "model.safetensors"]);
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("tokenizer.json")).unwrap())
            .unwrap();
    tok["added_tokens"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": 50257, "content": "\u{1b}]0;pwned\u{7}", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }));
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let out = on(&dir)
        .args(["tokenize", "a\u{1b}]0;pwned\u{7}b"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
        "{shown}"
    );
    assert!(shown.contains("\\u{1b}]0;pwned\\u{7}"), "{shown}");

    // generate at a terminal (a pty from `script`) shows the prompt's ESC escaped.
    if Path::new("/usr/bin/script").exists() {
        let bin = assert_cmd::cargo::cargo_bin("gpt2-inspect");
        let line = format!(
            "{} --model {} generate 'x\u{1b}[2Jy' -n 2",
            bin.display(),
            model_dir().display()
        );
        let out = Std::new("script")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shown}");
        assert!(shown.contains("x\\u{1b}[2Jy"), "{shown}");
        assert!(!shown.contains("\u{1b}[2J"), "{shown}");
    }
}

#[test]
fn dump_stores_the_text_it_computed() {
    let s = Scratch::new("dump-text");
    let long = format!("{}the end", "word ".repeat(3000));
    let file = s.0.join("long.txt");
    std::fs::write(&file, &long).unwrap();
    let out = s.0.join("d.safetensors");
    cmd()
        .args([
            "dump",
            "--truncate",
            "left",
            "--hook",
            "hook_embed",
            "--file",
        ])
        .arg(&file)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let text = &meta["text"];
    let ids: Vec<u32> = serde_json::from_str(&meta["input_ids"]).unwrap();
    assert_eq!(ids.len(), 1024);
    assert!(
        text.len() < long.len() && long.ends_with(text.as_str()),
        "{}",
        text.len()
    );
    // The stored text is exactly what the stored ids spell.
    let tok = tokenizers::Tokenizer::from_file(model_dir().join("tokenizer.json")).unwrap();
    assert_eq!(
        tok.encode(text.as_str(), false).unwrap().get_ids(),
        ids.as_slice()
    );
}

#[test]
fn long_work_is_announced_and_huge_tables_are_refused_with_a_hint() {
    let s = Scratch::new("long-work");
    // 3 layers × 8 heads (n_head divides n_embd 32; no weight's shape depends on it).
    let dir = with_config(&s, "eight-heads", |c| c["n_head"] = 8.into());
    let text = "word ".repeat(40);
    let mut c = on(&dir);
    c.args(["attention", text.as_str()]);
    fails(
        &mut c,
        2,
        &["all 24 heads", "--layer", "--all-heads", "--json"],
    );
    // With a layer, or as a grid, it runs.
    on(&dir)
        .args(["attention", text.as_str(), "--layer", "1"])
        .assert()
        .success();

    // A dump of hundreds of MB says so before it starts.
    let out = s.0.join("big.safetensors");
    let long = "word ".repeat(400);
    let o = on(&model_dir())
        .args(["dump", long.as_str(), "--hook", "logits", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // 401 tokens × 50257 logits × 4 bytes, and the header.
    assert!(err.contains("writing 1 activations (76.9 MiB) to"), "{err}");

    // JSON from a long generation is written at the end: the wait is explained.
    let o = on(&model_dir())
        .args(["generate", TEXT, "-n", "64", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("generating up to 64 tokens"), "{err}");
}

/// A file of `age` ago at `path`.
fn aged(path: &Path, age: Duration) {
    std::fs::write(path, b"partial").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - age).unwrap();
}

#[test]
fn a_killed_runs_temporary_files_are_removed_by_the_next_write() {
    let s = Scratch::new("stale-temps");
    let dir = &s.0;
    let old = Duration::from_secs(600);
    // PID 4194304 is above Linux's largest: that process is gone. PID 1 is running.
    let stale = dir.join(".gpt2-inspect-4194304-aB3xYz.tmp");
    let fresh = dir.join(".gpt2-inspect-4194304-fresh1.tmp");
    let live = dir.join(".gpt2-inspect-1-q9Live.tmp");
    let other = dir.join(".other-program-4194304-x.tmp");
    let old_style = dir.join(".gpt2-inspect-xYz123.tmp");
    aged(&stale, old);
    aged(&fresh, Duration::ZERO);
    aged(&live, old);
    aged(&other, old);
    aged(&old_style, old);
    let a_dir = dir.join(".gpt2-inspect-4194304-adir1.tmp");
    std::fs::create_dir(&a_dir).unwrap();
    let out = dump_to(&dir.join("x.safetensors")).assert().success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(!stale.exists(), "a dead run's file stays");
    assert!(err.contains("aB3xYz") && err.contains("killed"), "{err}");
    for kept in [&fresh, &live, &other, &old_style, &a_dir] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
    is_dump(&std::fs::read(dir.join("x.safetensors")).unwrap());
}

#[test]
fn dash_is_standard_output_for_files_that_can_be_it() {
    // report -o - and dump -o - write the file to standard output, and nothing after it.
    let out = bin().args(["report", TEXT, "-o", "-"]).output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    let out = bin()
        .args(["dump", TEXT, "--hook", "hook_embed", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    is_dump(&out.stdout);
    assert!(!Path::new("-").exists());
    // Where standard output carries the command's own output, `-` is refused.
    fails(
        cmd().args([
            "attention",
            TEXT,
            "--layer",
            "0",
            "--head",
            "0",
            "--svg",
            "-",
        ]),
        2,
        &["--svg -", "give a file name"],
    );
}
