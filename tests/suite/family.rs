//! The GPT-2 family's exact configs (distilgpt2, gpt2-medium, gpt2-large; gpt2-xl for
//! `info` and `hooks`) against Hugging Face's GPT2LMHeadModel built from each, on the
//! formula weights of [`crate::common::family`] (scripts/make_family_fixture.py,
//! tests/fixtures/family): the checkpoint is written here, gigabytes that are never
//! committed, and its tensors are checked to be the ones HF ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::{Config, Gpt2, LastLogits, Request};
use sha2::Digest;

use crate::common::family;
use crate::common::{fixtures, flat, json_on, max_abs_diff, Scratch, TOL};

struct Family {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Family {
    fn load() -> Self {
        let (tensors, meta) = crate::common::fixture_file("family/reference.safetensors");
        Family { tensors, meta }
    }
}

fn config(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(format!("family/{name}.json"))).unwrap())
        .unwrap()
}

/// A model directory for `name`: the real tokenizer and the formula checkpoint (values or
/// only a sparse file behind the header).
fn model(s: &Scratch, name: &str, values: bool) -> PathBuf {
    let dir = s.model(name, &["tokenizer.json"]);
    family::write(&dir, &config(name), values).unwrap();
    dir
}

/// The checkpoint's tensors are HF's: sha256 of the first, the last and the embedding.
fn same_tensors_as_hf(dir: &Path, sums: &serde_json::Value) {
    let names = family::tensors(&config_of(dir));
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for name in [
        &names[0].0,
        &names[names.len() - 1].0,
        &"transformer.wte.weight".to_string(),
    ] {
        let got = crate::common::hex(&sha2::Sha256::digest(st.tensor(name).unwrap().data()));
        assert_eq!(got, sums[name.as_str()].as_str().unwrap(), "{name}");
    }
}

fn config_of(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

/// distilgpt2, gpt2-medium and gpt2-large: the last position's 50257 logits through the
/// library, `next`'s through the binary, and `info`'s parameter count as HF counts them.
#[test]
fn the_family_matches_hf() {
    let r = Family::load();
    let ids: Vec<u32> = r.tensors["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let params: serde_json::Value = serde_json::from_str(&r.meta["parameters"]).unwrap();
    for name in ["distilgpt2", "gpt2-medium", "gpt2-large"] {
        let s = Scratch::new(&format!("family-{name}"));
        let dir = model(&s, name, true);
        same_tensors_as_hf(
            &dir,
            &serde_json::from_str(&r.meta[&format!("{name}.sha256")]).unwrap(),
        );
        let want = flat(&r.tensors[&format!("{name}.logits")]);
        let (cfg, _) = Config::from_file(&dir.join("config.json")).unwrap();
        let ckpt = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
        let m = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let req = Request {
            capture: Default::default(),
            logits: LastLogits,
        };
        let got = flat(&m.forward(&input, &req).unwrap().logits);
        let d = max_abs_diff(&got, &want);
        assert!(d < TOL, "{name}: logits off by {d}");
        let next = json_on(&dir, &["next", &r.meta["prompt"], "-k", "10"]);
        for p in next["predictions"].as_array().unwrap() {
            let id = p["id"].as_u64().unwrap() as usize;
            let d = (p["logit"].as_f64().unwrap() as f32 - want[id]).abs();
            assert!(d < TOL, "{name}: next's logit of {id} off by {d}");
        }
        let info = json_on(&dir, &["info"]);
        assert_eq!(info["parameters"], params[name], "{name}");
    }
}

/// gpt2-xl: `info` and `hooks` from its config and the checkpoint's header alone (the 6 GB
/// behind it a sparse file that is never read).
#[test]
fn gpt2_xl_is_described_without_loading_it() {
    let r = Family::load();
    let params: serde_json::Value = serde_json::from_str(&r.meta["parameters"]).unwrap();
    let s = Scratch::new("family-xl");
    let dir = model(&s, "gpt2-xl", false);
    let info = json_on(&dir, &["info"]);
    assert_eq!(info["parameters"], params["gpt2-xl"]);
    assert_eq!(info["parameters"], 1_557_611_200u64);
    let hooks = json_on(&dir, &["hooks", "--seq-len", "7"]);
    let rows = hooks["hooks"].as_array().unwrap();
    let pattern = rows
        .iter()
        .find(|h| h["name"] == "blocks.47.attn.hook_pattern")
        .unwrap();
    assert_eq!(pattern["shape"], serde_json::json!([1, 25, 7, 7]));
    assert!(!rows
        .iter()
        .any(|h| h["name"].as_str().unwrap().starts_with("blocks.48.")));
}
