//! Every checkpoint format and config variant against Hugging Face (scripts/
//! make_format_fixtures.py, tests/fixtures/formats): torch.save's pytorch_model.bin (f32, f16,
//! bf16, bare keys with buffers, strided views), shards of both formats, transformers' file
//! order, and the config fields HF's GPT-2 honours (every activation, the attention scalings,
//! reorder_and_upcast_attn, layer_norm_epsilon, n_inner, n_ctx ≠ n_positions, a vocabulary of
//! 1000, another eos).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use gpt2_inspect::load::checkpoint::{Checkpoint, FileFormat};
use gpt2_inspect::model::{Config, Gpt2, Logits, Request};

use crate::common::{fails, fixtures, flat, json_on, max_abs_diff, page_data, Scratch, TOL};

/// The format directories, the file transformers would pick in each, and the reference
/// logits they must give (`f32` for the f32 files).
const FORMATS: &[(&str, FileFormat, &str)] = &[
    ("safetensors", FileFormat::Safetensors, "f32"),
    ("bin", FileFormat::TorchBin, "f32"),
    ("bin-bare", FileFormat::TorchBin, "f32"),
    ("bin-views", FileFormat::TorchBin, "f32"),
    ("bin-f16", FileFormat::TorchBin, "f16"),
    ("bin-bf16", FileFormat::TorchBin, "bf16"),
    ("sharded-safetensors", FileFormat::SafetensorsIndex, "f32"),
    ("sharded-bin", FileFormat::TorchBinIndex, "f32"),
];

struct Formats {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Formats {
    fn load() -> Self {
        let (tensors, meta) = crate::common::fixture_file("formats/reference.safetensors");
        Formats { tensors, meta }
    }

    fn ids(&self, k: usize) -> Vec<u32> {
        let t = &self.tensors[&format!("prompt{k}.input_ids")];
        t.to_dtype(DType::U32).unwrap().to_vec1().unwrap()
    }

    /// HF's logits `(T, V)` of prompt `k` for the weights of `kind` (f32, f16, bf16).
    fn logits(&self, k: usize, kind: &str) -> &Tensor {
        match kind {
            "f32" => &self.tensors[&format!("prompt{k}.logits")],
            other => &self.tensors[&format!("prompt{k}.{other}.logits")],
        }
    }

    fn variants(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.meta["variants"]).unwrap()
    }
}

fn formats_dir() -> PathBuf {
    fixtures().join("formats")
}

/// A model directory: the tokenizer, config.json (the fixture's with `changes`), and the
/// files of the format directories `weights`.
fn model(scratch: &Scratch, name: &str, weights: &[&str], changes: &serde_json::Value) -> PathBuf {
    let dir = scratch.model(name, &["tokenizer.json"]);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(formats_dir().join("config.json")).unwrap()).unwrap();
    for (k, v) in changes.as_object().into_iter().flatten() {
        cfg[k] = v.clone();
    }
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    for w in weights {
        for f in std::fs::read_dir(formats_dir().join(w)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Logits `(T, V)` of `ids` on the model in `dir`, read from `file`.
fn logits(dir: &Path, file: &str, ids: &[u32]) -> Vec<f32> {
    let (cfg, _) = Config::from_file(&dir.join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&dir.join(file)).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    let ids = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let req = Request {
        capture: Default::default(),
        logits: Logits::All,
    };
    flat(&model.forward(&ids, &req).unwrap().logits.unwrap())
}

#[test]
fn every_format_matches_hf_at_every_position() {
    let r = Formats::load();
    let scratch = Scratch::new("formats-parity");
    for &(name, format, kind) in FORMATS {
        let dir = model(&scratch, name, &[name], &serde_json::json!({}));
        for k in 0..2 {
            let got = logits(&dir, format.file_name(), &r.ids(k));
            let d = max_abs_diff(&got, &flat(r.logits(k, kind)));
            assert!(d < TOL, "{name} prompt {k}: {d}");
        }
    }
}

/// Through the binary: the file chosen, what `info` says of it, and `next`'s numbers.
#[test]
fn every_format_runs_through_the_cli_and_info_names_it() {
    let r = Formats::load();
    let scratch = Scratch::new("formats-cli");
    let text: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    for &(name, format, kind) in FORMATS {
        let dir = model(&scratch, name, &[name], &serde_json::json!({}));
        let info = json_on(&dir, &["info"]);
        assert_eq!(
            info["checkpoint"],
            dir.join(format.file_name()).display().to_string()
        );
        assert_eq!(info["format"], format.describe(), "{name}");
        let shards = std::fs::read_dir(&dir).unwrap().count() - 3; // config, tokenizer, index
        assert_eq!(
            info["files"].as_array().unwrap().len(),
            shards.max(1),
            "{name}"
        );
        let next = json_on(&dir, &["next", &text[0], "-k", "5"]);
        let want = r.logits(0, kind);
        let t = want.dim(0).unwrap();
        let last = flat(&want.get(t - 1).unwrap());
        for p in next["predictions"].as_array().unwrap() {
            let id = p["id"].as_u64().unwrap() as usize;
            let d = (p["logit"].as_f64().unwrap() as f32 - last[id]).abs();
            assert!(d < TOL, "{name}: logit of {id} off by {d}");
        }
    }
}

/// transformers' order: model.safetensors, its index, pytorch_model.bin, its index.
#[test]
fn the_checkpoint_chosen_follows_transformers_order() {
    let scratch = Scratch::new("formats-order");
    let cases: &[(&[&str], FileFormat)] = &[
        (&["bin", "safetensors"], FileFormat::Safetensors),
        (
            &["bin", "sharded-safetensors"],
            FileFormat::SafetensorsIndex,
        ),
        (&["sharded-bin", "bin"], FileFormat::TorchBin),
        (
            &["sharded-bin", "sharded-safetensors"],
            FileFormat::SafetensorsIndex,
        ),
    ];
    for (i, (weights, want)) in cases.iter().enumerate() {
        let dir = model(&scratch, &format!("m{i}"), weights, &serde_json::json!({}));
        let info = json_on(&dir, &["info"]);
        assert_eq!(info["format"], want.describe(), "{weights:?}");
    }
}

#[test]
fn every_config_variant_matches_hf() {
    let r = Formats::load();
    let scratch = Scratch::new("formats-variants");
    // Each variant on the fixture's weights; the activations also on c_fc weights × 32
    // (c_proj / 32), whose pre-activations pass ±10.
    let mut cases: Vec<(String, serde_json::Value, &str, String)> = Vec::new();
    for (name, changes) in r.variants() {
        if name.starts_with("act-") {
            cases.push((
                name.clone(),
                changes.clone(),
                "wide-mlp",
                format!("wide.{name}"),
            ));
        }
        cases.push((
            name.clone(),
            changes,
            "safetensors",
            format!("variant.{name}"),
        ));
    }
    let n_inner = serde_json::json!({"n_inner": 48});
    cases.push((
        "n_inner".into(),
        n_inner,
        "n_inner",
        "variant.n_inner".into(),
    ));
    assert!(cases.len() > 45, "{}", cases.len());
    for (i, (name, changes, weights, key)) in cases.iter().enumerate() {
        let dir = model(&scratch, &format!("{i}"), &[weights], changes);
        for k in 0..2 {
            let ids = r.ids(k);
            let got = logits(&dir, "model.safetensors", &ids);
            let v = got.len() / ids.len();
            let want = flat(&r.tensors[&format!("prompt{k}.{key}")]);
            let d = max_abs_diff(&got[got.len() - v..], &want);
            assert!(d < TOL, "{name}: {key} on {weights}, prompt {k}: {d}");
        }
    }
}

/// The activations are told apart: two names give the same logits only when HF computes
/// the same function under both, so a name read as another fails the test above.
#[test]
fn the_activation_references_tell_the_functions_apart() {
    let r = Formats::load();
    let same = [
        &[
            "gelu_new",
            "gelu_pytorch_tanh",
            "gelu_python_tanh",
            "gelu_fast",
            "gelu_accurate",
        ][..],
        &["gelu", "gelu_python"],
        &["silu", "swish"],
    ];
    let group = |a: &str| same.iter().position(|g| g.contains(&a));
    let acts: Vec<String> = (r.variants().keys())
        .filter_map(|k| k.strip_prefix("act-").map(str::to_string))
        .collect();
    let logits = |a: &str, on: &str| flat(&r.tensors[&format!("prompt0.{on}.act-{a}")]);
    for (i, a) in acts.iter().enumerate() {
        for b in &acts[i + 1..] {
            let d = ["variant", "wide"]
                .map(|on| max_abs_diff(&logits(a, on), &logits(b, on)))
                .into_iter()
                .fold(0f32, f32::max);
            let alike = group(a).is_some() && group(a) == group(b);
            assert_eq!(d < 1e-3, alike, "{a} and {b}: {d}");
        }
    }
}

/// HF ignores n_ctx: the limit is n_positions (64), not n_ctx (32).
#[test]
fn n_positions_not_n_ctx_is_the_limit() {
    let scratch = Scratch::new("formats-nctx");
    let dir = model(&scratch, "m", &["safetensors"], &serde_json::json!({}));
    let words = |n: usize| " the".repeat(n);
    let out = json_on(&dir, &["next", &words(40)]);
    assert_eq!(out["input_ids"].as_array().unwrap().len(), 40);
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.arg("--model").arg(&dir).args(["next", &words(65)]);
    fails(&mut c, 1, &["65 tokens", "64"]);
}

/// config.json's eos_token_id ends generation: here the greedy next token of prompt 0.
#[test]
fn another_eos_token_ends_generation() {
    let r = Formats::load();
    let eos: u32 = r.meta["eos_greedy"].parse().unwrap();
    let scratch = Scratch::new("formats-eos");
    let text: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let stops = model(
        &scratch,
        "stops",
        &["bin"],
        &serde_json::json!({"eos_token_id": eos}),
    );
    let out = json_on(&stops, &["generate", &text[0], "-n", "5"]);
    assert_eq!(out["generated_ids"], serde_json::json!([eos]), "{out}");
    let goes_on = model(&scratch, "goes-on", &["bin"], &serde_json::json!({}));
    let out = json_on(&goes_on, &["generate", &text[0], "-n", "5"]);
    assert_eq!(out["generated_ids"].as_array().unwrap().len(), 5, "{out}");
    assert_eq!(out["generated_ids"][0], eos);
}

/// Every command that reads weights runs on a torch zip (one that maps its f32 storages in
/// place) and on shards, with the fixture's numbers where `next` can tell.
#[test]
fn every_command_runs_on_a_torch_checkpoint_and_on_shards() {
    let r = Formats::load();
    let text: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let scratch = Scratch::new("formats-commands");
    let t = text[0].as_str();
    let report = scratch.0.join("r.html");
    let dump = scratch.0.join("d.safetensors");
    let commands: Vec<Vec<&str>> = vec![
        vec!["trace", t],
        vec!["embed", t],
        vec!["hidden", t],
        vec!["attention", t, "--layer", "1"],
        vec!["lens", t],
        vec!["hooks"],
        vec!["score", t],
        vec!["generate", t, "-n", "2"],
        vec!["attribute", t, "--answer", " the"],
        vec!["ablate", t, "--head", "1.2"],
        vec!["saliency", t],
        vec!["heads", "--seq-len", "8"],
        vec!["report", t, "-o", report.to_str().unwrap()],
        vec!["dump", t, "-o", dump.to_str().unwrap()],
        vec![
            "patch",
            "--clean",
            t,
            "--corrupt",
            "The man said that she would not be there",
            "--answer",
            " the",
            "--wrong",
            " a",
        ],
        vec![
            "circuit",
            "--clean",
            t,
            "--corrupt",
            "The man said that she would not be there",
            "--answer",
            " the",
            "--wrong",
            " a",
            "--top",
            "3",
        ],
    ];
    for weights in ["bin", "sharded-bin", "sharded-safetensors"] {
        let dir = model(&scratch, weights, &[weights], &serde_json::json!({}));
        let safetensors = model(
            &scratch,
            &format!("{weights}-st"),
            &["safetensors"],
            &serde_json::json!({}),
        );
        for args in &commands {
            let got = json_on(&dir, args);
            let page = std::fs::read_to_string(&report)
                .ok()
                .map(|h| strip(page_data(&h)));
            let want = json_on(&safetensors, args);
            assert_eq!(strip(got), strip(want), "{weights}: {args:?}");
            if args[0] == "report" {
                let want = strip(page_data(&std::fs::read_to_string(&report).unwrap()));
                assert_eq!(page, Some(want), "{weights}: the report's data");
            }
        }
    }
}

/// A command's JSON without what names the model directory (and the page's size, which
/// holds the name).
fn strip(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("model");
        o.remove("bytes");
    }
    v
}

/// torch.save aligns its storages: the f32 matrices of a pytorch_model.bin are computed
/// from the mapped file, as safetensors' are; a strided view is copied into order.
#[test]
fn a_torch_zip_is_mapped_in_place() {
    use gpt2_inspect::model::weights::Weight;
    let scratch = Scratch::new("formats-mapped");
    for (name, mapped) in [("bin", true), ("bin-views", true), ("sharded-bin", true)] {
        let dir = model(&scratch, name, &[name], &serde_json::json!({}));
        let (cfg, _) = Config::from_file(&dir.join("config.json")).unwrap();
        let file = FORMATS.iter().find(|f| f.0 == name).unwrap().1.file_name();
        let ckpt = Checkpoint::open(&dir.join(file)).unwrap();
        let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(matches!(model.wte(), Weight::Mapped(_)), mapped, "{name}");
    }
}
