//! Checkpoint layouts against Hugging Face: an untied LM head (config.json's
//! `tie_word_embeddings: false`) unembeds with its own `lm_head.weight`, as
//! `GPT2LMHeadModel` does, and a tied one ignores a stored `lm_head.weight`
//! (scripts/make_untied_fixture.py, untied.safetensors).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::{Config, Gpt2, LastLogits, Request};

use crate::common::{fails, flat, json_on, max_abs_diff, model_dir, Scratch, TOL};

/// A copy of the fixture model with `lm_head.weight` = 0.5 · wte[(i · stride) mod V] added,
/// and config.json's `tie_word_embeddings` set to `tied`.
fn with_head(scratch: &Scratch, name: &str, tied: bool, stride: usize) -> PathBuf {
    let dir = scratch.model(name, &["tokenizer.json", "vocab.json", "merges.txt"]);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("config.json")).unwrap())
            .unwrap();
    cfg["tie_word_embeddings"] = serde_json::Value::Bool(tied);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(model_dir().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let wte = &tensors["transformer.wte.weight"];
    let v = wte.dim(0).unwrap();
    let rows: Vec<u32> = (0..v).map(|i| ((i * stride) % v) as u32).collect();
    let rows = Tensor::new(rows, &Device::Cpu).unwrap();
    let head = (wte.index_select(&rows, 0).unwrap() * 0.5).unwrap();
    tensors.insert("lm_head.weight".into(), head);
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    dir
}

/// The binary on the model in `dir`.
fn on(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.arg("--model").arg(dir);
    c
}

struct Untied {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn reference() -> Untied {
    let (tensors, meta) = crate::common::fixture_file("untied.safetensors");
    Untied { tensors, meta }
}

/// The last position's logits of `ids` on the model in `dir`.
fn last_logits(dir: &Path, ids: &Tensor) -> Vec<f32> {
    let (cfg, _) = Config::from_file(&dir.join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    let req = Request {
        capture: Default::default(),
        logits: LastLogits,
    };
    flat(
        &model
            .forward(&ids.unsqueeze(0).unwrap(), &req)
            .unwrap()
            .logits,
    )
}

#[test]
fn an_untied_head_unembeds_with_its_own_weight_and_a_tied_one_ignores_it() {
    let r = reference();
    let stride: usize = r.meta["stride"].parse().unwrap();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let scratch = Scratch::new("untied-head");
    let untied = with_head(&scratch, "untied", false, stride);
    let tied = with_head(&scratch, "tied", true, stride);
    for (k, prompt) in prompts.iter().enumerate() {
        let ids = r.tensors[&format!("prompt{k}.input_ids")]
            .to_dtype(DType::U32)
            .unwrap();
        for (dir, key) in [(&untied, "logits"), (&tied, "tied_logits")] {
            let want = flat(&r.tensors[&format!("prompt{k}.{key}")]);
            let d = max_abs_diff(&last_logits(dir, &ids), &want);
            assert!(d <= TOL, "prompt {k} {key}: max |ours - HF| = {d}");
        }
        // The command-line path: next's top logits are HF's.
        let v = json_on(&untied, &["next", prompt, "-k", "5"]);
        let want = flat(&r.tensors[&format!("prompt{k}.logits")]);
        for p in v["predictions"].as_array().unwrap() {
            let id = p["id"].as_u64().unwrap() as usize;
            let got = p["logit"].as_f64().unwrap() as f32;
            assert!(
                (got - want[id]).abs() <= TOL,
                "prompt {k} id {id}: {got} vs {}",
                want[id]
            );
        }
        // Direct logit attribution reads W_U from the untied head: its parts add up.
        let a = json_on(&untied, &["attribute", prompt, "--answer", " the"]);
        let (total, logit) = (a["total"].as_f64().unwrap(), a["logit"].as_f64().unwrap());
        assert!(
            (total - logit).abs() <= 1e-4,
            "attribute: {total} vs {logit}"
        );
    }
}

#[test]
fn an_untied_config_without_lm_head_is_refused_naming_the_tensor() {
    let scratch = Scratch::new("untied-missing");
    let dir = scratch.model(
        "m",
        &[
            "tokenizer.json",
            "vocab.json",
            "merges.txt",
            "model.safetensors",
        ],
    );
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("config.json")).unwrap())
            .unwrap();
    cfg["tie_word_embeddings"] = serde_json::Value::Bool(false);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    fails(on(&dir).args(["next", "The cat"]), 1, &["lm_head.weight"]);
}
